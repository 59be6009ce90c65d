/* The two cascaded 8259s (irqchip.h): ICW1-4, OCW1-3, edge or level per
 * line (ELCR at 0x4d0/0x4d1), the slave on the master's IRQ 2, and the
 * master's output to the LAPICs that accept it (LINT0 in ExtINT mode).
 * Called with the chip lock held. */
#include "irqchip_internal.h"

/* Priority of the highest bit of @p mask after rotation; 8 when none. */
static int priority(const struct hvi_pic_state *s, uint8_t mask)
{
    if (!mask)
        return 8;
    int p = 0;
    while (!(mask & (1u << ((p + s->priority_add) & 7))))
        p++;
    return p;
}

/* The line this chip would raise next, -1 when none beats what is in
 * service. */
static int get_irq(const struct hvi_pic_state *s, bool master)
{
    int p = priority(s, s->irr & ~s->imr);
    if (p == 8)
        return -1;
    uint8_t in = s->isr;
    if (s->special_mask)
        in &= ~s->imr;
    if (master && s->special_fully_nested)
        in &= ~(1u << 2);
    return p < priority(s, in) ? (p + s->priority_add) & 7 : -1;
}

static void set_line(struct hvi_pic_state *s, int irq, int level)
{
    uint8_t m = 1u << irq;
    if (s->elcr & m) {
        if (level) {
            s->irr |= m;
            s->last_irr |= m;
        } else {
            s->irr &= ~m;
            s->last_irr &= ~m;
        }
    } else if (level) {
        if (!(s->last_irr & m))
            s->irr |= m;
        s->last_irr |= m;
    } else {
        s->last_irr &= ~m;
    }
}

static void update(struct hvi_irqchip *c)
{
    struct hvi_pic_state *m = &c->pic[0].s, *sl = &c->pic[1].s;
    if (get_irq(sl, false) >= 0) { /* a pulse on the cascade line */
        set_line(m, 2, 1);
        set_line(m, 2, 0);
    }
    int out = get_irq(m, true) >= 0;
    if (out != c->pic_output) {
        c->pic_output = out;
        hvi_irqchip_pic_changed(c);
    }
}

void hvi_pic_reset(struct hvi_irqchip *c)
{
    for (int i = 0; i < 2; i++) {
        struct hvi_pic_state *s = &c->pic[i].s;
        uint8_t elcr = s->elcr;
        *s = (struct hvi_pic_state){0};
        s->elcr = elcr;
        s->elcr_mask = i == 0 ? 0xf8 : 0xde;
    }
    c->pic_output = 0;
}

void hvi_pic_set_irq(struct hvi_irqchip *c, uint32_t irq, int level)
{
    set_line(&c->pic[irq >> 3].s, irq & 7, level);
    update(c);
}

static void ack(struct hvi_pic_state *s, int irq)
{
    if (s->auto_eoi) {
        if (s->rotate_on_auto_eoi)
            s->priority_add = (irq + 1) & 7;
    } else {
        s->isr |= 1u << irq;
    }
    if (!(s->elcr & (1u << irq)))
        s->irr &= ~(1u << irq); /* an edge is consumed */
}

uint8_t hvi_pic_intack(struct hvi_irqchip *c)
{
    struct hvi_pic_state *m = &c->pic[0].s, *sl = &c->pic[1].s;
    int irq = get_irq(m, true);
    uint8_t vec;
    if (irq < 0) {
        vec = m->vector_base + 7; /* spurious */
    } else {
        ack(m, irq);
        if (irq == 2) {
            int irq2 = get_irq(sl, false);
            if (irq2 >= 0)
                ack(sl, irq2);
            else
                irq2 = 7;
            vec = sl->vector_base + irq2;
        } else {
            vec = m->vector_base + irq;
        }
    }
    update(c);
    if (irq == 0)
        hvi_pit_irq0_acked(c); /* a PIT tick owed: raised again */
    return vec;
}

static uint8_t poll_read(struct hvi_irqchip *c, int chip)
{
    struct hvi_pic_state *s = &c->pic[chip].s;
    int irq = get_irq(s, chip == 0);
    if (irq < 0)
        return 0x07;
    ack(s, irq);
    update(c);
    return 0x80 | irq;
}

uint8_t hvi_pic_read(struct hvi_irqchip *c, uint16_t port)
{
    if (port == 0x4d0 || port == 0x4d1)
        return c->pic[port & 1].s.elcr;
    int chip = port >= 0xa0;
    struct hvi_pic_state *s = &c->pic[chip].s;
    if (s->poll) {
        s->poll = 0;
        return poll_read(c, chip);
    }
    if (port & 1)
        return s->imr;
    return s->read_isr ? s->isr : s->irr;
}

static void ocw2(struct hvi_irqchip *c, struct hvi_pic_state *s, uint8_t val)
{
    int cmd = val >> 5, irq;
    switch (cmd) {
    case 0:
    case 4: s->rotate_on_auto_eoi = cmd >> 2; break;
    case 1: /* non-specific EOI */
    case 5: /* ... and rotate */
        if (priority(s, s->isr) == 8)
            break;
        irq = (priority(s, s->isr) + s->priority_add) & 7;
        s->isr &= ~(1u << irq);
        if (cmd == 5)
            s->priority_add = (irq + 1) & 7;
        break;
    case 3: s->isr &= ~(1u << (val & 7)); break;
    case 6: s->priority_add = (val + 1) & 7; break;
    case 7:
        s->isr &= ~(1u << (val & 7));
        s->priority_add = ((val & 7) + 1) & 7;
        break;
    default: break;
    }
    update(c);
}

void hvi_pic_write(struct hvi_irqchip *c, uint16_t port, uint8_t val)
{
    if (port == 0x4d0 || port == 0x4d1) {
        struct hvi_pic_state *s = &c->pic[port & 1].s;
        s->elcr = val & s->elcr_mask;
        return;
    }
    struct hvi_pic_state *s = &c->pic[port >= 0xa0].s;
    if (!(port & 1)) {
        if (val & 0x10) { /* ICW1 */
            s->init4 = val & 1;
            s->single = (val >> 1) & 1;
            s->last_irr = 0;
            s->irr &= s->elcr;
            s->imr = 0;
            s->isr = 0;
            s->priority_add = 0;
            s->special_mask = 0;
            s->read_isr = 0;
            s->poll = 0;
            if (!s->init4) {
                s->special_fully_nested = 0;
                s->auto_eoi = 0;
            }
            s->init_state = 1;
            update(c);
        } else if (val & 0x08) { /* OCW3 */
            if (val & 0x04)
                s->poll = 1;
            if (val & 0x02)
                s->read_isr = val & 1;
            if (val & 0x40)
                s->special_mask = (val >> 5) & 1;
        } else {
            ocw2(c, s, val);
        }
        return;
    }
    switch (s->init_state) {
    case 0: /* OCW1 */
        s->imr = val;
        update(c);
        break;
    case 1: /* ICW2 */
        s->vector_base = val & 0xf8;
        s->init_state = s->single ? (s->init4 ? 3 : 0) : 2;
        break;
    case 2: /* ICW3 */
        s->init_state = s->init4 ? 3 : 0;
        break;
    case 3: /* ICW4 */
        s->special_fully_nested = (val >> 4) & 1;
        s->auto_eoi = (val >> 1) & 1;
        s->init_state = 0;
        break;
    }
}

void hvi_pic_refresh(struct hvi_irqchip *c)
{
    c->pic_output = 0;
    update(c);
}
