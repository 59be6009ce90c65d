/* The x86 MMIO emulator's entry point and its moves.
 *
 * Supported (64-bit mode, 32- and 16-bit code segments, with the 66 and
 * 67 size prefixes, REX (W, R, X, B; SPL..DIL against AH..BH), segment
 * overrides (FS/GS bases in 64-bit mode), F2/F3 on string instructions,
 * LOCK on the read-modify-write forms (emulated as a read then a write),
 * ModRM/SIB with 16-, 32- and 64-bit addressing, RIP-relative):
 *   MOV       88 89 8A 8B, C6 /0, C7 /0, A0-A3 (moffs)
 *   MOVZX     0F B6, 0F B7;  MOVSX 0F BE, 0F BF;  MOVSXD 63 (64-bit)
 *   XCHG      86 87
 *   ALU       ADD OR ADC SBB AND SUB XOR CMP: 00-3D, 80 81 83 (82: no)
 *   TEST      84 85 A8 A9, F6/F7 /0 (/1)
 *   NOT NEG   F6/F7 /2 /3;  INC DEC FE/FF /0 /1
 *   BT BTS BTR BTC  0F A3 AB B3 BB (register offset, reaching past the
 *             operand in memory), 0F BA /4-/7 (imm8)
 *   STOS LODS MOVS  AA AB AC AD A4 A5, with REP (F3 or F2)
 * Flags: CF PF AF ZF SF OF as the CPU defines them for each instruction.
 * Flags an instruction leaves undefined: AF after AND/OR/XOR/TEST is
 * cleared; after BT* OF, SF, AF and PF are left unchanged (ZF is, as
 * documented). Not done: segment limit and permission checks, alignment
 * checks, exceptions (#GP, #PF: the caller's callbacks report a failing
 * access as an error), atomicity of LOCK, anything else (-ENOTSUP).
 * More in docs/X86_EMULATOR.md; tests/test_x86_emulate.c checks it against
 * the CPU. */
#include "../../core/internal.h"
#include "emu_internal.h"

#include <errno.h>

struct ctx {
    struct hvi_x86_insn *d;
    struct hvi_x86_cpu *c;
    const struct hvi_x86_mem_ops *m;
    void *opaque;
    struct hvi_x86_emu_result *out;
};

static int mem_operand(struct ctx *x, unsigned imm_n, uint64_t *addr)
{
    struct hvi_x86_insn *d = x->d;
    int r = hvi_x86_decode_modrm(d, x->c);
    if (r < 0)
        return r;
    if (imm_n && (r = hvi_x86_decode_imm(d, imm_n, &d->imm)) < 0)
        return r;
    if (d->mod != 3)
        *addr = hvi_x86_operand_addr(d, x->c);
    return 0;
}

static int read_rm(struct ctx *x, uint64_t addr, unsigned size, uint64_t *v)
{
    struct hvi_x86_insn *d = x->d;
    if (d->mod == 3) {
        *v = hvi_x86_reg_get(d, x->c, d->rm, size);
        return 0;
    }
    x->out->accesses++;
    *v = 0;
    int r = x->m->mmio_read(x->opaque, addr, size, v);
    *v &= hvi_x86_mask(size);
    return r;
}

static int write_rm(struct ctx *x, uint64_t addr, unsigned size, uint64_t v)
{
    struct hvi_x86_insn *d = x->d;
    if (d->mod == 3) {
        hvi_x86_reg_set(d, x->c, d->rm, size, v);
        return 0;
    }
    x->out->accesses++;
    return x->m->mmio_write(x->opaque, addr, size, v & hvi_x86_mask(size));
}

static uint64_t sext(uint64_t v, unsigned size)
{
    unsigned sh = 64 - 8 * size;
    return (uint64_t)((int64_t)(v << sh) >> sh);
}

/* MOVZX, MOVSX (0F B6 B7 BE BF) and MOVSXD (63). */
static int move_extend(struct ctx *x, unsigned src_size, bool sign)
{
    struct hvi_x86_insn *d = x->d;
    uint64_t addr = 0, v = 0;
    int r = mem_operand(x, 0, &addr);
    if (r < 0 || (r = read_rm(x, addr, src_size, &v)) < 0)
        return r;
    if (sign)
        v = sext(v, src_size);
    hvi_x86_reg_set(d, x->c, d->reg, d->osize, v);
    return 1;
}

static bool is_move(const struct hvi_x86_insn *d)
{
    uint8_t op = d->opcode;
    if (d->two_byte)
        return op == 0xb6 || op == 0xb7 || op == 0xbe || op == 0xbf;
    return (op == 0x63 && d->mode == 64) || (op >= 0x86 && op <= 0x8b) ||
           op == 0xc6 || op == 0xc7 || (op >= 0xa0 && op <= 0xa3);
}

static int moves(struct ctx *x)
{
    struct hvi_x86_insn *d = x->d;
    uint8_t op = d->opcode;
    uint64_t addr = 0, v = 0;
    int r;
    bool xchg = !d->two_byte && (op == 0x86 || op == 0x87);
    if (d->lock && !xchg && is_move(d))
        return hvi_x86_bad(d, -EINVAL, "LOCK on an instruction without it");
    if (d->two_byte) {
        switch (op) {
        case 0xb6: return move_extend(x, 1, false);
        case 0xb7: return move_extend(x, 2, false);
        case 0xbe: return move_extend(x, 1, true);
        case 0xbf: return move_extend(x, 2, true);
        default: return 0;
        }
    }
    switch (op) {
    case 0x63:
        if (d->mode != 64)
            return 0; /* ARPL */
        return move_extend(x, d->osize == 8 ? 4 : d->osize, true);
    case 0x88:
    case 0x89:
        d->opsize = op == 0x88 ? 1 : d->osize;
        if ((r = mem_operand(x, 0, &addr)) < 0)
            return r;
        v = hvi_x86_reg_get(d, x->c, d->reg, d->opsize);
        return (r = write_rm(x, addr, d->opsize, v)) < 0 ? r : 1;
    case 0x8a:
    case 0x8b:
        d->opsize = op == 0x8a ? 1 : d->osize;
        if ((r = mem_operand(x, 0, &addr)) < 0 ||
            (r = read_rm(x, addr, d->opsize, &v)) < 0)
            return r;
        hvi_x86_reg_set(d, x->c, d->reg, d->opsize, v);
        return 1;
    case 0xc6:
    case 0xc7:
        d->opsize = op == 0xc6 ? 1 : d->osize;
        if (x->d->pos < d->avail && ((d->bytes[d->pos] >> 3) & 7) != 0)
            return hvi_x86_bad(d, -EINVAL, "invalid opcode");
        if ((r = mem_operand(x, d->opsize == 8 ? 4 : d->opsize, &addr)) < 0)
            return r;
        return (r = write_rm(x, addr, d->opsize, d->imm)) < 0 ? r : 1;
    case 0x86:
    case 0x87: {
        d->opsize = op == 0x86 ? 1 : d->osize;
        if ((r = mem_operand(x, 0, &addr)) < 0)
            return r;
        if (d->lock && d->mod == 3)
            return hvi_x86_bad(d, -EINVAL, "LOCK on an instruction without it");
        if ((r = read_rm(x, addr, d->opsize, &v)) < 0)
            return r;
        uint64_t reg = hvi_x86_reg_get(d, x->c, d->reg, d->opsize);
        if ((r = write_rm(x, addr, d->opsize, reg)) < 0)
            return r;
        hvi_x86_reg_set(d, x->c, d->reg, d->opsize, v);
        return 1;
    }
    case 0xa0:
    case 0xa1:
    case 0xa2:
    case 0xa3: {
        d->opsize = (op & 1) ? d->osize : 1;
        uint64_t off;
        if ((r = hvi_x86_decode_imm(d, d->asize, &off)) < 0)
            return r;
        off &= hvi_x86_mask(d->asize);
        int seg = d->seg_override >= 0 ? d->seg_override : HVI_X86_DS;
        addr = hvi_x86_linear(d, x->c, seg, off);
        x->out->accesses++;
        if (op >= 0xa2)
            return (r = x->m->mmio_write(x->opaque, addr, d->opsize,
                                         x->c->gpr[HVI_X86_RAX] &
                                             hvi_x86_mask(d->opsize))) < 0
                       ? r
                       : 1;
        if ((r = x->m->mmio_read(x->opaque, addr, d->opsize, &v)) < 0)
            return r;
        hvi_x86_reg_set(d, x->c, HVI_X86_RAX, d->opsize,
                        v & hvi_x86_mask(d->opsize));
        return 1;
    }
    default: return 0;
    }
}

int hvi_x86_emulate(struct hvi_x86_cpu *cpu, const uint8_t *insn, size_t len,
                    const struct hvi_x86_mem_ops *mem, void *opaque,
                    struct hvi_x86_emu_result *out)
{
    if (!cpu || !mem || !out || (!insn && len) || !mem->mmio_read ||
        !mem->mmio_write || !mem->mem_read || !mem->mem_write)
        return hvi_error(-EINVAL, "x86 emulator: NULL argument");
    if (cpu->mode != 16 && cpu->mode != 32 && cpu->mode != 64)
        return hvi_error(-EINVAL, "x86 emulator: mode %u is not 16, 32, 64",
                         cpu->mode);
    *out = (struct hvi_x86_emu_result){0};
    out->complete = 1;
    struct hvi_x86_insn d;
    struct hvi_x86_cpu c = *cpu;
    int r = hvi_x86_decode_prefixes(&d, insn, len, cpu->mode);
    if (r < 0)
        return r;
    /* A lone REX or a prefix sequence before no opcode is caught above;
     * a REP prefix outside string instructions is ignored, as the CPU
     * does for these opcodes. */
    struct ctx x = {&d, &c, mem, opaque, out};
    r = hvi_x86_exec_string(&d, &c, mem, opaque, out);
    if (r == 0)
        r = hvi_x86_exec_alu(&d, &c, mem, opaque, out);
    if (r == 0)
        r = moves(&x);
    if (r == 0)
        r = hvi_x86_bad(&d, -ENOTSUP, "instruction not supported");
    if (r < 0) {
        if (d.partial)
            *cpu = c;
        return r;
    }
    *cpu = c;
    out->length = (unsigned)d.pos;
    return (int)d.pos;
}
