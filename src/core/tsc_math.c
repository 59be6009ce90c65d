/* Pure TSC arithmetic (see tsc_math.h). 128-bit intermediates, because a
 * 48-bit fraction times a 64-bit TSC needs 112 bits. */
#include "tsc_math.h"

#if !defined(__SIZEOF_INT128__)
#error "libhvcore's TSC arithmetic needs a compiler with 128-bit integers"
#endif
__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 s128;

uint64_t hvi_mul_div(uint64_t a, uint64_t b, uint64_t c)
{
    return (uint64_t)((u128)a * b / c);
}

uint64_t hvi_mul_shr(uint64_t a, uint64_t b, unsigned shift)
{
    return (uint64_t)(((u128)a * b) >> shift);
}

bool hvi_fixed_ratio(uint32_t num, uint32_t den, unsigned frac_bits,
                     uint64_t *out)
{
    u128 r = ((u128)num << frac_bits) / den;
    if (r > UINT64_MAX)
        return false;
    *out = (uint64_t)r;
    return true;
}

int64_t hvi_ns_to_cycles(int64_t ns, uint32_t khz)
{
    return (int64_t)((s128)ns * khz / 1000000);
}

uint64_t hvi_cycles_to_ns(uint64_t cycles, uint32_t khz)
{
    return khz ? hvi_mul_div(cycles, 1000000, khz) : 0;
}

bool hvi_within_ppm(uint32_t a, uint32_t b, uint32_t tol_ppm)
{
    uint64_t diff = a > b ? (uint64_t)a - b : (uint64_t)b - a;
    return (u128)diff * 1000000 <= (u128)tol_ppm * b;
}

uint64_t hvi_restore_offset(uint64_t guest_tsc_src, uint64_t clock_src,
                            uint64_t scaled_dst, uint64_t clock_dst,
                            uint32_t khz)
{
    /* The two clocks are close (seconds to days apart), so their
     * difference fits a signed 64-bit count; modular arithmetic does the
     * rest, as KVM's own offsets wrap. */
    int64_t elapsed_ns = (int64_t)(clock_dst - clock_src);
    return guest_tsc_src + (uint64_t)hvi_ns_to_cycles(elapsed_ns, khz) -
           scaled_dst;
}
