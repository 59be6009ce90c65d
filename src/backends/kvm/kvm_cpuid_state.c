/* KVM backend: the CPUID kind of a vCPU's state (read, check against what
 * KVM supports, set, and read back), beside kvm_state.c's other kinds. */
#include "kvm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* Bounds a hostile count: KVM allows 256 entries; this leaves room
 * without letting a stream size a buffer. */
#define MAX_CPUID_ENTRIES 1024u

int hvi_kvm_cpuid_state_read(struct hvi_kvm_vcpu *v, struct kvm_cpuid2 **out)
{
    for (uint32_t n = 64; n <= MAX_CPUID_ENTRIES; n *= 2) {
        struct kvm_cpuid2 *c =
            calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
        if (!c)
            return hvi_error(-ENOMEM, "CPUID state: out of memory");
        c->nent = n;
        if (ioctl(v->fd, KVM_GET_CPUID2, c) == 0) {
            *out = c;
            return 0;
        }
        int e = errno;
        free(c);
        if (e != E2BIG)
            return hvi_kvm_state_fail(HVC_BACKEND_VCPU_ARCH_CPUID, "KVM_GET_CPUID2",
                                      e);
    }
    return hvi_error(-E2BIG, "CPUID state: more than %u entries",
                     MAX_CPUID_ENTRIES);
}

size_t hvi_kvm_cpuid_state_bytes(uint32_t nent)
{
    return sizeof(struct kvm_cpuid2) + nent * sizeof(struct kvm_cpuid_entry2);
}

static const struct kvm_cpuid_entry2 *
find_leaf(const struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == function &&
            (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ||
             e->index == index))
            return e;
    }
    return NULL;
}

enum { EAX, EBX, ECX, EDX };

/* Feature leaves whose every set bit the host must support. Bits KVM
 * itself changes at run time (OSXSAVE, OSPKE follow CR4) and the
 * hypervisor bit this backend adds are exempt. */
static const struct {
    uint32_t function, index;
    unsigned regs; /* 1 << EAX ... */
    uint32_t exempt[4];
} checked_leaves[] = {
    {1, 0, 1u << ECX | 1u << EDX, {0, 0, 1u << 27 | 1u << 31, 0}},
    {7, 0, 1u << EBX | 1u << ECX | 1u << EDX, {0, 0, 1u << 4, 0}},
    {0xd, 0, 1u << EAX | 1u << EDX, {0, 0, 0, 0}},
    {0x80000001, 0, 1u << ECX | 1u << EDX, {0, 0, 0, 0}},
};

static void add_regs(uint32_t can[4], const struct kvm_cpuid2 *c,
                     uint32_t function, uint32_t index)
{
    const struct kvm_cpuid_entry2 *e = c ? find_leaf(c, function, index) : NULL;
    if (e) {
        can[EAX] |= e->eax;
        can[EBX] |= e->ebx;
        can[ECX] |= e->ecx;
        can[EDX] |= e->edx;
    }
}

/* What the host can give is what KVM_GET_SUPPORTED_CPUID lists, and also
 * what this vCPU already has (@p cur): on KVM-on-PVM the guest's CPUID
 * instruction does not trap, the guest sees the host's own features beyond
 * the supported list, and KVM_GET_CPUID2 reports them. On other hosts the
 * vCPU's CPUID is the supported one (kvm_vcpu.c) or one checked here. */
static int check_features(const struct kvm_cpuid2 *sup,
                          const struct kvm_cpuid2 *cur,
                          const struct kvm_cpuid2 *c)
{
    static const char *const names[4] = {"EAX", "EBX", "ECX", "EDX"};
    size_t n = sizeof(checked_leaves) / sizeof(checked_leaves[0]);
    for (size_t i = 0; i < n; i++) {
        uint32_t fn = checked_leaves[i].function, idx = checked_leaves[i].index;
        const struct kvm_cpuid_entry2 *e = find_leaf(c, fn, idx);
        if (!e)
            continue;
        uint32_t have[4] = {e->eax, e->ebx, e->ecx, e->edx};
        uint32_t can[4] = {0, 0, 0, 0};
        add_regs(can, sup, fn, idx);
        add_regs(can, cur, fn, idx);
        for (int r = EAX; r <= EDX; r++) {
            if (!(checked_leaves[i].regs & 1u << r))
                continue;
            uint32_t missing = have[r] & ~can[r] & ~checked_leaves[i].exempt[r];
            if (missing)
                return hvi_error(-ENOTSUP,
                                 "CPUID state: leaf 0x%x subleaf %u %s "
                                 "has bits 0x%08x this host does not "
                                 "support",
                                 fn, idx, names[r], missing);
        }
    }
    return 0;
}

/* Entries KVM would treat as the same leaf: KVM would take the first, the
 * feature check might have looked at another. */
static int check_entries(struct kvm_cpuid2 *c)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->flags & ~(uint32_t)KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
            return hvi_error(-EINVAL, "CPUID state: leaf 0x%x has flags 0x%x",
                             e->function, e->flags);
        memset(e->padding, 0, sizeof(e->padding));
        for (uint32_t j = 0; j < i; j++) {
            const struct kvm_cpuid_entry2 *d = &c->entries[j];
            bool sig = (e->flags & d->flags) & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
            if (d->function == e->function && (!sig || d->index == e->index))
                return hvi_error(-EINVAL,
                                 "CPUID state: leaf 0x%x subleaf %u "
                                 "appears twice",
                                 e->function, e->index);
        }
    }
    return 0;
}

int hvi_kvm_cpuid_state_set(struct hvi_kvm_vcpu *v, const void *buf,
                            size_t length)
{
    const uint32_t kind = HVC_BACKEND_VCPU_ARCH_CPUID;
    struct kvm_cpuid2 h;
    if (length < sizeof(h))
        return hvi_kvm_state_bad(kind, "length", length);
    memcpy(&h, buf, sizeof(h));
    if (h.nent > MAX_CPUID_ENTRIES)
        return hvi_kvm_state_bad(kind, "entry count", h.nent);
    if (length != hvi_kvm_cpuid_state_bytes(h.nent))
        return hvi_error(-EINVAL, "CPUID state: %zu bytes for %u entries",
                         length, h.nent);
    struct kvm_cpuid2 *c = malloc(length);
    if (!c)
        return hvi_error(-ENOMEM, "CPUID state: out of memory");
    memcpy(c, buf, length);
    c->padding = 0;
    struct kvm_cpuid2 *cur = NULL, *now = NULL;
    int r = check_entries(c);
    if (r == 0)
        r = hvi_kvm_cpuid_state_read(v, &cur);
    if (r == 0)
        r = check_features(v->vm->kvm->cpuid, cur, c);
    if (r == 0 && ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
        int e = errno;
        r = hvi_error(-e, "CPUID state: KVM_SET_CPUID2 (%u entries): %s%s",
                      c->nent, hvc_strerror(-e),
                      e == EINVAL ? " (a vCPU that ran accepts only the "
                                    "CPUID it has)"
                                  : "");
    }
    /* KVM may add entries of its own to what it was given (some add the
     * XSAVE leaves when leaf 0xd subleaf 0 is missing, duplicating the
     * subleaves that were there): what it now reports is what the next
     * save writes, so it must pass the same checks, or the vCPU's own
     * state would not load back. Put the previous CPUID back if not. */
    if (r == 0 && (r = hvi_kvm_cpuid_state_read(v, &now)) == 0 &&
        (r = check_entries(now)) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        if (ioctl(v->fd, KVM_SET_CPUID2, cur) < 0)
            hvi_log(HVC_LOG_ERROR, "CPUID state: the previous CPUID could "
                                   "not be put back");
        r = hvi_error(-EINVAL,
                      "CPUID state: KVM turns these %u entries into %u that "
                      "would not load back (%s)",
                      c->nent, now->nent, why);
    }
    free(now);
    free(cur);
    free(c);
    if (r == 0) {
        /* Which MSRs KVM reads can depend on CPUID: probe again. */
        v->msrs_probed = false;
    }
    return r;
}
