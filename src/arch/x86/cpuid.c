/* CPUID leaves that describe the TSC to the guest: their encoding is the
 * architecture's, whichever backend installs them. */
#include "cpuid.h"

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

void hvi_tsc_leaf_15(uint32_t tsc_khz, uint32_t crystal_khz, uint32_t *eax,
                     uint32_t *ebx, uint32_t *ecx)
{
    uint64_t tsc_hz = (uint64_t)tsc_khz * 1000;
    uint64_t crystal_hz = (uint64_t)crystal_khz * 1000;
    /* ECX holds the crystal in Hz: a crystal above 4 GHz is given in a
     * lower unit that still divides the ratio exactly. */
    while (crystal_hz > UINT32_MAX) {
        crystal_hz /= 2;
        tsc_hz /= 2;
    }
    uint64_t g = gcd(tsc_hz, crystal_hz);
    uint64_t num = g ? tsc_hz / g : 0, den = g ? crystal_hz / g : 0;
    while (num > UINT32_MAX || den > UINT32_MAX) {
        num = (num + 1) / 2; /* past 32 bits: the closest ratio that fits */
        den = (den + 1) / 2;
    }
    *eax = (uint32_t)den;
    *ebx = (uint32_t)num;
    *ecx = (uint32_t)crystal_hz;
}

void hvi_tsc_leaf_16(uint32_t tsc_khz, uint32_t bus_khz, uint32_t *eax,
                     uint32_t *ebx, uint32_t *ecx)
{
    /* Bits 15:0 in MHz. */
    uint32_t mhz = (tsc_khz + 500) / 1000;
    *eax = mhz > 0xffff ? 0xffff : mhz;
    *ebx = *eax;
    uint32_t bus = (bus_khz + 500) / 1000;
    *ecx = bus > 0xffff ? 0xffff : bus;
}
