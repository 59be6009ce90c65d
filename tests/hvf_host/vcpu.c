/* tests/hvf_host: vCPUs, bound to the thread that created them; registers,
 * MSRs, the XSAVE image, TSC controls and hv_vcpu_interrupt(). */
#define _GNU_SOURCE
#include "hvfh.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static void kick_handler(int sig)
{
    (void)sig; /* only interrupts KVM_RUN */
}

int hvfh_kick_signal(void)
{
    return SIGRTMIN + 3;
}

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
static void kick_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(hvfh_kick_signal(), &sa, NULL);
}

struct hvfh_vcpu *hvfh_vcpu_get(hv_vcpuid_t id)
{
    if (id >= HVFH_MAX_VCPUS)
        return NULL;
    pthread_mutex_lock(&hvfh_vm_lock);
    struct hvfh_vcpu *v = hvfh_vm.created ? hvfh_vm.vcpus[id] : NULL;
    pthread_mutex_unlock(&hvfh_vm_lock);
    if (v && v->tid != (pid_t)syscall(SYS_gettid))
        return NULL; /* not the owner thread */
    return v;
}

int hvfh_load_regs(struct hvfh_vcpu *v)
{
    if (v->regs_valid)
        return 0;
    if (ioctl(v->fd, KVM_GET_REGS, &v->regs))
        return -errno;
    v->regs_valid = 1;
    return 0;
}

int hvfh_load_sregs(struct hvfh_vcpu *v)
{
    if (v->sregs_valid)
        return 0;
    if (ioctl(v->fd, KVM_GET_SREGS, &v->sregs))
        return -errno;
    v->sregs_valid = 1;
    return 0;
}

int hvfh_flush_sregs(struct hvfh_vcpu *v)
{
    if (v->sregs_dirty) {
        if (ioctl(v->fd, KVM_SET_SREGS, &v->sregs))
            return -errno;
        v->sregs_dirty = 0;
    }
    return 0;
}

int hvfh_flush_state(struct hvfh_vcpu *v)
{
    if (hvfh_flush_sregs(v))
        return -errno;
    if (v->regs_dirty) {
        if (ioctl(v->fd, KVM_SET_REGS, &v->regs))
            return -errno;
        v->regs_dirty = 0;
    }
    return 0;
}

/* After KVM_RUN: KVM's registers, from the run structure where KVM
 * copies them (KVM_CAP_SYNC_REGS), else to be read by ioctl. */
void hvfh_invalidate(struct hvfh_vcpu *v)
{
    if (v->sync_regs) {
        v->regs = v->run->s.regs.regs;
        v->sregs = v->run->s.regs.sregs;
        v->regs_valid = v->sregs_valid = 1;
        v->regs_dirty = v->sregs_dirty = 0;
        v->tlb_valid = 0;
        v->run->kvm_dirty_regs = 0;
        return;
    }
    v->regs_valid = v->sregs_valid = 0;
    v->regs_dirty = v->sregs_dirty = 0;
    v->tlb_valid = 0;
}

hv_return_t hv_vcpu_create(hv_vcpuid_t *vcpu, hv_vcpu_options_t flags)
{
    if (!vcpu ||
        (flags & ~(uint64_t)(HV_VCPU_ACCEL_RDPMC | HV_VCPU_TSC_RELATIVE)))
        return HV_BAD_ARGUMENT;
    pthread_once(&kick_once, kick_install);
    pthread_mutex_lock(&hvfh_vm_lock);
    hv_return_t ret = HV_SUCCESS;
    int id = -1;
    if (!hvfh_vm.created) {
        ret = HV_BAD_ARGUMENT;
        goto out;
    }
    for (int i = 0; i < HVFH_MAX_VCPUS && id < 0; i++)
        if (!hvfh_vm.vcpus[i])
            id = i;
    if (id < 0) {
        ret = HV_NO_RESOURCES;
        goto out;
    }
    struct hvfh_vcpu *v = calloc(1, sizeof(*v));
    if (!v) {
        ret = HV_NO_RESOURCES;
        goto out;
    }
    /* KVM keeps a vCPU until its VM goes: a destroyed vCPU's hv id comes
     * back with a new KVM id */
    v->fd = ioctl(hvfh_vm.vm_fd, KVM_CREATE_VCPU, hvfh_vm.next_kvm_id++);
    int sz = ioctl(hvfh_vm.kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (v->fd < 0 || sz <= 0) {
        if (v->fd >= 0)
            close(v->fd);
        free(v);
        ret = HV_NO_RESOURCES;
        goto out;
    }
    v->run =
        mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        close(v->fd);
        free(v);
        ret = HV_NO_RESOURCES;
        goto out;
    }
    v->run_size = (size_t)sz;
    int sync = ioctl(hvfh_vm.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
    v->sync_regs =
        sync > 0 && (sync & (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)) ==
                        (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS);
    if (getenv("HVF_HOST_NO_SYNC_REGS"))
        v->sync_regs = 0;
    /* the kick must interrupt KVM_RUN even on a thread that blocks it:
     * KVM_RUN runs with this thread's mask minus the kick signal */
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    sigdelset(&mask, hvfh_kick_signal());
    union {
        struct kvm_signal_mask h;
        uint8_t b[sizeof(struct kvm_signal_mask) + 8];
    } km;
    km.h.len = 8; /* the kernel's sigset: the bytes right after len */
    memcpy(km.h.sigset, &mask, 8);
    if (ioctl(v->fd, KVM_SET_SIGNAL_MASK, &km))
        perror("hvf_host: KVM_SET_SIGNAL_MASK");
    v->used = 1;
    v->id = (hv_vcpuid_t)id;
    v->tid = (pid_t)syscall(SYS_gettid);
    v->thread = pthread_self();
    hvfh_vmcs_init(v);
    hvfh_vm.vcpus[id] = v;
    *vcpu = (hv_vcpuid_t)id;
out:
    pthread_mutex_unlock(&hvfh_vm_lock);
    return ret;
}

hv_return_t hv_vcpu_destroy(hv_vcpuid_t vcpu)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v)
        return HV_BAD_ARGUMENT;
    pthread_mutex_lock(&hvfh_vm_lock);
    hvfh_vm.vcpus[vcpu] = NULL;
    pthread_mutex_unlock(&hvfh_vm_lock);
    hvfh_slice_fini(v);
    munmap(v->run, v->run_size);
    close(v->fd);
    free(v->cpuid);
    free(v);
    return HV_SUCCESS;
}

hv_return_t hv_vcpu_set_space(hv_vcpuid_t vcpu, hv_vm_space_t asid)
{
    if (!hvfh_vcpu_get(vcpu))
        return HV_BAD_ARGUMENT;
    return asid == HV_VM_SPACE_DEFAULT ? HV_SUCCESS : HV_BAD_ARGUMENT;
}

/* VMCS field of the selector/base/limit/AR of segment-like registers. */
static const uint32_t reg_vmcs[HV_X86_REGISTERS_MAX] = {
    [HV_X86_RIP] = VMCS_GUEST_RIP,
    [HV_X86_RFLAGS] = VMCS_GUEST_RFLAGS,
    [HV_X86_RSP] = VMCS_GUEST_RSP,
    [HV_X86_CS] = VMCS_GUEST_CS,
    [HV_X86_SS] = VMCS_GUEST_SS,
    [HV_X86_DS] = VMCS_GUEST_DS,
    [HV_X86_ES] = VMCS_GUEST_ES,
    [HV_X86_FS] = VMCS_GUEST_FS,
    [HV_X86_GS] = VMCS_GUEST_GS,
    [HV_X86_IDT_BASE] = VMCS_GUEST_IDTR_BASE,
    [HV_X86_IDT_LIMIT] = VMCS_GUEST_IDTR_LIMIT,
    [HV_X86_GDT_BASE] = VMCS_GUEST_GDTR_BASE,
    [HV_X86_GDT_LIMIT] = VMCS_GUEST_GDTR_LIMIT,
    [HV_X86_LDTR] = VMCS_GUEST_LDTR,
    [HV_X86_LDT_BASE] = VMCS_GUEST_LDTR_BASE,
    [HV_X86_LDT_LIMIT] = VMCS_GUEST_LDTR_LIMIT,
    [HV_X86_LDT_AR] = VMCS_GUEST_LDTR_AR,
    [HV_X86_TR] = VMCS_GUEST_TR,
    [HV_X86_TSS_BASE] = VMCS_GUEST_TR_BASE,
    [HV_X86_TSS_LIMIT] = VMCS_GUEST_TR_LIMIT,
    [HV_X86_TSS_AR] = VMCS_GUEST_TR_AR,
    [HV_X86_CR0] = VMCS_GUEST_CR0,
    [HV_X86_CR3] = VMCS_GUEST_CR3,
    [HV_X86_CR4] = VMCS_GUEST_CR4,
    [HV_X86_DR7] = VMCS_GUEST_DR7,
};

static uint64_t *gpr(struct kvm_regs *r, hv_x86_reg_t reg)
{
    switch (reg) {
    case HV_X86_RAX: return (uint64_t *)&r->rax;
    case HV_X86_RCX: return (uint64_t *)&r->rcx;
    case HV_X86_RDX: return (uint64_t *)&r->rdx;
    case HV_X86_RBX: return (uint64_t *)&r->rbx;
    case HV_X86_RSI: return (uint64_t *)&r->rsi;
    case HV_X86_RDI: return (uint64_t *)&r->rdi;
    case HV_X86_RBP: return (uint64_t *)&r->rbp;
    case HV_X86_R8: return (uint64_t *)&r->r8;
    case HV_X86_R9: return (uint64_t *)&r->r9;
    case HV_X86_R10: return (uint64_t *)&r->r10;
    case HV_X86_R11: return (uint64_t *)&r->r11;
    case HV_X86_R12: return (uint64_t *)&r->r12;
    case HV_X86_R13: return (uint64_t *)&r->r13;
    case HV_X86_R14: return (uint64_t *)&r->r14;
    case HV_X86_R15: return (uint64_t *)&r->r15;
    default: return NULL;
    }
}

static hv_return_t debugreg(struct hvfh_vcpu *v, hv_x86_reg_t reg,
                            uint64_t *value, int write)
{
    struct kvm_debugregs d;
    if (ioctl(v->fd, KVM_GET_DEBUGREGS, &d))
        return HV_ERROR;
    uint64_t *p;
    if (reg <= HV_X86_DR3)
        p = (uint64_t *)&d.db[reg - HV_X86_DR0];
    else if (reg == HV_X86_DR6 || reg == HV_X86_DR4)
        p = (uint64_t *)&d.dr6;
    else
        p = (uint64_t *)&d.dr7;
    if (!write) {
        *value = *p;
        return HV_SUCCESS;
    }
    *p = *value;
    return ioctl(v->fd, KVM_SET_DEBUGREGS, &d) ? HV_ERROR : HV_SUCCESS;
}

static hv_return_t xcr0(struct hvfh_vcpu *v, uint64_t *value, int write)
{
    struct kvm_xcrs x;
    memset(&x, 0, sizeof(x));
    if (!write) {
        if (ioctl(v->fd, KVM_GET_XCRS, &x))
            return HV_ERROR;
        for (uint32_t i = 0; i < x.nr_xcrs; i++)
            if (x.xcrs[i].xcr == 0) {
                *value = x.xcrs[i].value;
                return HV_SUCCESS;
            }
        *value = 1;
        return HV_SUCCESS;
    }
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = *value;
    return ioctl(v->fd, KVM_SET_XCRS, &x) ? HV_ERROR : HV_SUCCESS;
}

static hv_return_t reg_access(hv_vcpuid_t vcpu, hv_x86_reg_t reg,
                              uint64_t *value, int write)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v || (unsigned)reg >= HV_X86_REGISTERS_MAX)
        return HV_BAD_ARGUMENT;
    if (gpr(&v->regs, reg)) {
        if (hvfh_load_regs(v))
            return HV_ERROR;
        uint64_t *p = gpr(&v->regs, reg);
        if (write) {
            *p = *value;
            v->regs_dirty = 1;
        } else {
            *value = *p;
        }
        return HV_SUCCESS;
    }
    if (reg_vmcs[reg])
        return write ? hvfh_vmcs_write(v, reg_vmcs[reg], *value, 1)
                     : hvfh_vmcs_read(v, reg_vmcs[reg], value);
    switch (reg) {
    case HV_X86_CR1:
        if (write)
            return HV_BAD_ARGUMENT;
        *value = 0;
        return HV_SUCCESS;
    case HV_X86_CR2:
    case HV_X86_TPR:
        if (hvfh_load_sregs(v))
            return HV_ERROR;
        {
            uint64_t *p =
                (uint64_t *)(reg == HV_X86_CR2 ? &v->sregs.cr2 : &v->sregs.cr8);
            /* HV_X86_TPR is CR8 (the TPR's priority class), as VMMs on
             * the framework use it */
            if (write) {
                *p = *value;
                v->sregs_dirty = 1;
            } else {
                *value = *p;
            }
        }
        return HV_SUCCESS;
    case HV_X86_XCR0: return xcr0(v, value, write);
    default:
        if (reg >= HV_X86_DR0 && reg <= HV_X86_DR6)
            return debugreg(v, reg, value, write);
        return HV_BAD_ARGUMENT;
    }
}

hv_return_t hv_vcpu_read_register(hv_vcpuid_t vcpu, hv_x86_reg_t reg,
                                  uint64_t *value)
{
    if (!value)
        return HV_BAD_ARGUMENT;
    return reg_access(vcpu, reg, value, 0);
}

hv_return_t hv_vcpu_write_register(hv_vcpuid_t vcpu, hv_x86_reg_t reg,
                                   uint64_t value)
{
    return reg_access(vcpu, reg, &value, 1);
}

/* KVM's XSAVE image (KVM_GET_XSAVE2: larger than 4096 bytes with AMX);
 * malloc'd, *size its length. */
void *hvfh_xsave_get(struct hvfh_vcpu *v, size_t *size)
{
    int n = ioctl(hvfh_vm.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    size_t sz = n > (int)sizeof(struct kvm_xsave) ? (size_t)n
                                                  : sizeof(struct kvm_xsave);
    void *x = calloc(1, sz);
    if (x && ioctl(v->fd, n > 0 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x)) {
        free(x);
        x = NULL;
    }
    *size = sz;
    return x;
}

hv_return_t hv_vcpu_read_fpstate(hv_vcpuid_t vcpu, void *buffer, size_t size)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    size_t sz;
    if (!v || !buffer || size < 512)
        return HV_BAD_ARGUMENT;
    void *x = hvfh_xsave_get(v, &sz);
    if (!x)
        return HV_ERROR;
    /* a larger buffer (sized by the host's CPUID, say) gets the
     * components KVM does not hold in their initial state: zeros, with
     * their XSTATE_BV bits clear */
    memcpy(buffer, x, size < sz ? size : sz);
    if (size > sz)
        memset((uint8_t *)buffer + sz, 0, size - sz);
    free(x);
    return HV_SUCCESS;
}

hv_return_t hv_vcpu_write_fpstate(hv_vcpuid_t vcpu, void *buffer, size_t size)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    size_t sz;
    if (!v || !buffer || size < 512)
        return HV_BAD_ARGUMENT;
    void *x = hvfh_xsave_get(v, &sz);
    if (!x)
        return HV_ERROR;
    /* beyond KVM's image: components KVM does not hold, which the header
     * must not claim (KVM refuses it then) */
    memcpy(x, buffer, size < sz ? size : sz);
    hv_return_t r =
        ioctl(v->fd, KVM_SET_XSAVE, x) ? HV_BAD_ARGUMENT : HV_SUCCESS;
    free(x);
    return r;
}

static hv_return_t msr_io(struct hvfh_vcpu *v, uint32_t msr, uint64_t *value,
                          int write)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e;
    } m;
    memset(&m, 0, sizeof(m));
    m.h.nmsrs = 1;
    m.e.index = msr;
    m.e.data = write ? *value : 0;
    int n = ioctl(v->fd, write ? KVM_SET_MSRS : KVM_GET_MSRS, &m);
    if (n != 1)
        return HV_BAD_ARGUMENT;
    if (!write)
        *value = m.e.data;
    return HV_SUCCESS;
}

hv_return_t hv_vcpu_read_msr(hv_vcpuid_t vcpu, uint32_t msr, uint64_t *value)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v || !value)
        return HV_BAD_ARGUMENT;
    if (msr == 0xc0000080u) /* EFER lives in the VMCS */
        return hvfh_vmcs_read(v, VMCS_GUEST_IA32_EFER, value);
    return msr_io(v, msr, value, 0);
}

hv_return_t hv_vcpu_write_msr(hv_vcpuid_t vcpu, uint32_t msr, uint64_t value)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v)
        return HV_BAD_ARGUMENT;
    if (msr == 0xc0000080u)
        return hvfh_vmcs_write(v, VMCS_GUEST_IA32_EFER, value, 1);
    return msr_io(v, msr, &value, 1);
}

hv_return_t hv_vcpu_flush(hv_vcpuid_t vcpu)
{
    return hvfh_vcpu_get(vcpu) ? HV_SUCCESS : HV_BAD_ARGUMENT;
}

hv_return_t hv_vcpu_invalidate_tlb(hv_vcpuid_t vcpu)
{
    return hvfh_vcpu_get(vcpu) ? HV_SUCCESS : HV_BAD_ARGUMENT;
}

hv_return_t hv_vcpu_run(hv_vcpuid_t vcpu)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v)
        return HV_BAD_ARGUMENT;
    return hvfh_run(v);
}

hv_return_t hv_vcpu_run_until(hv_vcpuid_t vcpu, uint64_t deadline)
{
    if (deadline != HV_DEADLINE_FOREVER)
        return HV_UNSUPPORTED; /* no preemption timer here */
    return hv_vcpu_run(vcpu);
}

/* Any thread: the vCPU leaves (or, not running, next leaves) the guest
 * with an external-interrupt exit. */
hv_return_t hv_vcpu_interrupt(hv_vcpuid_t *vcpus, unsigned int vcpu_count)
{
    if (!vcpus || !vcpu_count)
        return HV_BAD_ARGUMENT;
    pthread_mutex_lock(&hvfh_vm_lock);
    hv_return_t ret = HV_SUCCESS;
    for (unsigned i = 0; i < vcpu_count; i++) {
        struct hvfh_vcpu *v = vcpus[i] < HVFH_MAX_VCPUS && hvfh_vm.created
                                  ? hvfh_vm.vcpus[vcpus[i]]
                                  : NULL;
        if (!v) {
            ret = HV_BAD_ARGUMENT;
            continue;
        }
        atomic_store(&v->kick, 1);
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_tgkill, getpid(), v->tid, hvfh_kick_signal());
    }
    pthread_mutex_unlock(&hvfh_vm_lock);
    return ret;
}

hv_return_t hv_vcpu_get_exec_time(hv_vcpuid_t vcpu, uint64_t *time)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v || !time)
        return HV_BAD_ARGUMENT;
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    *time = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return HV_SUCCESS;
}

/* The offset KVM_VCPU_TSC_OFFSET applies, read back: a host that drops
 * the write (PVM: the guest's RDTSC is not trapped) reads the old one. */
static int tsc_offset_set(struct hvfh_vcpu *v, uint64_t off)
{
    uint64_t back = ~off;
    struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL,
                                .attr = KVM_VCPU_TSC_OFFSET,
                                .addr = (uint64_t)(uintptr_t)&off};
    if (ioctl(v->fd, KVM_SET_DEVICE_ATTR, &a))
        return -1;
    a.addr = (uint64_t)(uintptr_t)&back;
    if (ioctl(v->fd, KVM_GET_DEVICE_ATTR, &a) || back != off)
        return -1;
    return 0;
}

/* Guest TSC = hv_tsc_clock() + offset, from now on. Where KVM cannot
 * offset the guest's TSC (this PVM host), HV_UNSUPPORTED: nothing else
 * could make the guest's RDTSC read it. */
hv_return_t hv_vcpu_set_tsc_relative(hv_vcpuid_t vcpu, int64_t offset)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v)
        return HV_BAD_ARGUMENT;
    if (!hvfh_vm.tsc_offset_works)
        return offset ? HV_UNSUPPORTED : HV_SUCCESS; /* 0: what it is */
    return tsc_offset_set(v, (uint64_t)offset) ? HV_ERROR : HV_SUCCESS;
}

hv_return_t hv_vcpu_enable_native_msr(hv_vcpuid_t vcpu, uint32_t msr,
                                      bool enable)
{
    struct hvfh_vcpu *v = hvfh_vcpu_get(vcpu);
    if (!v)
        return HV_BAD_ARGUMENT;
    int at = -1;
    for (int i = 0; i < v->n_native; i++)
        if (v->native_msrs[i] == msr)
            at = i;
    if (enable && at < 0) {
        if (v->n_native == HVFH_NATIVE_MAX)
            return HV_NO_RESOURCES;
        v->native_msrs[v->n_native++] = msr;
    } else if (!enable && at >= 0) {
        v->native_msrs[at] = v->native_msrs[--v->n_native];
    }
    return hvfh_msr_filter(v) ? HV_ERROR : HV_SUCCESS;
}

/* Applies hv_vm_sync_tsc() on the owner thread before an entry. */
void hvfh_tsc_apply(struct hvfh_vcpu *v);
void hvfh_tsc_apply(struct hvfh_vcpu *v)
{
    if (v->tsc_sync_pending) {
        tsc_offset_set(v, (uint64_t)v->tsc_offset);
        v->tsc_sync_pending = 0;
    }
}
