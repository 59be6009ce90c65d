/* The emulator's decoder: prefixes, REX, the opcode, ModRM, SIB,
 * displacements (RIP-relative included) and immediates, every read bounded
 * by the bytes given and by the 15-byte limit. */
#include "../../core/internal.h"
#include "emu_internal.h"

#include <errno.h>
#include <stdio.h>

int hvi_x86_bad(const struct hvi_x86_insn *d, int err, const char *why)
{
    char hex[HVI_X86_MAX_INSN * 4 + 1];
    size_t n = d->avail, o = 0;
    for (size_t i = 0; i < n && o + 5 <= sizeof(hex); i++)
        o += (size_t)snprintf(hex + o, sizeof(hex) - o, "\\x%02x", d->bytes[i]);
    hex[o] = '\0';
    return hvi_error(err, "x86 emulator: %s: \"%s\" (%zu bytes, %u-bit mode)",
                     why, hex, n, d->mode);
}

static int next(struct hvi_x86_insn *d, uint8_t *b)
{
    *b = 0;
    if (d->pos >= d->avail)
        return hvi_x86_bad(d, -EINVAL,
                           d->avail >= HVI_X86_MAX_INSN
                               ? "instruction longer than 15 bytes"
                               : "instruction truncated");
    *b = d->bytes[d->pos++];
    return 0;
}

static int next_n(struct hvi_x86_insn *d, unsigned n, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t b = 0;
        int r = next(d, &b);
        if (r < 0)
            return r;
        v |= (uint64_t)b << (8 * i);
    }
    *out = v;
    return 0;
}

static uint64_t sext(uint64_t v, unsigned n)
{
    if (n >= 8)
        return v;
    unsigned sh = 64 - 8 * n;
    return (uint64_t)((int64_t)(v << sh) >> sh);
}

int hvi_x86_decode_imm(struct hvi_x86_insn *d, unsigned n, uint64_t *out)
{
    uint64_t v;
    int r = next_n(d, n, &v);
    if (r < 0)
        return r;
    *out = sext(v, n);
    return 0;
}

int hvi_x86_decode_prefixes(struct hvi_x86_insn *d, const uint8_t *insn,
                            size_t len, unsigned mode)
{
    *d = (struct hvi_x86_insn){0};
    d->bytes = insn;
    d->avail = len < HVI_X86_MAX_INSN ? len : HVI_X86_MAX_INSN;
    d->mode = mode;
    d->seg_override = -1;
    bool opsize_prefix = false, addr_prefix = false;
    uint8_t b = 0;
    for (;;) {
        int r = next(d, &b);
        if (r < 0)
            return r;
        /* A REX prefix counts only right before the opcode. */
        if (mode == 64 && (b & 0xf0) == 0x40) {
            d->rex = true;
            d->rex_w = b & 8;
            d->rex_r = b & 4;
            d->rex_x = b & 2;
            d->rex_b = b & 1;
            continue;
        }
        bool prefix = true;
        switch (b) {
        case 0xf0: d->lock = true; break;
        case 0xf2:
        case 0xf3: d->rep = b; break;
        case 0x26: d->seg_override = HVI_X86_ES; break;
        case 0x2e: d->seg_override = HVI_X86_CS; break;
        case 0x36: d->seg_override = HVI_X86_SS; break;
        case 0x3e: d->seg_override = HVI_X86_DS; break;
        case 0x64: d->seg_override = HVI_X86_FS; break;
        case 0x65: d->seg_override = HVI_X86_GS; break;
        case 0x66: opsize_prefix = true; break;
        case 0x67: addr_prefix = true; break;
        default: prefix = false;
        }
        if (!prefix)
            break;
        d->rex = d->rex_w = d->rex_r = d->rex_x = d->rex_b = false;
    }
    if (mode == 64) {
        d->osize = d->rex_w ? 8 : opsize_prefix ? 2 : 4;
        d->asize = addr_prefix ? 4 : 8;
    } else {
        bool wide = (mode == 32) != opsize_prefix;
        d->osize = wide ? 4 : 2;
        d->asize = ((mode == 32) != addr_prefix) ? 4 : 2;
    }
    d->opsize = d->osize;
    if (b == 0x0f) {
        d->two_byte = true;
        int r = next(d, &b);
        if (r < 0)
            return r;
    }
    d->opcode = b;
    return 0;
}

static uint64_t gpr(const struct hvi_x86_cpu *c, unsigned r)
{
    return c->gpr[r & 15];
}

static int modrm16(struct hvi_x86_insn *d, const struct hvi_x86_cpu *c)
{
    static const int8_t base[8] = {HVI_X86_RBX, HVI_X86_RBX, HVI_X86_RBP,
                                   HVI_X86_RBP, -1,          -1,
                                   HVI_X86_RBP, HVI_X86_RBX};
    static const int8_t index[8] = {HVI_X86_RSI, HVI_X86_RDI, HVI_X86_RSI,
                                    HVI_X86_RDI, HVI_X86_RSI, HVI_X86_RDI,
                                    -1,          -1};
    unsigned rm = d->rm & 7;
    uint64_t ea = 0, disp = 0;
    int r = 0;
    if (d->mod == 0 && rm == 6) {
        r = hvi_x86_decode_imm(d, 2, &disp);
    } else {
        if (base[rm] >= 0)
            ea += gpr(c, (unsigned)base[rm]) & 0xffff;
        if (index[rm] >= 0)
            ea += gpr(c, (unsigned)index[rm]) & 0xffff;
        if (base[rm] == HVI_X86_RBP)
            d->ea_seg = HVI_X86_SS;
        if (d->mod == 1)
            r = hvi_x86_decode_imm(d, 1, &disp);
        else if (d->mod == 2)
            r = hvi_x86_decode_imm(d, 2, &disp);
    }
    d->disp_ea = ea + disp;
    return r;
}

static int modrm32(struct hvi_x86_insn *d, const struct hvi_x86_cpu *c)
{
    uint64_t ea = 0, disp = 0;
    unsigned rm = d->rm & 7;
    int r;
    if (rm == 4) {
        uint8_t sib = 0;
        if ((r = next(d, &sib)) < 0)
            return r;
        unsigned idx = ((sib >> 3) & 7) | (d->rex_x ? 8 : 0);
        unsigned base = (sib & 7) | (d->rex_b ? 8 : 0);
        if (idx != HVI_X86_RSP)
            ea += gpr(c, idx) << (sib >> 6);
        if ((sib & 7) == 5 && d->mod == 0) {
            if ((r = hvi_x86_decode_imm(d, 4, &disp)) < 0)
                return r;
        } else {
            ea += gpr(c, base);
            if ((sib & 7) == HVI_X86_RSP || (sib & 7) == HVI_X86_RBP)
                d->ea_seg = HVI_X86_SS;
        }
    } else if (rm == 5 && d->mod == 0) {
        if ((r = hvi_x86_decode_imm(d, 4, &disp)) < 0)
            return r;
        d->rip_rel = d->mode == 64;
    } else {
        ea += gpr(c, d->rm);
        if (rm == HVI_X86_RBP)
            d->ea_seg = HVI_X86_SS;
    }
    if (d->mod == 1)
        r = hvi_x86_decode_imm(d, 1, &disp);
    else if (d->mod == 2)
        r = hvi_x86_decode_imm(d, 4, &disp);
    else
        r = 0;
    d->disp_ea = ea + disp;
    return r;
}

int hvi_x86_decode_modrm(struct hvi_x86_insn *d, const struct hvi_x86_cpu *c)
{
    uint8_t m = 0;
    int r = next(d, &m);
    if (r < 0)
        return r;
    d->has_modrm = true;
    d->mod = m >> 6;
    d->reg = ((m >> 3) & 7) | (d->rex_r ? 8 : 0);
    d->rm = (m & 7) | (d->rex_b ? 8 : 0);
    d->ea_seg = HVI_X86_DS;
    if (d->mod == 3)
        return 0;
    return d->asize == 2 ? modrm16(d, c) : modrm32(d, c);
}

uint64_t hvi_x86_mask(unsigned size)
{
    return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

uint64_t hvi_x86_linear(const struct hvi_x86_insn *d,
                        const struct hvi_x86_cpu *c, int seg, uint64_t off)
{
    if (d->mode == 64) {
        if (seg == HVI_X86_FS || seg == HVI_X86_GS)
            return c->seg_base[seg] + off;
        return off;
    }
    return (c->seg_base[seg] + off) & 0xffffffffull;
}

uint64_t hvi_x86_operand_addr(const struct hvi_x86_insn *d,
                              const struct hvi_x86_cpu *c)
{
    uint64_t ea = d->disp_ea;
    if (d->rip_rel)
        ea += c->rip + d->pos;
    ea &= hvi_x86_mask(d->asize);
    int seg = d->seg_override >= 0 ? d->seg_override : d->ea_seg;
    return hvi_x86_linear(d, c, seg, ea);
}

uint64_t hvi_x86_reg_get(const struct hvi_x86_insn *d,
                         const struct hvi_x86_cpu *c, unsigned r, unsigned size)
{
    r &= 15;
    if (size == 1 && !d->rex && r >= 4 && r < 8)
        return (c->gpr[r - 4] >> 8) & 0xff;
    return c->gpr[r] & hvi_x86_mask(size);
}

void hvi_x86_reg_set(const struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                     unsigned r, unsigned size, uint64_t v)
{
    r &= 15;
    switch (size) {
    case 1:
        if (!d->rex && r >= 4 && r < 8)
            c->gpr[r - 4] = (c->gpr[r - 4] & ~0xff00ull) | ((v & 0xff) << 8);
        else
            c->gpr[r] = (c->gpr[r] & ~0xffull) | (v & 0xff);
        break;
    case 2: c->gpr[r] = (c->gpr[r] & ~0xffffull) | (v & 0xffff); break;
    case 4: c->gpr[r] = v & 0xffffffffull; break;
    default: c->gpr[r] = v;
    }
}
