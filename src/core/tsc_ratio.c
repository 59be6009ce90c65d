/* The hardware TSC scaling formats, as pure public functions: the ratio a
 * guest frequency needs, and the guest TSC it gives. */
#include "internal.h"
#include "tsc_math.h"

#include <errno.h>
#include <inttypes.h>

/* The largest ratio each format can hold: VMX's TSC multiplier is a full
 * 64-bit field (16.48); SVM's TSC ratio MSR keeps 8.32 in bits 39:0 with
 * bits 63:40 reserved. */
#define VMX_RATIO_MAX UINT64_MAX
#define SVM_RATIO_MAX ((1ull << 40) - 1)

int hvc_tsc_ratio(uint32_t guest_khz, uint32_t host_khz, uint32_t frac_bits,
                  uint64_t *ratio)
{
    if (!ratio)
        return hvi_error(-EINVAL, "hvc_tsc_ratio: NULL ratio");
    if (!guest_khz || !host_khz)
        return hvi_error(-EINVAL,
                         "hvc_tsc_ratio: a frequency is zero (guest %u kHz, "
                         "host %u kHz)",
                         guest_khz, host_khz);
    uint64_t max;
    const char *fmt;
    if (frac_bits == HVC_TSC_FRAC_BITS_VMX) {
        max = VMX_RATIO_MAX;
        fmt = "VMX 16.48";
    } else if (frac_bits == HVC_TSC_FRAC_BITS_SVM) {
        max = SVM_RATIO_MAX;
        fmt = "SVM 8.32";
    } else {
        return hvi_error(-EINVAL,
                         "hvc_tsc_ratio: %u fractional bits is not a hardware "
                         "format (48 for VMX, 32 for SVM)",
                         frac_bits);
    }
    uint64_t r;
    if (!hvi_fixed_ratio(guest_khz, host_khz, frac_bits, &r) || r > max)
        return hvi_error(-ERANGE,
                         "TSC ratio %u/%u kHz is too large for the %s "
                         "format (at most 0x%" PRIx64 ")",
                         guest_khz, host_khz, fmt, max);
    if (r == 0)
        return hvi_error(-ERANGE,
                         "TSC ratio %u/%u kHz is below the %s format's "
                         "resolution (2^-%u)",
                         guest_khz, host_khz, fmt, frac_bits);
    *ratio = r;
    return 0;
}

int hvc_tsc_scale(uint64_t host_tsc, uint64_t ratio, uint32_t frac_bits,
                  uint64_t *out)
{
    if (!out)
        return hvi_error(-EINVAL, "hvc_tsc_scale: NULL out");
    if (frac_bits > 63)
        return hvi_error(-EINVAL,
                         "hvc_tsc_scale: %u fractional bits (at most 63)",
                         frac_bits);
    *out = hvi_mul_shr(host_tsc, ratio, frac_bits);
    return 0;
}
