/**
 * @file hvcore/common.h
 * @brief Export macro, library version, error reporting, the log hook.
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

/**
 * Severity of a log message. Values are part of the ABI: never renumbered,
 * new ones only appended. A lower value is more severe.
 */
typedef enum hvc_log_level {
    HVC_LOG_ERROR = 1, /**< something failed that no call can report */
    HVC_LOG_WARN = 2,  /**< the library worked around a problem */
    HVC_LOG_INFO = 3,  /**< a notable event in a VM's life */
    HVC_LOG_DEBUG = 4, /**< detail for whoever debugs the library */
} hvc_log_level;

/**
 * Receives one log message.
 *
 * @param opaque  the pointer given to hvc_set_log().
 * @param level   an hvc_log_level value.
 * @param message one line without a trailing newline or a "hvcore:"
 *                prefix; owned by the library and valid only during the
 *                call (copy it to keep it).
 */
typedef void (*hvc_log_fn)(void *opaque, int level, const char *message);

/**
 * Sets where the library's log messages go. The library never prints on
 * its own (no stderr, no syslog): until this is called it is silent.
 *
 * The hook is process-wide, the one library setting that is not reached
 * through a handle: a message can come from places that have none (the
 * host topology scan, a device with a dead VM behind it).
 *
 * Threads: the callback may be called from any thread the library runs
 * code on, including vCPU threads inside hvc_vcpu_run(), the VM's event
 * thread and device worker threads, and from several of them at once, so
 * it must be thread-safe. It must not call back into calls that wait for
 * those threads (hvc_vm_pause(), hvc_vm_destroy(), hvc_vcpu_destroy(),
 * hvc_vm_unwatch_fd() ...), nor hvc_set_log() (which then returns
 * -EDEADLK); it should return quickly, since the thread that logs waits
 * for it. Messages the library would log from inside the callback are
 * dropped.
 *
 * Ownership: @p opaque stays the caller's. Once hvc_set_log() returns, the
 * previous callback is no longer running on any thread and will not be
 * called again, so its @p opaque may be freed.
 *
 * @param level  the least severe level delivered (HVC_LOG_ERROR ..
 *               HVC_LOG_DEBUG); ignored when @p fn is NULL.
 * @param fn     the callback, or NULL to make the library silent again.
 * @param opaque passed to @p fn unchanged.
 * @return 0; -EINVAL for a level outside HVC_LOG_ERROR..HVC_LOG_DEBUG
 *         with a non-NULL @p fn; -EDEADLK when called from the callback.
 */
HVC_EXTERN int hvc_set_log(int level, hvc_log_fn fn, void *opaque);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_COMMON_H */
