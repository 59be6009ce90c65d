/* The guest TSC of each vCPU, as a value and as an offset. Every write
 * without HVC_TSC_THIS_VCPU puts one offset on all vCPUs: KVM keeps its
 * master clock (a stable, TSC-based kvmclock) only while every vCPU has
 * the same offset. */
#include "tsc_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

/* As for registers (regs.c): the runner thread itself, or a vCPU that
 * cannot be in the guest. */
static int vcpu_access(hvc_vcpu *vcpu, const char *what)
{
    if (atomic_load(&vcpu->state) == HVI_VCPU_IDLE ||
        pthread_equal(vcpu->runner, pthread_self()) || vcpu->vm->tsc->paused)
        return 0;
    return hvi_error(-EBUSY,
                     "%s: vCPU %u is running on another thread; pause the "
                     "VM first",
                     what, vcpu->id);
}

/* While paused under the freeze policy the guest TSC stands at the pause
 * point: reads and writes are as of then. */
static uint64_t host_now(hvc_vm *vm)
{
    const struct hvi_tsc *t = vm->tsc;
    if (t->paused && t->policy.pause == HVC_TSC_PAUSE_FREEZE)
        return t->point.host_tsc;
    return hvi_tsc_ops(vm)->host_tsc(vm->hv->priv);
}

static int begin(hvc_vcpu *vcpu, const char *what)
{
    if (!vcpu)
        return hvi_error(-EINVAL, "%s: vCPU is NULL", what);
    int r = hvi_tsc_need_ops(vcpu->vm, what);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vcpu->vm->lock);
    if ((r = vcpu_access(vcpu, what)) < 0)
        pthread_mutex_unlock(&vcpu->vm->lock);
    return r;
}

int hvc_vcpu_get_tsc_offset(hvc_vcpu *vcpu, uint64_t *offset)
{
    if (!offset)
        return hvi_error(-EINVAL, "hvc_vcpu_get_tsc_offset: NULL offset");
    int r = begin(vcpu, "hvc_vcpu_get_tsc_offset");
    if (r < 0)
        return r;
    r = hvi_bk_get_offset(vcpu, offset);
    pthread_mutex_unlock(&vcpu->vm->lock);
    return r;
}

int hvc_vcpu_get_tsc(hvc_vcpu *vcpu, uint64_t *tsc)
{
    if (!tsc)
        return hvi_error(-EINVAL, "hvc_vcpu_get_tsc: NULL tsc");
    int r = begin(vcpu, "hvc_vcpu_get_tsc");
    if (r < 0)
        return r;
    hvc_vm *vm = vcpu->vm;
    uint64_t ofs;
    r = hvi_bk_get_offset(vcpu, &ofs);
    if (r == 0)
        *tsc = hvi_tsc_scaled(vm, host_now(vm)) + ofs;
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* Writes @p ofs to each vCPU of @p list, re-arming an armed TSC deadline
 * against the new TSC (KVM armed its timer for the old one). All or none:
 * a failure puts back the offsets already written. */
static int write_offsets(hvc_vm *vm, hvc_vcpu **list, const uint64_t *old,
                         uint32_t n, uint64_t ofs)
{
    /* Deadlines taken off for a frozen pause are armed at resume. */
    bool rearm = hvi_tsc_has_irqchip(vm) && !vm->tsc->frozen;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t dl = 0;
        bool armed =
            rearm && hvi_tsc_msr_get(list[i], HVI_MSR_TSC_DEADLINE, &dl) && dl;
        int r = hvi_bk_set_offset(list[i], ofs);
        if (r == 0 && armed)
            r = hvi_tsc_msr_set(list[i], HVI_MSR_TSC_DEADLINE, dl);
        if (r < 0) {
            for (uint32_t j = 0; j <= i; j++)
                hvi_bk_set_offset(list[j], old[j]);
            return r;
        }
    }
    return 0;
}

static int set_offset_locked(hvc_vcpu *vcpu, uint64_t ofs, uint32_t flags,
                             const char *what)
{
    hvc_vm *vm = vcpu->vm;
    struct hvi_tsc *t = vm->tsc;
    bool one = flags & HVC_TSC_THIS_VCPU;
    if (!one && !hvi_tsc_all_stopped(vm))
        return hvi_error(-EBUSY,
                         "%s: a vCPU of the VM is running; a VM-wide TSC "
                         "write needs every vCPU stopped (pause the VM, or "
                         "pass HVC_TSC_THIS_VCPU)",
                         what);
    hvc_tsc_info info;
    int r = hvi_tsc_info(vm, &info, NULL);
    if (r < 0)
        return r;
    hvc_vcpu **list = calloc(vm->opts.max_vcpus, sizeof(*list));
    uint64_t *old = calloc(vm->opts.max_vcpus, sizeof(*old));
    if (!list || !old) {
        r = hvi_error(-ENOMEM, "%s: out of memory", what);
        goto out;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
        if (one ? vm->vcpus[i] == vcpu : vm->vcpus[i] != NULL)
            list[n++] = vm->vcpus[i];
    for (uint32_t i = 0; i < n && r == 0; i++)
        r = hvi_bk_get_offset(list[i], &old[i]);
    if (r < 0)
        goto out;
    if (!(info.flags & HVC_TSC_OFFSET)) {
        /* Nothing can move; asking for what is there is no change. */
        for (uint32_t i = 0; i < n; i++)
            if (old[i] != ofs) {
                r = hvi_error(-ENOTSUP,
                              "%s: this host cannot offset the guest TSC "
                              "(its KVM ignores KVM_VCPU_TSC_OFFSET "
                              "writes); vCPU %u keeps offset 0x%" PRIx64,
                              what, list[i]->id, old[i]);
                goto out;
            }
    } else if ((r = write_offsets(vm, list, old, n, ofs)) < 0) {
        goto out;
    }
    if (!one) {
        t->shared_valid = true;
        t->shared_offset = ofs;
    }
out:
    free(list);
    free(old);
    return r;
}

int hvc_vcpu_set_tsc_offset(hvc_vcpu *vcpu, uint64_t offset, uint32_t flags)
{
    if (flags & ~(uint32_t)HVC_TSC_THIS_VCPU)
        return hvi_error(-EINVAL, "hvc_vcpu_set_tsc_offset: unknown flags 0x%x",
                         flags);
    int r = begin(vcpu, "hvc_vcpu_set_tsc_offset");
    if (r < 0)
        return r;
    r = set_offset_locked(vcpu, offset, flags, "hvc_vcpu_set_tsc_offset");
    pthread_mutex_unlock(&vcpu->vm->lock);
    return r;
}

int hvc_vcpu_set_tsc(hvc_vcpu *vcpu, uint64_t tsc, uint32_t flags)
{
    if (flags & ~(uint32_t)HVC_TSC_THIS_VCPU)
        return hvi_error(-EINVAL, "hvc_vcpu_set_tsc: unknown flags 0x%x",
                         flags);
    int r = begin(vcpu, "hvc_vcpu_set_tsc");
    if (r < 0)
        return r;
    hvc_vm *vm = vcpu->vm;
    r = set_offset_locked(vcpu, tsc - hvi_tsc_scaled(vm, host_now(vm)), flags,
                          "hvc_vcpu_set_tsc");
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int hvi_tsc_vcpu_created(hvc_vcpu *vcpu)
{
    hvc_vm *vm = vcpu->vm;
    const hvc_backend_tsc_ops *ops = hvi_tsc_ops(vm);
    struct hvi_tsc *t = vm->tsc;
    if (!ops)
        return 0;
    /* KVM lines a new vCPU up with the others only if it comes within a
     * second of them; say it explicitly, so that a vCPU created late (or
     * after a restore) joins the shared offset. */
    if (t->shared_valid)
        return hvi_bk_set_offset(vcpu, t->shared_offset);
    int r = hvi_bk_get_offset(vcpu, &t->shared_offset);
    t->shared_valid = r == 0;
    return r;
}
