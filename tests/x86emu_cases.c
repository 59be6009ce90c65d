/* The instruction table of test_x86_emulate.c, generated: every supported
 * opcode form at every operand size of the mode, through a rotation of
 * memory-operand encodings (ModRM, SIB, displacements, RIP-relative, REX
 * extended registers, 16-bit addressing, FS override), with edge values
 * (0, 1, 0x7f.., 0x80.., 0xff.., mixed) in registers, memory and flags. */
#include "x86emu_cases.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define CF 0x001u
#define PF 0x004u
#define AF 0x010u
#define ZF 0x040u
#define SF 0x080u
#define DF 0x400u
#define OF 0x800u
#define ARITH (CF | PF | AF | ZF | SF | OF)

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const uint64_t edges[] = {0,
                                 1,
                                 2,
                                 0x7f,
                                 0x80,
                                 0xff,
                                 0x7fff,
                                 0x8000,
                                 0xffff,
                                 0x7fffffff,
                                 0x80000000,
                                 0xffffffff,
                                 0x7fffffffffffffffull,
                                 0x8000000000000000ull,
                                 0xffffffffffffffffull,
                                 0x0123456789abcdefull,
                                 0xfedcba9876543210ull,
                                 0x00000000ffff0000ull,
                                 0x8080808080808080ull,
                                 0x0f0f0f0f0f0f0f0full};
#define NEDGES (sizeof(edges) / sizeof(edges[0]))

static uint64_t value(void)
{
    return (rnd() & 3) == 0 ? rnd() : edges[rnd() % NEDGES];
}

/* One instruction being built. */
struct ins {
    unsigned mode;
    unsigned osize; /* 1, 2, 4, 8 */
    bool a16;       /* 67 in 32-bit mode */
    bool a32;       /* 67 in 64-bit mode */
    bool force_rex; /* a plain 0x40 for SPL..DIL */
    bool fs;        /* FS override */
    bool lock;      /* F0 */
    bool stale_rex; /* a REX before a legacy prefix: ignored */
    uint8_t rep;
    uint8_t op[2];
    unsigned nop;
    unsigned reg; /* ModRM reg field (0..15) */
    int form;     /* memory form, or -1 for a register r/m */
    unsigned rm;  /* register r/m when form < 0 */
    uint64_t imm;
    unsigned immn;
};

/* Memory forms and the registers they use for the address. */
#define NFORMS64 8
#define NFORMS16 7
static unsigned form_regs(const struct ins *in)
{
    if (in->a16) {
        static const unsigned m[NFORMS16] = {1u << RBX | 1u << RSI,
                                             1u << RBX | 1u << RDI,
                                             1u << RBP | 1u << RSI,
                                             0,
                                             1u << RSI,
                                             1u << RDI,
                                             1u << RBX};
        return m[in->form];
    }
    static const unsigned m[NFORMS64] = {
        1u << RBX, 1u << RBX, 1u << RBX | 1u << RSI, 0, 1u << R13 | 1u << RBP,
        0,         1u << RBP, 1u << R9 | 1u << R10};
    return m[in->form];
}

static void emit(struct xcase *c, uint8_t b)
{
    if (c->len < sizeof(c->code))
        c->code[c->len++] = b;
}

static void emit_n(struct xcase *c, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        emit(c, (uint8_t)(v >> (8 * i)));
}

/* ModRM etc. for memory form f aimed at t; sets the address registers. */
static int emit_mem(struct xcase *c, const struct ins *in, uint64_t t)
{
    uint8_t reg = (uint8_t)((in->reg & 7) << 3);
    int rip_at = -1;
    if (in->a16) {
        uint64_t bx = t - 0x100, si = 0x40, di = 0x60, bp = t - 0x300;
        switch (in->form) {
        case 0:
            emit(c, reg | 0);
            c->gpr[RBX] = t - si;
            c->gpr[RSI] = si;
            break;
        case 1:
            emit(c, 0x40 | reg | 1);
            emit(c, 0x20);
            c->gpr[RBX] = t - di - 0x20;
            c->gpr[RDI] = di;
            break;
        case 2:
            emit(c, 0x80 | reg | 2);
            emit_n(c, 0x300 - si, 2);
            c->gpr[RBP] = bp;
            c->gpr[RSI] = si;
            break;
        case 3:
            emit(c, reg | 6);
            emit_n(c, t, 2);
            break;
        case 4:
            emit(c, reg | 4);
            c->gpr[RSI] = t;
            break;
        case 5:
            emit(c, 0x40 | reg | 5);
            emit(c, 0xf0);
            c->gpr[RDI] = t + 0x10;
            break;
        default:
            emit(c, reg | 7);
            c->gpr[RBX] = bx + 0x100;
            break;
        }
        return -1;
    }
    switch (in->form) {
    case 0:
        emit(c, reg | 3);
        c->gpr[RBX] = t;
        break;
    case 1:
        emit(c, 0x40 | reg | 3);
        emit(c, 0x10);
        c->gpr[RBX] = t - 0x10;
        break;
    case 2:
        emit(c, 0x40 | reg | 4);
        emit(c, 0x80 | (6 << 3) | 3); /* [rbx + rsi*4] */
        emit(c, 0xf8);                /* - 8 */
        c->gpr[RSI] = 0x30;
        c->gpr[RBX] = t - 0xc0 + 8;
        break;
    case 3:
        emit(c, reg | 5);
        if (in->mode == 64) {
            rip_at = (int)c->len;
            emit_n(c, 0, 4); /* patched when the length is known */
        } else {
            emit_n(c, t, 4);
        }
        break;
    case 4:
        if (in->mode == 64) { /* [r13 + disp8] */
            emit(c, 0x40 | reg | 5);
            emit(c, 0x20);
            c->gpr[R13] = t - 0x20;
        } else { /* [ebp + disp8] */
            emit(c, 0x40 | reg | 5);
            emit(c, 0x7f);
            c->gpr[RBP] = t - 0x7f;
        }
        break;
    case 5:
        emit(c, reg | 4);
        emit(c, 0x25);
        emit_n(c, t, 4);
        break;
    case 6:
        emit(c, 0x80 | reg | 5);
        emit_n(c, 0x100, 4);
        c->gpr[RBP] = t - 0x100;
        break;
    default:
        if (in->mode == 64) { /* [r9 + r10*8 + disp32] */
            emit(c, 0x80 | reg | 4);
            emit(c, 0xc0 | (2 << 3) | 1);
            emit_n(c, (uint64_t)-0x1000, 4);
            c->gpr[R10] = 0x10;
            c->gpr[R9] = t + 0x1000 - 0x80;
        } else { /* [ebx + esi*2] */
            emit(c, reg | 4);
            emit(c, 0x40 | (6 << 3) | 3);
            c->gpr[RSI] = 0x22;
            c->gpr[RBX] = t - 0x44;
        }
    }
    return rip_at;
}

static void assemble(struct xcase *c, const struct ins *in)
{
    uint64_t t = XC_TARGET - (in->fs ? XC_FS_BASE : 0);
    c->len = 0;
    if (in->stale_rex && in->mode == 64) {
        emit(c, 0x4f); /* cancelled by the legacy prefix after it */
        if (!in->fs && !in->lock)
            emit(c, 0x3e); /* DS: no effect in 64-bit mode */
    }
    if (in->lock)
        emit(c, 0xf0);
    if (in->fs)
        emit(c, 0x64);
    if (in->rep)
        emit(c, in->rep);
    if (in->mode == 16 ? in->osize == 4 : in->osize == 2)
        emit(c, 0x66);
    if (in->mode == 16 ? !in->a16 : in->a16 || in->a32)
        emit(c, 0x67);
    if (in->mode == 64) {
        uint8_t rex = 0x40;
        if (in->osize == 8)
            rex |= 8;
        if (in->reg >= 8)
            rex |= 4;
        if (in->form == 7)
            rex |= 3;
        if (in->form == 4)
            rex |= 1;
        if (in->form < 0 && in->rm >= 8)
            rex |= 1;
        if (rex != 0x40 || in->force_rex)
            emit(c, rex);
    }
    for (unsigned i = 0; i < in->nop; i++)
        emit(c, in->op[i]);
    int rip_at = -1;
    if (in->form >= 0)
        rip_at = emit_mem(c, in, t);
    else if (in->form == -1)
        emit(c, (uint8_t)(0xc0 | (in->reg & 7) << 3 | (in->rm & 7)));
    emit_n(c, in->imm, in->immn);
    if (rip_at >= 0) {
        uint64_t d = t - (XC_CODE + c->len);
        for (int i = 0; i < 4; i++)
            c->code[rip_at + i] = (uint8_t)(d >> (8 * i));
    }
    if (in->mode != 64)
        for (int i = 0; i < 16; i++)
            c->gpr[i] &= 0xffffffffull;
}

/* A register for the reg field that the memory form does not use. */
static unsigned pick_reg(const struct ins *in, bool byte)
{
    unsigned addr = in->form >= 0 ? form_regs(in) : 0;
    for (;;) {
        unsigned r = (unsigned)(rnd() % (in->mode == 64 ? 16 : 8));
        unsigned full = r;
        if (byte && r >= 4 && r < 8 && !in->force_rex && in->mode != 64)
            full = r - 4;
        if (r == RSP && !byte)
            continue;
        if (!(addr & (1u << full)) && !(addr & (1u << (r & 3))))
            return r;
    }
}

/* Fresh registers and flags for a case. */
static void init_case(struct xcase *c, unsigned mode, const char *name)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    for (int i = 0; i < 16; i++)
        c->gpr[i] = mode == 64 ? value() : value() & 0xffffffffull;
    c->gpr[RSP] &= mode == 16 ? 0xffff : ~0ull; /* below SS's limit */
    c->rflags = 0x2 | (rnd() & ARITH);
}

static void set_mem(struct xcase *c, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        c->mem[i] = (uint8_t)(v >> (8 * i));
}

struct gen {
    unsigned mode;
    xcase_fn fn;
    void *arg;
    unsigned count;
    unsigned form_turn;
};

/* The next memory form (and address size) in the rotation. */
static void next_form(struct gen *g, struct ins *in)
{
    unsigned t = g->form_turn++;
    in->mode = g->mode;
    in->fs = (t % 11) == 5;
    if ((g->mode == 32 && (t % 4) == 3) || (g->mode == 16 && (t % 4) != 3)) {
        in->a16 = true;
        in->form = (int)((t / 4) % NFORMS16);
        in->fs = false; /* FS base + 16-bit offset: fine, but keep simple */
        return;
    }
    in->a32 = g->mode == 64 && (t % 5) == 4;
    in->form = (int)(t % NFORMS64);
}

static void finish(struct gen *g, struct xcase *c, const struct ins *in,
                   const char *what)
{
    assemble(c, in);
    char name[80];
    snprintf(name, sizeof(name), "%s/o%u/f%d%s%s%s%s", what, in->osize,
             in->form,
             in->a16   ? "/a16"
             : in->a32 ? "/a32"
                       : "",
             in->fs ? "/fs" : "", in->force_rex ? "/rex" : "",
             in->lock ? "/lock" : "");
    memcpy(c->name, name, sizeof(c->name));
    g->fn(c, g->arg);
    g->count++;
}

static const unsigned *sizes(unsigned mode, unsigned *n)
{
    static const unsigned s64[] = {2, 4, 8}, s32[] = {2, 4}; /* 16 too */
    *n = mode == 64 ? 3 : 2;
    return mode == 64 ? s64 : s32;
}

static const char *const alu_names[8] = {"add", "or",  "adc", "sbb",
                                         "and", "sub", "xor", "cmp"};

static uint64_t alu_undef(unsigned op)
{
    return (op == 1 || op == 4 || op == 6) ? AF : 0;
}

static void gen_alu(struct gen *g, unsigned reps)
{
    unsigned ns;
    const unsigned *sz = sizes(g->mode, &ns);
    for (unsigned op = 0; op < 8; op++) {
        /* forms: 0 r/m8,r8  1 r/m,r  2 r8,r/m8  3 r,r/m  80 81 83 */
        for (unsigned form = 0; form < 7; form++) {
            for (unsigned si = 0; si < ns + 1; si++) {
                bool byte = form == 0 || form == 2 || form == 4;
                if (byte && si > 0)
                    break;
                if (!byte && si == ns)
                    break;
                for (unsigned k = 0; k < reps; k++) {
                    struct xcase c;
                    struct ins in = {0};
                    char what[40];
                    init_case(&c, g->mode, "");
                    next_form(g, &in);
                    in.osize = byte ? 1 : sz[si];
                    in.force_rex = byte && g->mode == 64 && (k & 1);
                    in.nop = 1;
                    if (k == reps - 1 && form < 4) {
                        in.form = -1; /* register r/m: the same paths */
                        in.rm = (unsigned)(rnd() % (g->mode == 64 ? 16 : 8));
                    }
                    if (form < 4) {
                        in.op[0] = (uint8_t)(op * 8 + form);
                        in.reg = pick_reg(&in, byte);
                        c.gpr[in.reg] = value();
                    } else {
                        static const uint8_t grp[3] = {0x80, 0x81, 0x83};
                        in.op[0] = grp[form - 4];
                        in.reg = op;
                        in.immn = form == 5 ? (in.osize == 2 ? 2 : 4) : 1;
                        in.imm = value();
                    }
                    set_mem(&c, value());
                    in.lock = op != 7 && in.form >= 0 && form != 2 &&
                              form != 3 && (k % 3) == 1;
                    in.stale_rex = (k % 4) == 2;
                    if (g->mode != 64)
                        c.gpr[in.reg & 15] &= 0xffffffffull;
                    c.undef = alu_undef(op);
                    snprintf(what, sizeof(what), "%s/%x", alu_names[op],
                             form < 4 ? op * 8 + form : (unsigned)in.op[0]);
                    finish(g, &c, &in, what);
                }
            }
        }
    }
}

/* One case of a ModRM instruction: opcode bytes, /digit or register. */
static void modrm_case(struct gen *g, const char *what, const uint8_t *op,
                       unsigned nop, unsigned osize, int digit, unsigned immn,
                       uint64_t undef, bool byte_reg)
{
    struct xcase c;
    struct ins in = {0};
    init_case(&c, g->mode, "");
    next_form(g, &in);
    in.osize = osize;
    in.force_rex = byte_reg && g->mode == 64 && (rnd() & 1);
    memcpy(in.op, op, nop);
    in.nop = nop;
    if (digit >= 0) {
        in.reg = (unsigned)digit;
    } else {
        in.reg = pick_reg(&in, byte_reg);
        c.gpr[in.reg] = value();
    }
    in.immn = immn;
    in.imm = value();
    set_mem(&c, value());
    c.undef = undef;
    finish(g, &c, &in, what);
}

static void gen_moves(struct gen *g)
{
    unsigned ns;
    const unsigned *sz = sizes(g->mode, &ns);
    for (unsigned k = 0; k < 5; k++) {
        static const uint8_t b88[] = {0x88}, b8a[] = {0x8a}, bc6[] = {0xc6},
                             b86[] = {0x86}, bf6[] = {0xf6}, b84[] = {0x84},
                             bfe[] = {0xfe};
        modrm_case(g, "mov/88", b88, 1, 1, -1, 0, 0, true);
        modrm_case(g, "mov/8a", b8a, 1, 1, -1, 0, 0, true);
        modrm_case(g, "mov/c6", bc6, 1, 1, 0, 1, 0, false);
        modrm_case(g, "xchg/86", b86, 1, 1, -1, 0, 0, true);
        modrm_case(g, "test/84", b84, 1, 1, -1, 0, AF, true);
        modrm_case(g, "test/f6", bf6, 1, 1, 0, 1, AF, false);
        modrm_case(g, "not/f6", bf6, 1, 1, 2, 0, 0, false);
        modrm_case(g, "neg/f6", bf6, 1, 1, 3, 0, 0, false);
        modrm_case(g, "inc/fe", bfe, 1, 1, 0, 0, 0, false);
        modrm_case(g, "dec/fe", bfe, 1, 1, 1, 0, 0, false);
        for (unsigned i = 0; i < ns; i++) {
            unsigned o = sz[i], imm = o == 2 ? 2 : 4;
            static const uint8_t b89[] = {0x89}, b8b[] = {0x8b}, bc7[] = {0xc7},
                                 b87[] = {0x87}, bf7[] = {0xf7}, b85[] = {0x85},
                                 bff[] = {0xff}, zx8[] = {0x0f, 0xb6},
                                 zx16[] = {0x0f, 0xb7}, sx8[] = {0x0f, 0xbe},
                                 sx16[] = {0x0f, 0xbf}, b63[] = {0x63};
            modrm_case(g, "mov/89", b89, 1, o, -1, 0, 0, false);
            modrm_case(g, "mov/8b", b8b, 1, o, -1, 0, 0, false);
            modrm_case(g, "mov/c7", bc7, 1, o, 0, imm, 0, false);
            modrm_case(g, "xchg/87", b87, 1, o, -1, 0, 0, false);
            modrm_case(g, "test/85", b85, 1, o, -1, 0, AF, false);
            modrm_case(g, "test/f7", bf7, 1, o, 0, imm, AF, false);
            modrm_case(g, "not/f7", bf7, 1, o, 2, 0, 0, false);
            modrm_case(g, "neg/f7", bf7, 1, o, 3, 0, 0, false);
            modrm_case(g, "inc/ff", bff, 1, o, 0, 0, 0, false);
            modrm_case(g, "dec/ff", bff, 1, o, 1, 0, 0, false);
            modrm_case(g, "movzx/b6", zx8, 2, o, -1, 0, 0, false);
            modrm_case(g, "movzx/b7", zx16, 2, o, -1, 0, 0, false);
            modrm_case(g, "movsx/be", sx8, 2, o, -1, 0, 0, false);
            modrm_case(g, "movsx/bf", sx16, 2, o, -1, 0, 0, false);
            if (g->mode == 64)
                modrm_case(g, "movsxd/63", b63, 1, o, -1, 0, 0, false);
        }
    }
}

static void gen_bits(struct gen *g)
{
    unsigned ns;
    const unsigned *sz = sizes(g->mode, &ns);
    static const uint8_t bt_reg[4] = {0xa3, 0xab, 0xb3, 0xbb};
    static const char *const names[4] = {"bt", "bts", "btr", "btc"};
    uint64_t undef = OF | SF | AF | PF;
    for (unsigned k = 0; k < 5; k++) {
        for (unsigned w = 0; w < 4; w++) {
            for (unsigned i = 0; i < ns; i++) {
                char what[16];
                uint8_t op[2] = {0x0f, bt_reg[w]};
                /* a register offset within [-120, 250] bits */
                struct xcase c;
                struct ins in = {0};
                init_case(&c, g->mode, "");
                next_form(g, &in);
                in.osize = sz[i];
                memcpy(in.op, op, 2);
                in.nop = 2;
                in.reg = pick_reg(&in, false);
                int64_t bit = (int64_t)(rnd() % 371) - 120;
                if (k == 0)
                    bit = (int64_t)(rnd() % 8);
                c.gpr[in.reg] = (uint64_t)bit;
                if (in.osize <= 4 || g->mode != 64)
                    c.gpr[in.reg] = (c.gpr[in.reg] & 0xffffffffull) |
                                    (g->mode == 64 ? value() << 32 : 0);
                if (in.osize == 2)
                    c.gpr[in.reg] = (c.gpr[in.reg] & ~0xffff0000ull) |
                                    (value() & 0xffff0000ull);
                set_mem(&c, value());
                c.undef = undef;
                snprintf(what, sizeof(what), "%s/reg", names[w]);
                finish(g, &c, &in, what);
                uint8_t ba[2] = {0x0f, 0xba};
                snprintf(what, sizeof(what), "%s/imm", names[w]);
                modrm_case(g, what, ba, 2, sz[i], (int)(4 + w), 1, undef,
                           false);
            }
        }
    }
}

static void gen_moffs(struct gen *g)
{
    static const unsigned all[] = {1, 2, 4, 8};
    for (unsigned k = 0; k < 4; k++) {
        for (unsigned i = 0; i < (g->mode == 64 ? 4u : 3u); i++) {
            for (unsigned op = 0xa0; op <= 0xa3; op++) {
                struct xcase c;
                struct ins in = {0};
                init_case(&c, g->mode, "");
                in.mode = g->mode;
                in.form = -2; /* no ModRM */
                in.osize = (op & 1) ? all[i] : 1;
                if ((op & 1) == 0 && i > 0)
                    continue;
                in.a32 = g->mode == 64 && (k & 1);
                in.a16 =
                    (g->mode == 32 && (k & 1)) || (g->mode == 16 && !(k & 1));
                in.fs = k == 2;
                in.op[0] = (uint8_t)op;
                in.nop = 1;
                in.imm = XC_TARGET - (in.fs ? XC_FS_BASE : 0);
                in.immn = in.a16 ? 2 : (g->mode != 64 || in.a32) ? 4 : 8;
                set_mem(&c, value());
                char what[16];
                snprintf(what, sizeof(what), "moffs/%x", op);
                finish(g, &c, &in, what);
            }
        }
    }
}

static void gen_string(struct gen *g)
{
    static const unsigned all[] = {1, 2, 4, 8};
    static const uint8_t ops[] = {0xaa, 0xa4, 0xac};
    static const char *const names[] = {"stos", "movs", "lods"};
    for (unsigned k = 0; k < 12; k++) {
        for (unsigned o = 0; o < 3; o++) {
            for (unsigned i = 0; i < (g->mode == 64 ? 4u : 3u); i++) {
                struct xcase c;
                struct ins in = {0};
                init_case(&c, g->mode, "");
                in.mode = g->mode;
                in.form = -2;
                in.osize = all[i];
                in.op[0] = (uint8_t)(ops[o] + (i > 0));
                in.nop = 1;
                in.rep = (k % 3) == 0 ? 0 : (k % 6) == 4 ? 0xf2 : 0xf3;
                if (ops[o] == 0xac && in.rep && k > 4)
                    in.rep = 0; /* REP LODS: a few are enough */
                in.a32 = g->mode == 64 && (k % 4) == 1;
                in.a16 = (g->mode == 32 && (k % 4) == 1) ||
                         (g->mode == 16 && (k % 4) != 1);
                in.fs = ops[o] != 0xaa && (k % 5) == 2;
                bool down = k & 1;
                c.rflags = (c.rflags & ~(uint64_t)DF) | (down ? DF : 0);
                uint64_t n = rnd() % 6;
                if (k == 6)
                    n = 0;
                if (k >= 10) /* past one emulator batch */
                    n = all[i] <= 2 ? (k == 10 ? 1500 : 1030) : 1500 / all[i];
                uint64_t span = (n + 1) * all[i];
                uint64_t src = XC_WIN + 0x200 + (rnd() % 64);
                uint64_t dst = XC_WIN + 0x1000 + (rnd() % 64);
                if (down) {
                    src += span;
                    dst += span;
                }
                /* Garbage above the address size must not count. */
                uint64_t hi = in.a16   ? 0xffff0000ull
                              : in.a32 ? 0xffffffff00000000ull
                                       : 0;
                c.gpr[RCX] = n | (value() & hi);
                c.gpr[RSI] = (src - (in.fs ? XC_FS_BASE : 0)) | (value() & hi);
                c.gpr[RDI] = dst | (value() & hi);
                c.fault_write = (unsigned)(rnd() & 1);
                char what[24];
                snprintf(what, sizeof(what), "%s%s/%s", in.rep ? "rep-" : "",
                         names[o], down ? "down" : "up");
                finish(g, &c, &in, what);
            }
        }
    }
}

/* The accumulator forms without a memory operand: op AL/eAX, imm (04 05
 * ... 3C 3D) and TEST A8 A9. */
static void gen_acc(struct gen *g)
{
    unsigned ns;
    const unsigned *sz = sizes(g->mode, &ns);
    for (unsigned k = 0; k < 3; k++) {
        for (unsigned op = 0; op < 9; op++) {
            for (unsigned i = 0; i <= ns; i++) {
                struct xcase c;
                struct ins in = {0};
                init_case(&c, g->mode, "");
                in.mode = g->mode;
                in.form = -2;
                in.osize = i == 0 ? 1 : sz[i - 1];
                uint8_t base = op < 8 ? (uint8_t)(op * 8 + 4) : 0xa8;
                in.op[0] = (uint8_t)(base + (i > 0));
                in.nop = 1;
                in.immn = in.osize == 1 ? 1 : in.osize == 2 ? 2 : 4;
                in.imm = value();
                c.undef = op == 8 ? AF : alu_undef(op);
                char what[24];
                snprintf(what, sizeof(what), "%s/acc",
                         op < 8 ? alu_names[op] : "test");
                finish(g, &c, &in, what);
            }
        }
    }
}

static void gen_more(struct gen *g)
{
    gen_acc(g);
    gen_moves(g);
    gen_bits(g);
    gen_moffs(g);
    gen_string(g);
}

unsigned xcase_generate(unsigned mode, xcase_fn fn, void *arg)
{
    struct gen g = {mode, fn, arg, 0, 0};
    rng = 0x9e3779b97f4a7c15ull ^ mode;
    gen_alu(&g, 6);
    gen_more(&g);
    return g.count;
}
