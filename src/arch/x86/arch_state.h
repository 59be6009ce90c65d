/* Architectural x86 vCPU and interrupt-controller state (DESIGN.md §9).
 *
 * These are the layouts of the hvc_backend_state kinds the backends
 * exchange with the core (include/hvcore/sys/backend.h, kinds 10-16 and
 * 68-71) and that a migration stream stores (docs/MIGRATION.md, format 2):
 * what the x86 architecture (Intel SDM, the 8259A and 8254 data sheets, the
 * 82093AA IOAPIC) defines, never one accelerator's structs, so that state
 * saved under one backend (KVM) restores under another (Hypervisor.framework)
 * and under the library's userspace interrupt controllers.
 *
 * Rules every layout here follows:
 * - self-contained: fixed-size integer fields, no pointers, no implicit
 *   padding (every hole is a named reserved field: written as zero, and a
 *   reader refuses one that is not);
 * - little-endian, as x86 is: the structs are used in place on an x86 host;
 * - each starts with hvi_x86_state_hdr: a layout version (1 for all of them
 *   today) and the blob's size in bytes, header included. A reader refuses a
 *   version it does not know and a size other than the one the layout and
 *   its counts give;
 * - blobs from a stream are hostile: a reader checks every field (reserved
 *   fields zero, counts bounded, enumerations in range) and names the field
 *   and its value when it refuses one (hvi_x86_check_* in
 *   arch_state.c do the checks that do not depend on the backend).
 *
 * Sizes are fixed by _Static_assert below and never change for a version;
 * a change of layout is a new version.
 */
#ifndef HVCORE_ARCH_X86_ARCH_STATE_H
#define HVCORE_ARCH_X86_ARCH_STATE_H

#include <hvcore/x86.h>

#include <stddef.h>
#include <stdint.h>

/* The version every layout below has today. */
#define HVI_X86_STATE_VERSION 1u

/* First 8 bytes of every blob. */
struct hvi_x86_state_hdr {
    uint32_t version; /* HVI_X86_STATE_VERSION */
    uint32_t size;    /* bytes of the whole blob, this header included */
};

/* ---- General registers (kind HVC_BACKEND_VCPU_ARCH_REGS) ---------------- */

/* One register by its public id (include/hvcore/x86.h). */
struct hvi_x86_reg_value {
    uint64_t id; /* hvc_reg */
    uint64_t value;
};

/* RAX..R15, RIP, RFLAGS: entry i has id HVC_X86_RAX + i (ids 0x00-0x11). */
#define HVI_X86_NR_GPRS 18u

struct hvi_x86_regs {
    struct hvi_x86_state_hdr hdr;
    uint32_t count;    /* HVI_X86_NR_GPRS */
    uint32_t reserved; /* zero */
    struct hvi_x86_reg_value regs[HVI_X86_NR_GPRS];
};

/* ---- Segment, descriptor-table, control and debug registers
 * (kind HVC_BACKEND_VCPU_ARCH_SREGS) --------------------------------------- */

/* Access rights in the VMX guest-state format (SDM Vol. 3C, 25.4.1): */
#define HVI_X86_AR_TYPE 0x000fu      /* bits 3:0 segment type */
#define HVI_X86_AR_S 0x0010u         /* bit 4 descriptor type (1 code/data) */
#define HVI_X86_AR_DPL_SHIFT 5       /* bits 6:5 DPL */
#define HVI_X86_AR_P 0x0080u         /* bit 7 present */
#define HVI_X86_AR_AVL 0x1000u       /* bit 12 available */
#define HVI_X86_AR_L 0x2000u         /* bit 13 64-bit code */
#define HVI_X86_AR_DB 0x4000u        /* bit 14 default operation size */
#define HVI_X86_AR_G 0x8000u         /* bit 15 granularity */
#define HVI_X86_AR_UNUSABLE 0x10000u /* bit 16 segment unusable */
/* Bits 11:8 and 31:17 are reserved: zero. */
#define HVI_X86_AR_RESERVED 0xfffe0f00u

/* A segment register (selector and hidden descriptor cache) or, for GDTR
 * and IDTR, a descriptor-table register (base and limit; selector and ar
 * zero). */
struct hvi_x86_segment {
    uint64_t id;       /* hvc_reg: HVC_X86_CS .. HVC_X86_IDTR */
    uint64_t base;     /* linear base address */
    uint32_t limit;    /* in bytes (already scaled by G); 16 bits for DTRs */
    uint16_t selector; /* zero for GDTR, IDTR */
    uint16_t reserved0;
    uint32_t ar; /* access rights, HVI_X86_AR_*; zero for GDTR, IDTR */
    uint32_t reserved1;
};

/* CS, DS, ES, FS, GS, SS, TR, LDTR, GDTR, IDTR: entry i has id
 * HVC_X86_CS + i (ids 0x300-0x309). */
#define HVI_X86_NR_SEGMENTS 10u

struct hvi_x86_sregs {
    struct hvi_x86_state_hdr hdr;
    uint32_t nr_segments; /* HVI_X86_NR_SEGMENTS */
    uint32_t reserved;    /* zero */
    struct hvi_x86_segment segments[HVI_X86_NR_SEGMENTS];
    uint64_t cr0, cr2, cr3, cr4;
    uint64_t cr8; /* the task-priority class, 0..15 */
    uint64_t efer;
    /* IA32_APIC_BASE (MSR 0x1b). Also in hvi_x86_lapic, with the same
     * value when both are saved; a restore applies this one with the
     * control registers and the LAPIC's with the LAPIC. */
    uint64_t apic_base;
    uint64_t dr0, dr1, dr2, dr3;
    uint64_t dr6, dr7; /* bits 63:32 zero */
};

/* ---- MSRs (kind HVC_BACKEND_VCPU_ARCH_MSRS) ------------------------------ */

struct hvi_x86_msr {
    uint32_t index;
    uint32_t reserved; /* zero */
    uint64_t value;
};

/* A reader refuses more. */
#define HVI_X86_MAX_MSRS 1024u

/* Every MSR the backend saves, by index, in ascending index order, none
 * twice, except those other records carry: IA32_TSC (0x10),
 * IA32_TSC_ADJUST (0x3b), IA32_TSC_DEADLINE (0x6e0) (the TSC record),
 * IA32_APIC_BASE (0x1b) (sregs, LAPIC) and IA32_EFER (0xc0000080)
 * (sregs). Which other MSRs appear is the saving backend's choice; a
 * restoring backend refuses, naming it, an MSR it cannot set. size =
 * sizeof(struct hvi_x86_msrs) + count * sizeof(struct hvi_x86_msr). */
struct hvi_x86_msrs {
    struct hvi_x86_state_hdr hdr;
    uint32_t count;    /* <= HVI_X86_MAX_MSRS */
    uint32_t reserved; /* zero */
    struct hvi_x86_msr entries[];
};

/* ---- XSAVE (kind HVC_BACKEND_VCPU_ARCH_XSAVE) ---------------------------- */

/* The legacy region (x87, SSE: 512 bytes) and the XSAVE header (64). */
#define HVI_X86_XSAVE_LEGACY 512u
#define HVI_X86_XSAVE_HEADER 64u
#define HVI_X86_XSAVE_MIN (HVI_X86_XSAVE_LEGACY + HVI_X86_XSAVE_HEADER)
/* A reader refuses a larger area (AMX's is about 11 KiB). */
#define HVI_X86_XSAVE_MAX (64u << 10)
/* Offsets in the XSAVE header (from the start of the area). */
#define HVI_X86_XSTATE_BV_OFFSET 512u
#define HVI_X86_XCOMP_BV_OFFSET 520u

/* The x87/SSE/AVX... state as XSAVE stores it in the standard
 * (non-compacted) format (SDM Vol. 1, 13.4): the legacy region at 0, the
 * XSAVE header at 512 (XSTATE_BV; XCOMP_BV zero; the rest zero), each
 * component at the offset CPUID.(EAX=0DH,ECX=i).EBX gives. xsave_size is
 * the size of the area the saving backend had (at least the end of the
 * last component XCR0 enables); a restoring backend whose area is smaller
 * refuses bytes past its end that are not zero, and zero-fills an area
 * larger than the one saved. xcr0 is XCR0 (XFEATURE_ENABLED_MASK), set
 * with the area. size = sizeof(struct hvi_x86_xsave) + xsave_size. */
struct hvi_x86_xsave {
    struct hvi_x86_state_hdr hdr;
    uint64_t xcr0;       /* bit 0 (x87) always set */
    uint32_t xsave_size; /* HVI_X86_XSAVE_MIN .. HVI_X86_XSAVE_MAX */
    uint32_t reserved;   /* zero */
    uint8_t area[];
};

/* ---- Pending events and activity (kind HVC_BACKEND_VCPU_ARCH_EVENTS) --- */

/* The activity state (the VMX guest activity state, SDM 25.4.2, with the
 * two states around a start-up IPI spelled out). */
enum {
    HVI_X86_ACT_ACTIVE = 0,
    HVI_X86_ACT_HLT = 1,
    HVI_X86_ACT_SHUTDOWN = 2,
    /* An INIT was taken: waits for a SIPI. */
    HVI_X86_ACT_WAIT_SIPI = 3,
    /* An application processor after RESET that has not taken an INIT. */
    HVI_X86_ACT_WAIT_INIT = 4,
    /* A SIPI arrived (vector sipi_vector) and is not yet taken. */
    HVI_X86_ACT_SIPI_RECEIVED = 5,
    HVI_X86_ACT_MAX = 5
};

/* hvi_x86_events.flags */
#define HVI_X86_EV_EXC_PENDING 0x0001u  /* an exception raised, not yet */
#define HVI_X86_EV_EXC_INJECTED 0x0002u /* ... being delivered */
#define HVI_X86_EV_EXC_ERROR 0x0004u    /* exception_error_code is valid */
#define HVI_X86_EV_EXC_PAYLOAD 0x0008u  /* exception_payload is valid */
#define HVI_X86_EV_IRQ_INJECTED 0x0010u /* interrupt_vector being delivered */
#define HVI_X86_EV_IRQ_SOFT 0x0020u     /* ... by INTn */
#define HVI_X86_EV_NMI_INJECTED 0x0040u /* an NMI being delivered */
#define HVI_X86_EV_NMI_MASKED 0x0080u   /* blocking by NMI */
#define HVI_X86_EV_SMI_PENDING 0x0100u
#define HVI_X86_EV_IN_SMM 0x0200u
#define HVI_X86_EV_SMM_INSIDE_NMI 0x0400u
#define HVI_X86_EV_INIT_LATCHED 0x0800u /* an INIT held while in SMM */
#define HVI_X86_EV_TRIPLE_FAULT 0x1000u /* a shutdown not yet taken */
#define HVI_X86_EV_ALL 0x1fffu

/* interrupt_shadow bits (VMX interruptibility state, bits 1:0). */
#define HVI_X86_SHADOW_STI 1u
#define HVI_X86_SHADOW_MOV_SS 2u

/* Events between two instructions, in a form no accelerator owns: an
 * exception pending (raised, not yet delivered: a reader may still turn it
 * into a VM exit) or injected (being delivered), an external interrupt or
 * NMI being delivered, NMIs latched, the interrupt shadow, and the
 * activity state. External interrupts not yet acknowledged stay in the
 * interrupt controllers' IRR. */
struct hvi_x86_events {
    struct hvi_x86_state_hdr hdr;
    uint32_t activity;        /* HVI_X86_ACT_* */
    uint32_t flags;           /* HVI_X86_EV_* */
    uint8_t exception_vector; /* 0..31 except 2 (NMI), when pending/injected */
    uint8_t interrupt_vector; /* when HVI_X86_EV_IRQ_INJECTED */
    uint8_t sipi_vector;      /* HVI_X86_ACT_SIPI_RECEIVED's vector */
    uint8_t nmi_pending;      /* NMIs latched, 0..2 */
    uint8_t interrupt_shadow; /* HVI_X86_SHADOW_* */
    uint8_t reserved0[3];     /* zero */
    uint32_t exception_error_code;
    uint32_t reserved1; /* zero */
    /* With HVI_X86_EV_EXC_PAYLOAD: what delivering the pending exception
     * writes, CR2 of a #PF or the DR6 bits of a #DB. */
    uint64_t exception_payload;
};

/* ---- Local APIC (kind HVC_BACKEND_VCPU_ARCH_LAPIC) ----------------------- */

#define HVI_X86_LAPIC_PAGE 1024u
/* Register offsets in the page (SDM Vol. 3A, table 11-1). */
#define HVI_X86_LAPIC_ID 0x020u
#define HVI_X86_LAPIC_VERSION 0x030u
#define HVI_X86_LAPIC_TPR 0x080u
#define HVI_X86_LAPIC_LDR 0x0d0u
#define HVI_X86_LAPIC_DFR 0x0e0u
#define HVI_X86_LAPIC_SVR 0x0f0u
#define HVI_X86_LAPIC_ISR 0x100u
#define HVI_X86_LAPIC_TMR 0x180u
#define HVI_X86_LAPIC_IRR 0x200u
#define HVI_X86_LAPIC_ICR_LO 0x300u
#define HVI_X86_LAPIC_ICR_HI 0x310u
#define HVI_X86_LAPIC_LVT_TIMER 0x320u
#define HVI_X86_LAPIC_TIMER_ICR 0x380u
#define HVI_X86_LAPIC_TIMER_CCR 0x390u
#define HVI_X86_LAPIC_TIMER_DCR 0x3e0u
/* IA32_APIC_BASE bits. */
#define HVI_X86_APIC_BASE_BSP 0x100ull
#define HVI_X86_APIC_BASE_X2APIC 0x400ull
#define HVI_X86_APIC_BASE_ENABLE 0x800ull

/* The xAPIC register page as the SDM lays it out: register at offset
 * 0x10 * n holds its 32 bits in the slot's first four bytes (the other 12
 * are zero), 0x000-0x3f0. In x2APIC mode (apic_base bit 10) the same page
 * with the x2APIC meanings: the ID register holds the 32-bit x2APIC ID
 * (in xAPIC mode, the ID in bits 31:24), ICR high the 32-bit destination.
 * The timer's current count (0x390) is the count at the save; a restore
 * starts the timer again from it. */
struct hvi_x86_lapic {
    struct hvi_x86_state_hdr hdr;
    uint64_t apic_base; /* IA32_APIC_BASE */
    uint8_t regs[HVI_X86_LAPIC_PAGE];
};

/* ---- IOAPIC (kind HVC_BACKEND_VM_ARCH_IOAPIC) ---------------------------- */

#define HVI_X86_IOAPIC_PINS 24u

/* The 82093AA's registers. */
struct hvi_x86_ioapic {
    struct hvi_x86_state_hdr hdr;
    uint64_t base_address; /* MMIO base, 0xfec00000 */
    uint32_t id;       /* IOAPIC ID, 0..15 (the IOAPICID register's ID field) */
    uint32_t ioregsel; /* the index register, 0..255 */
    /* The pins' latched inputs (bit n = pin n): an edge not yet delivered
     * or a level held asserted. */
    uint32_t irr;
    uint32_t reserved; /* zero */
    /* Redirection entries: vector 7:0, delivery mode 10:8, destination
     * mode 11, delivery status 12, polarity 13, remote IRR 14, trigger
     * mode 15, mask 16, reserved 55:17 (zero), destination 63:56. */
    uint64_t redir[HVI_X86_IOAPIC_PINS];
};

/* ---- 8259A PIC (kinds HVC_BACKEND_VM_ARCH_PIC_MASTER, _SLAVE) ----------- */

/* init_state: what the next write to the data port is. */
enum {
    HVI_X86_PIC_READY = 0, /* OCW1 (IMR) */
    HVI_X86_PIC_ICW2 = 1,
    HVI_X86_PIC_ICW3 = 2,
    HVI_X86_PIC_ICW4 = 3
};

/* One 8259A: its registers and the state of its command sequence. Every
 * field but the last two is a byte of 8259A state; booleans are 0 or 1. */
struct hvi_x86_pic {
    struct hvi_x86_state_hdr hdr;
    uint8_t irr;                /* interrupt request register */
    uint8_t isr;                /* in-service register */
    uint8_t imr;                /* interrupt mask register (OCW1) */
    uint8_t last_irr;           /* input levels last sampled (edge detection) */
    uint8_t priority_add;       /* rotation: the highest-priority line, 0..7 */
    uint8_t irq_base;           /* ICW2: vector of line 0 (bits 2:0 zero) */
    uint8_t read_reg_select;    /* OCW3 RIS: a read gives 0 IRR, 1 ISR */
    uint8_t poll;               /* OCW3 poll command pending */
    uint8_t special_mask;       /* OCW3 special mask mode */
    uint8_t init_state;         /* HVI_X86_PIC_* */
    uint8_t auto_eoi;           /* ICW4 AEOI */
    uint8_t rotate_on_auto_eoi; /* OCW2 rotate in AEOI mode */
    uint8_t special_fully_nested; /* ICW4 SFNM */
    uint8_t init4;                /* ICW1 IC4: an ICW4 follows */
    /* The chipset's edge/level control register for the 8 lines (PIIX
     * ELCR, ports 0x4d0/0x4d1) and which of its bits are writable. */
    uint8_t elcr;
    uint8_t elcr_mask;
};

/* ---- 8254 PIT (kind HVC_BACKEND_VM_ARCH_PIT) ----------------------------- */

/* Access modes (control word bits 5:4) and where a two-byte access is. */
enum {
    HVI_X86_PIT_RW_LSB = 1,
    HVI_X86_PIT_RW_MSB = 2,
    HVI_X86_PIT_RW_WORD0 = 3, /* LSB then MSB: LSB next */
    HVI_X86_PIT_RW_WORD1 = 4  /* LSB then MSB: MSB next */
};

#define HVI_X86_PIT_UNPROGRAMMED 0xffu

/* One counter of the 8254. read_state, write_state and rw_mode are 0 for a
 * counter never programmed. */
struct hvi_x86_pit_channel {
    uint32_t count;         /* the reload value, 1..0x10000 (0 means 0x10000) */
    uint16_t latched_count; /* the output latch of a counter-latch command */
    uint8_t count_latched;  /* 0, or the HVI_X86_PIT_RW_* step of reading it */
    uint8_t status_latched; /* a read-back status is latched */
    uint8_t status;         /* that status byte */
    uint8_t read_state;     /* HVI_X86_PIT_RW_*: the next read's byte */
    uint8_t write_state;    /* HVI_X86_PIT_RW_*: the next write's byte */
    uint8_t write_latch;    /* the LSB written, awaiting the MSB */
    uint8_t rw_mode;        /* the control word's access mode, 1..3 */
    uint8_t mode; /* counting mode 0..5; HVI_X86_PIT_UNPROGRAMMED before the
                   * first control word */
    uint8_t bcd;  /* BCD counting */
    uint8_t gate; /* the GATE input */
    /* Nanoseconds since the count was loaded, at the save, so a restore
     * can go on counting (a backend that cannot restarts the count). */
    uint64_t elapsed_ns;
};

/* hvi_x86_pit.flags */
#define HVI_X86_PIT_HPET_LEGACY 1u /* the HPET drives IRQ 0 instead */
#define HVI_X86_PIT_SPEAKER_ON 2u  /* port 0x61 bit 1: speaker data on */
#define HVI_X86_PIT_FLAGS 3u

struct hvi_x86_pit {
    struct hvi_x86_state_hdr hdr;
    uint32_t flags;    /* HVI_X86_PIT_* */
    uint32_t reserved; /* zero */
    struct hvi_x86_pit_channel channels[3];
};

/* ---- CPUID (kind HVC_BACKEND_VCPU_ARCH_CPUID) ---------------------------- */

#define HVI_X86_CPUID_INDEXED 1u /* flags: the sub-leaf (index) matters */
#define HVI_X86_MAX_CPUID 1024u  /* a reader refuses more */

struct hvi_x86_cpuid_entry {
    uint32_t function; /* EAX in */
    uint32_t index;    /* ECX in; zero unless HVI_X86_CPUID_INDEXED */
    uint32_t flags;    /* HVI_X86_CPUID_INDEXED */
    uint32_t eax, ebx, ecx, edx;
    uint32_t reserved; /* zero */
};

/* The CPUID the vCPU was given, leaf by leaf. size =
 * sizeof(struct hvi_x86_cpuid) + count * sizeof(struct hvi_x86_cpuid_entry).
 */
struct hvi_x86_cpuid {
    struct hvi_x86_state_hdr hdr;
    uint32_t count;    /* <= HVI_X86_MAX_CPUID */
    uint32_t reserved; /* zero */
    struct hvi_x86_cpuid_entry entries[];
};

_Static_assert(sizeof(struct hvi_x86_state_hdr) == 8, "hdr");
_Static_assert(sizeof(struct hvi_x86_regs) == 304, "regs");
_Static_assert(sizeof(struct hvi_x86_segment) == 32, "segment");
_Static_assert(sizeof(struct hvi_x86_sregs) == 16 + 320 + 13 * 8, "sregs");
_Static_assert(sizeof(struct hvi_x86_msr) == 16, "msr");
_Static_assert(sizeof(struct hvi_x86_msrs) == 16, "msrs");
_Static_assert(sizeof(struct hvi_x86_xsave) == 24, "xsave");
_Static_assert(sizeof(struct hvi_x86_events) == 40, "events");
_Static_assert(sizeof(struct hvi_x86_lapic) == 16 + 1024, "lapic");
_Static_assert(sizeof(struct hvi_x86_ioapic) == 32 + HVI_X86_IOAPIC_PINS * 8,
               "ioapic");
_Static_assert(sizeof(struct hvi_x86_pic) == 24, "pic");
_Static_assert(sizeof(struct hvi_x86_pit_channel) == 24, "pit channel");
_Static_assert(sizeof(struct hvi_x86_pit) == 88, "pit");
_Static_assert(sizeof(struct hvi_x86_cpuid_entry) == 32, "cpuid entry");
_Static_assert(sizeof(struct hvi_x86_cpuid) == 16, "cpuid");
_Static_assert(offsetof(struct hvi_x86_xsave, area) == 24, "xsave area");

/* Segment access rights to and from the public struct. */
static inline uint32_t hvi_x86_ar_pack(const hvc_x86_segment *s)
{
    return (uint32_t)(s->type & 0xf) | (s->s ? HVI_X86_AR_S : 0) |
           (uint32_t)(s->dpl & 3) << HVI_X86_AR_DPL_SHIFT |
           (s->present ? HVI_X86_AR_P : 0) | (s->avl ? HVI_X86_AR_AVL : 0) |
           (s->l ? HVI_X86_AR_L : 0) | (s->db ? HVI_X86_AR_DB : 0) |
           (s->g ? HVI_X86_AR_G : 0) | (s->unusable ? HVI_X86_AR_UNUSABLE : 0);
}

static inline void hvi_x86_ar_unpack(uint32_t ar, hvc_x86_segment *s)
{
    s->type = (uint8_t)(ar & HVI_X86_AR_TYPE);
    s->s = !!(ar & HVI_X86_AR_S);
    s->dpl = (uint8_t)((ar >> HVI_X86_AR_DPL_SHIFT) & 3);
    s->present = !!(ar & HVI_X86_AR_P);
    s->avl = !!(ar & HVI_X86_AR_AVL);
    s->l = !!(ar & HVI_X86_AR_L);
    s->db = !!(ar & HVI_X86_AR_DB);
    s->g = !!(ar & HVI_X86_AR_G);
    s->unusable = !!(ar & HVI_X86_AR_UNUSABLE);
}

/* arch_state.c: the checks that do not depend on the backend, for a blob
 * copied into an aligned buffer of @p length bytes (what the stream or
 * the caller gave). Each checks the header (version, size = @p length =
 * what the layout and its count give), reserved fields, counts and
 * enumerations, and returns 0 or -EINVAL with a message naming the state,
 * the field and its value (hvi_error). */
int hvi_x86_check_regs(const struct hvi_x86_regs *r, size_t length);
int hvi_x86_check_sregs(const struct hvi_x86_sregs *s, size_t length);
int hvi_x86_check_msrs(const struct hvi_x86_msrs *m, size_t length);
int hvi_x86_check_xsave(const struct hvi_x86_xsave *x, size_t length);
int hvi_x86_check_events(const struct hvi_x86_events *e, size_t length);
int hvi_x86_check_lapic(const struct hvi_x86_lapic *l, size_t length);
int hvi_x86_check_ioapic(const struct hvi_x86_ioapic *io, size_t length);
/* @p which: "PIC master" or "PIC slave". */
int hvi_x86_check_pic(const char *which, const struct hvi_x86_pic *p,
                      size_t length);
int hvi_x86_check_pit(const struct hvi_x86_pit *p, size_t length);
int hvi_x86_check_cpuid(const struct hvi_x86_cpuid *c, size_t length);
/* Fills a blob's header (version and size). */
static inline void hvi_x86_state_init(struct hvi_x86_state_hdr *h, size_t size)
{
    h->version = HVI_X86_STATE_VERSION;
    h->size = (uint32_t)size;
}

#endif
