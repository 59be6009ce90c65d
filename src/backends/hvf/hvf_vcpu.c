/* HVF vCPUs: creation on the calling thread, VMCS and register helpers,
 * the kick, and completing a pending exit without entering (flush).
 *
 * The framework binds a vCPU to the thread that created it: every other
 * hv_vcpu_* call from another thread fails. The backend declares
 * HVC_BACKEND_VCPU_THREAD_BOUND, so the core makes every vCPU call on that
 * thread, except vcpu_kick (hv_vcpu_interrupt, which any thread may call). */
#include "hvf.h"

#include "hvf_vmx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* What to add to a message when a call failed on a foreign thread. */
static const char *thread_note(struct hvi_hvf_vcpu *v)
{
    return pthread_equal(v->owner, pthread_self())
               ? ""
               : " (called off the vCPU's thread: Hypervisor.framework "
                 "binds a vCPU to the thread that created it)";
}

int hvi_hvf_rvmcs(struct hvi_hvf_vcpu *v, uint32_t field, uint64_t *value)
{
    hv_return_t r = hvi_hvf.hv_vmx_vcpu_read_vmcs(v->vcpu, field, value);
    if (r != HV_SUCCESS)
        return hvi_error(r == HV_BAD_ARGUMENT ? -EINVAL : -EIO,
                         "vCPU %u: reading VMCS field 0x%x: %s%s", v->id, field,
                         hvi_hvf_ret_name(r), thread_note(v));
    return 0;
}

int hvi_hvf_wvmcs(struct hvi_hvf_vcpu *v, uint32_t field, uint64_t value)
{
    hv_return_t r = hvi_hvf.hv_vmx_vcpu_write_vmcs(v->vcpu, field, value);
    if (r != HV_SUCCESS)
        return hvi_error(
            r == HV_BAD_ARGUMENT ? -EINVAL : -EIO,
            "vCPU %u: writing 0x%" PRIx64 " to VMCS field 0x%x: %s%s", v->id,
            value, field, hvi_hvf_ret_name(r), thread_note(v));
    return 0;
}

uint64_t hvi_hvf_vmcs(struct hvi_hvf_vcpu *v, uint32_t field)
{
    uint64_t value = 0;
    hvi_hvf.hv_vmx_vcpu_read_vmcs(v->vcpu, field, &value);
    return value;
}

int hvi_hvf_rreg(struct hvi_hvf_vcpu *v, hv_x86_reg_t reg, uint64_t *value)
{
    hv_return_t r = hvi_hvf.hv_vcpu_read_register(v->vcpu, reg, value);
    if (r != HV_SUCCESS)
        return hvi_error(r == HV_BAD_ARGUMENT ? -EINVAL : -EIO,
                         "vCPU %u: hv_vcpu_read_register(%d): %s%s", v->id,
                         (int)reg, hvi_hvf_ret_name(r), thread_note(v));
    return 0;
}

int hvi_hvf_wreg(struct hvi_hvf_vcpu *v, hv_x86_reg_t reg, uint64_t value)
{
    hv_return_t r = hvi_hvf.hv_vcpu_write_register(v->vcpu, reg, value);
    if (r != HV_SUCCESS)
        return hvi_error(
            r == HV_BAD_ARGUMENT ? -EINVAL : -EIO,
            "vCPU %u: hv_vcpu_write_register(%d, 0x%" PRIx64 "): %s%s", v->id,
            (int)reg, value, hvi_hvf_ret_name(r), thread_note(v));
    return 0;
}

int hvi_hvf_skip(struct hvi_hvf_vcpu *v, uint64_t len)
{
    uint64_t rip;
    int r = hvi_hvf_rvmcs(v, VMCS_GUEST_RIP, &rip);
    if (r == 0)
        r = hvi_hvf_wvmcs(v, VMCS_GUEST_RIP, rip + len);
    /* The instruction retired: an STI or MOV SS shadow before it ends. */
    if (r == 0) {
        uint64_t irq = hvi_hvf_vmcs(v, VMCS_GUEST_IGNORE_IRQ);
        if (irq & 3)
            r = hvi_hvf_wvmcs(v, VMCS_GUEST_IGNORE_IRQ, irq & ~3ull);
    }
    return r;
}

int hvi_hvf_inject_exception(struct hvi_hvf_vcpu *v, uint8_t vector,
                             bool has_error, uint32_t error)
{
    uint64_t info = IRQ_INFO_VALID | IRQ_INFO_HARD_EXC | vector;
    int r = 0;
    if (has_error) {
        info |= IRQ_INFO_ERROR_VALID;
        r = hvi_hvf_wvmcs(v, VMCS_CTRL_VMENTRY_EXC_ERROR, error);
    }
    if (r == 0)
        r = hvi_hvf_wvmcs(v, VMCS_CTRL_VMENTRY_IRQ_INFO, info);
    return r;
}

int hvi_hvf_vcpu_create(void *vm_priv, uint32_t id, void **out)
{
    struct hvi_hvf_vm *vm = vm_priv;
    struct hvi_hvf_vcpu *v = calloc(1, sizeof(*v));
    if (!v)
        return hvi_error(-ENOMEM, "out of memory creating vCPU %u", id);
    v->vm = vm;
    v->id = id;
    v->owner = pthread_self();
    v->fpu_size = (size_t)vm->hvf->caps[HVC_CAP_FPU_STATE_SIZE];
    /* Guest TSC = hv_tsc_clock() + offset (hvf_tsc.c). */
    hv_return_t h = hvi_hvf.hv_vcpu_create(&v->vcpu, HV_VCPU_TSC_RELATIVE);
    if (h != HV_SUCCESS) {
        int r = hvi_hvf_fail("hv_vcpu_create", h);
        free(v);
        return r;
    }
    int r = hvi_hvf_vmcs_init(v);
    if (r == 0)
        r = hvi_hvf_msr_native(v);
    if (r < 0) {
        hvi_hvf.hv_vcpu_destroy(v->vcpu);
        free(v);
        return r;
    }
    hvi_hvf_msr_reset(v);
    *out = v;
    return 0;
}

void hvi_hvf_vcpu_destroy(void *vcpu_priv)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    hvi_hvf.hv_vcpu_destroy(v->vcpu);
    free(v);
}

int hvi_hvf_vcpu_run_prepare(void *vcpu_priv)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    if (!pthread_equal(v->owner, pthread_self()))
        return hvi_error(-EPERM,
                         "vCPU %u must run on the thread that created it: "
                         "Hypervisor.framework binds a vCPU to its thread",
                         v->id);
    return 0;
}

/* hv_vcpu_interrupt() is the framework's documented way to force a vCPU
 * out from any thread. The backend relies on it being a plain call into
 * the kernel that takes no lock the runner may hold (true of the
 * framework, whose vCPUs are kernel objects, and of tests/hvf_host, which
 * makes it an atomic store plus a signal), so that the kick stays
 * async-signal-safe; and on it latching: a vCPU that is not in the guest
 * leaves its next entry at once. The flag covers the window before the
 * runner's next entry regardless. */
void hvi_hvf_vcpu_kick(void *vcpu_priv)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    atomic_store(&v->kicked, 1);
    hv_vcpuid_t id = v->vcpu;
    hvi_hvf.hv_vcpu_interrupt(&id, 1);
}

int hvi_hvf_set_runnable(void *vcpu_priv)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    return hvi_hvf_wvmcs(v, VMCS_GUEST_ACTIVITY_STATE, 0);
}

int hvi_hvf_vcpu_flush(void *vcpu_priv)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    if (v->pending != HVI_PEND_NONE &&
        hvi_hvf_vmcs(v, VMCS_GUEST_RIP) != v->pending_rip)
        v->pending = HVI_PEND_NONE;
    if (v->pending == HVI_PEND_PIO)
        return hvi_hvf_complete_io(v);
    if (v->pending == HVI_PEND_MMIO) {
        int r = hvi_hvf_complete_mmio(v, NULL);
        if (r == -EAGAIN)
            return hvi_error(-EAGAIN,
                             "vCPU %u: the instruction at the last MMIO "
                             "exit needs another device access to finish",
                             v->id);
        return r;
    }
    return 0;
}
