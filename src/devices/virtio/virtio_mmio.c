/* The virtio-mmio transport, version 2 (virtio 1.2 section 4.2.2). A guest
 * notify only sets a bit and signals an eventfd; the device model runs on
 * the VM's event thread. */
#define _GNU_SOURCE
#include "virtio_dev.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_VENDOR_ID 0x00c
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GENERATION 0x0fc
#define REG_CONFIG 0x100

#define MAGIC 0x74726976  /* "virt" */
#define VENDOR 0x52435648 /* "HVCR" */

static uint64_t offered(const struct vdev *d)
{
    return d->model->features | VIRTIO_F_VERSION_1;
}

void hvi_vdev_interrupt(struct vdev *d, uint32_t bits)
{
    d->isr |= bits;
    /* An edge: the IOAPIC pin latches it; the driver reads
     * InterruptStatus to learn why. Through the interrupt eventfd when
     * there is one (no ioctl on this thread), else by pulsing the line. */
    if (d->irq_fd >= 0) {
        uint64_t one = 1;
        if (write(d->irq_fd, &one, sizeof(one)) == sizeof(one))
            return;
    }
    if (hvc_vm_set_irq(d->vm, d->mmio.irq, 1) == 0)
        hvc_vm_set_irq(d->vm, d->mmio.irq, 0);
}

void hvi_vdev_fail(struct vdev *d, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!(d->status & VIRTIO_STATUS_NEEDS_RESET))
        hvi_log(HVC_LOG_ERROR, "%s: device error, needs reset: %s",
                hvc_device_name(d->dev), msg);
    d->status |= VIRTIO_STATUS_NEEDS_RESET;
    if (d->status & VIRTIO_STATUS_DRIVER_OK)
        hvi_vdev_interrupt(d, VIRTIO_INT_CONFIG);
}

static void reset(struct vdev *d)
{
    d->status = 0;
    d->driver_features = 0;
    d->dev_features_sel = d->drv_features_sel = d->queue_sel = 0;
    d->isr = 0;
    memset(d->vq, 0, sizeof(d->vq));
    atomic_store(&d->notify_mask, 0);
    if (d->model->reset)
        d->model->reset(d);
}

static struct vq *selected(struct vdev *d)
{
    return d->queue_sel < d->model->nr_queues ? &d->vq[d->queue_sel] : NULL;
}

static uint32_t reg_read(struct vdev *d, uint32_t off)
{
    struct vq *q = selected(d);
    switch (off) {
    case REG_MAGIC: return MAGIC;
    case REG_VERSION: return 2;
    case REG_DEVICE_ID: return d->model->device_id;
    case REG_VENDOR_ID: return VENDOR;
    case REG_DEVICE_FEATURES:
        return d->dev_features_sel > 1
                   ? 0
                   : (uint32_t)(offered(d) >> (32 * d->dev_features_sel));
    case REG_QUEUE_NUM_MAX: return q ? VIRTIO_QUEUE_MAX : 0;
    case REG_QUEUE_READY: return q ? q->ready : 0;
    case REG_INTERRUPT_STATUS: return d->isr;
    case REG_STATUS: return d->status;
    case REG_CONFIG_GENERATION: return d->config_generation;
    default: return 0; /* write-only or reserved */
    }
}

static void set_half(uint64_t *v, bool high, uint32_t val)
{
    *v = high ? (*v & 0xffffffffull) | ((uint64_t)val << 32)
              : (*v & ~0xffffffffull) | val;
}

static void write_status(struct vdev *d, uint32_t v)
{
    if (v == 0) {
        reset(d);
        return;
    }
    v &= VIRTIO_STATUS_KNOWN;
    if ((v & VIRTIO_STATUS_FEATURES_OK) &&
        !(d->status & VIRTIO_STATUS_FEATURES_OK)) {
        /* Refuse (leave the bit clear for the driver to see) features we
         * did not offer, and a driver without VIRTIO_F_VERSION_1. */
        if ((d->driver_features & ~offered(d)) ||
            !(d->driver_features & VIRTIO_F_VERSION_1))
            v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
    }
    /* NEEDS_RESET is the device's to set; the driver cannot clear it.
     * Bits virtio 1.2 does not define are dropped: kept, they would be
     * saved into a state record that no load accepts. */
    d->status =
        (v & VIRTIO_STATUS_KNOWN & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET) |
        (d->status & VIRTIO_STATUS_NEEDS_RESET);
}

static void reg_write(struct vdev *d, uint32_t off, uint32_t v)
{
    struct vq *q = selected(d);
    switch (off) {
    case REG_DEVICE_FEATURES_SEL: d->dev_features_sel = v; break;
    case REG_DRIVER_FEATURES_SEL: d->drv_features_sel = v; break;
    case REG_DRIVER_FEATURES:
        if (d->drv_features_sel <= 1 &&
            !(d->status & VIRTIO_STATUS_FEATURES_OK))
            set_half(&d->driver_features, d->drv_features_sel, v);
        break;
    case REG_QUEUE_SEL: d->queue_sel = v; break;
    case REG_QUEUE_NUM:
        if (q && !q->ready)
            q->num = (uint16_t)(v > 0xffff ? 0 : v);
        break;
    case REG_QUEUE_READY:
        if (!q)
            break;
        if (v == 1 && !q->ready && hvi_vq_check(d, d->queue_sel) == 0)
            q->ready = true;
        else if (v == 0)
            q->ready = false;
        break;
    case REG_QUEUE_DESC_LOW:
    case REG_QUEUE_DESC_HIGH:
        if (q && !q->ready)
            set_half(&q->desc, off == REG_QUEUE_DESC_HIGH, v);
        break;
    case REG_QUEUE_DRIVER_LOW:
    case REG_QUEUE_DRIVER_HIGH:
        if (q && !q->ready)
            set_half(&q->avail, off == REG_QUEUE_DRIVER_HIGH, v);
        break;
    case REG_QUEUE_DEVICE_LOW:
    case REG_QUEUE_DEVICE_HIGH:
        if (q && !q->ready)
            set_half(&q->used, off == REG_QUEUE_DEVICE_HIGH, v);
        break;
    case REG_INTERRUPT_ACK: d->isr &= ~v; break;
    case REG_STATUS: write_status(d, v); break;
    default: break;
    }
}

static int mmio_read(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                     uint64_t offset, void *data, uint32_t size)
{
    struct vdev *d = opaque;
    (void)vcpu, (void)range;
    memset(data, 0, size);
    pthread_mutex_lock(&d->lock);
    if (offset >= REG_CONFIG) {
        uint32_t off = (uint32_t)(offset - REG_CONFIG);
        if (d->model->config_read && off < d->model->config_size &&
            size <= d->model->config_size - off)
            d->model->config_read(d, off, data, size);
    } else if (size == 4 && !(offset & 3)) {
        uint32_t v = reg_read(d, (uint32_t)offset);
        memcpy(data, &v, 4);
    }
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static void notify(struct vdev *d, uint32_t q)
{
    if (q >= d->model->nr_queues)
        return;
    atomic_fetch_or(&d->notify_mask, 1u << q);
    uint64_t one = 1;
    ssize_t n = write(d->notify_fd, &one, sizeof(one));
    (void)n; /* a full counter still wakes the event thread */
}

/* After a reset, without the device lock: a model with a thread of its own
 * finishes (and drops) the request it was doing before the driver reuses
 * the memory. */
static void drain(struct vdev *d)
{
    if (d->model->quiesce) {
        d->model->quiesce(d, true);
        d->model->quiesce(d, false);
    }
}

static int mmio_write(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                      uint64_t offset, const void *data, uint32_t size)
{
    struct vdev *d = opaque;
    bool was_reset = false;
    (void)vcpu, (void)range;
    if (offset == REG_QUEUE_NOTIFY && size == 4) {
        uint32_t q;
        memcpy(&q, data, 4);
        notify(d, q); /* no lock: the event thread does the work */
        return 0;
    }
    pthread_mutex_lock(&d->lock);
    if (offset >= REG_CONFIG) {
        uint32_t off = (uint32_t)(offset - REG_CONFIG);
        if (d->model->config_write && off < d->model->config_size &&
            size <= d->model->config_size - off)
            d->model->config_write(d, off, data, size);
    } else if (size == 4 && !(offset & 3)) {
        uint32_t v;
        memcpy(&v, data, 4);
        reg_write(d, (uint32_t)offset, v);
        was_reset = offset == REG_STATUS && v == 0;
    }
    pthread_mutex_unlock(&d->lock);
    if (was_reset)
        drain(d);
    return 0;
}

static void serve(struct vdev *d, unsigned mask)
{
    pthread_mutex_lock(&d->lock);
    if (d->held) { /* vdev_quiesce(): served when the hold ends */
        d->held_mask |= mask;
        pthread_mutex_unlock(&d->lock);
        return;
    }
    bool live = (d->status & VIRTIO_STATUS_DRIVER_OK) &&
                !(d->status & VIRTIO_STATUS_NEEDS_RESET);
    for (uint32_t q = 0; live && q < d->model->nr_queues; q++)
        if ((mask & (1u << q)) && d->vq[q].ready && d->model->notify)
            d->model->notify(d, q);
    pthread_mutex_unlock(&d->lock);
}

/* On the event thread: serve the queues the guest notified through the
 * register (the path when there are no doorbells) or after a load. */
static void on_notify(void *opaque, int fd, uint32_t events)
{
    struct vdev *d = opaque;
    (void)events;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof(n));
    (void)r;
    serve(d, atomic_exchange(&d->notify_mask, 0));
}

/* On the event thread: the guest wrote queue index db->data to
 * QueueNotify, which rang a doorbell without leaving the guest. */
static void on_doorbell(void *opaque, const hvc_doorbell *db)
{
    serve(opaque, 1u << db->data);
}

static hvc_doorbell notify_doorbell(const struct vdev *d, uint32_t q)
{
    hvc_doorbell db = {
        HVC_IO_MMIO, 4, d->mmio.base + REG_QUEUE_NOTIFY, HVC_DOORBELL_DATAMATCH,
        0,           q};
    return db;
}

/* Doorbells are an optimisation: where the backend has none, QueueNotify
 * writes come through mmio_write() and the notify eventfd. */
static void add_doorbells(struct vdev *d)
{
    uint32_t q = 0;
    for (; q < d->model->nr_queues; q++) {
        hvc_doorbell db = notify_doorbell(d, q);
        int fd;
        if (d->model->doorbell
                ? hvi_vm_add_doorbell_fd(d->vm, &db, &fd)
                : hvc_vm_add_doorbell(d->vm, &db, on_doorbell, d))
            break;
        if (d->model->doorbell)
            d->model->doorbell(d, q, fd);
    }
    d->doorbells = q == d->model->nr_queues;
    if (!d->doorbells)
        while (q-- > 0) {
            hvc_doorbell db = notify_doorbell(d, q);
            hvc_vm_remove_doorbell(d->vm, &db);
        }
}

void hvi_vdev_rekick(void *opaque, uint32_t q)
{
    notify(opaque, q);
}

void hvi_vdev_kick_all(struct vdev *d)
{
    for (uint32_t q = 0; q < d->model->nr_queues; q++)
        notify(d, q);
}

static void vdev_destroy(void *opaque)
{
    struct vdev *d = opaque;
    for (uint32_t q = 0; d->doorbells && q < d->model->nr_queues; q++) {
        hvc_doorbell db = notify_doorbell(d, q);
        hvc_vm_remove_doorbell(d->vm, &db);
    }
    hvc_vm_unwatch_fd(d->vm, d->notify_fd);
    if (d->model->destroy)
        d->model->destroy(d); /* joins the model's threads */
    /* Post-copy wake-ups (virtqueue.c) write the notify eventfd: none is
     * registered any more (the event thread and the model's threads are
     * done with this device), and once this returns none runs. */
    hvi_postcopy_forget(d->vm, d);
    close(d->notify_fd);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static void vdev_reset(void *opaque)
{
    struct vdev *d = opaque;
    pthread_mutex_lock(&d->lock);
    reset(d);
    pthread_mutex_unlock(&d->lock);
    drain(d);
}

/* A model that serves its queues on the event thread (no quiesce of its
 * own) is held here: while held, notifies are kept, not served, and are
 * served when the hold ends. Under the device lock, so that a notify
 * being served finishes before the hold begins, and none is lost. */
static void vdev_quiesce(void *opaque, bool on)
{
    struct vdev *d = opaque;
    if (d->model->quiesce) {
        d->model->quiesce(d, on);
        return;
    }
    pthread_mutex_lock(&d->lock);
    d->held = on;
    unsigned kept = on ? 0 : d->held_mask;
    if (!on)
        d->held_mask = 0;
    pthread_mutex_unlock(&d->lock);
    for (uint32_t q = 0; q < d->model->nr_queues; q++)
        if (kept & (1u << q))
            notify(d, q);
}

int hvi_vdev_save(void *opaque, void *buf, size_t capacity, size_t *length);
int hvi_vdev_load(void *opaque, const void *buf, size_t length);

static int vdev_handover_fds(void *opaque, int *fds, size_t capacity,
                             size_t *count)
{
    struct vdev *d = opaque;
    *count = 0;
    return d->model->handover_fds
               ? d->model->handover_fds(d, fds, capacity, count)
               : 0;
}

/* One ops table per model, so a device's type (and the type its state
 * record names) says which model it is. */
#define VDEV_OPS(name)                                                         \
    {                                                                          \
        .version = HVC_DEVICE_OPS_VERSION, .type = name, .read = mmio_read,    \
        .write = mmio_write, .reset = vdev_reset, .destroy = vdev_destroy,     \
        .save_state = hvi_vdev_save, .load_state = hvi_vdev_load,              \
        .handover_fds = vdev_handover_fds,                                     \
    }
static const hvc_device_ops vdev_ops[] = {
    VDEV_OPS("virtio-blk"),
    VDEV_OPS("virtio-console"),
    VDEV_OPS("virtio-rng"),
    VDEV_OPS("virtio-net"),
};

static const hvc_device_ops *ops_for(const struct vdev_model *m)
{
    for (size_t i = 0; i < sizeof(vdev_ops) / sizeof(vdev_ops[0]); i++)
        if (strcmp(vdev_ops[i].type, m->type) == 0)
            return &vdev_ops[i];
    return NULL;
}

bool hvi_vdev_is_virtio(const hvc_device *dev)
{
    return dev && hvi_device_ops(dev)->read == mmio_read;
}

struct vdev *hvi_vdev_of(hvc_device *dev)
{
    return hvi_vdev_is_virtio(dev) ? hvc_device_opaque(dev) : NULL;
}

static int check_window(hvc_vm *vm, const hvc_virtio_mmio *m)
{
    if (m->base % HVC_VIRTIO_MMIO_SIZE || m->base == 0 ||
        m->base + HVC_VIRTIO_MMIO_SIZE < m->base)
        return hvi_error(-EINVAL,
                         "virtio-mmio window 0x%" PRIx64
                         " is not a non-zero multiple of 0x%x",
                         m->base, HVC_VIRTIO_MMIO_SIZE);
    if (m->irq >= hvi_vm_irq_lines(vm) || m->reserved)
        return hvi_error(-EINVAL,
                         "virtio-mmio IRQ %u is not a GSI 0..%u (or "
                         "reserved is not 0)",
                         m->irq, hvi_vm_irq_lines(vm) - 1);
    hvc_memory_region *r;
    for (uint64_t a = m->base; a < m->base + HVC_VIRTIO_MMIO_SIZE;
         a += HVC_PAGE_SIZE / 8)
        if (hvc_vm_find_memory(vm, a, &r) == 0)
            return hvi_error(-EEXIST,
                             "virtio-mmio window 0x%" PRIx64 " overlaps RAM",
                             m->base);
    return 0;
}

int hvi_vdev_create(hvc_vm *vm, const struct vdev_model *model, void *impl,
                    const hvc_virtio_mmio *mmio, const char *name,
                    hvc_device **out, struct vdev **vdev)
{
    struct vdev tmp = {.model = model, .impl = impl};
    int r = 0;
    if (!vm || !mmio)
        r = hvi_error(-EINVAL, "%s: NULL %s", model->type,
                      vm ? "MMIO placement" : "VM");
    else
        r = check_window(vm, mmio);
    struct vdev *d = r < 0 ? NULL : calloc(1, sizeof(*d));
    if (!d) {
        if (r == 0)
            r = hvi_error(-ENOMEM, "out of memory creating %s", model->type);
        if (model->destroy)
            model->destroy(&tmp); /* ours on every path, as documented */
        return r;
    }
    d->vm = vm;
    d->model = model;
    d->impl = impl;
    d->mmio = *mmio;
    pthread_mutex_init(&d->lock, NULL);
    atomic_init(&d->notify_mask, 0);
    d->irq_fd = -1;
    d->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->notify_fd < 0) {
        r = hvi_error(-errno, "%s: eventfd: %s", model->type,
                      hvc_strerror(-errno));
        goto fail;
    }
    char auto_name[48];
    if (!name) {
        hvc_device *other;
        for (unsigned n = 0;; n++) {
            snprintf(auto_name, sizeof(auto_name), "%s%u", model->type, n);
            if (hvc_vm_find_device(vm, auto_name, &other) < 0)
                break;
        }
        name = auto_name;
    }
    hvc_device_range range = {HVC_IO_MMIO, 0, mmio->base, HVC_VIRTIO_MMIO_SIZE};
    hvc_device_options o = HVC_DEVICE_OPTIONS_INIT;
    o.nr_ranges = 1;
    o.ranges = &range;
    o.name = name;
    if ((r = hvc_vm_add_device(vm, ops_for(model), d, &o, &d->dev)) < 0)
        goto fail;
    if ((r = hvc_vm_watch_fd(vm, d->notify_fd, HVC_FD_READABLE, on_notify, d)) <
        0) {
        /* removing runs vdev_destroy, which frees d and the model state:
         * the caller must not free impl again */
        hvc_vm_remove_device(vm, d->dev);
        return r;
    }
    if (hvc_vm_irq_eventfd(vm, mmio->irq, &d->irq_fd) < 0)
        d->irq_fd = -1; /* no irqchip or no irqfd: pulse the line */
    add_doorbells(d);
    hvi_device_set_quiesce(d->dev, vdev_quiesce);
    if (out)
        *out = d->dev;
    if (vdev)
        *vdev = d;
    return 0;
fail:
    if (d->notify_fd >= 0)
        close(d->notify_fd);
    if (model->destroy)
        model->destroy(d); /* the model's state is ours from the start */
    pthread_mutex_destroy(&d->lock);
    free(d);
    return r;
}
