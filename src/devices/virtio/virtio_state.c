/* Saving and loading a virtio device's transport state (status, features,
 * queue configuration and ring positions) plus its model's own fields, as
 * a tagged record. Loading checks everything before changing anything. */
#include "virtio_dev.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

enum {
    T_STATUS = 1,
    T_DRIVER_FEATURES,
    T_DEV_SEL,
    T_DRV_SEL,
    T_QUEUE_SEL,
    T_ISR,
    T_CONFIG_GEN,
    T_NR_QUEUES,
    T_QUEUE = 16, /* + 8 * index + field */
};
enum { Q_NUM, Q_READY, Q_DESC, Q_AVAIL, Q_USED, Q_LAST_AVAIL, Q_USED_IDX };

int hvi_vdev_save(void *opaque, void *buf, size_t capacity, size_t *length)
{
    struct vdev *d = opaque;
    struct hvi_rec_writer w = {buf, capacity, 0, false};
    /* no request half-done: its ring positions would say it was taken, and
     * a restored device would never serve it (a pause has done this
     * already; a save without one gets it here) */
    if (d->model->quiesce)
        d->model->quiesce(d, true);
    pthread_mutex_lock(&d->lock);
    hvi_rec_u64(&w, T_STATUS, d->status);
    hvi_rec_u64(&w, T_DRIVER_FEATURES, d->driver_features);
    hvi_rec_u64(&w, T_DEV_SEL, d->dev_features_sel);
    hvi_rec_u64(&w, T_DRV_SEL, d->drv_features_sel);
    hvi_rec_u64(&w, T_QUEUE_SEL, d->queue_sel);
    hvi_rec_u64(&w, T_ISR, d->isr);
    hvi_rec_u64(&w, T_CONFIG_GEN, d->config_generation);
    hvi_rec_u64(&w, T_NR_QUEUES, d->model->nr_queues);
    for (uint32_t i = 0; i < d->model->nr_queues; i++) {
        const struct vq *q = &d->vq[i];
        uint16_t t = (uint16_t)(T_QUEUE + 8 * i);
        hvi_rec_u64(&w, t + Q_NUM, q->num);
        hvi_rec_u64(&w, t + Q_READY, q->ready);
        hvi_rec_u64(&w, t + Q_DESC, q->desc);
        hvi_rec_u64(&w, t + Q_AVAIL, q->avail);
        hvi_rec_u64(&w, t + Q_USED, q->used);
        hvi_rec_u64(&w, t + Q_LAST_AVAIL, q->last_avail);
        hvi_rec_u64(&w, t + Q_USED_IDX, q->used_idx);
    }
    int r = d->model->save ? d->model->save(d, &w) : 0;
    pthread_mutex_unlock(&d->lock);
    if (d->model->quiesce)
        d->model->quiesce(d, false);
    *length = w.len;
    return r < 0 ? r : w.overflow ? -ENOSPC : 0;
}

static int get(const struct hvi_rec_reader *r, uint16_t tag, uint64_t max,
               uint64_t *v, const char *what)
{
    int e = hvi_rec_get_u64(r, tag, v);
    if (e < 0)
        return e;
    if (*v > max)
        return hvi_error(-EBADMSG,
                         "%s state: %s 0x%" PRIx64 " exceeds 0x%" PRIx64,
                         r->what, what, *v, max);
    return 0;
}

static int load_queue(struct vdev *d, const struct hvi_rec_reader *r,
                      uint32_t i, struct vq *q)
{
    uint16_t t = (uint16_t)(T_QUEUE + 8 * i);
    uint64_t num, ready, desc, avail, used, last, uidx;
    int e;
    if ((e = get(r, t + Q_NUM, 0xffff, &num, "queue size")) < 0 ||
        (e = get(r, t + Q_READY, 1, &ready, "queue ready")) < 0 ||
        (e = get(r, t + Q_DESC, UINT64_MAX, &desc, "descriptor table")) < 0 ||
        (e = get(r, t + Q_AVAIL, UINT64_MAX, &avail, "driver ring")) < 0 ||
        (e = get(r, t + Q_USED, UINT64_MAX, &used, "device ring")) < 0 ||
        (e = get(r, t + Q_LAST_AVAIL, 0xffff, &last, "last available")) < 0 ||
        (e = get(r, t + Q_USED_IDX, 0xffff, &uidx, "used index")) < 0)
        return e;
    *q = (struct vq){(uint16_t)num, ready != 0,     desc,          avail,
                     used,          (uint16_t)last, (uint16_t)uidx};
    if (!q->ready)
        return 0;
    void *p;
    if (num == 0 || num > VIRTIO_QUEUE_MAX || (num & (num - 1)) ||
        (desc & 15) || (avail & 1) || (used & 3) ||
        hvc_vm_gpa_to_hva(d->vm, desc, 16 * num, &p) < 0 ||
        hvc_vm_gpa_to_hva(d->vm, avail, 6 + 2 * num, &p) < 0 ||
        hvc_vm_gpa_to_hva(d->vm, used, 6 + 8 * num, &p) < 0)
        return hvi_error(-EBADMSG,
                         "%s state: ready queue %u (size %" PRIu64
                         ", rings 0x%" PRIx64 "/0x%" PRIx64 "/0x%" PRIx64
                         ") is impossible or not in RAM",
                         r->what, i, num, desc, avail, used);
    /* the device writes the used ring: never into a ROM (as when the
     * driver enables a queue, virtqueue.c) */
    hvc_memory_region *reg;
    if (hvc_vm_find_memory(d->vm, used, &reg) == 0 &&
        (hvc_memory_region_flags(reg) & HVC_MEMORY_READONLY))
        return hvi_error(-EBADMSG,
                         "%s state: queue %u device ring 0x%" PRIx64
                         " is in read-only memory",
                         r->what, i, used);
    /* a device is quiescent when saved, having completed all it popped,
     * so it can only be behind the driver, never ahead of its own ring */
    if ((uint16_t)(q->last_avail - q->used_idx) > num)
        return hvi_error(-EBADMSG,
                         "%s state: queue %u has taken %u entries but "
                         "completed %u",
                         r->what, i, q->last_avail, q->used_idx);
    return 0;
}

int hvi_vdev_load(void *opaque, const void *buf, size_t length)
{
    struct vdev *d = opaque;
    struct hvi_rec_reader r = {buf, length, hvc_device_name(d->dev)};
    uint64_t status, feat, dsel, vsel, qsel, isr, gen, nq;
    struct vq vq[VIRTIO_MAX_QUEUES] = {{0}};
    uint64_t offered = d->model->features | VIRTIO_F_VERSION_1;
    int e;
    if ((e = get(&r, T_STATUS, VIRTIO_STATUS_KNOWN, &status, "status")) < 0 ||
        (e = get(&r, T_DRIVER_FEATURES, UINT64_MAX, &feat, "features")) < 0 ||
        (e = get(&r, T_DEV_SEL, UINT32_MAX, &dsel, "feature select")) < 0 ||
        (e = get(&r, T_DRV_SEL, UINT32_MAX, &vsel, "feature select")) < 0 ||
        (e = get(&r, T_QUEUE_SEL, UINT32_MAX, &qsel, "queue select")) < 0 ||
        (e = get(&r, T_ISR, 3, &isr, "interrupt status")) < 0 ||
        (e = get(&r, T_CONFIG_GEN, UINT32_MAX, &gen, "generation")) < 0 ||
        (e = get(&r, T_NR_QUEUES, UINT32_MAX, &nq, "queue count")) < 0)
        return e;
    if (status & ~(uint64_t)VIRTIO_STATUS_KNOWN)
        return hvi_error(-EBADMSG, "%s state: status 0x%" PRIx64, r.what,
                         status);
    /* Before FEATURES_OK the driver may have written anything (the device
     * then refuses FEATURES_OK); from it on, only what was offered. */
    if ((status & VIRTIO_STATUS_FEATURES_OK) && (feat & ~offered))
        return hvi_error(-EBADMSG,
                         "%s state: features 0x%" PRIx64
                         " include some this device does not offer (0x%" PRIx64
                         ")",
                         r.what, feat, offered);
    if (nq != d->model->nr_queues)
        return hvi_error(-EBADMSG, "%s state: %" PRIu64 " queues, not %u",
                         r.what, nq, d->model->nr_queues);
    for (uint32_t i = 0; i < d->model->nr_queues; i++)
        if ((e = load_queue(d, &r, i, &vq[i])) < 0)
            return e;
    /* no request of the old state may complete into the new one */
    if (d->model->quiesce)
        d->model->quiesce(d, true);
    pthread_mutex_lock(&d->lock);
    /* the model validates its own fields and applies them only if all are
     * good; the transport applies after that */
    e = d->model->load ? d->model->load(d, &r) : 0;
    if (e == 0) {
        d->status = (uint32_t)status;
        d->driver_features = feat;
        d->dev_features_sel = (uint32_t)dsel;
        d->drv_features_sel = (uint32_t)vsel;
        d->queue_sel = (uint32_t)qsel;
        d->isr = (uint32_t)isr;
        d->config_generation = (uint32_t)gen;
        memcpy(d->vq, vq, sizeof(vq));
    }
    pthread_mutex_unlock(&d->lock);
    if (d->model->quiesce)
        d->model->quiesce(d, false);
    if (e == 0)
        hvi_vdev_kick_all(d); /* serve what was in flight at save time */
    return e;
}
