/* KVM state blobs for migration (hvc_backend_state): the architectural
 * layouts of src/arch/x86/arch_state.h. This file answers sizes,
 * dispatches each kind, and keeps the MSR list (probed once per vCPU) and
 * the MSRS and CPUID kinds; kvm_arch_state.c converts the other vCPU kinds
 * and kvm_arch_chips.c the interrupt controllers and PIT. A blob given to
 * set_state comes from a stream file: it is bounded, copied and checked
 * field by field before KVM sees it; KVM's own checks are the second line,
 * and what KVM refuses is reported with the value it refused. */
#include "kvm.h"

#include "../../arch/x86/arch_state.h"

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

/* MSRs other records carry: IA32_APIC_BASE (SREGS, LAPIC) and IA32_EFER
 * (SREGS). */
#define MSR_IA32_APICBASE 0x1bu
#define MSR_EFER 0xc0000080u

/* Every kind this backend has. */
static const struct kind_info {
    uint32_t kind;
    const char *name;
} kinds[] = {
    {HVC_BACKEND_VCPU_ARCH_REGS, "REGS"},
    {HVC_BACKEND_VCPU_ARCH_SREGS, "SREGS"},
    {HVC_BACKEND_VCPU_ARCH_MSRS, "MSRS"},
    {HVC_BACKEND_VCPU_ARCH_XSAVE, "XSAVE"},
    {HVC_BACKEND_VCPU_ARCH_EVENTS, "EVENTS"},
    {HVC_BACKEND_VCPU_ARCH_LAPIC, "LAPIC"},
    {HVC_BACKEND_VCPU_ARCH_CPUID, "CPUID"},
    {HVC_BACKEND_VM_ARCH_PIC_MASTER, "PIC master"},
    {HVC_BACKEND_VM_ARCH_PIC_SLAVE, "PIC slave"},
    {HVC_BACKEND_VM_ARCH_IOAPIC, "IOAPIC"},
    {HVC_BACKEND_VM_ARCH_PIT, "PIT"},
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

/* A kind of stream format 1 (KVM's structs) or one never defined. */
static int unknown_kind(const char *what, uint32_t kind)
{
    bool retired =
        (kind >= HVC_BACKEND_VCPU_CPUID && kind <= HVC_BACKEND_VCPU_REGS) ||
        (kind >= HVC_BACKEND_VM_PIC_MASTER && kind <= HVC_BACKEND_VM_PIT);
    return hvi_error(-EINVAL, "%s state kind %u%s", what, kind,
                     retired ? " is retired (it held KVM's structs in "
                               "stream format 1)"
                             : " is unknown");
}

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

/* MSRs the MSRS kind leaves to other records (arch_state.h). */
static bool is_tsc_msr(uint32_t index)
{
    return index == MSR_IA32_TSC || index == MSR_IA32_TSC_ADJUST ||
           index == MSR_IA32_TSC_DEADLINE || index == MSR_IA32_APICBASE ||
           index == MSR_EFER;
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
        return hvi_kvm_state_fail(HVC_BACKEND_VCPU_ARCH_MSRS,
                                  "KVM_GET_MSR_INDEX_LIST", errno);
    for (int tries = 0; tries < 4; tries++) {
        uint32_t n = probe.nmsrs;
        if (n > MAX_HOST_MSRS)
            return hvi_kvm_state_bad(HVC_BACKEND_VCPU_ARCH_MSRS,
                                     "host MSR count", n);
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
            return hvi_kvm_state_fail(HVC_BACKEND_VCPU_ARCH_MSRS,
                                      "KVM_GET_MSR_INDEX_LIST", e);
    }
    return hvi_error(-EAGAIN, "MSRS state: the host MSR list kept growing");
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
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
            r = hvi_kvm_state_fail(HVC_BACKEND_VCPU_ARCH_MSRS,
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
    /* The stream lists MSRs in ascending order. */
    qsort(keep, kept, sizeof(keep[0]), cmp_u32);
    free(v->msr_index);
    v->msr_index = keep;
    v->nr_msrs = kept;
    v->msrs_probed = true;
    return 0;
}

/* The MSRS kind: @p bytes is the size vcpu_state_size() gave. */
static int get_msrs(struct hvi_kvm_vcpu *v, void *buf, size_t bytes)
{
    uint32_t n = v->nr_msrs;
    struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
    struct hvi_x86_msrs *a = calloc(1, bytes);
    if (!m || !a) {
        free(m);
        free(a);
        return hvi_error(-ENOMEM, "MSRS state: out of memory");
    }
    m->nmsrs = n;
    for (uint32_t i = 0; i < n; i++)
        m->entries[i].index = v->msr_index[i];
    int got = ioctl(v->fd, KVM_GET_MSRS, m);
    int r = 0;
    if (got < 0)
        r = hvi_kvm_state_fail(HVC_BACKEND_VCPU_ARCH_MSRS, "KVM_GET_MSRS",
                               errno);
    else if ((uint32_t)got < n)
        r = hvi_error(-EIO, "MSRS state: KVM no longer reads MSR 0x%x",
                      m->entries[got].index);
    if (r == 0) {
        hvi_x86_state_init(&a->hdr, bytes);
        a->count = n;
        for (uint32_t i = 0; i < n; i++) {
            a->entries[i].index = m->entries[i].index;
            a->entries[i].value = m->entries[i].data;
        }
        memcpy(buf, a, bytes);
    }
    free(m);
    free(a);
    return r;
}

static int set_msrs(struct hvi_kvm_vcpu *v, const void *buf, size_t length)
{
    const uint32_t kind = HVC_BACKEND_VCPU_ARCH_MSRS;
    struct hvi_x86_msrs *a = malloc(length ? length : 1);
    if (!a)
        return hvi_error(-ENOMEM, "MSRS state: out of memory");
    memcpy(a, buf, length);
    int r = hvi_x86_check_msrs(a, length);
    struct kvm_msrs *m = NULL;
    if (r == 0 &&
        !(m = calloc(1, sizeof(*m) + a->count * sizeof(m->entries[0]))))
        r = hvi_error(-ENOMEM, "MSRS state: out of memory");
    if (r == 0) {
        m->nmsrs = a->count;
        for (uint32_t i = 0; i < a->count; i++) {
            m->entries[i].index = a->entries[i].index;
            m->entries[i].data = a->entries[i].value;
        }
        int got = ioctl(v->fd, KVM_SET_MSRS, m);
        if (got < 0)
            r = hvi_kvm_state_fail(kind, "KVM_SET_MSRS", errno);
        else if ((uint32_t)got < m->nmsrs)
            r = hvi_error(-EINVAL,
                          "MSRS state: KVM refused MSR 0x%x = 0x%llx (entry "
                          "%d of %u)",
                          m->entries[got].index,
                          (unsigned long long)m->entries[got].data, got,
                          m->nmsrs);
    }
    free(m);
    free(a);
    return r;
}

/* ---- CPUID -------------------------------------------------------------- */

static size_t cpuid_bytes(uint32_t n)
{
    return sizeof(struct hvi_x86_cpuid) +
           n * sizeof(struct hvi_x86_cpuid_entry);
}

/* Reads KVM's CPUID into a malloc'd architectural blob of *bytes. */
static int read_cpuid(struct hvi_kvm_vcpu *v, struct hvi_x86_cpuid **out,
                      size_t *bytes)
{
    struct kvm_cpuid2 *c;
    int r = hvi_kvm_cpuid_state_read(v, &c);
    if (r < 0)
        return r;
    size_t n = cpuid_bytes(c->nent);
    struct hvi_x86_cpuid *a = calloc(1, n);
    if (!a) {
        free(c);
        return hvi_error(-ENOMEM, "CPUID state: out of memory");
    }
    hvi_x86_state_init(&a->hdr, n);
    a->count = c->nent;
    for (uint32_t i = 0; i < c->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &c->entries[i];
        struct hvi_x86_cpuid_entry *d = &a->entries[i];
        d->function = e->function;
        d->flags = e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX
                       ? HVI_X86_CPUID_INDEXED
                       : 0;
        d->index = d->flags ? e->index : 0;
        d->eax = e->eax;
        d->ebx = e->ebx;
        d->ecx = e->ecx;
        d->edx = e->edx;
    }
    free(c);
    *out = a;
    *bytes = n;
    return 0;
}

static int set_cpuid(struct hvi_kvm_vcpu *v, const void *buf, size_t length)
{
    struct hvi_x86_cpuid *a = malloc(length ? length : 1);
    if (!a)
        return hvi_error(-ENOMEM, "CPUID state: out of memory");
    memcpy(a, buf, length);
    int r = hvi_x86_check_cpuid(a, length);
    struct kvm_cpuid2 *c = NULL;
    size_t kb = r == 0 ? hvi_kvm_cpuid_state_bytes(a->count) : 0;
    if (r == 0 && !(c = calloc(1, kb)))
        r = hvi_error(-ENOMEM, "CPUID state: out of memory");
    if (r == 0) {
        c->nent = a->count;
        for (uint32_t i = 0; i < a->count; i++) {
            const struct hvi_x86_cpuid_entry *e = &a->entries[i];
            struct kvm_cpuid_entry2 *d = &c->entries[i];
            d->function = e->function;
            d->index = e->index;
            d->flags = e->flags & HVI_X86_CPUID_INDEXED
                           ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX
                           : 0;
            d->eax = e->eax;
            d->ebx = e->ebx;
            d->ecx = e->ecx;
            d->edx = e->edx;
        }
        r = hvi_kvm_cpuid_state_set(v, c, kb);
    }
    free(c);
    free(a);
    return r;
}

/* ---- vCPU state ---------------------------------------------------------- */

static int vcpu_size(struct hvi_kvm_vcpu *v, uint32_t kind, size_t *size)
{
    if (!info_of(kind, false))
        return unknown_kind("vCPU", kind);
    if (kind == HVC_BACKEND_VCPU_ARCH_CPUID) {
        struct hvi_x86_cpuid *a;
        int r = read_cpuid(v, &a, size);
        free(a);
        return r;
    }
    if (kind == HVC_BACKEND_VCPU_ARCH_MSRS) {
        int r = probe_vcpu_msrs(v);
        if (r < 0)
            return r;
        *size = v->nr_msrs ? sizeof(struct hvi_x86_msrs) +
                                 v->nr_msrs * sizeof(struct hvi_x86_msr)
                           : 0;
        return 0;
    }
    if (kind == HVC_BACKEND_VCPU_ARCH_XSAVE && v->fpu_mode == HVI_FPU_LEGACY)
        return hvi_error(-ENOTSUP, "XSAVE state: this KVM has no XSAVE "
                                   "(KVM_CAP_XSAVE)");
    *size = hvi_kvm_arch_size(v, kind);
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
    return kind == HVC_BACKEND_VCPU_ARCH_LAPIC
               ? "the VM has no in-kernel irqchip"
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
    if (kind == HVC_BACKEND_VCPU_ARCH_MSRS)
        return get_msrs(v, buf, length);
    if (kind == HVC_BACKEND_VCPU_ARCH_CPUID) {
        struct hvi_x86_cpuid *a;
        size_t n;
        if ((r = read_cpuid(v, &a, &n)) < 0)
            return r;
        if (n != length)
            r = hvi_error(-EIO, "CPUID state: changed to %u entries", a->count);
        else
            memcpy(buf, a, length);
        free(a);
        return r;
    }
    return hvi_kvm_arch_get(v, kind, buf, length);
}

int hvi_kvm_vcpu_set_state(void *vcpu_priv, uint32_t kind, const void *buf,
                           size_t length)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    size_t want = 0;
    int r;
    if (!info_of(kind, false))
        return unknown_kind("vCPU", kind);
    if (kind == HVC_BACKEND_VCPU_ARCH_CPUID)
        return set_cpuid(v, buf, length);
    if (kind == HVC_BACKEND_VCPU_ARCH_MSRS)
        return set_msrs(v, buf, length);
    if ((r = vcpu_size(v, kind, &want)) < 0)
        return r;
    if (want == 0 && length != 0)
        return hvi_error(-ENOTSUP, "%s state: %s", kind_name(kind),
                         vcpu_none(kind));
    if (want == 0)
        return 0;
    /* The XSAVE area may be another backend's size (arch_state.h); the
     * others have a fixed layout, which the checks hold it to. */
    return hvi_kvm_arch_set(v, kind, buf, length);
}

/* ---- VM state ----------------------------------------------------------- */

static int vm_size(struct hvi_kvm_vm *vm, uint32_t kind, size_t *size)
{
    if (!info_of(kind, true))
        return unknown_kind("VM", kind);
    *size = hvi_kvm_chip_size(vm, kind);
    return 0;
}

int hvi_kvm_vm_state_size(void *vm_priv, uint32_t kind, size_t *size)
{
    return vm_size(vm_priv, kind, size);
}

static const char *vm_none(uint32_t kind)
{
    return kind == HVC_BACKEND_VM_ARCH_PIT ? "the VM has no in-kernel PIT"
                                           : "the VM has no in-kernel irqchip";
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
    return hvi_kvm_chip_get(vm, kind, buf, length);
}

int hvi_kvm_vm_set_state(void *vm_priv, uint32_t kind, const void *buf,
                         size_t length)
{
    struct hvi_kvm_vm *vm = vm_priv;
    size_t want = 0;
    int r = vm_size(vm, kind, &want);
    if (r < 0)
        return r;
    if (want == 0 && length != 0)
        return hvi_error(-ENOTSUP, "%s state: %s", kind_name(kind),
                         vm_none(kind));
    if (want == 0)
        return 0;
    return hvi_kvm_chip_set(vm, kind, buf, length);
}
