/* KVM vCPUs: creation with CPUID, entering the guest, kicks, and completing
 * pending I/O without entering (vcpu_flush, for migration). */
#include "kvm.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* The supported CPUID, with this vCPU's APIC id in the leaves that carry
 * one, and the guest TSC frequency in the leaves that tell it (kvm_tsc.c;
 * up to 3 leaves more). Without KVM_SET_CPUID2 a guest sees no features at
 * all (and KVM then refuses EFER.LME). Called again, before the first run,
 * when the VM's TSC frequency changes. */
int hvi_kvm_set_cpuid(struct hvi_kvm_vcpu *v)
{
    const struct kvm_cpuid2 *sup = v->vm->kvm->cpuid;
    size_t bytes = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
    struct kvm_cpuid2 *c = malloc(bytes + 3 * sizeof(sup->entries[0]));
    if (!c)
        return hvi_error(-ENOMEM, "out of memory setting CPUID");
    memcpy(c, sup, bytes);
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 1:
            e->ebx = (e->ebx & 0x00ffffffu) | (v->id << 24);
            e->ecx |= 1u << 31; /* running under a hypervisor */
            break;
        case 0xb:
        case 0x1f: e->edx = v->id; break;
        }
    }
    hvi_kvm_tsc_cpuid(v, c);
    int r = ioctl(v->fd, KVM_SET_CPUID2, c);
    free(c);
    if (r < 0)
        return hvi_kvm_fail("KVM_SET_CPUID2", errno);
    return 0;
}

static void choose_fpu(struct hvi_kvm_vcpu *v)
{
    int vmfd = v->vm->fd;
    int xs2 = ioctl(vmfd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    if (xs2 > 0) {
        v->fpu_mode = HVI_FPU_XSAVE2;
        v->fpu_size = (size_t)xs2;
    } else if (ioctl(vmfd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
        v->fpu_mode = HVI_FPU_XSAVE;
        v->fpu_size = sizeof(struct kvm_xsave);
    } else {
        v->fpu_mode = HVI_FPU_LEGACY;
        v->fpu_size = sizeof(struct kvm_fpu);
    }
}

int hvi_kvm_vcpu_create(void *vm_priv, uint32_t id, void **out)
{
    struct hvi_kvm_vm *vm = vm_priv;
    struct hvi_kvm_vcpu *v = calloc(1, sizeof(*v));
    if (!v)
        return hvi_error(-ENOMEM, "out of memory creating vCPU %u", id);
    v->vm = vm;
    v->creator = pthread_self();
    v->id = id;
    v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)id);
    int r;
    if (v->fd < 0) {
        r = hvi_kvm_fail("KVM_CREATE_VCPU", errno);
        free(v);
        return r;
    }
    v->run_size = (size_t)vm->kvm->run_size;
    v->run =
        mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        r = hvi_kvm_fail("mapping the vCPU run area", errno);
        close(v->fd);
        free(v);
        return r;
    }
    if ((r = hvi_kvm_tsc_vcpu_init(v)) < 0 || (r = hvi_kvm_set_cpuid(v)) < 0 ||
        (r = hvi_kvm_dirty_vcpu_init(v)) < 0) {
        hvi_kvm_vcpu_destroy(v);
        return r;
    }
    choose_fpu(v);
    *out = v;
    return 0;
}

void hvi_kvm_vcpu_destroy(void *vcpu_priv)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    hvi_kvm_dirty_vcpu_free(v);
    munmap(v->run, v->run_size);
    close(v->fd);
    free(v->msr_index);
    free(v);
}

/* KVM_RUN runs with the signal mask given by KVM_SET_SIGNAL_MASK. Use the
 * runner's own mask without the kick signal, so a thread that blocks all
 * signals (a common pattern) can still be kicked. Redone only when another
 * thread becomes the runner. */
int hvi_kvm_vcpu_run_prepare(void *vcpu_priv)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    pthread_t self = pthread_self();
    v->runner = self;
    /* No kicker is inside vcpu_kick now (the core is STARTING), and a
     * signal sent to an earlier run needs no answer. */
    atomic_store(&v->sig_inflight, 0);
    if (v->mask_set && pthread_equal(v->mask_owner, self))
        return 0;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    sigdelset(&cur, v->vm->kick_signal);
    enum { KERNEL_SIGSET = 8 }; /* the kernel's sigset: 64 signals */
    union { /* not a struct with a flexible array in the middle */
        struct kvm_signal_mask m;
        uint8_t raw[sizeof(struct kvm_signal_mask) + KERNEL_SIGSET];
    } mask;
    mask.m.len = KERNEL_SIGSET;
    memcpy(mask.m.sigset, &cur, KERNEL_SIGSET);
    if (ioctl(v->fd, KVM_SET_SIGNAL_MASK, &mask) < 0)
        return hvi_kvm_fail("KVM_SET_SIGNAL_MASK", errno);
    v->mask_owner = self;
    v->mask_set = true;
    return 0;
}

void hvi_kvm_vcpu_kick(void *vcpu_priv)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    /* immediate_exit covers a runner about to enter; the signal one that is
     * inside. */
    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    /* A signal still in flight makes the current KVM_RUN return, and the
     * next one sees immediate_exit; when KVM clears immediate_exit on that
     * return, the core reads its kick flags before entering again. */
    if (!atomic_exchange(&v->sig_inflight, 1))
        pthread_kill(v->runner, v->vm->kick_signal);
}

int hvi_kvm_set_runnable(void *vcpu_priv)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
    if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
        return hvi_kvm_fail("KVM_SET_MP_STATE", errno);
    return 0;
}

static void internal_error(hvc_exit *exit, uint32_t code, uint32_t ndata,
                           const uint64_t *data)
{
    exit->reason = HVC_EXIT_INTERNAL_ERROR;
    exit->u.internal.code = code;
    if (ndata > 16)
        ndata = 16;
    exit->u.internal.ndata = ndata;
    for (uint32_t i = 0; i < ndata; i++)
        exit->u.internal.data[i] = data[i];
}

/* A kick signal sent while the runner was outside KVM_RUN stays pending
 * when the runner's own mask blocks it (a library vCPU thread blocks
 * every signal): each KVM_RUN would then return -EINTR at once, for ever.
 * Take such a signal once it has done its work (made this entry return). */
static void take_blocked_kick(struct hvi_kvm_vcpu *v)
{
    sigset_t pend;
    if (sigpending(&pend) < 0 || !sigismember(&pend, v->vm->kick_signal))
        return;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, v->vm->kick_signal);
    const struct timespec zero = {0, 0};
    /* Only a blocked signal stays pending, and only a blocked one can be
     * waited for: an unblocked one was delivered to the handler already. */
    while (sigtimedwait(&one, NULL, &zero) == v->vm->kick_signal)
        ;
}

int hvi_kvm_vcpu_run(void *vcpu_priv, hvc_exit *exit)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    struct kvm_run *run = v->run;
    int rc = ioctl(v->fd, KVM_RUN, 0);
    /* Any signal sent before this point has been taken or is about to be:
     * later kicks must send their own. */
    atomic_store(&v->sig_inflight, 0);
    if (rc < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
            take_blocked_kick(v);
            return -EINTR;
        }
        return hvi_kvm_fail("KVM_RUN", errno);
    }
    exit->flags = 0;
    exit->backend_reason = run->exit_reason;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        exit->reason = HVC_EXIT_PIO;
        exit->u.io.port = run->io.port;
        exit->u.io.size = run->io.size;
        exit->u.io.is_write = run->io.direction == KVM_EXIT_IO_OUT;
        exit->u.io.count = run->io.count;
        exit->u.io.data = (uint8_t *)run + run->io.data_offset;
        break;
    case KVM_EXIT_MMIO:
        exit->reason = HVC_EXIT_MMIO;
        exit->u.mmio.addr = run->mmio.phys_addr;
        exit->u.mmio.size = run->mmio.len;
        exit->u.mmio.is_write = run->mmio.is_write;
        exit->u.mmio.data = run->mmio.data;
        break;
    case KVM_EXIT_HLT: exit->reason = HVC_EXIT_HLT; break;
    case KVM_EXIT_SHUTDOWN: exit->reason = HVC_EXIT_SHUTDOWN; break;
    case KVM_EXIT_SYSTEM_EVENT:
        exit->reason = run->system_event.type == KVM_SYSTEM_EVENT_RESET
                           ? HVC_EXIT_RESET
                       : run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN
                           ? HVC_EXIT_POWEROFF
                           : HVC_EXIT_SHUTDOWN;
        break;
    case KVM_EXIT_DEBUG: exit->reason = HVC_EXIT_DEBUG; break;
    case KVM_EXIT_INTR:
        __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        take_blocked_kick(v);
        return -EINTR;
    case KVM_EXIT_DIRTY_RING_FULL: {
        /* Not the caller's business: empty the rings and enter again (the
         * core re-enters on -EINTR after looking for kicks). */
        int e = hvi_kvm_dirty_ring_full(v);
        return e < 0 ? e : -EINTR;
    }
    case KVM_EXIT_INTERNAL_ERROR:
        internal_error(exit, run->internal.suberror, run->internal.ndata,
                       (const uint64_t *)run->internal.data);
        break;
    case KVM_EXIT_FAIL_ENTRY: {
        uint64_t d[2] = {run->fail_entry.hardware_entry_failure_reason,
                         run->fail_entry.cpu};
        internal_error(exit, (uint32_t)d[0], 2, d);
        break;
    }
    default: exit->reason = HVC_EXIT_UNKNOWN; break;
    }
    return 0;
}

/* KVM finishes the pending port or MMIO read (copies the data from the run
 * page into the guest's registers, advances string I/O) at the start of
 * KVM_RUN, before it looks at immediate_exit; with immediate_exit set it
 * then returns -EINTR without entering the guest. Any thread may do this:
 * the signal mask KVM_RUN uses is the vCPU's, not the caller's. */
int hvi_kvm_vcpu_flush(void *vcpu_priv)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    struct kvm_run *run = v->run;
    __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    int r = ioctl(v->fd, KVM_RUN, 0);
    int e = errno;
    __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
    if (r < 0 && e == EINTR)
        return 0;
    if (r < 0)
        return hvi_kvm_fail("KVM_RUN (flush)", e);
    /* An MMIO access split over two pages needs a second exit to finish. */
    return hvi_error(-EAGAIN,
                     "flushing the vCPU's pending I/O: KVM_RUN exited with "
                     "reason %u instead of completing it",
                     run->exit_reason);
}
