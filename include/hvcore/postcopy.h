/**
 * @file hvcore/postcopy.h
 * @brief The destination's side of a post-copy live migration: its state
 * and statistics, waiting for it to end, and asking for guest pages
 * without waiting for them (docs/MIGRATION.md, "Post-copy").
 *
 * Split from hvcore/migration.h, which includes it: the calls are those
 * of the same library, HVCORE_1.0. Thread rules and errors are given per
 * call.
 */
#ifndef HVCORE_POSTCOPY_H
#define HVCORE_POSTCOPY_H

#include "common.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** State of a VM's incoming post-copy (hvc_postcopy_stats::state). */
typedef enum hvc_postcopy_state {
    /** The VM did not arrive by post-copy. */
    HVC_POSTCOPY_NONE = 0,
    /** Pages are still arriving; the guest runs. */
    HVC_POSTCOPY_RUNNING = 1,
    /** Every page arrived; the VM no longer depends on the source. */
    HVC_POSTCOPY_COMPLETE = 2,
    /** The link failed before every page arrived: the guest is lost. Its
     * vCPUs are stopped (hvc_vcpu_run() fails with -EIO and hvc_vm_resume()
     * with -EPERM); memory accessors fail with -EIO on the lost pages. */
    HVC_POSTCOPY_FAILED = 3
} hvc_postcopy_state;

/** Statistics of an incoming post-copy. Fields are only ever appended;
 * the library fills those that @c size covers. */
typedef struct hvc_postcopy_stats {
    /** sizeof(hvc_postcopy_stats) as the caller was compiled. */
    uint32_t size;
    /** An ::hvc_postcopy_state. */
    uint32_t state;
    /** Pages that were missing at the switchover, and of them those that
     * arrived so far: pushed by the source, or asked for by a fault. */
    uint64_t pages, pages_received, pages_pushed, pages_requested;
    /** Faults on missing pages (each asks the source for the page), and
     * faults on never-written pages the destination filled with zero. */
    uint64_t faults, zero_faults;
    /** Fault service time, from the fault read on the userfaultfd to the
     * page in place, microseconds: median, 99th percentile, largest. */
    uint64_t fault_median_us, fault_p99_us, fault_max_us;
    /** Stream bytes read during post-copy. */
    uint64_t bytes;
    /** Milliseconds from the start of post-copy to its end (or now). */
    uint64_t elapsed_ms;
    /** Pages lost when the link failed (0 otherwise). */
    uint64_t pages_lost;
} hvc_postcopy_stats;

/** Initialiser for ::hvc_postcopy_stats. */
#define HVC_POSTCOPY_STATS_INIT                                                \
    {                                                                          \
        sizeof(hvc_postcopy_stats), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0      \
    }

/**
 * Statistics of the incoming post-copy of @p vm (a VM hvc_vm_migrate_
 * receive() returned); state ::HVC_POSTCOPY_NONE for any other VM. Any
 * thread.
 *
 * @return 0; -EINVAL (NULL, a size too small).
 */
HVC_EXTERN int hvc_vm_postcopy_stats(hvc_vm *vm, hvc_postcopy_stats *stats);

/**
 * Waits up to @p timeout_ms (-1: no limit) for the incoming post-copy of
 * @p vm to end. Any thread but the VM's event thread.
 *
 * @return 0 when every page arrived (or the VM did not arrive by post-
 *         copy); -ETIMEDOUT; the link's error (for example -ECONNABORTED,
 *         -EBADMSG) when post-copy failed, with a message saying how many
 *         pages were lost; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_vm_postcopy_wait(hvc_vm *vm, int timeout_ms);

/**
 * For a device model that must not wait on the link (a callback on the
 * VM's event thread, where the accessors fail with -EAGAIN instead): is
 * guest memory [@p guest_addr, +@p length) all here on a post-copy
 * destination, and if not, a wake-up when it is. Never waits; any thread.
 * A missing page is asked for at once, ahead of the pushed ones; once the
 * whole range is here, or post-copy ended either way, the library writes
 * the 8-byte value 1 to @p event_fd (an eventfd, or a non-blocking pipe's
 * write end) once, from a post-copy thread: watch it and look again. One
 * wake-up per descriptor (a second call replaces the range); keep it open
 * until the wake-up or hvc_vm_when_present_cancel(); hvc_vm_destroy()
 * drops them all.
 *
 * @return 1 when the range is all here, or the VM is not receiving a
 *         post-copy migration (nothing is written); 0 when the wake-up is
 *         armed; -EIO when a page was lost with the link; -ENOMEM; -EINVAL
 *         for NULL, a negative descriptor or a zero length.
 */
HVC_EXTERN int hvc_vm_when_present(hvc_vm *vm, uint64_t guest_addr,
                                   size_t length, int event_fd);

/**
 * Drops the wake-up hvc_vm_when_present() armed on @p event_fd, if any:
 * once this returns the library neither writes to it nor will.
 *
 * @return 0 (also when none was armed); -EINVAL for NULL or a negative
 *         descriptor.
 */
HVC_EXTERN int hvc_vm_when_present_cancel(hvc_vm *vm, int event_fd);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_POSTCOPY_H */
