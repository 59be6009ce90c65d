/* A clock-stamping, memory-dirtying PVH guest for bench/migration.c. The
 * same ELF boots under hvrun and under QEMU's microvm.
 *
 * It reads the TSC in a loop. The largest gap between two consecutive
 * reads in a period is what the guest saw of any pause: a migration's
 * switchover shows as one gap as long as the guest did not run. Between
 * reads it writes one word into the next page of its RAM above 16 MiB
 * (wrapping) whenever the dirtying rate says a page is due, so it dirties
 * memory at a set rate.
 *
 * The command line sets everything in TSC ticks (the host measures the
 * TSC's frequency, and the guest needs no division):
 *   tpp=N     ticks per page to dirty (0: dirty nothing)
 *   period=N  ticks per report
 * Each period it writes one line on COM1:
 *   "S <seq> <largest gap> <TSC now>\n", numbers in hex,
 * and starts the next period after the line, so the time spent writing
 * it is no gap. On PVM (this project's CI host) the guest's TSC is the
 * host's: offset writes are dropped, so a gap is host time, under any
 * VMM. */
#include "pvh_guest.h"

#define LOW (16u << 20)
#define COM1 0x3f8
#define BURST 64u /* pages at most per loop turn: no catch-up storm */


static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static void putc_com1(char c)
{
    __asm__ volatile("outb %0, %1" : : "a"(c), "Nd"((uint16_t)COM1));
}

static void put_hex(uint64_t v)
{
    int shift = 60;
    while (shift > 0 && !((v >> shift) & 15))
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        putc_com1("0123456789abcdef"[(v >> shift) & 15]);
}

/* The decimal value of the word "key=N" in the space-separated @p s,
 * or 0. */
static uint64_t param(const char *s, const char *key)
{
    while (s && *s) {
        while (*s == ' ')
            s++;
        const char *a = s, *k = key;
        while (*k && *a == *k)
            a++, k++;
        if (!*k && *a == '=') {
            uint64_t v = 0;
            for (a++; *a >= '0' && *a <= '9'; a++)
                v = v * 10 + (uint64_t)(*a - '0');
            return v;
        }
        while (*s && *s != ' ')
            s++;
    }
    return 0;
}

void pvh_main(const struct hvm_start_info *si)
{
    const char *cmd = (const char *)(uintptr_t)si->cmdline_paddr;
    uint64_t tpp = param(cmd, "tpp");
    uint64_t period = param(cmd, "period");
    if (!period)
        period = 100000000; /* about 50 ms at 2 GHz */
    uint64_t top = pvh_ram_top(si);
    uint32_t pages = top > LOW + 4096u ? (uint32_t)((top - LOW) >> 12) : 0;
    uint32_t next = 0;
    uint64_t seq = 0;
    uint64_t prev = rdtsc(), start = prev, due = prev, biggest = 0;
    for (;;) {
        uint64_t now = rdtsc();
        uint64_t gap = now - prev;
        prev = now;
        if (gap > biggest)
            biggest = gap;
        if (tpp && pages) {
            uint32_t n = 0;
            while ((int64_t)(now - due) >= 0 && n < BURST) {
                volatile uint32_t *p =
                    (volatile uint32_t *)(uintptr_t)(LOW + (next << 12));
                *p = (uint32_t)now | 1;
                if (++next == pages)
                    next = 0;
                due += tpp;
                n++;
            }
            if (n == BURST) /* behind by more than a burst: drop the debt */
                due = now;
        }
        if (now - start >= period) {
            putc_com1('S');
            putc_com1(' ');
            put_hex(seq++);
            putc_com1(' ');
            put_hex(biggest);
            putc_com1(' ');
            put_hex(now);
            putc_com1('\n');
            biggest = 0;
            start = prev = rdtsc();
        }
    }
}
