/* Entering the guest and decoding exits from the VMCS read-only fields.
 * Exits the backend finishes itself (CPUID, MSRs, control registers,
 * XSETBV, emulated accesses to RAM) loop back into the guest; the others
 * become an hvc_exit. */
#include "hvf.h"

#include "hvf_vmx.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define HANDLED 0 /* go back into the guest */
#define REPORT 1  /* return the exit record */

static const hv_x86_reg_t gpr_reg[16] = {
    HV_X86_RAX, HV_X86_RCX, HV_X86_RDX, HV_X86_RBX, HV_X86_RSP, HV_X86_RBP,
    HV_X86_RSI, HV_X86_RDI, HV_X86_R8,  HV_X86_R9,  HV_X86_R10, HV_X86_R11,
    HV_X86_R12, HV_X86_R13, HV_X86_R14, HV_X86_R15};

static int exit_cpuid(struct hvi_hvf_vcpu *v, uint64_t len)
{
    uint64_t a, c;
    int r;
    if ((r = hvi_hvf_rreg(v, HV_X86_RAX, &a)) < 0 ||
        (r = hvi_hvf_rreg(v, HV_X86_RCX, &c)) < 0)
        return r;
    uint32_t out[4];
    hvi_hvf_cpuid(v, (uint32_t)a, (uint32_t)c, out);
    if ((r = hvi_hvf_wreg(v, HV_X86_RAX, out[0])) < 0 ||
        (r = hvi_hvf_wreg(v, HV_X86_RBX, out[1])) < 0 ||
        (r = hvi_hvf_wreg(v, HV_X86_RCX, out[2])) < 0 ||
        (r = hvi_hvf_wreg(v, HV_X86_RDX, out[3])) < 0)
        return r;
    return hvi_hvf_skip(v, len);
}

static int exit_msr(struct hvi_hvf_vcpu *v, bool write, uint64_t len,
                    hvc_exit *exit)
{
    uint64_t c, a, d;
    int r;
    if ((r = hvi_hvf_rreg(v, HV_X86_RCX, &c)) < 0 ||
        (r = hvi_hvf_rreg(v, HV_X86_RAX, &a)) < 0 ||
        (r = hvi_hvf_rreg(v, HV_X86_RDX, &d)) < 0)
        return r;
    uint32_t msr = (uint32_t)c;
    if (hvi_hvf_msr_is_chips(v, msr)) { /* the core answers */
        hvi_hvf_msr_exit(v, exit, msr, write, (d << 32) | (uint32_t)a, len);
        return REPORT;
    }
    if (write) {
        r = hvi_hvf_msr_write(v, msr, (d << 32) | (uint32_t)a);
    } else {
        uint64_t val = 0;
        r = hvi_hvf_msr_read(v, msr, &val);
        if (r == 0 && ((r = hvi_hvf_wreg(v, HV_X86_RAX, (uint32_t)val)) < 0 ||
                       (r = hvi_hvf_wreg(v, HV_X86_RDX, val >> 32)) < 0))
            return r;
    }
    if (r == -EINVAL)
        return hvi_hvf_inject_exception(v, HVI_EXC_GP, true, 0);
    if (r < 0)
        return r;
    return hvi_hvf_skip(v, len);
}

/* MOV to CR0/CR4 that touched a masked bit, CLTS, LMSW. */
static int exit_cr(struct hvi_hvf_vcpu *v, uint64_t q, uint64_t len)
{
    unsigned cr = q & 15, type = (q >> 4) & 3, reg = (q >> 8) & 15;
    uint64_t val = 0;
    int r = 0;
    switch (type) {
    case 0: /* MOV to CR */
        if ((r = hvi_hvf_rreg(v, gpr_reg[reg], &val)) < 0)
            return r;
        if (cr == 0)
            r = hvi_hvf_set_cr0(v, val);
        else if (cr == 4)
            r = hvi_hvf_set_cr4(v, val);
        else if (cr == 3)
            r = hvi_hvf_wvmcs(v, VMCS_GUEST_CR3, val);
        else if (cr == 8)
            r = val > 15 ? -EINVAL : hvi_hvf_wreg(v, HV_X86_TPR, val << 4);
        else
            r = -EINVAL;
        break;
    case 1: /* MOV from CR3/CR8 (not intercepted; for completeness) */
        if (cr == 3)
            val = hvi_hvf_vmcs(v, VMCS_GUEST_CR3);
        else if ((r = hvi_hvf_rreg(v, HV_X86_TPR, &val)) < 0)
            return r;
        else
            val >>= 4;
        r = hvi_hvf_wreg(v, gpr_reg[reg], val);
        break;
    case 2: /* CLTS */
        r = hvi_hvf_set_cr0(v, hvi_hvf_guest_cr0(v) & ~HVI_CR0_TS);
        break;
    default: { /* LMSW: PE can be set, not cleared */
        uint64_t src = (q >> 16) & 0xf, cr0 = hvi_hvf_guest_cr0(v);
        r = hvi_hvf_set_cr0(v, (cr0 & ~0xeull) | src | (cr0 & 1));
        break;
    }
    }
    if (r == -EINVAL)
        return hvi_hvf_inject_exception(v, HVI_EXC_GP, true, 0);
    if (r < 0)
        return r;
    return hvi_hvf_skip(v, len);
}

static int exit_xsetbv(struct hvi_hvf_vcpu *v, uint64_t len)
{
    uint64_t a, c, d;
    int r;
    if ((r = hvi_hvf_rreg(v, HV_X86_RCX, &c)) < 0 ||
        (r = hvi_hvf_rreg(v, HV_X86_RAX, &a)) < 0 ||
        (r = hvi_hvf_rreg(v, HV_X86_RDX, &d)) < 0)
        return r;
    uint64_t x = (d << 32) | (uint32_t)a;
    uint32_t sup[4];
    hvi_hvf_cpuid(v, 0xd, 0, sup);
    uint64_t allowed = ((uint64_t)sup[3] << 32) | sup[0];
    /* x87 always; AVX needs SSE; the AVX-512 trio goes together. */
    if ((uint32_t)c != 0 || !(x & 1) || (x & ~allowed) ||
        ((x & 4) && !(x & 2)) || ((x & 0xe0) && (x & 0xe0) != 0xe0))
        return hvi_hvf_inject_exception(v, HVI_EXC_GP, true, 0);
    if ((r = hvi_hvf_wreg(v, HV_X86_XCR0, x)) < 0)
        return r;
    v->msrs.xcr0 = x;
    return hvi_hvf_skip(v, len);
}

static void internal(hvc_exit *exit, uint32_t code, uint64_t a, uint64_t b)
{
    exit->reason = HVC_EXIT_INTERNAL_ERROR;
    exit->u.internal.code = code;
    exit->u.internal.ndata = 2;
    exit->u.internal.data[0] = a;
    exit->u.internal.data[1] = b;
}

/* One exit: HANDLED, REPORT, or a negative errno. */
static int dispatch(struct hvi_hvf_vcpu *v, uint32_t reason, hvc_exit *exit)
{
    uint64_t q = hvi_hvf_vmcs(v, VMCS_RO_EXIT_QUALIFIC);
    uint64_t len = hvi_hvf_vmcs(v, VMCS_RO_VMEXIT_INSTR_LEN);
    switch (reason) {
    case VMX_REASON_IRQ:
    case VMX_REASON_EXC_NMI:
    case VMX_REASON_VMX_TIMER_EXPIRED: return HANDLED;
    case VMX_REASON_IRQ_WND: {
        /* Asked for by vcpu_irq_window: stop asking, tell the core. */
        uint64_t cpu = hvi_hvf_vmcs(v, VMCS_CTRL_CPU_BASED);
        int r = hvi_hvf_wvmcs(v, VMCS_CTRL_CPU_BASED,
                              cpu & ~(uint64_t)CPU_BASED_IRQ_WND);
        if (r < 0)
            return r;
        exit->reason = HVC_BACKEND_EXIT_IRQ_WINDOW;
        return REPORT;
    }
    case VMX_REASON_IO: return hvi_hvf_exit_io(v, exit);
    case VMX_REASON_EPT_VIOLATION: return hvi_hvf_exit_ept(v, exit);
    case VMX_REASON_CPUID: return exit_cpuid(v, len);
    case VMX_REASON_RDMSR: return exit_msr(v, false, len, exit);
    case VMX_REASON_WRMSR: return exit_msr(v, true, len, exit);
    case VMX_REASON_MOV_CR: return exit_cr(v, q, len);
    case VMX_REASON_XSETBV: return exit_xsetbv(v, len);
    case VMX_REASON_HLT: {
        int r = hvi_hvf_skip(v, len);
        if (r < 0)
            return r;
        exit->reason = HVC_EXIT_HLT;
        return REPORT;
    }
    case VMX_REASON_TRIPLE_FAULT:
        exit->reason = HVC_EXIT_SHUTDOWN;
        return REPORT;
    case VMX_REASON_MWAIT:
    case VMX_REASON_MONITOR:
    case VMX_REASON_VMCALL:
    case VMX_REASON_VMCLEAR:
    case VMX_REASON_VMLAUNCH:
    case VMX_REASON_VMPTRLD:
    case VMX_REASON_VMPTRST:
    case VMX_REASON_VMREAD:
    case VMX_REASON_VMRESUME:
    case VMX_REASON_VMWRITE:
    case VMX_REASON_VMOFF:
    case VMX_REASON_VMON:
    case VMX_REASON_EPT_INVEPT:
    case VMX_REASON_INVVPID:
    case VMX_REASON_GETSEC:
        /* What CPUID does not offer raises #UD, as on hardware. */
        return hvi_hvf_inject_exception(v, HVI_EXC_UD, false, 0);
    case VMX_REASON_EPT_MISCONFIG:
        internal(exit, reason, hvi_hvf_vmcs(v, VMCS_GUEST_PHYSICAL_ADDRESS), q);
        return REPORT;
    default: exit->reason = HVC_EXIT_UNKNOWN; return REPORT;
    }
}

int hvi_hvf_vcpu_run(void *vcpu_priv, hvc_exit *exit)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    int r;
    exit->flags = 0;
    v->msr_exit.active = false; /* left uncompleted: the access re-runs */
    if (v->pending != HVI_PEND_NONE &&
        hvi_hvf_vmcs(v, VMCS_GUEST_RIP) != v->pending_rip)
        v->pending = HVI_PEND_NONE;
    if (v->pending == HVI_PEND_PIO && (r = hvi_hvf_complete_io(v)) < 0)
        return r;
    if (v->pending == HVI_PEND_MMIO) {
        /* A read-modify-write instruction may need its write now. */
        r = hvi_hvf_complete_mmio(v, exit);
        if (r != HANDLED)
            return r < 0 ? r : 0;
    }
    for (;;) {
        if (atomic_exchange(&v->kicked, 0))
            return -EINTR;
        if ((r = hvi_hvf_nmi_flush(v)) < 0)
            return r;
        hv_return_t h = hvi_hvf.hv_vcpu_run(v->vcpu);
        if (h != HV_SUCCESS)
            return hvi_hvf_fail("hv_vcpu_run", h);
        uint64_t raw = hvi_hvf_vmcs(v, VMCS_RO_EXIT_REASON);
        memset(&exit->u, 0, sizeof(exit->u));
        exit->flags = 0;
        exit->backend_reason = raw;
        if (raw & (1u << 31)) { /* the entry failed */
            internal(exit, (uint32_t)raw,
                     hvi_hvf_vmcs(v, VMCS_RO_EXIT_QUALIFIC),
                     hvi_hvf_vmcs(v, VMCS_RO_INSTR_ERROR));
            return 0;
        }
        r = dispatch(v, (uint32_t)(raw & 0xffff), exit);
        if (r < 0)
            return r;
        if (v->pending != HVI_PEND_NONE)
            v->pending_rip = hvi_hvf_vmcs(v, VMCS_GUEST_RIP);
        if (r == REPORT)
            return 0;
    }
}
