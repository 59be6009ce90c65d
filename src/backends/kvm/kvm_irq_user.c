/* KVM without the in-kernel irqchip, driven by the library's userspace
 * interrupt controllers (HVC_VM_USER_IRQCHIP, branch irq17): KVM_INTERRUPT
 * and KVM_NMI for injection, request_interrupt_window and
 * ready_for_interrupt_injection for the window, and the userspace-MSR exits
 * (KVM_CAP_X86_USER_SPACE_MSR with a KVM_X86_SET_MSR_FILTER) for
 * IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC MSRs. KVM ignores the
 * filter for 0x800-0x8ff; without an in-kernel LAPIC it fails those
 * accesses, which KVM_MSR_EXIT_REASON_INVAL brings here too. */
#include "kvm.h"

#include <errno.h>
#include <sys/ioctl.h>

int hvi_kvm_user_irqchip_init(struct hvi_kvm_vm *vm)
{
    int fd = vm->kvm->fd;
    if (ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) <= 0 ||
        ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) <= 0)
        return hvi_error(-ENOTSUP,
                         "HVC_VM_USER_IRQCHIP: this KVM has no userspace MSR "
                         "exits (KVM_CAP_X86_USER_SPACE_MSR and "
                         "KVM_CAP_X86_MSR_FILTER, Linux 5.10)");
    struct kvm_enable_cap cap = {
        .cap = KVM_CAP_X86_USER_SPACE_MSR,
        .args = {KVM_MSR_EXIT_REASON_FILTER | KVM_MSR_EXIT_REASON_INVAL |
                 KVM_MSR_EXIT_REASON_UNKNOWN},
    };
    if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
        return hvi_kvm_fail("KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)",
                            errno);
    /* Denied (bit clear) means: exit to userspace. */
    static uint8_t deny[32]; /* 256 MSRs, all zero */
    struct kvm_msr_filter f = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};
    const uint32_t base[] = {0x1b, 0x6e0, 0x800};
    const uint32_t n[] = {1, 1, 256};
    for (int i = 0; i < 3; i++) {
        f.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
        f.ranges[i].base = base[i];
        f.ranges[i].nmsrs = n[i];
        f.ranges[i].bitmap = deny;
    }
    if (ioctl(vm->fd, KVM_X86_SET_MSR_FILTER, &f) < 0)
        return hvi_kvm_fail("KVM_X86_SET_MSR_FILTER", errno);
    return 0;
}

int hvi_kvm_vcpu_inject(void *vcpu_priv, uint32_t kind, uint8_t vector)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    if (kind == HVC_BACKEND_INJECT_NMI) {
        if (ioctl(v->fd, KVM_NMI) < 0)
            return hvi_kvm_fail("KVM_NMI", errno);
        return 0;
    }
    struct kvm_interrupt irq = {.irq = vector};
    if (ioctl(v->fd, KVM_INTERRUPT, &irq) < 0) {
        int e = errno;
        return hvi_error(-e, "KVM_INTERRUPT (vector 0x%x): %s", vector,
                         hvc_strerror(-e));
    }
    return 0;
}

int hvi_kvm_vcpu_irq_window(void *vcpu_priv, int request, int *ready)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    v->run->request_interrupt_window = request ? 1 : 0;
    /* What the last KVM_RUN left: 0 before the first, which then only
     * costs one window exit. */
    *ready = v->run->ready_for_interrupt_injection && v->run->if_flag;
    return 0;
}

int hvi_kvm_vcpu_complete_msr(void *vcpu_priv, int error, uint64_t value)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    struct kvm_run *run = v->run;
    if (run->exit_reason != KVM_EXIT_X86_RDMSR &&
        run->exit_reason != KVM_EXIT_X86_WRMSR)
        return hvi_error(-EINVAL, "no MSR access to complete (exit %u)",
                         run->exit_reason);
    run->msr.error = error ? 1 : 0;
    if (run->exit_reason == KVM_EXIT_X86_RDMSR)
        run->msr.data = value;
    return 0;
}
