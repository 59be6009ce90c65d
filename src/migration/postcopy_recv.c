/* Post-copy, the destination (docs/MIGRATION.md, "Post-copy"). The VM
 * runs while the pages the source had not sent arrive. Guest memory is
 * registered with userfaultfd for missing pages (src/os/linux/uffd.c), the
 * pages of the plan having been given back first, so that exactly they
 * (and never-written ones) fault. Three threads:
 *
 *   - the fault thread reads the userfaultfd: a fault on a page of the
 *     plan that has not arrived asks the source for it (a request message
 *     on the page channel, or the connection when there is none) and goes
 *     on; a fault on a page outside the plan (never written on the
 *     source) is filled with zeros at once;
 *   - the receiver thread opens the page channel, then reads the rest of
 *     the stream, the pushed MEMORY runs, and places each missing page
 *     with UFFDIO_COPY, which wakes whoever faulted on it. A page that is
 *     already there is left alone;
 *   - the channel thread places the pages that were asked for.
 *
 * None takes any lock but the state's own (pc->place_lock, held while a
 * run is copied in and counted, pc->lock inside it for the samples;
 * pc->wlock and pc->wake_lock, leaves; src/core/internal.h), so a vCPU,
 * a device worker or an accessor waiting for a page never holds what
 * serving it needs. When the last page is in
 * and POSTCOPY_DONE was read, the receiver unregisters guest memory, says
 * DONE to the source, and the threads end. When the link fails first,
 * the guest is lost: its vCPUs are stopped for good (they are kicked and
 * hvc_vcpu_run() refuses), accessors fail with -EIO on the lost pages,
 * and the source is told what was lost if it can still hear it. */
#define _GNU_SOURCE
#include "postcopy_recv.h"
#include "par.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const uint8_t zero_page[HVI_PAGE];

/* Stops the guest for good: the link failed (or the stream was refused)
 * before every page arrived. */
static void fail(struct hvi_postcopy *pc, int err, const char *why)
{
    hvc_vm *vm = pc->vm;
    pthread_mutex_lock(&pc->lock);
    if (pc->state != HVC_POSTCOPY_RUNNING) {
        pthread_mutex_unlock(&pc->lock);
        return;
    }
    /* Before the state: a waiter that sees it end finds the loss. */
    atomic_store(&vm->postcopy_failed, 1);
    uint64_t lost = atomic_load(&pc->left);
    pc->state = HVC_POSTCOPY_FAILED;
    pc->err = err;
    pc->t_end = hvi_pc_now_ns();
    snprintf(pc->why, sizeof(pc->why),
             "post-copy migration failed with %" PRIu64 " of %" PRIu64
             " pages never received; the guest is lost and stopped: %s",
             lost, pc->total, why);
    pthread_mutex_unlock(&pc->lock);
    pthread_mutex_lock(&vm->lock);
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
        if (vm->vcpus[i]) {
            hvi_vcpu_interrupt(vm->vcpus[i]);
            hvi_vcpu_wake_parked(vm->vcpus[i]);
        }
    pthread_mutex_unlock(&vm->lock);
    hvi_log(HVC_LOG_ERROR, "%s", pc->why);
    if (!atomic_load(&pc->stopping))
        hvi_pc_send_msg(pc, HVI_PC_FAILED, (uint32_t)err, lost, 0, false);
    pthread_mutex_lock(&pc->lock);
    pthread_cond_broadcast(&pc->cond);
    pthread_mutex_unlock(&pc->lock);
    /* Devices that set work aside look again: they find the loss. */
    hvi_pc_fire_wakes(pc, true);
}

/* Asks the source for a page, once. */
int hvi_pc_ask(struct hvi_postcopy *pc, struct pc_reg *r, uint64_t pg,
               uint64_t t)
{
    uint64_t zero = 0;
    if (!atomic_compare_exchange_strong(&r->asked[pg], &zero, t ? t : 1))
        return 0;
    atomic_fetch_add(&pc->faults, 1);
    int e = hvi_pc_send_msg(pc, HVI_PC_REQUEST, 0, r->gpa + pg * HVI_PAGE, 0,
                            hvi_event_vm == pc->vm);
    if (e == -EAGAIN) {
        /* Not now (the event thread does not wait to write): unasked, so
         * the next look asks again; the push brings the page anyway. */
        atomic_store(&r->asked[pg], 0);
        atomic_fetch_sub(&pc->faults, 1);
        return 0;
    }
    if (e < 0 && !atomic_load(&pc->stopping))
        fail(pc, e, "asking the source for a page failed");
    return e;
}

static void *fault_main(void *arg)
{
    struct hvi_postcopy *pc = arg;
    for (;;) {
        uint64_t addr;
        bool write;
        int r = hvi_os_uffd_next(pc->uffd, pc->stop_fd, -1, &addr, &write);
        if (r <= 0) {
            if (r < 0)
                fail(pc, r, hvc_last_error());
            break;
        }
        uint64_t t = hvi_pc_now_ns();
        struct pc_reg *reg = NULL;
        for (size_t i = 0; i < pc->n && !reg; i++)
            if (addr >= (uintptr_t)pc->r[i].hva &&
                addr - (uintptr_t)pc->r[i].hva < pc->r[i].len)
                reg = &pc->r[i];
        if (!reg)
            continue;
        uint64_t pg = (addr - (uintptr_t)reg->hva) / HVI_PAGE;
        uint8_t *page = reg->hva + pg * HVI_PAGE;
        if (!hvi_pc_test(reg->set, pg)) {
            /* Never written on the source: zero here. */
            atomic_fetch_add(&pc->zero_faults, 1);
            /* Present already, or no longer registered (post-copy ended
             * under the fault): the waiter faults again and finds it. */
            if (hvi_os_uffd_fill(pc->uffd, page, zero_page, HVI_PAGE, false) <
                0)
                hvi_os_uffd_wake(pc->uffd, page, HVI_PAGE);
        } else if (!hvi_pc_missing(reg, pg)) {
            hvi_os_uffd_wake(pc->uffd, page, HVI_PAGE); /* arrived since */
        } else if (atomic_load(&pc->vm->postcopy_failed)) {
            continue; /* lost: the receiver's unregistering ends it */
        } else {
            hvi_pc_ask(pc, reg, pg, t);
        }
    }
    return NULL;
}

/* One run of the post-copy stream, checked, into ps->buf (data NULL for
 * a zero run). */
static int read_run(struct pc_stream *ps, const struct hvi_sec *s,
                    uint64_t *gpa, uint64_t *pages, const uint8_t **data)
{
    struct hvi_in *in = &ps->in;
    bool sealed = s->flags & HVI_F_ENCRYPTED;
    uint64_t most = HVI_MEM_DESC + HVI_PC_RUN_PAGES * HVI_PAGE +
                    (sealed ? HVI_TAG_SIZE : 0);
    if (s->length < HVI_MEM_DESC + (sealed ? HVI_TAG_SIZE : 0) ||
        s->length > most)
        return hvi_fail(s, -EBADMSG,
                        "a post-copy run of %llu bytes (at most %u pages)",
                        (unsigned long long)s->length, HVI_PC_RUN_PAGES);
    uint8_t *d = ps->buf;
    int r;
    if (sealed) {
        uint8_t *p;
        size_t n;
        if ((r = hvi_read_payload(in, s, &p, &n)) < 0)
            return r;
        memcpy(ps->buf, p, n);
        free(p);
    } else {
        if ((r = hvi_in_read(in, s, d, HVI_MEM_DESC)) < 0)
            return r;
        uint32_t crc = hvi_crc32c(hvi_crc32c(0, s->raw, 20), d, HVI_MEM_DESC);
        if (crc != s->crc)
            return hvi_fail(s, -EBADMSG,
                            "CRC mismatch (stored 0x%08x, computed 0x%08x)",
                            s->crc, crc);
    }
    *gpa = hvi_get64(d);
    *pages = hvi_get64(d + 8);
    uint32_t enc = hvi_get32(d + 16), dcrc = hvi_get32(d + 20);
    uint64_t payload = s->length - (sealed ? HVI_TAG_SIZE : 0);
    if (enc > HVI_MEM_ZERO || *gpa % HVI_PAGE || !*pages ||
        *pages > HVI_PC_RUN_PAGES ||
        payload != HVI_MEM_DESC + (enc == HVI_MEM_RAW ? *pages * HVI_PAGE : 0))
        return hvi_fail(s, -EBADMSG,
                        "malformed post-copy run (encoding %u, 0x%" PRIx64
                        " pages at 0x%" PRIx64 ")",
                        enc, *pages, *gpa);
    *data = enc == HVI_MEM_ZERO ? NULL : d + HVI_MEM_DESC;
    if (!sealed && *data) {
        if ((r = hvi_in_read(in, s, d + HVI_MEM_DESC, *pages * HVI_PAGE)) < 0)
            return r;
        uint32_t crc = hvi_crc32c(0, *data, *pages * HVI_PAGE);
        if (crc != dcrc)
            return hvi_fail(s, -EBADMSG,
                            "page data CRC mismatch (stored 0x%08x, "
                            "computed 0x%08x)",
                            dcrc, crc);
    }
    return 0;
}

static void sample(struct hvi_postcopy *pc, uint64_t ns)
{
    pthread_mutex_lock(&pc->lock);
    if (pc->nsamples == pc->cap && pc->cap < MAX_SAMPLES) {
        size_t cap = pc->cap ? 2 * pc->cap : 4096;
        uint32_t *p = realloc(pc->samples, cap * sizeof(*p));
        if (p) {
            pc->samples = p;
            pc->cap = cap;
        }
    }
    if (pc->nsamples < pc->cap)
        pc->samples[pc->nsamples++] =
            ns / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns / 1000);
    if (ns > pc->max_ns)
        pc->max_ns = ns;
    pthread_mutex_unlock(&pc->lock);
}

static int place_locked(struct hvi_postcopy *pc, struct pc_reg *r,
                        uint64_t first, uint64_t pages, const uint8_t *data);

/* Places a checked run: every page must be one the plan left to come. */
static int place(struct hvi_postcopy *pc, const struct hvi_sec *s, uint64_t gpa,
                 uint64_t pages, const uint8_t *data)
{
    struct pc_reg *r = hvi_pc_region(pc, gpa);
    if (!r || pages * HVI_PAGE > r->len - (gpa - r->gpa))
        return hvi_fail(s, -EBADMSG,
                        "post-copy run 0x%" PRIx64 "+0x%" PRIx64
                        " is not inside one memory region",
                        gpa, pages * HVI_PAGE);
    uint64_t first = (gpa - r->gpa) / HVI_PAGE;
    for (uint64_t i = 0; i < pages; i++)
        if (!hvi_pc_test(r->set, first + i))
            return hvi_fail(s, -EBADMSG,
                            "post-copy page 0x%" PRIx64
                            " is not one the source had left to send",
                            gpa + i * HVI_PAGE);
    /* The receiver and the channel thread may both bring a page (pushed,
     * and asked for meanwhile): one places it and counts it. */
    pthread_mutex_lock(&pc->place_lock);
    int e = place_locked(pc, r, first, pages, data);
    pthread_mutex_unlock(&pc->place_lock);
    if (e < 0)
        return e;
    if (atomic_load(&pc->waiters)) {
        pthread_mutex_lock(&pc->lock);
        pthread_cond_broadcast(&pc->cond);
        pthread_mutex_unlock(&pc->lock);
    }
    hvi_pc_fire_wakes(pc, false); /* devices that set work aside */
    return 0;
}

/* Copies in the pages of [first, first + pages) of @p r still missing;
 * caller holds pc->place_lock. */
static int place_locked(struct hvi_postcopy *pc, struct pc_reg *r,
                        uint64_t first, uint64_t pages, const uint8_t *data)
{
    for (uint64_t i = 0; i < pages;) {
        uint64_t pg = first + i;
        if (!hvi_pc_missing(r, pg)) {
            i++; /* a second copy: the first one stays */
            continue;
        }
        uint64_t j = i + 1;
        while (j < pages && hvi_pc_missing(r, first + j))
            j++;
        int e = data && j - i > 1
                    ? hvi_os_uffd_fill(pc->uffd, r->hva + pg * HVI_PAGE,
                                       data + i * HVI_PAGE, (j - i) * HVI_PAGE,
                                       false)
                    : -EEXIST;
        /* One page at a time when the run did not go at once (a page
         * present already stops a run's copy there; missing pages are
         * placed only here, under the lock, so none should be). */
        if (e == -EEXIST)
            for (uint64_t k = i, done = 0; k < j && !done; k++) {
                e = hvi_os_uffd_fill(pc->uffd, r->hva + (first + k) * HVI_PAGE,
                                     data ? data + k * HVI_PAGE : zero_page,
                                     HVI_PAGE, false);
                e = e == -EEXIST ? 0 : e;
                done = e < 0;
            }
        if (e < 0)
            return e;
        uint64_t t = hvi_pc_now_ns();
        for (uint64_t k = i; k < j; k++) {
            uint64_t p = first + k;
            atomic_fetch_and(&r->missing[p / 64], ~(1ull << (p % 64)));
            atomic_fetch_sub(&pc->left, 1);
            uint64_t at = atomic_load(&r->asked[p]);
            if (at) {
                atomic_fetch_add(&pc->requested, 1);
                sample(pc, t > at ? t - at : 0);
            } else {
                atomic_fetch_add(&pc->pushed, 1);
            }
        }
        i = j;
    }
    return 0;
}

static void unregister_all(struct hvi_postcopy *pc)
{
    for (size_t i = 0; i < pc->n; i++)
        hvi_os_uffd_unregister(pc->uffd, pc->r[i].hva, pc->r[i].len);
}

static int on_done(struct hvi_postcopy *pc, const struct hvi_sec *s)
{
    uint8_t *p;
    size_t len;
    int r = hvi_read_payload(&pc->main.in, s, &p, &len);
    if (r < 0)
        return r;
    uint64_t sent = len == 16 ? hvi_get64(p) : 0;
    free(p);
    if (len != 16)
        return hvi_fail(s, -EBADMSG, "payload of %zu bytes, not 16", len);
    uint64_t left = atomic_load(&pc->left);
    if (left || sent != pc->total)
        return hvi_fail(s, -EBADMSG,
                        "the source says it sent %" PRIu64
                        " post-copy pages of %" PRIu64 "; %" PRIu64
                        " never arrived",
                        sent, pc->total, left);
    return 0;
}

/* Reads sections of @p ps until its POSTCOPY_DONE (left unread in *s). */
static int read_pages(struct hvi_postcopy *pc, struct pc_stream *ps,
                      struct hvi_sec *s)
{
    for (;;) {
        int r = hvi_next_section(&ps->in, s);
        if (r < 0 || s->id == HVI_POSTCOPY_DONE)
            return r;
        if (s->id != HVI_MEMORY)
            return hvi_fail(s, -EBADMSG, "not a post-copy section");
        uint64_t gpa = 0, pages = 0;
        const uint8_t *data = NULL;
        if ((r = read_run(ps, s, &gpa, &pages, &data)) < 0 ||
            (r = place(pc, s, gpa, pages, data)) < 0)
            return r;
    }
}

/* The page channel's thread: the pages the source sent because they were
 * asked for. */
static void *chan_main(void *arg)
{
    struct hvi_postcopy *pc = arg;
    struct hvi_sec s;
    int r = read_pages(pc, &pc->chan, &s);
    if (r == 0) {
        uint8_t *p;
        size_t len;
        if ((r = hvi_read_payload(&pc->chan.in, &s, &p, &len)) == 0) {
            if (len != 16 || s.instance != 1)
                r = hvi_fail(&s, -EBADMSG,
                             "malformed end of the page "
                             "channel");
            free(p);
        }
    }
    if (r < 0 && !atomic_load(&pc->stopping)) {
        char why[400];
        snprintf(why, sizeof(why), "page channel: %s", hvc_last_error());
        fail(pc, r == -ENODATA ? -ECONNABORTED : r, why);
        shutdown(pc->fd, SHUT_RDWR); /* the receiver stops too */
    }
    return NULL;
}

/* The record that opens post-copy, then the page channel's thread. */
static int open_channel(struct hvi_postcopy *pc)
{
    int r = hvi_pc_open_channel(pc);
    if (r < 0 || pc->pfd < 0)
        return r;
    int e = pthread_create(&pc->chan_thread, NULL, chan_main, pc);
    if (e)
        return hvi_error(-e, "post-copy: cannot start a thread: %s",
                         hvc_strerror(-e));
    atomic_store(&pc->chan_started, true);
    return 0;
}

static void *recv_main(void *arg)
{
    struct hvi_postcopy *pc = arg;
    struct hvi_sec s;
    int r = open_channel(pc);
    if (r == 0)
        r = read_pages(pc, &pc->main, &s);
    if (r == 0 && atomic_exchange(&pc->chan_started, false))
        pthread_join(pc->chan_thread, NULL); /* the channel ends first */
    if (r == 0)
        r = on_done(pc, &s);
    if (r < 0) {
        if (!atomic_load(&pc->stopping)) {
            char why[400];
            snprintf(why, sizeof(why), "%s", hvc_last_error());
            fail(pc, r == -ENODATA ? -ECONNABORTED : r, why);
        }
    } else {
        /* Every page is here: the memory is the VM's own again. */
        unregister_all(pc);
        atomic_store_explicit(&pc->vm->postcopy_active, 0,
                              memory_order_release);
        pthread_mutex_lock(&pc->lock);
        pc->state = HVC_POSTCOPY_COMPLETE;
        pc->t_end = hvi_pc_now_ns();
        pthread_mutex_unlock(&pc->lock);
        hvc_postcopy_stats st = HVC_POSTCOPY_STATS_INIT;
        hvc_vm_postcopy_stats(pc->vm, &st);
        hvi_log(HVC_LOG_INFO,
                "post-copy complete: %" PRIu64 " pages (%" PRIu64
                " pushed, %" PRIu64 " on faults), fault service median %" PRIu64
                " us, p99 %" PRIu64 " us",
                st.pages, st.pages_pushed, st.pages_requested,
                st.fault_median_us, st.fault_p99_us);
        hvi_pc_send_msg(pc, HVI_PC_DONE, (uint32_t)st.fault_median_us,
                        st.pages_requested, (uint32_t)st.fault_p99_us, false);
        pthread_mutex_lock(&pc->lock);
        pthread_cond_broadcast(&pc->cond);
        pthread_mutex_unlock(&pc->lock);
        hvi_pc_fire_wakes(pc, true);
    }
    if (r < 0) {
        unregister_all(pc); /* blocked faults retry: vCPUs stop at once */
        if (pc->pfd >= 0)
            shutdown(pc->pfd, SHUT_RDWR); /* the channel's thread ends */
    }
    /* The fault thread has nothing left to serve. */
    uint64_t one = 1;
    if (write(pc->stop_fd, &one, sizeof(one)) < 0) {
        /* it also ends with the VM */
    }
    return NULL;
}

static void pc_free(struct hvi_postcopy *pc)
{
    for (size_t i = 0; pc->r && i < pc->n; i++) {
        free(pc->r[i].set);
        free((void *)pc->r[i].missing);
        free((void *)pc->r[i].asked);
    }
    free(pc->r);
    if (pc->uffd >= 0)
        close(pc->uffd);
    if (pc->stop_fd >= 0)
        hvi_os_notifier_close(pc->stop_fd);
    if (pc->fd >= 0)
        close(pc->fd);
    if (pc->pfd >= 0)
        close(pc->pfd);
    if (pc->listen_fd >= 0)
        close(pc->listen_fd);
    if (pc->fd_flags >= 0 && pc->fd >= 0)
        fcntl(pc->fd, F_SETFL, pc->fd_flags); /* the caller's again */
    hvi_tls_free(pc->main.tls.t);
    hvi_tls_free(pc->chan.tls.t);
    free((void *)pc->tls_opts.cert);
    free((void *)pc->tls_opts.key);
    free((void *)pc->tls_opts.ca);
    free((void *)pc->tls_opts.server_name);
    pthread_mutex_destroy(&pc->main.tls.lock);
    pthread_mutex_destroy(&pc->chan.tls.lock);
    hvi_crypt_free(pc->main.in.crypt);
    hvi_crypt_free(pc->chan.in.crypt);
    free(pc->samples);
    free(pc->wakes);
    pthread_mutex_destroy(&pc->wake_lock);
    pthread_mutex_destroy(&pc->place_lock);
    pthread_mutex_destroy(&pc->lock);
    pthread_mutex_destroy(&pc->wlock);
    pthread_cond_destroy(&pc->cond);
    free(pc);
}

int hvi_pc_prepare(hvc_vm *vm, int fd, struct hvi_in *in,
                   struct hvi_pc_plan *plan)
{
    struct hvi_postcopy *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return hvi_error(-ENOMEM, "out of memory");
    pc->vm = vm;
    pc->uffd = pc->stop_fd = pc->pfd = pc->listen_fd = pc->fd_flags = -1;
    pthread_mutex_init(&pc->main.tls.lock, NULL);
    pthread_mutex_init(&pc->chan.tls.lock, NULL);
    pc->chan.in.fd = -1;
    pc->state = HVC_POSTCOPY_RUNNING;
    pthread_mutex_init(&pc->lock, NULL);
    pthread_mutex_init(&pc->wlock, NULL);
    pthread_mutex_init(&pc->wake_lock, NULL);
    pthread_mutex_init(&pc->place_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pc->cond, &ca);
    pthread_condattr_destroy(&ca);
    pc->main.in = *in;
    pc->main.in.par = NULL;
    in->crypt = NULL; /* the state's now */
    pc->listen_fd = in->channel_connects && in->listen_fd >= 0
                        ? fcntl(in->listen_fd, F_DUPFD_CLOEXEC, 0)
                        : -1;
    memcpy(pc->session, in->session, sizeof(pc->session));
    pc->main.in.progress = NULL;
    pc->fd = dup(fd);
    pc->main.in.fd = pc->fd;
    atomic_store(&pc->ctl_fd, pc->fd);
    pc->total = plan->total;
    atomic_store(&pc->left, plan->total);
    hvc_memory_region **regs = NULL;
    size_t n = 0;
    int r = pc->fd < 0
                ? hvi_error(-errno, "post-copy: dup: %s", hvc_strerror(-errno))
                : hvi_memory_snapshot(vm, &regs, &n);
    if (r == 0 && n != plan->n)
        r = hvi_error(-EBADMSG,
                      "post-copy: the plan has %zu regions, the VM "
                      "%zu",
                      plan->n, n);
    if (r == 0 && !(pc->r = calloc(n + 1, sizeof(*pc->r))))
        r = hvi_error(-ENOMEM, "out of memory");
    if (r == 0)
        r = hvi_os_notifier_create(&pc->stop_fd);
    if (r == 0)
        r = hvi_os_uffd_open(&pc->uffd);
    for (size_t i = 0; r == 0 && i < n; i++) {
        struct pc_reg *g = &pc->r[i];
        pc->n = i + 1;
        g->hva = regs[i]->hva;
        g->gpa = regs[i]->gpa;
        g->len = regs[i]->len;
        g->pages = g->len / HVI_PAGE;
        uint64_t nw = (g->pages + 63) / 64;
        g->set = plan->r[i].bits;
        plan->r[i].bits = NULL;
        g->missing = calloc(nw + 1, 8);
        g->asked = calloc(g->pages + 1, 8);
        if (!g->missing || !g->asked) {
            r = hvi_error(-ENOMEM, "out of memory");
            break;
        }
        for (uint64_t w = 0; w < nw; w++)
            atomic_store(&g->missing[w], g->set[w]);
        if (regs[i]->flags & HVC_MEMORY_HUGETLB) {
            r = hvi_error(-ENOTSUP,
                          "post-copy: memory region 0x%" PRIx64
                          " is on huge pages, which this library does not "
                          "fill page by page",
                          g->gpa);
            break;
        }
        /* The plan's pages go back, so that they fault. */
        for (uint64_t pg = 0; r == 0 && pg < g->pages;) {
            if (!hvi_pc_test(g->set, pg)) {
                pg++;
                continue;
            }
            uint64_t e = pg + 1;
            while (e < g->pages && hvi_pc_test(g->set, e))
                e++;
            r = hvi_memory_discard(regs[i], pg * HVI_PAGE, (e - pg) * HVI_PAGE);
            if (r < 0)
                r = hvi_error(r,
                              "post-copy: memory region 0x%" PRIx64
                              " is not the library's own memfd, so its "
                              "pages cannot be taken back",
                              g->gpa);
            pg = e;
        }
        if (r == 0)
            r = hvi_os_uffd_register(pc->uffd, g->hva, g->len);
        if (r < 0)
            pc->n = i; /* not registered */
    }
    free(regs);
    if (r < 0) {
        unregister_all(pc);
        pc_free(pc);
        return r;
    }
    pc->t0 = hvi_pc_now_ns();
    vm->postcopy = pc;
    atomic_store_explicit(&vm->postcopy_active, 1, memory_order_release);
    return 0;
}

int hvi_pc_start(hvc_vm *vm)
{
    struct hvi_postcopy *pc = vm->postcopy;
    if (pc->main.tls.t) {
        /* on the state's own descriptor: the caller may close its own */
        int r = hvi_tls_set_fd(pc->main.tls.t, pc->fd);
        if (r < 0)
            return r;
        /* the threads poll and never wait holding the session */
        pc->fd_flags = fcntl(pc->fd, F_GETFL);
        if (pc->fd_flags < 0 ||
            fcntl(pc->fd, F_SETFL, pc->fd_flags | O_NONBLOCK) < 0)
            return hvi_error(-errno, "post-copy: fcntl: %s",
                             hvc_strerror(-errno));
    }
    int e = pthread_create(&pc->fault_thread, NULL, fault_main, pc);
    pc->fault_started = e == 0;
    if (e == 0) {
        e = pthread_create(&pc->recv_thread, NULL, recv_main, pc);
        pc->recv_started = e == 0;
    }
    if (e)
        return hvi_error(-e, "post-copy: cannot start a thread: %s",
                         hvc_strerror(-e));
    return 0;
}

void hvi_postcopy_free(hvc_vm *vm)
{
    struct hvi_postcopy *pc = vm->postcopy;
    if (!pc)
        return;
    atomic_store(&pc->stopping, 1);
    shutdown(pc->fd, SHUT_RDWR); /* the receiver's read returns */
    if (pc->pfd >= 0)
        shutdown(pc->pfd, SHUT_RDWR);
    uint64_t one = 1;
    if (write(pc->stop_fd, &one, sizeof(one)) < 0) {
        /* the fault thread may be gone already */
    }
    if (pc->recv_started)
        pthread_join(pc->recv_thread, NULL);
    if (atomic_exchange(&pc->chan_started, false))
        pthread_join(pc->chan_thread, NULL);
    if (pc->fault_started)
        pthread_join(pc->fault_thread, NULL);
    if (atomic_load(&vm->postcopy_active))
        unregister_all(pc);
    vm->postcopy = NULL;
    pc_free(pc);
}
