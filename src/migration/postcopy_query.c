/* Post-copy, the destination's answers: whether a range of guest memory
 * is here (asking for what is not), waiting for it, and the statistics. */
#define _GNU_SOURCE
#include "postcopy_recv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 1: every page of the range is here; 0: some are not (asked for when
 * @p ask); -EIO: one was lost. */
static int range(hvc_vm *vm, uint64_t gpa, uint64_t len, bool do_ask)
{
    struct hvi_postcopy *pc = vm->postcopy;
    struct pc_reg *r = hvi_pc_region(pc, gpa);
    if (!r || !len)
        return 1; /* not RAM: the caller's own check refuses it */
    uint64_t off = gpa - r->gpa;
    uint64_t end = len > r->len - off ? r->len : off + len;
    uint64_t last = (end - 1) / HVI_PAGE, t = hvi_pc_now_ns();
    int present = 1;
    for (uint64_t pg = off / HVI_PAGE; pg <= last; pg++) {
        if (!hvi_pc_missing(r, pg))
            continue;
        if (atomic_load(&vm->postcopy_failed))
            return hvi_error(-EIO,
                             "guest page 0x%" PRIx64
                             " was lost when post-copy migration failed",
                             r->gpa + pg * HVI_PAGE);
        present = 0;
        if (!do_ask)
            return 0;
        hvi_pc_ask(pc, r, pg, t);
    }
    return present;
}

int hvi_postcopy_want(hvc_vm *vm, uint64_t gpa, uint64_t len)
{
    if (!atomic_load_explicit(&vm->postcopy_active, memory_order_acquire))
        return 1;
    return range(vm, gpa, len, true);
}

int hvi_postcopy_fetch_slow(hvc_vm *vm, uint64_t gpa, uint64_t len)
{
    struct hvi_postcopy *pc = vm->postcopy;
    if (!pc)
        return 0; /* being destroyed: the caller's own check decides */
    int r = range(vm, gpa, len, true);
    if (r != 0)
        return r < 0 ? r : 0;
    /* The event thread serves every device and descriptor watch: it
     * never waits on the link. The page is on its way; the caller comes
     * back (hvi_postcopy_when_present() says when). */
    if (hvi_event_vm == vm)
        return hvi_error(-EAGAIN,
                         "guest memory 0x%" PRIx64 "+0x%" PRIx64
                         " has not arrived yet (post-copy migration); the "
                         "VM's event thread does not wait for it",
                         gpa, len);
    atomic_fetch_add(&pc->waiters, 1);
    pthread_mutex_lock(&pc->lock);
    while ((r = range(vm, gpa, len, false)) == 0 &&
           pc->state == HVC_POSTCOPY_RUNNING)
        pthread_cond_wait(&pc->cond, &pc->lock);
    pthread_mutex_unlock(&pc->lock);
    atomic_fetch_sub(&pc->waiters, 1);
    return r < 0 ? r : 0;
}

/* Caller holds pc->wake_lock. */
static void drop_wake(struct hvi_postcopy *pc, size_t i)
{
    size_t n = atomic_load(&pc->nwakes);
    pc->wakes[i] = pc->wakes[n - 1];
    atomic_store(&pc->nwakes, n - 1);
}

int hvi_postcopy_when_present(hvc_vm *vm, uint64_t gpa, uint64_t len,
                              hvi_page_wake_fn fn, void *opaque, uint32_t arg)
{
    if (!atomic_load_explicit(&vm->postcopy_active, memory_order_acquire))
        return 1;
    struct hvi_postcopy *pc = vm->postcopy;
    if (!pc)
        return 1;
    int r = range(vm, gpa, len, true);
    if (r != 0)
        return r;
    pthread_mutex_lock(&pc->wake_lock);
    size_t n = atomic_load(&pc->nwakes), i = 0;
    while (i < n && (pc->wakes[i].fn != fn || pc->wakes[i].opaque != opaque ||
                     pc->wakes[i].arg != arg))
        i++;
    if (i == n && n == pc->wcap) {
        size_t cap = pc->wcap ? 2 * pc->wcap : 16;
        struct pc_wake *w = realloc(pc->wakes, cap * sizeof(*w));
        if (!w) {
            pthread_mutex_unlock(&pc->wake_lock);
            return hvi_error(-ENOMEM,
                             "out of memory arming a wake-up for "
                             "guest memory 0x%" PRIx64,
                             gpa);
        }
        pc->wakes = w;
        pc->wcap = cap;
    }
    pc->wakes[i] = (struct pc_wake){gpa, len, fn, opaque, arg};
    if (i == n)
        atomic_store(&pc->nwakes, n + 1);
    pthread_mutex_unlock(&pc->wake_lock);
    /* A page placed (or the end) between the look above and the entry
     * may have fired before the entry was there: look again. */
    r = range(vm, gpa, len, false);
    if (r != 0) {
        pthread_mutex_lock(&pc->wake_lock);
        n = atomic_load(&pc->nwakes);
        for (i = 0; i < n; i++)
            if (pc->wakes[i].fn == fn && pc->wakes[i].opaque == opaque &&
                pc->wakes[i].arg == arg) {
                drop_wake(pc, i);
                break;
            }
        pthread_mutex_unlock(&pc->wake_lock);
    }
    return r;
}

void hvi_postcopy_forget(hvc_vm *vm, void *opaque)
{
    struct hvi_postcopy *pc = vm->postcopy;
    if (!pc)
        return;
    pthread_mutex_lock(&pc->wake_lock);
    for (size_t i = 0; i < atomic_load(&pc->nwakes);)
        if (pc->wakes[i].opaque == opaque)
            drop_wake(pc, i);
        else
            i++;
    pthread_mutex_unlock(&pc->wake_lock);
}

void hvi_pc_fire_wakes(struct hvi_postcopy *pc, bool all)
{
    if (!atomic_load(&pc->nwakes))
        return;
    pthread_mutex_lock(&pc->wake_lock);
    for (size_t i = 0; i < atomic_load(&pc->nwakes);) {
        struct pc_wake w = pc->wakes[i];
        if (all || range(pc->vm, w.gpa, w.len, false) != 0) {
            drop_wake(pc, i);
            w.fn(w.opaque, w.arg);
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&pc->wake_lock);
}

/* hvc_vm_when_present(): the caller's descriptor is the opaque (a small
 * integer no device's pointer equals). */
static void wake_fd(void *opaque, uint32_t arg)
{
    (void)arg;
    uint64_t one = 1;
    ssize_t n = write((int)(intptr_t)opaque, &one, sizeof(one));
    (void)n; /* a full eventfd or pipe already says "look again" */
}

int hvc_vm_when_present(hvc_vm *vm, uint64_t guest_addr, size_t length,
                        int event_fd)
{
    if (!vm || event_fd < 0 || !length)
        return hvi_error(-EINVAL, "hvc_vm_when_present: %s",
                         !vm            ? "NULL VM"
                         : event_fd < 0 ? "negative descriptor"
                                        : "zero length");
    return hvi_postcopy_when_present(vm, guest_addr, length, wake_fd,
                                     (void *)(intptr_t)event_fd, 0);
}

int hvc_vm_when_present_cancel(hvc_vm *vm, int event_fd)
{
    if (!vm || event_fd < 0)
        return hvi_error(-EINVAL, "hvc_vm_when_present_cancel: %s",
                         vm ? "negative descriptor" : "NULL VM");
    hvi_postcopy_forget(vm, (void *)(intptr_t)event_fd);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int hvc_vm_postcopy_stats(hvc_vm *vm, hvc_postcopy_stats *stats)
{
    if (!vm || !stats)
        return hvi_error(-EINVAL, "hvc_vm_postcopy_stats: NULL argument");
    if (stats->size < 2 * sizeof(uint32_t))
        return hvi_error(-EINVAL, "hvc_postcopy_stats: size %u", stats->size);
    hvc_postcopy_stats st = HVC_POSTCOPY_STATS_INIT;
    struct hvi_postcopy *pc = vm->postcopy;
    uint32_t *copy = NULL;
    size_t ns = 0;
    if (pc) {
        pthread_mutex_lock(&pc->lock);
        st.state = (uint32_t)pc->state;
        st.fault_max_us = pc->max_ns / 1000u;
        st.elapsed_ms =
            ((pc->t_end ? pc->t_end : hvi_pc_now_ns()) - pc->t0) / 1000000u;
        if (pc->nsamples && (copy = malloc(pc->nsamples * sizeof(*copy)))) {
            ns = pc->nsamples;
            memcpy(copy, pc->samples, ns * sizeof(*copy));
        }
        pthread_mutex_unlock(&pc->lock);
        st.pages = pc->total;
        st.pages_pushed = atomic_load(&pc->pushed);
        st.pages_requested = atomic_load(&pc->requested);
        st.pages_received = st.pages_pushed + st.pages_requested;
        st.faults = atomic_load(&pc->faults);
        st.zero_faults = atomic_load(&pc->zero_faults);
        st.bytes = pc->main.in.off +
                   (pc->pfd >= 0 ? pc->chan.in.off - HVI_PC_CHANNEL_OFFSET : 0);
        if (st.state == HVC_POSTCOPY_FAILED)
            st.pages_lost = st.pages - st.pages_received;
    }
    if (ns) {
        qsort(copy, ns, sizeof(*copy), cmp_u32);
        st.fault_median_us = copy[ns / 2];
        st.fault_p99_us = copy[(ns * 99) / 100 < ns ? (ns * 99) / 100 : ns - 1];
    }
    free(copy);
    size_t n = stats->size < sizeof(st) ? stats->size : sizeof(st);
    uint32_t size = stats->size;
    memcpy(stats, &st, n);
    stats->size = size;
    return 0;
}

int hvc_vm_postcopy_wait(hvc_vm *vm, int timeout_ms)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_postcopy_wait: NULL VM");
    struct hvi_postcopy *pc = vm->postcopy;
    if (!pc)
        return 0;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms > 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    int r = 0;
    atomic_fetch_add(&pc->waiters, 1);
    pthread_mutex_lock(&pc->lock);
    while (pc->state == HVC_POSTCOPY_RUNNING && r == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&pc->cond, &pc->lock);
        else if (pthread_cond_timedwait(&pc->cond, &pc->lock, &until) ==
                 ETIMEDOUT)
            r = hvi_error(-ETIMEDOUT,
                          "post-copy migration still runs after %d ms "
                          "(%" PRIu64 " pages to come)",
                          timeout_ms, (uint64_t)atomic_load(&pc->left));
    }
    if (r == 0 && pc->state == HVC_POSTCOPY_FAILED)
        r = hvi_error(pc->err, "%s", pc->why);
    pthread_mutex_unlock(&pc->lock);
    atomic_fetch_sub(&pc->waiters, 1);
    return r;
}
