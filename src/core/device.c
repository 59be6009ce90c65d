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
    /* Guest memory the device may reach (see hvc_device_set_grants), sorted,
     * merged; under grant_lock, a leaf. */
    pthread_mutex_t grant_lock;
    uint32_t nr_grants;
    hvc_memory_grant grants[HVC_DEVICE_MAX_GRANTS];
    _Atomic uint64_t refusals;
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
    pthread_mutex_init(&dev->grant_lock, NULL);
    dev->nr_grants = 1;
    dev->grants[0] =
        (hvc_memory_grant){HVC_GRANT_ALL_GPA, HVC_GRANT_ALL_LENGTH};
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
    pthread_mutex_destroy(&dev->grant_lock);
    free(dev);
    return r;
}

static void destroy(hvc_device *dev)
{
    unregister(dev, dev->nr_ranges);
    if (dev->ops->destroy)
        dev->ops->destroy(dev->opaque);
    pthread_mutex_destroy(&dev->grant_lock);
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

void hvi_devices_hold(hvc_vm *vm, bool hold)
{
    pthread_mutex_lock(&vm->dev_ops_lock);
    for (hvc_device *d = next_device(vm, NULL); d; d = next_device(vm, d)) {
        if (!d->quiesce || d->quiesced == hold)
            continue;
        d->quiesce(d->opaque, hold);
        d->quiesced = hold;
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

int hvi_device_handover_fds(hvc_device *dev, int *fds, size_t capacity,
                            size_t *count)
{
    *count = 0;
    /* A version 1 table ends before the field. */
    if (dev->ops->version < 2 || !dev->ops->handover_fds)
        return 0;
    int r = dev->ops->handover_fds(dev->opaque, fds, capacity, count);
    if (r < 0)
        return r;
    if (*count > capacity)
        return hvi_error(-E2BIG,
                         "device %s names %zu back-end descriptors; at most "
                         "%zu",
                         dev->name, *count, capacity);
    return 0;
}

/* Sorts and merges ranges (overlapping or adjacent) in place; returns how
 * many remain. Ranges were checked: length > 0, no wrap. */
static size_t merge_grants(hvc_memory_grant *g, size_t n)
{
    for (size_t i = 1; i < n; i++) /* insertion sort: n <= 16 */
        for (size_t j = i; j > 0 && g[j].gpa < g[j - 1].gpa; j--) {
            hvc_memory_grant t = g[j];
            g[j] = g[j - 1];
            g[j - 1] = t;
        }
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (out) {
            hvc_memory_grant *p = &g[out - 1];
            uint64_t last = p->gpa + (p->length - 1);
            if (last == UINT64_MAX || g[i].gpa <= last + 1) {
                uint64_t l2 = g[i].gpa + (g[i].length - 1);
                if (l2 > last)
                    p->length = l2 - p->gpa + 1 ? l2 - p->gpa + 1 : UINT64_MAX;
                continue;
            }
        }
        g[out++] = g[i];
    }
    return out;
}

static int check_grants(const char *who, const hvc_memory_grant *ranges,
                        size_t count)
{
    if (count > HVC_DEVICE_MAX_GRANTS)
        return hvi_error(-EINVAL, "device %s: %zu grant ranges (at most %d)",
                         who, count, HVC_DEVICE_MAX_GRANTS);
    for (size_t i = 0; i < count; i++)
        if (ranges[i].length == 0 ||
            ranges[i].length - 1 > UINT64_MAX - ranges[i].gpa)
            return hvi_error(-EINVAL,
                             "device %s: grant range %zu (0x%" PRIx64
                             "+0x%" PRIx64 ") is empty or wraps",
                             who, i, ranges[i].gpa, ranges[i].length);
    return 0;
}

/* Replaces the grants with count checked ranges. */
static void put_grants(hvc_device *dev, const hvc_memory_grant *ranges,
                       size_t count)
{
    hvc_memory_grant g[HVC_DEVICE_MAX_GRANTS];
    if (count)
        memcpy(g, ranges, count * sizeof(*g));
    count = merge_grants(g, count);
    pthread_mutex_lock(&dev->grant_lock);
    if (count)
        memcpy(dev->grants, g, count * sizeof(*g));
    dev->nr_grants = (uint32_t)count;
    pthread_mutex_unlock(&dev->grant_lock);
}

int hvc_device_set_grants(hvc_device *dev, const hvc_memory_grant *ranges,
                          size_t count)
{
    if (!dev || (count && !ranges))
        return hvi_error(-EINVAL, "hvc_device_set_grants: NULL %s",
                         dev ? "ranges" : "device");
    int r = check_grants(dev->name, ranges, count);
    if (r < 0)
        return r;
    /* A device with a thread of its own (virtio-blk's worker) may be
     * moving data for a request it translated under the old grants:
     * quiesce it around the change, so that once this returns nothing
     * reaches memory the new grants leave out. Not from the VM's own
     * callbacks, which hold locks above dev_ops_lock (internal.h): there
     * the change applies to the next request. */
    hvc_vm *vm = dev->vm;
    bool outside = hvi_handler_vm != vm && hvi_event_vm != vm;
    bool quiesced = false;
    if (outside) {
        pthread_mutex_lock(&vm->dev_ops_lock);
        if (dev->quiesce && !dev->quiesced) {
            dev->quiesce(dev->opaque, true);
            quiesced = true;
        }
    }
    put_grants(dev, ranges, count);
    if (outside) {
        if (quiesced)
            dev->quiesce(dev->opaque, false);
        pthread_mutex_unlock(&vm->dev_ops_lock);
    }
    return 0;
}

int hvc_device_get_grants(hvc_device *dev, hvc_memory_grant *out,
                          size_t capacity, size_t *count)
{
    if (!dev || !count || (capacity && !out))
        return hvi_error(-EINVAL, "hvc_device_get_grants: NULL argument");
    pthread_mutex_lock(&dev->grant_lock);
    size_t n = dev->nr_grants;
    for (size_t i = 0; i < n && i < capacity; i++)
        out[i] = dev->grants[i];
    pthread_mutex_unlock(&dev->grant_lock);
    *count = n;
    return 0;
}

int hvc_device_grant_refusals(hvc_device *dev, uint64_t *count)
{
    if (!dev || !count)
        return hvi_error(-EINVAL, "hvc_device_grant_refusals: NULL argument");
    *count = atomic_load(&dev->refusals);
    return 0;
}

static bool is_all(const hvc_device *dev)
{
    return dev->nr_grants == 1 && dev->grants[0].gpa == HVC_GRANT_ALL_GPA &&
           dev->grants[0].length == HVC_GRANT_ALL_LENGTH;
}

int hvi_device_check_grant(hvc_device *dev, uint64_t gpa, uint64_t len)
{
    if (!dev)
        return 0;
    bool ok = false;
    uint64_t last = gpa + (len ? len - 1 : 0);
    pthread_mutex_lock(&dev->grant_lock);
    if (last >= gpa) /* a wrapping access is in no grant */
        for (uint32_t i = 0; i < dev->nr_grants && !ok; i++) {
            const hvc_memory_grant *g = &dev->grants[i];
            ok = gpa >= g->gpa && last <= g->gpa + (g->length - 1);
        }
    pthread_mutex_unlock(&dev->grant_lock);
    if (ok)
        return 0;
    /* A guest can repeat a refused request at will: log the 1st, 2nd,
     * 4th, 8th... refusal, so the log stays bounded. */
    uint64_t n = atomic_fetch_add(&dev->refusals, 1) + 1;
    if ((n & (n - 1)) == 0)
        hvi_log(HVC_LOG_WARN,
                "%s: access to guest memory 0x%" PRIx64 "+0x%" PRIx64
                " is outside the device's grants (refusal %" PRIu64 ")",
                dev->name, gpa, len, n);
    return hvi_error(-EFAULT,
                     "device %s: guest memory 0x%" PRIx64 "+0x%" PRIx64
                     " is outside the device's grants",
                     dev->name, gpa, len);
}

int hvc_device_read(hvc_device *dev, uint64_t guest_addr, void *buf,
                    size_t length)
{
    if (!dev || (length && !buf))
        return hvi_error(-EINVAL, "hvc_device_read: NULL argument");
    int r = hvi_device_check_grant(dev, guest_addr, length);
    return r < 0 ? r : hvc_vm_read(dev->vm, guest_addr, buf, length);
}

int hvc_device_write(hvc_device *dev, uint64_t guest_addr, const void *buf,
                     size_t length)
{
    if (!dev || (length && !buf))
        return hvi_error(-EINVAL, "hvc_device_write: NULL argument");
    int r = hvi_device_check_grant(dev, guest_addr, length);
    return r < 0 ? r : hvc_vm_write(dev->vm, guest_addr, buf, length);
}

int hvc_device_gpa_to_hva(hvc_device *dev, uint64_t guest_addr, size_t length,
                          void **hva)
{
    if (!dev || !hva)
        return hvi_error(-EINVAL, "hvc_device_gpa_to_hva: NULL argument");
    int r = hvi_device_check_grant(dev, guest_addr, length);
    return r < 0 ? r : hvc_vm_gpa_to_hva(dev->vm, guest_addr, length, hva);
}

/* The record header (docs/DEVICES.md): magic, format version, header size,
 * device type, payload length, CRC32C of the payload. Little-endian. */
#define REC_MAGIC "HVDS"
#define REC_VERSION 1
/* Format 2: the payload starts with the device's grants (u32 count, u32
 * zero, count x {u64 gpa, u64 length}), then the device's own payload.
 * Written only for a device whose grants are not the default, so every
 * other record stays format 1, which readers of 1 know. */
#define REC_VERSION_GRANTS 2
#define REC_HEADER 48
#define REC_TYPE_LEN 32

int hvc_device_save_state(hvc_device *dev, void *buf, size_t capacity,
                          size_t *length)
{
    if (!dev || !length || (capacity && !buf))
        return hvi_error(-EINVAL, "hvc_device_save_state: NULL argument");
    hvc_memory_grant g[HVC_DEVICE_MAX_GRANTS];
    pthread_mutex_lock(&dev->grant_lock);
    bool all = is_all(dev);
    uint32_t ng = dev->nr_grants;
    memcpy(g, dev->grants, sizeof(g));
    pthread_mutex_unlock(&dev->grant_lock);
    size_t gsize = all ? 0 : 8 + 16 * (size_t)ng;
    size_t head = REC_HEADER + gsize;
    size_t payload = 0;
    uint8_t *out = buf;
    int r = 0;
    if (dev->ops->save_state) {
        size_t room = capacity > head ? capacity - head : 0;
        r = dev->ops->save_state(dev->opaque, room ? out + head : NULL, room,
                                 &payload);
        if (r < 0 && r != -ENOSPC)
            return r;
    }
    *length = head + payload;
    if (r == -ENOSPC || capacity < *length)
        return hvi_error(-ENOSPC,
                         "device %s: its state record needs %zu bytes, the "
                         "buffer has %zu",
                         dev->name, *length, capacity);
    if (!all) {
        uint32_t zero = 0;
        memcpy(out + REC_HEADER, &ng, 4);
        memcpy(out + REC_HEADER + 4, &zero, 4);
        for (uint32_t i = 0; i < ng; i++) {
            memcpy(out + REC_HEADER + 8 + 16 * i, &g[i].gpa, 8);
            memcpy(out + REC_HEADER + 16 + 16 * i, &g[i].length, 8);
        }
    }
    uint16_t version = all ? REC_VERSION : REC_VERSION_GRANTS,
             hsize = REC_HEADER;
    uint32_t plen = (uint32_t)(gsize + payload);
    uint32_t crc = hvi_crc32c(0, out + REC_HEADER, plen);
    memcpy(out, REC_MAGIC, 4);
    memcpy(out + 4, &version, 2);
    memcpy(out + 6, &hsize, 2);
    memset(out + 8, 0, REC_TYPE_LEN);
    strncpy((char *)out + 8, dev->ops->type, REC_TYPE_LEN - 1);
    memcpy(out + 40, &plen, 4);
    memcpy(out + 44, &crc, 4);
    return 0;
}

/* Reads the grant block of a format-2 payload into g and *n; returns its
 * size, or an error. */
static int read_grants(hvc_device *dev, const uint8_t *p, uint32_t plen,
                       hvc_memory_grant *g, uint32_t *n)
{
    uint32_t count, zero;
    if (plen < 8)
        return hvi_error(-EBADMSG,
                         "device %s: the record's grant block is cut short",
                         dev->name);
    memcpy(&count, p, 4);
    memcpy(&zero, p + 4, 4);
    if (count > HVC_DEVICE_MAX_GRANTS || zero != 0 || (plen - 8) / 16 < count)
        return hvi_error(-EBADMSG,
                         "device %s: the record's grant block (%u ranges, "
                         "reserved 0x%x, %u bytes) is impossible",
                         dev->name, count, zero, plen);
    for (uint32_t i = 0; i < count; i++) {
        memcpy(&g[i].gpa, p + 8 + 16 * i, 8);
        memcpy(&g[i].length, p + 16 + 16 * i, 8);
    }
    int r = check_grants(dev->name, g, count);
    if (r < 0)
        return hvi_error(-EBADMSG, "%s", hvc_last_error());
    *n = count;
    return (int)(8 + 16 * count);
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
    if ((version != REC_VERSION && version != REC_VERSION_GRANTS) ||
        hsize != REC_HEADER)
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
    /* Format 1 carries no grants: the device keeps the ones it has. */
    const uint8_t *p = in + REC_HEADER;
    hvc_memory_grant g[HVC_DEVICE_MAX_GRANTS], old[HVC_DEVICE_MAX_GRANTS];
    uint32_t ng = 0, nold;
    if (version == REC_VERSION_GRANTS) {
        int skip = read_grants(dev, p, plen, g, &ng);
        if (skip < 0)
            return skip;
        p += skip;
        plen -= (uint32_t)skip;
    }
    if (!dev->ops->load_state && plen != 0)
        return hvi_error(-EBADMSG,
                         "device %s keeps no state, yet the record has %u "
                         "bytes",
                         dev->name, plen);
    /* The grants apply before the device looks at its queues again. */
    pthread_mutex_lock(&dev->grant_lock);
    nold = dev->nr_grants;
    memcpy(old, dev->grants, sizeof(old));
    pthread_mutex_unlock(&dev->grant_lock);
    if (version == REC_VERSION_GRANTS)
        put_grants(dev, g, ng);
    int r =
        dev->ops->load_state ? dev->ops->load_state(dev->opaque, p, plen) : 0;
    if (r < 0 && version == REC_VERSION_GRANTS)
        put_grants(dev, old, nold);
    return r;
}
