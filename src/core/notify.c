/* Interrupt eventfds and doorbells: the paths that let a device raise an
 * interrupt and a guest ring a device without a trip through the VMM's
 * run loop (KVM's irqfd and ioeventfd). Where the backend has neither
 * (vm_irqfd, vm_ioeventfd NULL), the core emulates them (core17): the
 * event thread watches an interrupt eventfd and raises an edge on its
 * line; a doorbell is matched against the write exits in the run loop
 * (hvi_doorbell_match, before the I/O handlers) and signals its eventfd. */
#include "internal.h"

#include "../os/os.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct hvi_doorbell {
    hvc_vm *vm;
    hvc_doorbell db;
    int fd;
    hvc_doorbell_fn fn;
    void *opaque;
    struct hvi_doorbell *next;
};

/* The irqfd fallback, on the event thread: KVM_IRQFD raises an edge (the
 * line up, then down), so does this. */
static void irq_signalled(void *opaque, int fd, uint32_t events)
{
    hvc_vm *vm = opaque;
    (void)events;
    if (!hvi_os_notifier_drain(fd))
        return;
    pthread_mutex_lock(&vm->dev_lock);
    uint32_t gsi = UINT32_MAX;
    for (uint32_t g = 0; g < vm->nr_irqs; g++)
        if (vm->irq_fd[g] == fd)
            gsi = g;
    pthread_mutex_unlock(&vm->dev_lock);
    if (gsi == UINT32_MAX)
        return;
    atomic_fetch_add(&vm->fallback_irqs, 1);
    if (vm->ops->vm_set_irq(vm->priv, gsi, 1) < 0 ||
        vm->ops->vm_set_irq(vm->priv, gsi, 0) < 0)
        hvi_log(HVC_LOG_ERROR, "interrupt eventfd of GSI %u: %s", gsi,
                hvc_last_error());
}

static int irq_eventfd_emulated(hvc_vm *vm, uint32_t gsi, int *fd)
{
    pthread_mutex_lock(&vm->dev_lock);
    int have = vm->irq_fd[gsi];
    pthread_mutex_unlock(&vm->dev_lock);
    if (have >= 0) {
        *fd = have;
        return 0;
    }
    /* Watched before it is published, without dev_lock (watching takes
     * watch_lock; both are leaves and never nest). */
    int e = -1;
    int r = hvi_os_notifier_create(&e);
    if (r < 0)
        return r;
    if ((r = hvc_vm_watch_fd(vm, e, HVC_FD_READABLE, irq_signalled, vm)) < 0) {
        hvi_os_notifier_close(e);
        return r;
    }
    pthread_mutex_lock(&vm->dev_lock);
    have = vm->irq_fd[gsi];
    if (have < 0)
        vm->irq_fd[gsi] = e;
    pthread_mutex_unlock(&vm->dev_lock);
    if (have >= 0) { /* another thread was first */
        hvc_vm_unwatch_fd(vm, e);
        hvi_os_notifier_close(e);
        e = have;
    }
    *fd = e;
    return 0;
}

int hvc_vm_irq_eventfd(hvc_vm *vm, uint32_t gsi, int *fd)
{
    if (!vm || !fd)
        return hvi_error(-EINVAL, "hvc_vm_irq_eventfd: NULL argument");
    if (gsi >= vm->nr_irqs)
        return hvi_error(-EINVAL, "GSI %u is out of range (0..%u)", gsi,
                         vm->nr_irqs - 1);
    if (vm->opts.flags & HVC_VM_NO_IRQCHIP)
        return hvi_error(-ENOTSUP,
                         "GSI %u: no interrupt eventfds without "
                         "an in-kernel interrupt controller",
                         gsi);
    if (!vm->ops->vm_irqfd)
        return irq_eventfd_emulated(vm, gsi, fd);
    pthread_mutex_lock(&vm->dev_lock);
    int r = 0;
    if (vm->irq_fd[gsi] < 0) {
        int e = -1;
        r = hvi_os_notifier_create(&e);
        if (r == 0 && (r = vm->ops->vm_irqfd(vm->priv, e, gsi, 1)) < 0)
            hvi_os_notifier_close(e);
        else if (r == 0)
            vm->irq_fd[gsi] = e;
    }
    if (r == 0)
        *fd = vm->irq_fd[gsi];
    pthread_mutex_unlock(&vm->dev_lock);
    return r;
}

static bool same(const hvc_doorbell *a, const hvc_doorbell *b)
{
    return a->space == b->space && a->addr == b->addr &&
           a->length == b->length && a->flags == b->flags &&
           (!(a->flags & HVC_DOORBELL_DATAMATCH) || a->data == b->data);
}

static void rang(void *opaque, int fd, uint32_t events)
{
    struct hvi_doorbell *d = opaque;
    (void)events;
    if (hvi_os_notifier_drain(fd))
        d->fn(d->opaque, &d->db);
}

/* Caller holds dev_lock. */
static bool find_same(hvc_vm *vm, const hvc_doorbell *db)
{
    for (struct hvi_doorbell *o = vm->doorbells; o; o = o->next)
        if (same(&o->db, db))
            return true;
    return false;
}

static int duplicate(const hvc_doorbell *db)
{
    return hvi_error(-EEXIST, "a doorbell at 0x%" PRIx64 " exists", db->addr);
}

/* fn NULL: nobody watches the notifier; its descriptor goes to *fd_out. */
static int add_doorbell(hvc_vm *vm, const hvc_doorbell *db, hvc_doorbell_fn fn,
                        void *opaque, int *fd_out)
{
    if ((db->space != HVC_IO_PIO && db->space != HVC_IO_MMIO) ||
        (db->length != 1 && db->length != 2 && db->length != 4 &&
         db->length != 8) ||
        (db->flags & ~(uint32_t)HVC_DOORBELL_DATAMATCH) || db->reserved ||
        (db->space == HVC_IO_PIO && db->addr > 0xffff))
        return hvi_error(-EINVAL,
                         "doorbell at 0x%" PRIx64 ": space %u, length %u or "
                         "flags 0x%x are invalid",
                         db->addr, db->space, db->length, db->flags);
    struct hvi_doorbell *d = calloc(1, sizeof(*d));
    if (!d)
        return hvi_error(-ENOMEM, "out of memory adding a doorbell");
    *d = (struct hvi_doorbell){vm, *db, -1, fn, opaque, NULL};
    /* The notifier is registered and watched without dev_lock: watching
     * takes ev_lock, which comes before dev_lock (internal.h). A duplicate
     * is looked for before, for a clear message, and again when linking. */
    pthread_mutex_lock(&vm->dev_lock);
    int r = find_same(vm, db) ? duplicate(db) : 0;
    pthread_mutex_unlock(&vm->dev_lock);
    if (r == 0)
        r = hvi_os_notifier_create(&d->fd);
    bool registered = false, watched = false;
    if (r == 0 && vm->ops->vm_ioeventfd)
        r = vm->ops->vm_ioeventfd(
            vm->priv, d->fd, db->space, db->addr, db->length,
            (db->flags & HVC_DOORBELL_DATAMATCH) != 0, db->data, 1);
    registered = r == 0;
    if (r == 0 && fn)
        r = hvc_vm_watch_fd(vm, d->fd, HVC_FD_READABLE, rang, d);
    watched = fn && r == 0;
    if (r == 0) {
        pthread_mutex_lock(&vm->dev_lock);
        if (find_same(vm, db)) {
            r = duplicate(db);
        } else {
            d->next = vm->doorbells;
            vm->doorbells = d;
            if (!vm->ops->vm_ioeventfd)
                atomic_fetch_add(&vm->nr_emulated_doorbells, 1);
            if (fd_out)
                *fd_out = d->fd;
        }
        pthread_mutex_unlock(&vm->dev_lock);
    }
    if (r < 0) {
        if (watched)
            hvc_vm_unwatch_fd(vm, d->fd);
        if (registered && vm->ops->vm_ioeventfd)
            vm->ops->vm_ioeventfd(
                vm->priv, d->fd, db->space, db->addr, db->length,
                (db->flags & HVC_DOORBELL_DATAMATCH) != 0, db->data, 0);
        if (d->fd >= 0)
            hvi_os_notifier_close(d->fd);
        free(d);
    }
    return r;
}

int hvc_vm_add_doorbell(hvc_vm *vm, const hvc_doorbell *db, hvc_doorbell_fn fn,
                        void *opaque)
{
    if (!vm || !db || !fn)
        return hvi_error(-EINVAL, "hvc_vm_add_doorbell: NULL argument");
    return add_doorbell(vm, db, fn, opaque, NULL);
}

int hvi_vm_add_doorbell_fd(hvc_vm *vm, const hvc_doorbell *db, int *fd)
{
    return add_doorbell(vm, db, NULL, NULL, fd);
}

static void release(hvc_vm *vm, struct hvi_doorbell *d)
{
    if (d->fn)
        hvc_vm_unwatch_fd(vm, d->fd); /* -ENOENT once the loop has stopped */
    if (vm->ops->vm_ioeventfd)
        vm->ops->vm_ioeventfd(
            vm->priv, d->fd, d->db.space, d->db.addr, d->db.length,
            (d->db.flags & HVC_DOORBELL_DATAMATCH) != 0, d->db.data, 0);
    hvi_os_notifier_close(d->fd);
    free(d);
}

int hvc_vm_remove_doorbell(hvc_vm *vm, const hvc_doorbell *db)
{
    if (!vm || !db)
        return hvi_error(-EINVAL, "hvc_vm_remove_doorbell: NULL argument");
    pthread_mutex_lock(&vm->dev_lock);
    struct hvi_doorbell **p = &vm->doorbells;
    while (*p && !same(&(*p)->db, db))
        p = &(*p)->next;
    struct hvi_doorbell *d = *p;
    if (d) {
        *p = d->next;
        if (!vm->ops->vm_ioeventfd)
            atomic_fetch_sub(&vm->nr_emulated_doorbells, 1);
    }
    pthread_mutex_unlock(&vm->dev_lock);
    if (!d)
        return hvi_error(-ENOENT, "no doorbell at 0x%" PRIx64, db->addr);
    release(vm, d);
    return 0;
}

/* A write the guest made, in the run loop: the ioeventfd fallback. The
 * doorbell's eventfd is signalled and the access is claimed, as KVM does
 * it before the exit would reach userspace. Cheap without emulated
 * doorbells. */
bool hvi_doorbell_match(hvc_vm *vm, int space, uint64_t addr, uint32_t size,
                        const void *data)
{
    if (!atomic_load_explicit(&vm->nr_emulated_doorbells,
                              memory_order_relaxed))
        return false;
    uint64_t value = 0;
    if (size <= sizeof(value))
        memcpy(&value, data, size); /* little-endian guest and host */
    int fd = -1;
    pthread_mutex_lock(&vm->dev_lock);
    for (struct hvi_doorbell *d = vm->doorbells; d; d = d->next) {
        const hvc_doorbell *db = &d->db;
        if (db->space == (uint32_t)space && db->addr == addr &&
            db->length == size &&
            (!(db->flags & HVC_DOORBELL_DATAMATCH) || db->data == value)) {
            fd = d->fd;
            break;
        }
    }
    if (fd >= 0) /* under dev_lock: a removal cannot close it meanwhile */
        hvi_os_notifier_signal(fd);
    pthread_mutex_unlock(&vm->dev_lock);
    if (fd < 0)
        return false;
    atomic_fetch_add(&vm->fallback_doorbells, 1);
    return true;
}

void hvi_notify_free(hvc_vm *vm)
{
    while (vm->doorbells) {
        struct hvi_doorbell *d = vm->doorbells;
        vm->doorbells = d->next;
        release(vm, d);
    }
    for (uint32_t g = 0; vm->irq_fd && g < vm->nr_irqs; g++) {
        if (vm->irq_fd[g] >= 0) {
            if (vm->ops->vm_irqfd)
                vm->ops->vm_irqfd(vm->priv, vm->irq_fd[g], g, 0);
            else /* the event thread has stopped already */
                hvc_vm_unwatch_fd(vm, vm->irq_fd[g]);
            hvi_os_notifier_close(vm->irq_fd[g]);
            vm->irq_fd[g] = -1;
        }
    }
}
