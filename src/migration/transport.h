/* Live migration's transport, library-internal: addresses (transport.c),
 * TLS over OpenSSL's libssl, loaded on first use (tls.c), the bandwidth
 * limit and auto-converge (throttle.c). live.c hooks them in. */
#ifndef HVCORE_MIGRATION_TRANSPORT_H
#define HVCORE_MIGRATION_TRANSPORT_H

#include "../core/internal.h"

#include <hvcore/migration.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* transport.c: a parsed "unix:PATH" or "tcp:HOST:PORT" (port 0 only when
 * @listening). -EINVAL with the escaped address in the message. */
struct hvi_migrate_addr {
    bool unix_socket;
    char path[108];
    char host[256];
    uint16_t port;
};
int hvi_migrate_parse(const char *addr, bool listening,
                      struct hvi_migrate_addr *out);

/* tls.c. A TLS session over a connected socket. The sender is the
 * client, the receiver the server; once the server accepted the client
 * (and its certificate, when it asks for one) it writes the 8 bytes
 * HVCMTLS1, which the client waits for before sending anything, so that a
 * refused certificate is reported as such on both sides. */
struct hvi_tls;
/* Checks the options (-EINVAL naming the field); @server: the receiver's
 * side, which needs a certificate and key. */
int hvi_tls_check(const hvc_migrate_tls *t, bool server);
/* Handshakes on the blocking socket @fd; waits at most @timeout_ms
 * (0: no limit) for the server's go. */
int hvi_tls_connect(int fd, const hvc_migrate_tls *t, uint32_t timeout_ms,
                    struct hvi_tls **out);
int hvi_tls_accept(int fd, const hvc_migrate_tls *t, struct hvi_tls **out);
/* Bytes moved (> 0), 0 at the peer's orderly end (read only), -EAGAIN
 * with *want set to POLLIN or POLLOUT when a non-blocking socket must
 * wait, or a negative errno with a message. */
int64_t hvi_tls_write(struct hvi_tls *t, const void *buf, size_t len,
                      short *want);
int64_t hvi_tls_read(struct hvi_tls *t, void *buf, size_t len, short *want);
/* Goes on over @p fd, a dup() of the session's socket (the caller may
 * close the first); what the session holds stays. */
int hvi_tls_set_fd(struct hvi_tls *t, int fd);
/* Bytes already decrypted and waiting in the session. */
bool hvi_tls_pending(struct hvi_tls *t);
void hvi_tls_free(struct hvi_tls *t);

/* throttle.c: the bandwidth limit (a token bucket the write path asks
 * how long to wait) and auto-converge (a thread that pauses the VM for a
 * share of every 20 ms slice). */
struct hvi_pacer {
    uint64_t bps;      /* 0: no limit */
    uint64_t start_ns; /* of the current measure */
    uint64_t sent;     /* bytes since start_ns */
};
void hvi_pacer_init(struct hvi_pacer *p, uint32_t mib_per_s, uint64_t now);
/* Records @bytes sent; how many ns to wait before sending more (0: go). */
uint64_t hvi_pacer_account(struct hvi_pacer *p, uint64_t bytes, uint64_t now);

struct hvi_throttle {
    hvc_vm *vm;
    pthread_t thread;
    bool running;
    _Atomic uint32_t percent; /* share of each slice the VM is paused */
    _Atomic int stop;
    _Atomic int error; /* the first pause or resume failure */
};
/* Starts the thread at @percent (1..99), or sets the new share. */
int hvi_throttle_set(struct hvi_throttle *t, hvc_vm *vm, uint32_t percent);
/* Stops the thread, with the VM running; its error, if any. */
int hvi_throttle_stop(struct hvi_throttle *t);

#endif
