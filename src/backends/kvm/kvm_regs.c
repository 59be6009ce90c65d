/* KVM register access. A bulk call touches each KVM register group (GPRs,
 * special registers, debug registers, MSRs) with one ioctl pair. */
#include "kvm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

enum { G_REGS = 1, G_SREGS = 2, G_DEBUG = 4, G_MSRS = 8 };

struct groups {
    unsigned need;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_debugregs debug;
    struct kvm_msrs *msrs; /* one entry per MSR id, in id order */
};

static unsigned group_of(hvc_reg id)
{
    if (HVC_X86_IS_MSR(id))
        return G_MSRS;
    if (id <= HVC_X86_RFLAGS)
        return G_REGS;
    if (id >= HVC_X86_DR0 && id <= HVC_X86_DR7)
        return G_DEBUG;
    return G_SREGS;
}

/* Where the value of a non-MSR id lives in the group structs. */
static uint64_t *slot_of(struct groups *g, hvc_reg id)
{
    struct kvm_regs *r = &g->regs;
    uint64_t *gpr[] = {
        (uint64_t *)&r->rax, (uint64_t *)&r->rbx, (uint64_t *)&r->rcx,
        (uint64_t *)&r->rdx, (uint64_t *)&r->rsi, (uint64_t *)&r->rdi,
        (uint64_t *)&r->rsp, (uint64_t *)&r->rbp, (uint64_t *)&r->r8,
        (uint64_t *)&r->r9,  (uint64_t *)&r->r10, (uint64_t *)&r->r11,
        (uint64_t *)&r->r12, (uint64_t *)&r->r13, (uint64_t *)&r->r14,
        (uint64_t *)&r->r15, (uint64_t *)&r->rip, (uint64_t *)&r->rflags};
    if (id <= HVC_X86_RFLAGS)
        return gpr[id];
    switch (id) {
    case HVC_X86_CR0: return (uint64_t *)&g->sregs.cr0;
    case HVC_X86_CR2: return (uint64_t *)&g->sregs.cr2;
    case HVC_X86_CR3: return (uint64_t *)&g->sregs.cr3;
    case HVC_X86_CR4: return (uint64_t *)&g->sregs.cr4;
    case HVC_X86_CR8: return (uint64_t *)&g->sregs.cr8;
    case HVC_X86_EFER: return (uint64_t *)&g->sregs.efer;
    case HVC_X86_APIC_BASE: return (uint64_t *)&g->sregs.apic_base;
    case HVC_X86_DR0:
    case HVC_X86_DR1:
    case HVC_X86_DR2:
    case HVC_X86_DR3: return (uint64_t *)&g->debug.db[id - HVC_X86_DR0];
    case HVC_X86_DR6: return (uint64_t *)&g->debug.dr6;
    default: return (uint64_t *)&g->debug.dr7;
    }
}

static int alloc_msrs(struct groups *g, const hvc_reg *ids, size_t count)
{
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        n += HVC_X86_IS_MSR(ids[i]);
    if (!n)
        return 0;
    g->msrs = calloc(1, sizeof(*g->msrs) + n * sizeof(g->msrs->entries[0]));
    if (!g->msrs)
        return hvi_error(-ENOMEM, "out of memory accessing MSRs");
    for (size_t i = 0; i < count; i++)
        if (HVC_X86_IS_MSR(ids[i]))
            g->msrs->entries[g->msrs->nmsrs++].index = (uint32_t)ids[i];
    return 0;
}

static int msr_ioctl(int fd, unsigned long req, struct kvm_msrs *m,
                     const char *verb)
{
    int r = ioctl(fd, req, m);
    if (r < 0)
        return hvi_kvm_fail(verb, errno);
    if ((uint32_t)r < m->nmsrs)
        return hvi_error(-EIO, "KVM could not %s MSR 0x%x",
                         req == KVM_GET_MSRS ? "read" : "write",
                         m->entries[r].index);
    return 0;
}

static int fetch(int fd, struct groups *g)
{
    if ((g->need & G_REGS) && ioctl(fd, KVM_GET_REGS, &g->regs) < 0)
        return hvi_kvm_fail("KVM_GET_REGS", errno);
    if ((g->need & G_SREGS) && ioctl(fd, KVM_GET_SREGS, &g->sregs) < 0)
        return hvi_kvm_fail("KVM_GET_SREGS", errno);
    if ((g->need & G_DEBUG) && ioctl(fd, KVM_GET_DEBUGREGS, &g->debug) < 0)
        return hvi_kvm_fail("KVM_GET_DEBUGREGS", errno);
    if (g->msrs)
        return msr_ioctl(fd, KVM_GET_MSRS, g->msrs, "KVM_GET_MSRS");
    return 0;
}

static unsigned needed(const hvc_reg *ids, size_t count)
{
    unsigned need = 0;
    for (size_t i = 0; i < count; i++)
        need |= group_of(ids[i]);
    return need;
}

int hvi_kvm_get_regs(void *vcpu_priv, const hvc_reg *ids, uint64_t *values,
                     size_t count)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    struct groups g = {.need = needed(ids, count)};
    int r = alloc_msrs(&g, ids, count);
    if (r == 0)
        r = fetch(v->fd, &g);
    if (r == 0) {
        size_t m = 0;
        for (size_t i = 0; i < count; i++)
            values[i] = HVC_X86_IS_MSR(ids[i]) ? g.msrs->entries[m++].data
                                               : *slot_of(&g, ids[i]);
    }
    free(g.msrs);
    return r;
}

/* Writes the groups in a fixed order; on failure writes back the groups
 * already written from @p old, so the vCPU keeps its previous state. */
static int store(int fd, struct groups *g, struct groups *old)
{
    static const struct {
        unsigned group;
        unsigned long req;
        const char *name;
    } order[] = {{G_REGS, KVM_SET_REGS, "KVM_SET_REGS"},
                 {G_SREGS, KVM_SET_SREGS, "KVM_SET_SREGS"},
                 {G_DEBUG, KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS"}};
    void *arg[] = {&g->regs, &g->sregs, &g->debug};
    void *undo[] = {&old->regs, &old->sregs, &old->debug};
    size_t done = 0;
    int r = 0;
    for (; done < 3; done++) {
        if (!(g->need & order[done].group))
            continue;
        if (ioctl(fd, order[done].req, arg[done]) < 0) {
            int e = errno;
            r = hvi_error(e == EINVAL ? -EINVAL : -e,
                          "%s rejected the values: %s (a reserved bit, an "
                          "inconsistent CR0/CR4/EFER, or a non-canonical "
                          "address?)",
                          order[done].name, hvc_strerror(-e));
            break;
        }
    }
    if (r == 0 && g->msrs &&
        (r = msr_ioctl(fd, KVM_SET_MSRS, g->msrs, "KVM_SET_MSRS")) < 0) {
        /* Some MSRs may have been written: put them all back. */
        ioctl(fd, KVM_SET_MSRS, old->msrs);
    }
    if (r < 0)
        while (done-- > 0)
            if (g->need & order[done].group)
                ioctl(fd, order[done].req, undo[done]);
    return r;
}

int hvi_kvm_set_regs(void *vcpu_priv, const hvc_reg *ids,
                     const uint64_t *values, size_t count)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    struct groups g = {.need = needed(ids, count)};
    struct groups old = {0};
    int r = alloc_msrs(&g, ids, count);
    if (r == 0)
        r = fetch(v->fd, &g);
    if (r == 0 && g.msrs) {
        size_t bytes =
            sizeof(*g.msrs) + g.msrs->nmsrs * sizeof(g.msrs->entries[0]);
        old.msrs = malloc(bytes);
        if (!old.msrs)
            r = hvi_error(-ENOMEM, "out of memory writing MSRs");
        else
            memcpy(old.msrs, g.msrs, bytes);
    }
    if (r == 0) {
        old.regs = g.regs;
        old.sregs = g.sregs;
        old.debug = g.debug;
        size_t m = 0;
        for (size_t i = 0; i < count; i++) {
            if (HVC_X86_IS_MSR(ids[i]))
                g.msrs->entries[m++].data = values[i];
            else
                *slot_of(&g, ids[i]) = values[i];
        }
        r = store(v->fd, &g, &old);
    }
    free(g.msrs);
    free(old.msrs);
    return r;
}

static struct kvm_segment *segment_of(struct kvm_sregs *s, hvc_reg id)
{
    switch (id) {
    case HVC_X86_CS: return &s->cs;
    case HVC_X86_DS: return &s->ds;
    case HVC_X86_ES: return &s->es;
    case HVC_X86_FS: return &s->fs;
    case HVC_X86_GS: return &s->gs;
    case HVC_X86_SS: return &s->ss;
    case HVC_X86_TR: return &s->tr;
    case HVC_X86_LDTR: return &s->ldt;
    default: return NULL;
    }
}

int hvi_kvm_get_segment(void *vcpu_priv, hvc_reg id, hvc_x86_segment *out)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    struct kvm_sregs s;
    if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
        return hvi_kvm_fail("KVM_GET_SREGS", errno);
    memset(out, 0, sizeof(*out));
    if (id == HVC_X86_GDTR || id == HVC_X86_IDTR) {
        const struct kvm_dtable *t = id == HVC_X86_GDTR ? &s.gdt : &s.idt;
        out->base = t->base;
        out->limit = t->limit;
        return 0;
    }
    const struct kvm_segment *k = segment_of(&s, id);
    out->base = k->base;
    out->limit = k->limit;
    out->selector = k->selector;
    out->type = k->type;
    out->present = k->present;
    out->dpl = k->dpl;
    out->db = k->db;
    out->s = k->s;
    out->l = k->l;
    out->g = k->g;
    out->avl = k->avl;
    out->unusable = k->unusable;
    return 0;
}

int hvi_kvm_set_segment(void *vcpu_priv, hvc_reg id, const hvc_x86_segment *seg)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    struct kvm_sregs s;
    if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
        return hvi_kvm_fail("KVM_GET_SREGS", errno);
    if (id == HVC_X86_GDTR || id == HVC_X86_IDTR) {
        if (seg->limit > 0xffff)
            return hvi_error(-EINVAL,
                             "descriptor table limit 0x%x is above "
                             "0xffff",
                             seg->limit);
        struct kvm_dtable *t = id == HVC_X86_GDTR ? &s.gdt : &s.idt;
        t->base = seg->base;
        t->limit = (uint16_t)seg->limit;
    } else {
        struct kvm_segment *k = segment_of(&s, id);
        k->base = seg->base;
        k->limit = seg->limit;
        k->selector = seg->selector;
        k->type = seg->type;
        k->present = seg->present;
        k->dpl = seg->dpl;
        k->db = seg->db;
        k->s = seg->s;
        k->l = seg->l;
        k->g = seg->g;
        k->avl = seg->avl;
        k->unusable = seg->unusable;
    }
    if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
        return hvi_kvm_fail("KVM_SET_SREGS", errno);
    return 0;
}

int hvi_kvm_fpu_size(void *vcpu_priv, size_t *size)
{
    *size = ((struct hvi_kvm_vcpu *)vcpu_priv)->fpu_size;
    return 0;
}

int hvi_kvm_get_fpu(void *vcpu_priv, void *buf, size_t length)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    (void)length; /* the core checked it against fpu_size */
    static const unsigned long req[] = {KVM_GET_XSAVE2, KVM_GET_XSAVE,
                                        KVM_GET_FPU};
    if (ioctl(v->fd, req[v->fpu_mode], buf) < 0)
        return hvi_kvm_fail("reading the FPU state", errno);
    return 0;
}

int hvi_kvm_set_fpu(void *vcpu_priv, const void *buf, size_t length)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    (void)length;
    static const unsigned long req[] = {KVM_SET_XSAVE, KVM_SET_XSAVE,
                                        KVM_SET_FPU};
    if (ioctl(v->fd, req[v->fpu_mode], buf) < 0) {
        int e = errno;
        return hvi_error(-e, "the backend rejected the FPU state blob: %s",
                         hvc_strerror(-e));
    }
    return 0;
}
