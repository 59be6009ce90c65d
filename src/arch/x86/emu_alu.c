/* The emulator's arithmetic: ADD, OR, ADC, SBB, AND, SUB, XOR, CMP, TEST,
 * NOT, NEG, INC, DEC and the bit tests, with their flags as the CPU
 * computes them; and the opcodes that use them on a register or memory
 * operand. */
#include "emu_internal.h"

#include <errno.h>

#define CF HVI_X86_CF
#define PF HVI_X86_PF
#define AF HVI_X86_AF
#define ZF HVI_X86_ZF
#define SF HVI_X86_SF
#define OF HVI_X86_OF

static uint64_t sign_bit(unsigned size)
{
    return 1ull << (8 * size - 1);
}

/* PF, ZF and SF of a result. */
static uint64_t szp(uint64_t res, unsigned size)
{
    uint64_t f = 0;
    res &= hvi_x86_mask(size);
    if (!__builtin_parityll(res & 0xff))
        f |= PF;
    if (res == 0)
        f |= ZF;
    if (res & sign_bit(size))
        f |= SF;
    return f;
}

static void set_flags(uint64_t *rflags, uint64_t which, uint64_t f)
{
    *rflags = (*rflags & ~which) | (f & which);
}

/* a + b + carry at size; flags per ADD/ADC. */
static uint64_t add(uint64_t a, uint64_t b, unsigned carry, unsigned size,
                    uint64_t *fl)
{
    uint64_t m = hvi_x86_mask(size);
    a &= m;
    b &= m;
    uint64_t res = (a + b + carry) & m;
    uint64_t f = szp(res, size);
    if (res < a || (carry && res == a))
        f |= CF;
    if ((a ^ res) & (b ^ res) & sign_bit(size))
        f |= OF;
    if ((a ^ b ^ res) & 0x10)
        f |= AF;
    set_flags(fl, HVI_X86_ARITH_FLAGS, f);
    return res;
}

/* a - b - borrow at size; flags per SUB/SBB/CMP. */
static uint64_t sub(uint64_t a, uint64_t b, unsigned borrow, unsigned size,
                    uint64_t *fl)
{
    uint64_t m = hvi_x86_mask(size);
    a &= m;
    b &= m;
    uint64_t res = (a - b - borrow) & m;
    uint64_t f = szp(res, size);
    if (a < b || (borrow && a == b))
        f |= CF;
    if ((a ^ b) & (a ^ res) & sign_bit(size))
        f |= OF;
    if ((a ^ b ^ res) & 0x10)
        f |= AF;
    set_flags(fl, HVI_X86_ARITH_FLAGS, f);
    return res;
}

/* AND, OR, XOR, TEST: CF = OF = 0; AF is undefined and cleared, as the
 * CPUs this was checked on do. */
static uint64_t logic(uint64_t res, unsigned size, uint64_t *fl)
{
    res &= hvi_x86_mask(size);
    set_flags(fl, HVI_X86_ARITH_FLAGS, szp(res, size));
    return res;
}

uint64_t hvi_x86_alu(unsigned op, uint64_t a, uint64_t b, unsigned size,
                     uint64_t *rflags)
{
    unsigned cf = (*rflags & CF) ? 1 : 0;
    switch (op & 7) {
    case 0: return add(a, b, 0, size, rflags);
    case 1: return logic(a | b, size, rflags);
    case 2: return add(a, b, cf, size, rflags);
    case 3: return sub(a, b, cf, size, rflags);
    case 4: return logic(a & b, size, rflags);
    case 5: return sub(a, b, 0, size, rflags);
    case 6: return logic(a ^ b, size, rflags);
    default: return sub(a, b, 0, size, rflags);
    }
}

uint64_t hvi_x86_incdec(bool dec, uint64_t a, unsigned size, uint64_t *rflags)
{
    uint64_t keep = *rflags & CF;
    uint64_t res =
        dec ? sub(a, 1, 0, size, rflags) : add(a, 1, 0, size, rflags);
    *rflags = (*rflags & ~(uint64_t)CF) | keep;
    return res;
}

uint64_t hvi_x86_neg(uint64_t a, unsigned size, uint64_t *rflags)
{
    return sub(0, a, 0, size, rflags);
}

/* ---- operands ---------------------------------------------------------- */

struct rm_operand {
    bool is_mem;
    uint64_t addr; /* linear, when is_mem */
    unsigned reg;  /* when !is_mem */
};

static int rm_read(const struct hvi_x86_insn *d, const struct hvi_x86_cpu *c,
                   const struct rm_operand *o, const struct hvi_x86_mem_ops *m,
                   void *opaque, struct hvi_x86_emu_result *out, uint64_t *v)
{
    if (!o->is_mem) {
        *v = hvi_x86_reg_get(d, c, o->reg, d->opsize);
        return 0;
    }
    out->accesses++;
    *v = 0;
    int r = m->mmio_read(opaque, o->addr, d->opsize, v);
    *v &= hvi_x86_mask(d->opsize);
    return r;
}

static int rm_write(const struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                    const struct rm_operand *o, const struct hvi_x86_mem_ops *m,
                    void *opaque, struct hvi_x86_emu_result *out, uint64_t v)
{
    if (!o->is_mem) {
        hvi_x86_reg_set(d, c, o->reg, d->opsize, v);
        return 0;
    }
    out->accesses++;
    return m->mmio_write(opaque, o->addr, d->opsize,
                         v & hvi_x86_mask(d->opsize));
}

/* Decodes ModRM and an immediate of imm_n bytes (0: none). */
static int operands(struct hvi_x86_insn *d, const struct hvi_x86_cpu *c,
                    unsigned imm_n, struct rm_operand *o)
{
    int r = hvi_x86_decode_modrm(d, c);
    if (r < 0)
        return r;
    if (imm_n && (r = hvi_x86_decode_imm(d, imm_n, &d->imm)) < 0)
        return r;
    o->is_mem = d->mod != 3;
    o->reg = d->rm;
    if (o->is_mem)
        o->addr = hvi_x86_operand_addr(d, c);
    return 0;
}

/* The immediate size of a full-size operand: imm32 for 64 bits. */
static unsigned imm_size(unsigned opsize)
{
    return opsize == 8 ? 4 : opsize;
}

/* Bit tests: BT (0), BTS (1), BTR (2), BTC (3). */
static int bit_op(struct hvi_x86_insn *d, struct hvi_x86_cpu *c, unsigned which,
                  bool imm, const struct hvi_x86_mem_ops *m, void *opaque,
                  struct hvi_x86_emu_result *out)
{
    struct rm_operand o;
    int r = operands(d, c, imm ? 1 : 0, &o);
    if (r < 0)
        return r;
    unsigned bits = 8 * d->opsize;
    uint64_t off;
    if (imm) {
        off = d->imm & (bits - 1);
    } else {
        /* A register offset is signed and reaches past the operand in
         * memory; in a register it is taken modulo the size. */
        uint64_t raw = hvi_x86_reg_get(d, c, d->reg, d->opsize);
        int64_t s = (int64_t)(raw << (64 - bits)) >> (64 - bits);
        if (o.is_mem) {
            int64_t units =
                s >= 0 ? s / (int64_t)bits : -((-(s + 1)) / (int64_t)bits) - 1;
            o.addr += (uint64_t)units * d->opsize;
            if (d->mode != 64)
                o.addr &= 0xffffffffull;
        }
        off = (uint64_t)s & (bits - 1);
    }
    if (d->lock && (which == 0 || !o.is_mem))
        return hvi_x86_bad(d, -EINVAL, "LOCK on an instruction without it");
    uint64_t v;
    if ((r = rm_read(d, c, &o, m, opaque, out, &v)) < 0)
        return r;
    uint64_t bit = 1ull << off;
    c->rflags = (c->rflags & ~(uint64_t)CF) | ((v & bit) ? CF : 0);
    if (which == 0)
        return 1;
    v = which == 1 ? v | bit : which == 2 ? v & ~bit : v ^ bit;
    r = rm_write(d, c, &o, m, opaque, out, v);
    return r < 0 ? r : 1;
}

/* ALU op (0..7) on r/m and a value; CMP (7) writes nothing. */
static int rmw(struct hvi_x86_insn *d, struct hvi_x86_cpu *c, unsigned op,
               const struct rm_operand *o, uint64_t b,
               const struct hvi_x86_mem_ops *m, void *opaque,
               struct hvi_x86_emu_result *out)
{
    if (d->lock && (op == 7 || !o->is_mem))
        return hvi_x86_bad(d, -EINVAL, "LOCK on an instruction without it");
    uint64_t a;
    int r = rm_read(d, c, o, m, opaque, out, &a);
    if (r < 0)
        return r;
    uint64_t res = hvi_x86_alu(op, a, b, d->opsize, &c->rflags);
    if (op == 7)
        return 1;
    r = rm_write(d, c, o, m, opaque, out, res);
    return r < 0 ? r : 1;
}

static int no_lock(const struct hvi_x86_insn *d)
{
    return d->lock
               ? hvi_x86_bad(d, -EINVAL, "LOCK on an instruction without it")
               : 0;
}

/* 00-3D: op r/m,reg; op reg,r/m; op acc,imm. */
static int alu_classic(struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                       const struct hvi_x86_mem_ops *m, void *opaque,
                       struct hvi_x86_emu_result *out)
{
    unsigned op = d->opcode >> 3, form = d->opcode & 7;
    d->opsize = (form & 1) ? d->osize : 1;
    struct rm_operand o;
    int r;
    switch (form) {
    case 0:
    case 1:
        if ((r = operands(d, c, 0, &o)) < 0)
            return r;
        return rmw(d, c, op, &o, hvi_x86_reg_get(d, c, d->reg, d->opsize), m,
                   opaque, out);
    case 2:
    case 3: {
        if ((r = operands(d, c, 0, &o)) < 0 || (r = no_lock(d)) < 0)
            return r;
        uint64_t b;
        if ((r = rm_read(d, c, &o, m, opaque, out, &b)) < 0)
            return r;
        struct rm_operand dst = {.is_mem = false, .reg = d->reg};
        return rmw(d, c, op, &dst, b, m, opaque, out);
    }
    default: { /* 4, 5: AL/eAX, imm */
        if ((r = no_lock(d)) < 0 ||
            (r = hvi_x86_decode_imm(d, imm_size(d->opsize), &d->imm)) < 0)
            return r;
        struct rm_operand dst = {.is_mem = false, .reg = HVI_X86_RAX};
        return rmw(d, c, op, &dst, d->imm, m, opaque, out);
    }
    }
}

/* F6/F7 (TEST, NOT, NEG) and FE/FF (INC, DEC). */
static int unary(struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                 const struct hvi_x86_mem_ops *m, void *opaque,
                 struct hvi_x86_emu_result *out)
{
    d->opsize = (d->opcode & 1) ? d->osize : 1;
    struct rm_operand o;
    int r = hvi_x86_decode_modrm(d, c);
    if (r < 0)
        return r;
    unsigned sub_op = d->reg & 7;
    bool group3 = d->opcode <= 0xf7;
    if (group3 ? sub_op >= 4 : sub_op >= 2)
        return hvi_x86_bad(d, -ENOTSUP, "instruction not supported");
    if (group3 && sub_op <= 1) {
        if ((r = hvi_x86_decode_imm(d, imm_size(d->opsize), &d->imm)) < 0 ||
            (r = no_lock(d)) < 0)
            return r;
    }
    o.is_mem = d->mod != 3;
    o.reg = d->rm;
    if (o.is_mem)
        o.addr = hvi_x86_operand_addr(d, c);
    else if (d->lock)
        return no_lock(d);
    uint64_t v;
    if ((r = rm_read(d, c, &o, m, opaque, out, &v)) < 0)
        return r;
    if (group3) {
        switch (sub_op) {
        case 0:
        case 1: logic(v & d->imm, d->opsize, &c->rflags); return 1;
        case 2: v = ~v; break;
        default: v = hvi_x86_neg(v, d->opsize, &c->rflags);
        }
    } else {
        v = hvi_x86_incdec(sub_op == 1, v, d->opsize, &c->rflags);
    }
    r = rm_write(d, c, &o, m, opaque, out, v);
    return r < 0 ? r : 1;
}

int hvi_x86_exec_alu(struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                     const struct hvi_x86_mem_ops *m, void *opaque,
                     struct hvi_x86_emu_result *out)
{
    struct rm_operand o;
    uint8_t op = d->opcode;
    int r;
    if (d->two_byte) {
        switch (op) {
        case 0xa3: return bit_op(d, c, 0, false, m, opaque, out);
        case 0xab: return bit_op(d, c, 1, false, m, opaque, out);
        case 0xb3: return bit_op(d, c, 2, false, m, opaque, out);
        case 0xbb: return bit_op(d, c, 3, false, m, opaque, out);
        case 0xba: {
            /* Peek at /digit: 4..7 are BT, BTS, BTR, BTC. */
            size_t at = d->pos;
            if (at < d->avail && ((d->bytes[at] >> 3) & 7) >= 4)
                return bit_op(d, c, (d->bytes[at] >> 3) & 3, true, m, opaque,
                              out);
            if (at >= d->avail)
                return hvi_x86_decode_modrm(d, c); /* the error */
            return hvi_x86_bad(d, -EINVAL, "invalid opcode");
        }
        default: return 0;
        }
    }
    if (op <= 0x3d && (op & 7) <= 5)
        return alu_classic(d, c, m, opaque, out);
    switch (op) {
    case 0x80:
    case 0x81:
    case 0x83:
        d->opsize = op == 0x80 ? 1 : d->osize;
        if ((r = operands(d, c, op == 0x81 ? imm_size(d->opsize) : 1, &o)) < 0)
            return r;
        return rmw(d, c, d->reg & 7, &o, d->imm, m, opaque, out);
    case 0x84:
    case 0x85: {
        d->opsize = op == 0x84 ? 1 : d->osize;
        if ((r = operands(d, c, 0, &o)) < 0 || (r = no_lock(d)) < 0)
            return r;
        uint64_t a;
        if ((r = rm_read(d, c, &o, m, opaque, out, &a)) < 0)
            return r;
        logic(a & hvi_x86_reg_get(d, c, d->reg, d->opsize), d->opsize,
              &c->rflags);
        return 1;
    }
    case 0xa8:
    case 0xa9:
        d->opsize = op == 0xa8 ? 1 : d->osize;
        if ((r = no_lock(d)) < 0 ||
            (r = hvi_x86_decode_imm(d, imm_size(d->opsize), &d->imm)) < 0)
            return r;
        logic(c->gpr[HVI_X86_RAX] & d->imm, d->opsize, &c->rflags);
        return 1;
    case 0xf6:
    case 0xf7:
    case 0xfe:
    case 0xff: return unary(d, c, m, opaque, out);
    default: return 0;
    }
}
