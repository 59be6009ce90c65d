/* TLS for live migration through OpenSSL's libssl, loaded on first use
 * (src/os/lazy.h) like libcrypto is for encrypted streams: libhvcore
 * links only libc. The sender is the client and always verifies the
 * receiver; the receiver asks for the sender's certificate with
 * HVC_MIGRATE_TLS_VERIFY_PEER. TLS 1.2 at least, no session tickets (a
 * ticket arriving after the handshake would look like the receiver
 * speaking). Once the server accepted the client it writes GO_MAGIC, which
 * the client reads before anything else: under TLS 1.3 the client's
 * handshake ends before the server checked its certificate, and without
 * the go a refused client would only learn it from a broken write. */
#define _GNU_SOURCE
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../os/lazy.h"

#define SSL_SYMS(X)                                                            \
    X(TLS_client_method)                                                       \
    X(TLS_server_method)                                                       \
    X(SSL_CTX_new)                                                             \
    X(SSL_CTX_free)                                                            \
    X(SSL_CTX_ctrl)                                                            \
    X(SSL_CTX_use_certificate_chain_file)                                      \
    X(SSL_CTX_use_PrivateKey_file)                                             \
    X(SSL_CTX_check_private_key)                                               \
    X(SSL_CTX_load_verify_locations)                                           \
    X(SSL_CTX_set_verify)                                                      \
    X(SSL_CTX_set_num_tickets)                                                 \
    X(SSL_new)                                                                 \
    X(SSL_free)                                                                \
    X(SSL_set_fd)                                                              \
    X(SSL_set1_host)                                                           \
    X(SSL_get0_param)                                                          \
    X(SSL_connect)                                                             \
    X(SSL_accept)                                                              \
    X(SSL_read)                                                                \
    X(SSL_write)                                                               \
    X(SSL_pending)                                                             \
    X(SSL_get_error)                                                           \
    X(SSL_get_verify_result)
HVI_LAZY_TABLE(ssl, HVCORE_SONAME_SSL, SSL_SYMS)
#define TLS_client_method HVI_LAZY_USE(ssl, TLS_client_method)
#define TLS_server_method HVI_LAZY_USE(ssl, TLS_server_method)
#define SSL_CTX_new HVI_LAZY_USE(ssl, SSL_CTX_new)
#define SSL_CTX_free HVI_LAZY_USE(ssl, SSL_CTX_free)
#define SSL_CTX_ctrl HVI_LAZY_USE(ssl, SSL_CTX_ctrl)
#define SSL_CTX_use_certificate_chain_file                                     \
    HVI_LAZY_USE(ssl, SSL_CTX_use_certificate_chain_file)
#define SSL_CTX_use_PrivateKey_file                                            \
    HVI_LAZY_USE(ssl, SSL_CTX_use_PrivateKey_file)
#define SSL_CTX_check_private_key HVI_LAZY_USE(ssl, SSL_CTX_check_private_key)
#define SSL_CTX_load_verify_locations                                          \
    HVI_LAZY_USE(ssl, SSL_CTX_load_verify_locations)
#define SSL_CTX_set_verify HVI_LAZY_USE(ssl, SSL_CTX_set_verify)
#define SSL_CTX_set_num_tickets HVI_LAZY_USE(ssl, SSL_CTX_set_num_tickets)
#define SSL_new HVI_LAZY_USE(ssl, SSL_new)
#define SSL_free HVI_LAZY_USE(ssl, SSL_free)
#define SSL_set_fd HVI_LAZY_USE(ssl, SSL_set_fd)
#define SSL_set1_host HVI_LAZY_USE(ssl, SSL_set1_host)
#define SSL_get0_param HVI_LAZY_USE(ssl, SSL_get0_param)
#define SSL_connect HVI_LAZY_USE(ssl, SSL_connect)
#define SSL_accept HVI_LAZY_USE(ssl, SSL_accept)
#define SSL_read HVI_LAZY_USE(ssl, SSL_read)
#define SSL_write HVI_LAZY_USE(ssl, SSL_write)
#define SSL_pending HVI_LAZY_USE(ssl, SSL_pending)
#define SSL_get_error HVI_LAZY_USE(ssl, SSL_get_error)
#define SSL_get_verify_result HVI_LAZY_USE(ssl, SSL_get_verify_result)

/* libssl's own dependency, for the error strings and IP checks. */
#define TLS_CRYPTO_SYMS(X)                                                     \
    X(ERR_get_error)                                                           \
    X(ERR_clear_error)                                                         \
    X(ERR_reason_error_string)                                                 \
    X(X509_verify_cert_error_string)                                           \
    X(X509_VERIFY_PARAM_set1_ip_asc)
HVI_LAZY_TABLE(tlscrypto, HVCORE_SONAME_CRYPTO, TLS_CRYPTO_SYMS)
#define ERR_get_error HVI_LAZY_USE(tlscrypto, ERR_get_error)
#define ERR_clear_error HVI_LAZY_USE(tlscrypto, ERR_clear_error)
#define ERR_reason_error_string HVI_LAZY_USE(tlscrypto, ERR_reason_error_string)
#define X509_verify_cert_error_string                                          \
    HVI_LAZY_USE(tlscrypto, X509_verify_cert_error_string)
#define X509_VERIFY_PARAM_set1_ip_asc                                          \
    HVI_LAZY_USE(tlscrypto, X509_VERIFY_PARAM_set1_ip_asc)

#define GO_MAGIC "HVCMTLS1"

struct hvi_tls {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
};

/* OpenSSL's socket BIO writes with write(2): every call that may write
 * (a read may answer the peer) holds SIGPIPE off, so that a peer gone is
 * an error here, never a signal that ends the caller. */
static int ssl_call(int (*fn)(SSL *), SSL *ssl)
{
    hvi_os_nosigpipe np;
    hvi_os_nosigpipe_begin(&np);
    int r = fn(ssl);
    hvi_os_nosigpipe_end(&np);
    return r;
}

static int ssl_io(int (*fn)(SSL *, void *, int), SSL *ssl, void *buf, int n)
{
    hvi_os_nosigpipe np;
    hvi_os_nosigpipe_begin(&np);
    int r = fn(ssl, buf, n);
    hvi_os_nosigpipe_end(&np);
    return r;
}

static int ssl_write(SSL *ssl, const void *buf, int n)
{
    hvi_os_nosigpipe np;
    hvi_os_nosigpipe_begin(&np);
    int r = SSL_write(ssl, buf, n);
    hvi_os_nosigpipe_end(&np);
    return r;
}

static int load(void)
{
    int r = hvi_lazy_tlscrypto();
    return r < 0 ? r : hvi_lazy_ssl();
}

static int check_file(const char *field, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return hvi_error(-errno, "hvc_migrate_tls.%s \"%s\": %s", field,
                         HVI_QUOTE(path), hvc_strerror(-errno));
    if (!S_ISREG(st.st_mode))
        return hvi_error(-EINVAL, "hvc_migrate_tls.%s \"%s\" is not a file",
                         field, HVI_QUOTE(path));
    return 0;
}

int hvi_tls_check(const hvc_migrate_tls *t, bool server)
{
    if (t->size < sizeof(hvc_migrate_tls))
        return hvi_error(-EINVAL,
                         "hvc_migrate_tls size %u is not one this "
                         "library knows",
                         t->size);
    if (t->flags & ~(uint32_t)HVC_MIGRATE_TLS_VERIFY_PEER)
        return hvi_error(-EINVAL, "hvc_migrate_tls: unknown flags 0x%x",
                         t->flags);
    if (server && (!t->cert || !t->key))
        return hvi_error(-EINVAL, "hvc_migrate_tls: the receiver needs a "
                                  "certificate and its key");
    if (!server && !t->ca)
        return hvi_error(-EINVAL, "hvc_migrate_tls: the sender needs the CA "
                                  "file that signed the receiver's "
                                  "certificate");
    if (server && (t->flags & HVC_MIGRATE_TLS_VERIFY_PEER) && !t->ca)
        return hvi_error(-EINVAL, "hvc_migrate_tls: VERIFY_PEER needs a CA "
                                  "file");
    if (!t->cert != !t->key)
        return hvi_error(-EINVAL, "hvc_migrate_tls: give a certificate and "
                                  "its key, or neither");
    if (!server && (t->flags & HVC_MIGRATE_TLS_VERIFY_PEER))
        return hvi_error(-EINVAL, "hvc_migrate_tls: VERIFY_PEER is the "
                                  "receiver's (the sender always verifies)");
    int r = 0;
    if (t->cert && (r = check_file("cert", t->cert)) < 0)
        return r;
    if (t->key && (r = check_file("key", t->key)) < 0)
        return r;
    if (t->ca && (r = check_file("ca", t->ca)) < 0)
        return r;
    if (t->server_name &&
        (strlen(t->server_name) == 0 || strlen(t->server_name) > 253 ||
         strpbrk(t->server_name, " /\\\"'")))
        return hvi_error(-EINVAL,
                         "hvc_migrate_tls.server_name \"%s\" is not "
                         "a host name or address",
                         HVI_QUOTE(t->server_name));
    return 0;
}

/* The reason of the first queued OpenSSL error ("" when none), and
 * whether it is about a certificate. */
static const char *ssl_reason(bool *cert)
{
    unsigned long code = ERR_get_error(), next;
    while ((next = ERR_get_error()) != 0)
        (void)next;
    *cert = false;
    if (!code)
        return "";
    switch (ERR_GET_REASON(code)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR: *cert = true; break;
    default: break;
    }
    const char *s = ERR_reason_error_string(code);
    return s ? s : "unknown OpenSSL error";
}

/* An OpenSSL call on @t failed with @ret: a negative errno and a message
 * about @what. */
static int tls_fail(struct hvi_tls *t, int ret, const char *what)
{
    int e = SSL_get_error(t->ssl, ret), sys = errno;
    long v = SSL_get_verify_result(t->ssl);
    bool cert;
    const char *why = ssl_reason(&cert);
    if (v != X509_V_OK)
        return hvi_error(-EKEYREJECTED,
                         "TLS: %s: the peer's certificate was refused: %s",
                         what, X509_verify_cert_error_string(v));
    if (cert)
        return hvi_error(-EKEYREJECTED, "TLS: %s: certificate refused: %s",
                         what, why);
    if (e == SSL_ERROR_ZERO_RETURN ||
        (e == SSL_ERROR_SYSCALL && !*why && (ret == 0 || sys == 0)))
        return hvi_error(-ECONNABORTED,
                         "TLS: %s: the peer closed the "
                         "connection",
                         what);
    if (e == SSL_ERROR_SYSCALL && !*why)
        return hvi_error(sys == EAGAIN ? -ETIMEDOUT : -sys, "TLS: %s: %s", what,
                         sys == EAGAIN ? "timed out" : hvc_strerror(-sys));
    return hvi_error(-EPROTO, "TLS: %s: %s", what, *why ? why : "failed");
}

static int setup_ctx(struct hvi_tls *t, const hvc_migrate_tls *o, bool server)
{
    t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!t->ctx)
        return hvi_error(-ENOMEM, "TLS: cannot create a context");
    bool cert;
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (server)
        SSL_CTX_set_num_tickets(t->ctx, 0);
    if (o->cert &&
        (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(t->ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(t->ctx) != 1))
        return hvi_error(-EINVAL,
                         "TLS: cannot use the certificate \"%s\" with the key "
                         "\"%s\": %s",
                         HVI_QUOTE(o->cert), HVI_QUOTE(o->key),
                         ssl_reason(&cert));
    if (o->ca && SSL_CTX_load_verify_locations(t->ctx, o->ca, NULL) != 1)
        return hvi_error(-EINVAL, "TLS: cannot load the CA file \"%s\": %s",
                         HVI_QUOTE(o->ca), ssl_reason(&cert));
    if (!server)
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    else if (o->flags & HVC_MIGRATE_TLS_VERIFY_PEER)
        SSL_CTX_set_verify(
            t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (!(t->ssl = SSL_new(t->ctx)) || SSL_set_fd(t->ssl, t->fd) != 1)
        return hvi_error(-ENOMEM, "TLS: cannot create a session");
    return 0;
}

static void set_timeout(int fd, uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int start(int fd, const hvc_migrate_tls *o, bool server,
                 struct hvi_tls **out)
{
    *out = NULL;
    int r = hvi_tls_check(o, server);
    if (r < 0 || (r = load()) < 0)
        return r;
    struct hvi_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return hvi_error(-ENOMEM, "out of memory");
    t->fd = fd;
    ERR_clear_error();
    if ((r = setup_ctx(t, o, server)) < 0) {
        hvi_tls_free(t);
        return r;
    }
    *out = t;
    return 0;
}

int hvi_tls_connect(int fd, const hvc_migrate_tls *o, uint32_t timeout_ms,
                    struct hvi_tls **out)
{
    struct hvi_tls *t;
    int r = start(fd, o, false, &t);
    if (r < 0)
        return r;
    if (o->server_name) {
        unsigned char ip[16];
        bool numeric = inet_pton(AF_INET, o->server_name, ip) == 1 ||
                       inet_pton(AF_INET6, o->server_name, ip) == 1;
        if (numeric ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl),
                                                    o->server_name) != 1
                    : SSL_set1_host(t->ssl, o->server_name) != 1) {
            hvi_tls_free(t);
            return hvi_error(-EINVAL, "TLS: cannot check the name \"%s\"",
                             HVI_QUOTE(o->server_name));
        }
    }
    if (timeout_ms)
        set_timeout(fd, timeout_ms);
    int ret = ssl_call(SSL_connect, t->ssl);
    if (ret != 1)
        r = tls_fail(t, ret, "handshake with the destination");
    char go[sizeof(GO_MAGIC) - 1];
    size_t got = 0;
    while (r == 0 && got < sizeof(go)) {
        ret = ssl_io(SSL_read, t->ssl, go + got, (int)(sizeof(go) - got));
        if (ret <= 0)
            r = tls_fail(t, ret,
                         "the destination did not accept the "
                         "connection");
        else
            got += (size_t)ret;
    }
    if (r == 0 && memcmp(go, GO_MAGIC, sizeof(go)) != 0)
        r = hvi_error(-EPROTO, "TLS: the destination is not a migration "
                               "receiver (no go)");
    if (timeout_ms)
        set_timeout(fd, 0);
    if (r < 0) {
        hvi_tls_free(t);
        return r;
    }
    *out = t;
    return 0;
}

int hvi_tls_accept(int fd, const hvc_migrate_tls *o, struct hvi_tls **out)
{
    struct hvi_tls *t;
    int r = start(fd, o, true, &t);
    if (r < 0)
        return r;
    int ret = ssl_call(SSL_accept, t->ssl);
    if (ret != 1)
        r = tls_fail(t, ret, "handshake with the source");
    for (size_t done = 0; r == 0 && done < sizeof(GO_MAGIC) - 1;) {
        ret = ssl_write(t->ssl, &GO_MAGIC[done],
                        (int)(sizeof(GO_MAGIC) - 1 - done));
        if (ret <= 0)
            r = tls_fail(t, ret, "writing to the source");
        else
            done += (size_t)ret;
    }
    if (r < 0) {
        hvi_tls_free(t);
        return r;
    }
    *out = t;
    return 0;
}

static int64_t io(struct hvi_tls *t, int ret, short *want, const char *what)
{
    if (ret > 0)
        return ret;
    int e = SSL_get_error(t->ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (want)
            *want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return -EAGAIN;
    }
    if (e == SSL_ERROR_ZERO_RETURN && what[0] == 'r')
        return 0;
    int r = tls_fail(t, ret, what);
    /* A read that ends without close_notify is the end of the stream as
     * the reader of plain sockets sees it. */
    return r == -ECONNABORTED && what[0] == 'r' ? 0 : r;
}

int64_t hvi_tls_write(struct hvi_tls *t, const void *buf, size_t len,
                      short *want)
{
    ERR_clear_error();
    int n = len > (1u << 30) ? 1 << 30 : (int)len;
    return io(t, ssl_write(t->ssl, buf, n), want, "writing");
}

int64_t hvi_tls_read(struct hvi_tls *t, void *buf, size_t len, short *want)
{
    ERR_clear_error();
    int n = len > (1u << 30) ? 1 << 30 : (int)len;
    return io(t, ssl_io(SSL_read, t->ssl, buf, n), want, "reading");
}

int hvi_tls_set_fd(struct hvi_tls *t, int fd)
{
    if (SSL_set_fd(t->ssl, fd) != 1)
        return hvi_error(-ENOMEM,
                         "TLS: cannot move the session to "
                         "descriptor %d",
                         fd);
    t->fd = fd;
    return 0;
}

bool hvi_tls_pending(struct hvi_tls *t)
{
    return SSL_pending(t->ssl) > 0;
}

void hvi_tls_free(struct hvi_tls *t)
{
    if (!t)
        return;
    if (t->ssl)
        SSL_free(t->ssl);
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    ERR_clear_error();
    free(t);
}
