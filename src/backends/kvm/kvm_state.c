/* KVM state blobs for migration (hvc_backend_state): each kind is the UAPI
 * struct of one KVM_GET_x/KVM_SET_x pair, so a blob goes to KVM as it came.
 * A blob given to set_state comes from a stream file: it is bounded, copied
 * and checked field by field here, and reserved fields are zeroed, before
 * KVM sees it; KVM's own checks are the second line, and what KVM refuses
 * is reported with the value it refused. */
#include "kvm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* The TSC state record carries these; they never travel as MSRS. */
#define MSR_IA32_TSC 0x10u
#define MSR_IA32_TSC_ADJUST 0x3bu
#define MSR_IA32_TSC_DEADLINE 0x6e0u
/* KVM reads it without an in-kernel local APIC but refuses any write. */
#define MSR_KVM_ASYNC_PF_INT 0x4b564d06u

/* Bounds on hostile counts. KVM lists a few hundred MSRs; these leave room
 * without letting a stream size a buffer. */
#define MAX_MSRS 1024u
#define MAX_HOST_MSRS 16384u

#ifndef KVM_PIT_FLAGS_SPEAKER_DATA_ON
#define KVM_PIT_FLAGS_SPEAKER_DATA_ON 0x00000002
#endif
#ifndef KVM_VCPUEVENT_VALID_TRIPLE_FAULT
#define KVM_VCPUEVENT_VALID_TRIPLE_FAULT 0x00000020
#endif
#define EVENT_FLAGS                                                            \
    (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |       \
     KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM |                    \
     KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT)

/* Every kind, with the ioctls and size of those of a fixed size. */
static const struct kind_info {
    uint32_t kind;
    const char *name;
    unsigned long get, set; /* 0: CPUID and MSRS, handled apart */
    size_t size;
} kinds[] = {
    {HVC_BACKEND_VCPU_CPUID, "CPUID", 0, 0, 0},
    {HVC_BACKEND_VCPU_XCRS, "XCRS", KVM_GET_XCRS, KVM_SET_XCRS,
     sizeof(struct kvm_xcrs)},
    {HVC_BACKEND_VCPU_MSRS, "MSRS", 0, 0, 0},
    {HVC_BACKEND_VCPU_MP_STATE, "MP_STATE", KVM_GET_MP_STATE, KVM_SET_MP_STATE,
     sizeof(struct kvm_mp_state)},
    {HVC_BACKEND_VCPU_LAPIC, "LAPIC", KVM_GET_LAPIC, KVM_SET_LAPIC,
     sizeof(struct kvm_lapic_state)},
    {HVC_BACKEND_VCPU_EVENTS, "EVENTS", KVM_GET_VCPU_EVENTS,
     KVM_SET_VCPU_EVENTS, sizeof(struct kvm_vcpu_events)},
    {HVC_BACKEND_VCPU_DEBUGREGS, "DEBUGREGS", KVM_GET_DEBUGREGS,
     KVM_SET_DEBUGREGS, sizeof(struct kvm_debugregs)},
    {HVC_BACKEND_VCPU_SREGS, "SREGS", KVM_GET_SREGS, KVM_SET_SREGS,
     sizeof(struct kvm_sregs)},
    {HVC_BACKEND_VCPU_REGS, "REGS", KVM_GET_REGS, KVM_SET_REGS,
     sizeof(struct kvm_regs)},
    {HVC_BACKEND_VM_PIC_MASTER, "PIC_MASTER", KVM_GET_IRQCHIP, KVM_SET_IRQCHIP,
     sizeof(struct kvm_irqchip)},
    {HVC_BACKEND_VM_PIC_SLAVE, "PIC_SLAVE", KVM_GET_IRQCHIP, KVM_SET_IRQCHIP,
     sizeof(struct kvm_irqchip)},
    {HVC_BACKEND_VM_IOAPIC, "IOAPIC", KVM_GET_IRQCHIP, KVM_SET_IRQCHIP,
     sizeof(struct kvm_irqchip)},
    {HVC_BACKEND_VM_PIT, "PIT", KVM_GET_PIT2, KVM_SET_PIT2,
     sizeof(struct kvm_pit_state2)},
};

/* The kind, if it is one of the VM's (@p vm) or the vCPU's. */
static const struct kind_info *info_of(uint32_t kind, bool vm)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].kind == kind && (kind >= HVC_BACKEND_VM_PIC_MASTER) == vm)
            return &kinds[i];
    return NULL;
}

static const char *kind_name(uint32_t kind)
{
    const struct kind_info *i =
        info_of(kind, kind >= HVC_BACKEND_VM_PIC_MASTER);
    return i ? i->name : "unknown";
}

/* Fixed-size blobs go through an aligned copy: the caller's buffer need
 * not be aligned. */
union vcpu_blob {
    struct kvm_xcrs xcrs;
    struct kvm_mp_state mp;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_debugregs debug;
    struct kvm_sregs sregs;
    struct kvm_regs regs;
};

union vm_blob {
    struct kvm_irqchip chip;
    struct kvm_pit_state2 pit;
};

int hvi_kvm_state_fail(uint32_t kind, const char *op, int err)
{
    return hvi_error(-err, "%s state: %s: %s", kind_name(kind), op,
                     hvc_strerror(-err));
}

int hvi_kvm_state_bad(uint32_t kind, const char *what, uint64_t value)
{
    return hvi_error(-EINVAL, "%s state: %s 0x%" PRIx64 " is invalid",
                     kind_name(kind), what, value);
}

static bool is_tsc_msr(uint32_t index)
{
    return index == MSR_IA32_TSC || index == MSR_IA32_TSC_ADJUST ||
           index == MSR_IA32_TSC_DEADLINE;
}

void hvi_kvm_state_open(struct hvi_kvm *k)
{
    pthread_mutex_init(&k->msrs.lock, NULL);
}

void hvi_kvm_state_close(struct hvi_kvm *k)
{
    pthread_mutex_destroy(&k->msrs.lock);
    free(k->msrs.list);
}

/* ---- MSR lists ---------------------------------------------------------- */

/* KVM_GET_MSR_INDEX_LIST with the TSC MSRs left out (k->msrs.lock held).
 * A first call with room for nothing answers the count. */
static int list_host_msrs(struct hvi_kvm *k)
{
    struct kvm_msr_list probe = {.nmsrs = 0};
    if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
        return hvi_kvm_state_fail(HVC_BACKEND_VCPU_MSRS,
                                  "KVM_GET_MSR_INDEX_LIST", errno);
    for (int tries = 0; tries < 4; tries++) {
        uint32_t n = probe.nmsrs;
        if (n > MAX_HOST_MSRS)
            return hvi_kvm_state_bad(HVC_BACKEND_VCPU_MSRS, "host MSR count",
                                     n);
        struct kvm_msr_list *l = calloc(1, sizeof(*l) + n * sizeof(uint32_t));
        if (!l)
            return hvi_error(-ENOMEM, "MSRS state: out of memory");
        l->nmsrs = n;
        if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, l) == 0) {
            uint32_t kept = 0;
            for (uint32_t i = 0; i < l->nmsrs; i++)
                if (!is_tsc_msr(l->indices[i]))
                    l->indices[kept++] = l->indices[i];
            l->nmsrs = kept;
            k->msrs.list = l;
            return 0;
        }
        int e = errno;
        probe.nmsrs = l->nmsrs;
        free(l);
        if (e != E2BIG) /* E2BIG: it grew under us, retry with its size */
            return hvi_kvm_state_fail(HVC_BACKEND_VCPU_MSRS,
                                      "KVM_GET_MSR_INDEX_LIST", e);
    }
    return hvi_error(-EAGAIN, "MSRS state: the host MSR list kept growing");
}

/* The host list filtered to what KVM_GET_MSRS reads for this vCPU (and
 * KVM would take back), once: KVM stops at the first MSR it cannot read
 * and returns how many it read, so each refusal costs a call that goes on
 * after it. Cached so that the MSRS size stays what vcpu_state_size()
 * said. */
static int probe_vcpu_msrs(struct hvi_kvm_vcpu *v)
{
    if (v->msrs_probed)
        return 0;
    struct hvi_kvm *k = v->vm->kvm;
    pthread_mutex_lock(&k->msrs.lock);
    int r = k->msrs.list ? 0 : list_host_msrs(k);
    pthread_mutex_unlock(&k->msrs.lock);
    if (r < 0)
        return r;
    /* Listed once and never changed after: readable without the lock. */
    const uint32_t *idx = k->msrs.list->indices;
    uint32_t n = k->msrs.list->nmsrs;
    struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
    uint32_t *keep = malloc((n ? n : 1) * sizeof(uint32_t));
    if (!m || !keep) {
        free(m);
        free(keep);
        return hvi_error(-ENOMEM, "MSRS state: out of memory");
    }
    uint32_t kept = 0;
    for (uint32_t at = 0; at < n;) {
        m->nmsrs = n - at;
        for (uint32_t i = 0; i < m->nmsrs; i++)
            m->entries[i].index = idx[at + i];
        int got = ioctl(v->fd, KVM_GET_MSRS, m);
        if (got < 0) {
            r = hvi_kvm_state_fail(HVC_BACKEND_VCPU_MSRS,
                                   "KVM_GET_MSRS (probe)", errno);
            free(m);
            free(keep);
            return r;
        }
        for (int i = 0; i < got; i++)
            if (v->vm->has_irqchip ||
                m->entries[i].index != MSR_KVM_ASYNC_PF_INT)
                keep[kept++] = m->entries[i].index;
        at += (uint32_t)got + 1; /* past the one KVM could not read */
    }
    free(m);
    if (kept > MAX_MSRS) {
        free(keep);
        return hvi_error(-E2BIG,
                         "MSRS state: the vCPU has %u MSRs, more than the "
                         "%u a stream may carry",
                         kept, MAX_MSRS);
    }
    free(v->msr_index);
    v->msr_index = keep;
    v->nr_msrs = kept;
    v->msrs_probed = true;
    return 0;
}

/* @p bytes is the size vcpu_state_size() gave. */
static int get_msrs(struct hvi_kvm_vcpu *v, void *buf, size_t bytes)
{
    struct kvm_msrs *m = calloc(1, bytes);
    if (!m)
        return hvi_error(-ENOMEM, "MSRS state: out of memory");
    m->nmsrs = v->nr_msrs;
    for (uint32_t i = 0; i < m->nmsrs; i++)
        m->entries[i].index = v->msr_index[i];
    int got = ioctl(v->fd, KVM_GET_MSRS, m);
    int r = 0;
    if (got < 0)
        r = hvi_kvm_state_fail(HVC_BACKEND_VCPU_MSRS, "KVM_GET_MSRS", errno);
    else if ((uint32_t)got < m->nmsrs)
        r = hvi_error(-EIO, "MSRS state: KVM no longer reads MSR 0x%x",
                      m->entries[got].index);
    else
        memcpy(buf, m, bytes);
    free(m);
    return r;
}

static int set_msrs(struct hvi_kvm_vcpu *v, const void *buf, size_t length)
{
    const uint32_t kind = HVC_BACKEND_VCPU_MSRS;
    struct kvm_msrs h;
    if (length < sizeof(h))
        return hvi_kvm_state_bad(kind, "length", length);
    memcpy(&h, buf, sizeof(h));
    if (h.nmsrs > MAX_MSRS)
        return hvi_kvm_state_bad(kind, "MSR count", h.nmsrs);
    if (length != sizeof(h) + h.nmsrs * sizeof(struct kvm_msr_entry))
        return hvi_error(-EINVAL, "MSRS state: %zu bytes for %u MSRs", length,
                         h.nmsrs);
    struct kvm_msrs *m = malloc(length);
    if (!m)
        return hvi_error(-ENOMEM, "MSRS state: out of memory");
    memcpy(m, buf, length);
    m->pad = 0;
    for (uint32_t i = 0; i < m->nmsrs; i++) {
        m->entries[i].reserved = 0;
        uint32_t index = m->entries[i].index;
        if (is_tsc_msr(index)) {
            free(m);
            return hvi_error(-EINVAL,
                             "MSRS state: MSR 0x%x belongs in the TSC "
                             "state, not here",
                             index);
        }
    }
    int got = ioctl(v->fd, KVM_SET_MSRS, m);
    int r = 0;
    if (got < 0)
        r = hvi_kvm_state_fail(kind, "KVM_SET_MSRS", errno);
    else if ((uint32_t)got < m->nmsrs)
        r = hvi_error(-EINVAL,
                      "MSRS state: KVM refused MSR 0x%x = 0x%llx (entry %d "
                      "of %u)",
                      m->entries[got].index,
                      (unsigned long long)m->entries[got].data, got, m->nmsrs);
    free(m);
    return r;
}

/* ---- The fixed-size kinds ----------------------------------------------- */

static bool has_xcrs(struct hvi_kvm_vcpu *v)
{
    return ioctl(v->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
}

static int vcpu_size(struct hvi_kvm_vcpu *v, uint32_t kind, size_t *size)
{
    const struct kind_info *i = info_of(kind, false);
    if (!i)
        return hvi_error(-EINVAL, "unknown vCPU state kind %u", kind);
    if (kind == HVC_BACKEND_VCPU_CPUID) {
        struct kvm_cpuid2 *c;
        int r = hvi_kvm_cpuid_state_read(v, &c);
        if (r < 0)
            return r;
        *size = hvi_kvm_cpuid_state_bytes(c->nent);
        free(c);
        return 0;
    }
    if (kind == HVC_BACKEND_VCPU_MSRS) {
        int r = probe_vcpu_msrs(v);
        if (r < 0)
            return r;
        *size = v->nr_msrs ? sizeof(struct kvm_msrs) +
                                 v->nr_msrs * sizeof(struct kvm_msr_entry)
                           : 0;
        return 0;
    }
    bool none = (kind == HVC_BACKEND_VCPU_XCRS && !has_xcrs(v)) ||
                (kind == HVC_BACKEND_VCPU_LAPIC && !v->vm->has_irqchip);
    *size = none ? 0 : i->size;
    return 0;
}

int hvi_kvm_vcpu_state_size(void *vcpu_priv, uint32_t kind, size_t *size)
{
    return vcpu_size(vcpu_priv, kind, size);
}

/* The state being the size vcpu_state_size() says, or there being none. */
static int expect_size(uint32_t kind, size_t want, size_t length,
                       const char *none)
{
    if (want == 0 && length != 0)
        return hvi_error(-ENOTSUP, "%s state: %s", kind_name(kind), none);
    if (length != want)
        return hvi_error(-EINVAL, "%s state is %zu bytes, not %zu",
                         kind_name(kind), length, want);
    return 0;
}

static const char *vcpu_none(uint32_t kind)
{
    return kind == HVC_BACKEND_VCPU_LAPIC  ? "the VM has no in-kernel irqchip"
           : kind == HVC_BACKEND_VCPU_XCRS ? "this KVM lacks KVM_CAP_XCRS"
                                           : "the vCPU has no MSRs to save";
}

int hvi_kvm_vcpu_get_state(void *vcpu_priv, uint32_t kind, void *buf,
                           size_t length)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    size_t want = 0;
    int r = vcpu_size(v, kind, &want);
    if (r < 0)
        return r;
    if ((r = expect_size(kind, want, length, vcpu_none(kind))) < 0)
        return r;
    if (want == 0)
        return 0;
    if (kind == HVC_BACKEND_VCPU_MSRS)
        return get_msrs(v, buf, length);
    if (kind == HVC_BACKEND_VCPU_CPUID) {
        struct kvm_cpuid2 *c;
        if ((r = hvi_kvm_cpuid_state_read(v, &c)) < 0)
            return r;
        if (hvi_kvm_cpuid_state_bytes(c->nent) != length)
            r = hvi_error(-EIO, "CPUID state: changed to %u entries", c->nent);
        else
            memcpy(buf, c, length);
        free(c);
        return r;
    }
    union vcpu_blob s;
    memset(&s, 0, sizeof(s));
    if (ioctl(v->fd, info_of(kind, false)->get, &s) < 0)
        return hvi_kvm_state_fail(kind, "get", errno);
    memcpy(buf, &s, length);
    return 0;
}

/* RFLAGS: bit 1 reads as one; 3, 5, 15 and 22..63 are reserved. */
#define RFLAGS_FIXED1 0x2ull
#define RFLAGS_RESERVED (~0x3fffffull | 1ull << 3 | 1ull << 5 | 1ull << 15)

static int check_sregs(struct kvm_sregs *s)
{
    struct kvm_segment *seg[] = {&s->cs, &s->ds, &s->es, &s->fs,
                                 &s->gs, &s->ss, &s->tr, &s->ldt};
    for (size_t i = 0; i < sizeof(seg) / sizeof(seg[0]); i++)
        seg[i]->padding = 0;
    memset(s->gdt.padding, 0, sizeof(s->gdt.padding));
    memset(s->idt.padding, 0, sizeof(s->idt.padding));
    if (s->cr8 > 0xf)
        return hvi_kvm_state_bad(HVC_BACKEND_VCPU_SREGS, "CR8", s->cr8);
    /* KVM takes one pending external interrupt from the bitmap. */
    int pending = 0;
    for (size_t i = 0; i < sizeof(s->interrupt_bitmap) / 8; i++)
        pending += __builtin_popcountll(s->interrupt_bitmap[i]);
    if (pending > 1)
        return hvi_kvm_state_bad(HVC_BACKEND_VCPU_SREGS,
                                 "pending interrupt count", (uint64_t)pending);
    return 0;
}

static int check_events(struct kvm_vcpu_events *e)
{
    const uint32_t kind = HVC_BACKEND_VCPU_EVENTS;
    if (e->flags & ~(uint32_t)EVENT_FLAGS)
        return hvi_kvm_state_bad(kind, "flags", e->flags);
    if ((e->exception.injected || e->exception.pending) &&
        (e->exception.nr > 31 || e->exception.nr == 2))
        return hvi_kvm_state_bad(kind, "exception vector", e->exception.nr);
    e->nmi.pad = 0;
    memset(e->reserved, 0, sizeof(e->reserved));
    return 0;
}

static int check_debugregs(struct kvm_debugregs *d)
{
    const uint32_t kind = HVC_BACKEND_VCPU_DEBUGREGS;
    if (d->flags)
        return hvi_kvm_state_bad(kind, "flags", d->flags);
    if (d->dr6 >> 32)
        return hvi_kvm_state_bad(kind, "DR6", d->dr6);
    if (d->dr7 >> 32)
        return hvi_kvm_state_bad(kind, "DR7", d->dr7);
    memset(d->reserved, 0, sizeof(d->reserved));
    return 0;
}

static int check_xcrs(struct kvm_xcrs *x)
{
    const uint32_t kind = HVC_BACKEND_VCPU_XCRS;
    if (x->nr_xcrs > KVM_MAX_XCRS)
        return hvi_kvm_state_bad(kind, "XCR count", x->nr_xcrs);
    if (x->flags)
        return hvi_kvm_state_bad(kind, "flags", x->flags);
    for (uint32_t i = 0; i < KVM_MAX_XCRS; i++) {
        x->xcrs[i].reserved = 0;
        if (i >= x->nr_xcrs)
            x->xcrs[i].xcr = 0, x->xcrs[i].value = 0;
    }
    memset(x->padding, 0, sizeof(x->padding));
    return 0;
}

/* The field KVM most likely judged, for its refusal message. */
static uint64_t key_field(uint32_t kind, const union vcpu_blob *s,
                          const char **name)
{
    uint32_t apic_id;
    switch (kind) {
    case HVC_BACKEND_VCPU_XCRS:
        *name = "XCR0";
        return s->xcrs.nr_xcrs ? s->xcrs.xcrs[0].value : 0;
    case HVC_BACKEND_VCPU_MP_STATE: *name = "mp_state"; return s->mp.mp_state;
    case HVC_BACKEND_VCPU_EVENTS: *name = "flags"; return s->events.flags;
    case HVC_BACKEND_VCPU_DEBUGREGS: *name = "DR7"; return s->debug.dr7;
    case HVC_BACKEND_VCPU_SREGS: *name = "CR0"; return s->sregs.cr0;
    case HVC_BACKEND_VCPU_REGS: *name = "RIP"; return s->regs.rip;
    default: /* LAPIC: KVM checks the APIC ID in x2APIC mode */
        *name = "APIC ID register";
        memcpy(&apic_id, s->lapic.regs + 0x20, sizeof(apic_id));
        return apic_id;
    }
}

int hvi_kvm_vcpu_set_state(void *vcpu_priv, uint32_t kind, const void *buf,
                           size_t length)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    size_t want = 0;
    int r;
    if (kind == HVC_BACKEND_VCPU_CPUID)
        return hvi_kvm_cpuid_state_set(v, buf, length);
    if (kind == HVC_BACKEND_VCPU_MSRS)
        return set_msrs(v, buf, length);
    if ((r = vcpu_size(v, kind, &want)) < 0)
        return r;
    if ((r = expect_size(kind, want, length, vcpu_none(kind))) < 0)
        return r;
    if (want == 0)
        return 0;
    union vcpu_blob s;
    memcpy(&s, buf, length);
    switch (kind) {
    case HVC_BACKEND_VCPU_XCRS: r = check_xcrs(&s.xcrs); break;
    case HVC_BACKEND_VCPU_MP_STATE:
        /* x86 states only: RUNNABLE .. SIPI_RECEIVED. */
        if (s.mp.mp_state > KVM_MP_STATE_SIPI_RECEIVED)
            r = hvi_kvm_state_bad(kind, "mp_state", s.mp.mp_state);
        break;
    case HVC_BACKEND_VCPU_EVENTS: r = check_events(&s.events); break;
    case HVC_BACKEND_VCPU_DEBUGREGS: r = check_debugregs(&s.debug); break;
    case HVC_BACKEND_VCPU_SREGS: r = check_sregs(&s.sregs); break;
    case HVC_BACKEND_VCPU_REGS:
        if ((s.regs.rflags & RFLAGS_RESERVED) ||
            !(s.regs.rflags & RFLAGS_FIXED1))
            r = hvi_kvm_state_bad(kind, "RFLAGS", s.regs.rflags);
        break;
    }
    if (r < 0)
        return r;
    if (ioctl(v->fd, info_of(kind, false)->set, &s) < 0) {
        int e = errno;
        const char *field;
        uint64_t value = key_field(kind, &s, &field);
        return hvi_error(-e, "%s state: KVM refused it (%s 0x%" PRIx64 "): %s",
                         kind_name(kind), field, value, hvc_strerror(-e));
    }
    return 0;
}

/* ---- VM state ----------------------------------------------------------- */

static int vm_size(struct hvi_kvm_vm *vm, uint32_t kind, size_t *size)
{
    const struct kind_info *i = info_of(kind, true);
    if (!i)
        return hvi_error(-EINVAL, "unknown VM state kind %u", kind);
    bool have = kind == HVC_BACKEND_VM_PIT ? vm->has_pit : vm->has_irqchip;
    *size = have ? i->size : 0;
    return 0;
}

int hvi_kvm_vm_state_size(void *vm_priv, uint32_t kind, size_t *size)
{
    return vm_size(vm_priv, kind, size);
}

static const char *vm_none(uint32_t kind)
{
    return kind == HVC_BACKEND_VM_PIT ? "the VM has no in-kernel PIT"
                                      : "the VM has no in-kernel irqchip";
}

/* KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC are 0, 1, 2 in kind order. */
static uint32_t chip_of(uint32_t kind)
{
    return kind - HVC_BACKEND_VM_PIC_MASTER;
}

int hvi_kvm_vm_get_state(void *vm_priv, uint32_t kind, void *buf, size_t length)
{
    struct hvi_kvm_vm *vm = vm_priv;
    size_t want = 0;
    int r = vm_size(vm, kind, &want);
    if (r < 0)
        return r;
    if ((r = expect_size(kind, want, length, vm_none(kind))) < 0)
        return r;
    if (want == 0)
        return 0;
    union vm_blob s;
    memset(&s, 0, sizeof(s));
    if (kind != HVC_BACKEND_VM_PIT)
        s.chip.chip_id = chip_of(kind);
    if (ioctl(vm->fd, info_of(kind, true)->get, &s) < 0)
        return hvi_kvm_state_fail(kind, "get", errno);
    memcpy(buf, &s, length);
    return 0;
}

static int check_pit(struct kvm_pit_state2 *p)
{
    const uint32_t kind = HVC_BACKEND_VM_PIT;
    if (p->flags &
        ~(uint32_t)(KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON))
        return hvi_kvm_state_bad(kind, "flags", p->flags);
    for (int i = 0; i < 3; i++)
        if (p->channels[i].count > 0x10000) /* 0 and 0x10000 both 65536 */
            return hvi_error(-EINVAL,
                             "PIT state: channel %d count 0x%x is invalid", i,
                             p->channels[i].count);
    memset(p->reserved, 0, sizeof(p->reserved));
    return 0;
}

static int check_chip(uint32_t kind, struct kvm_irqchip *c)
{
    if (c->chip_id != chip_of(kind))
        return hvi_kvm_state_bad(kind, "chip id", c->chip_id);
    c->pad = 0;
    /* Past the chip's own struct the union is spare room. */
    size_t used = kind == HVC_BACKEND_VM_IOAPIC ? sizeof(c->chip.ioapic)
                                                : sizeof(c->chip.pic);
    memset(c->chip.dummy + used, 0, sizeof(c->chip.dummy) - used);
    if (kind == HVC_BACKEND_VM_IOAPIC)
        c->chip.ioapic.pad = 0;
    return 0;
}

int hvi_kvm_vm_set_state(void *vm_priv, uint32_t kind, const void *buf,
                         size_t length)
{
    struct hvi_kvm_vm *vm = vm_priv;
    size_t want = 0;
    int r = vm_size(vm, kind, &want);
    if (r < 0)
        return r;
    if ((r = expect_size(kind, want, length, vm_none(kind))) < 0)
        return r;
    if (want == 0)
        return 0;
    union vm_blob s;
    memcpy(&s, buf, length);
    bool pit = kind == HVC_BACKEND_VM_PIT;
    if ((r = pit ? check_pit(&s.pit) : check_chip(kind, &s.chip)) < 0)
        return r;
    if (ioctl(vm->fd, info_of(kind, true)->set, &s) < 0) {
        int e = errno;
        return hvi_error(-e, "%s state: KVM refused it (%s 0x%x): %s",
                         kind_name(kind), pit ? "flags" : "chip",
                         pit ? s.pit.flags : s.chip.chip_id, hvc_strerror(-e));
    }
    return 0;
}
