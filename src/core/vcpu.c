/* vCPU lifetime, the run loop, kicks and pause parking. */
#include "internal.h"
#include "tsc_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* On the vCPU's thread (hvi_vcpu_call), with vm->lock held by the
 * creator. */
static int backend_create(hvc_vcpu *vcpu, void *arg)
{
    (void)arg;
    hvc_vm *vm = vcpu->vm;
    int r = vm->ops->vcpu_create(vm->priv, vcpu->id, &vcpu->priv);
    if (r < 0)
        return r;
    /* Joins the TSC offset the other vCPUs share (tsc_offset.c). */
    if ((r = hvi_tsc_vcpu_created(vcpu)) < 0)
        vm->ops->vcpu_destroy(vcpu->priv);
    return r;
}

static int backend_destroy(hvc_vcpu *vcpu, void *arg)
{
    (void)arg;
    vcpu->vm->ops->vcpu_destroy(vcpu->priv);
    return 0;
}

int hvc_vcpu_create(hvc_vm *vm, uint32_t id, hvc_vcpu **out)
{
    if (!vm || !out)
        return hvi_error(-EINVAL, "hvc_vcpu_create: NULL %s",
                         vm ? "out" : "VM");
    if (id >= vm->opts.max_vcpus)
        return hvi_error(-EINVAL,
                         "vCPU id %u is out of range (the VM allows "
                         "ids below %u)",
                         id, vm->opts.max_vcpus);
    hvc_vcpu *vcpu = calloc(1, sizeof(*vcpu));
    if (!vcpu)
        return hvi_error(-ENOMEM, "out of memory creating vCPU %u", id);
    vcpu->vm = vm;
    vcpu->id = id;
    atomic_init(&vcpu->state, HVI_VCPU_IDLE);
    atomic_init(&vcpu->kick_pending, 0);
    atomic_init(&vcpu->rekick, 0);
    int r = hvi_os_wake_init(&vcpu->parked);
    if (r < 0) {
        free(vcpu);
        return r;
    }

    /* A thread-bound backend's vCPU is created, run and destroyed on a
     * thread of its own (vcpu_forward.c), started here. */
    if (vm->ops->flags & HVC_BACKEND_VCPU_THREAD_BOUND) {
        r = hvi_vcpu_home_start(vcpu);
        if (r < 0) {
            hvi_os_wake_destroy(&vcpu->parked);
            free(vcpu);
            return r;
        }
    }
    pthread_mutex_lock(&vm->lock);
    if (vm->vcpus[id])
        r = hvi_error(-EEXIST, "vCPU id %u already exists in this VM", id);
    else if ((r = hvi_vcpu_call(vcpu, backend_create, NULL)) == 0) {
        vm->vcpus[id] = vcpu;
        vm->nr_vcpus++;
    }
    pthread_mutex_unlock(&vm->lock);
    if (r < 0) {
        hvi_vcpu_home_stop(vcpu);
        hvi_os_wake_destroy(&vcpu->parked);
        free(vcpu);
        return r;
    }
    *out = vcpu;
    return 0;
}

int hvc_vcpu_destroy(hvc_vcpu *vcpu)
{
    if (!vcpu)
        return hvi_error(-EINVAL, "hvc_vcpu_destroy: vCPU is NULL");
    hvc_vm *vm = vcpu->vm;
    if (vcpu->home && hvi_vcpu_on_home(vcpu)) /* cannot join itself */
        return hvi_error(-EDEADLK,
                         "vCPU %u cannot be destroyed from its own thread",
                         vcpu->id);
    pthread_mutex_lock(&vm->lock);
    if (atomic_load(&vcpu->state) != HVI_VCPU_IDLE) {
        pthread_mutex_unlock(&vm->lock);
        return hvi_error(-EBUSY, "vCPU %u is running; it cannot be destroyed",
                         vcpu->id);
    }
    vm->vcpus[vcpu->id] = NULL;
    vm->nr_vcpus--;
    pthread_mutex_unlock(&vm->lock);
    hvi_vcpu_call(vcpu, backend_destroy, NULL);
    hvi_vcpu_home_stop(vcpu);
    hvi_os_wake_destroy(&vcpu->parked);
    free(vcpu);
    return 0;
}

int hvc_vm_get_vcpu(hvc_vm *vm, uint32_t id, hvc_vcpu **out)
{
    if (!vm || !out)
        return hvi_error(-EINVAL, "hvc_vm_get_vcpu: NULL %s",
                         vm ? "out" : "VM");
    pthread_mutex_lock(&vm->lock);
    hvc_vcpu *v = id < vm->opts.max_vcpus ? vm->vcpus[id] : NULL;
    pthread_mutex_unlock(&vm->lock);
    if (!v)
        return hvi_error(-ENOENT, "the VM has no vCPU %u", id);
    *out = v;
    return 0;
}

uint32_t hvc_vm_vcpu_count(hvc_vm *vm)
{
    if (!vm)
        return 0;
    pthread_mutex_lock(&vm->lock);
    uint32_t n = vm->nr_vcpus;
    pthread_mutex_unlock(&vm->lock);
    return n;
}

uint32_t hvc_vcpu_id(const hvc_vcpu *vcpu)
{
    return vcpu ? vcpu->id : UINT32_MAX;
}

hvc_vm *hvc_vcpu_vm(const hvc_vcpu *vcpu)
{
    return vcpu ? vcpu->vm : NULL;
}

int hvc_vcpu_set_user_data(hvc_vcpu *vcpu, void *data)
{
    if (!vcpu)
        return hvi_error(-EINVAL, "hvc_vcpu_set_user_data: vCPU is NULL");
    vcpu->user_data = data;
    return 0;
}

void *hvc_vcpu_user_data(const hvc_vcpu *vcpu)
{
    return vcpu ? vcpu->user_data : NULL;
}

const hvc_exit *hvc_vcpu_get_exit(const hvc_vcpu *vcpu)
{
    return vcpu ? &vcpu->exit : NULL;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    sched_yield();
#endif
}

/* Takes the runner out of the guest, after the caller has set the flag
 * that says why (kick_pending, pause_depth). Lock-free and wait-free
 * towards other kickers, so it is async-signal-safe (when the backend's
 * vcpu_kick is).
 *
 * Why no request is lost: all atomics are sequentially consistent. A
 * runner reads the flags after it leaves STARTING and after each guest
 * exit, and a vcpu_kick() that starts after the flag was set makes the
 * next or current guest entry return. So a caller that sees STARTING or
 * IDLE can leave: the runner will read its flag. One that sees KICKING
 * sets rekick; the kicker clears rekick before its own vcpu_kick() (which
 * covers every flag set before that) and reads it again after it stored
 * RUNNING, so a rekick set while it was KICKING makes it kick again. A
 * runner that is leaving hvc_vcpu_run() enters the guest no more in this
 * run and reads the flags at the start of the next, so kicks skip it:
 * otherwise a kicker in a loop could keep it in KICKING for ever. */
void hvi_vcpu_interrupt(hvc_vcpu *vcpu)
{
    atomic_store(&vcpu->rekick, 1);
    for (;;) {
        if (atomic_load(&vcpu->leaving))
            return; /* flags are read again at its next run */
        int s = HVI_VCPU_RUNNING;
        if (!atomic_compare_exchange_strong(&vcpu->state, &s, HVI_VCPU_KICKING))
            return; /* IDLE, STARTING, or another kicker will kick again */
        atomic_store(&vcpu->rekick, 0);
        vcpu->vm->ops->vcpu_kick(vcpu->priv);
        atomic_store(&vcpu->state, HVI_VCPU_RUNNING);
        if (!atomic_exchange(&vcpu->rekick, 0))
            return;
    }
}

int hvc_vcpu_kick(hvc_vcpu *vcpu)
{
    if (!vcpu)
        return hvi_error(-EINVAL, "hvc_vcpu_kick: vCPU is NULL");
    atomic_store(&vcpu->kick_pending, 1);
    hvi_vcpu_interrupt(vcpu);
    /* A runner parked by a pause waits for this. */
    hvi_os_wake_post(&vcpu->parked);
    return 0;
}

void hvi_vcpu_wake_parked(hvc_vcpu *vcpu)
{
    hvi_os_wake_post(&vcpu->parked);
}

int hvi_vcpu_flush(hvc_vcpu *vcpu)
{
    const hvc_backend_ops *ops = vcpu->vm->ops;
    if (!vcpu->io_pending || ops->version < 3 || !ops->vcpu_flush)
        return 0;
    int r = hvi_bk_flush(vcpu);
    if (r == 0) {
        vcpu->io_pending = false;
        if (atomic_load(&vcpu->read_state) != HVI_READ_NONE)
            atomic_store(&vcpu->read_state, HVI_READ_TAKEN);
    }
    return r;
}

/* Waits while the VM is paused, unless a kick asks the run to return. A
 * parked vCPU first takes in the data of its last I/O exit, so that a save
 * during the pause sees the registers the guest will see. */
static void park(hvc_vm *vm, hvc_vcpu *vcpu)
{
    hvi_vcpu_flush(vcpu);
    /* Posts from before are stale: the condition is read after this. */
    hvi_os_wake_drain(&vcpu->parked);
    hvi_vcpu_drain(vcpu); /* after the drain above: no post is lost */
    hvi_vcpu_lock_vm(vcpu);
    atomic_fetch_sub(&vm->active, 1);
    pthread_cond_broadcast(&vm->cond);
    /* pause_depth changes under vm->lock, so no pause can see this vCPU
     * inactive once it has counted itself active again. */
    while (atomic_load(&vm->pause_depth) > 0 &&
           !atomic_load(&vcpu->kick_pending)) {
        pthread_mutex_unlock(&vm->lock);
        hvi_os_wake_wait(&vcpu->parked);
        /* Calls forwarded from threads that may hold vm->lock. */
        hvi_vcpu_drain(vcpu);
        hvi_vcpu_lock_vm(vcpu);
    }
    atomic_fetch_add(&vm->active, 1);
    pthread_mutex_unlock(&vm->lock);
}

static void leave(hvc_vm *vm, hvc_vcpu *vcpu)
{
    atomic_store(&vcpu->leaving, 1);
    atomic_fetch_sub(&vm->active, 1);
    if (atomic_load(&vm->pause_depth) > 0) {
        hvi_vcpu_lock_vm(vcpu);
        pthread_cond_broadcast(&vm->cond);
        pthread_mutex_unlock(&vm->lock);
    }
    for (;;) {
        int s = HVI_VCPU_RUNNING;
        if (atomic_compare_exchange_strong(&vcpu->state, &s, HVI_VCPU_IDLE))
            return;
        cpu_relax(); /* a kicker is signalling this thread; let it finish */
    }
}

/* An access nobody claimed goes back to the caller; until completed, a read
 * sees all-ones, like an empty bus. */
static void return_unclaimed(hvc_vcpu *vcpu, hvc_exit *exit)
{
    if (exit->reason == HVC_EXIT_PIO && !exit->u.io.is_write) {
        memset(exit->u.io.data, 0xff,
               (size_t)exit->u.io.size * exit->u.io.count);
        atomic_store(&vcpu->read_state, HVI_READ_PENDING);
    } else if (exit->reason == HVC_EXIT_MMIO && !exit->u.mmio.is_write) {
        memset(exit->u.mmio.data, 0xff, exit->u.mmio.size);
        atomic_store(&vcpu->read_state, HVI_READ_PENDING);
    }
}

static int run_loop(hvc_vcpu *vcpu, void *arg);

int hvc_vcpu_run(hvc_vcpu *vcpu, const hvc_exit **out)
{
    if (!vcpu)
        return hvi_error(-EINVAL, "hvc_vcpu_run: vCPU is NULL");
    hvc_vm *vm = vcpu->vm;
    if (hvi_memory_count(vm) == 0)
        return hvi_error(-EINVAL, "vCPU %u cannot run: the VM has no memory",
                         vcpu->id);
    int idle = HVI_VCPU_IDLE;
    if (!atomic_compare_exchange_strong(&vcpu->state, &idle, HVI_VCPU_STARTING))
        return hvi_error(-EBUSY,
                         "vCPU %u is already running on another "
                         "thread",
                         vcpu->id);
    /* On a thread-bound backend the loop runs on the vCPU's own thread
     * while this one waits; kicks meanwhile only leave their flags
     * (STARTING) until the backend knows that thread. */
    int r = hvi_vcpu_call(vcpu, run_loop, NULL);
    if (r == 0 && out)
        *out = &vcpu->exit;
    return r;
}

static int run_loop(hvc_vcpu *vcpu, void *arg)
{
    (void)arg;
    hvc_vm *vm = vcpu->vm;
    vcpu->runner = pthread_self();
    hvi_tsc_vcpu_running(vm); /* the TSC frequency is now fixed */
    atomic_fetch_add(&vm->active, 1);
    const hvc_backend_ops *ops = vm->ops;
    hvc_exit *exit = &vcpu->exit;
    atomic_store(&vcpu->read_state, HVI_READ_NONE);
    vcpu->pending_exit = 0;
    int r = ops->vcpu_run_prepare(vcpu->priv);
    /* From here kickers may signal this thread (see hvi_vcpu_interrupt). */
    atomic_store(&vcpu->leaving, 0);
    atomic_store(&vcpu->state, HVI_VCPU_RUNNING);
    while (r == 0) {
        hvi_vcpu_drain(vcpu); /* calls forwarded from other threads */
        if (atomic_load(&vm->pause_depth) > 0)
            park(vm, vcpu);
        if (atomic_load(&vm->postcopy_failed)) {
            r = hvi_error(-EIO,
                          "vCPU %u cannot run: post-copy migration failed "
                          "and guest memory was lost",
                          vcpu->id);
            break;
        }
        if (atomic_load(&vcpu->kick_pending)) {
            atomic_store(&vcpu->kick_pending, 0);
            memset(exit, 0, sizeof(*exit));
            exit->reason = HVC_EXIT_KICK;
            break;
        }
        vcpu->io_pending = false;
        r = ops->vcpu_run(vcpu->priv, exit);
        if (r == 0 &&
            (exit->reason == HVC_EXIT_PIO || exit->reason == HVC_EXIT_MMIO))
            vcpu->io_pending = true;
        if (r == -EINTR) {
            r = 0;
            continue;
        }
        if (r < 0)
            break;
        if (exit->reason != HVC_EXIT_PIO && exit->reason != HVC_EXIT_MMIO)
            break;
        bool claimed;
        r = hvi_io_dispatch(vcpu, exit, &claimed);
        if (r < 0)
            break;
        if (vcpu->pending_exit) {
            memset(&exit->u, 0, sizeof(exit->u));
            exit->reason = vcpu->pending_exit;
            exit->flags = HVC_EXIT_F_HANDLED;
            exit->u.system.code = vcpu->pending_code;
            vcpu->pending_exit = 0;
            r = 0;
            break;
        }
        if (!claimed) {
            return_unclaimed(vcpu, exit);
            break;
        }
        if (r > 0) {
            exit->flags |= HVC_EXIT_F_HANDLED;
            r = 0;
            break;
        }
    }
    leave(vm, vcpu);
    return r;
}

/* Caller holds vm->lock (see read_state). */
static int complete_locked(hvc_vcpu *vcpu, const void *data, size_t length)
{
    int rs = atomic_load(&vcpu->read_state);
    if (rs == HVI_READ_TAKEN)
        return hvi_error(-EALREADY,
                         "vCPU %u: a save has already taken in the data of "
                         "its last read (all-ones, or what was completed "
                         "before it); complete reads before saving",
                         vcpu->id);
    if (rs == HVI_READ_NONE)
        return hvi_error(-EINVAL,
                         "vCPU %u: the last exit is not an "
                         "unclaimed read to complete",
                         vcpu->id);
    const hvc_exit *e = &vcpu->exit;
    size_t want;
    void *dst;
    if (e->reason == HVC_EXIT_PIO) {
        want = (size_t)e->u.io.size * e->u.io.count;
        dst = e->u.io.data;
    } else {
        want = e->u.mmio.size;
        dst = e->u.mmio.data;
    }
    if (length != want)
        return hvi_error(-EINVAL,
                         "vCPU %u: the pending read takes %zu bytes, "
                         "not %zu",
                         vcpu->id, want, length);
    memcpy(dst, data, length);
    atomic_store(&vcpu->read_state, HVI_READ_COMPLETED);
    return 0;
}

int hvc_vcpu_complete_io(hvc_vcpu *vcpu, const void *data, size_t length)
{
    if (!vcpu || !data)
        return hvi_error(-EINVAL, "hvc_vcpu_complete_io: NULL argument");
    pthread_mutex_lock(&vcpu->vm->lock);
    int r = complete_locked(vcpu, data, length);
    pthread_mutex_unlock(&vcpu->vm->lock);
    return r;
}
