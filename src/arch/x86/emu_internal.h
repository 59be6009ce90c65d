/* Shared between the emulator's parts: the decoded instruction
 * (emu_decode.c), the ALU and flags (emu_alu.c), string instructions
 * (emu_string.c) and the dispatcher (emulate.c). */
#ifndef HVCORE_ARCH_X86_EMU_INTERNAL_H
#define HVCORE_ARCH_X86_EMU_INTERNAL_H

#include "emulate.h"

#include <stdbool.h>

struct hvi_x86_insn {
    const uint8_t *bytes;
    size_t avail; /* min(len, HVI_X86_MAX_INSN) */
    size_t pos;   /* bytes consumed so far */
    unsigned mode;
    unsigned opsize; /* 1, 2, 4 or 8: set by the dispatcher per opcode */
    unsigned osize;  /* the prefixes' operand size: 2, 4 or 8 */
    unsigned asize;  /* address size: 2, 4 or 8 */
    bool rex;        /* a REX prefix (changes AH..BH into SPL..DIL) */
    bool rex_w, rex_r, rex_x, rex_b;
    bool lock;
    uint8_t rep;      /* 0, 0xf2 or 0xf3 */
    int seg_override; /* enum hvi_x86_sreg or -1 */
    bool two_byte;    /* 0F escape */
    uint8_t opcode;
    /* ModRM */
    bool has_modrm;
    uint8_t mod;
    uint8_t reg; /* with REX.R */
    uint8_t rm;  /* with REX.B when mod == 3 */
    bool rip_rel;
    uint64_t disp_ea; /* effective address without RIP (not yet wrapped) */
    int ea_seg;       /* default segment of the memory operand */
    uint64_t imm;
    /* A REP string instruction failed after some iterations: its
     * register changes stand (they match the memory). */
    bool partial;
};

/* Errors with the instruction's bytes in the message. */
int hvi_x86_bad(const struct hvi_x86_insn *d, int err, const char *why);

/* Decoding (emu_decode.c). prefixes() reads prefixes and the opcode (one
 * or two bytes); modrm() the ModRM, SIB and displacement; imm() an
 * immediate of n bytes (1, 2, 4), sign-extended to 64 bits, or of 8. */
int hvi_x86_decode_prefixes(struct hvi_x86_insn *d, const uint8_t *insn,
                            size_t len, unsigned mode);
int hvi_x86_decode_modrm(struct hvi_x86_insn *d, const struct hvi_x86_cpu *c);
int hvi_x86_decode_imm(struct hvi_x86_insn *d, unsigned n, uint64_t *out);
/* The linear address of the memory operand, once the whole instruction
 * is decoded (RIP-relative needs its length). */
uint64_t hvi_x86_operand_addr(const struct hvi_x86_insn *d,
                              const struct hvi_x86_cpu *c);
/* seg:off as a linear address in the instruction's mode. */
uint64_t hvi_x86_linear(const struct hvi_x86_insn *d,
                        const struct hvi_x86_cpu *c, int seg, uint64_t off);

/* Registers. */
uint64_t hvi_x86_mask(unsigned size);
uint64_t hvi_x86_reg_get(const struct hvi_x86_insn *d,
                         const struct hvi_x86_cpu *c, unsigned r,
                         unsigned size);
void hvi_x86_reg_set(const struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                     unsigned r, unsigned size, uint64_t v);

/* ALU (emu_alu.c): op is the /digit of the 80 group (0 ADD, 1 OR, 2 ADC,
 * 3 SBB, 4 AND, 5 SUB, 6 XOR, 7 CMP). Returns the result (masked to
 * size) and updates the arithmetic flags in *rflags. */
uint64_t hvi_x86_alu(unsigned op, uint64_t a, uint64_t b, unsigned size,
                     uint64_t *rflags);
uint64_t hvi_x86_incdec(bool dec, uint64_t a, unsigned size, uint64_t *rflags);
uint64_t hvi_x86_neg(uint64_t a, unsigned size, uint64_t *rflags);

/* Executes the ALU-type opcodes (00-3D, 80-85, A8/A9, F6/F7, FE/FF,
 * 0F A3/AB/B3/BB/BA): returns 1 when it handled d, 0 when the opcode is
 * not one of them, or a negative errno. */
int hvi_x86_exec_alu(struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                     const struct hvi_x86_mem_ops *mem, void *opaque,
                     struct hvi_x86_emu_result *out);

/* STOS and MOVS (emu_string.c); as hvi_x86_exec_alu(). */
int hvi_x86_exec_string(struct hvi_x86_insn *d, struct hvi_x86_cpu *c,
                        const struct hvi_x86_mem_ops *mem, void *opaque,
                        struct hvi_x86_emu_result *out);

#endif
