/* Post-copy, the source (docs/MIGRATION.md, "Post-copy"). The VM is
 * paused for good and the destination's guest runs; this pushes the pages
 * of the plan in order, in runs of at most HVI_PC_RUN_PAGES, and reads the
 * destination's requests between runs (and while a write waits for room):
 * a requested page that has not gone yet is sent next, ahead of the push
 * order. A page goes once. Then POSTCOPY_DONE, and the destination's DONE
 * (or FAILED) ends it. */
#define _GNU_SOURCE
#include "par.h"
#include "postcopy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FIFO 4096u
/* Pushed runs are short and little is let queue in the socket, so that a
 * requested page waits behind at most a few pages: the send buffer is
 * cut to PC_SNDBUF during post-copy. */
#ifndef PC_PUSH_PAGES
#define PC_PUSH_PAGES 4u
#endif
#ifndef PC_SNDBUF
#define PC_SNDBUF (32 << 10)
#endif

/* TEST KNOB, never set by the library (0: no pause). White-box tests that
 * link the static library (tests/test_virtio_net_postcopy.c) set it so
 * that pushed pages arrive late and the destination meets missing pages:
 * after each pushed run the push pauses this many microseconds, serving
 * requests meanwhile (a requested page is never delayed by it). Read once
 * per post-copy by the sending thread; set it before hvc_vm_migrate_send.
 * (Declared in postcopy.h.) */
unsigned hvi_pc_test_push_pause_us;

struct pcs {
    struct hvi_pc_source *src;
    int pfd;                        /* the page channel, or -1 */
    struct hvi_tls *tls[2];         /* per descriptor, or NULL: plain */
    struct hvi_out o2;              /* requested pages on it */
    uint8_t rx[2][HVI_PC_MSG_SIZE]; /* per descriptor: main, channel */
    size_t rx_len[2];
    uint64_t fifo[FIFO]; /* requested guest-physical addresses */
    size_t head, tail;
    uint64_t left;
    bool done;
    bool serving;  /* in serve(): no second one from its own writes */
    uint8_t *cbuf; /* the channel's bytes, sent at once per batch */
    size_t clen;
    int remote_err;
    uint64_t remote_lost;
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static bool pending(struct pcs *c, size_t ri, uint64_t pg)
{
    return c->src->pending[ri][pg / 64] >> (pg % 64) & 1;
}

static int on_msg(struct pcs *c, const uint8_t *m)
{
    hvc_migrate_stats *st = c->src->st;
    if (hvi_get32(m + 20) != hvi_crc32c(0, m, 20) || hvi_get16(m + 2))
        return hvi_error(-EPROTO, "post-copy: a malformed message from the "
                                  "destination (CRC mismatch)");
    uint16_t kind = hvi_get16(m);
    uint32_t a = hvi_get32(m + 4), cc = hvi_get32(m + 16);
    uint64_t b = hvi_get64(m + 8);
    switch (kind) {
    case HVI_PC_REQUEST: {
        size_t ri = 0;
        while (ri < c->src->n &&
               !(b >= c->src->regs[ri]->gpa &&
                 b - c->src->regs[ri]->gpa < c->src->regs[ri]->len))
            ri++;
        if (ri == c->src->n || b % HVI_PAGE)
            return hvi_error(-EPROTO,
                             "post-copy: the destination asked for page "
                             "0x%" PRIx64 ", which is no guest page",
                             b);
        uint64_t pg = (b - c->src->regs[ri]->gpa) / HVI_PAGE;
        if (pending(c, ri, pg) && c->tail - c->head < FIFO)
            c->fifo[c->tail++ % FIFO] = b;
        return 0;
    }
    case HVI_PC_DONE:
        c->done = true;
        st->postcopy_fault_median_us = a;
        st->postcopy_fault_p99_us = cc;
        return 0;
    case HVI_PC_FAILED: {
        int32_t e = (int32_t)a;
        c->remote_err = e < 0 && e >= -4095 ? e : -EPROTO;
        c->remote_lost = b;
        return hvi_error(c->remote_err,
                         "the destination gave up post-copy (%s) with %" PRIu64
                         " pages never received",
                         hvc_strerror(c->remote_err), b);
    }
    default:
        return hvi_error(-EPROTO,
                         "post-copy: a message of unknown kind %u from the "
                         "destination",
                         kind);
    }
}

/* Reads what the destination sent on descriptor @p k (0: the
 * connection, 1: the page channel), without waiting. */
static int read_msgs(struct pcs *c, int k)
{
    int fd = k ? c->pfd : c->src->fd;
    uint8_t *rx = c->rx[k];
    for (;;) {
        size_t have = c->rx_len[k];
        ssize_t n;
        if (c->tls[k]) { /* a non-blocking socket */
            int64_t t = hvi_tls_read(c->tls[k], rx + have,
                                     HVI_PC_MSG_SIZE - have, NULL);
            if (t == -EAGAIN)
                return 0;
            if (t < 0) {
                char why[384];
                snprintf(why, sizeof(why), "%s", hvc_last_error());
                return hvi_error((int)t,
                                 "post-copy: reading from the "
                                 "destination: %s",
                                 why);
            }
            n = (ssize_t)t;
        } else {
            n = recv(fd, rx + have, HVI_PC_MSG_SIZE - have, MSG_DONTWAIT);
        }
        if (n < 0 && errno == ENOTSOCK)
            n = read(fd, rx + have, HVI_PC_MSG_SIZE - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return hvi_error(-errno,
                             "post-copy: reading from the "
                             "destination: %s",
                             hvc_strerror(-errno));
        if (n == 0)
            return hvi_error(-ECONNABORTED, "post-copy: the destination "
                                            "closed the connection");
        c->rx_len[k] += (size_t)n;
        if (c->rx_len[k] == HVI_PC_MSG_SIZE) {
            c->rx_len[k] = 0;
            int r = on_msg(c, rx);
            if (r < 0)
                return r;
        }
    }
}

static int serve(struct pcs *c);

/* Waits for descriptor @p out_fd to be writable (reading requests
 * meanwhile) or, with @p out_fd -1, for one batch of messages. */
static int wait_fd(struct pcs *c, int out_fd)
{
    for (;;) {
        /* what a TLS session decrypted already would never poll */
        bool held = false;
        for (int k = 0; k < 2; k++)
            if (c->tls[k] && hvi_tls_pending(c->tls[k])) {
                int r = read_msgs(c, k);
                if (r < 0)
                    return r;
                held = true;
            }
        if (held && out_fd < 0)
            return 0;
        struct pollfd p[2] = {
            {.fd = c->src->fd,
             .events = POLLIN | (out_fd == c->src->fd ? POLLOUT : 0)},
            {.fd = c->pfd,
             .events = POLLIN | (out_fd == c->pfd ? POLLOUT : 0)}};
        int r = poll(p, c->pfd >= 0 ? 2 : 1, held ? 0 : -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hvi_error(-errno, "post-copy: poll: %s",
                             hvc_strerror(-errno));
        bool got = held, ready = false;
        for (int k = 0; k < (c->pfd >= 0 ? 2 : 1); k++) {
            if (p[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                if ((r = read_msgs(c, k)) < 0)
                    return r;
                got = true;
            }
            /* a TLS write may wait for the peer's bytes too */
            if (p[k].fd == out_fd && (p[k].revents & (POLLOUT | POLLERR) ||
                                      (c->tls[k] && p[k].revents)))
                ready = true;
        }
        /* A request does not wait for the push: the channel is free. */
        if (got && c->pfd >= 0 && (r = serve(c)) < 0)
            return r;
        if (out_fd < 0 ? got : ready)
            return 0;
    }
}

static int64_t write_on(struct pcs *c, int fd, const void *buf, size_t len)
{
    struct hvi_tls *tls = c->tls[fd == c->src->fd ? 0 : 1];
    for (;;) {
        if (tls) { /* whole, or asked again with the same bytes */
            int64_t t = hvi_tls_write(tls, buf, len, NULL);
            if (t != -EAGAIN)
                return t;
            int r = wait_fd(c, fd);
            if (r < 0)
                return r;
            continue;
        }
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int r = wait_fd(c, fd);
        if (r < 0)
            return r;
    }
}

#define CBUF (64u << 10)

/* Sends what the channel holds: one write, so one wake-up on the other
 * side, per batch of requested pages. */
static int flush_channel(struct pcs *c)
{
    for (size_t done = 0; done < c->clen;) {
        int64_t n = write_on(c, c->pfd, c->cbuf + done, c->clen - done);
        if (n < 0)
            return (int)n;
        done += (size_t)n;
    }
    c->clen = 0;
    return 0;
}

static int64_t channel_write(void *opaque, const void *buf, size_t len)
{
    struct pcs *c = opaque;
    if (c->clen == CBUF) {
        int r = flush_channel(c);
        if (r < 0)
            return r;
    }
    size_t n = len < CBUF - c->clen ? len : CBUF - c->clen;
    memcpy(c->cbuf + c->clen, buf, n);
    c->clen += n;
    return (int64_t)n;
}

static int64_t pcs_write(void *opaque, const void *buf, size_t len)
{
    struct pcs *c = opaque;
    return write_on(c, c->src->fd, buf, len);
}

_Atomic uint32_t hvi_pc_test_delay_us;

/* Sends @p count pending pages of region @p ri from page @p pg. */
static int send_run(struct pcs *c, size_t ri, uint64_t pg, uint64_t count,
                    bool requested)
{
    uint32_t delay =
        atomic_load_explicit(&hvi_pc_test_delay_us, memory_order_relaxed);
    if (delay) { /* tests: a slow link */
        struct timespec t = {delay / 1000000u,
                             (long)(delay % 1000000u) * 1000L};
        nanosleep(&t, NULL);
    }
    struct hvi_out *o = requested && c->pfd >= 0 ? &c->o2 : c->src->o;
    /* Gone from the set before the writes: a request that comes while
     * they wait finds the page on its way already. */
    for (uint64_t i = pg; i < pg + count; i++)
        c->src->pending[ri][i / 64] &= ~(1ull << (i % 64));
    c->left -= count;
    const hvc_memory_region *reg = c->src->regs[ri];
    const uint8_t *base = reg->hva + pg * HVI_PAGE; /* paused: stable */
    for (uint64_t i = 0; i < count;) {
        bool zero = hvi_page_zero(base + i * HVI_PAGE);
        uint64_t j = i + 1;
        while (j < count && hvi_page_zero(base + j * HVI_PAGE) == zero)
            j++;
        const uint8_t *p = base + i * HVI_PAGE;
        uint32_t crc = zero ? 0 : hvi_crc32c(0, p, (j - i) * HVI_PAGE);
        int r = hvi_put_memory(o, reg->gpa + (pg + i) * HVI_PAGE, j - i,
                               zero ? NULL : p, crc);
        if (r < 0)
            return r;
        i = j;
    }
    if (requested)
        c->src->st->postcopy_pages_requested += count;
    else
        c->src->st->postcopy_pages_pushed += count;
    return 0;
}

/* Sends the requested pages that have not gone yet. */
static int serve(struct pcs *c)
{
    if (c->serving)
        return 0;
    c->serving = true;
    int r = 0;
    while (r == 0 && c->head != c->tail) {
        uint64_t gpa = c->fifo[c->head++ % FIFO];
        size_t i = 0;
        while (gpa - c->src->regs[i]->gpa >= c->src->regs[i]->len)
            i++; /* on_msg checked it is some region's */
        uint64_t p = (gpa - c->src->regs[i]->gpa) / HVI_PAGE;
        if (pending(c, i, p))
            r = send_run(c, i, p, 1, true);
    }
    if (r == 0 && c->pfd >= 0)
        r = flush_channel(c);
    c->serving = false;
    return r;
}

/* The next pending page at or after (*ri, *pg); false when none is. */
static bool next_pending(struct pcs *c, size_t *ri, uint64_t *pg)
{
    for (; *ri < c->src->n; (*ri)++, *pg = 0) {
        uint64_t pages = c->src->regs[*ri]->len / HVI_PAGE;
        const uint64_t *bm = c->src->pending[*ri];
        while (*pg < pages) {
            if (!bm[*pg / 64]) {
                *pg = (*pg / 64 + 1) * 64;
                continue;
            }
            if (bm[*pg / 64] >> (*pg % 64) & 1)
                return true;
            (*pg)++;
        }
    }
    return false;
}

/* The page channel: a socket pair whose other end goes to the
 * destination with the record that opens post-copy. */
static int open_channel(struct pcs *c)
{
    int fd = c->src->fd, domain = 0, sv[2] = {-1, -1};
    socklen_t dl = sizeof(domain);
    /* Over TCP: a connection of its own, named by the session, opened
     * once the destination was told to accept it. */
    bool connected = c->src->address && c->src->session;
    /* (a descriptor passed along would bypass TLS) */
    bool unix_sock =
        !connected && !c->tls[0] &&
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0 &&
        domain == AF_UNIX &&
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0;
    struct iovec iov = {.iov_base =
                            (void *)(connected   ? HVI_PC_CHANNEL_CONNECTED
                                     : unix_sock ? HVI_PC_CHANNEL
                                                 : HVI_PC_NO_CHANNEL),
                        .iov_len = 8};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (unix_sock) {
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &sv[1], sizeof(int));
    }
    ssize_t n;
    if (c->tls[0]) { /* (a write may go in parts) */
        int64_t w = 0;
        for (n = 0; n < 8 && (w = write_on(c, fd, (char *)iov.iov_base + n,
                                           8 - (size_t)n)) > 0;)
            n += (ssize_t)w;
        if (w < 0) {
            n = -1;
            errno = (int)-w;
        }
    } else {
        for (;;) {
            n = sendmsg(fd, &m, MSG_NOSIGNAL);
            if (n < 0 && errno == ENOTSOCK)
                n = write(fd, iov.iov_base, 8);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                poll(&p, 1, 100);
                continue;
            }
            break;
        }
    }
    if (n == 8 && connected) {
        int r = hvi_par_connect(c->src->address, c->src->tls_opts,
                                HVI_PAR_PAGE_CHANNEL, c->src->session,
                                HVI_PAR_ACCEPT_MS, &sv[0], &c->tls[1]);
        if (r == 0 && c->tls[1]) { /* as the connection: non-blocking */
            int fl = fcntl(sv[0], F_GETFL);
            if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0)
                r = hvi_error(-errno, "post-copy: the page channel: fcntl: %s",
                              hvc_strerror(-errno));
        }
        if (r < 0) {
            char why[512];
            snprintf(why, sizeof(why), "%s", hvc_last_error());
            return hvi_error(r, "post-copy: opening the page channel: %s", why);
        }
    }
    if (sv[1] >= 0)
        close(sv[1]);
    if (n == 8)
        c->src->st->postcopy_channel = connected ? 2 : unix_sock ? 1 : 0;
    if (n != 8) {
        if (sv[0] >= 0)
            close(sv[0]);
        hvi_tls_free(c->tls[1]);
        c->tls[1] = NULL;
        return hvi_error(n < 0 ? -errno : -EPIPE,
                         "post-copy: opening the page channel: %s",
                         n < 0 ? hvc_strerror(-errno) : "short write");
    }
    c->pfd = sv[0];
    if (c->pfd >= 0 && !(c->cbuf = malloc(CBUF))) {
        close(c->pfd);
        c->pfd = -1;
        return hvi_error(-ENOMEM, "out of memory");
    }
    if (c->pfd >= 0) {
        c->o2.fd = -1;
        c->o2.s.size = sizeof(c->o2.s);
        c->o2.s.write = channel_write;
        c->o2.s.opaque = c;
        c->o2.off = HVI_PC_CHANNEL_OFFSET;
        c->o2.crypt = c->src->o->crypt; /* this thread only */
    }
    return 0;
}

/* The test knob's pause after a pushed run: waits up to @p us for
 * requests from the destination, serving each at once. */
static int push_pause(struct pcs *c, unsigned us)
{
    uint64_t end = now_ns() + (uint64_t)us * 1000u;
    for (uint64_t t = now_ns(); t < end; t = now_ns()) {
        struct pollfd p[2] = {{.fd = c->src->fd, .events = POLLIN},
                              {.fd = c->pfd, .events = POLLIN}};
        int left_ms = (int)((end - t + 999999u) / 1000000u);
        for (int k = 0; k < 2; k++)
            if (c->tls[k] && hvi_tls_pending(c->tls[k]))
                left_ms = 0; /* decrypted already: read below */
        int r = poll(p, c->pfd >= 0 ? 2 : 1, left_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hvi_error(-errno, "post-copy: poll: %s",
                             hvc_strerror(-errno));
        for (int k = 0; r >= 0 && k < (c->pfd >= 0 ? 2 : 1); k++)
            if ((p[k].revents & (POLLIN | POLLHUP | POLLERR) ||
                 (c->tls[k] && hvi_tls_pending(c->tls[k]))) &&
                (r = read_msgs(c, k)) < 0)
                return r;
        if (r < 0)
            return r;
        if (c->head != c->tail && (r = serve(c)) < 0)
            return r;
    }
    return 0;
}

static int push(struct pcs *c)
{
    size_t ri = 0;
    uint64_t pg = 0;
    unsigned pause_us = hvi_pc_test_push_pause_us;
    while (c->left) {
        int r = read_msgs(c, 0);
        if (r == 0 && c->pfd >= 0)
            r = read_msgs(c, 1);
        if (r < 0)
            return r;
        if (c->head != c->tail) {
            if ((r = serve(c)) < 0)
                return r;
            continue;
        }
        if (!next_pending(c, &ri, &pg))
            break; /* cannot happen while left > 0 */
        uint64_t pages = c->src->regs[ri]->len / HVI_PAGE, n = 1;
        while (n < PC_PUSH_PAGES && pg + n < pages && pending(c, ri, pg + n))
            n++;
        if ((r = send_run(c, ri, pg, n, false)) < 0)
            return r;
        pg += n;
        if (pause_us && c->left && (r = push_pause(c, pause_us)) < 0)
            return r;
    }
    return 0;
}

int hvi_pc_send(struct hvi_pc_source *src)
{
    struct pcs *c = calloc(1, sizeof(*c));
    if (!c)
        return hvi_error(-ENOMEM, "out of memory");
    c->src = src;
    c->tls[0] = src->tls;
    hvc_migrate_stats *st = src->st;
    for (size_t i = 0; i < src->n; i++)
        for (uint64_t w = 0; w < (src->regs[i]->len / HVI_PAGE + 63) / 64; w++)
            c->left += (uint64_t)__builtin_popcountll(src->pending[i][w]);
    uint64_t t0 = now_ns(), before = src->o->off;
    src->o->s.write = pcs_write;
    src->o->s.opaque = c;
    int sndbuf = 0, small = PC_SNDBUF;
    socklen_t sl = sizeof(sndbuf);
    bool cut =
        small > 0 &&
        getsockopt(src->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) == 0 &&
        setsockopt(src->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0;
    c->pfd = -1;
    int r = open_channel(c);
    if (r == 0)
        r = push(c);
    if (r == 0 && c->pfd >= 0) {
        /* The channel ends first: the destination reads it to its end
         * before it checks the totals. */
        uint8_t p[16] = {0};
        hvi_put64(p, st->postcopy_pages_requested);
        r = hvi_put_section(&c->o2, HVI_POSTCOPY_DONE, 1, p, sizeof(p));
        if (r == 0)
            r = flush_channel(c);
    }
    if (r == 0) {
        uint8_t p[16] = {0};
        hvi_put64(p, st->postcopy_pages_pushed + st->postcopy_pages_requested);
        r = hvi_put_section(src->o, HVI_POSTCOPY_DONE, 0, p, sizeof(p));
    }
    while (r == 0 && !c->done)
        r = wait_fd(c, -1);
    if (cut) /* the kernel reported twice what was set */
        setsockopt(src->fd, SOL_SOCKET, SO_SNDBUF, &(int){sndbuf / 2},
                   sizeof(int));
    st->postcopy_bytes = src->o->off - before +
                         (c->pfd >= 0 ? c->o2.off - HVI_PC_CHANNEL_OFFSET : 0);
    st->postcopy_ms = (now_ns() - t0) / 1000000u;
    if (r < 0) {
        char why[384];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        uint64_t lost = c->remote_err ? c->remote_lost : c->left;
        st->postcopy_pages_lost = lost;
        r = hvi_error(r,
                      "post-copy migration failed after the switchover: %s; "
                      "%" PRIu64 " of %" PRIu64
                      " pages never reached the destination, so the guest "
                      "is lost (it stays paused here)",
                      why, st->postcopy_pages_lost, st->postcopy_pages);
    }
    if (c->pfd >= 0)
        close(c->pfd);
    hvi_tls_free(c->tls[1]); /* the connection's is the caller's */
    free(c->o2.scratch);     /* its cipher is the stream's */
    free(c->cbuf);
    free(c);
    return r;
}
