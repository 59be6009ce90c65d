/* The restore procedure of the kernel's
 * Documentation/virt/kvm/devices/vcpu.rst (KVM_VCPU_TSC_OFFSET), used by
 * hvc_vm_restore_tsc() and by a resume under the freeze policy:
 *
 *   4. set kvmclock to the record's value, advanced by the time elapsed
 *      since the record's pause point unless the policy freezes it;
 *   5. sample kvmclock together with the host TSC;
 *   6. per vCPU: offset = guest_tsc_src + (kvmclock_dst - kvmclock_src) *
 *      frequency - scaled host_tsc_dst (hvi_restore_offset), which keeps
 *      "guest TSC - kvmclock * frequency" what it was on the source;
 *   7. write the offsets; then IA32_TSC_ADJUST; then IA32_TSC_DEADLINE, so
 *      a deadline is armed against the restored TSC.
 *
 * Departures, each for a host the document does not cover (docs/TSC.md):
 * the elapsed time comes from the host TSC when the record is from the
 * same host boot (CLOCK_REALTIME may be stepped meanwhile; the TSC is
 * not); the backend brackets step 5 when the kernel does not return the
 * host TSC with kvmclock, and emulates KVM_CLOCK_REALTIME when the kernel
 * lacks it; and a host that cannot offset the TSC gets the restore only if
 * step 6 would leave every offset where it is, within max_error_us. */
#include "tsc_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same_boot(const uint8_t a[16], const uint8_t b[16])
{
    static const uint8_t zero[16];
    return memcmp(a, zero, 16) != 0 && memcmp(a, b, 16) == 0;
}

/* kvmclock advanced from the record's by the host TSC up to @p tsc. */
static uint64_t target_at(const hvc_tsc_state *h, uint64_t tsc,
                          const hvc_tsc_info *info)
{
    uint64_t ns = tsc > h->host_tsc
                      ? hvi_cycles_to_ns(tsc - h->host_tsc, info->host_tsc_khz)
                      : 0;
    return h->kvmclock_ns + ns;
}

struct apply {
    hvc_vcpu **vcpu;
    uint64_t *old_offset;
    uint64_t *old_adjust;
    uint8_t *had_adjust;
    uint64_t *deadline;
    uint8_t *write_deadline;
};

static void free_apply(struct apply *a)
{
    free(a->vcpu);
    free(a->old_offset);
    free(a->old_adjust);
    free(a->had_adjust);
    free(a->deadline);
    free(a->write_deadline);
}

/* What each vCPU has now, to put back on a failure, and which deadline it
 * gets once its TSC is restored: the record's, or (for a record without
 * one) its own armed deadline, re-armed against the new TSC. */
static int gather(hvc_vm *vm, const hvc_tsc_vcpu_state *e, uint32_t n,
                  struct apply *a)
{
    size_t k = n ? n : 1;
    a->vcpu = calloc(k, sizeof(*a->vcpu));
    a->old_offset = calloc(k, sizeof(uint64_t));
    a->old_adjust = calloc(k, sizeof(uint64_t));
    a->had_adjust = calloc(k, 1);
    a->deadline = calloc(k, sizeof(uint64_t));
    a->write_deadline = calloc(k, 1);
    if (!a->vcpu || !a->old_offset || !a->old_adjust || !a->had_adjust ||
        !a->deadline || !a->write_deadline)
        return hvi_error(-ENOMEM, "out of memory restoring the TSC");
    bool lapic = hvi_tsc_has_irqchip(vm);
    for (uint32_t i = 0; i < n; i++) {
        hvc_vcpu *v = a->vcpu[i] = vm->vcpus[e[i].id];
        int r = hvi_bk_get_offset(v, &a->old_offset[i]);
        if (r < 0)
            return r;
        a->had_adjust[i] =
            hvi_tsc_msr_get(v, HVI_MSR_TSC_ADJUST, &a->old_adjust[i]);
        if (!lapic)
            continue;
        if (e[i].flags & HVC_TSC_VCPU_DEADLINE) {
            a->deadline[i] = e[i].tsc_deadline;
            a->write_deadline[i] = 1;
        } else if (!vm->tsc->frozen &&
                   hvi_tsc_msr_get(v, HVI_MSR_TSC_DEADLINE, &a->deadline[i])) {
            a->write_deadline[i] = a->deadline[i] != 0;
        }
    }
    return 0;
}

/* Hosts without TSC offsetting: the restore is possible only if step 6
 * would leave every offset where it is. Checked with a fresh sample before
 * anything changes. */
/* TSC ticks at khz to microseconds for a message, for any 64-bit value (a
 * record may put the TSC anywhere): miss * 1000 / khz would overflow. */
static int64_t ticks_to_us(int64_t ticks, uint32_t khz)
{
    int64_t k = (int64_t)khz;
    return ticks / k * 1000 + ticks % k * 1000 / k;
}

static int check_fixed(hvc_vm *vm, const hvc_tsc_state *h,
                       const hvc_tsc_vcpu_state *e, uint32_t n,
                       const struct apply *a, const hvc_backend_clock *now,
                       uint64_t target, uint64_t since_rt, uint32_t khz,
                       uint32_t pause, uint32_t max_error_us)
{
    uint64_t clock_then = target;
    if (since_rt && now->realtime_ns > since_rt)
        clock_then += now->realtime_ns - since_rt;
    uint64_t scaled = hvi_tsc_scaled(vm, now->host_tsc);
    /* In 64 bits without overflow: max_error_us and khz are 32-bit. */
    int64_t limit = (int64_t)((uint64_t)max_error_us * khz / 1000);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t want = hvi_restore_offset(e[i].guest_tsc, h->kvmclock_ns,
                                           scaled, clock_then, khz);
        int64_t miss = (int64_t)(want - a->old_offset[i]);
        if (miss <= limit && miss >= -limit)
            continue;
        return hvi_error(-ENOTSUP,
                         "the TSC record puts vCPU %u's TSC %+" PRId64
                         " us from where this host has it (at most %u us "
                         "allowed), and this host cannot offset the guest "
                         "TSC (its KVM ignores KVM_VCPU_TSC_OFFSET)%s",
                         e[i].id, ticks_to_us(miss, khz), max_error_us,
                         pause == HVC_TSC_PAUSE_FREEZE
                             ? ": it cannot hide the time since the record"
                             : "");
    }
    return 0;
}

int hvi_tsc_apply(hvc_vm *vm, const hvc_tsc_state *h,
                  const hvc_tsc_vcpu_state *e, uint32_t n, uint32_t pause,
                  uint32_t max_error_us, uint32_t flags)
{
    struct hvi_tsc *t = vm->tsc;
    const hvc_backend_tsc_ops *ops = hvi_tsc_ops(vm);
    struct apply a;
    memset(&a, 0, sizeof(a));
    hvc_tsc_info info;
    uint8_t boot[16];
    int r = hvi_tsc_info(vm, &info, boot);
    if (r == 0)
        r = gather(vm, e, n, &a);
    if (r < 0)
        goto out;
    uint32_t khz = hvi_tsc_rate_khz(vm, &info);
    bool can_offset = info.flags & HVC_TSC_OFFSET;

    /* Step 4's value: what kvmclock should read at host TSC t. On the same
     * boot it is taken from the host TSC, read again right before the
     * write, so that kvmclock does not lag by the time spent here. */
    bool by_tsc = pause == HVC_TSC_PAUSE_ADVANCE &&
                  same_boot(h->host_boot_id, boot) &&
                  h->host_tsc_khz == info.host_tsc_khz;
    uint64_t since_rt = 0; /* the kernel's KVM_CLOCK_REALTIME */
    if (pause == HVC_TSC_PAUSE_ADVANCE && !by_tsc)
        since_rt = h->realtime_ns;
    hvc_backend_clock before, after;
    if ((r = ops->vm_get_clock(vm->priv, &before)) < 0)
        goto out;
    if (!can_offset &&
        (r = check_fixed(vm, h, e, n, &a, &before,
                         by_tsc ? target_at(h, before.host_tsc, &info)
                                : h->kvmclock_ns,
                         since_rt, khz, pause, max_error_us)) < 0)
        goto out;

    /* Steps 4 to 7. */
    uint64_t target = by_tsc ? target_at(h, ops->host_tsc(vm->hv->priv), &info)
                             : h->kvmclock_ns;
    if ((r = ops->vm_set_clock(vm->priv, target, since_rt)) < 0)
        goto out;
    if ((r = ops->vm_get_clock(vm->priv, &after)) < 0)
        goto undo;
    uint64_t scaled = hvi_tsc_scaled(vm, after.host_tsc), first = 0;
    bool shared = can_offset;
    for (uint32_t i = 0; can_offset && i < n; i++) {
        uint64_t ofs = hvi_restore_offset(e[i].guest_tsc, h->kvmclock_ns,
                                          scaled, after.clock_ns, khz);
        if ((r = hvi_bk_set_offset(a.vcpu[i], ofs)) < 0)
            goto undo;
        if (i == 0)
            first = ofs;
        shared &= ofs == first;
    }
    for (uint32_t i = 0; i < n; i++)
        if ((e[i].flags & HVC_TSC_VCPU_ADJUST) &&
            (r = hvi_tsc_msr_set(a.vcpu[i], HVI_MSR_TSC_ADJUST,
                                 e[i].tsc_adjust)) < 0)
            goto undo;
    for (uint32_t i = 0; i < n; i++) {
        if (!a.write_deadline[i])
            continue;
        if (flags & HVI_APPLY_DEFER_DEADLINES) {
            t->deadline[e[i].id] = a.deadline[i];
            t->frozen = true;
        } else if ((r = hvi_tsc_msr_set(a.vcpu[i], HVI_MSR_TSC_DEADLINE,
                                        a.deadline[i])) < 0) {
            goto undo;
        } else {
            t->deadline[e[i].id] = 0; /* armed: nothing left for resume */
        }
    }
    if (shared && n) {
        t->shared_valid = true;
        t->shared_offset = first;
    }
    goto out;
undo:;
    /* Put back what this call changed; the clock goes back to where it
     * was, advanced by the time since (so it does not run backwards). */
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", hvc_last_error());
    for (uint32_t i = 0; i < n; i++) {
        if (can_offset)
            hvi_bk_set_offset(a.vcpu[i], a.old_offset[i]);
        if (a.had_adjust[i])
            hvi_tsc_msr_set(a.vcpu[i], HVI_MSR_TSC_ADJUST, a.old_adjust[i]);
    }
    ops->vm_set_clock(vm->priv, before.clock_ns, before.realtime_ns);
    hvi_error(r, "%s (nothing was changed)", msg);
out:
    free_apply(&a);
    return r;
}
