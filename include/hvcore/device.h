/**
 * @file hvcore/device.h
 * @brief Device models as first-class objects of a VM.
 *
 * A device is an ops table plus the port-I/O and MMIO ranges it claims and
 * the interrupt lines it drives. The library's own models (the 16550A UART,
 * the debug-exit port, ...) and a caller's models use the same interface:
 * a VMM can write its own device against this header alone (see
 * examples/). A device attached with hvc_vm_add_device() is served inside
 * hvc_vcpu_run() like any I/O handler and is destroyed with its VM.
 *
 * Thread rules: a device's read/write callbacks run on the vCPU thread that
 * made the access, possibly on several vCPU threads at once, and on the
 * VM's event thread for file-descriptor callbacks; a device protects its
 * own state. hvc_vm_add_device() and hvc_vm_remove_device() may be called
 * from any thread except from a callback of the same VM.
 */
#ifndef HVCORE_DEVICE_H
#define HVCORE_DEVICE_H

#include "common.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A device attached to a VM. Opaque; owned by its VM. */
typedef struct hvc_device hvc_device;

/** Current value of hvc_device_ops::version. */
#define HVC_DEVICE_OPS_VERSION 2

/**
 * What a device does. The table is versioned by its first field and only
 * ever grows at the end; entries a device does not need may be NULL. The
 * table must outlive every device that uses it (make it `static const`).
 */
typedef struct hvc_device_ops {
    /** ::HVC_DEVICE_OPS_VERSION the device was written for. */
    uint32_t version;
    /** Zero. */
    uint32_t reserved;
    /** Model name, e.g. "16550a". */
    const char *type;
    /**
     * A guest read of @p size bytes at @p offset into range @p range (an
     * index into hvc_device_options::ranges). Fill @p data. Return 0, or as
     * an ::hvc_io_fn. NULL reads as all-ones.
     */
    int (*read)(void *opaque, hvc_vcpu *vcpu, uint32_t range, uint64_t offset,
                void *data, uint32_t size);
    /** A guest write; as @c read. NULL ignores writes. */
    int (*write)(void *opaque, hvc_vcpu *vcpu, uint32_t range, uint64_t offset,
                 const void *data, uint32_t size);
    /** Puts the device in its power-on state. May be NULL. */
    void (*reset)(void *opaque);
    /**
     * Called once when the device is removed or its VM destroyed, after
     * which no other callback runs. Frees @p opaque. May be NULL.
     */
    void (*destroy)(void *opaque);
    /**
     * Writes the device's state (what a fresh instance needs to continue
     * where this one is) into @p buf. Called with the VM paused. When
     * @p capacity is too small, sets @p length to the size needed and
     * returns -ENOSPC. NULL: the device has no state.
     */
    int (*save_state)(void *opaque, void *buf, size_t capacity, size_t *length);
    /**
     * Replaces the device's state with one from save_state(), validating
     * every field (indices, sizes, guest addresses) and changing nothing
     * when it returns an error. Called with the VM paused. NULL: the
     * device accepts only an empty state.
     */
    int (*load_state)(void *opaque, const void *buf, size_t length);
    /**
     * (Version 2.) The host descriptors of the device's back end that a
     * hand-over (hvcore/handover.h) passes to the new process: up to
     * @p capacity of them into @p fds, in a fixed order of slots the model
     * documents, -1 for a slot it has none for; @p count receives the
     * number of slots (which may exceed @p capacity). The descriptors stay
     * the device's. Called with the VM paused. NULL (or a version 1
     * table): the device passes none.
     */
    int (*handover_fds)(void *opaque, int *fds, size_t capacity, size_t *count);
} hvc_device_ops;

/** A port-I/O or MMIO range a device claims. */
typedef struct hvc_device_range {
    /** ::HVC_IO_PIO or ::HVC_IO_MMIO. */
    uint32_t space;
    /** Zero. */
    uint32_t flags;
    /** First port or guest-physical address. */
    uint64_t base;
    /** Number of ports or bytes. */
    uint64_t length;
} hvc_device_range;

/**
 * Attachment options. Initialise with ::HVC_DEVICE_OPTIONS_INIT; fields are
 * only ever appended.
 */
typedef struct hvc_device_options {
    /** sizeof(hvc_device_options) as the caller was compiled. */
    uint32_t size;
    /** Number of entries in @c ranges (at most 16). */
    uint32_t nr_ranges;
    /** The ranges the device claims; copied. */
    const hvc_device_range *ranges;
    /** Instance name, unique in the VM (e.g. "com1"): 1 to 47 printable
     * ASCII characters (0x20..0x7e) other than '"' and '\\'; copied; NULL
     * names it after its type and a number. */
    const char *name;
} hvc_device_options;

/** Initialiser for ::hvc_device_options. */
#define HVC_DEVICE_OPTIONS_INIT                                                \
    {                                                                          \
        sizeof(hvc_device_options), 0, NULL, NULL                              \
    }

/**
 * Attaches a device. On success the VM owns it: ops->destroy(opaque) runs
 * when it is removed or the VM destroyed. On failure nothing is attached
 * and ops->destroy is not called (the caller still owns @p opaque).
 *
 * @param out receives the device; may be NULL.
 * @return 0; -EINVAL (NULL, unknown ops version or options size, bad or
 *         too many ranges, a name that is empty, too long or holds other
 *         characters); -EEXIST (a range overlaps a registered one, or
 *         the name is taken); -ENOMEM.
 */
HVC_EXTERN int hvc_vm_add_device(hvc_vm *vm, const hvc_device_ops *ops,
                                 void *opaque, const hvc_device_options *opts,
                                 hvc_device **out);

/**
 * Detaches a device, unregisters its ranges and destroys it. Once the call
 * returns none of its callbacks is running or will run.
 *
 * @return 0; -EINVAL for NULL; -ENOENT for a device not attached to
 *         @p vm; -EDEADLK from an I/O handler of the same VM or from its
 *         event thread (an fd-watch or doorbell callback).
 */
HVC_EXTERN int hvc_vm_remove_device(hvc_vm *vm, hvc_device *dev);

/**
 * Lists the VM's devices in the order they were attached.
 *
 * @param out   receives up to @p capacity handles; may be NULL when
 *              @p capacity is 0.
 * @param count receives the number of devices (which may exceed
 *              @p capacity: call again with a larger array).
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_vm_list_devices(hvc_vm *vm, hvc_device **out,
                                   size_t capacity, size_t *count);

/** Finds a device by instance name; -ENOENT when there is none. */
HVC_EXTERN int hvc_vm_find_device(hvc_vm *vm, const char *name,
                                  hvc_device **out);

/** Instance name of @p dev (NULL for NULL). */
HVC_EXTERN const char *hvc_device_name(const hvc_device *dev);
/** Model name of @p dev, from its ops (NULL for NULL). */
HVC_EXTERN const char *hvc_device_type(const hvc_device *dev);
/** The opaque pointer given to hvc_vm_add_device() (NULL for NULL). */
HVC_EXTERN void *hvc_device_opaque(const hvc_device *dev);

/**
 * Saves a device's state as a self-describing record: a header naming the
 * device type and the payload length, with a CRC32C of the payload, then
 * the device's own payload (the library's devices write tagged, typed
 * fields; see docs/DEVICES.md). Pause the VM first.
 *
 * @param buf      receives the record; may be NULL when @p capacity is 0.
 * @param length   receives the record's size.
 * @return 0; -ENOSPC when @p capacity is too small (@p length then says
 *         how much is needed); -EINVAL for NULL; the device's own error.
 */
HVC_EXTERN int hvc_device_save_state(hvc_device *dev, void *buf,
                                     size_t capacity, size_t *length);

/**
 * Loads a record from hvc_device_save_state() into a device of the same
 * type, typically a fresh one in a new VM. The header, the CRC and every
 * field are checked before anything changes; on error the device keeps its
 * state. Pause the VM first. Virtio devices look at their queues again
 * afterwards, so requests that were in flight when the state was saved are
 * served.
 *
 * @return 0; -EINVAL for NULL or a record for another device type;
 *         -EBADMSG for a damaged or impossible record (the message names
 *         the field); the device's own error.
 */
HVC_EXTERN int hvc_device_load_state(hvc_device *dev, const void *buf,
                                     size_t length);

/**
 * Resets every device of the VM (ops->reset), in attachment order.
 *
 * @return 0; -EINVAL for NULL; -EDEADLK from the VM's event thread (an
 *         fd-watch or doorbell callback), where the device that is serving
 *         the callback holds its own lock.
 */
HVC_EXTERN int hvc_vm_reset_devices(hvc_vm *vm);

/**
 * A guest-physical range a device may reach (fixed layout, 16 bytes).
 * ::HVC_GRANT_ALL_GPA and ::HVC_GRANT_ALL_LENGTH together mean "all guest
 * RAM", every device's default.
 */
typedef struct hvc_memory_grant {
    /** First guest-physical address. */
    uint64_t gpa;
    /** Bytes; not zero, and gpa + length - 1 must not wrap. */
    uint64_t length;
} hvc_memory_grant;

/** The default grant, all guest RAM: {0, UINT64_MAX}. */
#define HVC_GRANT_ALL_GPA 0
/** See ::HVC_GRANT_ALL_GPA. */
#define HVC_GRANT_ALL_LENGTH UINT64_MAX
/** Most grant ranges a device holds. */
#define HVC_DEVICE_MAX_GRANTS 16

/**
 * Confines the guest memory a device model may reach (its DMA) to
 * @p ranges, as a VMM confines a confidential guest's devices to a bounce
 * buffer. A device is granted all guest RAM until this is called. The
 * library's models (virtio rings, descriptors and buffers) and a
 * caller's models using hvc_device_read(), hvc_device_write() and
 * hvc_device_gpa_to_hva() are held to it: an access that is not wholly
 * inside one range fails with -EFAULT, as one outside RAM does, and is
 * counted (hvc_device_grant_refusals()). A virtio device then completes
 * the request with an error status, or sets DEVICE_NEEDS_RESET where it
 * cannot (the rings, a status byte outside the grant); nothing is read
 * from or written to the host for it. Overlapping and adjacent ranges are
 * merged. Accesses that start after the call see the new grants. A
 * library device that moves data on a thread of its own (virtio-blk) is
 * quiesced around the change, so once the call returns no request
 * translated under the old grants is still moving data; called from an
 * I/O handler or event-thread callback of the same VM, or for a device
 * whose requests run in its callbacks, a request already under way
 * finishes with the old grants (pause the VM for a clean cut). Grants are
 * part of the device's state record (hvc_device_save_state()). Any
 * thread.
 *
 * @param ranges @p count ranges; may be NULL when @p count is 0, which
 *               grants nothing at all.
 * @return 0; -EINVAL (NULL device, more than ::HVC_DEVICE_MAX_GRANTS
 *         ranges, an empty or wrapping range); nothing changes on error.
 */
HVC_EXTERN int hvc_device_set_grants(hvc_device *dev,
                                     const hvc_memory_grant *ranges,
                                     size_t count);

/**
 * The device's grants, merged and sorted by address: one
 * {::HVC_GRANT_ALL_GPA, ::HVC_GRANT_ALL_LENGTH} range by default.
 *
 * @param out   receives up to @p capacity ranges; may be NULL when
 *              @p capacity is 0.
 * @param count receives the number of ranges (0: the device may reach
 *              no memory).
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_device_get_grants(hvc_device *dev, hvc_memory_grant *out,
                                     size_t capacity, size_t *count);

/**
 * How many guest-memory accesses of the device its grants refused since
 * it was attached (not reset by device resets or state loads).
 *
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_device_grant_refusals(hvc_device *dev, uint64_t *count);

/**
 * Reads guest memory on behalf of a device model: as hvc_vm_read(), but
 * only within the device's grants.
 *
 * @return 0; -EINVAL for NULL; -EFAULT when any byte lies outside guest
 *         RAM or outside the grants (the refusal is counted).
 */
HVC_EXTERN int hvc_device_read(hvc_device *dev, uint64_t guest_addr, void *buf,
                               size_t length);

/** Writes guest memory for a device model; as hvc_device_read(). */
HVC_EXTERN int hvc_device_write(hvc_device *dev, uint64_t guest_addr,
                                const void *buf, size_t length);

/**
 * Translates a guest range for a device model: as hvc_vm_gpa_to_hva(),
 * but only within the device's grants (-EFAULT otherwise, counted). The
 * pointer stays valid while the region stays mapped.
 */
HVC_EXTERN int hvc_device_gpa_to_hva(hvc_device *dev, uint64_t guest_addr,
                                     size_t length, void **hva);

/** Events for hvc_vm_watch_fd(). */
typedef enum hvc_fd_events {
    /** The descriptor is readable (or at end of file, or in error). */
    HVC_FD_READABLE = 1u << 0,
    /** The descriptor is writable. */
    HVC_FD_WRITABLE = 1u << 1
} hvc_fd_events;

/** A file-descriptor callback, run on the VM's event thread. */
typedef void (*hvc_fd_fn)(void *opaque, int fd, uint32_t events);

/**
 * Watches a file descriptor on the VM's event thread (started on first use,
 * stopped when the VM is destroyed): @p fn runs there whenever @p fd has one
 * of @p events. This is how device models take input (a UART reading a
 * terminal) without a thread of their own. The event thread holds its own
 * lock while a callback runs: never call hvc_vm_watch_fd() or
 * hvc_vm_unwatch_fd() while holding a lock that a callback takes. Regular
 * files and /dev/null cannot be watched (epoll refuses them).
 *
 * @param events a mask of ::hvc_fd_events.
 * @return 0; -EINVAL (NULL, bad events, a descriptor epoll refuses);
 *         -EEXIST when @p fd is already watched; a thread-creation error.
 */
HVC_EXTERN int hvc_vm_watch_fd(hvc_vm *vm, int fd, uint32_t events,
                               hvc_fd_fn fn, void *opaque);

/**
 * Stops watching @p fd. Once the call returns, its callback is not running
 * and will not run again (unless called from that callback itself).
 *
 * @return 0; -EINVAL for NULL; -ENOENT when @p fd is not watched.
 */
HVC_EXTERN int hvc_vm_unwatch_fd(hvc_vm *vm, int fd);

/**
 * An eventfd wired to interrupt line @p gsi: writing a count (8 bytes, not
 * zero) to it raises an edge on the line, from any thread, without a call
 * into the VMM (on KVM: irqfd). The VM owns the descriptor and closes it
 * when destroyed; later calls for the same GSI return the same one.
 *
 * @return 0; -EINVAL (NULL, GSI out of range); -ENOTSUP without an
 *         in-kernel interrupt controller or backend support (the caller
 *         then uses hvc_vm_set_irq()).
 */
HVC_EXTERN int hvc_vm_irq_eventfd(hvc_vm *vm, uint32_t gsi, int *fd);

/** Flags of hvc_doorbell::flags. */
typedef enum hvc_doorbell_flags {
    /** Only writes of the value hvc_doorbell::data ring the doorbell. */
    HVC_DOORBELL_DATAMATCH = 1u << 0
} hvc_doorbell_flags;

/**
 * A notify-only register: guest writes to it ring the doorbell without
 * leaving the guest (on KVM: ioeventfd), and the VM's event thread calls
 * the doorbell's function. Fixed layout (32 bytes).
 */
typedef struct hvc_doorbell {
    /** ::HVC_IO_PIO or ::HVC_IO_MMIO. */
    uint32_t space;
    /** Bytes of the write: 1, 2, 4 or 8. */
    uint32_t length;
    /** Port or guest-physical address. */
    uint64_t addr;
    /** Bit mask of ::hvc_doorbell_flags. */
    uint32_t flags;
    /** Zero. */
    uint32_t reserved;
    /** With ::HVC_DOORBELL_DATAMATCH, the value that rings. */
    uint64_t data;
} hvc_doorbell;

/** Called on the VM's event thread when a doorbell rang (once or more). */
typedef void (*hvc_doorbell_fn)(void *opaque, const hvc_doorbell *doorbell);

/**
 * Registers a doorbell. It may lie inside a device's range: a matching
 * write rings the doorbell, and any other write reaches the device's write
 * callback as usual, so a device can keep its slow path for backends
 * without doorbells.
 *
 * @return 0; -EINVAL (NULL, bad fields); -EEXIST for the same doorbell
 *         twice; -ENOTSUP when the backend has no doorbells.
 */
HVC_EXTERN int hvc_vm_add_doorbell(hvc_vm *vm, const hvc_doorbell *doorbell,
                                   hvc_doorbell_fn fn, void *opaque);

/**
 * Removes the doorbell registered with the same space, address, length,
 * flags and data. Once the call returns, its function is not running and
 * will not be called again (unless called from that function).
 *
 * @return 0; -EINVAL for NULL; -ENOENT when there is no such doorbell.
 */
HVC_EXTERN int hvc_vm_remove_doorbell(hvc_vm *vm, const hvc_doorbell *doorbell);

/**
 * Asks the current hvc_vcpu_run() of @p vcpu to return, once the running
 * I/O callback is done, with an exit of @p reason (::HVC_EXIT_RESET,
 * ::HVC_EXIT_POWEROFF or ::HVC_EXIT_SHUTDOWN), flag ::HVC_EXIT_F_HANDLED and
 * hvc_exit::u::system::code = @p code. This is how a device model ends a run
 * (the i8042 reset line, a debug-exit port). Call it only from an I/O
 * callback running on that vCPU's thread.
 *
 * @return 0; -EINVAL (NULL, another reason, not from the vCPU's own I/O
 *         callback).
 */
HVC_EXTERN int hvc_vcpu_request_exit(hvc_vcpu *vcpu, uint32_t reason,
                                     uint64_t code);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_DEVICE_H */
