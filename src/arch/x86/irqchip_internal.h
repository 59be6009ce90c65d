/* Inside the userspace interrupt controllers (irqchip.h): the chips'
 * structures and the calls between them. Everything here runs with
 * hvi_irqchip.lock held. */
#ifndef HVCORE_ARCH_X86_IRQCHIP_INTERNAL_H
#define HVCORE_ARCH_X86_IRQCHIP_INTERNAL_H

#include "irqchip.h"

#include <pthread.h>

/* xAPIC register offsets. */
enum {
    APIC_ID = 0x20,
    APIC_LVR = 0x30,
    APIC_TPR = 0x80,
    APIC_APR = 0x90,
    APIC_PPR = 0xa0,
    APIC_EOI = 0xb0,
    APIC_RRR = 0xc0,
    APIC_LDR = 0xd0,
    APIC_DFR = 0xe0,
    APIC_SVR = 0xf0,
    APIC_ISR = 0x100,
    APIC_TMR = 0x180,
    APIC_IRR = 0x200,
    APIC_ESR = 0x280,
    APIC_LVT_CMCI = 0x2f0,
    APIC_ICR = 0x300,
    APIC_ICR2 = 0x310,
    APIC_LVTT = 0x320,
    APIC_LVTTHMR = 0x330,
    APIC_LVTPC = 0x340,
    APIC_LVT0 = 0x350,
    APIC_LVT1 = 0x360,
    APIC_LVTERR = 0x370,
    APIC_TMICT = 0x380,
    APIC_TMCCT = 0x390,
    APIC_TDCR = 0x3e0,
    APIC_SELF_IPI = 0x3f0
};
#define APIC_LVT_MASKED (1u << 16)
#define APIC_LVT_LEVEL (1u << 15)
#define APIC_SVR_ENABLE (1u << 8)
#define APIC_BASE_BSP (1ull << 8)
#define APIC_BASE_X2APIC (1ull << 10)
#define APIC_BASE_ENABLE (1ull << 11)
#define APIC_TIMER_MODE(lvtt) (((lvtt) >> 17) & 3u) /* 0 one-shot, 1 periodic, 2 TSC deadline */

/* Delivery modes (ICR, LVT, IOAPIC, MSI). */
enum {
    DM_FIXED = 0,
    DM_LOWEST = 1,
    DM_SMI = 2,
    DM_NMI = 4,
    DM_INIT = 5,
    DM_SIPI = 6,
    DM_EXTINT = 7
};

struct hvi_lapic {
    bool present;
    uint32_t id;
    uint64_t base;
    uint32_t regs[0x400 / 4]; /* the page's first 1 KiB, 32 bits a line */
    bool nmi, init, sipi, wait_sipi;
    uint8_t sipi_vector;
    /* The timer: counting since start_ns; fires at deadline_ns
     * (UINT64_MAX: not armed). */
    uint64_t start_ns;
    uint64_t deadline_ns;
    uint64_t period_ns; /* periodic: the reload in ns */
    uint64_t tsc_deadline;
};

struct hvi_ioapic {
    uint32_t id;
    uint32_t ioregsel;
    uint32_t irr;   /* requests: level pins asserted, edges latched */
    uint32_t lines; /* line levels (after polarity) */
    uint64_t redir[HVI_IRQCHIP_PINS];
};

/* One 8259 (pic.c), the fields of struct hvi_x86_pic and ICW1's single
 * bit. */
struct hvi_pic_state {
    uint8_t irr, imr, isr, elcr;
    uint8_t last_irr; /* line levels, for edge detection */
    uint8_t vector_base, priority_add;
    uint8_t read_isr, poll, special_mask, init_state;
    uint8_t auto_eoi, rotate_on_auto_eoi, special_fully_nested, init4;
    uint8_t elcr_mask, single;
};

struct hvi_pic {
    struct hvi_pic_state s;
};

struct hvi_pit_channel {
    uint32_t count; /* 1..0x10000 */
    uint16_t latched_count;
    uint8_t count_latched;
    uint8_t status_latched;
    uint8_t status;
    uint8_t read_state, write_state, write_latch;
    uint8_t rw_mode, mode, bcd, gate;
    uint64_t load_ns; /* when the count was loaded */
    uint64_t next_irq_ns; /* channel 0: next IRQ 0 edge; UINT64_MAX none */
    uint8_t null_count;
    uint8_t programmed; /* a control word was written */
};

struct hvi_pit {
    struct hvi_pit_channel ch[3];
    uint32_t speaker;
    /* Catch-up (as KVM's reinjection): an IRQ 0 period that finds the
     * last edge not yet taken through an unmasked 8259 line, or that the
     * timer thread reached late, is counted here and raised again each
     * time the 8259 acknowledges IRQ 0. */
    bool reinject;
    uint32_t backlog;
};

struct hvi_irqchip {
    pthread_mutex_t lock;
    struct hvi_irqchip_host host;
    uint32_t max_cpus;
    struct hvi_lapic *lapic;
    struct hvi_ioapic ioapic;
    struct hvi_pic pic[2];
    struct hvi_pit pit;
    int pic_output; /* the master's INT line */
};

static inline uint64_t irq_now(struct hvi_irqchip *c)
{
    return c->host.now_ns(c->host.opaque);
}

/* lapic.c */
void hvi_lapic_reset(struct hvi_irqchip *c, struct hvi_lapic *a, bool init);
/* Accepts an interrupt message on the APIC bus for one LAPIC. */
void hvi_lapic_accept(struct hvi_irqchip *c, struct hvi_lapic *a, uint32_t dm,
                      uint8_t vector, bool level);
/* Routes a message to the LAPICs the destination names (dest_mode 1:
 * logical); -1 as @p self for no shorthand source. */
void hvi_apic_bus(struct hvi_irqchip *c, uint32_t dest, bool logical,
                  bool x2apic_dest, uint32_t dm, uint8_t vector, bool level);
int hvi_lapic_pending(struct hvi_irqchip *c, struct hvi_lapic *a);
int hvi_lapic_ack(struct hvi_irqchip *c, struct hvi_lapic *a, uint8_t *vec);
uint32_t hvi_lapic_read(struct hvi_irqchip *c, struct hvi_lapic *a,
                        uint32_t off);
/* -EINVAL for a write the guest may not make (x2APIC #GP). */
int hvi_lapic_write(struct hvi_irqchip *c, struct hvi_lapic *a, uint32_t off,
                    uint32_t val);
void hvi_lapic_send_icr(struct hvi_irqchip *c, struct hvi_lapic *a,
                        uint64_t icr);
void hvi_lapic_timer_fire(struct hvi_irqchip *c, struct hvi_lapic *a,
                          uint64_t now);
bool hvi_lapic_x2apic(const struct hvi_lapic *a);
bool hvi_lapic_accepts_pic(const struct hvi_lapic *a);

/* ioapic.c */
void hvi_ioapic_reset(struct hvi_ioapic *io);
void hvi_ioapic_set_irq(struct hvi_irqchip *c, uint32_t pin, int level);
void hvi_ioapic_eoi(struct hvi_irqchip *c, uint8_t vector);
uint32_t hvi_ioapic_read(struct hvi_irqchip *c, uint32_t off);
void hvi_ioapic_write(struct hvi_irqchip *c, uint32_t off, uint32_t val);

/* pic.c */
void hvi_pic_reset(struct hvi_irqchip *c);
void hvi_pic_refresh(struct hvi_irqchip *c); /* after a restore */
void hvi_lapic_set_tsc_deadline(struct hvi_irqchip *c, struct hvi_lapic *a,
                                uint64_t value, uint64_t guest_tsc,
                                uint32_t tsc_khz);
void hvi_pic_set_irq(struct hvi_irqchip *c, uint32_t irq, int level);
/* INTA: the vector of the highest request (the master's spurious 7 when
 * none). */
uint8_t hvi_pic_intack(struct hvi_irqchip *c);
uint8_t hvi_pic_read(struct hvi_irqchip *c, uint16_t port);
void hvi_pic_write(struct hvi_irqchip *c, uint16_t port, uint8_t val);

/* pit.c */
void hvi_pit_reset(struct hvi_irqchip *c);
uint8_t hvi_pit_read(struct hvi_irqchip *c, uint16_t port);
void hvi_pit_write(struct hvi_irqchip *c, uint16_t port, uint8_t val);
uint64_t hvi_pit_next(struct hvi_irqchip *c);
void hvi_pit_irq0_acked(struct hvi_irqchip *c);
void hvi_pit_run(struct hvi_irqchip *c, uint64_t now);
void hvi_pit_get(struct hvi_irqchip *c, struct hvi_x86_pit *s, uint64_t now);
int hvi_pit_set(struct hvi_irqchip *c, const struct hvi_x86_pit *s,
                uint64_t now);
/* lapic.c: PPR and the timer from a restored page. */
void hvi_lapic_restored(struct hvi_irqchip *c, struct hvi_lapic *a,
                        uint32_t current_count);

/* irqchip.c: something changed for the PIC output / a LAPIC. */
void hvi_irqchip_pic_changed(struct hvi_irqchip *c);
void hvi_irqchip_kick(struct hvi_irqchip *c, struct hvi_lapic *a);

#endif
