/* The emulator's string instructions: STOS, LODS and MOVS, with and
 * without REP, stepping rSI/rDI by the direction flag and counting rCX,
 * all at the address size. */
#include "emu_internal.h"

#include <errno.h>

/* Adds delta to an index register at the address size. */
static void step(const struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                 unsigned r, int64_t delta)
{
    uint64_t v = c->gpr[r] + (uint64_t)delta;
    struct hvi_x86_insn rex = *d;
    rex.rex = true; /* any reg_set quirk is for byte registers only */
    hvi_x86_reg_set(&rex, c, r, d->asize, v);
}

static uint64_t index_reg(const struct hvi_x86_insn *d,
                          const struct hvi_x86_cpu *c, unsigned r)
{
    return c->gpr[r] & hvi_x86_mask(d->asize);
}

/* One iteration; kind: 0 STOS, 1 LODS, 2 MOVS. */
static int once(struct hvi_x86_insn *d, struct hvi_x86_cpu *c, int kind,
                const struct hvi_x86_mem_ops *m, void *opaque,
                struct hvi_x86_emu_result *out)
{
    unsigned n = d->opsize;
    int64_t delta = (c->rflags & HVI_X86_DF) ? -(int64_t)n : (int64_t)n;
    int src_seg = d->seg_override >= 0 ? d->seg_override : HVI_X86_DS;
    uint64_t src = hvi_x86_linear(d, c, src_seg, index_reg(d, c, HVI_X86_RSI));
    uint64_t dst =
        hvi_x86_linear(d, c, HVI_X86_ES, index_reg(d, c, HVI_X86_RDI));
    uint64_t v = 0;
    int r;
    switch (kind) {
    case 0:
        out->accesses++;
        r = m->mmio_write(opaque, dst, n,
                          c->gpr[HVI_X86_RAX] & hvi_x86_mask(n));
        if (r < 0)
            return r;
        step(d, c, HVI_X86_RDI, delta);
        return 0;
    case 1:
        out->accesses++;
        if ((r = m->mmio_read(opaque, src, n, &v)) < 0)
            return r;
        hvi_x86_reg_set(d, c, HVI_X86_RAX, n, v & hvi_x86_mask(n));
        step(d, c, HVI_X86_RSI, delta);
        return 0;
    default:
        out->accesses += 2;
        r = c->fault_write ? m->mem_read(opaque, src, n, &v)
                           : m->mmio_read(opaque, src, n, &v);
        if (r < 0)
            return r;
        v &= hvi_x86_mask(n);
        r = c->fault_write ? m->mmio_write(opaque, dst, n, v)
                           : m->mem_write(opaque, dst, n, v);
        if (r < 0)
            return r;
        step(d, c, HVI_X86_RSI, delta);
        step(d, c, HVI_X86_RDI, delta);
        return 0;
    }
}

int hvi_x86_exec_string(struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                        const struct hvi_x86_mem_ops *m, void *opaque,
                        struct hvi_x86_emu_result *out)
{
    int kind;
    if (d->two_byte)
        return 0;
    switch (d->opcode) {
    case 0xa4:
    case 0xa5: kind = 2; break;
    case 0xaa:
    case 0xab: kind = 0; break;
    case 0xac:
    case 0xad: kind = 1; break;
    default: return 0;
    }
    if (d->lock)
        return hvi_x86_bad(d, -EINVAL, "LOCK on an instruction without it");
    d->opsize = (d->opcode & 1) ? d->osize : 1;
    if (!d->rep) {
        int r = once(d, c, kind, m, opaque, out);
        return r < 0 ? r : 1;
    }
    /* A 32-bit address size in 64-bit mode writes rCX and the index
     * registers as 32-bit registers even when the count is 0, clearing
     * their upper halves (seen on the CPU; test_x86_emulate checks it). */
    if (d->mode == 64 && d->asize == 4) {
        step(d, c, HVI_X86_RCX, 0);
        if (kind != 0)
            step(d, c, HVI_X86_RSI, 0);
        if (kind != 1)
            step(d, c, HVI_X86_RDI, 0);
    }
    uint64_t amask = hvi_x86_mask(d->asize);
    uint64_t count = c->gpr[HVI_X86_RCX] & amask;
    for (unsigned i = 0; count && i < HVI_X86_REP_BATCH; i++) {
        int r = once(d, c, kind, m, opaque, out);
        if (r < 0) {
            d->partial = i > 0;
            return r;
        }
        count--;
        step(d, c, HVI_X86_RCX, -1);
    }
    out->complete = count == 0;
    return 1;
}
