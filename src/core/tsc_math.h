/*
 * Pure TSC arithmetic: no VM, no backend, no error reporting. Kept apart so
 * that tests can compile it in and check the steps a host without TSC
 * offsetting or scaling never exercises (tests/test_tsc.c).
 */
#ifndef HVCORE_CORE_TSC_MATH_H
#define HVCORE_CORE_TSC_MATH_H

#include <stdbool.h>
#include <stdint.h>

/* floor(a * b / c) over the full 128-bit product, truncated to 64 bits;
 * c must be non-zero. */
uint64_t hvi_mul_div(uint64_t a, uint64_t b, uint64_t c);
/* (a * b) >> shift over the full 128-bit product, truncated to 64 bits;
 * shift at most 63. */
uint64_t hvi_mul_shr(uint64_t a, uint64_t b, unsigned shift);

/* floor(num * 2^frac_bits / den) in *out; false when it does not fit 64
 * bits (den non-zero, frac_bits at most 63). */
bool hvi_fixed_ratio(uint32_t num, uint32_t den, unsigned frac_bits,
                     uint64_t *out);

/* Nanoseconds to cycles at khz, and back; signed so that a clock that
 * moved backwards gives a negative count (truncated toward zero). */
int64_t hvi_ns_to_cycles(int64_t ns, uint32_t khz);
uint64_t hvi_cycles_to_ns(uint64_t cycles, uint32_t khz);

/* Whether a is within tol_ppm parts per million of b (b non-zero). */
bool hvi_within_ppm(uint32_t a, uint32_t b, uint32_t tol_ppm);

/*
 * Step 6 of the restore procedure of the kernel's
 * Documentation/virt/kvm/devices/vcpu.rst, in the form that also holds
 * with scaling (each host TSC scaled by its own host's ratio): the offset
 * that keeps "guest TSC - kvmclock * frequency" what it was at the source.
 *   guest_tsc_src: the guest TSC at the source sample (scaled_src + ofs_src)
 *   clock_src:     kvmclock at the source sample
 *   scaled_dst:    the destination host TSC of the destination sample,
 *                  scaled by the destination ratio
 *   clock_dst:     kvmclock at the destination sample
 *   khz:           the rate the guest TSC runs at
 * Result, modulo 2^64:
 *   guest_tsc_src + (clock_dst - clock_src) * khz / 10^6 - scaled_dst
 */
uint64_t hvi_restore_offset(uint64_t guest_tsc_src, uint64_t clock_src,
                            uint64_t scaled_dst, uint64_t clock_dst,
                            uint32_t khz);

#endif
