/* KVM VMs: creation with the in-kernel platform, memory slots, interrupts. */
#include "kvm.h"

#include "../../os/os.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int hvi_kvm_vm_create(void *priv, const hvc_vm_options *opts, void **out)
{
    struct hvi_kvm *k = priv;
    int r = hvi_os_kick_install(opts->kick_signal);
    if (r < 0)
        return r;
    struct hvi_kvm_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return hvi_error(-ENOMEM, "out of memory creating a KVM VM");
    vm->kvm = k;
    vm->kick_signal = opts->kick_signal;
    vm->fd = ioctl(k->fd, KVM_CREATE_VM, 0);
    if (vm->fd < 0) {
        r = hvi_kvm_fail("KVM_CREATE_VM", errno);
        free(vm);
        return r;
    }
    /* Before any vCPU: KVM enables the dirty ring only then. */
    if ((r = hvi_kvm_dirty_vm_init(vm, opts->flags & HVC_VM_DIRTY_RING)) < 0)
        goto fail;
    uint64_t map = HVI_KVM_IDENTITY_MAP_ADDR;
    if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)HVI_KVM_TSS_ADDR) < 0) {
        r = hvi_kvm_fail("KVM_SET_TSS_ADDR", errno);
        goto fail;
    }
    if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &map) < 0) {
        r = hvi_kvm_fail("KVM_SET_IDENTITY_MAP_ADDR", errno);
        goto fail;
    }
    if ((opts->flags & HVC_VM_USER_IRQCHIP) &&
        (r = hvi_kvm_user_irqchip_init(vm)) < 0)
        goto fail;
    if (!(opts->flags & (HVC_VM_NO_IRQCHIP | HVC_VM_USER_IRQCHIP))) {
        if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
            r = hvi_kvm_fail("KVM_CREATE_IRQCHIP", errno);
            goto fail;
        }
        vm->has_irqchip = true;
        struct kvm_pit_config pit = {.flags = 0};
        if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
            r = hvi_kvm_fail("KVM_CREATE_PIT2", errno);
            goto fail;
        }
        vm->has_pit = true;
        vm->pit_reinject = true; /* KVM's default: missed ticks caught up */
    }
    *out = vm;
    return 0;
fail:
    hvi_kvm_dirty_vm_free(vm);
    close(vm->fd);
    free(vm);
    return r;
}

void hvi_kvm_vm_destroy(void *vm_priv)
{
    struct hvi_kvm_vm *vm = vm_priv;
    hvi_kvm_dirty_vm_free(vm);
    close(vm->fd);
    free(vm);
}

int hvi_kvm_map_memory(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                       uint64_t length, void *host_addr, uint32_t flags)
{
    struct hvi_kvm_vm *vm = vm_priv;
    const uint64_t priv = HVI_KVM_IDENTITY_MAP_ADDR,
                   priv_end = HVI_KVM_PRIVATE_END;
    if (guest_addr < priv_end && guest_addr + length > priv)
        return hvi_error(-EEXIST,
                         "memory region 0x%" PRIx64 "+0x%" PRIx64
                         " overlaps KVM's private pages 0x%" PRIx64
                         "..0x%" PRIx64 " (real-mode TSS and identity map)",
                         guest_addr, length, priv, priv_end - 1);
    struct kvm_userspace_memory_region m = {
        .slot = slot,
        .flags = (flags & HVC_BACKEND_MAP_READONLY) ? KVM_MEM_READONLY : 0,
        .guest_phys_addr = guest_addr,
        .memory_size = length,
        .userspace_addr = (uintptr_t)host_addr,
    };
    if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &m) < 0) {
        int e = errno;
        return hvi_error(-e,
                         "KVM refused memory region 0x%" PRIx64 "+0x%" PRIx64
                         " in slot %u: %s",
                         guest_addr, length, slot, hvc_strerror(-e));
    }
    return 0;
}

int hvi_kvm_unmap_memory(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                         uint64_t length)
{
    (void)length; /* KVM removes a slot by number */
    struct hvi_kvm_vm *vm = vm_priv;
    struct kvm_userspace_memory_region m = {
        .slot = slot,
        .guest_phys_addr = guest_addr,
        .memory_size = 0,
    };
    if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &m) < 0)
        return hvi_kvm_fail("KVM_SET_USER_MEMORY_REGION (remove)", errno);
    hvi_kvm_dirty_unmapped(vm, slot);
    return 0;
}

int hvi_kvm_set_irq(void *vm_priv, uint32_t gsi, int level)
{
    struct hvi_kvm_vm *vm = vm_priv;
    if (gsi >= HVI_KVM_NR_GSIS)
        return hvi_error(-EINVAL, "GSI %u is out of range (0..%d)", gsi,
                         HVI_KVM_NR_GSIS - 1);
    struct kvm_irq_level l = {.irq = gsi, .level = (uint32_t)level};
    if (ioctl(vm->fd, KVM_IRQ_LINE, &l) < 0)
        return hvi_kvm_fail("KVM_IRQ_LINE", errno);
    return 0;
}

int hvi_kvm_send_msi(void *vm_priv, uint64_t address, uint32_t data)
{
    struct hvi_kvm_vm *vm = vm_priv;
    struct kvm_msi m = {
        .address_lo = (uint32_t)address,
        .address_hi = (uint32_t)(address >> 32),
        .data = data,
    };
    int r = ioctl(vm->fd, KVM_SIGNAL_MSI, &m);
    if (r < 0) {
        int e = errno;
        return hvi_error(-e, "MSI to 0x%" PRIx64 " data 0x%x: %s", address,
                         data, hvc_strerror(-e));
    }
    if (r == 0)
        return hvi_error(-EAGAIN,
                         "MSI to 0x%" PRIx64 " data 0x%x was blocked by the "
                         "guest",
                         address, data);
    return 0;
}

int hvi_kvm_irqfd(void *vm_priv, int fd, uint32_t gsi, int assign)
{
    struct hvi_kvm_vm *vm = vm_priv;
    struct kvm_irqfd f = {
        .fd = (uint32_t)fd,
        .gsi = gsi,
        .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
    };
    if (ioctl(vm->fd, KVM_IRQFD, &f) < 0) {
        int e = errno;
        return hvi_error(-e, "KVM_IRQFD (GSI %u): %s", gsi, hvc_strerror(-e));
    }
    return 0;
}

int hvi_kvm_ioeventfd(void *vm_priv, int fd, uint32_t space, uint64_t addr,
                      uint32_t length, int match, uint64_t data, int assign)
{
    struct hvi_kvm_vm *vm = vm_priv;
    struct kvm_ioeventfd io = {
        .datamatch = data,
        .addr = addr,
        .len = length,
        .fd = fd,
        .flags = (space == HVC_IO_PIO ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                 (match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
                 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    if (ioctl(vm->fd, KVM_IOEVENTFD, &io) < 0) {
        int e = errno;
        return hvi_error(-e, "KVM_IOEVENTFD at 0x%" PRIx64 "+%u: %s", addr,
                         length, hvc_strerror(-e));
    }
    return 0;
}
