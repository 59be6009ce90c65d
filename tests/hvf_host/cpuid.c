/* tests/hvf_host: CPUID always "exits". KVM answers CPUID in the kernel
 * from its table; so before the vCPU's first entry this layer asks the
 * backend every leaf and subleaf a guest can query, as synthesized CPUID
 * exits (RAX/RCX = leaf/subleaf, RIP at the guest's entry point,
 * instruction length 2), takes the answers from RAX/RBX/RCX/RDX at the next
 * hv_vcpu_run, then puts the real registers back and programs the answers
 * with KVM_SET_CPUID2. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MAX_ENTRIES 256

static struct kvm_cpuid_entry2 *find(struct hvfh_vcpu *v, uint32_t leaf,
                                     uint32_t sub)
{
    for (uint32_t i = 0; i < v->cpuid->nent; i++)
        if (v->cpuid->entries[i].function == leaf &&
            v->cpuid->entries[i].index == sub)
            return &v->cpuid->entries[i];
    return NULL;
}

static int indexed(uint32_t leaf)
{
    switch (leaf) {
    case 4:
    case 7:
    case 0xb:
    case 0xd:
    case 0xf:
    case 0x10:
    case 0x12:
    case 0x14:
    case 0x17:
    case 0x18:
    case 0x1d:
    case 0x1e:
    case 0x1f:
    case 0x20:
    case 0x23:
    case 0x24: return 1;
    }
    return 0;
}

/* The query after (leaf, sub), given the answers so far; 0 when done. */
static int next(struct hvfh_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t *nl,
                uint32_t *ns)
{
    struct kvm_cpuid_entry2 *a = find(v, leaf, sub), *a0 = find(v, leaf, 0);
    if (indexed(leaf) && a && a0) {
        uint32_t s = sub + 1;
        int more = 0;
        if (leaf == 4)
            more = (a->eax & 0x1f) != 0 && s < 16;
        else if (leaf == 0xb || leaf == 0x1f)
            more = ((a->ecx >> 8) & 0xff) != 0 && s < 8;
        else if (leaf == 0xd) {
            uint64_t mask = a0->eax | (uint64_t)a0->edx << 32;
            while (s < 64 && s >= 2 && !(mask >> s & 1))
                s++;
            more = s < 64;
        } else if (leaf == 0x10 || leaf == 0x12 || leaf == 0xf)
            more = s < 4;
        else
            more = s <= a0->eax && s < 8;
        if (more) {
            *nl = leaf;
            *ns = s;
            return 1;
        }
    }
    struct kvm_cpuid_entry2 *b = find(v, 0, 0), *h = find(v, 0x40000000, 0),
                            *x = find(v, 0x80000000, 0);
    uint32_t maxb = b ? (b->eax < 0x3f ? b->eax : 0x3f) : 0;
    *ns = 0;
    if (leaf < 0x40000000) {
        if (leaf < maxb) {
            *nl = leaf + 1;
            return 1;
        }
        *nl = 0x40000000;
        return 1;
    }
    if (leaf < 0x80000000) {
        uint32_t maxh = h && h->eax >= 0x40000000 && h->eax <= 0x40000010
                            ? h->eax
                            : 0x40000000;
        if (leaf < maxh) {
            *nl = leaf + 1;
            return 1;
        }
        *nl = 0x80000000;
        return 1;
    }
    uint32_t maxx =
        x && x->eax >= 0x80000000 && x->eax <= 0x80000040 ? x->eax : 0x80000000;
    if (leaf < maxx) {
        *nl = leaf + 1;
        return 1;
    }
    return 0;
}

static void ask(struct hvfh_vcpu *v, uint32_t leaf, uint32_t sub)
{
    v->regs = v->saved_regs;
    v->regs.rax = leaf;
    v->regs.rcx = sub;
    v->regs_valid = 1;
    v->regs_dirty = 0; /* never reaches KVM */
    v->vmcs[VMCS_RO_EXIT_REASON] = VMX_REASON_CPUID;
    v->vmcs[VMCS_RO_VMEXIT_INSTR_LEN] = 2;
    v->cpuid_idx = (int)v->cpuid->nent;
    struct kvm_cpuid_entry2 *e = &v->cpuid->entries[v->cpuid->nent];
    memset(e, 0, sizeof(*e));
    e->function = leaf;
    e->index = sub;
    e->flags = indexed(leaf) ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
}

int hvfh_cpuid_step(struct hvfh_vcpu *v, int *err)
{
    *err = 0;
    if (v->cpuid_state == 2)
        return 0;
    if (v->cpuid_state == 0) {
        v->cpuid = calloc(1, sizeof(*v->cpuid) +
                                 MAX_ENTRIES * sizeof(v->cpuid->entries[0]));
        if (!v->cpuid || hvfh_load_regs(v)) {
            *err = 1;
            return 1;
        }
        v->saved_regs = v->regs;
        v->saved_dirty = v->regs_dirty;
        v->cpuid_state = 1;
        ask(v, 0, 0);
        return 1;
    }
    /* the answer to the last question */
    struct kvm_cpuid_entry2 *e = &v->cpuid->entries[v->cpuid_idx];
    e->eax = (uint32_t)v->regs.rax;
    e->ebx = (uint32_t)v->regs.rbx;
    e->ecx = (uint32_t)v->regs.rcx;
    e->edx = (uint32_t)v->regs.rdx;
    v->cpuid->nent++;
    if (getenv("HVF_HOST_TRACE"))
        fprintf(stderr,
                "hvf_host: vcpu %u cpuid %#x.%u = %08x %08x %08x %08x\n", v->id,
                e->function, e->index, e->eax, e->ebx, e->ecx, e->edx);
    uint32_t nl, ns;
    if (v->cpuid->nent < MAX_ENTRIES &&
        next(v, e->function, e->index, &nl, &ns)) {
        ask(v, nl, ns);
        return 1;
    }
    v->regs = v->saved_regs;
    v->regs_valid = 1;
    v->regs_dirty = v->saved_dirty;
    v->cpuid_state = 2;
    v->vmcs[VMCS_RO_EXIT_REASON] = 0;
    v->vmcs[VMCS_RO_VMEXIT_INSTR_LEN] = 0;
    /* KVM_SET_CPUID2 may resize and reset the XSAVE state the backend
     * already wrote: keep it across */
    size_t sz;
    void *x = hvfh_xsave_get(v, &sz);
    int r = ioctl(v->fd, KVM_SET_CPUID2, v->cpuid);
    if (!r && x)
        ioctl(v->fd, KVM_SET_XSAVE, x);
    free(x);
    if (r) {
        perror("hvf_host: KVM_SET_CPUID2 with the backend's answers");
        *err = 1;
        return 1;
    }
    return 0;
}
