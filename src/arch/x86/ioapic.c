/* The IOAPIC (irqchip.h): 24 pins, the redirection table, edge and level
 * triggering with remote IRR and the LAPICs' EOI broadcast. Called with the
 * chip lock held. */
#include "irqchip_internal.h"

#define IOAPIC_VERSION 0x11u
#define RTE_DELIVERY_STATUS (1ull << 12)
#define RTE_POLARITY_LOW (1ull << 13)
#define RTE_REMOTE_IRR (1ull << 14)
#define RTE_LEVEL (1ull << 15)
#define RTE_MASKED (1ull << 16)
#define RTE_WRITABLE 0xff0000000001afffull /* vector..mode, dest */

void hvi_ioapic_reset(struct hvi_ioapic *io)
{
    io->id = 0;
    io->ioregsel = 0;
    io->irr = 0;
    for (int i = 0; i < HVI_IRQCHIP_PINS; i++)
        io->redir[i] = RTE_MASKED;
}

/* Delivers pin @p pin if its line is asserted and nothing holds it. */
static void service(struct hvi_irqchip *c, uint32_t pin)
{
    struct hvi_ioapic *io = &c->ioapic;
    uint64_t e = io->redir[pin];
    if (!((io->irr >> pin) & 1) || (e & RTE_MASKED))
        return;
    bool level = e & RTE_LEVEL;
    if (level) {
        if (e & RTE_REMOTE_IRR)
            return;
        io->redir[pin] |= RTE_REMOTE_IRR;
    } else {
        io->irr &= ~(1u << pin); /* an edge is consumed */
    }
    uint32_t dm = (e >> 8) & 7;
    if (dm == DM_EXTINT)
        return; /* through the 8259s */
    hvi_apic_bus(c, (uint32_t)(e >> 56), (e >> 11) & 1, false, dm,
                 (uint8_t)e, level);
}

void hvi_ioapic_set_irq(struct hvi_irqchip *c, uint32_t pin, int level)
{
    struct hvi_ioapic *io = &c->ioapic;
    uint32_t bit = 1u << pin;
    uint64_t e = io->redir[pin];
    bool active = (e & RTE_POLARITY_LOW) ? !level : level;
    bool was = (io->lines & bit) != 0;
    if (active)
        io->lines |= bit;
    else
        io->lines &= ~bit;
    if (e & RTE_LEVEL) {
        if (active) {
            io->irr |= bit;
            service(c, pin);
        } else {
            io->irr &= ~bit;
        }
    } else if (active && !was) { /* a rising edge latches the request */
        io->irr |= bit;
        service(c, pin);
    }
}

void hvi_ioapic_eoi(struct hvi_irqchip *c, uint8_t vector)
{
    struct hvi_ioapic *io = &c->ioapic;
    for (uint32_t pin = 0; pin < HVI_IRQCHIP_PINS; pin++) {
        uint64_t e = io->redir[pin];
        if ((uint8_t)e != vector || !(e & RTE_LEVEL) ||
            !(e & RTE_REMOTE_IRR))
            continue;
        io->redir[pin] &= ~RTE_REMOTE_IRR;
        service(c, pin); /* still asserted: delivered again */
    }
}

uint32_t hvi_ioapic_read(struct hvi_irqchip *c, uint32_t off)
{
    struct hvi_ioapic *io = &c->ioapic;
    if (off == 0x00)
        return io->ioregsel;
    if (off != 0x10)
        return 0;
    uint32_t sel = io->ioregsel & 0xff;
    switch (sel) {
    case 0x00: return io->id << 24;
    case 0x01: return ((HVI_IRQCHIP_PINS - 1u) << 16) | IOAPIC_VERSION;
    case 0x02: return io->id << 24;
    default:
        if (sel >= 0x10 && sel < 0x10 + 2 * HVI_IRQCHIP_PINS) {
            uint64_t e = io->redir[(sel - 0x10) / 2];
            return (sel & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
        }
        return 0xffffffffu;
    }
}

void hvi_ioapic_write(struct hvi_irqchip *c, uint32_t off, uint32_t val)
{
    struct hvi_ioapic *io = &c->ioapic;
    if (off == 0x00) {
        io->ioregsel = val & 0xff;
        return;
    }
    if (off == 0x40) { /* EOI register (version 0x20 and later) */
        hvi_ioapic_eoi(c, (uint8_t)val);
        return;
    }
    if (off != 0x10)
        return;
    uint32_t sel = io->ioregsel & 0xff;
    if (sel == 0x00) {
        io->id = (val >> 24) & 0xf;
        return;
    }
    if (sel < 0x10 || sel >= 0x10 + 2 * HVI_IRQCHIP_PINS)
        return;
    uint32_t pin = (sel - 0x10) / 2;
    uint64_t e = io->redir[pin];
    uint64_t w = (sel & 1) ? ((uint64_t)val << 32) | (uint32_t)e
                           : (e & 0xffffffff00000000ull) | val;
    /* Delivery status and remote IRR are read-only; an edge pin has no
     * remote IRR. */
    w = (w & RTE_WRITABLE) | (e & RTE_REMOTE_IRR);
    if (!(w & RTE_LEVEL))
        w &= ~RTE_REMOTE_IRR;
    io->redir[pin] = w;
    /* A level line still asserted is delivered once unmasked. */
    if ((w & RTE_LEVEL) && ((io->lines >> pin) & 1))
        io->irr |= 1u << pin;
    service(c, pin);
}
