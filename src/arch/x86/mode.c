/* Putting a vCPU in real, flat 32-bit or 64-bit mode for a flat entry. */
#include "../../core/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1ull << 30)
#define MAX_MAP (512 * GIB) /* one PDPT */

/* GDT selectors, as the Linux boot protocol names them. */
#define SEL_CODE 0x10
#define SEL_DATA 0x18
#define SEL_TSS 0x20
#define GDT_LIMIT (SEL_TSS + 16 - 1)
#define TSS_OFFSET 0x800 /* a zeroed TSS in the GDT's page */

#define CR0_PE (1u << 0)
#define CR0_MP (1u << 1)
#define CR0_ET (1u << 4)
#define CR0_NE (1u << 5)
#define CR0_PG (1u << 31)
#define CR4_PAE (1u << 5)
#define CR4_OSFXSR (1u << 9)
#define CR4_OSXMMEXCPT (1u << 10)
#define EFER_LME (1u << 8)
#define EFER_LMA (1u << 10)

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_PS 0x80ull

static int read_options(hvc_vm *vm, const hvc_vcpu_mode_options *in,
                        hvc_vcpu_mode_options *o, uint64_t *map_len)
{
    hvc_vcpu_mode_options d = HVC_VCPU_MODE_OPTIONS_INIT;
    *o = d;
    int r = hvi_copy_options(o, sizeof(*o), in, sizeof(*o),
                             "hvc_vcpu_mode_options");
    if (r < 0)
        return r;
    switch (o->mode) {
    case HVC_X86_MODE_REAL:
        if (o->entry >= (1u << 20))
            return hvi_error(-EINVAL,
                             "real-mode entry 0x%" PRIx64 " is above 1 MiB",
                             o->entry);
        if (o->stack > 0xffff)
            return hvi_error(-EINVAL,
                             "real-mode stack 0x%" PRIx64 " is above 64 KiB",
                             o->stack);
        return 0;
    case HVC_X86_MODE_PROTECTED32:
        if (o->entry > UINT32_MAX || o->stack > UINT32_MAX)
            return hvi_error(-EINVAL,
                             "32-bit entry 0x%" PRIx64 " or stack 0x%" PRIx64
                             " is above 4 GiB",
                             o->entry, o->stack);
        break;
    case HVC_X86_MODE_LONG64:
        *map_len = o->map_length;
        if (*map_len == 0) {
            uint64_t top = hvi_memory_top(vm);
            *map_len = top < 4 * GIB ? 4 * GIB : (top + GIB - 1) & ~(GIB - 1);
        }
        if (*map_len % GIB || *map_len > MAX_MAP)
            return hvi_error(-EINVAL,
                             "identity map length 0x%" PRIx64
                             " is not a multiple of 1 GiB up to 512 GiB",
                             *map_len);
        break;
    default: return hvi_error(-EINVAL, "unknown vCPU mode %u", o->mode);
    }
    if (o->tables_addr % HVC_PAGE_SIZE)
        return hvi_error(
            -EINVAL, "mode tables address 0x%" PRIx64 " is not page-aligned",
            o->tables_addr);
    return 0;
}

static uint64_t tables_size(const hvc_vcpu_mode_options *o, uint64_t map_len)
{
    switch (o->mode) {
    case HVC_X86_MODE_PROTECTED32: return HVC_PAGE_SIZE;
    case HVC_X86_MODE_LONG64:
        /* GDT page, PML4, PDPT, one page directory per GiB. */
        return (3 + map_len / GIB) * HVC_PAGE_SIZE;
    default: return 0;
    }
}

int hvc_vcpu_mode_tables_size(hvc_vm *vm, const hvc_vcpu_mode_options *opts,
                              uint64_t *size)
{
    if (!vm || !opts || !size)
        return hvi_error(-EINVAL, "hvc_vcpu_mode_tables_size: NULL argument");
    hvc_vcpu_mode_options o;
    uint64_t map_len = 0;
    int r = read_options(vm, opts, &o, &map_len);
    if (r == 0)
        *size = tables_size(&o, map_len);
    return r;
}

/* A flat descriptor: base 0, limit 4 GiB, present, DPL 0. */
static uint64_t flat_descriptor(unsigned type, int s, int l, int db)
{
    return 0xffffull | (0xfull << 48) | ((uint64_t)type << 40) |
           ((uint64_t)s << 44) | (1ull << 47) | ((uint64_t)l << 53) |
           ((uint64_t)db << 54) | (1ull << 55);
}

static void fill_tables(uint8_t *t, const hvc_vcpu_mode_options *o,
                        uint64_t map_len)
{
    bool lm = o->mode == HVC_X86_MODE_LONG64;
    uint64_t *gdt = (uint64_t *)t;
    gdt[SEL_CODE / 8] = flat_descriptor(0xb, 1, lm, !lm);
    gdt[SEL_DATA / 8] = flat_descriptor(0x3, 1, 0, 1);
    uint64_t tss = o->tables_addr + TSS_OFFSET;
    gdt[SEL_TSS / 8] = 0x67 | ((tss & 0xffffff) << 16) | (0xbull << 40) |
                       (1ull << 47) | ((tss >> 24 & 0xff) << 56);
    gdt[SEL_TSS / 8 + 1] = tss >> 32;
    if (!lm)
        return;
    uint64_t *pml4 = (uint64_t *)(t + HVC_PAGE_SIZE);
    uint64_t *pdpt = (uint64_t *)(t + 2 * HVC_PAGE_SIZE);
    uint64_t *pd = (uint64_t *)(t + 3 * HVC_PAGE_SIZE);
    pml4[0] = (o->tables_addr + 2 * HVC_PAGE_SIZE) | PTE_P | PTE_RW;
    for (uint64_t g = 0; g < map_len / GIB; g++) {
        pdpt[g] = (o->tables_addr + (3 + g) * HVC_PAGE_SIZE) | PTE_P | PTE_RW;
        for (uint64_t i = 0; i < 512; i++)
            pd[g * 512 + i] = (g * GIB + (i << 21)) | PTE_P | PTE_RW | PTE_PS;
    }
}

static hvc_x86_segment make_segment(uint16_t sel, uint64_t base, uint32_t limit,
                                    uint8_t type, uint8_t s, uint8_t db,
                                    uint8_t l, uint8_t g)
{
    hvc_x86_segment seg = {0};
    seg.base = base;
    seg.limit = limit;
    seg.selector = sel;
    seg.type = type;
    seg.present = 1;
    seg.s = s;
    seg.db = db;
    seg.l = l;
    seg.g = g;
    return seg;
}

static int set_segments(hvc_vcpu *vcpu, const hvc_vcpu_mode_options *o)
{
    hvc_x86_segment code, data, tr, ldtr, gdtr = {0}, idtr = {0};
    if (o->mode == HVC_X86_MODE_REAL) {
        uint16_t cs = (uint16_t)((o->entry >> 4) & 0xf000);
        code = make_segment(cs, (uint64_t)cs << 4, 0xffff, 0xb, 1, 0, 0, 0);
        data = make_segment(0, 0, 0xffff, 0x3, 1, 0, 0, 0);
        tr = make_segment(0, 0, 0xffff, 0xb, 0, 0, 0, 0);
        gdtr.limit = 0xffff;
        idtr.limit = 0x3ff; /* the real-mode interrupt vector table */
    } else {
        bool lm = o->mode == HVC_X86_MODE_LONG64;
        code = make_segment(SEL_CODE, 0, 0xffffffff, 0xb, 1, !lm, lm, 1);
        data = make_segment(SEL_DATA, 0, 0xffffffff, 0x3, 1, 1, 0, 1);
        tr = make_segment(SEL_TSS, o->tables_addr + TSS_OFFSET, 0x67, 0xb, 0, 0,
                          0, 0);
        gdtr.base = o->tables_addr;
        gdtr.limit = GDT_LIMIT;
        /* No IDT: an exception becomes a triple fault, which a test sees as
         * HVC_EXIT_SHUTDOWN instead of a silent hang. */
    }
    ldtr = make_segment(0, 0, 0xffff, 0x2, 0, 0, 0, 0);
    ldtr.present = 1;
    const struct {
        hvc_reg id;
        const hvc_x86_segment *seg;
    } list[] = {
        {HVC_X86_CS, &code},   {HVC_X86_DS, &data},   {HVC_X86_ES, &data},
        {HVC_X86_FS, &data},   {HVC_X86_GS, &data},   {HVC_X86_SS, &data},
        {HVC_X86_TR, &tr},     {HVC_X86_LDTR, &ldtr}, {HVC_X86_GDTR, &gdtr},
        {HVC_X86_IDTR, &idtr},
    };
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        int r = hvc_vcpu_set_segment(vcpu, list[i].id, list[i].seg);
        if (r < 0)
            return r;
    }
    return 0;
}

int hvc_vcpu_set_mode(hvc_vcpu *vcpu, const hvc_vcpu_mode_options *opts)
{
    if (!vcpu || !opts)
        return hvi_error(-EINVAL, "hvc_vcpu_set_mode: NULL argument");
    hvc_vcpu_mode_options o;
    uint64_t map_len = 0;
    int r = read_options(vcpu->vm, opts, &o, &map_len);
    if (r < 0)
        return r;

    uint64_t size = tables_size(&o, map_len);
    if (size) {
        void *where;
        if ((r = hvc_vm_gpa_to_hva(vcpu->vm, o.tables_addr, size, &where)) < 0)
            return hvi_error(r,
                             "mode tables at 0x%" PRIx64 "+0x%" PRIx64
                             " do not fit in one memory region",
                             o.tables_addr, size);
        uint8_t *t = calloc(1, size);
        if (!t)
            return hvi_error(-ENOMEM, "out of memory building mode tables");
        fill_tables(t, &o, map_len);
        r = hvc_vm_write(vcpu->vm, o.tables_addr, t, size);
        free(t);
        if (r < 0)
            return r;
    }

    uint64_t cr0 = CR0_ET, cr4 = 0, efer = 0, cr3 = 0, rip = o.entry;
    if (o.mode == HVC_X86_MODE_REAL) {
        rip = o.entry & 0xffff; /* CS base holds the 64 KiB page */
    } else {
        cr0 |= CR0_PE | CR0_MP | CR0_NE;
        cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
        if (o.mode == HVC_X86_MODE_LONG64) {
            cr0 |= CR0_PG;
            cr4 |= CR4_PAE;
            efer = EFER_LME | EFER_LMA;
            cr3 = o.tables_addr + HVC_PAGE_SIZE;
        }
    }
    /* KVM accepts CS.L only with EFER.LMA, and EFER.LMA only with paging:
     * first a CS without L (valid in every mode), then CR0, CR4 and EFER in
     * one call (each alone would be an invalid intermediate state), then
     * the final segments. */
    hvc_x86_segment cs;
    if ((r = hvc_vcpu_get_segment(vcpu, HVC_X86_CS, &cs)) < 0)
        return r;
    cs.l = 0;
    if ((r = hvc_vcpu_set_segment(vcpu, HVC_X86_CS, &cs)) < 0)
        return r;
    const hvc_reg ids[] = {HVC_X86_CR3, HVC_X86_CR4, HVC_X86_EFER,  HVC_X86_CR0,
                           HVC_X86_RIP, HVC_X86_RSP, HVC_X86_RFLAGS};
    const uint64_t vals[] = {cr3, cr4, efer, cr0, rip, o.stack, 0x2};
    if ((r = hvc_vcpu_set_regs(vcpu, ids, vals, sizeof(ids) / sizeof(ids[0]))) <
        0)
        return r;
    if ((r = set_segments(vcpu, &o)) < 0)
        return r;
    return hvi_vcpu_set_runnable(vcpu);
}
