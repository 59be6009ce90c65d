/* The library's own x86 instruction decoder and emulator for MMIO: a back
 * end that learns of an MMIO access with the instruction not executed (an
 * EPT violation on Hypervisor.framework) hands the instruction's bytes and
 * the vCPU's registers here, and the emulator performs the access through
 * callbacks, updates the registers and flags, and says how long the
 * instruction was. Backend-neutral: no KVM or OS header. The supported set
 * is listed in emulate.c and docs/X86_EMULATOR.md. */
#ifndef HVCORE_ARCH_X86_EMULATE_H
#define HVCORE_ARCH_X86_EMULATE_H

#include <stddef.h>
#include <stdint.h>

/* The longest x86 instruction. */
#define HVI_X86_MAX_INSN 15
/* Iterations of a REP string instruction done in one call; past it the
 * call returns with hvi_x86_emu_result::complete false. */
#define HVI_X86_REP_BATCH 1024u

/* General-purpose registers in the order the encoding numbers them. */
enum hvi_x86_gpr {
    HVI_X86_RAX,
    HVI_X86_RCX,
    HVI_X86_RDX,
    HVI_X86_RBX,
    HVI_X86_RSP,
    HVI_X86_RBP,
    HVI_X86_RSI,
    HVI_X86_RDI,
    HVI_X86_R8,
    HVI_X86_R9,
    HVI_X86_R10,
    HVI_X86_R11,
    HVI_X86_R12,
    HVI_X86_R13,
    HVI_X86_R14,
    HVI_X86_R15
};

/* Segment registers in the order the encoding numbers them. */
enum hvi_x86_sreg {
    HVI_X86_ES,
    HVI_X86_CS,
    HVI_X86_SS,
    HVI_X86_DS,
    HVI_X86_FS,
    HVI_X86_GS
};

/* RFLAGS bits the emulator reads or writes. */
#define HVI_X86_CF 0x0001u
#define HVI_X86_PF 0x0004u
#define HVI_X86_AF 0x0010u
#define HVI_X86_ZF 0x0040u
#define HVI_X86_SF 0x0080u
#define HVI_X86_DF 0x0400u
#define HVI_X86_OF 0x0800u
#define HVI_X86_ARITH_FLAGS                                                    \
    (HVI_X86_CF | HVI_X86_PF | HVI_X86_AF | HVI_X86_ZF | HVI_X86_SF |          \
     HVI_X86_OF)

/* The vCPU state the emulator reads and changes. */
struct hvi_x86_cpu {
    uint64_t gpr[16]; /* enum hvi_x86_gpr order */
    uint64_t rip;     /* only read (RIP-relative operands) */
    uint64_t rflags;
    /* Segment bases (enum hvi_x86_sreg order). In 64-bit mode only FS and
     * GS count; ES, CS, SS and DS are taken as 0, as the CPU does. */
    uint64_t seg_base[6];
    /* 64: 64-bit code (long mode, CS.L); 32 or 16: the default operand and
     * address size of the code segment (CS.D), in protected, real or
     * compatibility mode. Anything else is refused with -EINVAL. */
    unsigned mode;
    /* The faulting access was a write (EPT qualification bit 1). Only MOVS
     * uses it: a write fault makes the destination the MMIO side and the
     * source ordinary memory, a read fault the reverse. */
    unsigned fault_write;
};

/* Memory callbacks. Addresses are linear (segment base added, wrapped to
 * 32 bits outside 64-bit mode); translating them to guest-physical is the
 * caller's business. size is 1, 2, 4 or 8; values are little-endian
 * numbers in the low bytes. Each returns 0 or a negative errno, which the
 * emulator returns as is. The mmio_ pair serves the instruction's memory
 * operand (ModRM or moffs; STOS's destination; one side of MOVS), the mem_
 * pair the other operand of MOVS. All four are required. */
struct hvi_x86_mem_ops {
    int (*mmio_read)(void *opaque, uint64_t addr, unsigned size, uint64_t *val);
    int (*mmio_write)(void *opaque, uint64_t addr, unsigned size, uint64_t val);
    int (*mem_read)(void *opaque, uint64_t addr, unsigned size, uint64_t *val);
    int (*mem_write)(void *opaque, uint64_t addr, unsigned size, uint64_t val);
};

struct hvi_x86_emu_result {
    /* Bytes of the instruction, prefixes included (also the return
     * value). */
    unsigned length;
    /* 1: the instruction finished; advance RIP by length. 0: a REP string
     * instruction stopped after HVI_X86_REP_BATCH iterations with RCX,
     * RSI and RDI updated; leave RIP alone and run the guest again, which
     * re-executes the rest (interrupts get their chance in between). */
    unsigned complete;
    /* Memory accesses made through the callbacks. */
    unsigned accesses;
};

/* Decodes the instruction at insn[0..len) (at most HVI_X86_MAX_INSN bytes
 * are looked at; insn is hostile input and never read past len) and
 * emulates it on cpu through mem. On success the general-purpose
 * registers and RFLAGS are updated (RIP is not: the caller advances it by
 * the returned length when out->complete says so).
 *
 * @return the instruction's length (1..15); -EINVAL for bytes that are
 *         no valid instruction (truncated, over 15 bytes, LOCK where it is
 *         not allowed, a register where memory is required) and
 *         -ENOTSUP for a valid instruction outside the supported set, each
 *         with a message naming the bytes (hex-escaped); a callback's
 *         error as it returned it. On an error nothing is changed, except
 *         for a REP string instruction whose callback failed after some
 *         iterations: the registers then count the iterations done, which
 *         the memory already shows. */
int hvi_x86_emulate(struct hvi_x86_cpu *cpu, const uint8_t *insn, size_t len,
                    const struct hvi_x86_mem_ops *mem, void *opaque,
                    struct hvi_x86_emu_result *out);

#endif
