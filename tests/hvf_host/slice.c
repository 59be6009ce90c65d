/* tests/hvf_host: the interrupt window while the guest keeps interrupts
 * off. KVM on PVM does not report the window opening, so run.c steps the
 * guest one instruction at a time until it can take an interrupt (tens of
 * microseconds a step). A guest that polls with RFLAGS.IF clear for
 * seconds (a driver spinning on a used ring with a device line raised)
 * would crawl at that rate, where VMX's interrupt-window exiting costs
 * nothing until IF is set. So after WINDOW_STEPS steps all with IF clear,
 * the guest runs unstepped for a slice (1 ms, doubling up to 16 ms while IF
 * stays clear), ended by a timer sending the kick signal to the vCPU
 * thread; the slice's end looks to run.c like a step's (KVM_EXIT_DEBUG),
 * where it checks the window again, and stepping resumes. The window can
 * thus open and close inside a slice unseen: the interrupt then comes at a
 * later instruction boundary with IF set, later than VMX would deliver it,
 * never at one where the guest has interrupts off.
 *
 * The count of steps with IF clear survives the guest's other exits while
 * the window stays asked for: a guest that keeps IF clear and exits every
 * few instructions (port or MMIO polling with a device line raised) would
 * otherwise restart its WINDOW_STEPS steps after each exit, ~18 KVM_RUNs
 * an exit (measured: 727 us per port access of
 * test_malicious_guest.c's platform fuzz, against 19 us on KVM). Such a
 * guest runs sliced from exit to exit; the window is checked at each
 * entry as before (run.c), and at each slice's end. The count starts over
 * when IF is seen set (here, or at an entry), after a slice the timer
 * ended, and when the window opens (hvfh_slice_reset()). */
#define _GNU_SOURCE
#include "hvfh.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define WINDOW_STEPS 32
#define SLICE_MIN_NS 1000000L
#define SLICE_MAX_NS 16000000L

static void guest_debug(struct hvfh_vcpu *v, int step)
{
    struct kvm_guest_debug d;
    memset(&d, 0, sizeof(d));
    if (step)
        d.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
    ioctl(v->fd, KVM_SET_GUEST_DEBUG, &d);
}

static int arm(struct hvfh_vcpu *v, long ns)
{
    if (!v->win_timer_ok) {
        struct sigevent ev;
        memset(&ev, 0, sizeof(ev));
        ev.sigev_notify = SIGEV_THREAD_ID;
        ev.sigev_signo = hvfh_kick_signal();
        ev._sigev_un._tid = v->tid;
        if (timer_create(CLOCK_MONOTONIC, &ev, &v->win_timer))
            return -1;
        v->win_timer_ok = 1;
    }
    struct itimerspec t = {.it_value = {0, ns}};
    return timer_settime(v->win_timer, 0, &t, NULL);
}

static void disarm(struct hvfh_vcpu *v)
{
    struct itimerspec t;
    memset(&t, 0, sizeof(t));
    timer_settime(v->win_timer, 0, &t, NULL);
}

int hvfh_slice_begin(struct hvfh_vcpu *v)
{
    /* not a run: run.c's completion of what KVM left pending (its
     * EINTR would pass for a slice's end) */
    if (!v->stepping ||
        __atomic_load_n(&v->run->immediate_exit, __ATOMIC_SEQ_CST))
        return 0;
    if (hvfh_load_regs(v) || (v->regs.rflags & (1u << 9))) {
        hvfh_slice_reset(v);
        return 0;
    }
    if (++v->win_if_off <= WINDOW_STEPS)
        return 0;
    long ns = v->win_slice_ns ? v->win_slice_ns * 2 : SLICE_MIN_NS;
    v->win_slice_ns = ns > SLICE_MAX_NS ? SLICE_MAX_NS : ns;
    guest_debug(v, 0);
    if (arm(v, v->win_slice_ns)) {
        guest_debug(v, 1);
        return 0;
    }
    return 1;
}

int hvfh_slice_end(struct hvfh_vcpu *v, int rc, int *err)
{
    disarm(v);
    guest_debug(v, 1); /* run.c turns it off at its exit */
    if (rc < 0 && *err == EINTR && !atomic_load(&v->kick) &&
        !atomic_load(&hvfh_vm.memop)) {
        /* the slice's end: an instruction boundary, as a step's; steps
         * again before the next slice */
        v->win_if_off = 0;
        v->run->exit_reason = KVM_EXIT_DEBUG;
        *err = 0;
        return 0;
    }
    return rc;
}

void hvfh_slice_reset(struct hvfh_vcpu *v)
{
    v->win_if_off = 0;
    v->win_slice_ns = 0;
}

void hvfh_slice_fini(struct hvfh_vcpu *v)
{
    if (v->win_timer_ok)
        timer_delete(v->win_timer);
    v->win_timer_ok = 0;
}
