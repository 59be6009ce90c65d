/* KVM backend: a vCPU's state in the architectural layouts of
 * src/arch/x86/arch_state.h, converted from and to KVM's UAPI structs:
 * REGS (kvm_regs), SREGS (kvm_sregs and kvm_debugregs), XSAVE (kvm_xsave
 * and kvm_xcrs), EVENTS (kvm_vcpu_events and kvm_mp_state), LAPIC
 * (kvm_lapic_state and IA32_APIC_BASE). A blob given to set comes from a
 * stream: it is copied, checked by the architectural checks
 * (arch_state.c), then by what KVM can represent here, before KVM sees it;
 * what KVM refuses is reported with the values it judged. */
#include "kvm.h"

#include "../../arch/x86/arch_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MSR_IA32_APICBASE 0x1bu

_Static_assert(sizeof(struct kvm_regs) == HVI_X86_NR_GPRS * 8,
               "kvm_regs is RAX..R15, RIP, RFLAGS");

size_t hvi_kvm_arch_size(const struct hvi_kvm_vcpu *v, uint32_t kind)
{
    switch (kind) {
    case HVC_BACKEND_VCPU_ARCH_REGS: return sizeof(struct hvi_x86_regs);
    case HVC_BACKEND_VCPU_ARCH_SREGS: return sizeof(struct hvi_x86_sregs);
    case HVC_BACKEND_VCPU_ARCH_EVENTS: return sizeof(struct hvi_x86_events);
    case HVC_BACKEND_VCPU_ARCH_LAPIC:
        return v->vm->has_irqchip ? sizeof(struct hvi_x86_lapic) : 0;
    case HVC_BACKEND_VCPU_ARCH_XSAVE:
        return sizeof(struct hvi_x86_xsave) + v->fpu_size;
    }
    return 0;
}

static int fail(const char *what, const char *op, int err)
{
    return hvi_error(-err, "%s state: %s: %s", what, op, hvc_strerror(-err));
}

/* ---- REGS --------------------------------------------------------------- */

static int get_regs(struct hvi_kvm_vcpu *v, struct hvi_x86_regs *a)
{
    struct kvm_regs k;
    uint64_t val[HVI_X86_NR_GPRS];
    if (ioctl(v->fd, KVM_GET_REGS, &k) < 0)
        return fail("REGS", "KVM_GET_REGS", errno);
    memcpy(val, &k, sizeof(val)); /* the same order as the ids */
    a->count = HVI_X86_NR_GPRS;
    for (uint32_t i = 0; i < HVI_X86_NR_GPRS; i++) {
        a->regs[i].id = HVC_X86_RAX + i;
        a->regs[i].value = val[i];
    }
    return 0;
}

static int set_regs(struct hvi_kvm_vcpu *v, const struct hvi_x86_regs *a)
{
    uint64_t val[HVI_X86_NR_GPRS];
    struct kvm_regs k;
    for (uint32_t i = 0; i < HVI_X86_NR_GPRS; i++)
        val[i] = a->regs[i].value;
    memcpy(&k, val, sizeof(k));
    if (ioctl(v->fd, KVM_SET_REGS, &k) < 0) {
        int e = errno;
        return hvi_error(-e, "REGS state: KVM refused it (RIP 0x%llx): %s",
                         (unsigned long long)k.rip, hvc_strerror(-e));
    }
    return 0;
}

/* ---- SREGS -------------------------------------------------------------- */

static void seg_from_kvm(struct hvi_x86_segment *a, uint64_t id,
                         const struct kvm_segment *k)
{
    hvc_x86_segment s = {.type = k->type,
                         .present = k->present,
                         .dpl = k->dpl,
                         .db = k->db,
                         .s = k->s,
                         .l = k->l,
                         .g = k->g,
                         .avl = k->avl,
                         .unusable = k->unusable};
    a->id = id;
    a->base = k->base;
    a->limit = k->limit;
    a->selector = k->selector;
    a->ar = hvi_x86_ar_pack(&s);
}

static void seg_to_kvm(const struct hvi_x86_segment *a, struct kvm_segment *k)
{
    hvc_x86_segment s;
    hvi_x86_ar_unpack(a->ar, &s);
    memset(k, 0, sizeof(*k));
    k->base = a->base;
    k->limit = a->limit;
    k->selector = a->selector;
    k->type = s.type;
    k->present = s.present;
    k->dpl = s.dpl;
    k->db = s.db;
    k->s = s.s;
    k->l = s.l;
    k->g = s.g;
    k->avl = s.avl;
    k->unusable = s.unusable;
}

/* kvm_sregs' segments in id order, CS .. LDTR. */
static struct kvm_segment *kvm_seg(struct kvm_sregs *k, uint32_t i)
{
    struct kvm_segment *s[] = {&k->cs, &k->ds, &k->es, &k->fs,
                               &k->gs, &k->ss, &k->tr, &k->ldt};
    return s[i];
}

static int get_sregs(struct hvi_kvm_vcpu *v, struct hvi_x86_sregs *a)
{
    struct kvm_sregs k;
    struct kvm_debugregs d;
    if (ioctl(v->fd, KVM_GET_SREGS, &k) < 0)
        return fail("SREGS", "KVM_GET_SREGS", errno);
    if (ioctl(v->fd, KVM_GET_DEBUGREGS, &d) < 0)
        return fail("SREGS", "KVM_GET_DEBUGREGS", errno);
    a->nr_segments = HVI_X86_NR_SEGMENTS;
    for (uint32_t i = 0; i < 8; i++)
        seg_from_kvm(&a->segments[i], HVC_X86_CS + i, kvm_seg(&k, i));
    const struct kvm_dtable *dt[] = {&k.gdt, &k.idt};
    for (uint32_t i = 0; i < 2; i++) {
        a->segments[8 + i].id = HVC_X86_GDTR + i;
        a->segments[8 + i].base = dt[i]->base;
        a->segments[8 + i].limit = dt[i]->limit;
    }
    a->cr0 = k.cr0;
    a->cr2 = k.cr2;
    a->cr3 = k.cr3;
    a->cr4 = k.cr4;
    a->cr8 = k.cr8;
    a->efer = k.efer;
    a->apic_base = k.apic_base;
    a->dr0 = d.db[0];
    a->dr1 = d.db[1];
    a->dr2 = d.db[2];
    a->dr3 = d.db[3];
    a->dr6 = d.dr6;
    a->dr7 = d.dr7;
    /* kvm_sregs.interrupt_bitmap is the injected external interrupt,
     * which EVENTS carries. */
    return 0;
}

static int set_sregs(struct hvi_kvm_vcpu *v, const struct hvi_x86_sregs *a)
{
    struct kvm_sregs k;
    memset(&k, 0, sizeof(k));
    for (uint32_t i = 0; i < 8; i++)
        seg_to_kvm(&a->segments[i], kvm_seg(&k, i));
    k.gdt.base = a->segments[8].base;
    k.gdt.limit = (uint16_t)a->segments[8].limit;
    k.idt.base = a->segments[9].base;
    k.idt.limit = (uint16_t)a->segments[9].limit;
    k.cr0 = a->cr0;
    k.cr2 = a->cr2;
    k.cr3 = a->cr3;
    k.cr4 = a->cr4;
    k.cr8 = a->cr8;
    k.efer = a->efer;
    k.apic_base = a->apic_base;
    if (ioctl(v->fd, KVM_SET_SREGS, &k) < 0) {
        int e = errno;
        return hvi_error(
            -e,
            "SREGS state: KVM refused it (CR0 0x%" PRIx64 ", CR4 0x%" PRIx64
            ", EFER 0x%" PRIx64 ", IA32_APIC_BASE 0x%" PRIx64 "): %s",
            a->cr0, a->cr4, a->efer, a->apic_base, hvc_strerror(-e));
    }
    struct kvm_debugregs d;
    memset(&d, 0, sizeof(d));
    d.db[0] = a->dr0;
    d.db[1] = a->dr1;
    d.db[2] = a->dr2;
    d.db[3] = a->dr3;
    d.dr6 = a->dr6;
    d.dr7 = a->dr7;
    if (ioctl(v->fd, KVM_SET_DEBUGREGS, &d) < 0) {
        int e = errno;
        return hvi_error(-e,
                         "SREGS state: KVM refused the debug registers (DR6 "
                         "0x%" PRIx64 ", DR7 0x%" PRIx64 "): %s",
                         a->dr6, a->dr7, hvc_strerror(-e));
    }
    return 0;
}

/* ---- XSAVE -------------------------------------------------------------- */

static bool has_xcrs(struct hvi_kvm_vcpu *v)
{
    return ioctl(v->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
}

static int get_xsave(struct hvi_kvm_vcpu *v, struct hvi_x86_xsave *a)
{
    /* KVM's XSAVE blob is the standard format already (XCOMP_BV 0). */
    unsigned long req =
        v->fpu_mode == HVI_FPU_XSAVE2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
    if (ioctl(v->fd, req, a->area) < 0)
        return fail("XSAVE", "KVM_GET_XSAVE", errno);
    a->xsave_size = (uint32_t)v->fpu_size;
    a->xcr0 = 3; /* x87 and SSE, what a KVM without XCRs runs with */
    if (has_xcrs(v)) {
        struct kvm_xcrs x;
        if (ioctl(v->fd, KVM_GET_XCRS, &x) < 0)
            return fail("XSAVE", "KVM_GET_XCRS", errno);
        for (uint32_t i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++)
            if (x.xcrs[i].xcr == 0)
                a->xcr0 = x.xcrs[i].value;
    }
    return 0;
}

static bool zero_bytes(const uint8_t *p, size_t n)
{
    while (n--)
        if (*p++)
            return false;
    return true;
}

static int set_xsave(struct hvi_kvm_vcpu *v, const struct hvi_x86_xsave *a)
{
    size_t have = v->fpu_size, n = a->xsave_size;
    if (n > have && !zero_bytes(a->area + have, n - have))
        return hvi_error(-ENOTSUP,
                         "XSAVE state: the area is %zu bytes and holds state "
                         "past this host's %zu (XCR0 0x%" PRIx64 ")",
                         n, have, a->xcr0);
    uint8_t *area = calloc(1, have);
    if (!area)
        return hvi_error(-ENOMEM, "XSAVE state: out of memory");
    memcpy(area, a->area, n < have ? n : have);
    int r = 0;
    if (ioctl(v->fd, KVM_SET_XSAVE, area) < 0) {
        int e = errno;
        uint64_t bv;
        memcpy(&bv, area + HVI_X86_XSTATE_BV_OFFSET, 8);
        r = hvi_error(
            -e, "XSAVE state: KVM refused it (XSTATE_BV 0x%" PRIx64 "): %s", bv,
            hvc_strerror(-e));
    }
    free(area);
    if (r < 0)
        return r;
    if (!has_xcrs(v)) {
        if (a->xcr0 != 3 && a->xcr0 != 1)
            return hvi_error(-ENOTSUP,
                             "XSAVE state: XCR0 0x%" PRIx64
                             ", and this KVM lacks KVM_CAP_XCRS",
                             a->xcr0);
        return 0;
    }
    struct kvm_xcrs x;
    memset(&x, 0, sizeof(x));
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = a->xcr0;
    if (ioctl(v->fd, KVM_SET_XCRS, &x) < 0) {
        int e = errno;
        return hvi_error(-e, "XSAVE state: KVM refused XCR0 0x%" PRIx64 ": %s",
                         a->xcr0, hvc_strerror(-e));
    }
    return 0;
}

/* ---- EVENTS ------------------------------------------------------------- */

/* KVM's interrupt.shadow bits are the other way round from VMX's. */
#define KVM_SHADOW_MOV_SS 1u
#define KVM_SHADOW_STI 2u
#ifndef KVM_VCPUEVENT_VALID_TRIPLE_FAULT
#define KVM_VCPUEVENT_VALID_TRIPLE_FAULT 0x00000020
#endif

static const uint32_t act_of_mp[] = {
    [KVM_MP_STATE_RUNNABLE] = HVI_X86_ACT_ACTIVE,
    [KVM_MP_STATE_UNINITIALIZED] = HVI_X86_ACT_WAIT_INIT,
    [KVM_MP_STATE_INIT_RECEIVED] = HVI_X86_ACT_WAIT_SIPI,
    [KVM_MP_STATE_HALTED] = HVI_X86_ACT_HLT,
    [KVM_MP_STATE_SIPI_RECEIVED] = HVI_X86_ACT_SIPI_RECEIVED,
};

static int get_events(struct hvi_kvm_vcpu *v, struct hvi_x86_events *a)
{
    struct kvm_vcpu_events k;
    struct kvm_mp_state mp;
    if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &k) < 0)
        return fail("EVENTS", "KVM_GET_VCPU_EVENTS", errno);
    if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0)
        return fail("EVENTS", "KVM_GET_MP_STATE", errno);
    if (mp.mp_state > KVM_MP_STATE_SIPI_RECEIVED)
        return hvi_error(-ENOTSUP,
                         "EVENTS state: KVM multiprocessing state %u has no "
                         "architectural equivalent",
                         mp.mp_state);
    a->activity = act_of_mp[mp.mp_state];
    uint32_t f = 0;
    if (k.exception.injected)
        f |= HVI_X86_EV_EXC_INJECTED;
    else if (k.exception.pending)
        f |= HVI_X86_EV_EXC_PENDING;
    if (f) {
        a->exception_vector = k.exception.nr;
        if (k.exception.has_error_code) {
            f |= HVI_X86_EV_EXC_ERROR;
            a->exception_error_code = k.exception.error_code;
        }
        if ((k.flags & KVM_VCPUEVENT_VALID_PAYLOAD) &&
            k.exception_has_payload) {
            f |= HVI_X86_EV_EXC_PAYLOAD;
            a->exception_payload = k.exception_payload;
        }
    }
    if (k.interrupt.injected) {
        f |= HVI_X86_EV_IRQ_INJECTED;
        a->interrupt_vector = k.interrupt.nr;
        if (k.interrupt.soft)
            f |= HVI_X86_EV_IRQ_SOFT;
    }
    a->interrupt_shadow =
        (uint8_t)((k.interrupt.shadow & KVM_SHADOW_STI ? HVI_X86_SHADOW_STI
                                                       : 0) |
                  (k.interrupt.shadow & KVM_SHADOW_MOV_SS
                       ? HVI_X86_SHADOW_MOV_SS
                       : 0));
    if (k.nmi.injected)
        f |= HVI_X86_EV_NMI_INJECTED;
    if (k.nmi.masked)
        f |= HVI_X86_EV_NMI_MASKED;
    a->nmi_pending = k.nmi.pending > 2 ? 2 : k.nmi.pending;
    a->sipi_vector = (uint8_t)k.sipi_vector;
    if (k.flags & KVM_VCPUEVENT_VALID_SMM) {
        if (k.smi.smm)
            f |= HVI_X86_EV_IN_SMM;
        if (k.smi.pending)
            f |= HVI_X86_EV_SMI_PENDING;
        if (k.smi.smm_inside_nmi)
            f |= HVI_X86_EV_SMM_INSIDE_NMI;
        if (k.smi.latched_init)
            f |= HVI_X86_EV_INIT_LATCHED;
    }
    if ((k.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) && k.triple_fault.pending)
        f |= HVI_X86_EV_TRIPLE_FAULT;
    a->flags = f;
    return 0;
}

static const uint32_t mp_of_act[] = {
    [HVI_X86_ACT_ACTIVE] = KVM_MP_STATE_RUNNABLE,
    [HVI_X86_ACT_HLT] = KVM_MP_STATE_HALTED,
    [HVI_X86_ACT_SHUTDOWN] = ~0u,
    [HVI_X86_ACT_WAIT_SIPI] = KVM_MP_STATE_INIT_RECEIVED,
    [HVI_X86_ACT_WAIT_INIT] = KVM_MP_STATE_UNINITIALIZED,
    [HVI_X86_ACT_SIPI_RECEIVED] = KVM_MP_STATE_SIPI_RECEIVED,
};

static int set_events(struct hvi_kvm_vcpu *v, const struct hvi_x86_events *a)
{
    /* What KVM reports tells which optional parts it takes here. */
    struct kvm_vcpu_events cur, k;
    if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &cur) < 0)
        return fail("EVENTS", "KVM_GET_VCPU_EVENTS", errno);
    bool payload = cur.flags & KVM_VCPUEVENT_VALID_PAYLOAD;
    bool triple = cur.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
    uint32_t f = a->flags;
    if (mp_of_act[a->activity] == ~0u)
        return hvi_error(-ENOTSUP,
                         "EVENTS state: activity state %u (shutdown) cannot "
                         "be given to KVM",
                         a->activity);
    if ((f & HVI_X86_EV_EXC_PAYLOAD) && !payload)
        return hvi_error(-ENOTSUP,
                         "EVENTS state: exception %u with payload 0x%" PRIx64
                         ", and this VM has no KVM_CAP_EXCEPTION_PAYLOAD",
                         a->exception_vector, a->exception_payload);
    if ((f & HVI_X86_EV_TRIPLE_FAULT) && !triple)
        return hvi_error(-ENOTSUP,
                         "EVENTS state: a pending triple fault, and this VM "
                         "has no KVM_CAP_X86_TRIPLE_FAULT_EVENT");
    if (!v->vm->has_irqchip && a->activity != HVI_X86_ACT_ACTIVE &&
        a->activity != HVI_X86_ACT_HLT)
        return hvi_error(-ENOTSUP,
                         "EVENTS state: activity state %u needs a local APIC, "
                         "and the VM has no in-kernel irqchip",
                         a->activity);
    memset(&k, 0, sizeof(k));
    k.flags = KVM_VCPUEVENT_VALID_NMI_PENDING |
              KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_SHADOW |
              KVM_VCPUEVENT_VALID_SMM;
    bool exc = f & (HVI_X86_EV_EXC_PENDING | HVI_X86_EV_EXC_INJECTED);
    if (payload) {
        k.flags |= KVM_VCPUEVENT_VALID_PAYLOAD;
        k.exception.injected = !!(f & HVI_X86_EV_EXC_INJECTED);
        k.exception.pending = !!(f & HVI_X86_EV_EXC_PENDING);
        k.exception_has_payload = !!(f & HVI_X86_EV_EXC_PAYLOAD);
        k.exception_payload = a->exception_payload;
    } else {
        /* Without payloads KVM has one "injected" for both. */
        k.exception.injected = exc;
    }
    if (exc) {
        k.exception.nr = a->exception_vector;
        k.exception.has_error_code = !!(f & HVI_X86_EV_EXC_ERROR);
        k.exception.error_code = a->exception_error_code;
    }
    if (f & HVI_X86_EV_IRQ_INJECTED) {
        k.interrupt.injected = 1;
        k.interrupt.nr = a->interrupt_vector;
        k.interrupt.soft = !!(f & HVI_X86_EV_IRQ_SOFT);
    }
    k.interrupt.shadow =
        (uint8_t)((a->interrupt_shadow & HVI_X86_SHADOW_STI ? KVM_SHADOW_STI
                                                            : 0) |
                  (a->interrupt_shadow & HVI_X86_SHADOW_MOV_SS
                       ? KVM_SHADOW_MOV_SS
                       : 0));
    k.nmi.injected = !!(f & HVI_X86_EV_NMI_INJECTED);
    k.nmi.pending = a->nmi_pending;
    k.nmi.masked = !!(f & HVI_X86_EV_NMI_MASKED);
    k.sipi_vector = a->sipi_vector;
    k.smi.smm = !!(f & HVI_X86_EV_IN_SMM);
    k.smi.pending = !!(f & HVI_X86_EV_SMI_PENDING);
    k.smi.smm_inside_nmi = !!(f & HVI_X86_EV_SMM_INSIDE_NMI);
    k.smi.latched_init = !!(f & HVI_X86_EV_INIT_LATCHED);
    if (triple) {
        k.flags |= KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
        k.triple_fault.pending = !!(f & HVI_X86_EV_TRIPLE_FAULT);
    }
    struct kvm_mp_state mp = {.mp_state = mp_of_act[a->activity]};
    /* Without an in-kernel local APIC KVM leaves HLT to the VMM and takes
     * only RUNNABLE: a vCPU saved halted (under a backend with a
     * userspace APIC) resumes after its HLT, a wake-up HLT allows. */
    if (!v->vm->has_irqchip)
        mp.mp_state = KVM_MP_STATE_RUNNABLE;
    if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0) {
        int e = errno;
        return hvi_error(-e,
                         "EVENTS state: KVM refused activity state %u (mp "
                         "state %u): %s",
                         a->activity, mp.mp_state, hvc_strerror(-e));
    }
    if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &k) < 0) {
        int e = errno;
        return hvi_error(-e,
                         "EVENTS state: KVM refused it (flags 0x%x, exception "
                         "%u, interrupt %u): %s",
                         f, a->exception_vector, a->interrupt_vector,
                         hvc_strerror(-e));
    }
    return 0;
}

/* ---- LAPIC -------------------------------------------------------------- */

/* Without KVM_CAP_X2APIC_API (never enabled here) KVM's page holds the
 * x2APIC ID in bits 31:24 of the ID register, as in xAPIC mode. */
static int get_lapic(struct hvi_kvm_vcpu *v, struct hvi_x86_lapic *a)
{
    struct kvm_lapic_state k;
    struct kvm_sregs s;
    if (ioctl(v->fd, KVM_GET_LAPIC, &k) < 0)
        return fail("LAPIC", "KVM_GET_LAPIC", errno);
    if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
        return fail("LAPIC", "KVM_GET_SREGS", errno);
    a->apic_base = s.apic_base;
    for (uint32_t off = 0; off < HVI_X86_LAPIC_PAGE; off += 16)
        memcpy(a->regs + off, k.regs + off, 4); /* bytes 4-15 stay zero */
    if (a->apic_base & HVI_X86_APIC_BASE_X2APIC) {
        uint32_t id;
        memcpy(&id, a->regs + HVI_X86_LAPIC_ID, 4);
        id >>= 24;
        memcpy(a->regs + HVI_X86_LAPIC_ID, &id, 4);
    }
    return 0;
}

static int set_lapic(struct hvi_kvm_vcpu *v, const struct hvi_x86_lapic *a)
{
    struct kvm_lapic_state k;
    memset(&k, 0, sizeof(k));
    memcpy(k.regs, a->regs, HVI_X86_LAPIC_PAGE);
    if (a->apic_base & HVI_X86_APIC_BASE_X2APIC) {
        uint32_t id;
        memcpy(&id, k.regs + HVI_X86_LAPIC_ID, 4);
        if (id > 0xff)
            return hvi_error(-ENOTSUP,
                             "LAPIC state: x2APIC ID 0x%x does not fit KVM's "
                             "xAPIC-format page",
                             id);
        id <<= 24;
        memcpy(k.regs + HVI_X86_LAPIC_ID, &id, 4);
    }
    union {
        struct kvm_msrs h;
        uint8_t room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } m;
    memset(&m, 0, sizeof(m));
    m.h.nmsrs = 1;
    m.h.entries[0].index = MSR_IA32_APICBASE;
    m.h.entries[0].data = a->apic_base;
    if (ioctl(v->fd, KVM_SET_MSRS, &m) != 1)
        return hvi_error(-EINVAL,
                         "LAPIC state: KVM refused IA32_APIC_BASE 0x%" PRIx64,
                         a->apic_base);
    if (ioctl(v->fd, KVM_SET_LAPIC, &k) < 0) {
        int e = errno;
        uint32_t id;
        memcpy(&id, a->regs + HVI_X86_LAPIC_ID, 4);
        return hvi_error(-e,
                         "LAPIC state: KVM refused it (APIC ID register "
                         "0x%x): %s",
                         id, hvc_strerror(-e));
    }
    return 0;
}

/* ---- Entry points ------------------------------------------------------- */

int hvi_kvm_arch_get(struct hvi_kvm_vcpu *v, uint32_t kind, void *buf,
                     size_t length)
{
    size_t n = hvi_kvm_arch_size(v, kind);
    /* Built in an aligned, zeroed buffer: reserved fields are zero. */
    void *a = calloc(1, n);
    if (!a)
        return hvi_error(-ENOMEM, "vCPU state: out of memory");
    int r;
    switch (kind) {
    case HVC_BACKEND_VCPU_ARCH_REGS: r = get_regs(v, a); break;
    case HVC_BACKEND_VCPU_ARCH_SREGS: r = get_sregs(v, a); break;
    case HVC_BACKEND_VCPU_ARCH_EVENTS: r = get_events(v, a); break;
    case HVC_BACKEND_VCPU_ARCH_LAPIC: r = get_lapic(v, a); break;
    default: r = get_xsave(v, a); break;
    }
    if (r == 0) {
        hvi_x86_state_init(a, n);
        memcpy(buf, a, length < n ? length : n);
    }
    free(a);
    return r;
}

int hvi_kvm_arch_set(struct hvi_kvm_vcpu *v, uint32_t kind, const void *buf,
                     size_t length)
{
    /* An aligned copy: the stream's buffer need not be. */
    void *a = malloc(length ? length : 1);
    if (!a)
        return hvi_error(-ENOMEM, "vCPU state: out of memory");
    memcpy(a, buf, length);
    int r;
    switch (kind) {
    case HVC_BACKEND_VCPU_ARCH_REGS:
        if ((r = hvi_x86_check_regs(a, length)) == 0)
            r = set_regs(v, a);
        break;
    case HVC_BACKEND_VCPU_ARCH_SREGS:
        if ((r = hvi_x86_check_sregs(a, length)) == 0)
            r = set_sregs(v, a);
        break;
    case HVC_BACKEND_VCPU_ARCH_EVENTS:
        if ((r = hvi_x86_check_events(a, length)) == 0)
            r = set_events(v, a);
        break;
    case HVC_BACKEND_VCPU_ARCH_LAPIC:
        if ((r = hvi_x86_check_lapic(a, length)) == 0)
            r = set_lapic(v, a);
        break;
    default:
        if ((r = hvi_x86_check_xsave(a, length)) == 0)
            r = set_xsave(v, a);
        break;
    }
    free(a);
    return r;
}
