/* The local APIC of one vCPU (irqchip.h): registers, priorities, EOI,
 * inter-processor interrupts and the timer. Called with the chip lock
 * held. */
#include "irqchip_internal.h"

#include <errno.h>
#include <string.h>

#define R(a, off) ((a)->regs[(off) >> 2])

static bool test_vec(const struct hvi_lapic *a, uint32_t base, uint8_t v)
{
    return (a->regs[(base + (v >> 5) * 0x10) >> 2] >> (v & 31)) & 1;
}

static void set_vec(struct hvi_lapic *a, uint32_t base, uint8_t v, bool on)
{
    uint32_t *w = &a->regs[(base + (v >> 5) * 0x10) >> 2];
    if (on)
        *w |= 1u << (v & 31);
    else
        *w &= ~(1u << (v & 31));
}

/* The highest vector set in IRR, ISR or TMR; -1 when none. */
static int highest(const struct hvi_lapic *a, uint32_t base)
{
    for (int i = 7; i >= 0; i--) {
        uint32_t w = a->regs[(base + (uint32_t)i * 0x10) >> 2];
        if (w)
            return i * 32 + 31 - __builtin_clz(w);
    }
    return -1;
}

bool hvi_lapic_x2apic(const struct hvi_lapic *a)
{
    return (a->base & (APIC_BASE_ENABLE | APIC_BASE_X2APIC)) ==
           (APIC_BASE_ENABLE | APIC_BASE_X2APIC);
}

static bool hw_enabled(const struct hvi_lapic *a)
{
    return a->base & APIC_BASE_ENABLE;
}

static bool sw_enabled(const struct hvi_lapic *a)
{
    return hw_enabled(a) && (R(a, APIC_SVR) & APIC_SVR_ENABLE);
}

/* The 8259's output reaches this CPU: LINT0 unmasked in ExtINT mode, or
 * the APIC off (the INTR pin then goes straight to the core). */
bool hvi_lapic_accepts_pic(const struct hvi_lapic *a)
{
    if (!hw_enabled(a))
        return a->id == 0;
    uint32_t lvt0 = R(a, APIC_LVT0);
    return !(lvt0 & APIC_LVT_MASKED) && ((lvt0 >> 8) & 7) == DM_EXTINT;
}

static void update_ppr(struct hvi_lapic *a)
{
    uint32_t tpr = R(a, APIC_TPR) & 0xff;
    int isrv = highest(a, APIC_ISR);
    uint32_t isr_class = isrv < 0 ? 0 : ((uint32_t)isrv & 0xf0);
    R(a, APIC_PPR) = (tpr & 0xf0) >= isr_class ? tpr : isr_class;
}

static void disarm(struct hvi_lapic *a)
{
    a->deadline_ns = UINT64_MAX;
    a->period_ns = 0;
}

void hvi_lapic_reset(struct hvi_irqchip *c, struct hvi_lapic *a, bool init)
{
    (void)c;
    memset(a->regs, 0, sizeof(a->regs));
    if (!init)
        a->base = HVI_APIC_DEFAULT_BASE | APIC_BASE_ENABLE |
                  (a->id == 0 ? APIC_BASE_BSP : 0);
    R(a, APIC_ID) = hvi_lapic_x2apic(a) ? a->id : a->id << 24;
    if (hvi_lapic_x2apic(a))
        R(a, APIC_LDR) = ((a->id >> 4) << 16) | (1u << (a->id & 0xf));
    R(a, APIC_LVR) = 0x00050014u; /* version 0x14, six LVT entries */
    R(a, APIC_DFR) = 0xffffffffu;
    R(a, APIC_SVR) = 0xff;
    for (uint32_t off = APIC_LVTT; off <= APIC_LVTERR; off += 0x10)
        R(a, off) = APIC_LVT_MASKED;
    R(a, APIC_LVT_CMCI) = APIC_LVT_MASKED;
    /* As KVM does: the BSP's LINT0 in virtual-wire mode, so the 8259
     * reaches it out of reset. */
    if (a->id == 0 && !init)
        R(a, APIC_LVT0) = DM_EXTINT << 8;
    a->nmi = a->init = a->sipi = false;
    a->wait_sipi = init || a->id != 0;
    a->sipi_vector = 0;
    a->tsc_deadline = 0;
    a->start_ns = 0;
    disarm(a);
}

void hvi_lapic_accept(struct hvi_irqchip *c, struct hvi_lapic *a, uint32_t dm,
                      uint8_t vector, bool level)
{
    switch (dm) {
    case DM_FIXED:
    case DM_LOWEST:
        if (!sw_enabled(a))
            return;
        if (vector < 16) {
            R(a, APIC_ESR) |= 1u << 6; /* received illegal vector */
            return;
        }
        set_vec(a, APIC_IRR, vector, true);
        set_vec(a, APIC_TMR, vector, level);
        break;
    case DM_NMI: a->nmi = true; break;
    case DM_INIT:
        /* The LAPIC resets now, so a SIPI sent right after is kept; the
         * vCPU learns of the INIT at its next look (hvi_lapic_ack). */
        hvi_lapic_reset(c, a, true);
        a->init = true;
        c->host.timer_changed(c->host.opaque);
        break;
    case DM_SIPI:
        if (!a->wait_sipi || a->sipi)
            return;
        a->sipi = true;
        a->sipi_vector = vector;
        break;
    default: return; /* SMI, ExtINT by message: not modelled */
    }
    hvi_irqchip_kick(c, a);
}

static bool matches(const struct hvi_lapic *a, uint32_t dest, bool logical,
                    bool x2dest)
{
    if (!a->present || !hw_enabled(a))
        return false;
    uint32_t ldr = R(a, APIC_LDR);
    if (hvi_lapic_x2apic(a)) {
        if (!x2dest)
            dest = (dest & 0xff) == 0xff ? 0xffffffffu : dest & 0xff;
        if (dest == 0xffffffffu)
            return true;
        if (!logical)
            return dest == a->id;
        return (dest >> 16) == (ldr >> 16) && (dest & ldr & 0xffff);
    }
    uint32_t mda = dest & 0xff;
    if (mda == 0xff)
        return true;
    if (!logical)
        return mda == (R(a, APIC_ID) >> 24);
    if ((R(a, APIC_DFR) >> 28) == 0xf) /* flat */
        return (ldr >> 24) & mda;
    return (mda >> 4) == (ldr >> 28) && (mda & (ldr >> 24) & 0xf);
}

void hvi_apic_bus(struct hvi_irqchip *c, uint32_t dest, bool logical,
                  bool x2dest, uint32_t dm, uint8_t vector, bool level)
{
    for (uint32_t i = 0; i < c->max_cpus; i++) {
        struct hvi_lapic *a = &c->lapic[i];
        if (!matches(a, dest, logical, x2dest))
            continue;
        hvi_lapic_accept(c, a, dm, vector, level);
        if (dm == DM_LOWEST)
            return; /* the lowest id stands for the lowest priority */
    }
}

void hvi_lapic_send_icr(struct hvi_irqchip *c, struct hvi_lapic *a,
                        uint64_t icr)
{
    uint32_t dm = (icr >> 8) & 7;
    uint8_t vector = icr & 0xff;
    bool logical = (icr >> 11) & 1, assert_ = (icr >> 14) & 1,
         level = (icr >> 15) & 1;
    if (dm == DM_INIT && level && !assert_)
        return; /* INIT level de-assert: nothing to do */
    uint32_t dest = hvi_lapic_x2apic(a) ? (uint32_t)(icr >> 32)
                                        : (uint32_t)(icr >> 56);
    switch ((icr >> 18) & 3) {
    case 0:
        hvi_apic_bus(c, dest, logical, hvi_lapic_x2apic(a), dm, vector,
                     false);
        break;
    case 1: hvi_lapic_accept(c, a, dm, vector, false); break;
    default:
        for (uint32_t i = 0; i < c->max_cpus; i++) {
            struct hvi_lapic *b = &c->lapic[i];
            if (b->present && hw_enabled(b) &&
                (b != a || ((icr >> 18) & 3) == 2))
                hvi_lapic_accept(c, b, dm, vector, false);
        }
    }
}

int hvi_lapic_pending(struct hvi_irqchip *c, struct hvi_lapic *a)
{
    if (a->init)
        return HVI_IRQ_INIT;
    if (a->wait_sipi)
        return a->sipi ? HVI_IRQ_SIPI : HVI_IRQ_NONE;
    if (a->nmi)
        return HVI_IRQ_NMI;
    if (c->pic_output && hvi_lapic_accepts_pic(a))
        return HVI_IRQ_INTR;
    if (!sw_enabled(a))
        return HVI_IRQ_NONE;
    int v = highest(a, APIC_IRR);
    if (v >= 16 && ((uint32_t)v & 0xf0) > (R(a, APIC_PPR) & 0xf0))
        return HVI_IRQ_INTR;
    return HVI_IRQ_NONE;
}

int hvi_lapic_ack(struct hvi_irqchip *c, struct hvi_lapic *a, uint8_t *vec)
{
    int k = hvi_lapic_pending(c, a);
    *vec = 0;
    switch (k) {
    case HVI_IRQ_INIT: a->init = false; break; /* reset at the INIT */
    case HVI_IRQ_SIPI:
        a->sipi = false;
        a->wait_sipi = false;
        *vec = a->sipi_vector;
        break;
    case HVI_IRQ_NMI: a->nmi = false; break;
    case HVI_IRQ_INTR:
        if (c->pic_output && hvi_lapic_accepts_pic(a)) {
            *vec = hvi_pic_intack(c);
            break;
        }
        *vec = (uint8_t)highest(a, APIC_IRR);
        set_vec(a, APIC_IRR, *vec, false);
        set_vec(a, APIC_ISR, *vec, true);
        update_ppr(a);
        break;
    }
    return k;
}

static void eoi(struct hvi_irqchip *c, struct hvi_lapic *a)
{
    int v = highest(a, APIC_ISR);
    if (v < 0)
        return;
    set_vec(a, APIC_ISR, (uint8_t)v, false);
    update_ppr(a);
    if (test_vec(a, APIC_TMR, (uint8_t)v)) {
        set_vec(a, APIC_TMR, (uint8_t)v, false);
        if (!(R(a, APIC_SVR) & (1u << 12))) /* EOI broadcast suppressed */
            hvi_ioapic_eoi(c, (uint8_t)v);
    }
}

static uint64_t divisor(const struct hvi_lapic *a)
{
    uint32_t d = R(a, APIC_TDCR);
    uint32_t v = (d & 3) | ((d & 8) >> 1);
    return v == 7 ? 1 : 2u << v;
}

static void arm_count(struct hvi_irqchip *c, struct hvi_lapic *a)
{
    uint32_t count = R(a, APIC_TMICT);
    if (count == 0 || APIC_TIMER_MODE(R(a, APIC_LVTT)) == 2) {
        disarm(a);
        return;
    }
    uint64_t period = (uint64_t)count * divisor(a) * HVI_APIC_BUS_NS;
    a->start_ns = irq_now(c);
    a->deadline_ns = a->start_ns + period;
    a->period_ns = APIC_TIMER_MODE(R(a, APIC_LVTT)) == 1 ? period : 0;
    c->host.timer_changed(c->host.opaque);
}

void hvi_lapic_timer_fire(struct hvi_irqchip *c, struct hvi_lapic *a,
                          uint64_t now)
{
    uint32_t lvtt = R(a, APIC_LVTT);
    if (!(lvtt & APIC_LVT_MASKED))
        hvi_lapic_accept(c, a, DM_FIXED, lvtt & 0xff, false);
    if (a->period_ns) {
        a->start_ns = a->deadline_ns;
        a->deadline_ns += a->period_ns;
        if (a->deadline_ns <= now) { /* missed ticks are not caught up */
            uint64_t behind = now - a->deadline_ns;
            a->start_ns = now - behind % a->period_ns;
            a->deadline_ns = a->start_ns + a->period_ns;
        }
    } else {
        disarm(a);
        a->tsc_deadline = 0;
    }
}

uint32_t hvi_lapic_read(struct hvi_irqchip *c, struct hvi_lapic *a,
                        uint32_t off)
{
    off &= 0xff0;
    if (off == APIC_TMCCT) {
        if (a->deadline_ns == UINT64_MAX ||
            APIC_TIMER_MODE(R(a, APIC_LVTT)) == 2)
            return 0;
        uint64_t now = irq_now(c);
        if (now >= a->deadline_ns)
            return 0;
        return (uint32_t)((a->deadline_ns - now) /
                          (divisor(a) * HVI_APIC_BUS_NS));
    }
    if (off == APIC_ICR && !hvi_lapic_x2apic(a))
        return R(a, APIC_ICR) & ~(1u << 12); /* always delivered */
    if (off >= 0x400)
        return 0;
    return R(a, off);
}

int hvi_lapic_write(struct hvi_irqchip *c, struct hvi_lapic *a, uint32_t off,
                    uint32_t val)
{
    bool x2 = hvi_lapic_x2apic(a);
    off &= 0xff0;
    switch (off) {
    case APIC_ID:
        if (x2)
            return -EINVAL;
        R(a, APIC_ID) = val & 0xff000000u;
        break;
    case APIC_TPR:
        R(a, APIC_TPR) = val & 0xff;
        update_ppr(a);
        break;
    case APIC_EOI: eoi(c, a); break;
    case APIC_LDR:
        if (x2)
            return -EINVAL;
        R(a, APIC_LDR) = val & 0xff000000u;
        break;
    case APIC_DFR:
        if (x2)
            return -EINVAL;
        R(a, APIC_DFR) = val | 0x0fffffffu;
        break;
    case APIC_SVR:
        R(a, APIC_SVR) = val & 0x11ffu;
        if (!(val & APIC_SVR_ENABLE)) {
            for (uint32_t o = APIC_LVTT; o <= APIC_LVTERR; o += 0x10)
                R(a, o) |= APIC_LVT_MASKED;
            R(a, APIC_LVT_CMCI) |= APIC_LVT_MASKED;
        }
        break;
    case APIC_ESR: R(a, APIC_ESR) = 0; break;
    case APIC_ICR:
        R(a, APIC_ICR) = val & ~(1u << 12);
        hvi_lapic_send_icr(c, a,
                           ((uint64_t)R(a, APIC_ICR2) << 32) | R(a, APIC_ICR));
        break;
    case APIC_ICR2:
        if (x2)
            return -EINVAL;
        R(a, APIC_ICR2) = val & 0xff000000u;
        break;
    case APIC_LVTT: {
        uint32_t old = R(a, APIC_LVTT);
        uint32_t v = val & 0x700ffu;
        if (!sw_enabled(a))
            v |= APIC_LVT_MASKED;
        R(a, APIC_LVTT) = v;
        if (APIC_TIMER_MODE(old) != APIC_TIMER_MODE(v)) {
            disarm(a);
            a->tsc_deadline = 0;
            R(a, APIC_TMICT) = 0;
        }
        break;
    }
    case APIC_LVTTHMR:
    case APIC_LVTPC:
    case APIC_LVT_CMCI:
    case APIC_LVT0:
    case APIC_LVT1:
    case APIC_LVTERR: {
        uint32_t mask = off == APIC_LVTERR ? 0x100ffu
                        : (off == APIC_LVT0 || off == APIC_LVT1) ? 0x1a7ffu
                                                                 : 0x107ffu;
        uint32_t v = val & mask;
        if (!sw_enabled(a))
            v |= APIC_LVT_MASKED;
        R(a, off) = v;
        if (off == APIC_LVT0)
            hvi_irqchip_pic_changed(c);
        break;
    }
    case APIC_TMICT:
        if (APIC_TIMER_MODE(R(a, APIC_LVTT)) == 2)
            break;
        R(a, APIC_TMICT) = val;
        arm_count(c, a);
        break;
    case APIC_TDCR: R(a, APIC_TDCR) = val & 0xb; break;
    case APIC_SELF_IPI:
        if (!x2)
            return -EINVAL;
        hvi_lapic_accept(c, a, DM_FIXED, val & 0xff, false);
        break;
    default:
        if (x2)
            return -EINVAL; /* read-only or reserved */
        break;
    }
    return 0;
}

/* IA32_TSC_DEADLINE: in guest TSC units, converted to a host deadline with
 * the vCPU's TSC now and its rate. */
void hvi_lapic_set_tsc_deadline(struct hvi_irqchip *c, struct hvi_lapic *a,
                                uint64_t value, uint64_t guest_tsc,
                                uint32_t tsc_khz)
{
    if (APIC_TIMER_MODE(R(a, APIC_LVTT)) != 2)
        return; /* ignored outside TSC-deadline mode */
    a->tsc_deadline = value;
    if (value == 0) {
        disarm(a);
        return;
    }
    uint64_t now = irq_now(c), delta = 0;
    if (value > guest_tsc && tsc_khz)
        delta = (uint64_t)((unsigned __int128)(value - guest_tsc) * 1000000u /
                           tsc_khz);
    a->start_ns = now;
    a->deadline_ns = now + delta;
    a->period_ns = 0;
    c->host.timer_changed(c->host.opaque);
}

void hvi_lapic_restored(struct hvi_irqchip *c, struct hvi_lapic *a,
                        uint32_t current_count)
{
    update_ppr(a);
    disarm(a);
    uint32_t mode = APIC_TIMER_MODE(R(a, APIC_LVTT));
    if (mode == 2 || !R(a, APIC_TMICT))
        return; /* TSC deadline: the TSC record re-arms it */
    if (!current_count) {
        if (mode != 1)
            return; /* a one-shot that has fired */
        current_count = R(a, APIC_TMICT); /* periodic: at the reload */
    }
    uint64_t unit = divisor(a) * HVI_APIC_BUS_NS;
    uint64_t now = irq_now(c);
    a->deadline_ns = now + (uint64_t)current_count * unit;
    a->period_ns = mode == 1 ? (uint64_t)R(a, APIC_TMICT) * unit : 0;
    a->start_ns = a->period_ns && a->deadline_ns >= a->period_ns
                      ? a->deadline_ns - a->period_ns
                      : now;
    c->host.timer_changed(c->host.opaque);
}
