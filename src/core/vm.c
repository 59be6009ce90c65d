/* VM lifetime, pause/resume and interrupt injection. */
#include "internal.h"
#include "tsc_internal.h"

#include "../os/os.h"

#include <errno.h>
#include <stdlib.h>

_Thread_local hvc_vm *hvi_handler_vm;

static int normalise_options(hvc_hypervisor *hv, const hvc_vm_options *in,
                             hvc_vm_options *out)
{
    hvc_vm_options defaults = HVC_VM_OPTIONS_INIT;
    *out = defaults;
    if (in) {
        int r = hvi_copy_options(out, sizeof(*out), in,
                                 offsetof(hvc_vm_options, flags) +
                                     sizeof(in->flags),
                                 "hvc_vm_options");
        if (r < 0)
            return r;
        out->size = sizeof(*out);
    }
    if (out->flags & ~(uint32_t)(HVC_VM_NO_IRQCHIP | HVC_VM_DIRTY_RING))
        return hvi_error(-EINVAL, "hvc_vm_options.flags 0x%x has unknown bits",
                         out->flags);
    if (out->flags & HVC_VM_DIRTY_RING) {
        uint64_t modes = 0;
        int r = hv->ops->get_cap(hv->priv, HVC_CAP_DIRTY_TRACKING, &modes);
        if (r < 0)
            return r;
        if (!(modes & HVC_DIRTY_RING) || !hv->ops->vm_dirty_start)
            return hvi_error(-ENOTSUP,
                             "HVC_VM_DIRTY_RING: backend %s has no dirty ring",
                             hv->ops->name);
    }
    uint64_t max = 0;
    int r = hv->ops->get_cap(hv->priv, HVC_CAP_MAX_VCPUS, &max);
    if (r < 0)
        return r;
    if (out->max_vcpus == 0)
        out->max_vcpus = (uint32_t)max;
    else if (out->max_vcpus > max)
        return hvi_error(-EINVAL,
                         "hvc_vm_options.max_vcpus %u exceeds the backend's "
                         "limit of %llu",
                         out->max_vcpus, (unsigned long long)max);
    if (out->kick_signal == 0)
        out->kick_signal = hvi_os_kick_signal_default();
    else if (!hvi_os_kick_signal_usable(out->kick_signal))
        return hvi_error(-EINVAL,
                         "hvc_vm_options.kick_signal %d is not a usable signal",
                         out->kick_signal);
    return 0;
}

int hvc_vm_create(hvc_hypervisor *hv, const hvc_vm_options *opts, hvc_vm **out)
{
    if (!hv || !out)
        return hvi_error(-EINVAL, "hvc_vm_create: NULL %s",
                         hv ? "out" : "hypervisor");
    int r = hvi_vm_count_take(hv); /* HVC_CAP_MAX_VMS */
    if (r < 0)
        return r;
    hvc_vm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        hvi_vm_count_put(hv);
        return hvi_error(-ENOMEM, "out of memory creating a VM");
    }
    r = normalise_options(hv, opts, &vm->opts);
    if (r < 0)
        goto fail;
    uint64_t slots = 0, bits = 0, irqs = 0;
    if ((r = hv->ops->get_cap(hv->priv, HVC_CAP_MAX_MEMORY_REGIONS, &slots)) <
            0 ||
        (r = hv->ops->get_cap(hv->priv, HVC_CAP_PHYS_ADDR_BITS, &bits)) < 0 ||
        (r = hv->ops->get_cap(hv->priv, HVC_CAP_IRQ_LINES, &irqs)) < 0)
        goto fail;
    if (irqs == 0 || irqs > 1024) {
        r = hvi_error(-EINVAL, "the %s backend reports %llu interrupt lines",
                      hv->ops->name, (unsigned long long)irqs);
        goto fail;
    }
    vm->nr_irqs = (uint32_t)irqs;
    vm->max_slots = (uint32_t)slots;
    vm->max_gpa = bits >= 64 ? UINT64_MAX : (1ull << bits);
    r = -ENOMEM;
    vm->slot_used = calloc(vm->max_slots ? vm->max_slots : 1, 1);
    vm->vcpus = calloc(vm->opts.max_vcpus, sizeof(*vm->vcpus));
    vm->irq_fd = malloc(vm->nr_irqs * sizeof(*vm->irq_fd));
    if (!vm->slot_used || !vm->vcpus || !vm->irq_fd) {
        hvi_error(r, "out of memory creating a VM");
        goto fail;
    }
    if ((r = hvi_tsc_init(vm)) < 0)
        goto fail;
    r = hv->ops->vm_create(hv->priv, &vm->opts, &vm->priv);
    if (r < 0)
        goto fail;
    vm->hv = hv;
    vm->ops = hv->ops;
    pthread_rwlock_init(&vm->mem_lock, NULL);
    pthread_mutex_init(&vm->dirty_lock, NULL);
    pthread_rwlock_init(&vm->io_lock, NULL);
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->cond, NULL);
    pthread_mutex_init(&vm->dev_lock, NULL);
    pthread_mutex_init(&vm->dev_ops_lock, NULL);
    for (uint32_t g = 0; g < vm->nr_irqs; g++)
        vm->irq_fd[g] = -1;
    pthread_mutex_init(&vm->ev_lock, NULL);
    pthread_mutex_init(&vm->watch_lock, NULL);
    atomic_init(&vm->pause_depth, 0);
    atomic_init(&vm->active, 0);
    atomic_fetch_add(&hv->nr_vms, 1);
    *out = vm;
    return 0;
fail:
    hvi_vm_count_put(hv);
    hvi_tsc_free(vm);
    free(vm->slot_used);
    free(vm->vcpus);
    free(vm->irq_fd);
    free(vm);
    return r;
}

int hvc_vm_destroy(hvc_vm *vm)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_destroy: VM is NULL");
    if (hvi_handler_vm == vm)
        return hvi_error(-EDEADLK, "hvc_vm_destroy called from an I/O handler "
                                   "of the same VM");
    if (hvi_event_vm == vm)
        return hvi_error(-EDEADLK, "hvc_vm_destroy called from the VM's own "
                                   "event thread (an fd-watch or doorbell "
                                   "callback)");
    pthread_mutex_lock(&vm->lock);
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++) {
        if (vm->vcpus[i] &&
            atomic_load(&vm->vcpus[i]->state) != HVI_VCPU_IDLE) {
            pthread_mutex_unlock(&vm->lock);
            return hvi_error(-EBUSY,
                             "vCPU %u is still running; stop it before "
                             "destroying the VM",
                             i);
        }
    }
    pthread_mutex_unlock(&vm->lock);
    /* Input callbacks first (they may poke devices), then devices, then
     * vCPUs and memory. */
    hvi_event_stop(vm);
    hvi_postcopy_free(vm); /* its threads may serve device faults */
    hvi_devices_free(vm);
    hvi_notify_free(vm);
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
        if (vm->vcpus[i])
            hvc_vcpu_destroy(vm->vcpus[i]);
    hvi_memory_free_all(vm);
    hvi_io_free(vm);
    vm->ops->vm_destroy(vm->priv);
    atomic_fetch_sub(&vm->hv->nr_vms, 1);
    hvi_vm_count_put(vm->hv);
    pthread_rwlock_destroy(&vm->mem_lock);
    pthread_mutex_destroy(&vm->dirty_lock);
    pthread_rwlock_destroy(&vm->io_lock);
    pthread_mutex_destroy(&vm->lock);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->dev_lock);
    pthread_mutex_destroy(&vm->dev_ops_lock);
    pthread_mutex_destroy(&vm->ev_lock);
    pthread_mutex_destroy(&vm->watch_lock);
    hvi_tsc_free(vm);
    free(vm->slot_used);
    free(vm->vcpus);
    free(vm->irq_fd);
    free(vm);
    return 0;
}

/* Wakes the vCPUs parked by a pause, so they read pause_depth again.
 * Caller holds vm->lock. */
static void wake_parked(hvc_vm *vm)
{
    pthread_cond_broadcast(&vm->cond);
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
        if (vm->vcpus[i])
            hvi_vcpu_wake_parked(vm->vcpus[i]);
}

int hvc_vm_pause(hvc_vm *vm)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_pause: VM is NULL");
    if (hvi_handler_vm == vm)
        return hvi_error(-EDEADLK, "hvc_vm_pause called from an I/O handler "
                                   "of the same VM");
    if (hvi_event_vm == vm)
        return hvi_error(-EDEADLK,
                         "hvc_vm_pause called from the VM's event thread (an "
                         "fd-watch or doorbell callback): a vCPU may be "
                         "waiting for that callback to return");
    pthread_mutex_lock(&vm->lock);
    if (atomic_fetch_add(&vm->pause_depth, 1) == 0)
        for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
            if (vm->vcpus[i])
                hvi_vcpu_interrupt(vm->vcpus[i]);
    while (atomic_load(&vm->active) > 0)
        pthread_cond_wait(&vm->cond, &vm->lock);
    /* The guest's clocks stop here, as far as a save or the freeze policy
     * is concerned (tsc_pause.c). If that fails, the pause is undone. */
    int r = hvi_tsc_paused(vm);
    if (r < 0 && atomic_fetch_sub(&vm->pause_depth, 1) == 1)
        wake_parked(vm);
    pthread_mutex_unlock(&vm->lock);
    /* Then the devices that work on threads of their own finish the
     * requests they started (virtio-blk), so that nothing a save reads is
     * half-done. Without vm->lock: that may take as long as a slow disk,
     * and a vCPU leaving its run needs vm->lock meanwhile. */
    if (r == 0)
        hvi_devices_quiesce(vm, true);
    return r;
}

int hvc_vm_resume(hvc_vm *vm)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_resume: VM is NULL");
    if (atomic_load(&vm->migrated_away))
        return hvi_error(-EPERM, "hvc_vm_resume: the guest was migrated to "
                                 "another VM and never runs here again");
    if (atomic_load(&vm->postcopy_failed))
        return hvi_error(-EPERM, "hvc_vm_resume: post-copy migration failed "
                                 "and guest memory was lost; the guest "
                                 "cannot run");
    /* The sharing guard (audit.c) audits before the outermost resume,
     * outside vm->lock, which ranks below the mem_lock it takes. */
    int g = atomic_load(&vm->pause_depth) == 1 ? hvi_audit_resume_check(vm) : 0;
    if (g < 0)
        return g;
    pthread_mutex_lock(&vm->lock);
    int depth = atomic_load(&vm->pause_depth);
    if (depth == 0) {
        pthread_mutex_unlock(&vm->lock);
        return hvi_error(-EINVAL, "hvc_vm_resume: the VM is not paused");
    }
    /* The TSC pause policy applies before any vCPU runs again; if it
     * cannot, the VM stays paused (tsc_pause.c). */
    int r = depth == 1 ? hvi_tsc_resuming(vm) : 0;
    if (r < 0) {
        pthread_mutex_unlock(&vm->lock);
        return r;
    }
    atomic_store(&vm->pause_depth, depth - 1);
    if (depth == 1)
        wake_parked(vm);
    pthread_mutex_unlock(&vm->lock);
    if (depth == 1)
        hvi_devices_quiesce(vm, false);
    return 0;
}

int hvc_vm_is_paused(const hvc_vm *vm)
{
    return vm ? atomic_load(&((hvc_vm *)vm)->pause_depth) > 0 : 0;
}

uint32_t hvi_vm_irq_lines(const hvc_vm *vm)
{
    return vm->nr_irqs;
}

int hvc_vm_set_irq(hvc_vm *vm, uint32_t gsi, int level)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_set_irq: VM is NULL");
    if (gsi >= vm->nr_irqs)
        return hvi_error(-EINVAL,
                         "hvc_vm_set_irq: GSI %u is out of range (0..%u)", gsi,
                         vm->nr_irqs - 1);
    if (vm->opts.flags & HVC_VM_NO_IRQCHIP)
        return hvi_error(-ENOTSUP,
                         "hvc_vm_set_irq(gsi %u): the VM was created "
                         "with HVC_VM_NO_IRQCHIP",
                         gsi);
    if (level != 0 && level != 1)
        return hvi_error(-EINVAL,
                         "hvc_vm_set_irq(gsi %u): level %d is not 0 "
                         "or 1",
                         gsi, level);
    return vm->ops->vm_set_irq(vm->priv, gsi, level);
}

int hvc_vm_send_msi(hvc_vm *vm, uint64_t address, uint32_t data)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_send_msi: VM is NULL");
    if (vm->opts.flags & HVC_VM_NO_IRQCHIP)
        return hvi_error(-ENOTSUP, "hvc_vm_send_msi: the VM was created with "
                                   "HVC_VM_NO_IRQCHIP");
    return vm->ops->vm_send_msi(vm->priv, address, data);
}
