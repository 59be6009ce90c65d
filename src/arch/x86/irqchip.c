/* The userspace chip set (irqchip.h): its lock, the routes between the
 * chips (GSIs, MSIs, the 8259's output), the guest's accesses, the timers
 * and the state. */
#include "../../core/internal.h"
#include "irqchip_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int hvi_irqchip_create(const struct hvi_irqchip_host *host, uint32_t max_cpus,
                       struct hvi_irqchip **out)
{
    struct hvi_irqchip *c = calloc(1, sizeof(*c));
    struct hvi_lapic *l = calloc(max_cpus ? max_cpus : 1, sizeof(*l));
    if (!c || !l) {
        free(c);
        free(l);
        return hvi_error(-ENOMEM, "out of memory creating the interrupt "
                                  "controllers");
    }
    pthread_mutex_init(&c->lock, NULL);
    c->host = *host;
    c->max_cpus = max_cpus;
    c->lapic = l;
    hvi_ioapic_reset(&c->ioapic);
    hvi_pic_reset(c);
    hvi_pit_reset(c);
    *out = c;
    return 0;
}

void hvi_irqchip_destroy(struct hvi_irqchip *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->lapic);
    free(c);
}

int hvi_irqchip_add_cpu(struct hvi_irqchip *c, uint32_t cpu)
{
    if (cpu >= c->max_cpus)
        return hvi_error(-EINVAL, "LAPIC %u is out of range", cpu);
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    memset(a, 0, sizeof(*a));
    a->id = cpu;
    a->present = true;
    hvi_lapic_reset(c, a, false);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void hvi_irqchip_remove_cpu(struct hvi_irqchip *c, uint32_t cpu)
{
    if (cpu >= c->max_cpus)
        return;
    pthread_mutex_lock(&c->lock);
    c->lapic[cpu].present = false;
    c->lapic[cpu].deadline_ns = UINT64_MAX;
    pthread_mutex_unlock(&c->lock);
}

void hvi_irqchip_kick(struct hvi_irqchip *c, struct hvi_lapic *a)
{
    c->host.wake(c->host.opaque, a->id);
}

void hvi_irqchip_pic_changed(struct hvi_irqchip *c)
{
    if (!c->pic_output)
        return;
    for (uint32_t i = 0; i < c->max_cpus; i++)
        if (c->lapic[i].present && hvi_lapic_accepts_pic(&c->lapic[i]))
            hvi_irqchip_kick(c, &c->lapic[i]);
}

void hvi_irqchip_set_irq(struct hvi_irqchip *c, uint32_t gsi, int level)
{
    if (gsi >= HVI_IRQCHIP_PINS)
        return;
    pthread_mutex_lock(&c->lock);
    if (gsi < 16)
        hvi_pic_set_irq(c, gsi, level);
    hvi_ioapic_set_irq(c, gsi == 0 ? 2 : gsi, level);
    pthread_mutex_unlock(&c->lock);
}

int hvi_irqchip_msi(struct hvi_irqchip *c, uint64_t address, uint32_t data)
{
    if ((address & 0xfff00000ull) != 0xfee00000ull || (address >> 32))
        return hvi_error(-EINVAL,
                         "MSI address 0x%llx is outside the interrupt window "
                         "0xfee00000-0xfeefffff",
                         (unsigned long long)address);
    uint32_t dm = (data >> 8) & 7;
    if (dm == DM_SMI || dm == 3 || dm == DM_SIPI)
        return hvi_error(-EINVAL,
                         "MSI data 0x%x: delivery mode %u is not one an MSI "
                         "may use",
                         data, dm);
    pthread_mutex_lock(&c->lock);
    hvi_apic_bus(c, (uint32_t)(address >> 12) & 0xff, (address >> 2) & 1,
                 false, dm, (uint8_t)data, false);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

bool hvi_irqchip_pio(struct hvi_irqchip *c, uint16_t port, uint8_t size,
                     bool is_write, uint8_t *data)
{
    /* Only an access wholly inside one of the chips' ranges is theirs (as
     * KVM's bus decides): a dword OUT at 0x20 goes to the VMM. */
    static const struct {
        uint16_t base, len;
        bool pic;
    } ranges[] = {{0x20, 2, true},   {0xa0, 2, true}, {0x4d0, 2, true},
                  {0x40, 4, false},  {0x61, 1, false}};
    int which = -1;
    for (int i = 0; i < 5; i++)
        if (port >= ranges[i].base &&
            (uint32_t)port + size <= (uint32_t)ranges[i].base + ranges[i].len)
            which = i;
    if (which < 0 || size == 0)
        return false;
    bool pic = ranges[which].pic;
    pthread_mutex_lock(&c->lock);
    /* Byte registers: a wider access touches the first, reads the rest as
     * ones (guests use byte accesses). */
    if (is_write) {
        if (pic)
            hvi_pic_write(c, port, data[0]);
        else
            hvi_pit_write(c, port, data[0]);
    } else {
        memset(data, 0xff, size);
        data[0] = pic ? hvi_pic_read(c, port) : hvi_pit_read(c, port);
    }
    pthread_mutex_unlock(&c->lock);
    return true;
}

static void rw32(uint8_t *data, uint8_t size, uint32_t reg, uint32_t shift)
{
    uint64_t v = (uint64_t)reg >> shift;
    memcpy(data, &v, size > 8 ? 8 : size);
}

bool hvi_irqchip_mmio(struct hvi_irqchip *c, uint32_t cpu, uint64_t gpa,
                      uint8_t size, bool is_write, uint8_t *data)
{
    if (size == 0 || size > 8)
        return false;
    pthread_mutex_lock(&c->lock);
    bool claimed = false;
    struct hvi_lapic *a = cpu < c->max_cpus ? &c->lapic[cpu] : NULL;
    if (a && a->present && (a->base & APIC_BASE_ENABLE) &&
        !hvi_lapic_x2apic(a) && gpa >= (a->base & ~0xfffull) &&
        gpa < (a->base & ~0xfffull) + 0x1000) {
        uint32_t off = (uint32_t)(gpa & 0xfff);
        claimed = true;
        if (is_write) {
            uint32_t v = 0;
            memcpy(&v, data, size < 4 ? size : 4);
            if ((off & 0xf) == 0 && size >= 4)
                hvi_lapic_write(c, a, off, v);
        } else {
            memset(data, 0, size);
            rw32(data, size, hvi_lapic_read(c, a, off & ~0xfu),
                 (off & 3) * 8);
        }
    } else if (gpa >= HVI_IOAPIC_BASE &&
               gpa < HVI_IOAPIC_BASE + HVI_IOAPIC_SIZE) {
        uint32_t off = (uint32_t)(gpa - HVI_IOAPIC_BASE);
        claimed = true;
        if (is_write) {
            uint32_t v = 0;
            memcpy(&v, data, size < 4 ? size : 4);
            hvi_ioapic_write(c, off & ~3u, v);
        } else {
            memset(data, 0, size);
            rw32(data, size, hvi_ioapic_read(c, off & ~3u), (off & 3) * 8);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return claimed;
}

uint64_t hvi_irqchip_apic_base(struct hvi_irqchip *c, uint32_t cpu)
{
    pthread_mutex_lock(&c->lock);
    uint64_t b = cpu < c->max_cpus ? c->lapic[cpu].base : 0;
    pthread_mutex_unlock(&c->lock);
    return b;
}

static int set_apic_base(struct hvi_irqchip *c, struct hvi_lapic *a,
                         uint64_t v)
{
    uint64_t old = a->base;
    if (v & ~(0xffffff000ull | APIC_BASE_ENABLE | APIC_BASE_X2APIC |
              APIC_BASE_BSP))
        return -EINVAL;
    if ((v & APIC_BASE_X2APIC) && !(v & APIC_BASE_ENABLE))
        return -EINVAL; /* x2APIC without the APIC: invalid state */
    if ((old & APIC_BASE_X2APIC) && (old & APIC_BASE_ENABLE) &&
        (v & APIC_BASE_ENABLE) && !(v & APIC_BASE_X2APIC))
        return -EINVAL; /* x2APIC back to xAPIC directly */
    a->base = v;
    if (!(old & APIC_BASE_X2APIC) && hvi_lapic_x2apic(a)) {
        a->regs[APIC_ID >> 2] = a->id;
        a->regs[APIC_LDR >> 2] = ((a->id >> 4) << 16) | (1u << (a->id & 0xf));
    } else if (!(v & APIC_BASE_ENABLE) && (old & APIC_BASE_ENABLE)) {
        bool bsp = a->id == 0;
        hvi_lapic_reset(c, a, true);
        a->base = v;
        a->wait_sipi = !bsp;
        a->regs[APIC_ID >> 2] = a->id << 24;
    }
    hvi_irqchip_pic_changed(c);
    return 0;
}

int hvi_irqchip_rdmsr(struct hvi_irqchip *c, uint32_t cpu, uint32_t msr,
                      uint64_t *value)
{
    if (cpu >= c->max_cpus)
        return 0;
    int r = 1;
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    if (msr == HVI_MSR_APIC_BASE) {
        *value = a->base;
    } else if (msr == HVI_MSR_TSC_DEADLINE_IRQ) {
        *value = a->tsc_deadline;
    } else if (msr >= HVI_MSR_X2APIC_FIRST && msr <= HVI_MSR_X2APIC_LAST) {
        uint32_t off = (msr - HVI_MSR_X2APIC_FIRST) << 4;
        if (!hvi_lapic_x2apic(a) || off == APIC_EOI || off == APIC_SELF_IPI ||
            off == APIC_DFR || off == APIC_ICR2 || off >= 0x400)
            r = -EINVAL;
        else if (off == APIC_ICR)
            *value = ((uint64_t)a->regs[APIC_ICR2 >> 2] << 32) |
                     a->regs[APIC_ICR >> 2];
        else
            *value = hvi_lapic_read(c, a, off);
    } else {
        r = 0;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

int hvi_irqchip_wrmsr(struct hvi_irqchip *c, uint32_t cpu, uint32_t msr,
                      uint64_t value, uint64_t guest_tsc, uint32_t tsc_khz)
{
    if (cpu >= c->max_cpus)
        return 0;
    int r = 1;
    pthread_mutex_lock(&c->lock);
    struct hvi_lapic *a = &c->lapic[cpu];
    if (msr == HVI_MSR_APIC_BASE) {
        if (set_apic_base(c, a, value) < 0)
            r = -EINVAL;
    } else if (msr == HVI_MSR_TSC_DEADLINE_IRQ) {
        hvi_lapic_set_tsc_deadline(c, a, value, guest_tsc, tsc_khz);
    } else if (msr >= HVI_MSR_X2APIC_FIRST && msr <= HVI_MSR_X2APIC_LAST) {
        uint32_t off = (msr - HVI_MSR_X2APIC_FIRST) << 4;
        if (!hvi_lapic_x2apic(a) || off >= 0x400 ||
            (off != APIC_ICR && (value >> 32)))
            r = -EINVAL;
        else if (off == APIC_ICR) {
            a->regs[APIC_ICR2 >> 2] = (uint32_t)(value >> 32);
            a->regs[APIC_ICR >> 2] = (uint32_t)value & ~(1u << 12);
            hvi_lapic_send_icr(c, a, value);
        } else if (hvi_lapic_write(c, a, off, (uint32_t)value) < 0)
            r = -EINVAL;
    } else {
        r = 0;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

int hvi_irqchip_pending(struct hvi_irqchip *c, uint32_t cpu)
{
    if (cpu >= c->max_cpus)
        return HVI_IRQ_NONE;
    pthread_mutex_lock(&c->lock);
    int k = c->lapic[cpu].present ? hvi_lapic_pending(c, &c->lapic[cpu])
                                  : HVI_IRQ_NONE;
    pthread_mutex_unlock(&c->lock);
    return k;
}

int hvi_irqchip_ack(struct hvi_irqchip *c, uint32_t cpu, uint8_t *vector)
{
    *vector = 0;
    if (cpu >= c->max_cpus)
        return HVI_IRQ_NONE;
    pthread_mutex_lock(&c->lock);
    int k = c->lapic[cpu].present ? hvi_lapic_ack(c, &c->lapic[cpu], vector)
                                  : HVI_IRQ_NONE;
    pthread_mutex_unlock(&c->lock);
    return k;
}

bool hvi_irqchip_wait_sipi(struct hvi_irqchip *c, uint32_t cpu)
{
    if (cpu >= c->max_cpus)
        return false;
    pthread_mutex_lock(&c->lock);
    bool w = c->lapic[cpu].wait_sipi;
    pthread_mutex_unlock(&c->lock);
    return w;
}

void hvi_irqchip_set_started(struct hvi_irqchip *c, uint32_t cpu)
{
    if (cpu >= c->max_cpus)
        return;
    pthread_mutex_lock(&c->lock);
    c->lapic[cpu].wait_sipi = false;
    c->lapic[cpu].sipi = false;
    c->lapic[cpu].init = false;
    pthread_mutex_unlock(&c->lock);
}

uint64_t hvi_irqchip_next_deadline(struct hvi_irqchip *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t next = hvi_pit_next(c);
    for (uint32_t i = 0; i < c->max_cpus; i++)
        if (c->lapic[i].present && c->lapic[i].deadline_ns < next)
            next = c->lapic[i].deadline_ns;
    pthread_mutex_unlock(&c->lock);
    return next;
}

void hvi_irqchip_run_timers(struct hvi_irqchip *c, uint64_t now)
{
    pthread_mutex_lock(&c->lock);
    hvi_pit_run(c, now);
    for (uint32_t i = 0; i < c->max_cpus; i++) {
        struct hvi_lapic *a = &c->lapic[i];
        if (a->present && a->deadline_ns <= now)
            hvi_lapic_timer_fire(c, a, now);
    }
    pthread_mutex_unlock(&c->lock);
}
