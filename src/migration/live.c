/* Live migration, pre-copy (docs/MIGRATION.md, "Live migration"): the
 * stream of save.c written while the guest runs. Dirty tracking starts
 * clean before anything is sent; the first pass sends what may hold data
 * (never-written memory is skipped, the destination's is zero already);
 * then each round fetches and clears the dirty log and sends those pages
 * again, until what remains fits the downtime budget at the throughput
 * the last round measured. Then the VM is paused, the last dirty pages
 * and the state sections follow, and the destination's acknowledgement
 * decides: the source stays paused for good, or resumes.
 *
 * Pages are copied out of guest memory before their CRC is taken: the
 * guest may write them at any time, and a run's CRC must match the bytes
 * that were sent. A page written after its copy is in the next fetch. */
#define _GNU_SOURCE
#include "par.h"
#include "postcopy.h"
#include "stream.h"
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_DOWNTIME_MS 10u
#define DEFAULT_ROUNDS 30u
/* A rest this small goes in the pause without more rounds. */
#define SMALL_REST_PAGES 64u

/* Auto-converge: the first throttle, the step, the most. */
#define THROTTLE_FIRST 20u
#define THROTTLE_STEP 10u
#define THROTTLE_MAX 99u

struct live {
    hvc_vm *vm;
    int fd;
    struct hvi_out o;
    hvc_migrate_options opts;
    hvc_migrate_stats st;
    uint64_t t0, deadline; /* ns, CLOCK_MONOTONIC; deadline 0: none */
    bool final;            /* the whole stream is out: no cancel any more */
    bool to_file;          /* a live snapshot: no destination, no ack */
    bool postcopy;         /* the switchover is a post-copy one */
    bool switched;         /* the destination took the guest */
    int remote_err;        /* the destination refused before the end */
    char remote_why[512];
    hvc_memory_region **regs;
    size_t n;
    uint64_t **pending; /* per region: pages dirtied and not yet sent */
    uint64_t *fetched;  /* scratch for one region's fetch */
    size_t fetched_bytes;
    bool *tracked;
    uint8_t *copy; /* one run's pages, copied out of the guest */
    uint64_t max_run;
    uint64_t pages;          /* pages sent in the current phase */
    struct hvi_tls *tls;     /* NULL: plain */
    int fd_flags;            /* fcntl flags to put back (TLS) */
    bool paused;             /* the switchover: no bandwidth limit */
    struct hvi_pacer pacer;  /* the bandwidth limit */
    struct hvi_throttle thr; /* auto-converge */
    struct hvi_par *par;     /* parallel connections (par_send.c), or NULL */
    uint32_t round;          /* of the pages being sent (1: first pass) */
};

static int wait_ack(struct live *l, const char *when);

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The stream's write callback: polls so that a cancel or the timeout is
 * seen while the receiver is slow, and never raises SIGPIPE on a socket. */
static int64_t live_write(void *opaque, const void *buf, size_t len)
{
    struct live *l = opaque;
    for (;;) {
        if (!l->final && atomic_load(&l->vm->migrate_cancel))
            return -ECANCELED;
        if (!l->final && l->deadline && now_ns() > l->deadline)
            return -ETIMEDOUT;
        uint64_t wait =
            l->paused ? 0 : hvi_pacer_account(&l->pacer, 0, now_ns());
        if (wait) { /* the bandwidth limit: in slices, to see a cancel */
            struct timespec t = {0,
                                 (long)(wait < 50000000u ? wait : 50000000u)};
            nanosleep(&t, NULL);
            continue;
        }
        /* Under a limit, 20 ms worth at a time: a socket buffer of
         * megabytes would otherwise take a burst the limit only sees
         * after the fact. */
        uint64_t cap = l->pacer.bps / 50 > 65536 ? l->pacer.bps / 50 : 65536;
        if (!l->paused && l->pacer.bps && len > cap)
            len = cap;
        /* a file is always ready, and has no destination to listen to */
        struct pollfd p = {.fd = l->fd,
                           .events = l->to_file ? POLLOUT : POLLOUT | POLLIN};
        int r = poll(&p, 1, 50);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        if (p.revents & POLLIN) {
            /* The destination speaks only to answer: it refused. */
            r = wait_ack(l, "before the end of the stream");
            l->remote_err = r < 0 ? r : -EPROTO;
            snprintf(l->remote_why, sizeof(l->remote_why), "%s",
                     r < 0 ? hvc_last_error()
                           : "the destination acknowledged an unfinished "
                             "stream");
            return l->remote_err;
        }
        if (l->tls) {
            short want;
            int64_t n = hvi_tls_write(l->tls, buf, len, &want);
            if (n == -EAGAIN)
                continue;
            if (n > 0 && !l->paused)
                hvi_pacer_account(&l->pacer, (uint64_t)n, now_ns());
            return n;
        }
        ssize_t n = send(l->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = write(l->fd, buf, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n > 0 && !l->paused)
            hvi_pacer_account(&l->pacer, (uint64_t)n, now_ns());
        return n < 0 ? -errno : n;
    }
}

/* Sends @p count pages (at most max_run) of @p reg from page @p pg:
 * copied out first, then cut into raw and zero runs. */
static int send_pages(struct live *l, const hvc_memory_region *reg, uint64_t pg,
                      uint64_t count)
{
    if (l->par) { /* queued for the round's workers */
        l->pages += count;
        return hvi_par_add(l->par, reg, pg, count);
    }
    memcpy(l->copy, reg->hva + pg * HVI_PAGE, count * HVI_PAGE);
    for (uint64_t i = 0; i < count;) {
        const uint8_t *p = l->copy + i * HVI_PAGE;
        bool zero = hvi_page_zero(p);
        uint64_t j = i + 1;
        while (j < count && hvi_page_zero(l->copy + j * HVI_PAGE) == zero)
            j++;
        uint32_t crc = zero ? 0 : hvi_crc32c(0, p, (j - i) * HVI_PAGE);
        int r = hvi_put_memory(&l->o, reg->gpa + (pg + i) * HVI_PAGE, j - i,
                               zero ? NULL : p, crc);
        if (r < 0)
            return r;
        i = j;
    }
    l->pages += count;
    return 0;
}

/* The first pass: every extent of every region that may hold data. */
static int send_all(struct live *l)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < l->n; i++) {
        const hvc_memory_region *reg = l->regs[i];
        struct hvi_os_memory_walk *w;
        if ((r = hvi_memory_walk_open(reg, &w)) < 0)
            break;
        uint64_t off = 0;
        while (r == 0 && off < reg->len) {
            uint64_t start, end;
            if ((r = hvi_memory_next_data(w, off, &start, &end)) < 0 ||
                start >= reg->len)
                break;
            for (uint64_t pg = start / HVI_PAGE;
                 r == 0 && pg < end / HVI_PAGE;) {
                uint64_t c = end / HVI_PAGE - pg;
                if (c > l->max_run)
                    c = l->max_run;
                r = send_pages(l, reg, pg, c);
                pg += c;
            }
            off = end;
        }
        hvi_memory_walk_close(w);
    }
    return r == 0 && l->par ? hvi_par_run(l->par, l->round) : r;
}

/* Fetches every region's dirty log into the pending sets; *count: how
 * many pages are pending in all. */
static int fetch(struct live *l, uint64_t *count)
{
    uint64_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
        size_t bytes = hvc_memory_dirty_bitmap_size(l->regs[i]);
        int r = hvc_memory_dirty_fetch(l->regs[i], l->fetched, l->fetched_bytes,
                                       NULL);
        if (r < 0)
            return r;
        for (size_t w = 0; w < bytes / 8; w++) {
            l->pending[i][w] |= l->fetched[w];
            total += (uint64_t)__builtin_popcountll(l->pending[i][w]);
        }
    }
    *count = total;
    return 0;
}

/* Sends the pending pages, in runs of contiguous pages. */
static int send_pending(struct live *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const hvc_memory_region *reg = l->regs[i];
        uint64_t pages = reg->len / HVI_PAGE, *bm = l->pending[i];
        for (uint64_t pg = 0; pg < pages;) {
            if (!bm[pg / 64]) {
                pg = (pg / 64 + 1) * 64;
                continue;
            }
            if (!(bm[pg / 64] >> (pg % 64) & 1)) {
                pg++;
                continue;
            }
            uint64_t c = 0;
            while (pg + c < pages && c < l->max_run &&
                   (bm[(pg + c) / 64] >> ((pg + c) % 64) & 1)) {
                bm[(pg + c) / 64] &= ~(1ull << ((pg + c) % 64));
                c++;
            }
            int r = send_pages(l, reg, pg, c);
            if (r < 0)
                return r;
            pg += c;
        }
    }
    return l->par ? hvi_par_run(l->par, l->round) : 0;
}

static int start_tracking(struct live *l)
{
    size_t most = 0;
    for (size_t i = 0; i < l->n; i++) {
        size_t b = hvc_memory_dirty_bitmap_size(l->regs[i]);
        most = b > most ? b : most;
        if (!(l->pending[i] = calloc(1, b + 8)))
            return hvi_error(-ENOMEM, "out of memory");
    }
    l->fetched_bytes = most;
    if (!(l->fetched = calloc(1, most + 8)))
        return hvi_error(-ENOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++) {
        if (l->regs[i]->flags & HVC_MEMORY_READONLY)
            continue;
        hvc_dirty_options d = HVC_DIRTY_OPTIONS_INIT;
        d.mode = HVC_DIRTY_BITMAP; /* the ring stops no vCPU when full */
        d.flags = HVC_DIRTY_START_CLEAN;
        int r = hvc_memory_dirty_start(l->regs[i], &d);
        if (r == -ENOTSUP) {
            d.mode = HVC_DIRTY_AUTO;
            r = hvc_memory_dirty_start(l->regs[i], &d);
        }
        if (r < 0)
            return r;
        l->tracked[i] = true;
        l->st.dirty_mode = hvc_memory_dirty_mode(l->regs[i]);
    }
    return 0;
}

static void stop_tracking(struct live *l)
{
    for (size_t i = 0; l->tracked && i < l->n; i++)
        if (l->tracked[i])
            hvc_memory_dirty_stop(l->regs[i]);
}

static int report(struct live *l)
{
    l->st.total_ms = (now_ns() - l->t0) / 1000000u;
    if (!l->opts.progress)
        return 0;
    int r = l->opts.progress(l->opts.opaque, &l->st);
    if (r < 0)
        return hvi_error(r < -4095 ? -EINVAL : r,
                         "the migration was stopped by its progress "
                         "callback");
    return 0;
}

/* Reads the destination's acknowledgement: 0, or why not. */
static int wait_ack(struct live *l, const char *when)
{
    uint8_t a[HVI_ACK_SIZE];
    size_t got = 0;
    while (got < sizeof(a)) {
        ssize_t n;
        if (l->tls) {
            short want = POLLIN;
            int64_t t = hvi_tls_read(l->tls, a + got, sizeof(a) - got, &want);
            if (t == -EAGAIN) {
                struct pollfd p = {.fd = l->fd, .events = want};
                poll(&p, 1, -1);
                continue;
            }
            if (t < 0) {
                char why[512];
                snprintf(why, sizeof(why), "%s", hvc_last_error());
                return hvi_error((int)t,
                                 "the connection to the destination failed "
                                 "%s: %s",
                                 when, why);
            }
            n = (ssize_t)t;
        } else {
            n = read(l->fd, a + got, sizeof(a) - got);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hvi_error(-errno,
                             "the connection to the destination failed %s: "
                             "%s",
                             when, hvc_strerror(-errno));
        if (n == 0)
            return hvi_error(-ECONNABORTED,
                             "the destination closed the connection %s, "
                             "without acknowledging it",
                             when);
        got += (size_t)n;
    }
    if (memcmp(a, HVI_ACK_MAGIC, 8) != 0 ||
        hvi_get32(a + 12) != hvi_crc32c(0, a, 12))
        return hvi_error(-EPROTO, "the destination's acknowledgement is "
                                  "malformed");
    int32_t status = (int32_t)hvi_get32(a + 8);
    if (status > 0 || status < -4095)
        return hvi_error(-EPROTO,
                         "the destination's acknowledgement has "
                         "status %d",
                         status);
    if (status < 0)
        return hvi_error(status, "the destination refused the stream: %s",
                         hvc_strerror(status));
    return 0;
}

static int check_options(struct live *l, const hvc_migrate_options *in)
{
    hvc_migrate_options d = HVC_MIGRATE_OPTIONS_INIT;
    l->opts = d;
    int r;
    if (in && (r = hvi_copy_options(&l->opts, sizeof(l->opts), in,
                                    offsetof(hvc_migrate_options, tls),
                                    "hvc_migrate_options")) < 0)
        return r;
    uint32_t known = HVC_MIGRATE_AUTO_CONVERGE | HVC_MIGRATE_POSTCOPY |
                     (l->to_file ? HVC_MIGRATE_LEAVE_PAUSED : 0u);
    if (l->opts.flags & ~known)
        return hvi_error(-EINVAL, "hvc_migrate_options: unknown flags 0x%x%s",
                         l->opts.flags & ~known,
                         (l->opts.flags & HVC_MIGRATE_LEAVE_PAUSED)
                             ? " (LEAVE_PAUSED is for live snapshots)"
                             : "");
    if (l->opts.bandwidth_mib > (1u << 24))
        return hvi_error(-EINVAL,
                         "hvc_migrate_options: bandwidth_mib %u is "
                         "more than 2^24",
                         l->opts.bandwidth_mib);
    if (l->opts.postcopy_after_rounds &&
        !(l->opts.flags & HVC_MIGRATE_POSTCOPY))
        return hvi_error(-EINVAL,
                         "hvc_migrate_options: postcopy_after_rounds %u "
                         "without HVC_MIGRATE_POSTCOPY",
                         l->opts.postcopy_after_rounds);
    if ((l->opts.flags & HVC_MIGRATE_POSTCOPY) && l->to_file)
        return hvi_error(-EINVAL, "hvc_migrate_options: a live snapshot "
                                  "cannot be post-copy");
    if (l->opts.reserved || l->opts.reserved2)
        return hvi_error(-EINVAL,
                         "hvc_migrate_options: reserved is %u, "
                         "reserved2 %u, not 0",
                         l->opts.reserved, l->opts.reserved2);
    if (l->opts.connections > HVC_MIGRATE_CONNECTIONS_MAX)
        return hvi_error(-EINVAL,
                         "hvc_migrate_options: connections %u is more than "
                         "%u",
                         l->opts.connections, HVC_MIGRATE_CONNECTIONS_MAX);
    if (l->opts.connections > 1 && (l->to_file || !l->opts.address))
        return hvi_error(-EINVAL, "hvc_migrate_options: connections %u %s",
                         l->opts.connections,
                         l->to_file ? "for a live snapshot (a file)"
                                    : "without an address to open them to");
    struct hvi_migrate_addr a;
    if (l->opts.address &&
        (r = hvi_migrate_parse(l->opts.address, false, &a)) < 0)
        return r;
    if (l->opts.tls && (r = hvi_tls_check(l->opts.tls, false)) < 0)
        return r;
    if (!l->opts.max_downtime_ms)
        l->opts.max_downtime_ms = DEFAULT_DOWNTIME_MS;
    if (!l->opts.max_rounds)
        l->opts.max_rounds = DEFAULT_ROUNDS;
    return 0;
}

/* Stream bytes written so far, on every connection. */
static uint64_t sent(const struct live *l)
{
    return l->o.off + (l->par ? hvi_par_sent(l->par) : 0);
}

/* Pre-copy: the first pass, then rounds until the rest fits the budget
 * (or the rounds run out). */
static int precopy(struct live *l)
{
    uint64_t t = now_ns(), before = sent(l), last_sent = 0;
    uint64_t last_pending = UINT64_MAX;
    hvi_pacer_init(&l->pacer, l->opts.bandwidth_mib, t);
    l->pages = 0;
    l->round = 1;
    int r = send_all(l);
    l->st.bytes_initial = sent(l) - before;
    l->st.pages_initial = l->pages;
    l->st.rounds = 1;
    for (; r == 0;) {
        uint64_t now = now_ns(), pending;
        uint64_t ns = now - t ? now - t : 1, bytes = sent(l) - before;
        if ((r = fetch(l, &pending)) < 0)
            break;
        /* A round too short to measure keeps the last figure. */
        if (bytes >= (64u << 10) || !l->st.throughput_bps)
            l->st.throughput_bps = bytes * 1000000000u / ns;
        if (!l->st.throughput_bps)
            l->st.throughput_bps = 1;
        l->st.dirty_pages_per_s = pending * 1000000000u / ns;
        l->st.remaining_pages = pending;
        uint64_t need = pending * (HVI_PAGE + HVI_SEC_HEADER);
        l->st.expected_downtime_us =
            need * 1000000u / l->st.throughput_bps +
            1000u; /* state sections and the acknowledgement */
        if ((r = report(l)) < 0)
            break;
        /* Post-copy after a set number of rounds, whatever the rest. */
        bool pc = l->opts.flags & HVC_MIGRATE_POSTCOPY;
        if (pc && l->opts.postcopy_after_rounds &&
            l->st.rounds >= l->opts.postcopy_after_rounds) {
            l->postcopy = true;
            break;
        }
        /* The switchover once the rest fits the budget, but not while the
         * rounds still shrink it by a quarter or more: each such round is
         * short, and the pause is what the guest sees. */
        bool fits =
            l->st.expected_downtime_us <= l->opts.max_downtime_ms * 1000ull;
        bool shrinking = pending > SMALL_REST_PAGES &&
                         pending < last_pending - last_pending / 4;
        last_pending = pending;
        if (fits && !shrinking && !(pc && l->opts.postcopy_after_rounds))
            break;
        if (l->st.rounds > l->opts.max_rounds) {
            l->postcopy = pc && !fits; /* did not converge */
            break;
        }
        /* Auto-converge: the guest dirtied more than the last pre-copy
         * round could send in the same time. */
        if ((l->opts.flags & HVC_MIGRATE_AUTO_CONVERGE) && l->st.rounds > 1 &&
            pending >= last_sent) {
            uint32_t pct = l->st.throttle_percent
                               ? l->st.throttle_percent + THROTTLE_STEP
                               : THROTTLE_FIRST;
            pct = pct > THROTTLE_MAX ? THROTTLE_MAX : pct;
            if ((r = hvi_throttle_set(&l->thr, l->vm, pct)) < 0)
                break;
            l->st.throttle_percent = pct;
        }
        if (atomic_load(&l->thr.error) < 0 &&
            (r = hvi_throttle_stop(&l->thr)) < 0)
            break;
        t = now;
        before = sent(l);
        l->pages = 0;
        l->round++;
        r = send_pending(l);
        last_sent = l->pages;
        l->st.bytes_precopy += sent(l) - before;
        l->st.pages_precopy += l->pages;
        l->st.rounds++;
    }
    return r;
}

/* Whether post-copy's page channel will be a connection of its own to
 * the receiver's address: over TCP (a unix connection passes one
 * along). */
static bool page_channel_connects(const struct live *l)
{
    int domain = 0;
    socklen_t dl = sizeof(domain);
    return (l->opts.flags & HVC_MIGRATE_POSTCOPY) && l->opts.address &&
           !(getsockopt(l->fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0 &&
             domain == AF_UNIX);
}

static int migrate(struct live *l)
{
    int r;
    if ((r = hvi_memory_snapshot(l->vm, &l->regs, &l->n)) < 0)
        return r;
    l->pending = calloc(l->n + 1, sizeof(*l->pending));
    l->tracked = calloc(l->n + 1, sizeof(*l->tracked));
    if (!l->pending || !l->tracked)
        return hvi_error(-ENOMEM, "out of memory");
    hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
    so.key = l->opts.key;
    so.passphrase = l->opts.passphrase;
    so.user_data = l->opts.user_data;
    so.user_data_length = l->opts.user_data_length;
    if ((r = start_tracking(l)) < 0 ||
        (r = hvi_save_begin(l->vm, &l->o, &so, true)) < 0)
        return r;
    if (l->opts.connections > 1 || page_channel_connects(l)) {
        struct hvi_par_cfg pc = {
            .vm = l->vm,
            .opts = &l->opts,
            .main = &l->o,
            .main_fd = l->fd,
            .connections = l->opts.connections > 1 ? l->opts.connections : 1,
            .page_channel = page_channel_connects(l),
            .cancel = &l->vm->migrate_cancel,
            .deadline = l->deadline};
        if ((r = hvi_par_open(&pc, &l->par)) < 0)
            return r;
    }
    l->max_run = l->o.crypt ? HVI_SEALED_RUN_PAGES : HVI_RUN_PAGES;
    if (!(l->copy = malloc(l->max_run * HVI_PAGE)))
        return hvi_error(-ENOMEM, "out of memory");
    l->st.setup_ms = (now_ns() - l->t0) / 1000000u;
    if ((r = precopy(l)) < 0)
        return r;

    /* The switchover: the throttle ends (the VM running), then the pause;
     * the last pages go at full speed. */
    if ((r = hvi_throttle_stop(&l->thr)) < 0)
        return r;
    l->paused = true;
    uint64_t paused = now_ns(), before = sent(l), pending;
    if ((r = hvc_vm_pause(l->vm)) < 0)
        return r;
    uint64_t t = now_ns();
    l->st.pause_us = (t - paused) / 1000u;
    l->pages = 0;
    l->round++;
    if ((r = fetch(l, &pending)) == 0 && l->postcopy) {
        /* What is pending now goes after the switchover. */
        l->st.postcopy = 1;
        if (l->par)
            r = hvi_par_finish(l->par);
        if (r == 0)
            r = hvi_pc_put_plan(&l->o, l->regs, l->n, l->pending,
                                &l->st.postcopy_pages);
        if (r == 0)
            r = hvi_save_finish(l->vm, &l->o);
    } else if (r == 0 && (r = send_pending(l)) == 0) {
        l->st.pages_final = l->pages;
        /* every connection's end before the state */
        if (l->par)
            r = hvi_par_finish(l->par);
        if (r == 0)
            r = hvi_save_finish(l->vm, &l->o);
    }
    l->st.bytes_final = sent(l) - before;
    l->st.final_send_us = (now_ns() - t) / 1000u;
    if (r == 0 && !l->to_file) {
        l->final = true;
        t = now_ns();
        r = wait_ack(l, "after the end of the stream");
        l->st.ack_wait_us = (now_ns() - t) / 1000u;
    }
    l->st.downtime_us = (now_ns() - paused) / 1000u;
    if (r == 0 && l->to_file) {
        /* a snapshot: the guest goes on here (the caller syncs the file) */
        l->st.completed = 1;
        if (!(l->opts.flags & HVC_MIGRATE_LEAVE_PAUSED))
            hvc_vm_resume(l->vm);
        return 0;
    }
    if (r == 0) {
        atomic_store(&l->vm->migrated_away, 1);
        l->switched = true;
        if (l->postcopy) {
            struct hvi_pc_source src = {
                l->vm,
                l->fd,
                &l->o,
                l->regs,
                l->n,
                l->pending,
                &l->st,
                l->par && page_channel_connects(l) ? l->opts.address : NULL,
                l->par ? hvi_par_session(l->par) : NULL,
                l->tls,
                l->opts.tls};
            if ((r = hvi_pc_send(&src)) < 0)
                return r;
        }
        l->st.completed = 1;
        return 0;
    }
    /* Nothing started on the other side: run on here. */
    char why[512];
    snprintf(why, sizeof(why), "%s",
             l->remote_err ? l->remote_why : hvc_last_error());
    if (l->remote_err)
        r = l->remote_err;
    hvc_vm_resume(l->vm);
    return hvi_error(r, "%s", why);
}

int hvc_vm_migrate_send(hvc_vm *vm, int fd, const hvc_migrate_options *opts,
                        hvc_migrate_stats *stats)
{
    return hvi_live_send(vm, fd, opts, stats, false);
}

int hvi_live_send(hvc_vm *vm, int fd, const hvc_migrate_options *opts,
                  hvc_migrate_stats *stats, bool to_file)
{
    const char *fn = to_file ? "hvc_snapshot_save_live" : "hvc_vm_migrate_send";
    if (!vm || fd < 0)
        return hvi_error(-EINVAL, "%s: %s", fn,
                         vm ? "negative descriptor" : "NULL VM");
    if (stats && stats->size < sizeof(uint32_t))
        return hvi_error(-EINVAL, "hvc_migrate_stats: size %u", stats->size);
    struct live *l = calloc(1, sizeof(*l));
    if (!l)
        return hvi_error(-ENOMEM, "out of memory");
    l->vm = vm;
    l->fd = fd;
    l->to_file = to_file;
    l->t0 = now_ns();
    l->st.size = sizeof(l->st);
    int r = check_options(l, opts), busy = 0;
    if (r == 0 && !atomic_compare_exchange_strong(&vm->migrating, &busy, 1))
        r = hvi_error(-EBUSY, "%s: a migration of this VM is running", fn);
    else if (r == 0 &&
             (hvc_vm_is_paused(vm) || atomic_load(&vm->migrated_away))) {
        r = hvi_error(-EBUSY, "%s: the VM is %s", fn,
                      atomic_load(&vm->migrated_away) ? "migrated already"
                                                      : "paused");
        atomic_store(&vm->migrating, 0);
    }
    if (r == 0) {
        if (l->opts.timeout_ms)
            l->deadline = l->t0 + l->opts.timeout_ms * 1000000ull;
        atomic_store(&vm->migrate_cancel, 0);
        l->o.fd = -1;
        l->o.s.size = sizeof(l->o.s);
        l->o.s.write = live_write;
        l->o.s.opaque = l;
        l->fd_flags = -1;
        if (l->opts.tls &&
            (r = hvi_tls_connect(fd, l->opts.tls, l->opts.timeout_ms,
                                 &l->tls)) == 0) {
            /* Non-blocking, so that the write loop sees a cancel. */
            l->st.tls = 1;
            l->fd_flags = fcntl(fd, F_GETFL);
            if (l->fd_flags >= 0)
                fcntl(fd, F_SETFL, l->fd_flags | O_NONBLOCK);
        }
        if (r == 0)
            r = migrate(l);
        int tr = hvi_throttle_stop(&l->thr);
        if (r == 0 && tr < 0) /* after the switchover: only reported */
            hvi_log(HVC_LOG_WARN, "%s", hvc_last_error());
        if (r < 0 && l->remote_err && !l->switched) {
            r = l->remote_err;
            hvi_error(r, "%s", l->remote_why);
        }
        if (r < 0 && (r == -ECANCELED || r == -ETIMEDOUT) &&
            !strstr(hvc_last_error(), to_file ? "live snapshot" : "migration"))
            r = hvi_error(r, "the %s was %s before the %s",
                          to_file ? "live snapshot" : "migration",
                          r == -ECANCELED ? "cancelled" : "timed out",
                          to_file ? "final round" : "switchover");
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        stop_tracking(l);
        if (r < 0)
            hvi_error(r, "%s%s", why, l->switched ? "" : "; the VM runs on");
        atomic_store(&vm->migrate_cancel, 0);
        atomic_store(&vm->migrating, 0);
        if (l->fd_flags >= 0)
            fcntl(fd, F_SETFL, l->fd_flags);
        hvi_tls_free(l->tls);
    }
    l->st.connections = 1;
    l->st.connection_bytes[0] =
        l->st.bytes_initial + l->st.bytes_precopy + l->st.bytes_final;
    l->st.connection_pages[0] =
        l->st.pages_initial + l->st.pages_precopy + l->st.pages_final;
    if (l->par)
        hvi_par_stats(l->par, &l->st);
    hvi_par_free(l->par);
    l->st.total_ms = (now_ns() - l->t0) / 1000000u;
    if (stats) {
        size_t n = stats->size < sizeof(l->st) ? stats->size : sizeof(l->st);
        uint32_t size = stats->size;
        memcpy(stats, &l->st, n);
        stats->size = size;
    }
    hvi_out_free(&l->o);
    for (size_t i = 0; l->pending && i < l->n; i++)
        free(l->pending[i]);
    free(l->pending);
    free(l->tracked);
    free(l->fetched);
    free(l->copy);
    free(l->regs);
    free(l);
    return r;
}

int hvc_vm_migrate_cancel(hvc_vm *vm)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_migrate_cancel: NULL VM");
    atomic_store(&vm->migrate_cancel, 1);
    return 0;
}
