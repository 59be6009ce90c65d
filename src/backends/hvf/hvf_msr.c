/* MSRs. The framework keeps the syscall, FS/GS base, SYSENTER and TSC
 * MSRs per vCPU and lets the guest use them natively once enabled; EFER
 * and PAT live in the VMCS; the backend keeps the rest (MTRRs,
 * MISC_ENABLE, the APIC base and TSC deadline until a userspace LAPIC
 * takes them). Any other MSR raises #GP in the guest. */
#include "hvf.h"

#include "hvf_vmx.h"

#include <errno.h>

#define MSR_TSC 0x10u
#define MSR_APIC_BASE 0x1bu
#define MSR_FEATURE_CONTROL 0x3au
#define MSR_MTRRCAP 0xfeu
#define MSR_SYSENTER_CS 0x174u
#define MSR_SYSENTER_ESP 0x175u
#define MSR_SYSENTER_EIP 0x176u
#define MSR_MISC_ENABLE 0x1a0u
#define MSR_MTRR_PHYS_FIRST 0x200u
#define MSR_MTRR_PHYS_LAST 0x20fu
#define MSR_MTRR_FIX64K 0x250u
#define MSR_MTRR_FIX16K_0 0x258u
#define MSR_MTRR_FIX16K_1 0x259u
#define MSR_MTRR_FIX4K_FIRST 0x268u
#define MSR_MTRR_FIX4K_LAST 0x26fu
#define MSR_PAT 0x277u
#define MSR_MTRR_DEF_TYPE 0x2ffu
#define MSR_TSC_DEADLINE 0x6e0u
#define MSR_EFER 0xc0000080u
#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_CSTAR 0xc0000083u
#define MSR_SFMASK 0xc0000084u
#define MSR_FS_BASE 0xc0000100u
#define MSR_GS_BASE 0xc0000101u
#define MSR_KERNEL_GS_BASE 0xc0000102u
#define MSR_TSC_AUX 0xc0000103u

static const uint32_t native[] = {
    MSR_STAR,        MSR_LSTAR,        MSR_CSTAR,          MSR_SFMASK,
    MSR_FS_BASE,     MSR_GS_BASE,      MSR_KERNEL_GS_BASE, MSR_TSC_AUX,
    MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP,   MSR_TSC};

static bool is_native(uint32_t msr)
{
    for (size_t i = 0; i < sizeof(native) / sizeof(native[0]); i++)
        if (native[i] == msr)
            return true;
    return false;
}

int hvi_hvf_msr_native(struct hvi_hvf_vcpu *v)
{
    for (size_t i = 0; i < sizeof(native) / sizeof(native[0]); i++) {
        hv_return_t h =
            hvi_hvf.hv_vcpu_enable_native_msr(v->vcpu, native[i], true);
        if (h != HV_SUCCESS)
            return hvi_error(-EIO,
                             "vCPU %u: hv_vcpu_enable_native_msr(0x%x): %s",
                             v->id, native[i], hvi_hvf_ret_name(h));
    }
    return 0;
}

void hvi_hvf_msr_reset(struct hvi_hvf_vcpu *v)
{
    v->msrs = (struct hvi_hvf_msrs){0};
    v->msrs.misc_enable = 1; /* fast strings */
    v->msrs.apic_base = 0xfee00000ull | (1u << 11) | (v->id == 0 ? 1u << 8 : 0);
    v->msrs.xcr0 = 1;
}

/* The backend's own MSRs: a pointer to the value, or NULL. */
static uint64_t *kept(struct hvi_hvf_vcpu *v, uint32_t msr)
{
    struct hvi_hvf_msrs *m = &v->msrs;
    if (msr >= MSR_MTRR_PHYS_FIRST && msr <= MSR_MTRR_PHYS_LAST)
        return &m->mtrr_var[msr - MSR_MTRR_PHYS_FIRST];
    if (msr >= MSR_MTRR_FIX4K_FIRST && msr <= MSR_MTRR_FIX4K_LAST)
        return &m->mtrr_fixed[3 + msr - MSR_MTRR_FIX4K_FIRST];
    switch (msr) {
    case MSR_MTRR_FIX64K: return &m->mtrr_fixed[0];
    case MSR_MTRR_FIX16K_0: return &m->mtrr_fixed[1];
    case MSR_MTRR_FIX16K_1: return &m->mtrr_fixed[2];
    case MSR_MTRR_DEF_TYPE: return &m->mtrr_def_type;
    case MSR_MISC_ENABLE: return &m->misc_enable;
    case MSR_APIC_BASE: return &m->apic_base;
    case MSR_TSC_DEADLINE: return &m->tsc_deadline;
    case 0x3b: return &m->tsc_adjust; /* IA32_TSC_ADJUST */
    default: return NULL;
    }
}

int hvi_hvf_msr_read(struct hvi_hvf_vcpu *v, uint32_t msr, uint64_t *value)
{
    if (is_native(msr)) {
        hv_return_t h = hvi_hvf.hv_vcpu_read_msr(v->vcpu, msr, value);
        if (h != HV_SUCCESS)
            return hvi_error(-EIO, "vCPU %u: hv_vcpu_read_msr(0x%x): %s", v->id,
                             msr, hvi_hvf_ret_name(h));
        return 0;
    }
    switch (msr) {
    case MSR_EFER: return hvi_hvf_rvmcs(v, VMCS_GUEST_IA32_EFER, value);
    case MSR_PAT: return hvi_hvf_rvmcs(v, VMCS_GUEST_IA32_PAT, value);
    case MSR_MTRRCAP: *value = 0x508; return 0; /* 8 variable, fixed, WC */
    case MSR_FEATURE_CONTROL: *value = v->msrs.feature_control; return 0;
    }
    uint64_t *p = kept(v, msr);
    if (!p)
        return -EINVAL;
    *value = *p;
    return 0;
}

static bool valid_pat(uint64_t pat)
{
    for (int i = 0; i < 8; i++) {
        unsigned t = (pat >> (i * 8)) & 0xff;
        if (t == 2 || t == 3 || t > 7)
            return false;
    }
    return true;
}

int hvi_hvf_msr_write(struct hvi_hvf_vcpu *v, uint32_t msr, uint64_t value)
{
    if (is_native(msr)) {
        hv_return_t h = hvi_hvf.hv_vcpu_write_msr(v->vcpu, msr, value);
        if (h == HV_BAD_ARGUMENT)
            return -EINVAL; /* e.g. a non-canonical base */
        if (h != HV_SUCCESS)
            return hvi_error(-EIO, "vCPU %u: hv_vcpu_write_msr(0x%x): %s",
                             v->id, msr, hvi_hvf_ret_name(h));
        return 0;
    }
    switch (msr) {
    case MSR_EFER: {
        uint64_t old = hvi_hvf_vmcs(v, VMCS_GUEST_IA32_EFER);
        /* LME cannot change while paging is on. */
        if (((old ^ value) & HVI_EFER_LME) &&
            (hvi_hvf_vmcs(v, VMCS_GUEST_CR0) & HVI_CR0_PG))
            return -EINVAL;
        int r =
            hvi_hvf_set_efer(v, (value & ~HVI_EFER_LMA) | (old & HVI_EFER_LMA));
        return r == -EINVAL ? -EINVAL : r;
    }
    case MSR_PAT:
        if (!valid_pat(value))
            return -EINVAL;
        return hvi_hvf_wvmcs(v, VMCS_GUEST_IA32_PAT, value);
    case MSR_APIC_BASE:
        /* Reserved: bits 0-7, 9, 10 and above the physical address; bit
         * 10 (x2APIC enable) is the library's LAPIC's, which checked it. */
        if (value &
            ((v->vm->flags & HVC_VM_USER_IRQCHIP) ? 0x2ffull : 0x6ffull))
            return -EINVAL;
        v->msrs.apic_base = value;
        return 0;
    case MSR_FEATURE_CONTROL:
        /* Writable until locked (bit 0); VMX (bits 1, 2) is not offered. */
        if ((v->msrs.feature_control & 1) || (value & ~1ull))
            return -EINVAL;
        v->msrs.feature_control = value;
        return 0;
    case MSR_MTRRCAP: return -EINVAL;
    }
    uint64_t *p = kept(v, msr);
    if (!p)
        return -EINVAL;
    *p = value;
    return 0;
}
