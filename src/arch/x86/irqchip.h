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
/* PIT catch-up (hvc_tsc_policy's HVC_TSC_CATCHUP_PIT): on (the default),
 * IRQ 0 periods the guest did not take are raised again as it takes
 * them; @p drop forgets those owed now. */
void hvi_pit_set_reinject(struct hvi_irqchip *c, bool on, bool drop);
/* The earliest deadline of any chip timer, UINT64_MAX when none. */
uint64_t hvi_irqchip_next_deadline(struct hvi_irqchip *c);
/* Fires every timer due at @p now_ns. */
void hvi_irqchip_run_timers(struct hvi_irqchip *c, uint64_t now_ns);

/* --- State (snapshot, migration) ---
 * In the architectural layouts of arch_state.h (branch state17), the same
 * a backend with in-kernel chips produces, so a stream moves between the
 * two. Times are relative (the LAPIC's current count, the PIT's ns since
 * its count was loaded), so the timers resume where they were on another
 * host. The setters take blobs that passed the hvi_x86_check_* checks and
 * check the rest (-EINVAL with a message, nothing changed). IA32_TSC_DEADLINE
 * travels in the TSC record: hvi_irqchip_rdmsr()/wrmsr() reach it. */
struct hvi_x86_lapic;
struct hvi_x86_pic;
struct hvi_x86_ioapic;
struct hvi_x86_pit;
void hvi_irqchip_get_lapic(struct hvi_irqchip *c, uint32_t cpu,
                           struct hvi_x86_lapic *s);
int hvi_irqchip_set_lapic(struct hvi_irqchip *c, uint32_t cpu,
                          const struct hvi_x86_lapic *s);
/* What the LAPIC holds for its CPU beyond the page: an HVI_X86_ACT_*
 * activity for the wait for a SIPI (WAIT_SIPI, SIPI_RECEIVED with its
 * vector, else ACTIVE) and whether an NMI is pending. */
void hvi_irqchip_get_cpu(struct hvi_irqchip *c, uint32_t cpu,
                         uint32_t *activity, uint8_t *sipi_vector, bool *nmi);
void hvi_irqchip_set_cpu(struct hvi_irqchip *c, uint32_t cpu,
                         uint32_t activity, uint8_t sipi_vector, bool nmi);
void hvi_irqchip_get_pic(struct hvi_irqchip *c, int slave,
                         struct hvi_x86_pic *s);
int hvi_irqchip_set_pic(struct hvi_irqchip *c, int slave,
                        const struct hvi_x86_pic *s);
void hvi_irqchip_get_ioapic(struct hvi_irqchip *c, struct hvi_x86_ioapic *s);
int hvi_irqchip_set_ioapic(struct hvi_irqchip *c,
                           const struct hvi_x86_ioapic *s);
void hvi_irqchip_get_pit(struct hvi_irqchip *c, struct hvi_x86_pit *s);
int hvi_irqchip_set_pit(struct hvi_irqchip *c, const struct hvi_x86_pit *s);

#endif
