/**
 * @file hvcore/common.h
 * @brief Export macro, library version, error reporting.
 *
 * Every libhvcore function that can fail returns an `int`: 0 on success or a
 * negative errno value (-EINVAL, -ENOMEM, ...). The same thread can then call
 * hvc_last_error() for a sentence that names the offending value.
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
#define HVC_EXTERN __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#define HVC_EXTERN __attribute__((visibility("default")))
#else
#define HVC_EXTERN
#endif

/** Version of the headers in use. Compare with hvc_version() at run time. */
#define HVC_VERSION_MAJOR 1
#define HVC_VERSION_MINOR 0
#define HVC_VERSION_PATCH 0
/** The header version as one number: major * 10000 + minor * 100 + patch. */
#define HVC_VERSION_NUMBER                                                     \
    (HVC_VERSION_MAJOR * 10000 + HVC_VERSION_MINOR * 100 + HVC_VERSION_PATCH)

/**
 * Version of the library actually loaded, as HVC_VERSION_NUMBER encodes it.
 * A program built against 1.x works with any loaded 1.y where y >= x.
 */
HVC_EXTERN unsigned hvc_version(void);

/** Version of the loaded library as a string, e.g. "1.0.0". Never NULL. */
HVC_EXTERN const char *hvc_version_string(void);

/**
 * Short, static description of an error code returned by libhvcore.
 *
 * @param err a negative errno value as returned by a libhvcore call (a
 *            positive value is treated the same as its negation).
 * @return a constant string; never NULL; thread-safe.
 */
HVC_EXTERN const char *hvc_strerror(int err);

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
HVC_EXTERN const char *hvc_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_COMMON_H */
