/* CRC32C (Castagnoli, reflected), as SSE4.2's crc32 instruction computes it.
 *
 * Streams checksum all of guest memory, so this is on the save and restore
 * path: the instruction is picked at run time (the library is built for the
 * x86-64 baseline), and long buffers run three independent lanes so the
 * instruction's latency is hidden; the lanes are joined by multiplying a
 * lane's CRC by x^(8 * lane bytes) modulo the polynomial. Without SSE4.2, a
 * byte table. */
#include "internal.h"

#include <stdatomic.h>
#include <string.h>

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */
#define LANE 8192u       /* bytes per lane of a three-lane block */

static uint32_t table[256];
static uint32_t lane_shift; /* x^(8 * LANE) mod P, reflected */
static atomic_int ready;

/* a * b mod P; bit 31 holds x^0 in the reflected representation. */
static uint32_t mulmod(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;
    for (int i = 0; i < 32; i++) {
        if (a & (0x80000000u >> i))
            prod ^= b;
        b = (b >> 1) ^ (POLY & (0u - (b & 1))); /* b *= x */
    }
    return prod;
}

/* Idempotent: two threads racing here compute the same values. */
static void init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        table[i] = c;
    }
    uint32_t x8 = 0x00800000u; /* x^8 */
    uint32_t s = 0x80000000u;  /* x^0 */
    for (uint32_t i = 0; i < LANE; i++)
        s = mulmod(s, x8);
    lane_shift = s;
    atomic_store(&ready, 1);
}

static uint32_t raw_table(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
lane_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}

__attribute__((target("sse4.2"))) static uint32_t
raw_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len >= 3 * LANE) {
        uint64_t a = crc, b = 0, c = 0;
        for (size_t i = 0; i < LANE; i += 8) {
            uint64_t va, vb, vc;
            memcpy(&va, p + i, 8);
            memcpy(&vb, p + LANE + i, 8);
            memcpy(&vc, p + 2 * LANE + i, 8);
            a = __builtin_ia32_crc32di(a, va);
            b = __builtin_ia32_crc32di(b, vb);
            c = __builtin_ia32_crc32di(c, vc);
        }
        uint32_t ab = mulmod((uint32_t)a, lane_shift) ^ (uint32_t)b;
        crc = mulmod(ab, lane_shift) ^ (uint32_t)c;
        p += 3 * LANE;
        len -= 3 * LANE;
    }
    return lane_hw(crc, p, len);
}

static int have_hw(void)
{
    static atomic_int cached = -1;
    int h = atomic_load(&cached);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        atomic_store(&cached, h);
    }
    return h;
}
#endif

uint32_t hvi_crc32c(uint32_t crc, const void *buf, size_t len)
{
    if (!atomic_load(&ready))
        init();
#if defined(__x86_64__)
    if (have_hw())
        return ~raw_hw(~crc, buf, len);
#endif
    return ~raw_table(~crc, buf, len);
}
