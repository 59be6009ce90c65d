/* tests/hvf_host: the software VMCS. Guest-state fields KVM holds (segments,
 * control registers, EFER, RIP/RSP/RFLAGS, interruptibility, a few MSRs)
 * are read from and written to KVM's state (cached, written back before the
 * next entry); controls, read shadows and exit fields live here. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

static const uint16_t known[] = {
    0x0000, 0x0800, 0x0802, 0x0804, 0x0806, 0x0808, 0x080a, 0x080c, 0x080e,
    0x0810, 0x2000, 0x2002, 0x2004, 0x2006, 0x2008, 0x200a, 0x200c, 0x2010,
    0x2012, 0x2014, 0x2016, 0x2018, 0x201a, 0x201c, 0x201e, 0x2020, 0x2022,
    0x2032, 0x2400, 0x2800, 0x2802, 0x2804, 0x2806, 0x2808, 0x280a, 0x280c,
    0x280e, 0x2810, 0x4000, 0x4002, 0x4004, 0x4006, 0x4008, 0x400a, 0x400c,
    0x400e, 0x4010, 0x4012, 0x4014, 0x4016, 0x4018, 0x401a, 0x401c, 0x401e,
    0x4020, 0x4022, 0x4400, 0x4402, 0x4404, 0x4406, 0x4408, 0x440a, 0x440c,
    0x440e, 0x4800, 0x4802, 0x4804, 0x4806, 0x4808, 0x480a, 0x480c, 0x480e,
    0x4810, 0x4812, 0x4814, 0x4816, 0x4818, 0x481a, 0x481c, 0x481e, 0x4820,
    0x4822, 0x4824, 0x4826, 0x4828, 0x482a, 0x482e, 0x6000, 0x6002, 0x6004,
    0x6006, 0x6008, 0x600a, 0x600c, 0x600e, 0x6400, 0x6402, 0x6404, 0x6406,
    0x6408, 0x640a, 0x6800, 0x6802, 0x6804, 0x6806, 0x6808, 0x680a, 0x680c,
    0x680e, 0x6810, 0x6812, 0x6814, 0x6816, 0x6818, 0x681a, 0x681c, 0x681e,
    0x6820, 0x6822, 0x6824, 0x6826};

int hvfh_vmcs_field_known(uint32_t field, int *read_only)
{
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i] == field) {
            *read_only = ((field >> 10) & 3) == 1;
            return 1;
        }
    return 0;
}

/* Segment fields: index 0..7 = ES CS SS DS FS GS LDTR TR. */
static struct kvm_segment *seg(struct kvm_sregs *s, int i)
{
    struct kvm_segment *t[8] = {&s->es, &s->cs, &s->ss,  &s->ds,
                                &s->fs, &s->gs, &s->ldt, &s->tr};
    return t[i];
}

static uint64_t ar_of(const struct kvm_segment *s)
{
    if (s->unusable)
        return 1u << 16;
    return (uint64_t)(s->type & 15) | (uint64_t)(s->s & 1) << 4 |
           (uint64_t)(s->dpl & 3) << 5 | (uint64_t)(s->present & 1) << 7 |
           (uint64_t)(s->avl & 1) << 12 | (uint64_t)(s->l & 1) << 13 |
           (uint64_t)(s->db & 1) << 14 | (uint64_t)(s->g & 1) << 15;
}

static void ar_set(struct kvm_segment *s, uint64_t ar)
{
    s->type = ar & 15;
    s->s = (ar >> 4) & 1;
    s->dpl = (ar >> 5) & 3;
    s->present = (ar >> 7) & 1;
    s->avl = (ar >> 12) & 1;
    s->l = (ar >> 13) & 1;
    s->db = (ar >> 14) & 1;
    s->g = (ar >> 15) & 1;
    s->unusable = (ar >> 16) & 1;
}

/* Guest-state MSRs kept by KVM. */
static uint32_t field_msr(uint32_t f)
{
    switch (f) {
    case VMCS_GUEST_IA32_DEBUGCTL: return 0x1d9;
    case VMCS_GUEST_IA32_PAT: return 0x277;
    case VMCS_GUEST_IA32_SYSENTER_CS: return 0x174;
    case VMCS_GUEST_SYSENTER_ESP: return 0x175;
    case VMCS_GUEST_SYSENTER_EIP: return 0x176;
    default: return 0;
    }
}

static int msr_rw(struct hvfh_vcpu *v, uint32_t msr, uint64_t *val, int w)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e;
    } m;
    memset(&m, 0, sizeof(m));
    m.h.nmsrs = 1;
    m.e.index = msr;
    m.e.data = w ? *val : 0;
    if (ioctl(v->fd, w ? KVM_SET_MSRS : KVM_GET_MSRS, &m) != 1)
        return -EINVAL;
    if (!w)
        *val = m.e.data;
    return 0;
}

/* Interruptibility state <-> KVM's vCPU events. */
static int events_rw(struct hvfh_vcpu *v, uint64_t *val, int w)
{
    struct kvm_vcpu_events e;
    if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &e))
        return -errno;
    if (!w) {
        *val = ((e.interrupt.shadow & KVM_X86_SHADOW_INT_STI) ? 1 : 0) |
               ((e.interrupt.shadow & KVM_X86_SHADOW_INT_MOV_SS) ? 2 : 0) |
               (e.nmi.masked ? 8 : 0);
        return 0;
    }
    e.interrupt.shadow = ((*val & 1) ? KVM_X86_SHADOW_INT_STI : 0) |
                         ((*val & 2) ? KVM_X86_SHADOW_INT_MOV_SS : 0);
    e.nmi.masked = (*val >> 3) & 1;
    e.flags = KVM_VCPUEVENT_VALID_SHADOW;
    return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &e) ? -errno : 0;
}

static int debugreg7(struct hvfh_vcpu *v, uint64_t *val, int w)
{
    struct kvm_debugregs d;
    if (ioctl(v->fd, KVM_GET_DEBUGREGS, &d))
        return -errno;
    if (!w) {
        *val = d.dr7;
        return 0;
    }
    d.dr7 = *val;
    return ioctl(v->fd, KVM_SET_DEBUGREGS, &d) ? -errno : 0;
}

/* Reads or writes field f of KVM's state; 1 when f is not KVM's. */
static int kvm_field(struct hvfh_vcpu *v, uint32_t f, uint64_t *val, int w)
{
    int type = (f >> 10) & 3, width = (f >> 13) & 3;
    if (type != 2) /* guest state only */
        return 1;
    if (f == VMCS_GUEST_RIP || f == VMCS_GUEST_RSP || f == VMCS_GUEST_RFLAGS) {
        if (hvfh_load_regs(v))
            return -EIO;
        uint64_t *p = (uint64_t *)(f == VMCS_GUEST_RIP   ? &v->regs.rip
                                   : f == VMCS_GUEST_RSP ? &v->regs.rsp
                                                         : &v->regs.rflags);
        if (w) {
            *p = *val;
            v->regs_dirty = 1;
        } else {
            *val = *p;
        }
        return 0;
    }
    if (field_msr(f))
        return msr_rw(v, field_msr(f), val, w);
    if (f == VMCS_GUEST_IGNORE_IRQ)
        return events_rw(v, val, w);
    if (f == VMCS_GUEST_DR7)
        return debugreg7(v, val, w);
    if (hvfh_load_sregs(v))
        return -EIO;
    struct kvm_sregs *s = &v->sregs;
    uint64_t *p64 = NULL;
    uint16_t *p16 = NULL;
    uint32_t *p32 = NULL;
    if (width == 0 && f >= 0x0800 && f <= 0x080e) { /* selectors */
        p16 = &seg(s, (f - 0x0800) / 2)->selector;
    } else if (width == 2 && f >= 0x4800 && f <= 0x480e) { /* limits */
        p32 = &seg(s, (f - 0x4800) / 2)->limit;
    } else if (f == VMCS_GUEST_GDTR_LIMIT || f == VMCS_GUEST_IDTR_LIMIT) {
        p16 = f == VMCS_GUEST_GDTR_LIMIT ? &s->gdt.limit : &s->idt.limit;
    } else if (width == 2 && f >= 0x4814 && f <= 0x4822) { /* AR */
        struct kvm_segment *sg = seg(s, (f - 0x4814) / 2);
        if (w) {
            ar_set(sg, *val);
            v->sregs_dirty = 1;
        } else {
            *val = ar_of(sg);
        }
        return 0;
    } else if (width == 3 && f >= 0x6806 && f <= 0x6814) { /* bases */
        p64 = (uint64_t *)&seg(s, (f - 0x6806) / 2)->base;
    } else if (f == VMCS_GUEST_GDTR_BASE || f == VMCS_GUEST_IDTR_BASE) {
        p64 = (uint64_t *)(f == VMCS_GUEST_GDTR_BASE ? &s->gdt.base
                                                     : &s->idt.base);
    } else if (f == VMCS_GUEST_CR4) {
        /* VMX needs CR4.VMXE set in the guest's CR4 (fixed-1), KVM refuses
         * it (no nested VMX): kept here, the rest is KVM's */
        if (w) {
            v->cr4_vmxe = (*val & CR4_VMXE) != 0;
            s->cr4 = *val & ~(uint64_t)CR4_VMXE;
            v->sregs_dirty = 1;
        } else {
            *val = s->cr4 | (v->cr4_vmxe ? CR4_VMXE : 0);
        }
        return 0;
    } else if (f == VMCS_GUEST_CR0 || f == VMCS_GUEST_CR3) {
        p64 = (uint64_t *)(f == VMCS_GUEST_CR0 ? &s->cr0 : &s->cr3);
    } else if (f == VMCS_GUEST_IA32_EFER) {
        p64 = (uint64_t *)&s->efer;
    } else {
        return 1;
    }
    if (w) {
        if (p64)
            *p64 = *val;
        else if (p32)
            *p32 = (uint32_t)*val;
        else
            *p16 = (uint16_t)*val;
        v->sregs_dirty = 1;
    } else {
        *val = p64 ? *p64 : p32 ? *p32 : *p16;
    }
    return 0;
}

hv_return_t hvfh_vmcs_read(struct hvfh_vcpu *v, uint32_t field, uint64_t *val)
{
    int ro;
    if (!hvfh_vmcs_field_known(field, &ro))
        return HV_BAD_ARGUMENT;
    int r = kvm_field(v, field, val, 0);
    if (r < 0)
        return HV_ERROR;
    if (r == 1)
        *val = v->vmcs[field];
    return HV_SUCCESS;
}

hv_return_t hvfh_vmcs_write(struct hvfh_vcpu *v, uint32_t field, uint64_t val,
                            int internal)
{
    int ro;
    if (!hvfh_vmcs_field_known(field, &ro) || (ro && !internal))
        return HV_BAD_ARGUMENT;
    int width = (field >> 13) & 3;
    if (width == 0)
        val &= 0xffff;
    else if (width == 2)
        val &= 0xffffffffu;
    int r = kvm_field(v, field, &val, 1);
    if (r < 0)
        return HV_ERROR;
    if (r == 1)
        v->vmcs[field] = val;
    return HV_SUCCESS;
}

hv_return_t hv_vmx_vcpu_read_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                  uint64_t *value)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v || !value)
        return HV_BAD_ARGUMENT;
    return hvfh_vmcs_read(v, field, value);
}

hv_return_t hv_vmx_vcpu_write_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                   uint64_t value)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v)
        return HV_BAD_ARGUMENT;
    return hvfh_vmcs_write(v, field, value, 0);
}

/* No shadow VMCS (nested VMX) here. */
hv_return_t hv_vmx_vcpu_read_shadow_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                         uint64_t *value)
{
    (void)vcpu, (void)field, (void)value;
    return HV_UNSUPPORTED;
}
hv_return_t hv_vmx_vcpu_write_shadow_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                          uint64_t value)
{
    (void)vcpu, (void)field, (void)value;
    return HV_UNSUPPORTED;
}
hv_return_t hv_vmx_vcpu_set_shadow_access(hv_vcpuid_t vcpu, uint32_t field,
                                          uint64_t access)
{
    (void)vcpu, (void)field, (void)access;
    return HV_UNSUPPORTED;
}
/* The macOS 12 APIC acceleration is not provided. */
hv_return_t hv_vmx_vcpu_set_apic_address(hv_vcpuid_t vcpu, hv_gpaddr_t gpa)
{
    (void)vcpu, (void)gpa;
    return HV_UNSUPPORTED;
}

void hvfh_vmcs_init(struct hvfh_vcpu *v)
{
    uint64_t c;
    hv_vmx_read_capability(HV_VMX_CAP_PINBASED, &c);
    v->vmcs[VMCS_CTRL_PIN_BASED] = (uint32_t)c;
    hv_vmx_read_capability(HV_VMX_CAP_PROCBASED, &c);
    v->vmcs[VMCS_CTRL_CPU_BASED] = (uint32_t)c;
    hv_vmx_read_capability(HV_VMX_CAP_PROCBASED2, &c);
    v->vmcs[VMCS_CTRL_CPU_BASED2] = (uint32_t)c;
    hv_vmx_read_capability(HV_VMX_CAP_ENTRY, &c);
    v->vmcs[VMCS_CTRL_VMENTRY_CONTROLS] = (uint32_t)c;
    hv_vmx_read_capability(HV_VMX_CAP_EXIT, &c);
    v->vmcs[VMCS_CTRL_VMEXIT_CONTROLS] = (uint32_t)c;
    v->vmcs[VMCS_GUEST_LINK_POINTER] = ~0ull;
}

/* VM-entry checks on guest state (SDM vol. 3 §27.3.1), the ones a VMM gets
 * wrong in practice; on success also gives KVM the EFER that entry loads. */
int hvfh_entry_check(struct hvfh_vcpu *v)
{
    if (hvfh_load_sregs(v) || hvfh_load_regs(v))
        return -1;
    struct kvm_sregs *s = &v->sregs;
    uint64_t entry = v->vmcs[VMCS_CTRL_VMENTRY_CONTROLS];
    int ia32e = (entry & VMENTRY_GUEST_IA32E) != 0;
    int pg = (s->cr0 >> 31) & 1, pe = s->cr0 & 1;
    if (pg && !pe)
        return 1;
    /* the fixed bits (IA32_VMX_CR0/CR4_FIXED0, unrestricted guest) */
    if (!(s->cr0 & (1u << 5)) || !v->cr4_vmxe)
        return 9;
    if (ia32e && (!pg || !(s->cr4 & (1u << 5))))
        return 2;
    uint64_t efer = s->efer;
    if (entry & VMENTRY_LOAD_EFER) {
        int lma = (efer >> 10) & 1, lme = (efer >> 8) & 1;
        if (lma != ia32e || (pg && lma != lme))
            return 3;
    } else {
        efer = (efer & ~(1ull << 10)) | ((uint64_t)ia32e << 10);
        if (pg)
            efer = (efer & ~(1ull << 8)) | ((uint64_t)ia32e << 8);
    }
    if (ia32e && s->cs.l && s->cs.db)
        return 4;
    if (!ia32e && s->cs.l)
        return 5;
    if (s->tr.unusable || !s->tr.present ||
        (s->tr.type != 11 && (ia32e || s->tr.type != 3)))
        return 6;
    if (!(v->regs.rflags & 2) || (ia32e && (v->regs.rflags & (1u << 17))))
        return 7;
    uint64_t info = v->vmcs[VMCS_CTRL_VMENTRY_IRQ_INFO];
    if ((info & IRQ_INFO_VALID) && ((info >> 8) & 7) == 0) {
        uint64_t shadow = 0;
        if (events_rw(v, &shadow, 0))
            return -1;
        if (!(v->regs.rflags & (1u << 9)) || (shadow & 3))
            return 8; /* external interrupt while blocked */
    }
    if (efer != s->efer) {
        s->efer = efer;
        v->sregs_dirty = 1;
    }
    return 0;
}
