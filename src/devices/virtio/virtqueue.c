/* Split virtqueues (virtio 1.2 section 2.7). Everything the guest wrote is
 * hostile: descriptors are copied out of guest memory before they are
 * checked (the guest cannot change them between check and use), every
 * buffer is translated with a length so it cannot reach outside RAM, and a
 * chain is bounded by the queue size, which ends loops. */
#include "virtio_dev.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* -EACCES outside the device's grants (counted), -EFAULT outside RAM. */
static int ring_ptr(struct vdev *d, uint64_t gpa, size_t len, void **p)
{
    if (hvi_device_check_grant(d->dev, gpa, len) < 0)
        return -EACCES;
    return hvc_vm_gpa_to_hva(d->vm, gpa, len, p);
}

/* Whether [gpa, gpa+len) can be used without waiting on the link: 1, or
 * 0 after arranging for queue q to be notified again when it lands
 * (virtio_dev.h, "Post-copy"). A lost page (or no memory to arm the
 * wake-up) reads as here: the accessor then reports the failure. */
static bool here(struct vdev *d, const struct vq *q, uint64_t gpa, uint64_t len)
{
    if (!atomic_load_explicit(&d->vm->postcopy_active, memory_order_acquire))
        return true;
    if (hvi_event_vm != d->vm && !d->model->defer_missing)
        return true;
    return hvi_postcopy_when_present(d->vm, gpa, len, hvi_vdev_rekick, d,
                                     (uint32_t)(q - d->vq)) != 0;
}

/* The three rings of q. */
static bool rings_here(struct vdev *d, const struct vq *q)
{
    return here(d, q, q->avail, 6u + 2u * q->num) &&
           here(d, q, q->used, 6u + 8u * q->num) &&
           here(d, q, q->desc, 16u * q->num);
}

int hvi_vq_avail_idx(struct vdev *d, struct vq *q, uint16_t *idx)
{
    if (!rings_here(d, q))
        return 0;
    return hvi_vdev_read(d, q->avail + 2, idx, 2) < 0 ? -1 : 1;
}

int hvi_vdev_read(struct vdev *d, uint64_t gpa, void *buf, size_t len)
{
    if (hvi_device_check_grant(d->dev, gpa, len) < 0)
        return -EFAULT;
    return hvc_vm_read(d->vm, gpa, buf, len);
}

int hvi_vq_check(struct vdev *d, uint32_t index)
{
    struct vq *q = &d->vq[index];
    void *p;
    if (q->num == 0 || q->num > VIRTIO_QUEUE_MAX || (q->num & (q->num - 1))) {
        hvi_vdev_fail(d, "queue %u size %u is not a power of two in 1..%d",
                      index, q->num, VIRTIO_QUEUE_MAX);
        return -1;
    }
    if ((q->desc & 15) || (q->avail & 1) || (q->used & 3)) {
        hvi_vdev_fail(d,
                      "queue %u rings are misaligned (desc 0x%" PRIx64
                      ", driver 0x%" PRIx64 ", device 0x%" PRIx64 ")",
                      index, q->desc, q->avail, q->used);
        return -1;
    }
    if (ring_ptr(d, q->desc, 16u * q->num, &p) < 0 ||
        ring_ptr(d, q->avail, 6u + 2u * q->num, &p) < 0 ||
        ring_ptr(d, q->used, 6u + 8u * q->num, &p) < 0) {
        hvi_vdev_fail(d,
                      "queue %u rings lie outside guest RAM or the "
                      "device's memory grants",
                      index);
        return -1;
    }
    /* the device writes the used ring: not into a ROM */
    hvc_memory_region *r;
    if (hvc_vm_find_memory(d->vm, q->used, &r) == 0 &&
        (hvc_memory_region_flags(r) & HVC_MEMORY_READONLY)) {
        hvi_vdev_fail(d, "queue %u used ring 0x%" PRIx64 " is read-only", index,
                      q->used);
        return -1;
    }
    return 0;
}

static uint16_t load16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

int hvi_vq_walk(struct vdev *d, struct vq *q, uint16_t head, struct vq_elem *e)
{
    if (head >= q->num) {
        hvi_vdev_fail(d, "descriptor %u is past the queue size %u", head,
                      q->num);
        return -1;
    }
    e->head = head;
    e->nr_out = e->nr_in = 0;
    e->out_len = e->in_len = 0;
    e->refused = 0;
    /* the model looks at these buffers' pages itself (vdev_model) */
    bool unfetched = d->model->unfetched_queues >> (q - d->vq) & 1;
    uint16_t i = head;
    for (unsigned n = 0;; n++) {
        if (n == q->num) {
            hvi_vdev_fail(d,
                          "descriptor chain from %u is longer than the "
                          "queue (a loop?)",
                          head);
            return -1;
        }
        struct vring_desc desc;
        if (hvi_vdev_read(d, q->desc + 16u * i, &desc, sizeof(desc)) < 0) {
            hvi_vdev_fail(d,
                          "descriptor %u is unreadable (outside RAM or "
                          "the device's grants)",
                          i);
            return -1;
        }
        if (desc.flags & VRING_DESC_F_INDIRECT) {
            hvi_vdev_fail(d,
                          "descriptor %u is indirect, which was not "
                          "negotiated",
                          i);
            return -1;
        }
        bool in = desc.flags & VRING_DESC_F_WRITE;
        if (!in && e->nr_in) {
            hvi_vdev_fail(d, "readable descriptor %u follows a writable one",
                          i);
            return -1;
        }
        if (desc.len) {
            void *hva;
            if (!unfetched && !here(d, q, desc.addr, desc.len))
                return 1; /* not taken: notified again when it lands */
            if ((unfetched ? hvi_vm_gpa_to_hva_nowait(d->vm, desc.addr,
                                                      desc.len, &hva)
                           : hvc_vm_gpa_to_hva(d->vm, desc.addr, desc.len,
                                               &hva)) < 0) {
                hvi_vdev_fail(d,
                              "descriptor %u buffer 0x%" PRIx64 "+0x%x lies "
                              "outside guest RAM",
                              i, desc.addr, desc.len);
                return -1;
            }
            /* a ROM is no target for the device's writes: the guest
             * cannot store to it, nor may it have the device do so (the
             * host may even map it read-only) */
            hvc_memory_region *region;
            if (in && hvc_vm_find_memory(d->vm, desc.addr, &region) == 0 &&
                (hvc_memory_region_flags(region) & HVC_MEMORY_READONLY)) {
                hvi_vdev_fail(d,
                              "descriptor %u buffer 0x%" PRIx64 "+0x%x is "
                              "writable but lies in read-only memory",
                              i, desc.addr, desc.len);
                return -1;
            }
            /* In RAM but not granted: the model fails the request. */
            if (hvi_device_check_grant(d->dev, desc.addr, desc.len) < 0) {
                hva = NULL;
                e->refused++;
            }
            e->seg[e->nr_out + e->nr_in] =
                (struct vq_seg){hva, desc.len, desc.addr};
            if (in) {
                e->nr_in++;
                e->in_len += desc.len;
            } else {
                e->nr_out++;
                e->out_len += desc.len;
            }
        }
        if (!(desc.flags & VRING_DESC_F_NEXT))
            break;
        if (desc.next >= q->num) {
            hvi_vdev_fail(d,
                          "descriptor %u links to %u, past the queue "
                          "size %u",
                          i, desc.next, q->num);
            return -1;
        }
        i = desc.next;
    }
    return 0;
}

int hvi_vq_pop(struct vdev *d, struct vq *q, struct vq_elem *e)
{
    uint8_t *avail;
    if (!q->ready || !rings_here(d, q))
        return 0;
    int r = ring_ptr(d, q->avail, 6u + 2u * q->num, (void **)&avail);
    if (r == -EACCES) { /* the grants changed since the queue was enabled */
        hvi_vdev_fail(d, "the driver ring is outside the device's grants");
        return -1;
    }
    if (r < 0)
        return 0;
    uint16_t idx = __atomic_load_n((uint16_t *)(avail + 2), __ATOMIC_ACQUIRE);
    if (idx == q->last_avail)
        return 0;
    if ((uint16_t)(idx - q->last_avail) > q->num) {
        hvi_vdev_fail(d,
                      "available index %u is %u entries ahead of the "
                      "device (queue size %u)",
                      idx, (uint16_t)(idx - q->last_avail), q->num);
        return -1;
    }
    uint16_t head = load16(avail + 4 + 2u * (q->last_avail % q->num));
    if (head >= q->num) {
        hvi_vdev_fail(d, "available ring names descriptor %u of %u", head,
                      q->num);
        return -1;
    }
    if ((r = hvi_vq_walk(d, q, head, e)) != 0)
        return r < 0 ? -1 : 0; /* 1: a buffer's page is on its way */
    q->last_avail++;
    return 1;
}

void hvi_vq_push(struct vdev *d, struct vq *q, uint16_t head, uint32_t len)
{
    uint8_t *used;
    int r = ring_ptr(d, q->used, 6u + 8u * q->num, (void **)&used);
    if (r == -EACCES)
        hvi_vdev_fail(d, "the device ring is outside the device's grants");
    if (r < 0)
        return; /* checked when the queue became ready; memory changed */
    uint32_t elem[2] = {head, len};
    uint32_t slot = 8u * (q->used_idx % q->num);
    /* The buffers the device wrote through host pointers, for dirty
     * tracking: the chain is the model's scratch element (every model
     * pushes the chain it just popped). Before the used element is
     * published, so the guest cannot reuse the buffers first. */
    if (d->elem.head == head)
        for (unsigned s = d->elem.nr_out; s < d->elem.nr_out + d->elem.nr_in;
             s++)
            if (d->elem.seg[s].hva)
                hvc_vm_mark_dirty(d->vm, d->elem.seg[s].gpa,
                                  d->elem.seg[s].len);
    memcpy(used + 4 + slot, elem, sizeof(elem));
    q->used_idx++;
    /* the element must be visible before the index that publishes it */
    __atomic_store_n((uint16_t *)(used + 2), q->used_idx, __ATOMIC_RELEASE);
    hvc_vm_mark_dirty(d->vm, q->used + 4 + slot, sizeof(elem));
    hvc_vm_mark_dirty(d->vm, q->used + 2, 2);
}

/* Copies len bytes at byte offset off of segments [first, end) to or from
 * buf; returns how many were copied. */
static size_t copy_segs(const struct vq_elem *e, unsigned first, unsigned end,
                        uint64_t off, void *buf, size_t len, bool to_guest)
{
    uint8_t *b = buf;
    size_t done = 0;
    for (unsigned s = first; s < end && done < len; s++) {
        const struct vq_seg *g = &e->seg[s];
        if (!g->hva)
            break; /* outside the device's grants */
        if (off >= g->len) {
            off -= g->len;
            continue;
        }
        size_t n = g->len - off;
        if (n > len - done)
            n = len - done;
        if (to_guest)
            memcpy(g->hva + off, b + done, n);
        else
            memcpy(b + done, g->hva + off, n);
        done += n;
        off = 0;
    }
    return done;
}

size_t hvi_vq_read_out(const struct vq_elem *e, uint64_t off, void *buf,
                       size_t len)
{
    return copy_segs(e, 0, e->nr_out, off, buf, len, false);
}

size_t hvi_vq_write_in(const struct vq_elem *e, uint64_t off, const void *buf,
                       size_t len)
{
    return copy_segs(e, e->nr_out, e->nr_out + e->nr_in, off, (void *)buf, len,
                     true);
}

/* Interrupts for used buffers unless the driver asked for none (it polls):
 * VRING_AVAIL_F_NO_INTERRUPT in the available ring's flags. None for a
 * queue that is not ready or a driver that is not running: a device
 * thread that used buffers before a reset and signals them after it (its
 * lock dropped between the two) would otherwise set InterruptStatus on
 * the reset device and read "flags" at guest-physical 0, where the reset
 * left the ring's address. */
void hvi_vq_interrupt(struct vdev *d, struct vq *q)
{
    if (!q->ready || !(d->status & VIRTIO_STATUS_DRIVER_OK))
        return;
    uint16_t flags = 0;
    if (hvi_vdev_read(d, q->avail, &flags, 2) == 0 && (flags & 1))
        return;
    hvi_vdev_interrupt(d, VIRTIO_INT_VRING);
}
