/* virtio internals shared by the MMIO transport (virtio_mmio.c), the split
 * virtqueue (virtqueue.c) and the device models (virtio_blk.c, ...). */
#ifndef HVCORE_VIRTIO_DEV_H
#define HVCORE_VIRTIO_DEV_H

#include "../../core/internal.h"

#include <hvcore/virtio.h>

#define VIRTIO_MAX_QUEUES 3
#define VIRTIO_QUEUE_MAX 256 /* entries; also the longest chain */

/* Device status bits (virtio 1.2 section 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80
/* The bits the device keeps: a driver's write of any other is dropped, so
 * the device never holds a status its own saved state could not load. */
#define VIRTIO_STATUS_KNOWN                                                    \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |                        \
     VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK |                     \
     VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

#define VIRTIO_F_VERSION_1 (1ull << 32)

/* InterruptStatus bits. */
#define VIRTIO_INT_VRING 0x1
#define VIRTIO_INT_CONFIG 0x2

/* Descriptor flags. */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

struct vq {
    uint16_t num; /* size the driver chose */
    bool ready;
    uint64_t desc; /* guest-physical addresses of the three parts */
    uint64_t avail;
    uint64_t used;
    uint16_t last_avail; /* next available entry the device takes */
    uint16_t used_idx;   /* the used ring's idx as the device wrote it */
};

/* One segment of a request, already checked to lie in RAM. hva is NULL
 * for a buffer outside the device's memory grants: nothing may touch it. */
struct vq_seg {
    uint8_t *hva;
    uint32_t len;
    uint64_t gpa; /* for dirty tracking: what the device wrote */
};

/* A popped descriptor chain: device-readable segments first, then
 * device-writable ones, as the spec requires. */
struct vq_elem {
    uint16_t head;
    uint16_t nr_out;
    uint16_t nr_in;
    uint64_t out_len; /* bytes in the readable part */
    uint64_t in_len;  /* bytes in the writable part */
    uint16_t refused; /* segments outside the grants (hva NULL) */
    struct vq_seg seg[VIRTIO_QUEUE_MAX];
};

struct vdev;

/* Threads and locks.
 *
 * Threads: vCPU threads run mmio_read/mmio_write (registers, config,
 * resets); the VM's event thread runs notifies (doorbells, the notify
 * eventfd) and fd callbacks; a model may have threads of its own (each
 * virtio-blk device has a request worker, virtio_blk.c; each virtio-net
 * device a packet worker, virtio_net.c) that do the slow
 * part of a request with no lock held, and that wait on the model's
 * doorbells themselves (vdev_model.doorbell).
 *
 * Lock order (the VM's locks are in src/core/internal.h): a thread
 * holding a lock takes only locks further down.
 *
 *   net.backend_lock  virtio-net's detach and attach (API callers only;
 *                     they quiesce the worker under it)
 *   vm->ev_lock       held by the event thread across each callback
 *   vm->dev_ops_lock  resets, and pause/resume running quiesce hooks
 *   vm->io_lock       (read) a vCPU in an MMIO handler of the transport
 *   vdev.lock         transport registers, queue state (struct vq), isr;
 *                     held across every vdev_model callback except
 *                     quiesce and destroy
 *   blk.lock          a virtio-blk worker's hand-off state
 *   net.lock          a virtio-net worker's hand-off state (net.h); the
 *                     worker takes the device lock only without it
 *   vm->mem_lock      (read) guest-memory accessors, taken anywhere above
 *   leaves            vm->dev_lock, vm->watch_lock: looking devices up,
 *                     watching a descriptor; postcopy->wake_lock (and the
 *                     post-copy leaves it may ask through): registering a
 *                     queue to be notified when its pages land
 *                     (virtqueue.c, from any of the above)
 *
 * Waiting for a model's thread (vdev_model.quiesce, destroy's join) is
 * done with none of ev_lock, vdev.lock, blk.lock or net.lock held, so
 * never on the event thread and never in another model callback. It may
 * be done with dev_ops_lock held, because a worker takes only vdev.lock,
 * blk.lock (net.lock) and mem_lock, and never waits for the event thread,
 * a vCPU or a VM-level lock. While a worker does I/O it holds no lock at all: vCPUs
 * read the device's registers and the event thread serves other devices
 * meanwhile. */

/* What a device model provides to the transport. Callbacks run with the
 * device lock held, except quiesce and destroy. */
struct vdev_model {
    const char *type; /* hvc_device type, e.g. "virtio-blk" */
    uint32_t device_id;
    uint32_t nr_queues;
    uint64_t features; /* VIRTIO_F_VERSION_1 is added by the transport */
    uint32_t config_size;
    /* config space reads and writes at offset off (already bounded) */
    void (*config_read)(struct vdev *d, uint32_t off, void *data,
                        uint32_t size);
    void (*config_write)(struct vdev *d, uint32_t off, const void *data,
                         uint32_t size);
    /* queue q has new available buffers; on the event thread */
    void (*notify)(struct vdev *d, uint32_t q);
    /* the driver reset the device */
    void (*reset)(struct vdev *d);
    /* frees the model's state (the vdev itself is freed after); joins
     * the model's threads, waiting for a request in flight */
    void (*destroy)(struct vdev *d);
    /* may be NULL: a model whose requests run on a thread of its own.
     * quiesce(d, true) returns once no request is half-done (popped and
     * not yet pushed) and none will start until the matching
     * quiesce(d, false); calls nest. Called without the device lock, from
     * a pause (hvi_device_set_quiesce), a save or load, and after a
     * reset (so that no request from before it still writes into guest
     * memory the driver took back). */
    void (*quiesce)(struct vdev *d, bool on);
    /* may be NULL: queue q's doorbell is the model's to wait on (from a
     * thread of its own, reading fd to clear it) rather than a notify()
     * on the event thread. fd stays the transport's: dup it. Called while
     * the device is created, when the backend has doorbells; notifies
     * through the register still come as notify(). */
    void (*doorbell)(struct vdev *d, uint32_t q, int fd);
    /* device-specific state for hvc_device_save_state(); may be NULL */
    int (*save)(struct vdev *d, struct hvi_rec_writer *w);
    int (*load)(struct vdev *d, const struct hvi_rec_reader *r);
    /* may be NULL: the back end's descriptors a hand-over passes
     * (hvc_device_ops::handover_fds); -1 for an empty slot */
    int (*handover_fds)(struct vdev *d, int *fds, size_t capacity,
                        size_t *count);
    /* (net16) bit q set: the walk translates queue q's buffers without
     * waiting for pages still to come in an incoming post-copy; the model
     * asks hvi_vm_gpa_present() before it touches one, and sets aside a
     * buffer that is not there yet (virtio-net's receive queue). Rings and
     * descriptors are still waited for. */
    uint32_t unfetched_queues;
    /* During an incoming post-copy, a queue whose rings or next buffer
     * have a page that has not arrived is left alone rather than waited
     * for, and notified again (notify()) when the page lands: always on
     * the event thread, and on the model's own threads too when this is
     * set (so that they never sleep on the link holding the device
     * lock). See "Post-copy" below. */
    bool defer_missing;
};

struct vdev {
    hvc_vm *vm;
    hvc_device *dev;
    const struct vdev_model *model;
    void *impl;
    hvc_virtio_mmio mmio;
    pthread_mutex_t lock;
    uint32_t status;
    uint64_t driver_features;
    uint32_t dev_features_sel;
    uint32_t drv_features_sel;
    uint32_t queue_sel;
    uint32_t isr;
    uint32_t config_generation;
    struct vq vq[VIRTIO_MAX_QUEUES];
    int notify_fd;           /* eventfd: QueueNotify -> event thread */
    int irq_fd;              /* interrupt eventfd (irqfd), or -1 */
    bool doorbells;          /* QueueNotify is a doorbell per queue */
    atomic_uint notify_mask; /* queues notified since the last wake */
    /* A model with no quiesce of its own, quiesced (a pause, a post-copy
     * destination before its pages are in place): the queues notified
     * meanwhile, served when it ends (virtio_mmio.c). Under lock. */
    bool held;
    unsigned held_mask;
    struct vq_elem elem; /* scratch for the model, under lock */
};

/* virtio_mmio.c. Owns impl from the call on: on failure the model's
 * destroy() runs, as it does when the device is later removed. */
int hvi_vdev_create(hvc_vm *vm, const struct vdev_model *model, void *impl,
                    const hvc_virtio_mmio *mmio, const char *name,
                    hvc_device **out, struct vdev **vdev);
/* Raises the device's interrupt with these InterruptStatus bits. */
void hvi_vdev_interrupt(struct vdev *d, uint32_t bits);
/* Marks the device broken (DEVICE_NEEDS_RESET) after a driver error the
 * message describes; it serves nothing until the driver resets it. */
void hvi_vdev_fail(struct vdev *d, const char *fmt, ...) HVI_PRINTF(2, 3);
bool hvi_vdev_is_virtio(const hvc_device *dev);
struct vdev *hvi_vdev_of(hvc_device *dev);
/* Re-checks every ready queue for buffers (after a state load). */
void hvi_vdev_kick_all(struct vdev *d);
/* Notifies queue @p q of device @p opaque again (the event thread serves
 * it): an hvi_page_wake_fn, so it takes no lock. */
void hvi_vdev_rekick(void *opaque, uint32_t q);

/* Post-copy. On a post-copy destination a page of a ring or buffer may
 * not have arrived yet. On the event thread (and on a model's thread when
 * vdev_model.defer_missing is set) hvi_vq_pop() first looks whether the
 * queue's three rings and then the chain's buffers are here
 * (hvi_postcopy_when_present(), which asks for what is not): if not, it
 * returns 0 without taking the chain, as for an empty ring, and the queue
 * is notified again when the pages land (hvi_vdev_rekick()). Elsewhere
 * (a vCPU writing QueueReady, a virtio-net worker) the accessors wait for
 * the page as before. */

/* virtqueue.c. Every guest-memory access of a device goes through these,
 * held to the device's grants (hvc_device_set_grants): rings and
 * descriptors outside them fail the device; a buffer outside them is in
 * the chain with a NULL hva and counted in e->refused, so the model
 * completes the request with an error of its own (copies stop at such a
 * segment). pop: 1 and a chain in *e, 0 when the ring is empty, -1 on
 * a malformed chain (the device is failed). */
int hvi_vq_pop(struct vdev *d, struct vq *q, struct vq_elem *e);
/* Reads the chain that starts at descriptor head again (a buffer the
 * device took earlier and kept), checked as hvi_vq_pop() checks it: 0, or
 * -1 with the device failed, or 1 when a buffer's page is missing and the
 * caller must not wait for it (see "Post-copy"; the queue is notified
 * again when it lands). */
int hvi_vq_walk(struct vdev *d, struct vq *q, uint16_t head,
                struct vq_elem *e);
void hvi_vq_push(struct vdev *d, struct vq *q, uint16_t head, uint32_t len);
/* Signals used buffers, unless the driver set VRING_AVAIL_F_NO_INTERRUPT. */
void hvi_vq_interrupt(struct vdev *d, struct vq *q);
/* The driver ring's index of queue @p q: 1 and *idx; 0 when its page is
 * missing and the caller must not wait ("Post-copy": the queue is
 * notified again); -1 when it cannot be read. */
int hvi_vq_avail_idx(struct vdev *d, struct vq *q, uint16_t *idx);
/* Checks a queue's rings lie in RAM; 0 or -1 with the device failed. */
int hvi_vq_check(struct vdev *d, uint32_t index);
/* A device read of guest memory within its grants (and RAM); 0 or
 * -EFAULT. */
int hvi_vdev_read(struct vdev *d, uint64_t gpa, void *buf, size_t len);
/* Copies between an element's segments and a flat buffer; a copy stops
 * at a refused segment. */
size_t hvi_vq_read_out(const struct vq_elem *e, uint64_t off, void *buf,
                       size_t len);
size_t hvi_vq_write_in(const struct vq_elem *e, uint64_t off, const void *buf,
                       size_t len);

#endif
