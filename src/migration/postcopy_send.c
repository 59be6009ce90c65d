/* Post-copy, the source (docs/MIGRATION.md, "Post-copy"). The VM is
 * paused for good and the destination's guest runs; this pushes the pages
 * of the plan in order, in runs of at most HVI_PC_RUN_PAGES, and reads the
 * destination's requests between runs (and while a write waits for room):
 * a requested page that has not gone yet is sent next, ahead of the push
 * order. A page goes once. Then POSTCOPY_DONE, and the destination's DONE
 * (or FAILED) ends it. */
#define _GNU_SOURCE
#include "postcopy.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FIFO 4096u

struct pcs {
    struct hvi_pc_source *src;
    uint8_t rx[HVI_PC_MSG_SIZE];
    size_t rx_len;
    uint64_t fifo[FIFO]; /* requested guest-physical addresses */
    size_t head, tail;
    uint64_t left;
    bool done;
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

/* Reads what the destination sent, without waiting. */
static int read_msgs(struct pcs *c)
{
    for (;;) {
        ssize_t n = recv(c->src->fd, c->rx + c->rx_len,
                         sizeof(c->rx) - c->rx_len, MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = read(c->src->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return hvi_error(-errno, "post-copy: reading from the "
                                     "destination: %s",
                             hvc_strerror(-errno));
        if (n == 0)
            return hvi_error(-ECONNABORTED, "post-copy: the destination "
                                            "closed the connection");
        c->rx_len += (size_t)n;
        if (c->rx_len == sizeof(c->rx)) {
            c->rx_len = 0;
            int r = on_msg(c, c->rx);
            if (r < 0)
                return r;
        }
    }
}

/* Waits for the connection to be writable (reading requests meanwhile) or,
 * with @p out false, for one batch of messages. */
static int wait_fd(struct pcs *c, bool out)
{
    for (;;) {
        struct pollfd p = {.fd = c->src->fd,
                           .events = POLLIN | (out ? POLLOUT : 0)};
        int r = poll(&p, 1, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hvi_error(-errno, "post-copy: poll: %s",
                             hvc_strerror(-errno));
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            if ((r = read_msgs(c)) < 0)
                return r;
            if (!out)
                return 0;
        }
        if (out && (p.revents & (POLLOUT | POLLERR | POLLHUP)))
            return 0;
    }
}

static int64_t pcs_write(void *opaque, const void *buf, size_t len)
{
    struct pcs *c = opaque;
    for (;;) {
        ssize_t n = send(c->src->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = write(c->src->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int r = wait_fd(c, true);
        if (r < 0)
            return r;
    }
}

/* Sends @p count pending pages of region @p ri from page @p pg. */
static int send_run(struct pcs *c, size_t ri, uint64_t pg, uint64_t count,
                    bool requested)
{
    const hvc_memory_region *reg = c->src->regs[ri];
    const uint8_t *base = reg->hva + pg * HVI_PAGE; /* paused: stable */
    for (uint64_t i = 0; i < count;) {
        bool zero = hvi_page_zero(base + i * HVI_PAGE);
        uint64_t j = i + 1;
        while (j < count && hvi_page_zero(base + j * HVI_PAGE) == zero)
            j++;
        const uint8_t *p = base + i * HVI_PAGE;
        uint32_t crc = zero ? 0 : hvi_crc32c(0, p, (j - i) * HVI_PAGE);
        int r = hvi_put_memory(c->src->o, reg->gpa + (pg + i) * HVI_PAGE,
                               j - i, zero ? NULL : p, crc);
        if (r < 0)
            return r;
        i = j;
    }
    for (uint64_t i = pg; i < pg + count; i++)
        c->src->pending[ri][i / 64] &= ~(1ull << (i % 64));
    c->left -= count;
    if (requested)
        c->src->st->postcopy_pages_requested += count;
    else
        c->src->st->postcopy_pages_pushed += count;
    return 0;
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

static int push(struct pcs *c)
{
    size_t ri = 0;
    uint64_t pg = 0;
    while (c->left) {
        int r = read_msgs(c);
        if (r < 0)
            return r;
        if (c->head != c->tail) {
            uint64_t gpa = c->fifo[c->head++ % FIFO];
            size_t i = 0;
            while (gpa - c->src->regs[i]->gpa >= c->src->regs[i]->len)
                i++; /* on_msg checked it is some region's */
            uint64_t p = (gpa - c->src->regs[i]->gpa) / HVI_PAGE;
            if (pending(c, i, p) && (r = send_run(c, i, p, 1, true)) < 0)
                return r;
            continue;
        }
        if (!next_pending(c, &ri, &pg))
            break; /* cannot happen while left > 0 */
        uint64_t pages = c->src->regs[ri]->len / HVI_PAGE, n = 1;
        while (n < HVI_PC_RUN_PAGES && pg + n < pages && pending(c, ri, pg + n))
            n++;
        if ((r = send_run(c, ri, pg, n, false)) < 0)
            return r;
        pg += n;
    }
    return 0;
}

int hvi_pc_send(struct hvi_pc_source *src)
{
    struct pcs *c = calloc(1, sizeof(*c));
    if (!c)
        return hvi_error(-ENOMEM, "out of memory");
    c->src = src;
    hvc_migrate_stats *st = src->st;
    for (size_t i = 0; i < src->n; i++)
        for (uint64_t w = 0; w < (src->regs[i]->len / HVI_PAGE + 63) / 64; w++)
            c->left += (uint64_t)__builtin_popcountll(src->pending[i][w]);
    uint64_t t0 = now_ns(), before = src->o->off;
    src->o->s.write = pcs_write;
    src->o->s.opaque = c;
    int r = push(c);
    if (r == 0) {
        uint8_t p[16] = {0};
        hvi_put64(p, st->postcopy_pages_pushed + st->postcopy_pages_requested);
        r = hvi_put_section(src->o, HVI_POSTCOPY_DONE, 0, p, sizeof(p));
    }
    while (r == 0 && !c->done)
        r = wait_fd(c, false);
    st->postcopy_bytes = src->o->off - before;
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
    free(c);
    return r;
}
