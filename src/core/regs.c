/* Register access: which ids exist is the architecture's (src/arch), the
 * work the backend's; here the checks and the thread rules. */
#include "internal.h"

#include "../arch/x86/regs.h"

#include <errno.h>
#include <inttypes.h>

static int check_ids(const hvc_vcpu *vcpu, const hvc_reg *ids, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (hvi_arch_reg_is_scalar(ids[i]))
            continue;
        if (hvi_arch_reg_is_segment(ids[i]))
            return hvi_error(-EINVAL,
                             "vCPU %u: register id 0x%" PRIx64 " (index %zu) "
                             "is a segment; use hvc_vcpu_get_segment()",
                             vcpu->id, ids[i], i);
        return hvi_error(
            -EINVAL, "vCPU %u: unknown register id 0x%" PRIx64 " (index %zu)",
            vcpu->id, ids[i], i);
    }
    return 0;
}

/* Register calls from another thread while the vCPU is in the guest would
 * read stale state or race the runner; refuse them unless the VM is paused
 * (then the runner is parked and not in the guest). */
static int check_access(const hvc_vcpu *vcpu, const char *what)
{
    if (atomic_load(&((hvc_vcpu *)vcpu)->state) == HVI_VCPU_IDLE ||
        pthread_equal(vcpu->runner, pthread_self()) ||
        atomic_load(&vcpu->vm->pause_depth) > 0)
        return 0;
    return hvi_error(-EBUSY,
                     "%s: vCPU %u is running on another thread; pause the "
                     "VM first",
                     what, vcpu->id);
}

int hvc_vcpu_get_regs(hvc_vcpu *vcpu, const hvc_reg *ids, uint64_t *values,
                      size_t count)
{
    if (!vcpu || (count && (!ids || !values)))
        return hvi_error(-EINVAL, "hvc_vcpu_get_regs: NULL argument");
    int r = check_ids(vcpu, ids, count);
    if (r < 0 || count == 0 || (r = check_access(vcpu, "get_regs")) < 0)
        return r;
    return hvi_bk_get_regs(vcpu, ids, values, count);
}

int hvc_vcpu_set_regs(hvc_vcpu *vcpu, const hvc_reg *ids,
                      const uint64_t *values, size_t count)
{
    if (!vcpu || (count && (!ids || !values)))
        return hvi_error(-EINVAL, "hvc_vcpu_set_regs: NULL argument");
    int r = check_ids(vcpu, ids, count);
    if (r < 0 || count == 0 || (r = check_access(vcpu, "set_regs")) < 0)
        return r;
    /* With the library's chips, IA32_APIC_BASE is the LAPIC's (the
     * backend's copy follows it): the LAPIC takes the value first, and
     * gets its state back if the backend refuses the call. */
    size_t base_at = count;
    for (size_t i = 0; vcpu->vm->uirq && i < count; i++)
        if (ids[i] == HVC_X86_APIC_BASE || ids[i] == HVC_X86_MSR(0x1b))
            base_at = i;
    void *undo = NULL;
    if (base_at < count &&
        (r = hvi_uirq_set_apic_base(vcpu, values[base_at], &undo)) < 0)
        return r;
    r = hvi_bk_set_regs(vcpu, ids, values, count);
    if (undo)
        hvi_uirq_apic_base_done(vcpu, undo, r < 0);
    return r;
}

int hvc_vcpu_get_reg(hvc_vcpu *vcpu, hvc_reg id, uint64_t *value)
{
    return hvc_vcpu_get_regs(vcpu, &id, value, 1);
}

int hvc_vcpu_set_reg(hvc_vcpu *vcpu, hvc_reg id, uint64_t value)
{
    return hvc_vcpu_set_regs(vcpu, &id, &value, 1);
}

static int check_segment(const hvc_vcpu *vcpu, hvc_reg id, const void *seg)
{
    if (!vcpu || !seg)
        return hvi_error(-EINVAL, "segment access: NULL argument");
    if (!hvi_arch_reg_is_segment(id))
        return hvi_error(-EINVAL,
                         "vCPU %u: register id 0x%" PRIx64
                         " is not a segment or descriptor table",
                         vcpu->id, id);
    return check_access(vcpu, "segment access");
}

int hvc_vcpu_get_segment(hvc_vcpu *vcpu, hvc_reg id, hvc_x86_segment *out)
{
    int r = check_segment(vcpu, id, out);
    if (r < 0)
        return r;
    return hvi_bk_get_segment(vcpu, id, out);
}

int hvc_vcpu_set_segment(hvc_vcpu *vcpu, hvc_reg id, const hvc_x86_segment *seg)
{
    int r = check_segment(vcpu, id, seg);
    if (r < 0)
        return r;
    if (seg->type > 0xf || seg->dpl > 3 || seg->present > 1 || seg->db > 1 ||
        seg->s > 1 || seg->l > 1 || seg->g > 1 || seg->avl > 1 ||
        seg->unusable > 1)
        return hvi_error(-EINVAL,
                         "vCPU %u: segment 0x%" PRIx64 " has an out-of-range "
                         "field (type %u, dpl %u, or a flag above 1)",
                         vcpu->id, id, seg->type, seg->dpl);
    return hvi_bk_set_segment(vcpu, id, seg);
}

int hvc_vcpu_fpu_state_size(hvc_vcpu *vcpu, size_t *size)
{
    if (!vcpu || !size)
        return hvi_error(-EINVAL, "hvc_vcpu_fpu_state_size: NULL argument");
    return hvi_bk_fpu_size(vcpu, size);
}

int hvc_vcpu_get_fpu_state(hvc_vcpu *vcpu, void *buf, size_t length)
{
    if (!vcpu || !buf)
        return hvi_error(-EINVAL, "hvc_vcpu_get_fpu_state: NULL argument");
    size_t need;
    int r = hvi_bk_fpu_size(vcpu, &need);
    if (r < 0 || (r = check_access(vcpu, "get_fpu_state")) < 0)
        return r;
    if (length < need)
        return hvi_error(-ENOSPC,
                         "vCPU %u: FPU state needs %zu bytes, the "
                         "buffer has %zu",
                         vcpu->id, need, length);
    return hvi_bk_get_fpu(vcpu, buf, length);
}

int hvc_vcpu_set_fpu_state(hvc_vcpu *vcpu, const void *buf, size_t length)
{
    if (!vcpu || !buf)
        return hvi_error(-EINVAL, "hvc_vcpu_set_fpu_state: NULL argument");
    size_t need;
    int r = hvi_bk_fpu_size(vcpu, &need);
    if (r < 0 || (r = check_access(vcpu, "set_fpu_state")) < 0)
        return r;
    if (length != need)
        return hvi_error(-EINVAL, "vCPU %u: FPU state is %zu bytes, not %zu",
                         vcpu->id, need, length);
    return hvi_bk_set_fpu(vcpu, buf, length);
}
