/**
 * @file hvcore/common.h
 * @brief Export macro, library version, error reporting.
 *
 * Every libhvcore function that can fail returns an `int`: 0 on success or a
 * negative errno value (-EINVAL, -ENOMEM, ...). The same thread can then call
 * hv_last_error() for a sentence that names the offending value.
 */
#ifndef HVCORE_COMMON_H
#define HVCORE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a function exported from libhvcore.so. */
#if defined(_WIN32)
#define HV_EXTERN __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#define HV_EXTERN __attribute__((visibility("default")))
#else
#define HV_EXTERN
#endif

/** Version of the headers in use. Compare with hv_version() at run time. */
#define HV_VERSION_MAJOR 1
#define HV_VERSION_MINOR 0
#define HV_VERSION_PATCH 0
/** The header version as one number: major * 10000 + minor * 100 + patch. */
#define HV_VERSION_NUMBER                                                      \
    (HV_VERSION_MAJOR * 10000 + HV_VERSION_MINOR * 100 + HV_VERSION_PATCH)

/**
 * Version of the library actually loaded, as HV_VERSION_NUMBER encodes it.
 * A program built against 1.x works with any loaded 1.y where y >= x.
 */
HV_EXTERN unsigned hv_version(void);

/** Version of the loaded library as a string, e.g. "1.0.0". Never NULL. */
HV_EXTERN const char *hv_version_string(void);

/**
 * Short, static description of an error code returned by libhvcore.
 *
 * @param err a negative errno value as returned by a libhvcore call (a
 *            positive value is treated the same as its negation).
 * @return a constant string; never NULL; thread-safe.
 */
HV_EXTERN const char *hv_strerror(int err);

/**
 * The message of the last failed libhvcore call on the calling thread.
 *
 * The message says what exactly was wrong ("memory region 0x1000+0x2000
 * overlaps region 0x0+0x4000"). It stays until the next failure on this
 * thread; successful calls do not clear it.
 *
 * @return a thread-local string owned by the library, valid until the next
 *         libhvcore call on this thread; "" if nothing failed yet.
 */
HV_EXTERN const char *hv_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_COMMON_H */
