/* Live migration's pacing: the bandwidth limit of the pre-copy passes
 * and auto-converge's vCPU throttle.
 *
 * The limit is a token bucket measured from the start of pre-copy: after
 * B bytes the writer may not be ahead of B / rate seconds. Credit saved
 * while the writer was idle (fetching the dirty log) is capped at 100 ms,
 * so a burst never exceeds the rate by more than that.
 *
 * The throttle is one thread that holds the VM paused (hvc_vm_pause) for
 * percent% of every 20 ms slice. It takes no lock of its own; the pause
 * and resume take the VM's, as any caller's would. The sender stops it
 * (joined, VM running) before the switchover's own pause. */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#define SLICE_NS 20000000ull
#define MAX_CREDIT_NS 100000000ull

void hvi_pacer_init(struct hvi_pacer *p, uint32_t mib_per_s, uint64_t now)
{
    p->bps = (uint64_t)mib_per_s << 20;
    p->start_ns = now;
    p->sent = 0;
}

uint64_t hvi_pacer_account(struct hvi_pacer *p, uint64_t bytes, uint64_t now)
{
    if (!p->bps)
        return 0;
    p->sent += bytes;
    uint64_t due = (uint64_t)((unsigned __int128)p->sent * 1000000000u /
                              p->bps); /* ns the bytes sent so far need */
    uint64_t elapsed = now - p->start_ns;
    if (elapsed > due + MAX_CREDIT_NS) {
        /* Idle long enough to save more than the cap: start over with
         * the cap as credit. */
        p->start_ns = now - MAX_CREDIT_NS;
        p->sent = 0;
        return 0;
    }
    return due > elapsed ? due - elapsed : 0;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec t = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&t, &t) < 0 && errno == EINTR)
        ;
}

static void *throttle_main(void *arg)
{
    struct hvi_throttle *t = arg;
    while (!atomic_load(&t->stop)) {
        uint32_t pct = atomic_load(&t->percent);
        uint64_t held = SLICE_NS * pct / 100u;
        int r = hvc_vm_pause(t->vm);
        if (r < 0) {
            atomic_store(&t->error, r);
            break;
        }
        sleep_ns(held);
        r = hvc_vm_resume(t->vm);
        if (r < 0) {
            atomic_store(&t->error, r);
            break;
        }
        sleep_ns(SLICE_NS - held);
    }
    return NULL;
}

int hvi_throttle_set(struct hvi_throttle *t, hvc_vm *vm, uint32_t percent)
{
    if (percent > 99)
        percent = 99;
    atomic_store(&t->percent, percent);
    if (t->running)
        return 0;
    t->vm = vm;
    atomic_store(&t->stop, 0);
    atomic_store(&t->error, 0);
    int e = pthread_create(&t->thread, NULL, throttle_main, t);
    if (e)
        return hvi_error(-e,
                         "auto-converge: cannot start the throttle "
                         "thread: %s",
                         hvc_strerror(-e));
    t->running = true;
    return 0;
}

int hvi_throttle_stop(struct hvi_throttle *t)
{
    if (!t->running)
        return 0;
    atomic_store(&t->stop, 1);
    pthread_join(t->thread, NULL);
    t->running = false;
    int r = atomic_load(&t->error);
    if (r < 0)
        return hvi_error(r,
                         "auto-converge: the throttle could not pause or "
                         "resume the VM: %s",
                         hvc_strerror(r));
    return 0;
}
