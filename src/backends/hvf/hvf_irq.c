/* The library's userspace interrupt controllers driving an HVF vCPU
 * (HVC_VM_USER_IRQCHIP, src/core/irq_user.c): external interrupts and NMIs
 * through the VM-entry interruption field, the interrupt window through
 * interrupt-window exiting (VMX_REASON_IRQ_WND, reported as
 * HVC_BACKEND_EXIT_IRQ_WINDOW), and the LAPIC's MSRs (IA32_APIC_BASE,
 * IA32_TSC_DEADLINE, x2APIC 0x800-0x8ff) reported as HVC_BACKEND_EXIT_MSR
 * and completed here. */
#include "hvf.h"

#include "hvf_vmx.h"

#include <errno.h>

#define RFLAGS_IF (1ull << 9)
#define BLOCK_STI_MOVSS 3ull /* interruptibility: STI and MOV SS shadows */
#define BLOCK_NMI 8ull

bool hvi_hvf_msr_is_chips(const struct hvi_hvf_vcpu *v, uint32_t msr)
{
    if (!(v->vm->flags & HVC_VM_USER_IRQCHIP))
        return false;
    return msr == 0x1bu || msr == 0x6e0u || (msr >= 0x800u && msr <= 0x8ffu);
}

void hvi_hvf_msr_exit(struct hvi_hvf_vcpu *v, hvc_exit *exit, uint32_t msr,
                      bool write, uint64_t value, uint64_t len)
{
    v->msr_exit.active = true;
    v->msr_exit.write = write;
    v->msr_exit.len = len;
    exit->reason = HVC_BACKEND_EXIT_MSR;
    exit->u.internal.code = msr;
    exit->u.internal.ndata = 2;
    exit->u.internal.data[0] = write ? value : 0;
    exit->u.internal.data[1] = write ? 1 : 0;
}

int hvi_hvf_vcpu_complete_msr(void *vcpu_priv, int error, uint64_t value)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    if (!v->msr_exit.active)
        return hvi_error(-EINVAL, "vCPU %u: no MSR access to complete", v->id);
    v->msr_exit.active = false;
    if (error)
        return hvi_hvf_inject_exception(v, HVI_EXC_GP, true, 0);
    int r;
    if (!v->msr_exit.write &&
        ((r = hvi_hvf_wreg(v, HV_X86_RAX, (uint32_t)value)) < 0 ||
         (r = hvi_hvf_wreg(v, HV_X86_RDX, value >> 32)) < 0))
        return r;
    return hvi_hvf_skip(v, v->msr_exit.len);
}

static int set_nmi(struct hvi_hvf_vcpu *v)
{
    return hvi_hvf_wvmcs(v, VMCS_CTRL_VMENTRY_IRQ_INFO,
                         IRQ_INFO_VALID | IRQ_INFO_NMI | 2u);
}

/* Whether the entry field is free and NMIs are not blocked. */
static bool nmi_can_enter(struct hvi_hvf_vcpu *v)
{
    return !(hvi_hvf_vmcs(v, VMCS_CTRL_VMENTRY_IRQ_INFO) & IRQ_INFO_VALID) &&
           !(hvi_hvf_vmcs(v, VMCS_GUEST_IGNORE_IRQ) & BLOCK_NMI);
}

int hvi_hvf_nmi_flush(struct hvi_hvf_vcpu *v)
{
    if (!v->nmi_pending || !nmi_can_enter(v))
        return 0;
    v->nmi_pending = false;
    return set_nmi(v);
}

int hvi_hvf_vcpu_inject(void *vcpu_priv, uint32_t kind, uint8_t vector)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    if (kind == HVC_BACKEND_INJECT_NMI) {
        /* Held until the field is free and NMIs are unblocked (checked at
         * each entry). */
        v->nmi_pending = true;
        return hvi_hvf_nmi_flush(v);
    }
    if (kind != HVC_BACKEND_INJECT_INTR)
        return hvi_error(-EINVAL, "vCPU %u: unknown injection kind %u", v->id,
                         kind);
    if (hvi_hvf_vmcs(v, VMCS_CTRL_VMENTRY_IRQ_INFO) & IRQ_INFO_VALID)
        return hvi_error(-EBUSY,
                         "vCPU %u: interrupt 0x%x: an event is already "
                         "queued for the next entry",
                         v->id, vector);
    return hvi_hvf_wvmcs(v, VMCS_CTRL_VMENTRY_IRQ_INFO,
                         IRQ_INFO_VALID | IRQ_INFO_EXT_IRQ | vector);
}

int hvi_hvf_vcpu_irq_window(void *vcpu_priv, int request, int *ready)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    uint64_t cpu, rflags;
    int r;
    if ((r = hvi_hvf_rvmcs(v, VMCS_CTRL_CPU_BASED, &cpu)) < 0 ||
        (r = hvi_hvf_rreg(v, HV_X86_RFLAGS, &rflags)) < 0)
        return r;
    uint64_t want =
        request ? cpu | CPU_BASED_IRQ_WND : cpu & ~(uint64_t)CPU_BASED_IRQ_WND;
    if (request && !((v->vm->hvf->cap_cpu >> 32) & CPU_BASED_IRQ_WND))
        return hvi_error(-ENOTSUP,
                         "vCPU %u: the host has no interrupt-window exiting",
                         v->id);
    if (want != cpu && (r = hvi_hvf_wvmcs(v, VMCS_CTRL_CPU_BASED, want)) < 0)
        return r;
    *ready = (rflags & RFLAGS_IF) &&
             !(hvi_hvf_vmcs(v, VMCS_GUEST_IGNORE_IRQ) & BLOCK_STI_MOVSS) &&
             !(hvi_hvf_vmcs(v, VMCS_CTRL_VMENTRY_IRQ_INFO) & IRQ_INFO_VALID);
    return 0;
}
