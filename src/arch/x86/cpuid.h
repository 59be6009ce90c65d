/* x86 CPUID leaves the library computes itself (src/arch/x86). */
#ifndef HVCORE_ARCH_X86_CPUID_H
#define HVCORE_ARCH_X86_CPUID_H

#include <stdint.h>

#define HVI_CPUID_TSC_LEAF 0x15u
#define HVI_CPUID_FREQ_LEAF 0x16u
#define HVI_CPUID_HV_SIGNATURE 0x40000000u
#define HVI_CPUID_HV_TIMING_LEAF 0x40000010u
#define HVI_CPUID_POWER_LEAF 0x80000007u

/* CPUID leaf 0x15 for a TSC of tsc_khz with the crystal at crystal_khz:
 * TSC Hz = ecx * ebx / eax, the fraction reduced (and, past 32 bits,
 * approximated). Leaf 0x16: base and maximum MHz (rounded), bus MHz. */
void hvi_tsc_leaf_15(uint32_t tsc_khz, uint32_t crystal_khz, uint32_t *eax,
                     uint32_t *ebx, uint32_t *ecx);
void hvi_tsc_leaf_16(uint32_t tsc_khz, uint32_t bus_khz, uint32_t *eax,
                     uint32_t *ebx, uint32_t *ecx);

#endif
