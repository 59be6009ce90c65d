/* The chips' state in the layouts of irqchip.h (snapshot, migration):
 * relative times, so a restore on another host or backend resumes the
 * timers where they were; every field checked before anything changes. */
#include "../../core/internal.h"
#include "irqchip_internal.h"

#include <errno.h>
#include <string.h>

#define LAPIC_FLAGS                                                            \
    (HVI_LAPIC_S_NMI | HVI_LAPIC_S_INIT | HVI_LAPIC_S_SIPI |                   \
     HVI_LAPIC_S_WAIT_SIPI | HVI_LAPIC_S_TIMER)
#define MAX_TIMER_NS (1ull << 62)

void hvi_irqchip_get_lapic(struct hvi_irqchip *c, uint32_t cpu,
                           struct hvi_lapic_state *s)
{
    memset(s, 0, sizeof(*s));
    s->version = HVI_IRQCHIP_STATE_VERSION;
    if (cpu >= c->max_cpus)
        return;
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    uint64_t now = irq_now(c);
    memcpy(s->regs, a->regs, sizeof(s->regs));
    uint32_t cur = hvi_lapic_read(c, a, APIC_TMCCT);
    memcpy(&s->regs[APIC_TMCCT], &cur, 4);
    s->apic_base = a->base;
    s->tsc_deadline = a->tsc_deadline;
    s->sipi_vector = a->sipi_vector;
    s->flags = (a->nmi ? HVI_LAPIC_S_NMI : 0) |
               (a->init ? HVI_LAPIC_S_INIT : 0) |
               (a->sipi ? HVI_LAPIC_S_SIPI : 0) |
               (a->wait_sipi ? HVI_LAPIC_S_WAIT_SIPI : 0);
    if (a->deadline_ns != UINT64_MAX) {
        s->flags |= HVI_LAPIC_S_TIMER;
        s->timer_remaining_ns = a->deadline_ns > now ? a->deadline_ns - now : 0;
        s->timer_period_ns = a->period_ns;
    }
    pthread_mutex_unlock(&c->lock);
}

int hvi_irqchip_set_lapic(struct hvi_irqchip *c, uint32_t cpu,
                          const struct hvi_lapic_state *s)
{
    if (cpu >= c->max_cpus)
        return hvi_error(-EINVAL, "LAPIC state for vCPU %u: no such LAPIC",
                         cpu);
    if (s->version != HVI_IRQCHIP_STATE_VERSION)
        return hvi_error(-EINVAL, "LAPIC %u state: version %u, expected %u",
                         cpu, s->version, HVI_IRQCHIP_STATE_VERSION);
    if (s->flags & ~LAPIC_FLAGS)
        return hvi_error(-EINVAL, "LAPIC %u state: unknown flags 0x%x", cpu,
                         s->flags);
    uint64_t b = s->apic_base;
    if ((b & ~(0xffffff000ull | APIC_BASE_ENABLE | APIC_BASE_X2APIC |
               APIC_BASE_BSP)) ||
        ((b & APIC_BASE_X2APIC) && !(b & APIC_BASE_ENABLE)))
        return hvi_error(-EINVAL, "LAPIC %u state: IA32_APIC_BASE 0x%llx is "
                         "not a valid value", cpu, (unsigned long long)b);
    if (s->sipi_vector > 0xff)
        return hvi_error(-EINVAL, "LAPIC %u state: SIPI vector %u", cpu,
                         s->sipi_vector);
    if (s->timer_remaining_ns > MAX_TIMER_NS ||
        s->timer_period_ns > MAX_TIMER_NS ||
        (!(s->flags & HVI_LAPIC_S_TIMER) &&
         (s->timer_remaining_ns || s->timer_period_ns)))
        return hvi_error(-EINVAL, "LAPIC %u state: timer %llu ns left, "
                         "period %llu ns", cpu,
                         (unsigned long long)s->timer_remaining_ns,
                         (unsigned long long)s->timer_period_ns);
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    uint64_t now = irq_now(c);
    memcpy(a->regs, s->regs, sizeof(a->regs));
    a->regs[APIC_TMCCT >> 2] = 0; /* computed from the deadline */
    if (hvi_lapic_x2apic(&(struct hvi_lapic){.base = b}))
        a->regs[APIC_ID >> 2] = a->id; /* x2APIC ids are the vCPU's */
    a->base = b;
    a->tsc_deadline = s->tsc_deadline;
    a->sipi_vector = (uint8_t)s->sipi_vector;
    a->nmi = s->flags & HVI_LAPIC_S_NMI;
    a->init = s->flags & HVI_LAPIC_S_INIT;
    a->sipi = s->flags & HVI_LAPIC_S_SIPI;
    a->wait_sipi = s->flags & HVI_LAPIC_S_WAIT_SIPI;
    if (s->flags & HVI_LAPIC_S_TIMER) {
        a->deadline_ns = now + s->timer_remaining_ns;
        a->period_ns = s->timer_period_ns;
        a->start_ns = a->period_ns && a->deadline_ns >= a->period_ns
                          ? a->deadline_ns - a->period_ns
                          : now;
    } else {
        a->deadline_ns = UINT64_MAX;
        a->period_ns = 0;
    }
    c->host.timer_changed(c->host.opaque);
    hvi_irqchip_pic_changed(c);
    hvi_irqchip_kick(c, a);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void hvi_irqchip_get_vm(struct hvi_irqchip *c, struct hvi_irqchip_vm_state *s)
{
    memset(s, 0, sizeof(*s));
    s->version = HVI_IRQCHIP_STATE_VERSION;
    pthread_mutex_lock(&c->lock);
    s->pic[0] = c->pic[0].s;
    s->pic[1] = c->pic[1].s;
    s->ioapic.version = HVI_IRQCHIP_STATE_VERSION;
    s->ioapic.id = c->ioapic.id;
    s->ioapic.ioregsel = c->ioapic.ioregsel;
    s->ioapic.irr = c->ioapic.irr;
    s->ioapic.lines = c->ioapic.lines;
    memcpy(s->ioapic.redir, c->ioapic.redir, sizeof(s->ioapic.redir));
    hvi_pit_get(c, &s->pit, irq_now(c));
    pthread_mutex_unlock(&c->lock);
}

static int check_pic(const struct hvi_pic_state *p, int i)
{
    static const uint8_t mask[2] = {0xf8, 0xde};
    const char *what = i ? "slave" : "master";
    if (p->init_state > 3 || (p->vector_base & 7) || p->priority_add > 7 ||
        p->read_isr > 1 || p->poll > 1 || p->special_mask > 1 ||
        p->auto_eoi > 1 || p->rotate_on_auto_eoi > 1 ||
        p->special_fully_nested > 1 || p->init4 > 1 || p->single > 1)
        return hvi_error(-EINVAL, "8259 %s state: a field is out of range "
                         "(init state %u, vector base 0x%x, rotation %u)",
                         what, p->init_state, p->vector_base,
                         p->priority_add);
    if (p->elcr_mask != mask[i] || (p->elcr & ~mask[i]))
        return hvi_error(-EINVAL, "8259 %s state: ELCR 0x%x (mask 0x%x)",
                         what, p->elcr, p->elcr_mask);
    return 0;
}

int hvi_irqchip_set_vm(struct hvi_irqchip *c,
                       const struct hvi_irqchip_vm_state *s)
{
    if (s->version != HVI_IRQCHIP_STATE_VERSION ||
        s->ioapic.version != HVI_IRQCHIP_STATE_VERSION ||
        s->pit.version != HVI_IRQCHIP_STATE_VERSION)
        return hvi_error(-EINVAL, "interrupt controller state: version "
                         "%u/%u/%u, expected %u", s->version,
                         s->ioapic.version, s->pit.version,
                         HVI_IRQCHIP_STATE_VERSION);
    int r;
    if ((r = check_pic(&s->pic[0], 0)) < 0 ||
        (r = check_pic(&s->pic[1], 1)) < 0)
        return r;
    const struct hvi_ioapic_state *io = &s->ioapic;
    if (io->id > 15 || io->ioregsel > 0xff || (io->irr >> HVI_IRQCHIP_PINS) ||
        (io->lines >> HVI_IRQCHIP_PINS))
        return hvi_error(-EINVAL, "IOAPIC state: id %u, register 0x%x, "
                         "requests 0x%x, lines 0x%x", io->id, io->ioregsel,
                         io->irr, io->lines);
    for (int i = 0; i < HVI_IRQCHIP_PINS; i++)
        if (io->redir[i] & 0x00fffffffffe1000ull & ~0x0000000000004000ull)
            return hvi_error(-EINVAL, "IOAPIC state: pin %d's redirection "
                             "entry 0x%llx has reserved bits set", i,
                             (unsigned long long)io->redir[i]);
    pthread_mutex_lock(&c->lock);
    uint64_t now = irq_now(c);
    struct hvi_pit saved = c->pit;
    if ((r = hvi_pit_set(c, &s->pit, now)) < 0) {
        c->pit = saved;
        pthread_mutex_unlock(&c->lock);
        return r;
    }
    c->pic[0].s = s->pic[0];
    c->pic[1].s = s->pic[1];
    c->ioapic.id = io->id;
    c->ioapic.ioregsel = io->ioregsel;
    c->ioapic.irr = io->irr;
    c->ioapic.lines = io->lines;
    memcpy(c->ioapic.redir, io->redir, sizeof(io->redir));
    hvi_pic_refresh(c);
    hvi_irqchip_pic_changed(c);
    c->host.timer_changed(c->host.opaque);
    pthread_mutex_unlock(&c->lock);
    return 0;
}
