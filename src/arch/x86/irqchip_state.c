/* The chips' state in the architectural layouts of arch_state.h
 * (snapshot, migration): relative times, so that a restore on another host
 * or backend resumes the timers where they were; each blob has passed the
 * layout's hvi_x86_check_*; what this model needs on top is checked here
 * before anything changes. */
#include "../../core/internal.h"
#include "arch_state.h"
#include "irqchip_internal.h"

#include <errno.h>
#include <string.h>

static void hdr(struct hvi_x86_state_hdr *h, uint32_t size)
{
    h->version = HVI_X86_STATE_VERSION;
    h->size = size;
}

void hvi_irqchip_get_lapic(struct hvi_irqchip *c, uint32_t cpu,
                           struct hvi_x86_lapic *s)
{
    memset(s, 0, sizeof(*s));
    hdr(&s->hdr, sizeof(*s));
    if (cpu >= c->max_cpus)
        return;
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    _Static_assert(sizeof(a->regs) == HVI_X86_LAPIC_PAGE, "the page");
    /* A timer due but not yet run fires now, so that the page says either
     * "fired" (IRR) or "counting" (the current count), never neither. */
    uint64_t now = irq_now(c);
    if (a->present && a->deadline_ns <= now)
        hvi_lapic_timer_fire(c, a, now);
    memcpy(s->regs, a->regs, sizeof(s->regs));
    uint32_t cur = hvi_lapic_read(c, a, APIC_TMCCT);
    memcpy(&s->regs[APIC_TMCCT], &cur, 4);
    memset(&s->regs[APIC_PPR], 0, 4); /* derived */
    s->apic_base = a->base;
    pthread_mutex_unlock(&c->lock);
}

int hvi_irqchip_set_lapic(struct hvi_irqchip *c, uint32_t cpu,
                          const struct hvi_x86_lapic *s)
{
    if (cpu >= c->max_cpus)
        return hvi_error(-EINVAL, "LAPIC state for vCPU %u: no such LAPIC",
                         cpu);
    uint32_t id, cur;
    memcpy(&id, &s->regs[APIC_ID], 4);
    memcpy(&cur, &s->regs[APIC_TMCCT], 4);
    bool x2 = (s->apic_base & (APIC_BASE_ENABLE | APIC_BASE_X2APIC)) ==
              (APIC_BASE_ENABLE | APIC_BASE_X2APIC);
    if (x2 && id != cpu)
        return hvi_error(-EINVAL,
                         "LAPIC state: x2APIC ID %u on vCPU %u (the x2APIC "
                         "ID is the vCPU's)",
                         id, cpu);
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    memcpy(a->regs, s->regs, sizeof(a->regs));
    a->regs[APIC_TMCCT >> 2] = 0; /* computed from the deadline */
    a->base = s->apic_base;
    a->tsc_deadline = 0; /* the TSC record sets it */
    hvi_lapic_restored(c, a, cur);
    hvi_irqchip_pic_changed(c);
    hvi_irqchip_kick(c, a);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void hvi_irqchip_get_cpu(struct hvi_irqchip *c, uint32_t cpu,
                         uint32_t *activity, uint8_t *sipi_vector, bool *nmi)
{
    *activity = HVI_X86_ACT_ACTIVE;
    *sipi_vector = 0;
    *nmi = false;
    if (cpu >= c->max_cpus)
        return;
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    if (a->init || a->wait_sipi)
        *activity = a->sipi ? HVI_X86_ACT_SIPI_RECEIVED : HVI_X86_ACT_WAIT_SIPI;
    *sipi_vector = a->sipi ? a->sipi_vector : 0;
    *nmi = a->nmi;
    pthread_mutex_unlock(&c->lock);
}

void hvi_irqchip_set_cpu(struct hvi_irqchip *c, uint32_t cpu,
                         uint32_t activity, uint8_t sipi_vector, bool nmi)
{
    if (cpu >= c->max_cpus)
        return;
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    a->init = false;
    a->wait_sipi = activity == HVI_X86_ACT_WAIT_SIPI ||
                   activity == HVI_X86_ACT_WAIT_INIT ||
                   activity == HVI_X86_ACT_SIPI_RECEIVED;
    a->sipi = activity == HVI_X86_ACT_SIPI_RECEIVED;
    a->sipi_vector = a->sipi ? sipi_vector : 0;
    a->nmi = nmi;
    hvi_irqchip_kick(c, a);
    pthread_mutex_unlock(&c->lock);
}

void hvi_irqchip_get_pic(struct hvi_irqchip *c, int slave,
                         struct hvi_x86_pic *s)
{
    memset(s, 0, sizeof(*s));
    hdr(&s->hdr, sizeof(*s));
    pthread_mutex_lock(&c->lock);
    const struct hvi_pic_state *p = &c->pic[slave ? 1 : 0].s;
    s->irr = p->irr;
    s->isr = p->isr;
    s->imr = p->imr;
    s->last_irr = p->last_irr;
    s->priority_add = p->priority_add;
    s->irq_base = p->vector_base;
    s->read_reg_select = p->read_isr;
    s->poll = p->poll;
    s->special_mask = p->special_mask;
    s->init_state = p->init_state;
    s->auto_eoi = p->auto_eoi;
    s->rotate_on_auto_eoi = p->rotate_on_auto_eoi;
    s->special_fully_nested = p->special_fully_nested;
    s->init4 = p->init4;
    s->elcr = p->elcr;
    s->elcr_mask = p->elcr_mask;
    pthread_mutex_unlock(&c->lock);
}

int hvi_irqchip_set_pic(struct hvi_irqchip *c, int slave,
                        const struct hvi_x86_pic *s)
{
    uint8_t mask = slave ? 0xde : 0xf8;
    if (s->elcr_mask != mask)
        return hvi_error(-EINVAL,
                         "8259 %s state: ELCR mask 0x%x (this chipset's is "
                         "0x%x)",
                         slave ? "slave" : "master", s->elcr_mask, mask);
    pthread_mutex_lock(&c->lock);
    struct hvi_pic_state *p = &c->pic[slave ? 1 : 0].s;
    *p = (struct hvi_pic_state){
        .irr = s->irr,
        .imr = s->imr,
        .isr = s->isr,
        .elcr = s->elcr,
        .last_irr = s->last_irr,
        .vector_base = s->irq_base,
        .priority_add = s->priority_add,
        .read_isr = s->read_reg_select,
        .poll = s->poll,
        .special_mask = s->special_mask,
        .init_state = s->init_state,
        .auto_eoi = s->auto_eoi,
        .rotate_on_auto_eoi = s->rotate_on_auto_eoi,
        .special_fully_nested = s->special_fully_nested,
        .init4 = s->init4,
        .elcr_mask = s->elcr_mask,
    };
    hvi_pic_refresh(c);
    hvi_irqchip_pic_changed(c);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void hvi_irqchip_get_ioapic(struct hvi_irqchip *c, struct hvi_x86_ioapic *s)
{
    memset(s, 0, sizeof(*s));
    hdr(&s->hdr, sizeof(*s));
    s->base_address = HVI_IOAPIC_BASE;
    pthread_mutex_lock(&c->lock);
    s->id = c->ioapic.id;
    s->ioregsel = c->ioapic.ioregsel;
    s->irr = c->ioapic.irr;
    memcpy(s->redir, c->ioapic.redir, sizeof(s->redir));
    pthread_mutex_unlock(&c->lock);
}

int hvi_irqchip_set_ioapic(struct hvi_irqchip *c,
                           const struct hvi_x86_ioapic *s)
{
    if (s->base_address != HVI_IOAPIC_BASE)
        return hvi_error(-EINVAL,
                         "IOAPIC state: base address 0x%llx (the library's "
                         "IOAPIC is at 0x%llx)",
                         (unsigned long long)s->base_address,
                         (unsigned long long)HVI_IOAPIC_BASE);
    pthread_mutex_lock(&c->lock);
    struct hvi_ioapic *io = &c->ioapic;
    io->id = s->id;
    io->ioregsel = s->ioregsel;
    io->irr = s->irr;
    io->lines = 0;
    memcpy(io->redir, s->redir, sizeof(io->redir));
    /* A level pin's request is its line held high. */
    for (uint32_t i = 0; i < HVI_IRQCHIP_PINS; i++)
        if ((io->redir[i] & (1ull << 15)) && ((io->irr >> i) & 1))
            io->lines |= 1u << i;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void hvi_irqchip_get_pit(struct hvi_irqchip *c, struct hvi_x86_pit *s)
{
    pthread_mutex_lock(&c->lock);
    hvi_pit_get(c, s, irq_now(c));
    pthread_mutex_unlock(&c->lock);
}

int hvi_irqchip_set_pit(struct hvi_irqchip *c, const struct hvi_x86_pit *s)
{
    pthread_mutex_lock(&c->lock);
    struct hvi_pit saved = c->pit;
    int r = hvi_pit_set(c, s, irq_now(c));
    if (r < 0)
        c->pit = saved;
    else
        c->host.timer_changed(c->host.opaque);
    pthread_mutex_unlock(&c->lock);
    return r;
}
