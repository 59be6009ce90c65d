/*
 * The library's userspace x86 interrupt controllers (src/arch/x86): a
 * local APIC per vCPU (xAPIC page and x2APIC MSRs, with its timer in
 * one-shot, periodic and TSC-deadline modes), one IOAPIC (24 pins), the
 * two cascaded 8259s with their ELCR, and the 8254 PIT with port 0x61.
 * Backend-neutral: used by every backend that has no in-kernel chip of its
 * own (Hypervisor.framework), and by KVM in the mode without the in-kernel
 * irqchip (HVC_VM_USER_IRQCHIP).
 *
 * The chips are state machines without threads. The host (the core,
 * src/core/irq_user.c) supplies the clock, is told which vCPU to wake,
 * and runs the timers: it asks hvi_irqchip_next_deadline() when the next
 * one is due and calls hvi_irqchip_run_timers() then.
 *
 * Locking: one mutex per chip set protects every chip of it (all LAPICs,
 * the IOAPIC, both PICs and the PIT), because a delivery crosses them
 * (PIT -> PIC -> LAPIC, LAPIC EOI -> IOAPIC). Every hvi_irqchip_* call
 * takes it itself; the host callbacks run with it held and must take no
 * lock (they only post wake-ups and kick vCPUs, which are lock-free). It
 * is a leaf: the core's lock order (src/core/internal.h) puts it below
 * every other lock.
 *
 * Time is host CLOCK_MONOTONIC nanoseconds, as host->now_ns() gives it.
 * The APIC timer counts at 1 GHz (one bus cycle per ns before the divide
 * configuration); the PIT at 1193182 Hz.
 */
#ifndef HVCORE_ARCH_X86_IRQCHIP_H
#define HVCORE_ARCH_X86_IRQCHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HVI_IRQCHIP_PINS 24          /* IOAPIC pins = GSIs */
#define HVI_APIC_DEFAULT_BASE 0xfee00000ull
#define HVI_IOAPIC_BASE 0xfec00000ull
#define HVI_IOAPIC_SIZE 0x1000ull
#define HVI_MSR_APIC_BASE 0x1bu
#define HVI_MSR_TSC_DEADLINE_IRQ 0x6e0u
#define HVI_MSR_X2APIC_FIRST 0x800u
#define HVI_MSR_X2APIC_LAST 0x8ffu
#define HVI_APIC_BUS_NS 1 /* one APIC bus cycle */
#define HVI_PIT_HZ 1193182u

struct hvi_irqchip;

/* What the host provides. Every callback is called with the chip lock
 * held, from whichever thread made the call (a vCPU, a device, the timer
 * thread): none may call back into the chip or take a lock. */
struct hvi_irqchip_host {
    void *opaque;
    /* CLOCK_MONOTONIC in ns. */
    uint64_t (*now_ns)(void *opaque);
    /* LAPIC @p cpu has something new to take (an interrupt above its
     * priority, an NMI, INIT or SIPI, or the PIC's ExtINT): take it out of
     * the guest or out of HLT. */
    void (*wake)(void *opaque, uint32_t cpu);
    /* A timer deadline moved earlier: re-read hvi_irqchip_next_deadline(). */
    void (*timer_changed)(void *opaque);
};

/* What a vCPU takes next (hvi_irqchip_ack). */
enum hvi_irq_kind {
    HVI_IRQ_NONE = 0,
    HVI_IRQ_INTR = 1, /* an external interrupt: vector */
    HVI_IRQ_NMI = 2,
    HVI_IRQ_INIT = 3, /* reset the vCPU and wait for a SIPI */
    HVI_IRQ_SIPI = 4  /* start at vector << 12 in real mode */
};

/* Lifetime. @p max_cpus LAPICs may be added, ids 0..max_cpus-1 (the APIC
 * id is the vCPU id). -ENOMEM with a message. */
int hvi_irqchip_create(const struct hvi_irqchip_host *host, uint32_t max_cpus,
                       struct hvi_irqchip **out);
void hvi_irqchip_destroy(struct hvi_irqchip *c);
/* Adds the LAPIC of vCPU @p cpu (0 is the BSP) in its reset state. */
int hvi_irqchip_add_cpu(struct hvi_irqchip *c, uint32_t cpu);
/* Removes it (the vCPU is destroyed). */
void hvi_irqchip_remove_cpu(struct hvi_irqchip *c, uint32_t cpu);

/* --- The bus side: devices and the VMM --- */
/* Sets GSI @p gsi (< HVI_IRQCHIP_PINS) to @p level: GSIs 0..15 reach the
 * 8259s (IRQ n) and IOAPIC pin n, except IRQ 0 which reaches pin 2
 * (the usual interrupt source override); the others only the IOAPIC. */
void hvi_irqchip_set_irq(struct hvi_irqchip *c, uint32_t gsi, int level);
/* An MSI write of @p data at @p address (0xfeeXXXXX): -EINVAL when the
 * address is not in the MSI window. */
int hvi_irqchip_msi(struct hvi_irqchip *c, uint64_t address, uint32_t data);

/* Port I/O of the chips: 0x20-0x21, 0xa0-0xa1 (PICs), 0x4d0-0x4d1 (ELCR),
 * 0x40-0x43 (PIT), 0x61 (speaker/gate). Returns true when @p port is one
 * of them (the access is then done: @p data filled for a read). */
bool hvi_irqchip_pio(struct hvi_irqchip *c, uint16_t port, uint8_t size,
                     bool is_write, uint8_t *data);
/* MMIO: the LAPIC page of vCPU @p cpu (at its APIC base, while enabled in
 * xAPIC mode) and the IOAPIC page. True when claimed. */
bool hvi_irqchip_mmio(struct hvi_irqchip *c, uint32_t cpu, uint64_t gpa,
                      uint8_t size, bool is_write, uint8_t *data);
/* MSRs of vCPU @p cpu: IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC
 * range. Returns 1 when handled, 0 when the MSR is not the chip's, and
 * -EINVAL when the guest must get a #GP (reserved bits, x2APIC MSR while
 * not in x2APIC mode, a read-only register). @p guest_tsc is the vCPU's
 * TSC now and @p tsc_khz its rate (for the TSC deadline; 0 when unknown).
 */
int hvi_irqchip_rdmsr(struct hvi_irqchip *c, uint32_t cpu, uint32_t msr,
                      uint64_t *value);
int hvi_irqchip_wrmsr(struct hvi_irqchip *c, uint32_t cpu, uint32_t msr,
                      uint64_t value, uint64_t guest_tsc, uint32_t tsc_khz);
/* The guest-physical base of vCPU @p cpu's APIC page (IA32_APIC_BASE). */
uint64_t hvi_irqchip_apic_base(struct hvi_irqchip *c, uint32_t cpu);

/* --- The CPU side: the vCPU's run loop --- */
/* What vCPU @p cpu would take now, without taking it: an HVI_IRQ_* kind.
 * INTR only when an interrupt is above the processor priority (or the
 * PIC's ExtINT). */
int hvi_irqchip_pending(struct hvi_irqchip *c, uint32_t cpu);
/* Takes it: INTR (the vector moves from IRR to ISR, or the PIC is
 * acknowledged), NMI, INIT (the LAPIC resets but keeps its id and base)
 * or SIPI (@p vector is the start page). Returns the kind; HVI_IRQ_NONE
 * when nothing is pending. */
int hvi_irqchip_ack(struct hvi_irqchip *c, uint32_t cpu, uint8_t *vector);
/* True when vCPU @p cpu is waiting for a SIPI after an INIT (an AP out of
 * reset, hvi_irqchip_add_cpu() with cpu != 0, starts that way). */
bool hvi_irqchip_wait_sipi(struct hvi_irqchip *c, uint32_t cpu);
/* Makes vCPU @p cpu runnable without a SIPI (hvc_vcpu_set_runnable). */
void hvi_irqchip_set_started(struct hvi_irqchip *c, uint32_t cpu);

/* --- Timers --- */
/* The earliest deadline of any chip timer, UINT64_MAX when none. */
uint64_t hvi_irqchip_next_deadline(struct hvi_irqchip *c);
/* Fires every timer due at @p now_ns. */
void hvi_irqchip_run_timers(struct hvi_irqchip *c, uint64_t now_ns);

/* --- State (snapshot, migration), in the architectural layouts --- */
#define HVI_IRQCHIP_STATE_VERSION 1u
/* One LAPIC: the 4 KiB xAPIC register page as the architecture lays it
 * out (ID at 0x20, ..., the current count at 0x390), with what the page
 * does not hold. Times are relative: the timer's remaining ns, so that a
 * restore on another host (or later) resumes the count. */
struct hvi_lapic_state {
    uint32_t version;
    uint32_t flags;      /* HVI_LAPIC_S_* */
    uint64_t apic_base;  /* IA32_APIC_BASE */
    uint64_t tsc_deadline;
    uint64_t timer_remaining_ns; /* 0: not armed */
    uint64_t timer_period_ns;    /* periodic mode: the reload, else 0 */
    uint32_t sipi_vector;
    uint32_t pad;
    uint8_t regs[0x400]; /* the page's first 1 KiB: every register */
};
#define HVI_LAPIC_S_NMI 1u        /* an NMI is pending */
#define HVI_LAPIC_S_INIT 2u       /* an INIT is pending */
#define HVI_LAPIC_S_SIPI 4u       /* a SIPI is pending */
#define HVI_LAPIC_S_WAIT_SIPI 8u  /* waiting for a SIPI */
#define HVI_LAPIC_S_TIMER 16u     /* the timer is armed */

/* The IOAPIC: the redirection table and the registers around it. */
struct hvi_ioapic_state {
    uint32_t version;
    uint32_t id;       /* IOAPIC id register */
    uint32_t ioregsel; /* the selected register */
    uint32_t irr;      /* pin levels (bit per pin) */
    uint64_t redir[HVI_IRQCHIP_PINS];
};

/* One 8259. */
struct hvi_pic_state {
    uint8_t irr, imr, isr, elcr;
    uint8_t last_irr; /* line levels, for edge detection */
    uint8_t vector_base, priority_add, irq_base_unused;
    uint8_t read_isr, poll, special_mask, init_state;
    uint8_t auto_eoi, rotate_on_auto_eoi, special_fully_nested, init4;
    uint8_t elcr_mask, single, pad[2];
};

/* One PIT channel and the whole PIT. Counting is stored as the count
 * read now and the ns elapsed since the count was loaded, relative. */
struct hvi_pit_channel_state {
    uint32_t count;       /* the loaded count (0 means 0x10000) */
    uint16_t latched_count;
    uint8_t count_latched; /* 0, or the access mode of the latch */
    uint8_t status_latched;
    uint8_t status;
    uint8_t read_state, write_state, write_latch;
    uint8_t rw_mode, mode, bcd, gate;
    uint64_t elapsed_ns; /* since the count was loaded */
    uint64_t next_irq_in_ns; /* channel 0: the next IRQ 0 edge, 0: none */
    uint8_t null_count, out_fired, pad[6];
};
struct hvi_pit_state {
    uint32_t version;
    uint32_t speaker; /* port 0x61 bits 0-1 */
    struct hvi_pit_channel_state ch[3];
};

/* VM-wide chips: both PICs, the IOAPIC and the PIT. */
struct hvi_irqchip_vm_state {
    uint32_t version;
    uint32_t pad;
    struct hvi_pic_state pic[2];
    struct hvi_ioapic_state ioapic;
    struct hvi_pit_state pit;
};

void hvi_irqchip_get_lapic(struct hvi_irqchip *c, uint32_t cpu,
                           struct hvi_lapic_state *s);
/* Checks everything first (hostile input): -EINVAL with a message naming
 * the bad field and nothing changed, else 0. */
int hvi_irqchip_set_lapic(struct hvi_irqchip *c, uint32_t cpu,
                          const struct hvi_lapic_state *s);
void hvi_irqchip_get_vm(struct hvi_irqchip *c, struct hvi_irqchip_vm_state *s);
int hvi_irqchip_set_vm(struct hvi_irqchip *c,
                       const struct hvi_irqchip_vm_state *s);

#endif
