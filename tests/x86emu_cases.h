/* Instruction cases for test_x86_emulate.c: each an encoding, the
 * registers and flags before it, and the bytes of its memory operand, for
 * one guest mode. Generated (x86emu_cases.c), deterministically. */
#ifndef X86EMU_CASES_H
#define X86EMU_CASES_H

#include <stdint.h>

/* Guest layout the cases assume: code at XC_CODE (followed by the
 * harness's stop instruction), every memory operand inside
 * [XC_WIN, XC_WIN + XC_WIN_LEN), below 64 KiB so that 16-bit addressing
 * reaches it too. */
#define XC_CODE 0x9000u
#define XC_WIN 0xc000u
#define XC_WIN_LEN 0x2000u
#define XC_TARGET 0xd000u /* where most memory operands point */
#define XC_FS_BASE 0x3000u

struct xcase {
    char name[80];
    uint8_t code[16];
    unsigned len;     /* bytes of the instruction */
    uint64_t gpr[16]; /* encoding order: RAX RCX RDX RBX RSP RBP RSI RDI */
    uint64_t rflags;
    uint8_t mem[8]; /* at XC_TARGET, over the window's pattern */
    uint64_t undef; /* RFLAGS bits the instruction leaves undefined */
    unsigned fault_write;
};

typedef void (*xcase_fn)(const struct xcase *c, void *arg);

/* Calls fn for every case of mode (64, 32 or 16); returns how many. */
unsigned xcase_generate(unsigned mode, xcase_fn fn, void *arg);

#endif
