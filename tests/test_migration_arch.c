/* Stream format 2: the vCPU and interrupt-controller state a stream holds
 * is architectural (src/arch/x86/arch_state.h, docs/MIGRATION.md), read
 * here from the bytes of a saved stream; a format-1 stream is refused
 * naming both versions; and a stream whose header names another backend
 * restores on KVM and the guest goes on counting. */
#include "migtest.h"

#include "../src/arch/x86/arch_state.h"

#include <hvcore/sys/backend.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR 80
#define SEC_HDR 24
#define SEC_VCPU 3
#define SEC_IRQCHIP 4

TestSuite(migration_arch, .timeout = 120);

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The payload of section @p id, instance @p inst (asserts it is there). */
static const uint8_t *section(const uint8_t *s, size_t len, uint16_t id,
                              uint32_t inst, size_t *plen)
{
    for (size_t at = HDR; at + SEC_HDR <= len;) {
        uint16_t sid;
        memcpy(&sid, s + at, 2);
        uint64_t n = get64(s + at + 8);
        if (sid == id && get32(s + at + 16) == inst) {
            *plen = n;
            return s + at + SEC_HDR;
        }
        if (sid == 0xffff)
            break;
        at += SEC_HDR + n;
    }
    cr_assert_fail("no section %u instance %u in the stream", id, inst);
    return NULL;
}

/* The field tagged @p tag of a record (u16 tag, u16 kind, u32 length,
 * data padded to 8), copied into a malloc'd, aligned buffer. */
static void *field(const uint8_t *p, size_t len, uint16_t tag, size_t *flen)
{
    for (size_t o = 0; o + 8 <= len;) {
        uint16_t t;
        memcpy(&t, p + o, 2);
        uint32_t n = get32(p + o + 4);
        cr_assert_leq(o + 8 + n, len, "field %u runs past the record", t);
        if (t == tag) {
            void *b = malloc(n ? n : 1);
            cr_assert_not_null(b);
            memcpy(b, p + o + 8, n);
            *flen = n;
            return b;
        }
        o += 8 + ((n + 7u) & ~7u);
    }
    cr_assert_fail("no field %u in the record", tag);
    return NULL;
}

static void header_ok(const struct hvi_x86_state_hdr *h, size_t flen,
                      const char *what)
{
    cr_assert_eq(h->version, HVI_X86_STATE_VERSION, "%s version %u", what,
                 h->version);
    cr_assert_eq(h->size, flen, "%s size field %u, field of %zu", what, h->size,
                 flen);
}

static uint64_t reg(hvc_vcpu *v, hvc_reg id)
{
    uint64_t val;
    HVT_OK(hvc_vcpu_get_regs(v, &id, &val, 1));
    return val;
}

/* Register @p id of vCPU @p i of @p r, here or in a remote destination. */
static uint64_t rreg(migt *r, uint32_t i, hvc_reg id)
{
    uint64_t val = 0;
    int e = migt_reg(r, i, id, &val);
    cr_assert_eq(e, 0, "vCPU %u register %u: %s", i, (unsigned)id,
                 migt_last_error());
    return val;
}

Test(migration_arch, vcpu_and_irqchip_records_are_architectural)
{
    migt m;
    migt_open(&m, 2, NULL);
    cr_assert_eq(migt_run_until(&m, 2), 0);
    /* Values the test sets, and the ones the guest has. */
    const uint64_t r15 = 0x1122334455667788ull, r8 = 0xa5a5a5a5deadbeefull;
    const uint64_t dr0 = 0x4000;
    hvc_reg ids[] = {HVC_X86_R15, HVC_X86_R8, HVC_X86_DR0};
    uint64_t vals[] = {r15, r8, dr0};
    HVT_OK(hvc_vcpu_set_regs(m.vcpu[0], ids, vals, 3));
    uint64_t rip = reg(m.vcpu[0], HVC_X86_RIP),
             rsp = reg(m.vcpu[0], HVC_X86_RSP),
             cr3 = reg(m.vcpu[0], HVC_X86_CR3),
             efer = reg(m.vcpu[0], HVC_X86_EFER);
    hvc_x86_segment cs;
    HVT_OK(hvc_vcpu_get_segment(m.vcpu[0], HVC_X86_CS, &cs));
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    cr_assert_eq(get32(s + 8) & 0xffff, HVC_STREAM_FORMAT_MAJOR);

    for (uint32_t cpu = 0; cpu < 2; cpu++) {
        size_t plen, n;
        const uint8_t *p = section(s, len, SEC_VCPU, cpu, &plen);

        struct hvi_x86_regs *g = field(p, plen, HVC_BACKEND_VCPU_ARCH_REGS, &n);
        header_ok(&g->hdr, n, "REGS");
        cr_assert_eq(n, sizeof(*g));
        cr_assert_eq(g->count, HVI_X86_NR_GPRS);
        for (uint32_t i = 0; i < HVI_X86_NR_GPRS; i++)
            cr_assert_eq(g->regs[i].id, HVC_X86_RAX + i, "entry %u id", i);
        if (cpu == 0) {
            cr_assert_eq(g->regs[HVC_X86_R15].value, r15);
            cr_assert_eq(g->regs[HVC_X86_R8].value, r8);
            cr_assert_eq(g->regs[HVC_X86_RIP].value, rip,
                         "saved RIP 0x%llx, read 0x%llx before the save",
                         (unsigned long long)g->regs[HVC_X86_RIP].value,
                         (unsigned long long)rip);
            cr_assert_eq(g->regs[HVC_X86_RSP].value, rsp);
        }
        cr_assert(g->regs[HVC_X86_RFLAGS].value & 2, "RFLAGS bit 1");
        free(g);

        struct hvi_x86_sregs *sr =
            field(p, plen, HVC_BACKEND_VCPU_ARCH_SREGS, &n);
        header_ok(&sr->hdr, n, "SREGS");
        cr_assert_eq(sr->nr_segments, HVI_X86_NR_SEGMENTS);
        for (uint32_t i = 0; i < HVI_X86_NR_SEGMENTS; i++)
            cr_assert_eq(sr->segments[i].id, HVC_X86_CS + i);
        if (cpu == 0) {
            cr_assert_eq(sr->cr3, cr3, "CR3 0x%lx, set 0x%lx",
                         (unsigned long)sr->cr3, (unsigned long)cr3);
            cr_assert_eq(sr->efer, efer);
            cr_assert_eq(sr->dr0, dr0);
            /* CS in VMX access-rights form: 64-bit code, present, S. */
            uint32_t ar = sr->segments[0].ar;
            cr_assert_eq(sr->segments[0].selector, cs.selector);
            cr_assert_eq(ar & HVI_X86_AR_TYPE, cs.type);
            cr_assert(ar & HVI_X86_AR_P && ar & HVI_X86_AR_S &&
                          ar & HVI_X86_AR_L,
                      "CS access rights 0x%x", ar);
        }
        cr_assert(sr->cr0 & 1, "CR0.PE");
        cr_assert(sr->efer & 0x400, "EFER.LMA");
        free(sr);

        struct hvi_x86_lapic *l =
            field(p, plen, HVC_BACKEND_VCPU_ARCH_LAPIC, &n);
        header_ok(&l->hdr, n, "LAPIC");
        cr_assert_eq(n, sizeof(*l));
        cr_assert_eq(l->apic_base & ~0xfffull, 0xfee00000ull);
        cr_assert(l->apic_base & HVI_X86_APIC_BASE_ENABLE);
        cr_assert_eq(!!(l->apic_base & HVI_X86_APIC_BASE_BSP), cpu == 0);
        /* xAPIC mode: the ID in bits 31:24 of the register at 0x20. */
        cr_assert_eq(get32(l->regs + HVI_X86_LAPIC_ID), cpu << 24,
                     "vCPU %u APIC ID register 0x%x", cpu,
                     get32(l->regs + HVI_X86_LAPIC_ID));
        uint32_t ver = get32(l->regs + HVI_X86_LAPIC_VERSION);
        cr_assert((ver & 0xff) >= 0x10 && (ver & 0xff) <= 0x15,
                  "APIC version register 0x%x", ver);
        free(l);

        struct hvi_x86_xsave *x =
            field(p, plen, HVC_BACKEND_VCPU_ARCH_XSAVE, &n);
        header_ok(&x->hdr, n, "XSAVE");
        cr_assert_eq(n, sizeof(*x) + x->xsave_size);
        cr_assert_geq(x->xsave_size, HVI_X86_XSAVE_MIN);
        cr_assert(x->xcr0 & 1, "XCR0 0x%lx", (unsigned long)x->xcr0);
        /* The standard format: x87 control word and MXCSR where the
         * legacy region has them, the XSAVE header at 512 with XCOMP_BV
         * zero and XSTATE_BV within what XCR0 may enable. */
        uint16_t fcw;
        memcpy(&fcw, x->area, 2);
        cr_assert_eq(fcw, 0x37f, "FCW 0x%x", fcw);
        cr_assert_eq(get32(x->area + 24) & 0xffc0, 0x1f80 & 0xffc0,
                     "MXCSR 0x%x", get32(x->area + 24));
        cr_assert_eq(get64(x->area + HVI_X86_XCOMP_BV_OFFSET), 0);
        uint64_t bv = get64(x->area + HVI_X86_XSTATE_BV_OFFSET);
        cr_assert_eq(bv & ~0x2ffull, 0, "XSTATE_BV 0x%lx", (unsigned long)bv);
        free(x);

        struct hvi_x86_events *ev =
            field(p, plen, HVC_BACKEND_VCPU_ARCH_EVENTS, &n);
        header_ok(&ev->hdr, n, "EVENTS");
        cr_assert_leq(ev->activity, HVI_X86_ACT_MAX);
        free(ev);

        struct hvi_x86_msrs *ms =
            field(p, plen, HVC_BACKEND_VCPU_ARCH_MSRS, &n);
        header_ok(&ms->hdr, n, "MSRS");
        cr_assert_eq(n, sizeof(*ms) + ms->count * sizeof(ms->entries[0]));
        bool star = false;
        for (uint32_t i = 0; i < ms->count; i++) {
            cr_assert(i == 0 ||
                      ms->entries[i].index > ms->entries[i - 1].index);
            cr_assert_neq(ms->entries[i].index, 0x10, "IA32_TSC listed");
            star |= ms->entries[i].index == 0xc0000081u; /* IA32_STAR */
        }
        cr_assert(star, "no IA32_STAR among %u MSRs", ms->count);
        free(ms);

        struct hvi_x86_cpuid *c =
            field(p, plen, HVC_BACKEND_VCPU_ARCH_CPUID, &n);
        header_ok(&c->hdr, n, "CPUID");
        bool leaf0 = false;
        for (uint32_t i = 0; i < c->count; i++)
            if (c->entries[i].function == 0)
                leaf0 = c->entries[i].eax > 0;
        cr_assert(leaf0, "no CPUID leaf 0");
        free(c);
    }

    size_t plen, n;
    const uint8_t *p = section(s, len, SEC_IRQCHIP, 0, &plen);
    struct hvi_x86_ioapic *io = field(p, plen, HVC_BACKEND_VM_ARCH_IOAPIC, &n);
    header_ok(&io->hdr, n, "IOAPIC");
    cr_assert_eq(io->base_address, 0xfec00000ull);
    cr_assert_leq(io->id, 15);
    free(io);
    for (uint16_t k = HVC_BACKEND_VM_ARCH_PIC_MASTER;
         k <= HVC_BACKEND_VM_ARCH_PIC_SLAVE; k++) {
        struct hvi_x86_pic *pic = field(p, plen, k, &n);
        header_ok(&pic->hdr, n, "PIC");
        cr_assert_leq(pic->init_state, HVI_X86_PIC_ICW4);
        free(pic);
    }
    struct hvi_x86_pit *pit = field(p, plen, HVC_BACKEND_VM_ARCH_PIT, &n);
    header_ok(&pit->hdr, n, "PIT");
    for (int i = 0; i < 3; i++)
        cr_assert(pit->channels[i].count >= 1 &&
                      pit->channels[i].count <= 0x10000,
                  "PIT channel %d count 0x%x", i, pit->channels[i].count);
    free(pit);

    /* And it restores: the registers the test set are back. */
    migt r;
    MIGT_OK(migt_restore_mem(&r, s, len, NULL, NULL));
    cr_assert_eq(rreg(&r, 0, HVC_X86_R15), r15);
    cr_assert_eq(rreg(&r, 0, HVC_X86_RIP), rip);
    cr_assert_eq(rreg(&r, 0, HVC_X86_CR3), cr3);
    cr_assert_eq(rreg(&r, 0, HVC_X86_DR0), dr0);
    migt_close(&r);
    free(s);
    migt_close(&m);
}

/* A format-1 stream (KVM's structs) is refused, the message naming its
 * version and the ones this library reads. */
Test(migration_arch, an_old_format_stream_is_refused)
{
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 1), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    uint16_t v1[2] = {1, 1};
    memcpy(s + 8, v1, 4);
    uint32_t crc = migt_crc32c(0, s, 76);
    memcpy(s + 76, &crc, 4);
    hvc_vm *vm = NULL;
    MIGT_ERR(migt_restore_mem_vm(m.hv, s, len, NULL, NULL, &vm), -EPROTO);
    cr_assert_null(vm);
    const char *msg = migt_last_error();
    char want[32];
    snprintf(want, sizeof(want), "%u.0", HVC_STREAM_FORMAT_MAJOR);
    cr_assert(strstr(msg, "format 1.1") && strstr(msg, want), "%s", msg);
    free(s);
    migt_close(&m);
}

/* The backend name is information: a stream that says it was written
 * under another backend (header CRC made good) restores here, and the
 * guest goes on counting from where it was. */
Test(migration_arch, a_stream_of_another_backend_restores)
{
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 3), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    /* the stream names the backend that wrote it; it is made to name
     * another one */
    cr_assert_str_eq((const char *)s + 32, hvt_backend());
    const char *other = strcmp(hvt_backend(), "hvf") ? "hvf" : "kvm";
    memset(s + 32, 0, 8);
    memcpy(s + 32, other, 3);
    uint32_t crc = migt_crc32c(0, s, 76);
    memcpy(s + 76, &crc, 4);
    migt r;
    MIGT_OK(migt_restore_mem(&r, s, len, NULL, NULL));
    cr_assert_eq(migt_run_until(&r, 6), 0);
    cr_assert_eq(migt_check(&r, 6), 0);
    migt_assert_console(&r, 4, 6);
    migt_close(&r);
    free(s);
    migt_close(&m);
}

/* Where a field's data starts in a record, or 0 (asserts it is there). */
static size_t field_at(const uint8_t *p, size_t len, uint16_t tag)
{
    for (size_t o = 0; o + 8 <= len;) {
        uint16_t t;
        memcpy(&t, p + o, 2);
        uint32_t n = get32(p + o + 4);
        if (t == tag)
            return o + 8;
        o += 8 + ((n + 7u) & ~7u);
    }
    cr_assert_fail("no field %u in the record", tag);
    return 0;
}

/* One architectural field made hostile in a saved stream (section CRC made
 * good): the restore refuses it, hands out no VM, and the message names
 * the field and its value. */
Test(migration_arch, hostile_fields_are_refused_by_name)
{
    static const struct {
        uint16_t sec, tag;
        long off; /* from the blob; -4: the field's length */
        unsigned width;
        uint64_t value;
        const char *want;
    } cases[] = {
        {SEC_VCPU, 10, 0, 4, 7, "REGS state: layout version 7"},
        {SEC_VCPU, 10, 4, 4, 300, "REGS state: size field 300"},
        {SEC_VCPU, 10, -4, 4, 4, "REGS state: 4 bytes, its layout has 304"},
        {SEC_VCPU, 10, 16 + 3 * 16, 8, 0x99, "register id 0x99"},
        {SEC_VCPU, 10, 16 + 17 * 16 + 8, 8, 0, "RFLAGS 0x0 is invalid"},
        {SEC_VCPU, 11, 16 + 24, 4, 0xfffff0ffu,
         "access rights 0xfffff0ff have reserved bits"},
        {SEC_VCPU, 11, 16 + 320 + 4 * 8, 8, 0x10, "CR8 0x10 is invalid"},
        {SEC_VCPU, 11, 16 + 320 + 12 * 8, 8, 1ull << 32,
         "DR7 0x100000000 is invalid"},
        {SEC_VCPU, 12, 16 + 4, 4, 5, "reserved field 0x5 is not zero"},
        {SEC_VCPU, 13, 16, 4, 100, "area size 0x64 is invalid"},
        {SEC_VCPU, 13, 24 + 520, 8, 0x8000000000000003ull,
         "XCOMP_BV 0x8000000000000003"},
        {SEC_VCPU, 14, 8, 4, 9, "activity state 0x9 is invalid"},
        {SEC_VCPU, 14, 19, 1, 7, "pending NMI count 0x7 is invalid"},
        {SEC_VCPU, 15, 8, 8, 0xfee00901ull, "IA32_APIC_BASE 0xfee00901"},
        {SEC_VCPU, 16, 8, 4, 5000, "CPUID state: count 0x1388 is invalid"},
        {SEC_IRQCHIP, 68, 8 + 9, 1, 4, "init_state 0x4 is invalid"},
        {SEC_IRQCHIP, 70, 16, 4, 16, "IOAPIC state: ID 0x10 is invalid"},
        {SEC_IRQCHIP, 71, 16 + 13, 1, 9, "channel 0 mode 0x9 is invalid"},
    };
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 1), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    uint8_t *c = malloc(len);
    cr_assert_not_null(c);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(c, s, len);
        size_t plen;
        uint8_t *p = (uint8_t *)section(c, len, cases[i].sec, 0, &plen);
        size_t at =
            (size_t)((long)field_at(p, plen, cases[i].tag) + cases[i].off);
        memcpy(p + at, &cases[i].value, cases[i].width);
        uint8_t *h = p - SEC_HDR;
        uint32_t crc = migt_crc32c(migt_crc32c(0, h, 20), p, plen);
        memcpy(h + 20, &crc, 4);
        hvc_vm *vm = NULL;
        int r = migt_restore_mem_vm(m.hv, c, len, NULL, NULL, &vm);
        cr_assert_lt(r, 0, "case %zu (%s) accepted", i, cases[i].want);
        cr_assert_null(vm);
        cr_assert(strstr(migt_last_error(), cases[i].want),
                  "case %zu: want \"%s\" in \"%s\"", i, cases[i].want,
                  migt_last_error());
    }
    /* The untouched stream restores. */
    migt r;
    MIGT_OK(migt_restore_mem(&r, s, len, NULL, NULL));
    cr_assert_eq(migt_run_until(&r, 2), 0);
    migt_close(&r);
    free(c);
    free(s);
    migt_close(&m);
}

/* Compares field @p tag of two records, the first @p n bytes (all when
 * 0); names the first byte that differs. */
static void same_field(const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen, uint16_t tag, size_t n, const char *what)
{
    size_t na, nb;
    uint8_t *x = field(a, alen, tag, &na), *y = field(b, blen, tag, &nb);
    cr_assert_eq(na, nb, "%s: %zu bytes, then %zu", what, na, nb);
    size_t upto = n ? n : na;
    for (size_t i = 0; i < upto; i++)
        cr_assert_eq(x[i], y[i], "%s: byte %zu 0x%02x, then 0x%02x", what, i,
                     x[i], y[i]);
    free(x);
    free(y);
}

/* KVM -> architectural -> KVM -> architectural loses nothing: a restored
 * VM, saved before it runs, gives the same records (the PIT's elapsed
 * times and the LAPIC timer's current count aside: they are read at the
 * save). With vCPU 1 in x2APIC mode, whose LAPIC ID register then holds
 * the 32-bit x2APIC ID. */
Test(migration_arch, records_survive_a_round_trip)
{
    migt m;
    migt_open(&m, 2, NULL);
    cr_assert_eq(migt_run_until(&m, 2), 0);
    hvc_reg id = HVC_X86_APIC_BASE;
    uint64_t base = reg(m.vcpu[1], id) | HVI_X86_APIC_BASE_X2APIC;
    HVT_OK(hvc_vcpu_set_regs(m.vcpu[1], &id, &base, 1));
    size_t len, len2, n;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    migt r;
    MIGT_OK(migt_restore_mem(&r, s, len, NULL, NULL));
    cr_assert_eq(rreg(&r, 1, HVC_X86_APIC_BASE), base);
    uint8_t *s2 = migt_save_mem(&r, NULL, NULL, &len2);
    for (uint32_t cpu = 0; cpu < 2; cpu++) {
        size_t pa, pb;
        const uint8_t *a = section(s, len, SEC_VCPU, cpu, &pa);
        const uint8_t *b = section(s2, len2, SEC_VCPU, cpu, &pb);
        same_field(a, pa, b, pb, HVC_BACKEND_VCPU_ARCH_REGS, 0, "REGS");
        same_field(a, pa, b, pb, HVC_BACKEND_VCPU_ARCH_SREGS, 0, "SREGS");
        same_field(a, pa, b, pb, HVC_BACKEND_VCPU_ARCH_XSAVE, 0, "XSAVE");
        same_field(a, pa, b, pb, HVC_BACKEND_VCPU_ARCH_MSRS, 0, "MSRS");
        same_field(a, pa, b, pb, HVC_BACKEND_VCPU_ARCH_EVENTS, 0, "EVENTS");
        same_field(a, pa, b, pb, HVC_BACKEND_VCPU_ARCH_CPUID, 0, "CPUID");
        same_field(a, pa, b, pb, HVC_BACKEND_VCPU_ARCH_LAPIC,
                   16 + HVI_X86_LAPIC_TIMER_CCR, "LAPIC");
        struct hvi_x86_lapic *l = field(a, pa, HVC_BACKEND_VCPU_ARCH_LAPIC, &n);
        if (cpu == 1) {
            cr_assert(l->apic_base & HVI_X86_APIC_BASE_X2APIC);
            cr_assert_eq(get32(l->regs + HVI_X86_LAPIC_ID), 1,
                         "x2APIC ID register 0x%x",
                         get32(l->regs + HVI_X86_LAPIC_ID));
        }
        free(l);
    }
    size_t pa, pb;
    const uint8_t *a = section(s, len, SEC_IRQCHIP, 0, &pa);
    const uint8_t *b = section(s2, len2, SEC_IRQCHIP, 0, &pb);
    same_field(a, pa, b, pb, HVC_BACKEND_VM_ARCH_PIC_MASTER, 0, "PIC master");
    same_field(a, pa, b, pb, HVC_BACKEND_VM_ARCH_PIC_SLAVE, 0, "PIC slave");
    same_field(a, pa, b, pb, HVC_BACKEND_VM_ARCH_IOAPIC, 0, "IOAPIC");
    struct hvi_x86_pit *p1 = field(a, pa, HVC_BACKEND_VM_ARCH_PIT, &n),
                       *p2 = field(b, pb, HVC_BACKEND_VM_ARCH_PIT, &n);
    cr_assert_eq(p1->flags, p2->flags);
    for (int i = 0; i < 3; i++) {
        p1->channels[i].elapsed_ns = p2->channels[i].elapsed_ns = 0;
        cr_assert_eq(
            memcmp(&p1->channels[i], &p2->channels[i], sizeof(p1->channels[i])),
            0, "PIT channel %d", i);
    }
    free(p1);
    free(p2);
    /* And the restored guest counts on. */
    cr_assert_eq(migt_run_until(&r, 4), 0);
    cr_assert_eq(migt_check(&r, 4), 0);
    migt_close(&r);
    free(s2);
    free(s);
    migt_close(&m);
}

static bool has_section(const uint8_t *s, size_t len, uint16_t id)
{
    for (size_t at = HDR; at + SEC_HDR <= len;) {
        uint16_t sid;
        memcpy(&sid, s + at, 2);
        if (sid == id)
            return true;
        if (sid == 0xffff)
            break;
        at += SEC_HDR + get64(s + at + 8);
    }
    return false;
}

static bool has_field(const uint8_t *p, size_t len, uint16_t tag)
{
    for (size_t o = 0; o + 8 <= len;) {
        uint16_t t;
        memcpy(&t, p + o, 2);
        if (t == tag)
            return true;
        o += 8 + ((get32(p + o + 4) + 7u) & ~7u);
    }
    return false;
}

/* Without an in-kernel irqchip: no LAPIC record and no IRQCHIP section;
 * a vCPU saved after its HLT exit goes on after the HLT when restored. */
Test(migration_arch, a_vm_without_irqchip)
{
    hvt t;
    hvt_open(&t, HVC_VM_NO_IRQCHIP);
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    HVT_OK(hvc_serial_create(t.vm, &so, NULL));
    hvt_load(t.vm, "hlt64");
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(v, &e));
    cr_assert_eq(e->reason, HVC_EXIT_HLT);
    uint64_t rip = hvt_reg(v, HVC_X86_RIP);
    migt m = {.hv = t.hv, .vm = t.vm};
    size_t len, plen, n;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    cr_assert(!has_section(s, len, SEC_IRQCHIP));
    const uint8_t *p = section(s, len, SEC_VCPU, 0, &plen);
    cr_assert(!has_field(p, plen, HVC_BACKEND_VCPU_ARCH_LAPIC));
    struct hvi_x86_regs *g = field(p, plen, HVC_BACKEND_VCPU_ARCH_REGS, &n);
    cr_assert_eq(g->regs[HVC_X86_RIP].value, rip);
    free(g);
    struct hvi_x86_events *ev =
        field(p, plen, HVC_BACKEND_VCPU_ARCH_EVENTS, &n);
    cr_assert_eq(ev->activity, HVI_X86_ACT_ACTIVE);
    free(ev);
    /* the source goes first: a backend may allow one VM per process */
    hvt_close(&t);
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv));
    hvc_vm *vm = NULL;
    HVT_OK(migt_restore_mem_vm(hv, s, len, NULL, NULL, &vm));
    hvc_vcpu *v2;
    HVT_OK(hvc_vm_get_vcpu(vm, 0, &v2));
    cr_assert_eq(hvt_reg(v2, HVC_X86_RIP), rip);
    cr_assert_eq(hvt_run_done(v2), 0x48);
    HVT_OK(hvc_vm_destroy(vm));
    free(s);
    HVT_OK(hvc_hypervisor_close(hv));
}

/* On the library's interrupt controllers, IA32_APIC_BASE set through
 * hvc_vcpu_set_regs() is the LAPIC's: its record says x2APIC (with the
 * x2APIC ID), and a value the LAPIC refuses changes nothing. */
Test(migration_arch, apic_base_from_the_api_reaches_the_userspace_lapic)
{
    hvt t;
    hvt_open(&t, HVC_VM_USER_IRQCHIP);
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    HVT_OK(hvc_serial_create(t.vm, &so, NULL));
    hvt_load(t.vm, "counter64");
    hvc_vcpu *v[2];
    for (uint32_t i = 0; i < 2; i++)
        v[i] = hvt_vcpu(t.vm, i, HVC_X86_MODE_LONG64, 0);
    uint64_t old = hvt_reg(v[1], HVC_X86_APIC_BASE);
    cr_assert(old & HVI_X86_APIC_BASE_ENABLE, "0x%llx",
              (unsigned long long)old);
    /* x2APIC without the enable bit: refused, nothing changed */
    hvc_reg id = HVC_X86_APIC_BASE;
    uint64_t bad = (old & ~HVI_X86_APIC_BASE_ENABLE) | HVI_X86_APIC_BASE_X2APIC;
    HVT_ERR(hvc_vcpu_set_regs(v[1], &id, &bad, 1), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "IA32_APIC_BASE"), "%s",
              hvc_last_error());
    cr_assert_eq(hvt_reg(v[1], HVC_X86_APIC_BASE), old);
    uint64_t x2 = old | HVI_X86_APIC_BASE_X2APIC;
    HVT_OK(hvc_vcpu_set_regs(v[1], &id, &x2, 1));
    cr_assert_eq(hvt_reg(v[1], HVC_X86_APIC_BASE), x2);
    migt m = {.hv = t.hv, .vm = t.vm};
    size_t len, plen, n;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    for (uint32_t cpu = 0; cpu < 2; cpu++) {
        const uint8_t *p = section(s, len, SEC_VCPU, cpu, &plen);
        struct hvi_x86_lapic *l =
            field(p, plen, HVC_BACKEND_VCPU_ARCH_LAPIC, &n);
        cr_assert_eq(l->apic_base, cpu ? x2 : hvt_reg(v[0], id),
                     "vCPU %u: LAPIC record 0x%llx", cpu,
                     (unsigned long long)l->apic_base);
        if (cpu == 1)
            cr_assert_eq(get32(l->regs + HVI_X86_LAPIC_ID), 1,
                         "x2APIC ID register 0x%x",
                         get32(l->regs + HVI_X86_LAPIC_ID));
        free(l);
    }
    free(s);
    hvt_close(&t);
}
