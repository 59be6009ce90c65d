/**
 * @file hvcore/x86.h
 * @brief x86 register identifiers and the segment descriptor struct.
 *
 * Registers are addressed by a 64-bit id, so that adding a register never
 * changes a struct. Scalar registers (general-purpose, RIP, RFLAGS, control,
 * debug, any MSR) are read and written with hvc_vcpu_get_regs() and
 * hvc_vcpu_set_regs(); segment registers and descriptor tables with
 * hvc_vcpu_get_segment() and hvc_vcpu_set_segment().
 *
 * Id values are stable and never renumbered.
 */
#ifndef HVCORE_X86_H
#define HVCORE_X86_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A register id: an ::hvc_x86_reg value or HVC_X86_MSR(index). */
typedef uint64_t hvc_reg;

/** Register ids. */
typedef enum hvc_x86_reg {
    /* General-purpose registers. */
    HVC_X86_RAX = 0x0000,
    HVC_X86_RBX = 0x0001,
    HVC_X86_RCX = 0x0002,
    HVC_X86_RDX = 0x0003,
    HVC_X86_RSI = 0x0004,
    HVC_X86_RDI = 0x0005,
    HVC_X86_RSP = 0x0006,
    HVC_X86_RBP = 0x0007,
    HVC_X86_R8 = 0x0008,
    HVC_X86_R9 = 0x0009,
    HVC_X86_R10 = 0x000a,
    HVC_X86_R11 = 0x000b,
    HVC_X86_R12 = 0x000c,
    HVC_X86_R13 = 0x000d,
    HVC_X86_R14 = 0x000e,
    HVC_X86_R15 = 0x000f,
    HVC_X86_RIP = 0x0010,
    HVC_X86_RFLAGS = 0x0011,

    /* Control registers. */
    HVC_X86_CR0 = 0x0100,
    HVC_X86_CR2 = 0x0102,
    HVC_X86_CR3 = 0x0103,
    HVC_X86_CR4 = 0x0104,
    HVC_X86_CR8 = 0x0108,
    /** IA32_EFER; the same register as HVC_X86_MSR(0xc0000080). */
    HVC_X86_EFER = 0x0180,
    /** IA32_APIC_BASE; the same register as HVC_X86_MSR(0x1b). */
    HVC_X86_APIC_BASE = 0x0181,

    /* Debug registers. */
    HVC_X86_DR0 = 0x0200,
    HVC_X86_DR1 = 0x0201,
    HVC_X86_DR2 = 0x0202,
    HVC_X86_DR3 = 0x0203,
    HVC_X86_DR6 = 0x0206,
    HVC_X86_DR7 = 0x0207,

    /* Segment registers and descriptor tables (hvc_vcpu_get_segment()). */
    HVC_X86_CS = 0x0300,
    HVC_X86_DS = 0x0301,
    HVC_X86_ES = 0x0302,
    HVC_X86_FS = 0x0303,
    HVC_X86_GS = 0x0304,
    HVC_X86_SS = 0x0305,
    HVC_X86_TR = 0x0306,
    HVC_X86_LDTR = 0x0307,
    /** Global descriptor table; only base and limit are meaningful. */
    HVC_X86_GDTR = 0x0308,
    /** Interrupt descriptor table; only base and limit are meaningful. */
    HVC_X86_IDTR = 0x0309
} hvc_x86_reg;

/** Id of the model-specific register with index @p index (any MSR). */
#define HVC_X86_MSR(index)                                                     \
    ((hvc_reg)0x100000000ull | (hvc_reg)(uint32_t)(index))
/** Non-zero when @p id names an MSR. */
#define HVC_X86_IS_MSR(id) (((id) >> 32) == 1u)

/**
 * A segment register's visible selector and hidden descriptor cache, or a
 * descriptor table register (base and limit only). Fixed layout, 32 bytes;
 * it never changes.
 */
typedef struct hvc_x86_segment {
    /** Linear base address. */
    uint64_t base;
    /** Limit in bytes (already scaled when @c g is set). */
    uint32_t limit;
    /** Selector. */
    uint16_t selector;
    /** Descriptor type field (4 bits), e.g. 0xb for a 32/64-bit code. */
    uint8_t type;
    /** Present bit. */
    uint8_t present;
    /** Descriptor privilege level, 0..3. */
    uint8_t dpl;
    /** Default operation size: 1 for 32-bit code/data. */
    uint8_t db;
    /** 1 for code/data, 0 for system segments. */
    uint8_t s;
    /** 64-bit code segment. */
    uint8_t l;
    /** Granularity: 1 when the limit was given in 4 KiB units. */
    uint8_t g;
    /** Available for system software. */
    uint8_t avl;
    /** 1 when the segment is unusable (null selector in protected mode). */
    uint8_t unusable;
    /** Zero. */
    uint8_t reserved[9];
} hvc_x86_segment;

/** Execution modes for hvc_vcpu_set_mode(). */
typedef enum hvc_x86_mode {
    /** Real mode: CS base = selector * 16, 64 KiB segment limits. */
    HVC_X86_MODE_REAL = 0,
    /** 32-bit protected mode, flat 4 GiB segments, paging off. */
    HVC_X86_MODE_PROTECTED32 = 1,
    /** 64-bit long mode with identity-mapped page tables. */
    HVC_X86_MODE_LONG64 = 2
} hvc_x86_mode;

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_X86_H */
