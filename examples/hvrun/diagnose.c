/* What hvrun says when the backend gives up on a vCPU: the reason decoded,
 * where the vCPU was (RIP, the paging mode) and the instruction bytes there,
 * read from guest memory through the public API after translating the
 * address with the guest's own page tables (libhvcore has no translate
 * call: the walk is here, x86 only). */
#include "hvrun.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* KVM's codes (<linux/kvm.h>), repeated: hvrun uses the public API only. */
#define KVM_EXIT_FAIL_ENTRY 9
#define KVM_EXIT_INTERNAL_ERROR 17

#define CR0_PE (1ull << 0)
#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define PTE_P (1ull << 0)
#define PTE_PS (1ull << 7)
#define ADDR_MASK 0x000ffffffffff000ull
#define MAX_INSN 15

struct cpu {
    uint64_t rip, cr0, cr3, cr4, efer;
    hvc_x86_segment cs;
};

enum paging { REAL, PROT_FLAT, PAGING32, PAGING_PAE, PAGING4, PAGING5 };

static const char *const paging_names[] = {
    [REAL] = "real mode",
    [PROT_FLAT] = "protected mode, paging off",
    [PAGING32] = "protected mode, 32-bit paging",
    [PAGING_PAE] = "protected mode, PAE paging",
    [PAGING4] = "long mode, 4-level paging",
    [PAGING5] = "long mode, 5-level paging",
};

static enum paging paging_of(const struct cpu *c)
{
    if (!(c->cr0 & CR0_PE))
        return REAL;
    if (!(c->cr0 & CR0_PG))
        return PROT_FLAT;
    if (c->efer & EFER_LMA)
        return (c->cr4 & CR4_LA57) ? PAGING5 : PAGING4;
    return (c->cr4 & CR4_PAE) ? PAGING_PAE : PAGING32;
}

static int read_entry(hvc_vm *vm, uint64_t gpa, size_t size, uint64_t *out)
{
    uint8_t b[8] = {0};
    if (hvc_vm_read(vm, gpa, b, size) < 0)
        return -1;
    *out = 0;
    for (size_t i = 0; i < size; i++)
        *out |= (uint64_t)b[i] << (8 * i);
    return 0;
}

/* The guest-physical address of linear address @la; -1 when a table is
 * outside RAM or an entry is not present. */
static int translate(hvc_vm *vm, const struct cpu *c, enum paging p,
                     uint64_t la, uint64_t *gpa)
{
    uint64_t e;
    switch (p) {
    case REAL:
    case PROT_FLAT: *gpa = la; return 0;
    case PAGING32: {
        uint64_t pde_at = (c->cr3 & 0xfffff000u) + ((la >> 22) & 0x3ff) * 4;
        if (read_entry(vm, pde_at, 4, &e) < 0 || !(e & PTE_P))
            return -1;
        if ((e & PTE_PS) && (c->cr4 & CR4_PSE)) {
            *gpa =
                (e & 0xffc00000u) | ((e >> 13 & 0xff) << 32) | (la & 0x3fffff);
            return 0;
        }
        uint64_t pte_at = (e & 0xfffff000u) + ((la >> 12) & 0x3ff) * 4;
        if (read_entry(vm, pte_at, 4, &e) < 0 || !(e & PTE_P))
            return -1;
        *gpa = (e & 0xfffff000u) | (la & 0xfff);
        return 0;
    }
    default: break;
    }
    /* PAE and long mode: 8-byte entries, 9 bits a level. */
    int levels = p == PAGING_PAE ? 3 : p == PAGING4 ? 4 : 5;
    uint64_t table =
        p == PAGING_PAE ? (c->cr3 & 0xffffffe0u) : (c->cr3 & ADDR_MASK);
    for (int level = levels; level >= 1; level--) {
        unsigned shift = 12 + 9 * (unsigned)(level - 1);
        uint64_t index =
            (la >> shift) & (level == 3 && p == PAGING_PAE ? 3 : 0x1ff);
        if (read_entry(vm, table + index * 8, 8, &e) < 0 || !(e & PTE_P))
            return -1;
        /* 1 GiB (level 3, not in PAE) and 2 MiB (level 2) pages. */
        bool large =
            (level == 2 || (level == 3 && p != PAGING_PAE)) && (e & PTE_PS);
        if (large || level == 1) {
            uint64_t span = 1ull << shift;
            *gpa = (e & ADDR_MASK & ~(span - 1)) | (la & (span - 1));
            return 0;
        }
        table = e & ADDR_MASK;
    }
    return -1;
}

/* " at RIP 0x...(, CS base 0x...) (MODE): instruction bytes 0f ae 27 ..." */
static void describe_place(hvc_vcpu *v, char *buf, size_t cap)
{
    static const hvc_reg ids[] = {HVC_X86_RIP, HVC_X86_CR0, HVC_X86_CR3,
                                  HVC_X86_CR4, HVC_X86_EFER};
    uint64_t val[5];
    struct cpu c;
    if (hvc_vcpu_get_regs(v, ids, val, 5) < 0 ||
        hvc_vcpu_get_segment(v, HVC_X86_CS, &c.cs) < 0) {
        snprintf(buf, cap, " (its registers cannot be read: %s)",
                 hvrun_esc(hvc_last_error()));
        return;
    }
    c.rip = val[0];
    c.cr0 = val[1];
    c.cr3 = val[2];
    c.cr4 = val[3];
    c.efer = val[4];
    enum paging p = paging_of(&c);
    bool flat64 = (p == PAGING4 || p == PAGING5) && c.cs.l;
    uint64_t la = flat64 ? c.rip : c.cs.base + c.rip;
    if (!flat64 && p != REAL)
        la &= 0xffffffffu;
    int k = snprintf(buf, cap, " at RIP 0x%" PRIx64, c.rip);
    if (!flat64 && c.cs.base)
        k += snprintf(buf + k, cap - (size_t)k, " (CS base 0x%" PRIx64 ")",
                      c.cs.base);
    k += snprintf(buf + k, cap - (size_t)k, " (%s)", paging_names[p]);
    hvc_vm *vm = hvc_vcpu_vm(v);
    uint8_t bytes[MAX_INSN];
    size_t n = 0;
    uint64_t gpa = 0;
    for (; n < MAX_INSN; n++) {
        if (translate(vm, &c, p, la + n, &gpa) < 0 ||
            hvc_vm_read(vm, gpa, &bytes[n], 1) < 0)
            break;
    }
    if (n == 0) {
        snprintf(buf + k, cap - (size_t)k,
                 ": no instruction bytes (linear 0x%" PRIx64 " is %s)", la,
                 translate(vm, &c, p, la, &gpa) < 0
                     ? "not mapped by the guest's page tables"
                     : "not in guest RAM");
        return;
    }
    k += snprintf(buf + k, cap - (size_t)k, ": instruction bytes");
    for (size_t i = 0; i < n && (size_t)k + 4 < cap; i++)
        k += snprintf(buf + k, cap - (size_t)k, " %02x", bytes[i]);
}

static void reason_of(const hvc_exit *e, bool kvm, char *buf, size_t cap)
{
    uint32_t code = e->u.internal.code;
    if (kvm && e->backend_reason == KVM_EXIT_INTERNAL_ERROR) {
        switch (code) {
        case 1: snprintf(buf, cap, "KVM emulation failure"); return;
        case 2:
            snprintf(buf, cap,
                     "KVM: an exception while delivering another "
                     "(simultaneous exceptions)");
            return;
        case 3:
            snprintf(buf, cap,
                     "KVM: a fault while delivering an event "
                     "(through the IDT)");
            return;
        case 4:
            snprintf(buf, cap,
                     "KVM: unexpected hardware exit reason 0x%" PRIx64,
                     e->u.internal.ndata ? e->u.internal.data[0] : 0);
            return;
        default: break;
        }
    }
    if (kvm && e->backend_reason == KVM_EXIT_FAIL_ENTRY) {
        snprintf(buf, cap,
                 "KVM: entering the guest failed (hardware reason 0x%x)", code);
        return;
    }
    snprintf(buf, cap, "internal error (backend code %u, exit %llu)", code,
             (unsigned long long)e->backend_reason);
}

void hvrun_report_internal(hvc_vcpu *v, const hvc_exit *e, uint32_t id,
                           const char *backend)
{
    char reason[160], place[200];
    reason_of(e, backend && strcmp(backend, "kvm") == 0, reason,
              sizeof(reason));
    describe_place(v, place, sizeof(place));
    fprintf(stderr, "hvrun: vCPU %u: %s%s\n", id, reason, place);
}
