/* The framework's one VM per process, guest memory by range, and the
 * interrupt lines (none without a userspace interrupt controller). */
#include "hvf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

int hvi_hvf_vm_create(void *priv, const hvc_vm_options *opts, void **out)
{
    struct hvi_hvf *h = priv;
    int zero = 0;
    /* Said before the framework says HV_BUSY, with the reason. */
    if (!atomic_compare_exchange_strong(&h->vms, &zero, 1))
        return hvi_error(-EBUSY, "Hypervisor.framework allows one VM per "
                                 "process, and this process has one");
    struct hvi_hvf_vm *vm = calloc(1, sizeof(*vm));
    uint32_t nslots = (uint32_t)h->caps[HVC_CAP_MAX_MEMORY_REGIONS];
    if (vm)
        vm->slots = calloc(nslots, sizeof(*vm->slots));
    if (!vm || !vm->slots) {
        free(vm);
        atomic_store(&h->vms, 0);
        return hvi_error(-ENOMEM, "out of memory creating a VM");
    }
    hv_return_t ret = hvi_hvf.hv_vm_create(HV_VM_DEFAULT);
    if (ret != HV_SUCCESS) {
        int r = hvi_hvf_fail(ret == HV_BUSY
                                 ? "hv_vm_create (the process already has a "
                                   "VM)"
                                 : "hv_vm_create",
                             ret);
        free(vm->slots);
        free(vm);
        atomic_store(&h->vms, 0);
        return r;
    }
    vm->hvf = h;
    vm->flags = opts->flags;
    vm->nr_slots = nslots;
    pthread_rwlock_init(&vm->slot_lock, NULL);
    pthread_mutex_init(&vm->dirty_lock, NULL);
    *out = vm;
    return 0;
}

void hvi_hvf_vm_destroy(void *vm_priv)
{
    struct hvi_hvf_vm *vm = vm_priv;
    hvi_hvf.hv_vm_destroy();
    atomic_store(&vm->hvf->vms, 0);
    pthread_rwlock_destroy(&vm->slot_lock);
    pthread_mutex_destroy(&vm->dirty_lock);
    for (uint32_t i = 0; i < vm->nr_slots; i++)
        free((void *)vm->slots[i].dirty);
    free(vm->slots);
    free(vm);
}

int hvi_hvf_map_memory(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                       uint64_t length, void *host_addr, uint32_t flags)
{
    struct hvi_hvf_vm *vm = vm_priv;
    if (slot >= vm->nr_slots)
        return hvi_error(-ENOSPC,
                         "memory slot %u is beyond the %u the hvf "
                         "backend has",
                         slot, vm->nr_slots);
    hv_memory_flags_t perm = HV_MEMORY_READ | HV_MEMORY_EXEC;
    bool ro = flags & HVC_BACKEND_MAP_READONLY;
    if (!ro)
        perm |= HV_MEMORY_WRITE;
    hv_return_t ret =
        hvi_hvf.hv_vm_map(host_addr, guest_addr, (size_t)length, perm);
    if (ret != HV_SUCCESS)
        return hvi_hvf_fail("hv_vm_map", ret);
    pthread_rwlock_wrlock(&vm->slot_lock);
    vm->slots[slot] = (struct hvi_hvf_slot){.used = true,
                                            .readonly = ro,
                                            .gpa = guest_addr,
                                            .len = length,
                                            .hva = host_addr};
    pthread_rwlock_unlock(&vm->slot_lock);
    return 0;
}

int hvi_hvf_unmap_memory(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                         uint64_t length)
{
    struct hvi_hvf_vm *vm = vm_priv;
    /* Forgotten first: no vCPU may copy into a range being unmapped. */
    pthread_rwlock_wrlock(&vm->slot_lock);
    if (slot < vm->nr_slots) {
        vm->slots[slot].used = false;
        free((void *)vm->slots[slot].dirty); /* the core stopped it */
        vm->slots[slot].dirty = NULL;
    }
    pthread_rwlock_unlock(&vm->slot_lock);
    hv_return_t ret = hvi_hvf.hv_vm_unmap(guest_addr, (size_t)length);
    if (ret != HV_SUCCESS)
        return hvi_hvf_fail("hv_vm_unmap", ret);
    return 0;
}

int hvi_hvf_set_irq(void *vm_priv, uint32_t gsi, int level)
{
    (void)vm_priv;
    (void)level;
    return hvi_error(-ENOTSUP,
                     "GSI %u: the hvf backend has no interrupt controller "
                     "yet (the userspace one is not connected)",
                     gsi);
}

int hvi_hvf_send_msi(void *vm_priv, uint64_t address, uint32_t data)
{
    (void)vm_priv;
    return hvi_error(-ENOTSUP,
                     "MSI 0x%" PRIx64 "/0x%x: the hvf backend has no "
                     "interrupt controller yet",
                     address, data);
}
