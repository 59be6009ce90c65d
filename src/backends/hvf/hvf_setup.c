/* The VMCS of a new vCPU: the VMX controls chosen against what the host
 * allows (hv_vmx_read_capability), and the architectural reset state
 * (real mode at 0xfffffff0). */
#include "hvf.h"

#include "hvf_vmx.h"

/* A control value with the bits @p want that the capability allows, and
 * every bit it requires: low half = must be 1, high half = may be 1. */
static uint64_t ctrl(uint64_t cap, uint64_t want)
{
    return (want | (cap & 0xffffffffu)) & (cap >> 32);
}

static const uint32_t seg_sel[] = {VMCS_GUEST_ES, VMCS_GUEST_CS, VMCS_GUEST_SS,
                                   VMCS_GUEST_DS, VMCS_GUEST_FS, VMCS_GUEST_GS};

int hvi_hvf_vmcs_init(struct hvi_hvf_vcpu *v)
{
    const struct hvi_hvf *h = v->vm->hvf;
    /* RDTSCP and INVPCID are not enabled (so CPUID does not offer them):
     * a guest that could move between hosts (a snapshot restored under KVM,
     * or an implementation of the API that cannot run them) must not
     * depend on them; every guest works without. */
    uint64_t cpu2 = ctrl(h->cap_cpu2, CPU_BASED2_EPT | CPU_BASED2_UNRESTRICTED);
    v->rdtscp = (cpu2 & CPU_BASED2_RDTSCP) != 0;
    v->invpcid = (cpu2 & CPU_BASED2_INVPCID) != 0;
    v->cr0_mask = HVI_CR0_NE;
    v->cr4_mask = HVI_CR4_VMXE;
    v->entry_ctls = ctrl(h->cap_entry, VMENTRY_LOAD_EFER);
    struct {
        uint32_t field;
        uint64_t value;
    } init[] = {
        {VMCS_CTRL_PIN_BASED, ctrl(h->cap_pin, PIN_BASED_INTR | PIN_BASED_NMI |
                                                   PIN_BASED_VIRTUAL_NMI)},
        {VMCS_CTRL_CPU_BASED,
         ctrl(h->cap_cpu, CPU_BASED_HLT | CPU_BASED_UNCOND_IO |
                              CPU_BASED_MWAIT | CPU_BASED_MONITOR |
                              CPU_BASED_SECONDARY_CTLS)},
        {VMCS_CTRL_CPU_BASED2, cpu2},
        {VMCS_CTRL_VMENTRY_CONTROLS, v->entry_ctls},
        {VMCS_CTRL_VMEXIT_CONTROLS,
         ctrl(h->cap_exit,
              VMEXIT_HOST_IA32E | VMEXIT_SAVE_EFER | VMEXIT_LOAD_EFER)},
        {VMCS_CTRL_EXC_BITMAP, 0},
        {VMCS_CTRL_CR0_MASK, v->cr0_mask},
        {VMCS_CTRL_CR4_MASK, v->cr4_mask},
        {VMCS_CTRL_VMENTRY_IRQ_INFO, 0},
        {VMCS_GUEST_LINK_POINTER, ~0ull},
        {VMCS_GUEST_ACTIVITY_STATE, 0},
        {VMCS_GUEST_IGNORE_IRQ, 0},
        {VMCS_GUEST_IA32_PAT, 0x0007040600070406ull},
        {VMCS_GUEST_DR7, 0x400},
        {VMCS_GUEST_RFLAGS, 0x2},
        {VMCS_GUEST_RIP, 0xfff0},
        {VMCS_GUEST_RSP, 0},
        {VMCS_GUEST_CR3, 0},
        {VMCS_GUEST_GDTR_BASE, 0},
        {VMCS_GUEST_GDTR_LIMIT, 0xffff},
        {VMCS_GUEST_IDTR_BASE, 0},
        {VMCS_GUEST_IDTR_LIMIT, 0xffff},
        {VMCS_GUEST_LDTR, 0},
        {VMCS_GUEST_LDTR_BASE, 0},
        {VMCS_GUEST_LDTR_LIMIT, 0xffff},
        {VMCS_GUEST_LDTR_AR, 0x82},
        {VMCS_GUEST_TR, 0},
        {VMCS_GUEST_TR_BASE, 0},
        {VMCS_GUEST_TR_LIMIT, 0xffff},
        {VMCS_GUEST_TR_AR, 0x8b},
        {VMCS_GUEST_IA32_EFER, 0},
    };
    int r;
    for (size_t i = 0; i < sizeof(init) / sizeof(init[0]); i++)
        if ((r = hvi_hvf_wvmcs(v, init[i].field, init[i].value)) < 0)
            return r;
    for (int s = 0; s < 6; s++) {
        uint16_t sel = s == 1 ? 0xf000 : 0;
        uint64_t base = s == 1 ? 0xffff0000ull : 0;
        uint32_t ar = s == 1 ? 0x9b : 0x93;
        if ((r = hvi_hvf_wvmcs(v, seg_sel[s], sel)) < 0 ||
            (r = hvi_hvf_wvmcs(v, seg_sel[s] + HVI_VMCS_LIMIT, 0xffff)) < 0 ||
            (r = hvi_hvf_wvmcs(v, seg_sel[s] + HVI_VMCS_AR, ar)) < 0 ||
            (r = hvi_hvf_wvmcs(v, seg_sel[s] + HVI_VMCS_BASE, base)) < 0)
            return r;
    }
    /* CD, NW and ET, as at reset; CR4 0. The masked bits go to the read
     * shadows. */
    if ((r = hvi_hvf_set_cr0(v, 0x60000010ull)) < 0 ||
        (r = hvi_hvf_set_cr4(v, 0)) < 0 ||
        (r = hvi_hvf_wreg(v, HV_X86_RDX, 0x600)) < 0 ||
        (r = hvi_hvf_wreg(v, HV_X86_XCR0, 1)) < 0)
        return r;
    return 0;
}
