/* The state a stream carries, reached through the core: migration and
 * devices never call a backend op or walk the vCPU array themselves. Each
 * call holds vm->lock, so the VM cannot resume (and no vCPU appear or go)
 * while a blob is read or written; reads and writes need the VM paused or
 * the vCPU idle. */
#include "internal.h"

#include <errno.h>

int hvi_state_supported(const hvc_vm *vm)
{
    const hvc_backend_ops *ops = vm->ops;
    if (ops->version >= 3 && ops->vcpu_flush && ops->vcpu_state_size &&
        ops->vcpu_get_state && ops->vcpu_set_state && ops->vm_state_size &&
        ops->vm_get_state && ops->vm_set_state)
        return 0;
    return hvi_error(-ENOTSUP, "backend %s cannot save or restore VM state",
                     ops->name);
}

const char *hvi_vm_backend(const hvc_vm *vm)
{
    return vm->ops->name;
}

uint32_t hvi_vm_flags(const hvc_vm *vm)
{
    return vm->opts.flags;
}

uint32_t hvi_vm_max_vcpus(const hvc_vm *vm)
{
    return vm->opts.max_vcpus;
}

uint32_t hvi_vm_vcpu_ids(hvc_vm *vm, uint32_t *ids, uint32_t capacity)
{
    uint32_t n = 0;
    pthread_mutex_lock(&vm->lock);
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
        if (vm->vcpus[i]) {
            if (n < capacity)
                ids[n] = i;
            n++;
        }
    pthread_mutex_unlock(&vm->lock);
    return n;
}

hvc_vcpu *hvi_vm_vcpu(hvc_vm *vm, uint32_t id)
{
    pthread_mutex_lock(&vm->lock);
    hvc_vcpu *v = id < vm->opts.max_vcpus ? vm->vcpus[id] : NULL;
    pthread_mutex_unlock(&vm->lock);
    return v;
}

/* Caller holds vm->lock. */
static int still(const hvc_vcpu *v)
{
    if (atomic_load(&v->vm->pause_depth) > 0 ||
        atomic_load(&((hvc_vcpu *)v)->state) == HVI_VCPU_IDLE)
        return 0;
    return hvi_error(-EBUSY,
                     "vCPU %u is running: pause the VM to read or write its "
                     "state",
                     v->id);
}

int hvi_vcpu_set_runnable(hvc_vcpu *v)
{
    return hvi_bk_set_runnable(v);
}

int hvi_vcpu_take_io(hvc_vcpu *v)
{
    pthread_mutex_lock(&v->vm->lock);
    int r = still(v);
    if (r == 0)
        r = hvi_vcpu_flush(v);
    pthread_mutex_unlock(&v->vm->lock);
    return r;
}

int hvi_vcpu_state_size(hvc_vcpu *v, uint32_t kind, size_t *n)
{
    pthread_mutex_lock(&v->vm->lock);
    int r = kind == HVI_STATE_FPU ? hvi_bk_fpu_size(v, n)
                                  : hvi_bk_state_size(v, kind, n);
    pthread_mutex_unlock(&v->vm->lock);
    return r;
}

int hvi_vcpu_state_get(hvc_vcpu *v, uint32_t kind, void *buf, size_t n)
{
    pthread_mutex_lock(&v->vm->lock);
    int r = still(v);
    if (r == 0)
        r = kind == HVI_STATE_FPU ? hvi_bk_get_fpu(v, buf, n)
                                  : hvi_bk_get_state(v, kind, buf, n);
    pthread_mutex_unlock(&v->vm->lock);
    return r;
}

int hvi_vcpu_state_set(hvc_vcpu *v, uint32_t kind, const void *buf, size_t n)
{
    pthread_mutex_lock(&v->vm->lock);
    int r = still(v);
    size_t want = 0;
    if (r == 0 && kind == HVI_STATE_FPU &&
        (r = hvi_bk_fpu_size(v, &want)) == 0 && n != want)
        r = hvi_error(-EBADMSG, "XSAVE state of %zu bytes, this host's is %zu",
                      n, want);
    if (r == 0)
        r = kind == HVI_STATE_FPU ? hvi_bk_set_fpu(v, buf, n)
                                  : hvi_bk_set_state(v, kind, buf, n);
    pthread_mutex_unlock(&v->vm->lock);
    return r;
}

/* Caller holds vm->lock: the interrupt controllers change under running
 * vCPUs, so a read or write needs them all stopped. */
static int all_still(hvc_vm *vm)
{
    if (atomic_load(&vm->pause_depth) > 0)
        return 0;
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
        if (vm->vcpus[i] && atomic_load(&vm->vcpus[i]->state) != HVI_VCPU_IDLE)
            return hvi_error(-EBUSY,
                             "vCPU %u is running: pause the VM to read or "
                             "write its interrupt controllers",
                             i);
    return 0;
}

int hvi_vm_state_size(hvc_vm *vm, uint32_t kind, size_t *n)
{
    pthread_mutex_lock(&vm->lock);
    int r = vm->ops->vm_state_size(vm->priv, kind, n);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int hvi_vm_state_get(hvc_vm *vm, uint32_t kind, void *buf, size_t n)
{
    pthread_mutex_lock(&vm->lock);
    int r = all_still(vm);
    if (r == 0)
        r = vm->ops->vm_get_state(vm->priv, kind, buf, n);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int hvi_vm_state_set(hvc_vm *vm, uint32_t kind, const void *buf, size_t n)
{
    pthread_mutex_lock(&vm->lock);
    int r = all_still(vm);
    if (r == 0)
        r = vm->ops->vm_set_state(vm->priv, kind, buf, n);
    pthread_mutex_unlock(&vm->lock);
    return r;
}
