/* The extra connections of a live migration (docs/MIGRATION.md, "Parallel
 * connections"): the sender connects to the receiver's address again,
 * handshakes TLS when the main connection did, and says hello with the
 * session id the main connection carried (PARALLEL) and its index; the
 * receiver accepts on its listening socket and answers. A connection
 * that is not one of this migration's is refused and waited past, so a
 * stranger cannot stop the migration, only delay it by its hello's time
 * limit. */
#define _GNU_SOURCE
#include "par.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

void hvi_totals_encode(uint8_t p[HVI_CONN_TOTALS],
                       const struct hvi_conn_totals *t)
{
    hvi_put64(p, t->records);
    hvi_put64(p + 8, t->raw_pages);
    hvi_put64(p + 16, t->zero_pages);
    hvi_put64(p + 24, t->bytes);
    hvi_put32(p + 32, t->last_round);
    hvi_put32(p + 36, 0);
}

void hvi_totals_decode(const uint8_t p[HVI_CONN_TOTALS],
                       struct hvi_conn_totals *t)
{
    t->records = hvi_get64(p);
    t->raw_pages = hvi_get64(p + 8);
    t->zero_pages = hvi_get64(p + 16);
    t->bytes = hvi_get64(p + 24);
    t->last_round = hvi_get32(p + 32);
}

int hvi_conn_write_all(int fd, struct hvi_tls *tls, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        int64_t n;
        if (tls) {
            short want = POLLOUT;
            n = hvi_tls_write(tls, p, len, &want);
            if (n == -EAGAIN) {
                struct pollfd f = {.fd = fd, .events = want};
                poll(&f, 1, 100);
                continue;
            }
            if (n < 0)
                return (int)n;
        } else {
            n = send(fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return -errno;
        }
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int hvi_conn_read_all(int fd, struct hvi_tls *tls, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        int64_t n;
        if (tls) {
            short want = POLLIN;
            n = hvi_tls_read(tls, p, len, &want);
            if (n == -EAGAIN) {
                struct pollfd f = {.fd = fd, .events = want};
                poll(&f, 1, 100);
                continue;
            }
            if (n < 0)
                return (int)n;
        } else {
            n = recv(fd, p, len, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT
                                                               : -errno;
        }
        if (n == 0)
            return -ECONNABORTED;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void set_timeout(int fd, uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void hello_encode(uint8_t h[HVI_HELLO_SIZE], uint32_t index,
                         const uint8_t session[16])
{
    memset(h, 0, HVI_HELLO_SIZE);
    memcpy(h, HVI_HELLO_MAGIC, 8);
    hvi_put32(h + 8, index);
    memcpy(h + 16, session, 16);
    hvi_put32(h + 36, hvi_crc32c(0, h, 36));
}

static void answer_encode(uint8_t a[HVI_HELLO_ACK_SIZE], int status)
{
    memcpy(a, HVI_HELLO_ACK_MAGIC, 8);
    hvi_put32(a + 8, (uint32_t)status);
    hvi_put32(a + 12, hvi_crc32c(0, a, 12));
}

int hvi_par_connect(const char *addr, const hvc_migrate_tls *t, uint32_t index,
                    const uint8_t session[16], uint32_t timeout_ms, int *out_fd,
                    struct hvi_tls **out_tls)
{
    const char *what =
        index == HVI_PAR_PAGE_CHANNEL ? "post-copy's page channel" : NULL;
    char name[64];
    if (!what) {
        snprintf(name, sizeof(name), "memory connection %u", index);
        what = name;
    }
    int fd = hvc_migrate_connect(addr);
    if (fd < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        return hvi_error(fd, "%s: %s", what, why);
    }
    struct hvi_tls *tls = NULL;
    int r = 0;
    if (t && (r = hvi_tls_connect(fd, t, timeout_ms, &tls)) < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        close(fd);
        return hvi_error(r, "%s: %s", what, why);
    }
    set_timeout(fd, timeout_ms);
    uint8_t h[HVI_HELLO_SIZE], a[HVI_HELLO_ACK_SIZE];
    hello_encode(h, index, session);
    if ((r = hvi_conn_write_all(fd, tls, h, sizeof(h))) == 0)
        r = hvi_conn_read_all(fd, tls, a, sizeof(a));
    if (r < 0) {
        hvi_tls_free(tls);
        close(fd);
        return hvi_error(r, "%s: the destination did not answer its hello: %s",
                         what, r == -ETIMEDOUT ? "timed out" : hvc_strerror(r));
    }
    int32_t status = (int32_t)hvi_get32(a + 8);
    if (memcmp(a, HVI_HELLO_ACK_MAGIC, 8) != 0 ||
        hvi_get32(a + 12) != hvi_crc32c(0, a, 12) || status > 0 ||
        status < -4095)
        r = hvi_error(-EPROTO, "%s: the destination's answer is malformed",
                      what);
    else if (status < 0)
        r = hvi_error(status, "%s: the destination refused it: %s", what,
                      hvc_strerror(status));
    if (r < 0) {
        hvi_tls_free(tls);
        close(fd);
        return r;
    }
    set_timeout(fd, 0);
    *out_fd = fd;
    *out_tls = tls;
    return 0;
}

/* Refuses one accepted connection: the answer (when it can go), a line
 * in the log, the descriptor closed. */
static void refuse(int fd, struct hvi_tls *tls, int status, const char *why)
{
    uint8_t a[HVI_HELLO_ACK_SIZE];
    answer_encode(a, status);
    hvi_conn_write_all(fd, tls, a, sizeof(a));
    hvi_log(HVC_LOG_WARN,
            "incoming migration: refused a connection that is not one of "
            "this migration's: %s",
            why);
    hvi_tls_free(tls);
    close(fd);
}

static _Thread_local int watch_fd = -1;

void hvi_par_accept_watch(int main_fd)
{
    watch_fd = main_fd;
}

int hvi_par_accept(int listen_fd, const hvc_migrate_tls *t,
                   const uint8_t session[16], uint32_t lo, uint32_t hi,
                   uint32_t *taken, uint32_t timeout_ms, int *out_fd,
                   struct hvi_tls **out_tls, uint32_t *out_index)
{
    uint64_t end = now_ms() + timeout_ms;
    uint32_t refused = 0;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= end)
            return hvi_error(-ETIMEDOUT,
                             "incoming migration: the source's %s did not "
                             "come within %u ms (%u other connections "
                             "refused)",
                             lo == HVI_PAR_PAGE_CHANNEL
                                 ? "page channel"
                                 : "extra memory connections",
                             timeout_ms, refused);
        struct pollfd p[2] = {{.fd = listen_fd, .events = POLLIN},
                              {.fd = watch_fd, .events = POLLIN}};
        int n = poll(p, watch_fd >= 0 ? 2 : 1, (int)(end - now));
        if (n < 0 && errno != EINTR)
            return hvi_error(-errno,
                             "incoming migration: waiting for the "
                             "source's connections: %s",
                             hvc_strerror(-errno));
        if (n <= 0)
            continue;
        if (watch_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            return hvi_error(-ECONNABORTED,
                             "incoming migration: the source gave up while "
                             "opening its %s",
                             lo == HVI_PAR_PAGE_CHANNEL
                                 ? "page channel"
                                 : "extra memory connections");
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            return hvi_error(-errno,
                             "incoming migration: accepting the source's "
                             "connections: %s",
                             hvc_strerror(-errno));
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && (fl & O_NONBLOCK))
            fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        set_timeout(fd, HVI_PAR_HELLO_MS);
        refused++;
        struct hvi_tls *tls = NULL;
        if (t && hvi_tls_accept(fd, t, &tls) < 0) {
            char why[600];
            snprintf(why, sizeof(why), "TLS: %s", hvc_last_error());
            refuse(fd, NULL, -EPERM, why);
            continue;
        }
        uint8_t h[HVI_HELLO_SIZE];
        int r = hvi_conn_read_all(fd, tls, h, sizeof(h));
        if (r < 0) {
            refuse(fd, tls, -EPERM,
                   r == -ETIMEDOUT ? "no hello in time" : "no hello");
            continue;
        }
        uint32_t idx = hvi_get32(h + 8);
        char why[160];
        if (memcmp(h, HVI_HELLO_MAGIC, 8) != 0) {
            snprintf(why, sizeof(why), "it began with \"%s\", not a hello",
                     HVI_QUOTE_N((const char *)h, 8));
            refuse(fd, tls, -EPERM, why);
            continue;
        }
        if (hvi_get32(h + 36) != hvi_crc32c(0, h, 36) || hvi_get32(h + 12) ||
            hvi_get32(h + 32)) {
            refuse(fd, tls, -EPERM, "a malformed hello");
            continue;
        }
        if (memcmp(h + 16, session, 16) != 0) {
            snprintf(why, sizeof(why),
                     "its hello (index %u) names another session", idx);
            refuse(fd, tls, -EPERM, why);
            continue;
        }
        if (idx < lo || idx > hi ||
            (taken && idx < 32 && (*taken >> idx & 1))) {
            snprintf(why, sizeof(why),
                     "its hello has index %u, not one still expected", idx);
            refuse(fd, tls, -EPERM, why);
            continue;
        }
        uint8_t a[HVI_HELLO_ACK_SIZE];
        answer_encode(a, 0);
        if ((r = hvi_conn_write_all(fd, tls, a, sizeof(a))) < 0) {
            hvi_tls_free(tls);
            close(fd);
            continue;
        }
        refused--;
        set_timeout(fd, 0);
        if (idx != HVI_PAR_PAGE_CHANNEL) {
            /* bounds what waits on this connection when the VM pauses */
            int buf = 1 << 20;
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
        }
        if (taken && idx < 32)
            *taken |= 1u << idx;
        *out_fd = fd;
        *out_tls = tls;
        *out_index = idx;
        return 0;
    }
}
