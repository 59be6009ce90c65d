/**
 * @file hvcore/virtio.h
 * @brief virtio 1.2 devices over the MMIO transport (version 2).
 *
 * Each device is an ::hvc_device with one MMIO window of 0x200 bytes and one
 * interrupt line (edge-triggered). Virtqueues are split rings of up to 256
 * entries; every descriptor the guest supplies is checked (inside RAM, no
 * loops, chains no longer than the queue, lengths that do not overflow, no
 * buffer the device writes, nor a used ring, in ::HVC_MEMORY_READONLY
 * memory).
 * A bad one is a device error: the device stops, sets DEVICE_NEEDS_RESET
 * and raises a configuration interrupt, as virtio 1.2 section 2.1.2
 * allows; the VMM goes on.
 *
 * Requests are served on the VM's event thread (hvcore/device.h), not on
 * the vCPU that notified: a notify only signals an event. virtio-blk and
 * virtio-net hand their queues on to a worker thread of their own, so that
 * a slow disk or tap stalls neither the event thread nor other devices.
 *
 * Linux finds the devices through `virtio_mmio.device=` on its command line
 * (hvc_virtio_cmdline() writes it) or through the ACPI DSDT (`LNRO0005`
 * entries passed to hvc_acpi_build()).
 *
 * Thread rules: as hvcore/device.h.
 */
#ifndef HVCORE_VIRTIO_H
#define HVCORE_VIRTIO_H

#include "common.h"
#include "device.h"
#include "platform.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Size of a virtio-mmio device's register window. */
#define HVC_VIRTIO_MMIO_SIZE 0x200u

/**
 * Where a virtio-mmio device sits. Every device constructor takes one.
 */
typedef struct hvc_virtio_mmio {
    /** Guest-physical base of the window; 512-byte aligned, outside RAM. */
    uint64_t base;
    /** GSI of its interrupt, 0..23; not shared with another device. */
    uint32_t irq;
    /** Zero. */
    uint32_t reserved;
} hvc_virtio_mmio;

/** Flags of hvc_virtio_blk_options::flags. */
typedef enum hvc_virtio_blk_flags {
    /** The guest may only read (VIRTIO_BLK_F_RO); writes fail. */
    HVC_VIRTIO_BLK_READONLY = 1u << 0
} hvc_virtio_blk_flags;

/**
 * virtio-blk options. Initialise with ::HVC_VIRTIO_BLK_OPTIONS_INIT; fields
 * are only ever appended.
 */
typedef struct hvc_virtio_blk_options {
    /** sizeof(hvc_virtio_blk_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_virtio_blk_flags. */
    uint32_t flags;
    /** Where the device sits. */
    hvc_virtio_mmio mmio;
    /** A file or block device to open (O_RDWR, or O_RDONLY when read-only);
     * or NULL to use @c fd. */
    const char *path;
    /** An open descriptor to use when @c path is NULL (not closed by the
     * library; must stay open while the device exists). */
    int32_t fd;
    /** Zero. */
    uint32_t reserved;
    /** Serial number the guest reads with GET_ID (up to 20 bytes); NULL for
     * one made from the device name. */
    const char *serial;
    /** Instance name; NULL for "virtio-blk<N>". */
    const char *name;
} hvc_virtio_blk_options;

/** Initialiser for ::hvc_virtio_blk_options. */
#define HVC_VIRTIO_BLK_OPTIONS_INIT                                            \
    {                                                                          \
        sizeof(hvc_virtio_blk_options), 0, {0, 0, 0}, NULL, -1, 0, NULL, NULL  \
    }

/**
 * Attaches a virtio-blk device: read, write, flush, get-id, and discard and
 * write-zeroes on a file (punching holes, or writing zeroes; one segment
 * per request, as its configuration advertises). Its capacity
 * is the file's size in 512-byte sectors, rounded down. A host I/O error
 * reaches the guest as VIRTIO_BLK_S_IOERR.
 *
 * The device does its I/O on a thread of its own, with no lock held that
 * the event thread or a vCPU needs. hvc_vm_pause(), a state save, a driver
 * reset, hvc_vm_remove_device() and hvc_vm_destroy() each wait for the
 * request that thread is doing, however long it takes; none of them leaves
 * a request half-done. A hand-over (hvcore/handover.h) passes the open
 * file in slot 0.
 *
 * @return 0; -EINVAL (bad options, an unaligned window, an IRQ outside
 *         the GSIs); -EEXIST (the window overlaps RAM or another device's
 *         range, or the name is taken); the errno of opening the file, with
 *         its path in the message; -ENOMEM.
 */
HVC_EXTERN int hvc_virtio_blk_create(hvc_vm *vm,
                                     const hvc_virtio_blk_options *opts,
                                     hvc_device **out);

/**
 * Attaches a virtio-rng device fed by getrandom(2).
 *
 * @param name instance name, or NULL for "virtio-rng<N>".
 * @return 0; -EINVAL (NULL, an unaligned window, an IRQ outside the GSIs);
 *         -EEXIST (the window overlaps RAM or another device's range, or
 *         the name is taken); -ENOMEM.
 */
HVC_EXTERN int hvc_virtio_rng_create(hvc_vm *vm, const hvc_virtio_mmio *mmio,
                                     const char *name, hvc_device **out);

/**
 * virtio-console options (one port, no multiport). Initialise with
 * ::HVC_VIRTIO_CONSOLE_OPTIONS_INIT; fields are only ever appended.
 */
typedef struct hvc_virtio_console_options {
    /** sizeof(hvc_virtio_console_options) as the caller was compiled. */
    uint32_t size;
    /** Zero. */
    uint32_t flags;
    /** Where the device sits. */
    hvc_virtio_mmio mmio;
    /** Output goes here when >= 0 (not closed by the library). */
    int32_t output_fd;
    /** Input is read from here when >= 0 (not closed by the library). */
    int32_t input_fd;
    /** Output goes here when non-NULL (on the event thread). */
    hvc_serial_output_fn output_fn;
    /** Passed to @c output_fn. */
    void *output_opaque;
    /** Instance name; NULL for "virtio-console<N>". */
    const char *name;
} hvc_virtio_console_options;

/** Initialiser for ::hvc_virtio_console_options. */
#define HVC_VIRTIO_CONSOLE_OPTIONS_INIT                                        \
    {                                                                          \
        sizeof(hvc_virtio_console_options), 0, {0, 0, 0}, -1, -1, NULL, NULL,  \
            NULL                                                               \
    }

/**
 * Attaches a virtio-console device with one port.
 *
 * @return 0; -EINVAL (NULL, bad options, an unaligned window, an IRQ
 *         outside the GSIs); -EEXIST (the window overlaps RAM or another
 *         device's range, or the name is taken); -ENOMEM.
 */
HVC_EXTERN int hvc_virtio_console_create(hvc_vm *vm,
                                         const hvc_virtio_console_options *opts,
                                         hvc_device **out);

/** Flags of hvc_virtio_net_options::flags. */
typedef enum hvc_virtio_net_flags {
    /** Offer no checksum or segmentation offload to the guest. */
    HVC_VIRTIO_NET_NO_OFFLOADS = 1u << 0,
    /** Create the device detached: @c tap (if given) is remembered, not
     * opened, for a later hvc_virtio_net_attach_backend() (a migration's
     * destination whose tap the source still holds). */
    HVC_VIRTIO_NET_DETACHED = 1u << 1
} hvc_virtio_net_flags;

/**
 * virtio-net options. Initialise with ::HVC_VIRTIO_NET_OPTIONS_INIT; fields
 * are only ever appended.
 */
typedef struct hvc_virtio_net_options {
    /** sizeof(hvc_virtio_net_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_virtio_net_flags. */
    uint32_t flags;
    /** Where the device sits. */
    hvc_virtio_mmio mmio;
    /** Name of an existing tap interface to open (IFF_TAP | IFF_NO_PI |
     * IFF_VNET_HDR); or NULL to use @c fd. */
    const char *tap;
    /** An open tap descriptor with IFF_VNET_HDR, used when @c tap is NULL
     * (not closed by the library; must stay open while the device uses
     * it). */
    int32_t fd;
    /** Queue pairs: 0 or 1 (one receive and one transmit queue). */
    uint32_t queues;
    /** The guest's MAC address; all zero for a random locally
     * administered one. */
    uint8_t mac[6];
    /** Zero. */
    uint16_t reserved;
    /** Instance name; NULL for "virtio-net<N>". */
    const char *name;
} hvc_virtio_net_options;

/** Initialiser for ::hvc_virtio_net_options. */
#define HVC_VIRTIO_NET_OPTIONS_INIT                                            \
    {                                                                          \
        sizeof(hvc_virtio_net_options), 0, {0, 0, 0}, NULL, -1, 0,             \
            {0, 0, 0, 0, 0, 0}, 0, NULL                                        \
    }

/**
 * Attaches a virtio-net device on a tap interface: the MAC in its
 * configuration space, link status, mergeable receive buffers, checksum
 * and TSO offloads passed through the tap's virtio-net header, a control
 * queue and VIRTIO_NET_F_GUEST_ANNOUNCE.
 *
 * Packets move on a thread of the device's own, never on a vCPU or the
 * event thread. A receive buffer whose guest page is not present yet
 * (post-copy) is set aside, not waited on: the packet goes to the next
 * buffer, and the set-aside one takes a later packet once its page
 * arrived. When every buffer is set aside, packets wait in a bounded host
 * queue, and beyond it are dropped and counted. Nothing blocks.
 *
 * @return 0; -EINVAL (bad options, an unaligned window, an IRQ outside
 *         the GSIs, a multicast MAC, @c queues above 1, a descriptor that
 *         is no tap with IFF_VNET_HDR); -ENODEV (no interface of that
 *         name); -EBUSY (the tap is in use); -EPERM/-EACCES; -EEXIST (the
 *         window overlaps RAM or another device's range, or the name is
 *         taken); -ENOMEM. The message names the tap.
 */
HVC_EXTERN int hvc_virtio_net_create(hvc_vm *vm,
                                     const hvc_virtio_net_options *opts,
                                     hvc_device **out);

/**
 * Disconnects the device from its tap (a hand-over, a switchover, a tap
 * being replaced). Until hvc_virtio_net_attach_backend(), packets the
 * guest sends wait in a bounded holding queue (saved with the device's
 * state) and leave on reattach; beyond the bound they are dropped and
 * counted. A device reset (the driver's, or hvc_vm_reset_devices()) drops
 * them, counted as drops: they belong to the driver the reset ended. The
 * link stays up for the guest. Waits for the packet the device's thread
 * is moving. Any thread but the event thread.
 *
 * @return 0; -EINVAL (not a virtio-net device); -EALREADY (detached).
 */
HVC_EXTERN int hvc_virtio_net_detach_backend(hvc_device *dev);

/**
 * Connects the device to a tap again: @p tap by name, or @p fd when
 * @p tap is NULL (not closed by the library), or, with neither, the tap
 * it had by name. Held packets leave first, then an announce is sent
 * (hvc_virtio_net_announce()). Any thread but the event thread.
 *
 * @return 0; -EINVAL (not a virtio-net device, a bad descriptor);
 *         -EISCONN (attached); errors of opening the tap, as
 *         hvc_virtio_net_create().
 */
HVC_EXTERN int hvc_virtio_net_attach_backend(hvc_device *dev, const char *tap,
                                             int fd);

/**
 * Announces the guest: the device sends a gratuitous ARP for the guest's
 * address (learned from its traffic; a RARP with its MAC when none is
 * known yet) on the tap, and asks a driver that negotiated
 * VIRTIO_NET_F_GUEST_ANNOUNCE to announce itself. Done after every state
 * load on its own. Asynchronous; any thread.
 *
 * @return 0; -EINVAL (not a virtio-net device).
 */
HVC_EXTERN int hvc_virtio_net_announce(hvc_device *dev);

/**
 * Sets the link status the guest sees (VIRTIO_NET_S_LINK_UP), with a
 * configuration interrupt. Any thread.
 *
 * @return 0; -EINVAL (not a virtio-net device).
 */
HVC_EXTERN int hvc_virtio_net_set_link(hvc_device *dev, int up);

/** Counters of a virtio-net device (hvc_virtio_net_get_stats()); fields
 * are only ever appended. */
typedef struct hvc_virtio_net_stats {
    /** sizeof(hvc_virtio_net_stats) as the caller was compiled. */
    uint32_t size;
    /** 1 while a tap is attached. */
    uint32_t attached;
    /** Packets and bytes (with no virtio header) to the guest. */
    uint64_t rx_packets, rx_bytes;
    /** Packets and bytes from the guest that reached the tap. */
    uint64_t tx_packets, tx_bytes;
    /** Receive: packets dropped because the host queue was full while
     * every buffer was set aside, or too big for the guest's buffers. */
    uint64_t rx_dropped;
    /** Receive: buffers set aside because their page was missing, set-
     * aside buffers used again, and the time they waited (ns). */
    uint64_t faulty_events, faulty_resolved;
    uint64_t faulty_wait_ns_total, faulty_wait_ns_max;
    /** Receive: packets that waited in the host queue. */
    uint64_t rx_queued;
    /** Transmit: packets that entered the holding queue (detached, or a
     * full tap), left it for the tap, and were dropped (the queue full
     * while detached, or the tap refused them). */
    uint64_t tx_held, tx_delivered_held, tx_dropped;
    /** Packets in the holding queue now. */
    uint64_t tx_holding;
    /** Announces sent on the tap. */
    uint64_t announces;
} hvc_virtio_net_stats;

/**
 * Reads the device's counters into @p out, whose @c size the caller sets.
 * Any thread.
 *
 * @return 0; -EINVAL (NULL, a bad size, not a virtio-net device).
 */
HVC_EXTERN int hvc_virtio_net_get_stats(hvc_device *dev,
                                        hvc_virtio_net_stats *out);

/**
 * Writes the Linux command-line words that announce every virtio-mmio
 * device of @p vm, e.g. "virtio_mmio.device=512@0xd0000000:5", separated
 * by spaces, NUL-terminated.
 *
 * @param buf      receives the text; may be NULL when @p capacity is 0.
 * @param capacity bytes available in @p buf.
 * @param length   receives the length the text needs (without the NUL),
 *                 so a first call with capacity 0 sizes the buffer.
 * @return 0; -EINVAL for NULL; -ENOSPC when @p capacity is too small.
 */
HVC_EXTERN int hvc_virtio_cmdline(hvc_vm *vm, char *buf, size_t capacity,
                                  size_t *length);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_VIRTIO_H */
