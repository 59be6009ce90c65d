/* Devices: an ops table plus ranges, dispatched through the I/O tables. */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANGES 16

struct hvi_dev_range {
    hvc_device *dev;
    uint32_t index;
};

struct hvc_device {
    hvc_vm *vm;
    const hvc_device_ops *ops;
    void *opaque;
    char name[48];
    uint32_t nr_ranges;
    hvc_device_range ranges[MAX_RANGES];
    struct hvi_dev_range tramp[MAX_RANGES];
    hvi_quiesce_fn quiesce; /* these two under vm->dev_ops_lock */
    bool quiesced;
    hvc_device *next;
};

static int trampoline(void *opaque, hvc_vcpu *vcpu, uint64_t offset, void *data,
                      uint32_t size, int is_write)
{
    const struct hvi_dev_range *t = opaque;
    const hvc_device_ops *ops = t->dev->ops;
    if (is_write)
        return ops->write ? ops->write(t->dev->opaque, vcpu, t->index, offset,
                                       data, size)
                          : 0;
    if (!ops->read) {
        memset(data, 0xff, size);
        return 0;
    }
    return ops->read(t->dev->opaque, vcpu, t->index, offset, data, size);
}

/* Caller holds dev_lock. */
static hvc_device *find_name(hvc_vm *vm, const char *name)
{
    for (hvc_device *d = vm->devices; d; d = d->next)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

/* Caller holds dev_lock. A NULL name: the type and the first free number. */
static void name_device(hvc_vm *vm, hvc_device *dev, const char *name)
{
    if (name) {
        snprintf(dev->name, sizeof(dev->name), "%s", name);
        return;
    }
    for (unsigned n = 0;; n++) {
        snprintf(dev->name, sizeof(dev->name), "%.40s%u", dev->ops->type, n);
        if (!find_name(vm, dev->name))
            return;
    }
}

/* The device after d in attachment order (the first for NULL). Callers
 * that call into devices hold dev_ops_lock, which keeps every device in
 * the list alive; dev_lock is taken only to read the link. */
static hvc_device *next_device(hvc_vm *vm, hvc_device *d)
{
    pthread_mutex_lock(&vm->dev_lock);
    hvc_device *n = d ? d->next : vm->devices;
    pthread_mutex_unlock(&vm->dev_lock);
    return n;
}

static void unregister(hvc_device *dev, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        hvc_vm_remove_io_handler(dev->vm, (int)dev->ranges[i].space,
                                 dev->ranges[i].base);
}

static int check(const hvc_device_ops *ops, const hvc_device_options *o)
{
    if (ops->version < 1 || ops->version > HVC_DEVICE_OPS_VERSION)
        return hvi_error(-EINVAL,
                         "device ops version %u is not one this "
                         "library knows (1..%u)",
                         ops->version, HVC_DEVICE_OPS_VERSION);
    if (!ops->type || !*ops->type)
        return hvi_error(-EINVAL, "device ops have no type name");
    if (o->nr_ranges > MAX_RANGES || (o->nr_ranges && !o->ranges))
        return hvi_error(-EINVAL,
                         "device %s: %u ranges (at most %d, and a non-NULL "
                         "array)",
                         ops->type, o->nr_ranges, MAX_RANGES);
    if (o->name && (!*o->name || strlen(o->name) >= 48))
        return hvi_error(-EINVAL,
                         "device name \"%s\" is empty or longer "
                         "than 47 characters",
                         HVI_QUOTE(o->name));
    /* Names reach messages and listings: printable ASCII only. */
    for (const char *c = o->name; c && *c; c++)
        if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\')
            return hvi_error(-EINVAL,
                             "device name \"%s\": byte 0x%02x at %zu is "
                             "not a printable character other than a "
                             "quote or backslash",
                             HVI_QUOTE(o->name), (unsigned char)*c,
                             (size_t)(c - o->name));
    return 0;
}

int hvc_vm_add_device(hvc_vm *vm, const hvc_device_ops *ops, void *opaque,
                      const hvc_device_options *opts, hvc_device **out)
{
    if (!vm || !ops || !opts)
        return hvi_error(-EINVAL, "hvc_vm_add_device: NULL %s",
                         !vm    ? "VM"
                         : !ops ? "ops"
                                : "options");
    hvc_device_options o = HVC_DEVICE_OPTIONS_INIT;
    int r =
        hvi_copy_options(&o, sizeof(o), opts, sizeof(o), "hvc_device_options");
    if (r < 0 || (r = check(ops, &o)) < 0)
        return r;
    if (hvi_handler_vm == vm)
        return hvi_error(-EDEADLK, "devices cannot be added from an I/O "
                                   "callback of the same VM");
    hvc_device *dev = calloc(1, sizeof(*dev));
    if (!dev)
        return hvi_error(-ENOMEM, "out of memory adding device %s", ops->type);
    dev->vm = vm;
    dev->ops = ops;
    dev->opaque = opaque;
    dev->nr_ranges = o.nr_ranges;
    if (o.nr_ranges)
        memcpy(dev->ranges, o.ranges, o.nr_ranges * sizeof(*o.ranges));

    /* dev_lock is a leaf (internal.h): the ranges are registered without
     * it, and the name is checked before, for a clear message, and again
     * when the device is linked in. */
    pthread_mutex_lock(&vm->dev_lock);
    name_device(vm, dev, o.name);
    bool taken = find_name(vm, dev->name) != NULL;
    pthread_mutex_unlock(&vm->dev_lock);
    if (taken) {
        r = hvi_error(-EEXIST, "a device named \"%s\" already exists",
                      dev->name);
        goto fail;
    }
    for (uint32_t i = 0; i < dev->nr_ranges; i++) {
        const hvc_device_range *rg = &dev->ranges[i];
        dev->tramp[i] = (struct hvi_dev_range){dev, i};
        if (rg->flags)
            r = hvi_error(-EINVAL, "device %s range %u: unknown flags 0x%x",
                          dev->name, i, rg->flags);
        else
            r = hvc_vm_add_io_handler(vm, (int)rg->space, rg->base, rg->length,
                                      trampoline, &dev->tramp[i]);
        if (r < 0) {
            unregister(dev, i);
            hvi_error(r, "device %s range %u: %s", dev->name, i,
                      hvc_last_error());
            goto fail;
        }
    }
    pthread_mutex_lock(&vm->dev_lock);
    if (!o.name) /* another device may have taken the generated name */
        name_device(vm, dev, NULL);
    if (find_name(vm, dev->name)) {
        pthread_mutex_unlock(&vm->dev_lock);
        unregister(dev, dev->nr_ranges);
        r = hvi_error(-EEXIST, "a device named \"%s\" already exists",
                      dev->name);
        goto fail;
    }
    /* Append, so listing follows attachment order. */
    hvc_device **tail = &vm->devices;
    while (*tail)
        tail = &(*tail)->next;
    *tail = dev;
    pthread_mutex_unlock(&vm->dev_lock);
    if (out)
        *out = dev;
    return 0;
fail:
    free(dev);
    return r;
}

static void destroy(hvc_device *dev)
{
    unregister(dev, dev->nr_ranges);
    if (dev->ops->destroy)
        dev->ops->destroy(dev->opaque);
    free(dev);
}

int hvc_vm_remove_device(hvc_vm *vm, hvc_device *dev)
{
    if (!vm || !dev)
        return hvi_error(-EINVAL, "hvc_vm_remove_device: NULL %s",
                         vm ? "device" : "VM");
    if (hvi_handler_vm == vm)
        return hvi_error(-EDEADLK, "devices cannot be removed from an I/O "
                                   "callback of the same VM");
    if (hvi_event_vm == vm)
        return hvi_error(-EDEADLK, "devices cannot be removed from the VM's "
                                   "event thread (an fd-watch or doorbell "
                                   "callback): the device may be serving it");
    /* dev_ops_lock: no reset or quiesce is walking the list meanwhile. */
    pthread_mutex_lock(&vm->dev_ops_lock);
    pthread_mutex_lock(&vm->dev_lock);
    hvc_device **p = &vm->devices;
    while (*p && *p != dev)
        p = &(*p)->next;
    bool found = *p != NULL;
    if (found)
        *p = dev->next;
    pthread_mutex_unlock(&vm->dev_lock);
    pthread_mutex_unlock(&vm->dev_ops_lock);
    if (!found)
        return hvi_error(-ENOENT, "device %p is not attached to this VM",
                         (void *)dev);
    destroy(dev);
    return 0;
}

void hvi_device_set_quiesce(hvc_device *dev, hvi_quiesce_fn fn)
{
    hvc_vm *vm = dev->vm;
    pthread_mutex_lock(&vm->dev_ops_lock);
    dev->quiesce = fn;
    /* attached while the VM is paused: quiescent until it resumes */
    if (fn && atomic_load(&vm->pause_depth) > 0 && !dev->quiesced) {
        fn(dev->opaque, true);
        dev->quiesced = true;
    }
    pthread_mutex_unlock(&vm->dev_ops_lock);
}

void hvi_devices_quiesce(hvc_vm *vm, bool quiesce)
{
    pthread_mutex_lock(&vm->dev_ops_lock);
    /* A pause and a resume may race for this lock: whoever comes second
     * acts on the depth it then finds, so the devices end up as the VM. */
    if ((atomic_load(&vm->pause_depth) > 0) == quiesce) {
        for (hvc_device *d = next_device(vm, NULL); d; d = next_device(vm, d)) {
            if (!d->quiesce || d->quiesced == quiesce)
                continue;
            d->quiesce(d->opaque, quiesce);
            d->quiesced = quiesce;
        }
    }
    pthread_mutex_unlock(&vm->dev_ops_lock);
}

void hvi_devices_free(hvc_vm *vm)
{
    while (vm->devices) {
        hvc_device *d = vm->devices;
        vm->devices = d->next;
        destroy(d);
    }
}

int hvc_vm_list_devices(hvc_vm *vm, hvc_device **out, size_t capacity,
                        size_t *count)
{
    if (!vm || !count || (capacity && !out))
        return hvi_error(-EINVAL, "hvc_vm_list_devices: NULL argument");
    pthread_mutex_lock(&vm->dev_lock);
    size_t n = 0;
    for (hvc_device *d = vm->devices; d; d = d->next, n++)
        if (n < capacity)
            out[n] = d;
    pthread_mutex_unlock(&vm->dev_lock);
    *count = n;
    return 0;
}

int hvi_devices_snapshot(hvc_vm *vm, hvc_device ***out, size_t *count)
{
    pthread_mutex_lock(&vm->dev_lock);
    size_t n = 0;
    for (hvc_device *d = vm->devices; d; d = d->next)
        n++;
    hvc_device **list = calloc(n ? n : 1, sizeof(*list));
    size_t i = 0;
    for (hvc_device *d = vm->devices; list && d; d = d->next)
        list[i++] = d;
    pthread_mutex_unlock(&vm->dev_lock);
    if (!list)
        return hvi_error(-ENOMEM, "out of memory listing devices");
    *out = list;
    *count = n;
    return 0;
}

int hvc_vm_find_device(hvc_vm *vm, const char *name, hvc_device **out)
{
    if (!vm || !name || !out)
        return hvi_error(-EINVAL, "hvc_vm_find_device: NULL argument");
    pthread_mutex_lock(&vm->dev_lock);
    hvc_device *d = find_name(vm, name);
    pthread_mutex_unlock(&vm->dev_lock);
    if (!d)
        return hvi_error(-ENOENT, "no device named \"%s\"", HVI_QUOTE(name));
    *out = d;
    return 0;
}

const char *hvc_device_name(const hvc_device *dev)
{
    return dev ? dev->name : NULL;
}

const char *hvc_device_type(const hvc_device *dev)
{
    return dev ? dev->ops->type : NULL;
}

void *hvc_device_opaque(const hvc_device *dev)
{
    return dev ? dev->opaque : NULL;
}

int hvc_vm_reset_devices(hvc_vm *vm)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_reset_devices: VM is NULL");
    if (hvi_event_vm == vm)
        return hvi_error(-EDEADLK,
                         "hvc_vm_reset_devices called from the VM's event "
                         "thread (an fd-watch or doorbell callback): the "
                         "device serving it holds its own lock");
    pthread_mutex_lock(&vm->dev_ops_lock);
    for (hvc_device *d = next_device(vm, NULL); d; d = next_device(vm, d))
        if (d->ops->reset)
            d->ops->reset(d->opaque);
    pthread_mutex_unlock(&vm->dev_ops_lock);
    return 0;
}

int hvc_vcpu_request_exit(hvc_vcpu *vcpu, uint32_t reason, uint64_t code)
{
    if (!vcpu)
        return hvi_error(-EINVAL, "hvc_vcpu_request_exit: vCPU is NULL");
    if (reason != HVC_EXIT_RESET && reason != HVC_EXIT_POWEROFF &&
        reason != HVC_EXIT_SHUTDOWN)
        return hvi_error(-EINVAL,
                         "hvc_vcpu_request_exit: reason %u is not "
                         "reset, power-off or shutdown",
                         reason);
    if (hvi_handler_vm != vcpu->vm ||
        atomic_load(&vcpu->state) == HVI_VCPU_IDLE ||
        !pthread_equal(vcpu->runner, pthread_self()))
        return hvi_error(-EINVAL,
                         "hvc_vcpu_request_exit: vCPU %u is not "
                         "running an I/O callback on this thread",
                         vcpu->id);
    vcpu->pending_exit = reason;
    vcpu->pending_code = code;
    return 0;
}

const hvc_device_ops *hvi_device_ops(const hvc_device *dev)
{
    return dev->ops;
}

/* The record header (docs/DEVICES.md): magic, format version, header size,
 * device type, payload length, CRC32C of the payload. Little-endian. */
#define REC_MAGIC "HVDS"
#define REC_VERSION 1
#define REC_HEADER 48
#define REC_TYPE_LEN 32

int hvc_device_save_state(hvc_device *dev, void *buf, size_t capacity,
                          size_t *length)
{
    if (!dev || !length || (capacity && !buf))
        return hvi_error(-EINVAL, "hvc_device_save_state: NULL argument");
    size_t payload = 0;
    uint8_t *out = buf;
    int r = 0;
    if (dev->ops->save_state) {
        size_t room = capacity > REC_HEADER ? capacity - REC_HEADER : 0;
        r = dev->ops->save_state(dev->opaque, room ? out + REC_HEADER : NULL,
                                 room, &payload);
        if (r < 0 && r != -ENOSPC)
            return r;
    }
    *length = REC_HEADER + payload;
    if (r == -ENOSPC || capacity < *length)
        return hvi_error(-ENOSPC,
                         "device %s: its state record needs %zu bytes, the "
                         "buffer has %zu",
                         dev->name, *length, capacity);
    uint16_t version = REC_VERSION, hsize = REC_HEADER;
    uint32_t plen = (uint32_t)payload;
    uint32_t crc = hvi_crc32c(0, out + REC_HEADER, payload);
    memcpy(out, REC_MAGIC, 4);
    memcpy(out + 4, &version, 2);
    memcpy(out + 6, &hsize, 2);
    memset(out + 8, 0, REC_TYPE_LEN);
    strncpy((char *)out + 8, dev->ops->type, REC_TYPE_LEN - 1);
    memcpy(out + 40, &plen, 4);
    memcpy(out + 44, &crc, 4);
    return 0;
}

int hvc_device_load_state(hvc_device *dev, const void *buf, size_t length)
{
    if (!dev || (!buf && length))
        return hvi_error(-EINVAL, "hvc_device_load_state: NULL argument");
    const uint8_t *in = buf;
    uint16_t version, hsize;
    uint32_t plen, crc;
    if (length < REC_HEADER || memcmp(in, REC_MAGIC, 4) != 0)
        return hvi_error(-EBADMSG,
                         "device %s: not a state record (%zu "
                         "bytes, no HVDS header)",
                         dev->name, length);
    memcpy(&version, in + 4, 2);
    memcpy(&hsize, in + 6, 2);
    memcpy(&plen, in + 40, 4);
    memcpy(&crc, in + 44, 4);
    if (version != REC_VERSION || hsize != REC_HEADER)
        return hvi_error(-EBADMSG,
                         "device %s: state record format %u (header %u "
                         "bytes) is not one this library reads",
                         dev->name, version, hsize);
    if (memchr(in + 8, 0, REC_TYPE_LEN) == NULL ||
        strcmp((const char *)in + 8, dev->ops->type) != 0)
        return hvi_error(
            -EINVAL, "device %s is a %s; the record is for a \"%s\"", dev->name,
            dev->ops->type, HVI_QUOTE_N((const char *)in + 8, REC_TYPE_LEN));
    if (plen != length - REC_HEADER)
        return hvi_error(-EBADMSG,
                         "device %s: the record says %u payload bytes, "
                         "%zu are there",
                         dev->name, plen, length - REC_HEADER);
    if (hvi_crc32c(0, in + REC_HEADER, plen) != crc)
        return hvi_error(-EBADMSG, "device %s: state record CRC mismatch",
                         dev->name);
    if (!dev->ops->load_state)
        return plen == 0 ? 0
                         : hvi_error(-EBADMSG,
                                     "device %s keeps no state, yet the "
                                     "record has %u bytes",
                                     dev->name, plen);
    return dev->ops->load_state(dev->opaque, in + REC_HEADER, plen);
}
