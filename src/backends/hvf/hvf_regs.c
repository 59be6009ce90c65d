/* Registers by id, segments and the FPU, through the framework's register
 * calls and the VMCS. Control registers are what the guest sees: the VMCS
 * holds CR0 with NE and CR4 with VMXE (VMX requires them), the read
 * shadows the guest's own values of those masked bits. CR0.PG is not
 * masked: when the guest turns paging on with EFER.LME, the processor sets
 * EFER.LMA, and every VM exit stores LMA into the IA-32e entry control;
 * the backend keeps them consistent when it writes CR0 or EFER itself. */
#include "hvf.h"

#include "hvf_vmx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

static const hv_x86_reg_t gpr_of[] = {
    HV_X86_RAX, HV_X86_RBX, HV_X86_RCX, HV_X86_RDX, HV_X86_RSI, HV_X86_RDI,
    HV_X86_RSP, HV_X86_RBP, HV_X86_R8,  HV_X86_R9,  HV_X86_R10, HV_X86_R11,
    HV_X86_R12, HV_X86_R13, HV_X86_R14, HV_X86_R15, HV_X86_RIP, HV_X86_RFLAGS};

uint64_t hvi_hvf_guest_cr0(struct hvi_hvf_vcpu *v)
{
    return (hvi_hvf_vmcs(v, VMCS_GUEST_CR0) & ~v->cr0_mask) |
           (hvi_hvf_vmcs(v, VMCS_CTRL_CR0_SHADOW) & v->cr0_mask);
}

uint64_t hvi_hvf_guest_cr4(struct hvi_hvf_vcpu *v)
{
    return (hvi_hvf_vmcs(v, VMCS_GUEST_CR4) & ~v->cr4_mask) |
           (hvi_hvf_vmcs(v, VMCS_CTRL_CR4_SHADOW) & v->cr4_mask);
}

/* EFER.LMA = LME and CR0.PG; the IA-32e entry control = LMA. */
static int sync_lma(struct hvi_hvf_vcpu *v)
{
    uint64_t efer = hvi_hvf_vmcs(v, VMCS_GUEST_IA32_EFER);
    bool lma =
        (efer & HVI_EFER_LME) && (hvi_hvf_vmcs(v, VMCS_GUEST_CR0) & HVI_CR0_PG);
    uint64_t want = lma ? efer | HVI_EFER_LMA : efer & ~HVI_EFER_LMA;
    int r = 0;
    if (want != efer)
        r = hvi_hvf_wvmcs(v, VMCS_GUEST_IA32_EFER, want);
    if (r == 0)
        r = hvi_hvf_wvmcs(v, VMCS_CTRL_VMENTRY_CONTROLS,
                          v->entry_ctls | (lma ? VMENTRY_GUEST_IA32E : 0));
    return r;
}

int hvi_hvf_set_cr0(struct hvi_hvf_vcpu *v, uint64_t cr0)
{
    if ((cr0 >> 32) || ((cr0 & HVI_CR0_PG) && !(cr0 & HVI_CR0_PE)) ||
        ((cr0 & HVI_CR0_NW) && !(cr0 & HVI_CR0_CD)))
        return hvi_error(-EINVAL,
                         "CR0 0x%" PRIx64 " is invalid (reserved bits, PG "
                         "without PE, or NW without CD)",
                         cr0);
    uint64_t efer = hvi_hvf_vmcs(v, VMCS_GUEST_IA32_EFER);
    if ((cr0 & HVI_CR0_PG) && (efer & HVI_EFER_LME) &&
        !(hvi_hvf_vmcs(v, VMCS_GUEST_CR4) & HVI_CR4_PAE))
        return hvi_error(-EINVAL,
                         "CR0 0x%" PRIx64 " enables long mode paging "
                         "without CR4.PAE",
                         cr0);
    int r = hvi_hvf_wvmcs(v, VMCS_CTRL_CR0_SHADOW, cr0);
    if (r == 0)
        r = hvi_hvf_wvmcs(v, VMCS_GUEST_CR0, cr0 | HVI_CR0_NE);
    if (r == 0)
        r = sync_lma(v);
    return r;
}

int hvi_hvf_set_cr4(struct hvi_hvf_vcpu *v, uint64_t cr4)
{
    /* VMXE: nested VMX is not offered. Bits above LA57..PKS: reserved. */
    if ((cr4 & HVI_CR4_VMXE) || (cr4 >> 25))
        return hvi_error(-EINVAL,
                         "CR4 0x%" PRIx64 " sets reserved bits or "
                         "VMXE (no nested VMX)",
                         cr4);
    int r = hvi_hvf_wvmcs(v, VMCS_CTRL_CR4_SHADOW, cr4);
    if (r == 0)
        r = hvi_hvf_wvmcs(v, VMCS_GUEST_CR4, cr4 | HVI_CR4_VMXE);
    return r;
}

int hvi_hvf_set_efer(struct hvi_hvf_vcpu *v, uint64_t efer)
{
    const uint64_t known =
        HVI_EFER_SCE | HVI_EFER_LME | HVI_EFER_LMA | HVI_EFER_NXE;
    if (efer & ~known)
        return hvi_error(-EINVAL, "EFER 0x%" PRIx64 " sets reserved bits",
                         efer);
    int r = hvi_hvf_wvmcs(v, VMCS_GUEST_IA32_EFER, efer & ~HVI_EFER_LMA);
    if (r == 0)
        r = sync_lma(v);
    return r;
}

static int get_one(struct hvi_hvf_vcpu *v, hvc_reg id, uint64_t *val)
{
    if (HVC_X86_IS_MSR(id)) {
        int r = hvi_hvf_msr_read(v, (uint32_t)id, val);
        if (r == -EINVAL)
            return hvi_error(-EIO, "the hvf backend has no MSR 0x%x",
                             (uint32_t)id);
        return r;
    }
    if (id <= HVC_X86_RFLAGS)
        return hvi_hvf_rreg(v, gpr_of[id], val);
    switch (id) {
    case HVC_X86_CR0: *val = hvi_hvf_guest_cr0(v); return 0;
    case HVC_X86_CR2: return hvi_hvf_rreg(v, HV_X86_CR2, val);
    case HVC_X86_CR3: return hvi_hvf_rvmcs(v, VMCS_GUEST_CR3, val);
    case HVC_X86_CR4: *val = hvi_hvf_guest_cr4(v); return 0;
    case HVC_X86_CR8: { /* HV_X86_TPR is the APIC TPR: CR8 << 4 */
        int r = hvi_hvf_rreg(v, HV_X86_TPR, val);
        *val >>= 4;
        return r;
    }
    case HVC_X86_EFER: return hvi_hvf_rvmcs(v, VMCS_GUEST_IA32_EFER, val);
    case HVC_X86_APIC_BASE: *val = v->msrs.apic_base; return 0;
    case HVC_X86_DR0:
    case HVC_X86_DR1:
    case HVC_X86_DR2:
    case HVC_X86_DR3:
        return hvi_hvf_rreg(v, HV_X86_DR0 + (int)(id - HVC_X86_DR0), val);
    case HVC_X86_DR6: return hvi_hvf_rreg(v, HV_X86_DR6, val);
    case HVC_X86_DR7: return hvi_hvf_rvmcs(v, VMCS_GUEST_DR7, val);
    default:
        return hvi_error(-EINVAL, "register 0x%" PRIx64 " is not scalar", id);
    }
}

static int set_one(struct hvi_hvf_vcpu *v, hvc_reg id, uint64_t val)
{
    if (HVC_X86_IS_MSR(id)) {
        int r = hvi_hvf_msr_write(v, (uint32_t)id, val);
        if (r == -EINVAL)
            return hvi_error(
                -EIO, "the hvf backend refuses 0x%" PRIx64 " for MSR 0x%x", val,
                (uint32_t)id);
        return r;
    }
    if (id <= HVC_X86_RFLAGS)
        return hvi_hvf_wreg(v, gpr_of[id], val);
    switch (id) {
    case HVC_X86_CR0: return hvi_hvf_set_cr0(v, val);
    case HVC_X86_CR2: return hvi_hvf_wreg(v, HV_X86_CR2, val);
    case HVC_X86_CR3: return hvi_hvf_wvmcs(v, VMCS_GUEST_CR3, val);
    case HVC_X86_CR4: return hvi_hvf_set_cr4(v, val);
    case HVC_X86_CR8:
        if (val > 15)
            return hvi_error(-EINVAL, "CR8 0x%" PRIx64 " is above 15", val);
        return hvi_hvf_wreg(v, HV_X86_TPR, val << 4);
    case HVC_X86_EFER: return hvi_hvf_set_efer(v, val);
    case HVC_X86_APIC_BASE: return hvi_hvf_msr_write(v, 0x1b, val);
    case HVC_X86_DR0:
    case HVC_X86_DR1:
    case HVC_X86_DR2:
    case HVC_X86_DR3:
        return hvi_hvf_wreg(v, HV_X86_DR0 + (int)(id - HVC_X86_DR0), val);
    case HVC_X86_DR6: return hvi_hvf_wreg(v, HV_X86_DR6, val);
    case HVC_X86_DR7: return hvi_hvf_wvmcs(v, VMCS_GUEST_DR7, val);
    default:
        return hvi_error(-EINVAL, "register 0x%" PRIx64 " is not scalar", id);
    }
}

int hvi_hvf_get_regs(void *vcpu_priv, const hvc_reg *ids, uint64_t *values,
                     size_t count)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    for (size_t i = 0; i < count; i++) {
        int r = get_one(v, ids[i], &values[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

int hvi_hvf_set_regs(void *vcpu_priv, const hvc_reg *ids,
                     const uint64_t *values, size_t count)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    uint64_t *old = malloc((count ? count : 1) * sizeof(*old));
    if (!old)
        return hvi_error(-ENOMEM, "out of memory writing registers");
    int r = hvi_hvf_get_regs(v, ids, old, count);
    size_t done = 0;
    for (; r == 0 && done < count; done++)
        if ((r = set_one(v, ids[done], values[done])) < 0)
            break;
    if (r < 0) /* put back what was written, last first */
        while (done-- > 0)
            set_one(v, ids[done], old[done]);
    free(old);
    return r;
}

static uint32_t selector_field(hvc_reg id)
{
    switch (id) {
    case HVC_X86_ES: return VMCS_GUEST_ES;
    case HVC_X86_CS: return VMCS_GUEST_CS;
    case HVC_X86_SS: return VMCS_GUEST_SS;
    case HVC_X86_DS: return VMCS_GUEST_DS;
    case HVC_X86_FS: return VMCS_GUEST_FS;
    case HVC_X86_GS: return VMCS_GUEST_GS;
    case HVC_X86_LDTR: return VMCS_GUEST_LDTR;
    case HVC_X86_TR: return VMCS_GUEST_TR;
    default: return 0;
    }
}

int hvi_hvf_get_segment(void *vcpu_priv, hvc_reg id, hvc_x86_segment *out)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    *out = (hvc_x86_segment){0};
    uint64_t base, limit, sel, ar;
    int r;
    if (id == HVC_X86_GDTR || id == HVC_X86_IDTR) {
        bool g = id == HVC_X86_GDTR;
        if ((r = hvi_hvf_rvmcs(v,
                               g ? VMCS_GUEST_GDTR_BASE : VMCS_GUEST_IDTR_BASE,
                               &base)) < 0 ||
            (r = hvi_hvf_rvmcs(
                 v, g ? VMCS_GUEST_GDTR_LIMIT : VMCS_GUEST_IDTR_LIMIT,
                 &limit)) < 0)
            return r;
        out->base = base;
        out->limit = (uint32_t)limit;
        return 0;
    }
    uint32_t f = selector_field(id);
    if ((r = hvi_hvf_rvmcs(v, f, &sel)) < 0 ||
        (r = hvi_hvf_rvmcs(v, f + HVI_VMCS_LIMIT, &limit)) < 0 ||
        (r = hvi_hvf_rvmcs(v, f + HVI_VMCS_AR, &ar)) < 0 ||
        (r = hvi_hvf_rvmcs(v, f + HVI_VMCS_BASE, &base)) < 0)
        return r;
    out->base = base;
    out->limit = (uint32_t)limit;
    out->selector = (uint16_t)sel;
    out->type = ar & 15;
    out->s = (ar >> 4) & 1;
    out->dpl = (ar >> 5) & 3;
    out->present = (ar >> 7) & 1;
    out->avl = (ar >> 12) & 1;
    out->l = (ar >> 13) & 1;
    out->db = (ar >> 14) & 1;
    out->g = (ar >> 15) & 1;
    out->unusable = (ar >> 16) & 1;
    return 0;
}

int hvi_hvf_set_segment(void *vcpu_priv, hvc_reg id, const hvc_x86_segment *s)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    int r;
    if (id == HVC_X86_GDTR || id == HVC_X86_IDTR) {
        if (s->limit > 0xffff)
            return hvi_error(-EINVAL,
                             "descriptor table limit 0x%x is above 0xffff",
                             s->limit);
        bool g = id == HVC_X86_GDTR;
        if ((r = hvi_hvf_wvmcs(v,
                               g ? VMCS_GUEST_GDTR_BASE : VMCS_GUEST_IDTR_BASE,
                               s->base)) < 0 ||
            (r = hvi_hvf_wvmcs(
                 v, g ? VMCS_GUEST_GDTR_LIMIT : VMCS_GUEST_IDTR_LIMIT,
                 s->limit)) < 0)
            return r;
        return 0;
    }
    uint32_t ar = (s->type & 15u) | (s->s ? 1u : 0) << 4 | (s->dpl & 3u) << 5 |
                  (s->present ? 1u : 0) << 7 | (s->avl ? 1u : 0) << 12 |
                  (s->l ? 1u : 0) << 13 | (s->db ? 1u : 0) << 14 |
                  (s->g ? 1u : 0) << 15;
    if (s->unusable || !s->present)
        ar = HVI_AR_UNUSABLE;
    uint32_t f = selector_field(id);
    if ((r = hvi_hvf_wvmcs(v, f, s->selector)) < 0 ||
        (r = hvi_hvf_wvmcs(v, f + HVI_VMCS_LIMIT, s->limit)) < 0 ||
        (r = hvi_hvf_wvmcs(v, f + HVI_VMCS_AR, ar)) < 0 ||
        (r = hvi_hvf_wvmcs(v, f + HVI_VMCS_BASE, s->base)) < 0)
        return r;
    return 0;
}

int hvi_hvf_fpu_size(void *vcpu_priv, size_t *size)
{
    *size = ((struct hvi_hvf_vcpu *)vcpu_priv)->fpu_size;
    return 0;
}

int hvi_hvf_get_fpu(void *vcpu_priv, void *buf, size_t length)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    (void)length; /* the core checked it against fpu_size */
    hv_return_t h = hvi_hvf.hv_vcpu_read_fpstate(v->vcpu, buf, v->fpu_size);
    if (h != HV_SUCCESS)
        return hvi_hvf_fail("hv_vcpu_read_fpstate", h);
    return 0;
}

int hvi_hvf_set_fpu(void *vcpu_priv, const void *buf, size_t length)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    (void)length;
    hv_return_t h =
        hvi_hvf.hv_vcpu_write_fpstate(v->vcpu, (void *)buf, v->fpu_size);
    if (h != HV_SUCCESS)
        return hvi_hvf_fail("hv_vcpu_write_fpstate (the blob was rejected)", h);
    return 0;
}
