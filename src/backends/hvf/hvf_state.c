/* vCPU state blobs in the architectural layouts of src/arch/x86/
 * arch_state.h (DESIGN.md §9), so that a snapshot taken under KVM resumes
 * here and the reverse. Registers go through the backend's own register
 * ops (the same ids the public API uses); the VM-wide chips and the LAPIC
 * are the userspace ones', which save themselves: size 0 here. */
#include "hvf.h"

#include "../../arch/x86/arch_state.h"
#include "hvf_vmx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* The MSRs this backend saves, ascending (EFER, APIC base and the TSC
 * MSRs travel in other records). */
static const uint32_t saved_msrs[] = {
    0x3a,       0x174,      0x175,      0x176,      0x1a0, /* FEATURE_CONTROL,
                                                  SYSENTER, MISC_ENABLE */
    0x200,      0x201,      0x202,      0x203,      0x204, 0x205, 0x206, 0x207,
    0x208,      0x209,      0x20a,      0x20b,      0x20c, 0x20d, 0x20e, 0x20f,
    0x250,      0x258,      0x259,      0x268,      0x269, 0x26a, 0x26b, 0x26c,
    0x26d,      0x26e,      0x26f,      0x277,      0x2ff, /* MTRRs, PAT */
    0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,        /* syscall */
    0xc0000100, 0xc0000101, 0xc0000102, 0xc0000103};
#define NR_SAVED (sizeof(saved_msrs) / sizeof(saved_msrs[0]))

static size_t xsave_bytes(struct hvi_hvf_vcpu *v)
{
    return sizeof(struct hvi_x86_xsave) + v->fpu_size;
}

int hvi_hvf_vcpu_state_size(void *vcpu_priv, uint32_t kind, size_t *size)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    switch (kind) {
    case HVC_BACKEND_VCPU_ARCH_REGS: *size = sizeof(struct hvi_x86_regs); break;
    case HVC_BACKEND_VCPU_ARCH_SREGS:
        *size = sizeof(struct hvi_x86_sregs);
        break;
    case HVC_BACKEND_VCPU_ARCH_MSRS:
        *size =
            sizeof(struct hvi_x86_msrs) + NR_SAVED * sizeof(struct hvi_x86_msr);
        break;
    case HVC_BACKEND_VCPU_ARCH_XSAVE: *size = xsave_bytes(v); break;
    case HVC_BACKEND_VCPU_ARCH_EVENTS:
        *size = sizeof(struct hvi_x86_events);
        break;
    case HVC_BACKEND_VCPU_ARCH_LAPIC: /* no LAPIC model connected */
        *size = 0;
        break;
    case HVC_BACKEND_VCPU_ARCH_CPUID:
        *size = sizeof(struct hvi_x86_cpuid) +
                hvi_hvf_cpuid_table(v, NULL, 0) *
                    sizeof(struct hvi_x86_cpuid_entry);
        break;
    default:
        return hvi_error(-EINVAL, "the hvf backend has no vCPU state kind %u",
                         kind);
    }
    return 0;
}

static int get_sregs(struct hvi_hvf_vcpu *v, struct hvi_x86_sregs *s)
{
    memset(s, 0, sizeof(*s));
    hvi_x86_state_init(&s->hdr, sizeof(*s));
    s->nr_segments = HVI_X86_NR_SEGMENTS;
    int r;
    for (uint32_t i = 0; i < HVI_X86_NR_SEGMENTS; i++) {
        hvc_x86_segment seg;
        hvc_reg id = HVC_X86_CS + i;
        if ((r = hvi_hvf_get_segment(v, id, &seg)) < 0)
            return r;
        struct hvi_x86_segment *o = &s->segments[i];
        o->id = id;
        o->base = seg.base;
        o->limit = seg.limit;
        if (id != HVC_X86_GDTR && id != HVC_X86_IDTR) {
            o->selector = seg.selector;
            o->ar = hvi_x86_ar_pack(&seg);
        }
    }
    static const hvc_reg ids[] = {
        HVC_X86_CR0,  HVC_X86_CR2,       HVC_X86_CR3, HVC_X86_CR4, HVC_X86_CR8,
        HVC_X86_EFER, HVC_X86_APIC_BASE, HVC_X86_DR0, HVC_X86_DR1, HVC_X86_DR2,
        HVC_X86_DR3,  HVC_X86_DR6,       HVC_X86_DR7};
    return hvi_hvf_get_regs(v, ids, &s->cr0, 13);
}

static int set_sregs(struct hvi_hvf_vcpu *v, const struct hvi_x86_sregs *s)
{
    if (s->nr_segments != HVI_X86_NR_SEGMENTS)
        return hvi_error(-EINVAL, "sregs state: %u segments, not %u",
                         s->nr_segments, HVI_X86_NR_SEGMENTS);
    int r;
    /* EFER before CR0, so that paging comes on in the right mode; CR4
     * before CR0 for PAE. */
    static const hvc_reg ids[] = {
        HVC_X86_EFER, HVC_X86_CR4,       HVC_X86_CR0, HVC_X86_CR2, HVC_X86_CR3,
        HVC_X86_CR8,  HVC_X86_APIC_BASE, HVC_X86_DR0, HVC_X86_DR1, HVC_X86_DR2,
        HVC_X86_DR3,  HVC_X86_DR6,       HVC_X86_DR7};
    const uint64_t vals[] = {s->efer, s->cr4,       s->cr0, s->cr2, s->cr3,
                             s->cr8,  s->apic_base, s->dr0, s->dr1, s->dr2,
                             s->dr3,  s->dr6,       s->dr7};
    if ((r = hvi_hvf_set_regs(v, ids, vals, 13)) < 0)
        return r;
    for (uint32_t i = 0; i < HVI_X86_NR_SEGMENTS; i++) {
        const struct hvi_x86_segment *in = &s->segments[i];
        if (in->id != HVC_X86_CS + i)
            return hvi_error(-EINVAL,
                             "sregs state: segment %u has id 0x%" PRIx64
                             ", not 0x%x",
                             i, in->id, (unsigned)(HVC_X86_CS + i));
        hvc_x86_segment seg = {
            .base = in->base, .limit = in->limit, .selector = in->selector};
        hvi_x86_ar_unpack(in->ar, &seg);
        if ((r = hvi_hvf_set_segment(v, in->id, &seg)) < 0)
            return r;
    }
    return 0;
}

static int get_msrs(struct hvi_hvf_vcpu *v, struct hvi_x86_msrs *m,
                    size_t length)
{
    memset(m, 0, length);
    hvi_x86_state_init(&m->hdr, length);
    m->count = NR_SAVED;
    for (size_t i = 0; i < NR_SAVED; i++) {
        m->entries[i].index = saved_msrs[i];
        int r = hvi_hvf_msr_read(v, saved_msrs[i], &m->entries[i].value);
        if (r < 0)
            return hvi_error(r == -EINVAL ? -EIO : r,
                             "vCPU %u: reading MSR 0x%x for the state", v->id,
                             saved_msrs[i]);
    }
    return 0;
}

/* MSRs that describe the CPU that saved them and hold no guest state:
 * another host's values are dropped (this backend's guests see none of
 * them: their reads raise #GP). */
static bool informational(uint32_t msr)
{
    switch (msr) {
    case 0xce:  /* PLATFORM_INFO */
    case 0x10a: /* ARCH_CAPABILITIES */
    case 0x140: /* MISC_FEATURES_ENABLES */
    case 0x345: /* PERF_CAPABILITIES */ return true;
    default: return false;
    }
}

/* All or nothing: every MSR is checked against what this backend keeps
 * before any is written. One it does not have is refused, naming it,
 * unless its value is 0 (the reset value of the MSRs another backend may
 * save and this one lacks, e.g. KVM's paravirtual ones when unused) or it
 * is informational (above). */
static int set_msrs(struct hvi_hvf_vcpu *v, const struct hvi_x86_msrs *m)
{
    uint64_t *old = calloc(m->count ? m->count : 1, sizeof(*old));
    bool *known = calloc(m->count ? m->count : 1, sizeof(*known));
    int r = 0;
    if (!old || !known) {
        r = hvi_error(-ENOMEM, "out of memory restoring MSRs");
        goto out;
    }
    for (uint32_t i = 0; i < m->count; i++) {
        const struct hvi_x86_msr *e = &m->entries[i];
        known[i] = hvi_hvf_msr_read(v, e->index, &old[i]) == 0;
        /* KVM's MSR_KVM_POLL_CONTROL resets to 1 (polling allowed). */
        bool reset = e->value == 0 || (e->index == 0x4b564d05 && e->value == 1);
        if (!known[i] && !reset && !informational(e->index)) {
            r = hvi_error(-EINVAL,
                          "MSR state: the hvf backend cannot set MSR 0x%x "
                          "(value 0x%" PRIx64 ")",
                          e->index, e->value);
            goto out;
        }
    }
    uint32_t done = 0;
    for (; done < m->count; done++) {
        const struct hvi_x86_msr *e = &m->entries[done];
        if (known[done] && (r = hvi_hvf_msr_write(v, e->index, e->value)) < 0) {
            r = hvi_error(-EINVAL, "MSR state: MSR 0x%x refuses 0x%" PRIx64,
                          e->index, e->value);
            break;
        }
    }
    if (r < 0)
        while (done-- > 0)
            if (known[done])
                hvi_hvf_msr_write(v, m->entries[done].index, old[done]);
out:
    free(old);
    free(known);
    return r;
}

static int get_xsave(struct hvi_hvf_vcpu *v, struct hvi_x86_xsave *x)
{
    memset(x, 0, sizeof(*x));
    hvi_x86_state_init(&x->hdr, xsave_bytes(v));
    x->xsave_size = (uint32_t)v->fpu_size;
    int r = hvi_hvf_rreg(v, HV_X86_XCR0, &x->xcr0);
    if (r == 0)
        r = hvi_hvf_get_fpu(v, x->area, v->fpu_size);
    return r;
}

static int set_xsave(struct hvi_hvf_vcpu *v, const struct hvi_x86_xsave *x)
{
    for (size_t i = v->fpu_size; i < x->xsave_size; i++)
        if (x->area[i])
            return hvi_error(-EINVAL,
                             "XSAVE state: byte 0x%zx is set, past the "
                             "%zu-byte area this host has",
                             i, v->fpu_size);
    uint8_t *area = calloc(1, v->fpu_size);
    if (!area)
        return hvi_error(-ENOMEM, "out of memory restoring XSAVE state");
    size_t n = x->xsave_size < v->fpu_size ? x->xsave_size : v->fpu_size;
    memcpy(area, x->area, n);
    uint64_t old_xcr0 = 1;
    int r = hvi_hvf_rreg(v, HV_X86_XCR0, &old_xcr0);
    if (r == 0 && (r = hvi_hvf_wreg(v, HV_X86_XCR0, x->xcr0)) < 0)
        r = hvi_error(-EINVAL, "XSAVE state: XCR0 0x%" PRIx64 " refused",
                      x->xcr0);
    if (r == 0 && (r = hvi_hvf_set_fpu(v, area, v->fpu_size)) < 0)
        hvi_hvf_wreg(v, HV_X86_XCR0, old_xcr0);
    if (r == 0)
        v->msrs.xcr0 = x->xcr0;
    free(area);
    return r;
}

static int get_events(struct hvi_hvf_vcpu *v, struct hvi_x86_events *e)
{
    memset(e, 0, sizeof(*e));
    hvi_x86_state_init(&e->hdr, sizeof(*e));
    uint64_t act = hvi_hvf_vmcs(v, VMCS_GUEST_ACTIVITY_STATE);
    e->activity = act == 1   ? HVI_X86_ACT_HLT
                  : act == 2 ? HVI_X86_ACT_SHUTDOWN
                  : act == 3 ? HVI_X86_ACT_WAIT_SIPI
                             : HVI_X86_ACT_ACTIVE;
    uint64_t intr = hvi_hvf_vmcs(v, VMCS_GUEST_IGNORE_IRQ);
    e->interrupt_shadow = intr & 3;
    if (intr & 8)
        e->flags |= HVI_X86_EV_NMI_MASKED;
    uint64_t info = hvi_hvf_vmcs(v, VMCS_CTRL_VMENTRY_IRQ_INFO);
    if (info & IRQ_INFO_VALID) {
        unsigned type = (info >> 8) & 7;
        uint8_t vec = info & 0xff;
        if (type == 0 || type == 4) {
            e->flags |=
                HVI_X86_EV_IRQ_INJECTED | (type == 4 ? HVI_X86_EV_IRQ_SOFT : 0);
            e->interrupt_vector = vec;
        } else if (type == 2) {
            e->flags |= HVI_X86_EV_NMI_INJECTED;
        } else {
            e->flags |= HVI_X86_EV_EXC_INJECTED;
            e->exception_vector = vec;
            if (info & IRQ_INFO_ERROR_VALID) {
                e->flags |= HVI_X86_EV_EXC_ERROR;
                e->exception_error_code =
                    (uint32_t)hvi_hvf_vmcs(v, VMCS_CTRL_VMENTRY_EXC_ERROR);
            }
        }
    }
    return 0;
}

static int set_events(struct hvi_hvf_vcpu *v, const struct hvi_x86_events *e)
{
    const uint32_t supported = HVI_X86_EV_EXC_PENDING |
                               HVI_X86_EV_EXC_INJECTED | HVI_X86_EV_EXC_ERROR |
                               HVI_X86_EV_IRQ_INJECTED | HVI_X86_EV_IRQ_SOFT |
                               HVI_X86_EV_NMI_INJECTED | HVI_X86_EV_NMI_MASKED;
    if (e->flags & ~supported)
        return hvi_error(-EINVAL,
                         "events state: flags 0x%x include SMM, a latched "
                         "INIT or a pending triple fault, which the hvf "
                         "backend cannot restore",
                         e->flags);
    if (e->nmi_pending)
        return hvi_error(-EINVAL,
                         "events state: %u NMIs pending, and the "
                         "hvf backend has no NMI source yet",
                         e->nmi_pending);
    uint64_t act = e->activity == HVI_X86_ACT_HLT        ? 1
                   : e->activity == HVI_X86_ACT_SHUTDOWN ? 2
                   : e->activity == HVI_X86_ACT_ACTIVE   ? 0
                                                         : 3;
    uint64_t info = 0, err = 0;
    if (e->flags & (HVI_X86_EV_EXC_PENDING | HVI_X86_EV_EXC_INJECTED)) {
        info = IRQ_INFO_VALID | IRQ_INFO_HARD_EXC | e->exception_vector;
        if (e->flags & HVI_X86_EV_EXC_ERROR) {
            info |= IRQ_INFO_ERROR_VALID;
            err = e->exception_error_code;
        }
    } else if (e->flags & HVI_X86_EV_NMI_INJECTED) {
        info = IRQ_INFO_VALID | IRQ_INFO_NMI | 2;
    } else if (e->flags & HVI_X86_EV_IRQ_INJECTED) {
        info = IRQ_INFO_VALID | e->interrupt_vector |
               ((e->flags & HVI_X86_EV_IRQ_SOFT) ? IRQ_INFO_SOFT_IRQ
                                                 : IRQ_INFO_EXT_IRQ);
    }
    uint64_t intr = (e->interrupt_shadow & 3u) |
                    ((e->flags & HVI_X86_EV_NMI_MASKED) ? 8u : 0u);
    int r;
    if ((r = hvi_hvf_wvmcs(v, VMCS_GUEST_ACTIVITY_STATE, act)) < 0 ||
        (r = hvi_hvf_wvmcs(v, VMCS_GUEST_IGNORE_IRQ, intr)) < 0 ||
        (r = hvi_hvf_wvmcs(v, VMCS_CTRL_VMENTRY_EXC_ERROR, err)) < 0 ||
        (r = hvi_hvf_wvmcs(v, VMCS_CTRL_VMENTRY_IRQ_INFO, info)) < 0)
        return r;
    return 0;
}

int hvi_hvf_vcpu_get_state(void *vcpu_priv, uint32_t kind, void *buf,
                           size_t length)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    int r = hvi_hvf_vcpu_flush(v);
    if (r < 0)
        return r;
    switch (kind) {
    case HVC_BACKEND_VCPU_ARCH_REGS: {
        struct hvi_x86_regs *g = buf;
        memset(g, 0, sizeof(*g));
        hvi_x86_state_init(&g->hdr, sizeof(*g));
        g->count = HVI_X86_NR_GPRS;
        hvc_reg ids[HVI_X86_NR_GPRS];
        uint64_t vals[HVI_X86_NR_GPRS];
        for (uint32_t i = 0; i < HVI_X86_NR_GPRS; i++)
            ids[i] = g->regs[i].id = HVC_X86_RAX + i;
        if ((r = hvi_hvf_get_regs(v, ids, vals, HVI_X86_NR_GPRS)) < 0)
            return r;
        for (uint32_t i = 0; i < HVI_X86_NR_GPRS; i++)
            g->regs[i].value = vals[i];
        return 0;
    }
    case HVC_BACKEND_VCPU_ARCH_SREGS: return get_sregs(v, buf);
    case HVC_BACKEND_VCPU_ARCH_MSRS: return get_msrs(v, buf, length);
    case HVC_BACKEND_VCPU_ARCH_XSAVE: return get_xsave(v, buf);
    case HVC_BACKEND_VCPU_ARCH_EVENTS: return get_events(v, buf);
    case HVC_BACKEND_VCPU_ARCH_CPUID: {
        struct hvi_x86_cpuid *c = buf;
        size_t cap = (length - sizeof(*c)) / sizeof(c->entries[0]);
        memset(c, 0, length);
        hvi_x86_state_init(&c->hdr, length);
        size_t n = hvi_hvf_cpuid_table(v, c->entries, cap);
        if (n != cap)
            return hvi_error(-EIO,
                             "vCPU %u: the CPUID table changed size "
                             "(%zu entries, not %zu)",
                             v->id, n, cap);
        c->count = (uint32_t)n;
        return 0;
    }
    default:
        return hvi_error(-EINVAL, "the hvf backend has no vCPU state kind %u",
                         kind);
    }
}

int hvi_hvf_vcpu_set_state(void *vcpu_priv, uint32_t kind, const void *buf,
                           size_t length)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    int r;
    switch (kind) {
    case HVC_BACKEND_VCPU_ARCH_REGS: {
        const struct hvi_x86_regs *g = buf;
        if ((r = hvi_x86_check_regs(g, length)) < 0)
            return r;
        hvc_reg ids[HVI_X86_NR_GPRS];
        uint64_t vals[HVI_X86_NR_GPRS];
        for (uint32_t i = 0; i < HVI_X86_NR_GPRS; i++) {
            ids[i] = g->regs[i].id;
            vals[i] = g->regs[i].value;
        }
        return hvi_hvf_set_regs(v, ids, vals, HVI_X86_NR_GPRS);
    }
    case HVC_BACKEND_VCPU_ARCH_SREGS:
        if ((r = hvi_x86_check_sregs(buf, length)) < 0)
            return r;
        return set_sregs(v, buf);
    case HVC_BACKEND_VCPU_ARCH_MSRS:
        if ((r = hvi_x86_check_msrs(buf, length)) < 0)
            return r;
        return set_msrs(v, buf);
    case HVC_BACKEND_VCPU_ARCH_XSAVE:
        if ((r = hvi_x86_check_xsave(buf, length)) < 0)
            return r;
        return set_xsave(v, buf);
    case HVC_BACKEND_VCPU_ARCH_EVENTS:
        if ((r = hvi_x86_check_events(buf, length)) < 0)
            return r;
        return set_events(v, buf);
    case HVC_BACKEND_VCPU_ARCH_CPUID:
        /* Checked, not applied: the guest keeps this host's filtered
         * CPUID (docs/HVF.md). */
        return hvi_x86_check_cpuid(buf, length);
    default:
        return hvi_error(-EINVAL, "the hvf backend has no vCPU state kind %u",
                         kind);
    }
}

int hvi_hvf_vm_state_size(void *vm_priv, uint32_t kind, size_t *size)
{
    (void)vm_priv;
    switch (kind) {
    case HVC_BACKEND_VM_ARCH_PIC_MASTER:
    case HVC_BACKEND_VM_ARCH_PIC_SLAVE:
    case HVC_BACKEND_VM_ARCH_IOAPIC:
    case HVC_BACKEND_VM_ARCH_PIT: *size = 0; return 0;
    default:
        return hvi_error(-EINVAL, "the hvf backend has no VM state kind %u",
                         kind);
    }
}

int hvi_hvf_vm_get_state(void *vm_priv, uint32_t kind, void *buf, size_t length)
{
    (void)vm_priv;
    (void)buf;
    (void)length;
    return hvi_error(-EINVAL, "the hvf backend keeps no VM state kind %u",
                     kind);
}

int hvi_hvf_vm_set_state(void *vm_priv, uint32_t kind, const void *buf,
                         size_t length)
{
    return hvi_hvf_vm_get_state(vm_priv, kind, (void *)buf, length);
}
