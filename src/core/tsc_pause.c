/* What a pause does to the guest's clocks. hvc_vm_pause() takes a pause
 * point once the last vCPU stopped; hvc_vm_resume() applies the policy:
 * advance leaves the clocks running (they already include the pause),
 * freeze runs the restore procedure from the pause point with no elapsed
 * time. Both run under vm->lock with every vCPU parked. */
#include "tsc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Freeze: an armed TSC-deadline timer counts host time and would fire
 * while the guest's TSC stands still, so it is taken off at the pause
 * point and armed again, against the restored TSC, at resume. */
static int disarm_deadlines(hvc_vm *vm)
{
    struct hvi_tsc *t = vm->tsc;
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++) {
        uint64_t dl;
        if (!vm->vcpus[i] ||
            !hvi_tsc_msr_get(vm->vcpus[i], HVI_MSR_TSC_DEADLINE, &dl) || !dl)
            continue;
        int r = hvi_tsc_msr_set(vm->vcpus[i], HVI_MSR_TSC_DEADLINE, 0);
        if (r < 0) {
            for (uint32_t j = 0; j < i; j++)
                if (vm->vcpus[j] && t->deadline[j])
                    hvi_tsc_msr_set(vm->vcpus[j], HVI_MSR_TSC_DEADLINE,
                                    t->deadline[j]);
            return r;
        }
        t->deadline[i] = dl;
    }
    return 0;
}

int hvi_tsc_paused(hvc_vm *vm)
{
    struct hvi_tsc *t = vm->tsc;
    const hvc_backend_tsc_ops *ops = hvi_tsc_ops(vm);
    if (t->paused || !ops)
        return 0;
    int r = ops->vm_get_clock(vm->priv, &t->point);
    if (r < 0)
        return r;
    if (t->policy.pause == HVC_TSC_PAUSE_FREEZE && hvi_tsc_has_irqchip(vm)) {
        if ((r = disarm_deadlines(vm)) < 0) {
            for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
                t->deadline[i] = 0;
            return r;
        }
        t->frozen = true;
    }
    t->point_mono_ns = mono_ns();
    t->paused = true;
    return 0;
}

/* Freeze: the pause point becomes a state record with each vCPU's offset
 * of now, restored with no elapsed time. The TSC-deadline timers taken
 * off at the pause come back in the same step, after the TSC. */
static int resume_frozen(hvc_vm *vm)
{
    struct hvi_tsc *t = vm->tsc;
    hvc_tsc_info info;
    int r = hvi_tsc_info(vm, &info, NULL);
    if (r < 0)
        return r;
    hvc_tsc_vcpu_state *e = calloc(vm->nr_vcpus ? vm->nr_vcpus : 1, sizeof(*e));
    if (!e)
        return hvi_error(-ENOMEM, "out of memory resuming the VM");
    hvc_tsc_state h = {0};
    h.tsc_khz = hvi_tsc_told_khz(vm, &info);
    h.host_tsc = t->point.host_tsc;
    h.kvmclock_ns = t->point.clock_ns;
    h.realtime_ns = t->point.realtime_ns;
    uint32_t n = 0;
    for (uint32_t i = 0; i < vm->opts.max_vcpus && r == 0; i++) {
        if (!vm->vcpus[i])
            continue;
        hvc_tsc_vcpu_state *v = &e[n++];
        v->id = i;
        r = hvi_bk_get_offset(vm->vcpus[i], &v->offset);
        v->guest_tsc = hvi_tsc_scaled(vm, h.host_tsc) + v->offset;
        if (t->frozen && t->deadline[i]) {
            v->flags = HVC_TSC_VCPU_DEADLINE;
            v->tsc_deadline = t->deadline[i];
        }
    }
    if (r == 0)
        r = hvi_tsc_apply(vm, &h, e, n, HVC_TSC_PAUSE_FREEZE, 0, 0);
    free(e);
    return r;
}

int hvi_tsc_resuming(hvc_vm *vm)
{
    struct hvi_tsc *t = vm->tsc;
    const hvc_backend_tsc_ops *ops = hvi_tsc_ops(vm);
    if (!t->paused || !ops)
        return 0;
    uint64_t paused_ns = mono_ns() - t->point_mono_ns;
    bool freeze = t->policy.pause == HVC_TSC_PAUSE_FREEZE;
    int r = 0;
    if (freeze) {
        r = resume_frozen(vm);
    } else if (t->frozen) {
        /* Frozen at the pause, advancing now (the policy changed): the
         * deadlines come back against the running TSC. */
        for (uint32_t i = 0; i < vm->opts.max_vcpus && r == 0; i++)
            if (vm->vcpus[i] && t->deadline[i])
                r = hvi_tsc_msr_set(vm->vcpus[i], HVI_MSR_TSC_DEADLINE,
                                    t->deadline[i]);
    }
    if (r < 0)
        return r;
    /* PIT ticks missed while paused are queued for reinjection. They are
     * the guest's time only when its clocks advanced through the pause,
     * and only as far back as the policy wants caught up. */
    uint64_t max_ns = (uint64_t)t->policy.catchup_max_ms * 1000000u;
    if (hvi_tsc_has_irqchip(vm) && (t->policy.catchup & HVC_TSC_CATCHUP_PIT) &&
        (freeze || (max_ns && paused_ns > max_ns)) &&
        (r = ops->vm_drop_pit_backlog(vm->priv)) < 0)
        return r;
    t->paused = false;
    t->frozen = false;
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
        t->deadline[i] = 0;
    return 0;
}
