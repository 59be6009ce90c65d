/* Checks of the architectural state layouts (arch_state.h) that do not
 * depend on the backend: a blob from a stream is hostile, and every field
 * a backend would hand on is bounded here first, named with its value
 * when refused. What only the accelerator can judge (an MSR it cannot
 * set, a CR0/CR4/EFER combination) is the backend's to name. */
#include "arch_state.h"

#include "../../core/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define BAD(what, field, value)                                                \
    hvi_error(-EINVAL, "%s state: %s 0x%" PRIx64 " is invalid", what, field,   \
              (uint64_t)(value))

/* RFLAGS: bit 1 reads as one; 3, 5, 15 and 22..63 are reserved. */
#define RFLAGS_FIXED1 0x2ull
#define RFLAGS_RESERVED (~0x3fffffull | 1ull << 3 | 1ull << 5 | 1ull << 15)

/* The header: a known version, and a size that is @p length and what the
 * layout gives (@p want). */
static int check_hdr(const char *what, const struct hvi_x86_state_hdr *h,
                     size_t length, size_t want)
{
    /* The length first: a short blob's header is not read. */
    if (length != want)
        return hvi_error(-EINVAL, "%s state: %zu bytes, its layout has %zu",
                         what, length, want);
    if (h->version != HVI_X86_STATE_VERSION)
        return hvi_error(-EINVAL,
                         "%s state: layout version %" PRIu32
                         "; this library reads %u",
                         what, h->version, HVI_X86_STATE_VERSION);
    if (h->size != length)
        return hvi_error(-EINVAL,
                         "%s state: size field %" PRIu32 ", blob of %zu bytes",
                         what, h->size, length);
    return 0;
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n--)
        if (*b++)
            return false;
    return true;
}

/* The fixed part and a count bounded before the size is computed. */
static int check_counted(const char *what, const struct hvi_x86_state_hdr *h,
                         size_t length, size_t fixed, uint32_t count,
                         uint32_t max, size_t entry)
{
    if (length < fixed)
        return hvi_error(-EINVAL,
                         "%s state: %zu bytes, less than its %zu-byte "
                         "header",
                         what, length, fixed);
    if (count > max)
        return BAD(what, "count", count);
    return check_hdr(what, h, length, fixed + (size_t)count * entry);
}

int hvi_x86_check_regs(const struct hvi_x86_regs *r, size_t length)
{
    const char *what = "REGS";
    int e = check_hdr(what, &r->hdr, length, sizeof(*r));
    if (e < 0)
        return e;
    if (r->count != HVI_X86_NR_GPRS)
        return BAD(what, "count", r->count);
    if (r->reserved)
        return BAD(what, "reserved field", r->reserved);
    for (uint32_t i = 0; i < HVI_X86_NR_GPRS; i++)
        if (r->regs[i].id != HVC_X86_RAX + i)
            return hvi_error(-EINVAL,
                             "REGS state: entry %u has register id 0x%" PRIx64
                             ", not 0x%x",
                             i, r->regs[i].id, HVC_X86_RAX + i);
    uint64_t rflags = r->regs[HVC_X86_RFLAGS - HVC_X86_RAX].value;
    if ((rflags & RFLAGS_RESERVED) || !(rflags & RFLAGS_FIXED1))
        return BAD(what, "RFLAGS", rflags);
    return 0;
}

int hvi_x86_check_sregs(const struct hvi_x86_sregs *s, size_t length)
{
    const char *what = "SREGS";
    int e = check_hdr(what, &s->hdr, length, sizeof(*s));
    if (e < 0)
        return e;
    if (s->nr_segments != HVI_X86_NR_SEGMENTS)
        return BAD(what, "segment count", s->nr_segments);
    if (s->reserved)
        return BAD(what, "reserved field", s->reserved);
    for (uint32_t i = 0; i < HVI_X86_NR_SEGMENTS; i++) {
        const struct hvi_x86_segment *g = &s->segments[i];
        bool dtr = HVC_X86_CS + i >= HVC_X86_GDTR;
        if (g->id != HVC_X86_CS + i)
            return hvi_error(
                -EINVAL,
                "SREGS state: segment %u has register id 0x%" PRIx64
                ", not 0x%x",
                i, g->id, HVC_X86_CS + i);
        if (g->reserved0 || g->reserved1)
            return hvi_error(-EINVAL,
                             "SREGS state: segment 0x%" PRIx64
                             " reserved fields 0x%x 0x%x are not zero",
                             g->id, g->reserved0, g->reserved1);
        if (g->ar & HVI_X86_AR_RESERVED)
            return hvi_error(-EINVAL,
                             "SREGS state: segment 0x%" PRIx64
                             " access rights 0x%x have reserved bits set",
                             g->id, g->ar);
        if (dtr && (g->selector || g->ar || g->limit > 0xffff))
            return hvi_error(-EINVAL,
                             "SREGS state: descriptor table 0x%" PRIx64
                             " has selector 0x%x, access rights 0x%x, limit "
                             "0x%x (want 0, 0, at most 0xffff)",
                             g->id, g->selector, g->ar, g->limit);
    }
    if (s->cr8 > 0xf)
        return BAD(what, "CR8", s->cr8);
    if (s->dr6 >> 32)
        return BAD(what, "DR6", s->dr6);
    if (s->dr7 >> 32)
        return BAD(what, "DR7", s->dr7);
    return 0;
}

/* Carried by other records (arch_state.h). */
static bool msr_elsewhere(uint32_t index)
{
    return index == 0x10 || index == 0x3b || index == 0x6e0 || index == 0x1b ||
           index == 0xc0000080u;
}

int hvi_x86_check_msrs(const struct hvi_x86_msrs *m, size_t length)
{
    const char *what = "MSRS";
    int e = check_counted(what, &m->hdr, length, sizeof(*m),
                          length >= sizeof(*m) ? m->count : 0, HVI_X86_MAX_MSRS,
                          sizeof(m->entries[0]));
    if (e < 0)
        return e;
    if (m->reserved)
        return BAD(what, "reserved field", m->reserved);
    for (uint32_t i = 0; i < m->count; i++) {
        const struct hvi_x86_msr *x = &m->entries[i];
        if (x->reserved)
            return hvi_error(-EINVAL,
                             "MSRS state: MSR 0x%x reserved field 0x%x is not "
                             "zero",
                             x->index, x->reserved);
        if (msr_elsewhere(x->index))
            return hvi_error(-EINVAL,
                             "MSRS state: MSR 0x%x belongs in another record "
                             "(TSC, control registers or LAPIC), not here",
                             x->index);
        if (i && x->index <= m->entries[i - 1].index)
            return hvi_error(-EINVAL,
                             "MSRS state: MSR 0x%x after 0x%x (entries go in "
                             "ascending index order, none twice)",
                             x->index, m->entries[i - 1].index);
    }
    return 0;
}

int hvi_x86_check_xsave(const struct hvi_x86_xsave *x, size_t length)
{
    const char *what = "XSAVE";
    if (length < sizeof(*x))
        return hvi_error(-EINVAL,
                         "XSAVE state: %zu bytes, less than its "
                         "header",
                         length);
    if (x->xsave_size < HVI_X86_XSAVE_MIN || x->xsave_size > HVI_X86_XSAVE_MAX)
        return BAD(what, "area size", x->xsave_size);
    int e = check_hdr(what, &x->hdr, length, sizeof(*x) + x->xsave_size);
    if (e < 0)
        return e;
    if (x->reserved)
        return BAD(what, "reserved field", x->reserved);
    if (!(x->xcr0 & 1))
        return BAD(what, "XCR0", x->xcr0);
    uint64_t comp;
    memcpy(&comp, x->area + HVI_X86_XCOMP_BV_OFFSET, 8);
    if (comp)
        return hvi_error(-EINVAL,
                         "XSAVE state: XCOMP_BV 0x%" PRIx64
                         " (the compacted format; the stream holds the "
                         "standard one)",
                         comp);
    if (!all_zero(x->area + HVI_X86_XCOMP_BV_OFFSET + 8,
                  HVI_X86_XSAVE_HEADER - 16))
        return hvi_error(-EINVAL, "XSAVE state: the reserved bytes 528-575 of "
                                  "the XSAVE header are not zero");
    return 0;
}

int hvi_x86_check_events(const struct hvi_x86_events *ev, size_t length)
{
    const char *what = "EVENTS";
    int e = check_hdr(what, &ev->hdr, length, sizeof(*ev));
    if (e < 0)
        return e;
    if (ev->activity > HVI_X86_ACT_MAX)
        return BAD(what, "activity state", ev->activity);
    if (ev->flags & ~HVI_X86_EV_ALL)
        return BAD(what, "flags", ev->flags);
    if ((ev->flags & (HVI_X86_EV_EXC_PENDING | HVI_X86_EV_EXC_INJECTED)) &&
        (ev->exception_vector > 31 || ev->exception_vector == 2))
        return BAD(what, "exception vector", ev->exception_vector);
    if ((ev->flags & HVI_X86_EV_EXC_PENDING) &&
        (ev->flags & HVI_X86_EV_EXC_INJECTED))
        return BAD(what, "flags (an exception both pending and injected)",
                   ev->flags);
    if (ev->nmi_pending > 2)
        return BAD(what, "pending NMI count", ev->nmi_pending);
    if (ev->interrupt_shadow & ~(HVI_X86_SHADOW_STI | HVI_X86_SHADOW_MOV_SS))
        return BAD(what, "interrupt shadow", ev->interrupt_shadow);
    if (!all_zero(ev->reserved0, sizeof(ev->reserved0)) || ev->reserved1)
        return hvi_error(-EINVAL, "EVENTS state: reserved fields are not zero");
    return 0;
}

int hvi_x86_check_lapic(const struct hvi_x86_lapic *l, size_t length)
{
    const char *what = "LAPIC";
    int e = check_hdr(what, &l->hdr, length, sizeof(*l));
    if (e < 0)
        return e;
    /* Bits 7:0 but BSP, and 8 .. 11 are flags; the base is page-aligned
     * within 52 physical address bits. */
    if (l->apic_base & (0xffull | 0x200ull | ~((1ull << 52) - 1)))
        return BAD(what, "IA32_APIC_BASE", l->apic_base);
    if ((l->apic_base & HVI_X86_APIC_BASE_X2APIC) &&
        !(l->apic_base & HVI_X86_APIC_BASE_ENABLE))
        return BAD(what, "IA32_APIC_BASE (x2APIC without enable)",
                   l->apic_base);
    for (uint32_t off = 0; off < HVI_X86_LAPIC_PAGE; off += 16)
        if (!all_zero(l->regs + off + 4, 12))
            return hvi_error(-EINVAL,
                             "LAPIC state: bytes 4-15 of register 0x%03x are "
                             "not zero",
                             off);
    return 0;
}

/* Redirection entry bits 55:17 are reserved. */
#define REDIR_RESERVED 0x00fffffffffe0000ull

int hvi_x86_check_ioapic(const struct hvi_x86_ioapic *io, size_t length)
{
    const char *what = "IOAPIC";
    int e = check_hdr(what, &io->hdr, length, sizeof(*io));
    if (e < 0)
        return e;
    if ((io->base_address & 0xfff) || io->base_address >> 32)
        return BAD(what, "base address", io->base_address);
    if (io->id > 15)
        return BAD(what, "ID", io->id);
    if (io->ioregsel > 0xff)
        return BAD(what, "IOREGSEL", io->ioregsel);
    if (io->irr >> HVI_X86_IOAPIC_PINS)
        return BAD(what, "IRR", io->irr);
    if (io->reserved)
        return BAD(what, "reserved field", io->reserved);
    for (uint32_t i = 0; i < HVI_X86_IOAPIC_PINS; i++)
        if (io->redir[i] & REDIR_RESERVED)
            return hvi_error(-EINVAL,
                             "IOAPIC state: redirection entry %u 0x%016" PRIx64
                             " has reserved bits set",
                             i, io->redir[i]);
    return 0;
}

int hvi_x86_check_pic(const char *which, const struct hvi_x86_pic *p,
                      size_t length)
{
    int e = check_hdr(which, &p->hdr, length, sizeof(*p));
    if (e < 0)
        return e;
    const struct {
        const char *name;
        uint8_t value, max;
    } f[] = {
        {"priority_add", p->priority_add, 7},
        {"read_reg_select", p->read_reg_select, 1},
        {"poll", p->poll, 1},
        {"special_mask", p->special_mask, 1},
        {"init_state", p->init_state, HVI_X86_PIC_ICW4},
        {"auto_eoi", p->auto_eoi, 1},
        {"rotate_on_auto_eoi", p->rotate_on_auto_eoi, 1},
        {"special_fully_nested", p->special_fully_nested, 1},
        {"init4", p->init4, 1},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (f[i].value > f[i].max)
            return BAD(which, f[i].name, f[i].value);
    if (p->irq_base & 7)
        return BAD(which, "irq_base", p->irq_base);
    if (p->elcr & ~p->elcr_mask)
        return BAD(which, "ELCR (bits outside its mask)", p->elcr);
    return 0;
}

int hvi_x86_check_pit(const struct hvi_x86_pit *p, size_t length)
{
    const char *what = "PIT";
    int e = check_hdr(what, &p->hdr, length, sizeof(*p));
    if (e < 0)
        return e;
    if (p->flags & ~HVI_X86_PIT_FLAGS)
        return BAD(what, "flags", p->flags);
    if (p->reserved)
        return BAD(what, "reserved field", p->reserved);
    for (int i = 0; i < 3; i++) {
        const struct hvi_x86_pit_channel *c = &p->channels[i];
        const struct {
            const char *name;
            uint32_t value, max;
        } f[] = {
            {"count", c->count, 0x10000},
            {"count_latched", c->count_latched, HVI_X86_PIT_RW_WORD0},
            {"status_latched", c->status_latched, 1},
            {"read_state", c->read_state, HVI_X86_PIT_RW_WORD1},
            {"write_state", c->write_state, HVI_X86_PIT_RW_WORD1},
            {"rw_mode", c->rw_mode, HVI_X86_PIT_RW_WORD0},
            {"bcd", c->bcd, 1},
            {"gate", c->gate, 1},
        };
        for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
            if (f[k].value > f[k].max)
                return hvi_error(-EINVAL,
                                 "PIT state: channel %d %s 0x%" PRIx32
                                 " is invalid",
                                 i, f[k].name, f[k].value);
        if (c->mode > 5 && c->mode != HVI_X86_PIT_UNPROGRAMMED)
            return hvi_error(-EINVAL,
                             "PIT state: channel %d mode 0x%x is invalid", i,
                             c->mode);
        if (c->elapsed_ns >> 63)
            return hvi_error(-EINVAL,
                             "PIT state: channel %d elapsed time 0x%" PRIx64
                             " is invalid",
                             i, c->elapsed_ns);
    }
    return 0;
}

int hvi_x86_check_cpuid(const struct hvi_x86_cpuid *c, size_t length)
{
    const char *what = "CPUID";
    int e = check_counted(what, &c->hdr, length, sizeof(*c),
                          length >= sizeof(*c) ? c->count : 0,
                          HVI_X86_MAX_CPUID, sizeof(c->entries[0]));
    if (e < 0)
        return e;
    if (c->reserved)
        return BAD(what, "reserved field", c->reserved);
    for (uint32_t i = 0; i < c->count; i++) {
        const struct hvi_x86_cpuid_entry *x = &c->entries[i];
        if (x->flags & ~HVI_X86_CPUID_INDEXED || x->reserved ||
            (!(x->flags & HVI_X86_CPUID_INDEXED) && x->index))
            return hvi_error(-EINVAL,
                             "CPUID state: leaf 0x%x subleaf %u has flags "
                             "0x%x, reserved 0x%x",
                             x->function, x->index, x->flags, x->reserved);
    }
    return 0;
}
