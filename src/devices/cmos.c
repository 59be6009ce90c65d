/* CMOS real-time clock and NVRAM at ports 0x70/0x71.
 *
 * The time is the host's UTC clock read at each access, shown in BCD or
 * binary and 12- or 24-hour form as status register B asks. Writes to the
 * time registers are accepted into NVRAM but do not move the clock: a guest
 * cannot change host time, and Linux only sets the RTC on shutdown. Update-
 * in-progress (register A bit 7) is never set, so a guest's wait-for-UIP
 * loop ends at once. The memory-size bytes come from the VM's regions at
 * creation, and a reset puts them back after a guest wrote over them.
 * Interrupts (alarm, periodic, update) are not generated. */
#include "../core/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REG_SEC 0x00
#define REG_MIN 0x02
#define REG_HOUR 0x04
#define REG_WDAY 0x06
#define REG_MDAY 0x07
#define REG_MON 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d
#define REG_CENTURY 0x32

#define B_24H 0x02
#define B_BINARY 0x04
#define D_VRT 0x80 /* battery good */

struct cmos {
    pthread_mutex_t lock;
    uint8_t index;
    uint8_t nvram[128];
    uint8_t sizes[128]; /* the memory-size bytes computed at creation */
};

/* The memory-size bytes fill_memory_size() computes: a reset puts them
 * back, whatever the guest wrote over them. */
static const uint8_t size_regs[] = {0x15, 0x16, 0x17, 0x18, 0x30, 0x31,
                                    0x34, 0x35, 0x5b, 0x5c, 0x5d};

static uint8_t encode(const struct cmos *c, unsigned v)
{
    return (c->nvram[REG_B] & B_BINARY) ? (uint8_t)v
                                        : (uint8_t)((v / 10) << 4 | v % 10);
}

static uint8_t hour(const struct cmos *c, unsigned h)
{
    if (c->nvram[REG_B] & B_24H)
        return encode(c, h);
    unsigned h12 = h % 12 ? h % 12 : 12;
    return (uint8_t)(encode(c, h12) | (h >= 12 ? 0x80 : 0));
}

static uint8_t clock_reg(const struct cmos *c, uint8_t reg)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    switch (reg) {
    case REG_SEC: return encode(c, (unsigned)tm.tm_sec);
    case REG_MIN: return encode(c, (unsigned)tm.tm_min);
    case REG_HOUR: return hour(c, (unsigned)tm.tm_hour);
    case REG_WDAY: return encode(c, (unsigned)tm.tm_wday + 1);
    case REG_MDAY: return encode(c, (unsigned)tm.tm_mday);
    case REG_MON: return encode(c, (unsigned)tm.tm_mon + 1);
    case REG_YEAR: return encode(c, (unsigned)tm.tm_year % 100);
    default: return encode(c, (unsigned)(tm.tm_year + 1900) / 100);
    }
}

static bool is_clock(uint8_t reg)
{
    return reg == REG_SEC || reg == REG_MIN || reg == REG_HOUR ||
           (reg >= REG_WDAY && reg <= REG_YEAR) || reg == REG_CENTURY;
}

static int cmos_read(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                     uint64_t offset, void *data, uint32_t size)
{
    struct cmos *c = opaque;
    (void)vcpu, (void)range;
    uint8_t v = 0xff;
    pthread_mutex_lock(&c->lock);
    if (offset == 1) {
        uint8_t reg = c->index;
        if (is_clock(reg))
            v = clock_reg(c, reg);
        else
            v = c->nvram[reg];
        if (reg == REG_C)
            c->nvram[REG_C] = 0; /* reading C acknowledges interrupts */
    }
    pthread_mutex_unlock(&c->lock);
    memset(data, v, size);
    return 0;
}

static int cmos_write(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                      uint64_t offset, const void *data, uint32_t size)
{
    struct cmos *c = opaque;
    (void)vcpu, (void)range, (void)size;
    uint8_t v = *(const uint8_t *)data;
    pthread_mutex_lock(&c->lock);
    if (offset == 0) {
        c->index = v & 0x7f; /* bit 7 is the NMI mask */
    } else if (c->index == REG_A) {
        c->nvram[REG_A] = v & 0x7f; /* UIP is read-only */
    } else if (c->index != REG_C && c->index != REG_D) {
        c->nvram[c->index] = v;
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void cmos_destroy(void *opaque)
{
    struct cmos *c = opaque;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* KiB of RAM in [lo, hi) from the VM's regions. */
static uint64_t ram_between(hvc_vm *vm, uint64_t lo, uint64_t hi)
{
    hvc_memory_region **r;
    size_t n;
    if (hvi_memory_snapshot(vm, &r, &n) < 0)
        return 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = hvc_memory_region_guest_addr(r[i]);
        uint64_t b = a + hvc_memory_region_length(r[i]);
        if (a < lo)
            a = lo;
        if (b > hi)
            b = hi;
        if (b > a)
            total += b - a;
    }
    free(r);
    return total;
}

static void fill_memory_size(struct cmos *c, hvc_vm *vm)
{
    uint64_t base = ram_between(vm, 0, 640 << 10) >> 10;
    uint64_t ext = ram_between(vm, 1 << 20, 64ull << 20) >> 10; /* KiB */
    uint64_t ext16 = ram_between(vm, 16ull << 20, 4ull << 30) >> 16;
    uint64_t high = ram_between(vm, 4ull << 30, UINT64_MAX) >> 16;
    if (ext16 > 0xffff)
        ext16 = 0xffff;
    c->nvram[0x15] = (uint8_t)base;
    c->nvram[0x16] = (uint8_t)(base >> 8);
    c->nvram[0x17] = c->nvram[0x30] = (uint8_t)ext;
    c->nvram[0x18] = c->nvram[0x31] = (uint8_t)(ext >> 8);
    c->nvram[0x34] = (uint8_t)ext16; /* 64 KiB units above 16 MiB */
    c->nvram[0x35] = (uint8_t)(ext16 >> 8);
    c->nvram[0x5b] = (uint8_t)high; /* 64 KiB units above 4 GiB */
    c->nvram[0x5c] = (uint8_t)(high >> 8);
    c->nvram[0x5d] = (uint8_t)(high >> 16);
}

static void cmos_reset(void *opaque)
{
    struct cmos *c = opaque;
    pthread_mutex_lock(&c->lock);
    c->index = 0;
    c->nvram[REG_A] = 0x26; /* 32.768 kHz base, 1024 Hz rate */
    c->nvram[REG_B] = B_24H;
    c->nvram[REG_C] = 0;
    c->nvram[REG_D] = D_VRT;
    for (size_t i = 0; i < sizeof(size_regs); i++)
        c->nvram[size_regs[i]] = c->sizes[size_regs[i]];
    pthread_mutex_unlock(&c->lock);
}

static const hvc_device_ops cmos_ops = {
    .version = HVC_DEVICE_OPS_VERSION,
    .type = "cmos-rtc",
    .read = cmos_read,
    .write = cmos_write,
    .reset = cmos_reset,
    .destroy = cmos_destroy,
};

int hvc_cmos_create(hvc_vm *vm, hvc_device **out)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_cmos_create: VM is NULL");
    struct cmos *c = calloc(1, sizeof(*c));
    if (!c)
        return hvi_error(-ENOMEM, "out of memory creating the CMOS RTC");
    pthread_mutex_init(&c->lock, NULL);
    fill_memory_size(c, vm);
    memcpy(c->sizes, c->nvram, sizeof(c->sizes));
    cmos_reset(c);
    hvc_device_range r = {HVC_IO_PIO, 0, 0x70, 2};
    hvc_device_options o = HVC_DEVICE_OPTIONS_INIT;
    o.nr_ranges = 1;
    o.ranges = &r;
    int err = hvc_vm_add_device(vm, &cmos_ops, c, &o, out);
    if (err < 0)
        cmos_destroy(c);
    return err;
}
