/* The 8254 PIT (irqchip.h): three channels at 1193182 Hz, modes 0-5 as
 * guests use them, ports 0x40-0x43 with latches and read-back, port 0x61
 * (channel 2's gate and output, the speaker bits), and channel 0's output
 * edges on IRQ 0 (8259 IRQ 0, IOAPIC pin 2). Missed periods are not caught
 * up: a late timer raises one edge. Called with the chip lock held. */
#include "../../core/internal.h"
#include "arch_state.h"
#include "irqchip_internal.h"

#include <errno.h>
#include <string.h>

enum { RW_LATCH = 0, RW_LSB = 1, RW_MSB = 2, RW_WORD0 = 3, RW_WORD1 = 4 };

static uint64_t ticks_since(const struct hvi_pit_channel *ch, uint64_t now)
{
    if (now <= ch->load_ns)
        return 0;
    return (uint64_t)((unsigned __int128)(now - ch->load_ns) * HVI_PIT_HZ /
                      1000000000u);
}

static uint64_t ticks_to_ns(uint64_t t)
{
    return (uint64_t)(((unsigned __int128)t * 1000000000u + HVI_PIT_HZ - 1) /
                      HVI_PIT_HZ);
}

static uint32_t cur_count(const struct hvi_pit_channel *ch, uint64_t now)
{
    uint64_t t = ticks_since(ch, now);
    switch (ch->mode) {
    case 2: return (uint32_t)(ch->count - t % ch->count) & 0xffff;
    case 3:
        return (uint32_t)(ch->count - (2 * t) % ch->count) & 0xfffe;
    default: return (uint32_t)(ch->count - t) & 0xffff;
    }
}

static int out(const struct hvi_pit_channel *ch, uint64_t now)
{
    uint64_t t = ticks_since(ch, now);
    switch (ch->mode) {
    case 0:
    case 1: return t >= ch->count;
    case 2: return t % ch->count != ch->count - 1;
    case 3: return t % ch->count < (ch->count + 1) / 2;
    default: return t != ch->count;
    }
}

/* Channel 0's next IRQ 0 edge after the one at index k of its period. */
static void schedule(struct hvi_irqchip *c, uint64_t now)
{
    struct hvi_pit_channel *ch = &c->pit.ch[0];
    uint64_t t = ticks_since(ch, now), next_t;
    switch (ch->null_count ? 9 : ch->mode) {
    case 0:
    case 4:
        if (t >= ch->count) {
            ch->next_irq_ns = UINT64_MAX;
            return;
        }
        next_t = ch->count;
        break;
    case 2:
    case 3: next_t = (t / ch->count + 1) * ch->count; break;
    default: ch->next_irq_ns = UINT64_MAX; return;
    }
    ch->next_irq_ns = ch->load_ns + ticks_to_ns(next_t);
}

static void load(struct hvi_irqchip *c, int n, uint32_t val)
{
    struct hvi_pit_channel *ch = &c->pit.ch[n];
    uint64_t now = irq_now(c);
    ch->count = val ? val : 0x10000;
    ch->load_ns = now;
    ch->null_count = 0;
    if (n == 0) {
        schedule(c, now);
        c->host.timer_changed(c->host.opaque);
    }
}

void hvi_pit_reset(struct hvi_irqchip *c)
{
    memset(&c->pit, 0, sizeof(c->pit));
    c->pit.reinject = true; /* KVM's default */
    for (int i = 0; i < 3; i++) {
        struct hvi_pit_channel *ch = &c->pit.ch[i];
        ch->count = 0x10000;
        ch->gate = i != 2;
        ch->mode = 0;
        ch->rw_mode = ch->read_state = ch->write_state = RW_WORD0;
        ch->null_count = 1;
        ch->next_irq_ns = UINT64_MAX;
    }
}

/* One edge on IRQ 0: the 8259's line 0 and the IOAPIC's pin 2. */
static void pulse(struct hvi_irqchip *c)
{
    hvi_pic_set_irq(c, 0, 1);
    hvi_pic_set_irq(c, 0, 0);
    hvi_ioapic_set_irq(c, 2, 1);
    hvi_ioapic_set_irq(c, 2, 0);
}

uint64_t hvi_pit_next(struct hvi_irqchip *c)
{
    return c->pit.ch[0].next_irq_ns;
}

void hvi_pit_run(struct hvi_irqchip *c, uint64_t now)
{
    struct hvi_pit_channel *ch = &c->pit.ch[0];
    if (ch->next_irq_ns > now)
        return;
    /* Periods the timer thread reached late, beyond the one due now. */
    uint64_t late = 0;
    if (ch->mode == 2 || ch->mode == 3)
        late = (now - ch->next_irq_ns) / ticks_to_ns(ch->count);
    const struct hvi_pic_state *m = &c->pic[0].s;
    bool untaken = !(m->imr & 1) && (m->irr & 1);
    if (c->pit.reinject) {
        uint64_t more = late + (untaken ? 1 : 0);
        c->pit.backlog = c->pit.backlog + more > 1000000
                             ? 1000000
                             : c->pit.backlog + (uint32_t)more;
    }
    if (!untaken || !c->pit.reinject)
        pulse(c);
    schedule(c, now);
}

void hvi_pit_irq0_acked(struct hvi_irqchip *c)
{
    if (!c->pit.reinject || !c->pit.backlog)
        return;
    c->pit.backlog--;
    pulse(c);
}

void hvi_pit_set_reinject(struct hvi_irqchip *c, bool on, bool drop)
{
    pthread_mutex_lock(&c->lock);
    c->pit.reinject = on;
    if (drop || !on)
        c->pit.backlog = 0;
    pthread_mutex_unlock(&c->lock);
}

static void latch_count(struct hvi_pit_channel *ch, uint64_t now)
{
    if (ch->count_latched)
        return;
    ch->latched_count = (uint16_t)cur_count(ch, now);
    ch->count_latched = ch->rw_mode;
}

uint8_t hvi_pit_read(struct hvi_irqchip *c, uint16_t port)
{
    uint64_t now = irq_now(c);
    if (port == 0x61) {
        struct hvi_pit_channel *ch2 = &c->pit.ch[2];
        int refresh = (int)((now / 15085) & 1);
        return (uint8_t)((c->pit.speaker & 3) | (refresh << 4) |
                         ((ch2->gate ? out(ch2, now) : 1) << 5));
    }
    if (port == 0x43)
        return 0xff;
    struct hvi_pit_channel *ch = &c->pit.ch[port - 0x40];
    if (ch->status_latched) {
        ch->status_latched = 0;
        return ch->status;
    }
    if (ch->count_latched) {
        uint8_t v;
        switch (ch->count_latched) {
        case RW_MSB:
            v = ch->latched_count >> 8;
            ch->count_latched = 0;
            break;
        case RW_WORD0:
            v = (uint8_t)ch->latched_count;
            ch->count_latched = RW_MSB;
            break;
        default:
            v = (uint8_t)ch->latched_count;
            ch->count_latched = 0;
            break;
        }
        return v;
    }
    uint32_t n = cur_count(ch, now);
    switch (ch->read_state) {
    case RW_LSB: return (uint8_t)n;
    case RW_MSB: return (uint8_t)(n >> 8);
    case RW_WORD0: ch->read_state = RW_WORD1; return (uint8_t)n;
    default: ch->read_state = RW_WORD0; return (uint8_t)(n >> 8);
    }
}

void hvi_pit_write(struct hvi_irqchip *c, uint16_t port, uint8_t val)
{
    uint64_t now = irq_now(c);
    if (port == 0x61) {
        struct hvi_pit_channel *ch2 = &c->pit.ch[2];
        uint8_t gate = val & 1;
        if (gate && !ch2->gate)
            ch2->load_ns = now; /* a rising gate (re)starts the count */
        ch2->gate = gate;
        c->pit.speaker = val & 3;
        return;
    }
    if (port == 0x43) {
        int n = val >> 6;
        if (n == 3) { /* read-back */
            for (int i = 0; i < 3; i++) {
                struct hvi_pit_channel *ch = &c->pit.ch[i];
                if (!(val & (2u << i)))
                    continue;
                if (!(val & 0x20))
                    latch_count(ch, now);
                if (!(val & 0x10) && !ch->status_latched) {
                    ch->status = (uint8_t)((out(ch, now) << 7) |
                                           (ch->null_count << 6) |
                                           (ch->rw_mode << 4) |
                                           (ch->mode << 1) | ch->bcd);
                    ch->status_latched = 1;
                }
            }
            return;
        }
        struct hvi_pit_channel *ch = &c->pit.ch[n];
        int access = (val >> 4) & 3;
        if (access == RW_LATCH) {
            latch_count(ch, now);
            return;
        }
        ch->rw_mode = ch->read_state = ch->write_state = (uint8_t)access;
        ch->mode = (val >> 1) & 7;
        if (ch->mode > 5)
            ch->mode -= 4;
        ch->bcd = val & 1;
        ch->null_count = 1;
        ch->programmed = 1;
        if (n == 0) {
            ch->next_irq_ns = UINT64_MAX; /* until the count is written */
        }
        return;
    }
    int n = port - 0x40;
    struct hvi_pit_channel *ch = &c->pit.ch[n];
    switch (ch->write_state) {
    case RW_LSB: load(c, n, val); break;
    case RW_MSB: load(c, n, (uint32_t)val << 8); break;
    case RW_WORD0:
        ch->write_latch = val;
        ch->write_state = RW_WORD1;
        break;
    default:
        load(c, n, ch->write_latch | ((uint32_t)val << 8));
        ch->write_state = RW_WORD0;
        break;
    }
}

void hvi_pit_get(struct hvi_irqchip *c, struct hvi_x86_pit *s, uint64_t now)
{
    memset(s, 0, sizeof(*s));
    s->hdr.version = HVI_X86_STATE_VERSION;
    s->hdr.size = sizeof(*s);
    s->flags = (c->pit.speaker & 2) ? HVI_X86_PIT_SPEAKER_ON : 0;
    for (int i = 0; i < 3; i++) {
        const struct hvi_pit_channel *ch = &c->pit.ch[i];
        struct hvi_x86_pit_channel *o = &s->channels[i];
        o->count = ch->count;
        o->gate = ch->gate;
        o->elapsed_ns = now > ch->load_ns ? now - ch->load_ns : 0;
        if (!ch->programmed) {
            o->mode = HVI_X86_PIT_UNPROGRAMMED;
            continue;
        }
        o->latched_count = ch->latched_count;
        o->count_latched = ch->count_latched;
        o->status_latched = ch->status_latched;
        o->status = ch->status;
        o->read_state = ch->read_state;
        o->write_state = ch->write_state;
        o->write_latch = ch->write_latch;
        o->rw_mode = ch->rw_mode;
        o->mode = ch->mode;
        o->bcd = ch->bcd;
    }
}

/* After hvi_x86_check_pit(): what this model needs on top. */
int hvi_pit_set(struct hvi_irqchip *c, const struct hvi_x86_pit *s,
                uint64_t now)
{
    if (s->flags & HVI_X86_PIT_HPET_LEGACY)
        return hvi_error(-ENOTSUP, "PIT state: IRQ 0 is the HPET's, and "
                                   "the library has no HPET");
    for (int i = 0; i < 3; i++) {
        const struct hvi_x86_pit_channel *o = &s->channels[i];
        if (o->count == 0 ||
            (o->mode != HVI_X86_PIT_UNPROGRAMMED &&
             (o->rw_mode == 0 || o->read_state == 0 || o->write_state == 0)))
            return hvi_error(-EINVAL,
                             "PIT state: channel %d: count %u, access mode "
                             "%u, read step %u, write step %u",
                             i, o->count, o->rw_mode, o->read_state,
                             o->write_state);
    }
    c->pit.speaker = ((s->flags & HVI_X86_PIT_SPEAKER_ON) ? 2 : 0) |
                     (s->channels[2].gate ? 1 : 0);
    for (int i = 0; i < 3; i++) {
        const struct hvi_x86_pit_channel *o = &s->channels[i];
        struct hvi_pit_channel *ch = &c->pit.ch[i];
        memset(ch, 0, sizeof(*ch));
        ch->count = o->count;
        ch->gate = o->gate;
        ch->programmed = o->mode != HVI_X86_PIT_UNPROGRAMMED;
        if (ch->programmed) {
            ch->latched_count = o->latched_count;
            ch->count_latched = o->count_latched;
            ch->status_latched = o->status_latched;
            ch->status = o->status;
            ch->read_state = o->read_state;
            ch->write_state = o->write_state;
            ch->write_latch = o->write_latch;
            ch->rw_mode = o->rw_mode;
            ch->mode = o->mode;
            ch->bcd = o->bcd;
        } else {
            ch->rw_mode = ch->read_state = ch->write_state = RW_WORD0;
            ch->null_count = 1;
        }
        /* Only the phase matters to the count and the outputs. */
        uint64_t el = o->elapsed_ns;
        if (el > now)
            el %= ticks_to_ns(ch->count);
        ch->load_ns = now - el;
        ch->next_irq_ns = UINT64_MAX;
    }
    if (c->pit.ch[0].programmed)
        schedule(c, now);
    return 0;
}
