/**
 * @file hvcore/handover.h
 * @brief Hand-over: move a running VM to another process on the same host
 * without copying its memory (upgrading the VMM under a running guest).
 *
 * hvc_vm_handover_send() pauses the VM and passes, over a connected unix
 * socket, every guest-memory region's file descriptor (SCM_RIGHTS) and the
 * back-end descriptors its devices name (hvc_device_ops::handover_fds: a
 * disk image, a UART's input and output), followed by the stream of
 * docs/MIGRATION.md without any memory section: the configuration, an
 * `FDS` section that says what each descriptor is, the vCPUs, interrupt
 * controllers, TSC and devices. hvc_vm_handover_receive() in the new
 * process checks every descriptor as hostile input, maps the same files
 * (the same physical pages: nothing is copied, so the pause does not grow
 * with RAM), restores the state and confirms. Until it confirms, the old
 * side resumes the guest unchanged on any failure; once it has, the old
 * side never runs the guest again (hvc_vm_resume() refuses, -EPERM).
 *
 * Only memory that is a file can be handed over: the library's memfd
 * regions (the default), and caller-supplied regions that map a file
 * shared (a memfd, a tmpfs or disk file: the library finds the file and
 * the offset in /proc/self/maps and opens it through /proc/self/map_files,
 * which takes CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE). A private mapping
 * (anonymous memory, or a file mapped MAP_PRIVATE) and a
 * ::HVC_MEMORY_MERGEABLE (anonymous) region are refused, with a message
 * saying which, before the VM is paused.
 *
 * Thread rules: hvc_vm_handover_send() runs on a thread that is no vCPU's;
 * vCPU threads stay parked in hvc_vcpu_run() while the VM is paused.
 * hvc_vm_handover_fd() is for the restore's setup callback, on the
 * receiving thread.
 */
#ifndef HVCORE_HANDOVER_H
#define HVCORE_HANDOVER_H

#include "common.h"
#include "hypervisor.h"
#include "migration.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The first 8 bytes a hand-over sender writes on the socket (the packet
 * that carries the descriptors), so that a receiver can tell a hand-over
 * from a migration stream ("HVCORESN") with recv(MSG_PEEK). */
#define HVC_HANDOVER_MAGIC "HVCHOFD1"

/** Most descriptors one hand-over passes (regions and device fds). */
#define HVC_HANDOVER_MAX_FDS 250u

/**
 * Hand-over options. Initialise with ::HVC_HANDOVER_OPTIONS_INIT; fields
 * are only ever appended, and the library reads only those @c size covers.
 */
typedef struct hvc_handover_options {
    /** sizeof(hvc_handover_options) as the caller was compiled. */
    uint32_t size;
    /** Zero. */
    uint32_t flags;
    /** Caller bytes for the receiver's setup callback (at most
     * ::HVC_STREAM_USER_DATA_MAX), as hvc_save_options::user_data. */
    const void *user_data;
    /** Bytes at @c user_data. */
    size_t user_data_length;
} hvc_handover_options;

/** Initialiser for ::hvc_handover_options. */
#define HVC_HANDOVER_OPTIONS_INIT                                              \
    {                                                                          \
        sizeof(hvc_handover_options), 0, NULL, 0                               \
    }

/**
 * Statistics of one hvc_vm_handover_send(). Fields are only ever appended;
 * the library fills those that @c size covers. Times are microseconds.
 */
typedef struct hvc_handover_stats {
    /** sizeof(hvc_handover_stats) as the caller was compiled. */
    uint32_t size;
    /** Non-zero once the receiver confirmed. */
    uint32_t completed;
    /** Memory regions and device descriptors passed. */
    uint32_t regions, device_fds;
    /** Bytes of guest memory the regions hold (not copied). */
    uint64_t memory_bytes;
    /** Bytes of the stream (state, no memory). */
    uint64_t stream_bytes;
    /** The guest's pause as the sender sees it: from the pause request
     * to the receiver's confirmation (or to the resume, on failure). */
    uint64_t pause_us;
    /** Parts of @c pause_us on the sender: stopping the vCPUs; writing
     * the state into the stream (save); passing the descriptors and the
     * stream to the socket (transfer). */
    uint64_t vcpu_stop_us, save_us, transfer_us;
    /** Parts on the receiver, as its confirmation reports them: checking
     * and mapping the descriptors (map), and reading and loading the
     * state (load: vCPUs, interrupt controllers, TSC, devices). */
    uint64_t map_us, load_us;
    /** From the end of the transfer to the confirmation (the receiver's
     * map and load included). */
    uint64_t confirm_wait_us;
} hvc_handover_stats;

/** Initialiser for ::hvc_handover_stats. */
#define HVC_HANDOVER_STATS_INIT                                                \
    {                                                                          \
        sizeof(hvc_handover_stats), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0         \
    }

/**
 * Hands the running VM @p vm over to hvc_vm_handover_receive() at the
 * other end of @p sockfd (a connected AF_UNIX stream socket). Checks first
 * that every region can be handed over (-ENOTSUP names one that cannot),
 * then pauses the VM, passes the descriptors and the stream, and waits for
 * the confirmation (without a time limit: a receiver that dies closes the
 * socket, which ends the wait).
 *
 * On success the VM is left paused for good: hvc_vm_resume() refuses it
 * (-EPERM); destroy it. The receiver shares its memory: it stays the
 * receiver's after this VM is destroyed. On any failure (a refusal, the
 * receiver gone, a write error) the VM is resumed, unchanged, and runs on.
 *
 * @param opts  options, or NULL.
 * @param stats receives the statistics (also on failure); may be NULL.
 * @return 0; -EINVAL (NULL, bad options, @p sockfd not a unix socket);
 *         -EBUSY (the VM is paused, migrated, or a migration runs);
 *         -ENOTSUP (a region or device that cannot be handed over, the
 *         message names it; more than ::HVC_HANDOVER_MAX_FDS descriptors);
 *         -ECONNABORTED when the receiver closed the socket without
 *         confirming; the receiver's error when it refused (the message
 *         says which); a write's error.
 */
HVC_EXTERN int hvc_vm_handover_send(hvc_vm *vm, int sockfd,
                                    const hvc_handover_options *opts,
                                    hvc_handover_stats *stats);

/**
 * Receives a VM from hvc_vm_handover_send() at the other end of @p sockfd
 * and confirms it. Every descriptor is checked before it is used: a
 * region's must be a regular file (a memfd) at least offset + length
 * bytes long, not sealed against writes when the region is writable, and
 * the regions must be exactly those of the stream's configuration.
 * Regions are then mapped shared from those files. @p opts works as for
 * hvc_vm_restore(); its setup callback re-attaches the devices and may
 * take their descriptors with hvc_vm_handover_fd(). The key and
 * passphrase must be NULL (a hand-over is never encrypted). The VM is
 * handed over only once the confirmation was written; on any error the
 * sender is told (when it can be) and nothing is left: every received
 * descriptor is closed.
 *
 * @return 0; -EINVAL (NULL, a key); -EBADMSG for a malformed packet or
 *         stream, or a descriptor of the wrong kind or size (the message
 *         names the region and what is wrong); -EPROTO for a stream that is
 *         not a hand-over; -ENODATA when the sender went away; the errors
 *         of hvc_vm_restore(); -EPIPE (or the write's error) when the
 *         confirmation could not be written (the sender keeps the guest).
 */
HVC_EXTERN int hvc_vm_handover_receive(hvc_hypervisor *hv, int sockfd,
                                       const hvc_restore_options *opts,
                                       hvc_vm **out);

/**
 * Takes descriptor @p index of the device named @p device that the sender
 * passed (hvc_device_ops::handover_fds, in that order; a slot the sender's
 * device had none for is -ENOENT). Call it from the setup callback of
 * hvc_vm_handover_receive(); the caller owns the descriptor from then on.
 * Descriptors nobody takes are closed when the receive ends.
 *
 * @return 0; -EINVAL for NULL; -ENOENT when there is no such descriptor,
 *         it was taken already, or no hand-over is being received into
 *         @p vm.
 */
HVC_EXTERN int hvc_vm_handover_fd(hvc_vm *vm, const char *device,
                                  uint32_t index, int *fd);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_HANDOVER_H */
