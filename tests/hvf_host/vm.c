/* tests/hvf_host: the process's one VM, its guest-physical ranges (one KVM
 * memslot per range, split on partial unmap/protect) and the VMX
 * capability answers. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

struct hvfh_vm hvfh_vm;
pthread_mutex_t hvfh_vm_lock = PTHREAD_MUTEX_INITIALIZER;

hv_return_t hv_capability(hv_capability_t capability, uint64_t *value)
{
    if (!value)
        return HV_BAD_ARGUMENT;
    switch (capability) {
    case HV_CAP_VCPUMAX: *value = HVFH_MAX_VCPUS; return HV_SUCCESS;
    case HV_CAP_ADDRSPACEMAX: *value = 1; return HV_SUCCESS;
    default: return HV_BAD_ARGUMENT;
    }
}

/* Whether KVM_VCPU_TSC_OFFSET reaches the guest: tried on a throw-away
 * KVM VM (some KVMs, PVM, accept the write and drop it). */
static int tsc_probe(int kvm)
{
    int ok = 0, vm = ioctl(kvm, KVM_CREATE_VM, 0);
    int cpu = vm >= 0 ? ioctl(vm, KVM_CREATE_VCPU, 0) : -1;
    uint64_t before = 0, want, after = 0;
    struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL,
                                .attr = KVM_VCPU_TSC_OFFSET,
                                .addr = (uint64_t)(uintptr_t)&before};
    if (cpu >= 0 && !ioctl(cpu, KVM_GET_DEVICE_ATTR, &a)) {
        want = before + (1ull << 40);
        a.addr = (uint64_t)(uintptr_t)&want;
        if (!ioctl(cpu, KVM_SET_DEVICE_ATTR, &a)) {
            a.addr = (uint64_t)(uintptr_t)&after;
            ok = !ioctl(cpu, KVM_GET_DEVICE_ATTR, &a) && after == want;
        }
    }
    if (cpu >= 0)
        close(cpu);
    if (vm >= 0)
        close(vm);
    return ok;
}

hv_return_t hv_vm_create(hv_vm_options_t flags)
{
    if (flags != HV_VM_DEFAULT)
        return HV_BAD_ARGUMENT;
    pthread_mutex_lock(&hvfh_vm_lock);
    if (hvfh_vm.created) {
        pthread_mutex_unlock(&hvfh_vm_lock);
        return HV_BUSY;
    }
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        pthread_mutex_unlock(&hvfh_vm_lock);
        return HV_NO_DEVICE;
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) {
        close(kvm);
        pthread_mutex_unlock(&hvfh_vm_lock);
        return HV_NO_RESOURCES;
    }
    memset(&hvfh_vm, 0, sizeof(hvfh_vm));
    hvfh_vm.kvm_fd = kvm;
    hvfh_vm.vm_fd = vm;
    int n = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
    hvfh_vm.nr_slots = n > 0 && n < 512 ? n : 512;
    /* Every MSR access the filter denies, and every one KVM does not know,
     * exits to userspace (KVM_EXIT_X86_RDMSR/WRMSR): see msr.c. */
    struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_USER_SPACE_MSR};
    cap.args[0] = KVM_MSR_EXIT_REASON_FILTER | KVM_MSR_EXIT_REASON_UNKNOWN |
                  KVM_MSR_EXIT_REASON_INVAL;
    hvfh_vm.user_msr = ioctl(vm, KVM_ENABLE_CAP, &cap) == 0;
    /* KVM refuses CPUID answers advertising AMX unless the process asked
     * for the guest's dynamic XSAVE state before its first vCPU (the TSC
     * probe's included) (the
     * framework has no such rule): ask now (fails harmlessly without
     * AMX). */
    syscall(SYS_arch_prctl, 0x1025 /* ARCH_REQ_XCOMP_GUEST_PERM */,
            18 /* XTILEDATA */);
    hvfh_vm.tsc_offset_works = tsc_probe(kvm);
    hvfh_vm.created = 1;
    pthread_mutex_unlock(&hvfh_vm_lock);
    if (hvfh_vm.user_msr)
        hvfh_msr_filter(NULL);
    return HV_SUCCESS;
}

hv_return_t hv_vm_destroy(void)
{
    pthread_mutex_lock(&hvfh_vm_lock);
    if (!hvfh_vm.created) {
        pthread_mutex_unlock(&hvfh_vm_lock);
        return HV_BAD_ARGUMENT;
    }
    for (int i = 0; i < HVFH_MAX_VCPUS; i++)
        if (hvfh_vm.vcpus[i]) { /* vCPUs must be destroyed first */
            pthread_mutex_unlock(&hvfh_vm_lock);
            return HV_BUSY;
        }
    close(hvfh_vm.vm_fd);
    close(hvfh_vm.kvm_fd);
    hvfh_vm.created = 0;
    pthread_mutex_unlock(&hvfh_vm_lock);
    return HV_SUCCESS;
}

static int slot_alloc(void)
{
    for (int i = 0; i < hvfh_vm.nr_slots; i++)
        if (!hvfh_vm.slot_used[i]) {
            hvfh_vm.slot_used[i] = 1;
            return i;
        }
    return -1;
}

/* Gives range r its KVM memslot (none when it has no read access). */
static int range_install(struct hvfh_range *r)
{
    r->slot = -1;
    if (!(r->flags & HV_MEMORY_READ))
        return 0;
    int s = slot_alloc();
    if (s < 0)
        return -ENOSPC;
    struct kvm_userspace_memory_region m = {
        .slot = (uint32_t)s,
        .flags = (r->flags & HV_MEMORY_WRITE) ? 0 : KVM_MEM_READONLY,
        .guest_phys_addr = r->gpa,
        .memory_size = r->size,
        .userspace_addr = r->uva};
    if (ioctl(hvfh_vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &m)) {
        hvfh_vm.slot_used[s] = 0;
        return -errno;
    }
    r->slot = s;
    return 0;
}

static void range_remove(struct hvfh_range *r)
{
    if (r->slot < 0)
        return;
    struct kvm_userspace_memory_region m = {.slot = (uint32_t)r->slot};
    ioctl(hvfh_vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &m);
    hvfh_vm.slot_used[r->slot] = 0;
    r->slot = -1;
}

static int aligned(uint64_t gpa, uint64_t size)
{
    return size && !(gpa % HVFH_PAGE) && !(size % HVFH_PAGE) &&
           gpa + size > gpa;
}

hv_return_t hv_vm_map(hv_uvaddr_t uva, hv_gpaddr_t gpa, size_t size,
                      hv_memory_flags_t flags)
{
    if (!aligned(gpa, size) || ((uintptr_t)uva % HVFH_PAGE) || !uva ||
        (flags &
         ~(uint64_t)(HV_MEMORY_READ | HV_MEMORY_WRITE | HV_MEMORY_EXEC)))
        return HV_BAD_ARGUMENT;
    pthread_mutex_lock(&hvfh_vm_lock);
    hv_return_t ret = HV_SUCCESS;
    if (!hvfh_vm.created) {
        ret = HV_BAD_ARGUMENT;
        goto out;
    }
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[i];
        if (gpa < r->gpa + r->size && r->gpa < gpa + size) {
            ret = HV_ERROR; /* overlaps a mapped range */
            goto out;
        }
    }
    if (hvfh_vm.n_ranges == HVFH_MAX_RANGES) {
        ret = HV_NO_RESOURCES;
        goto out;
    }
    struct hvfh_range *r = &hvfh_vm.ranges[hvfh_vm.n_ranges];
    *r = (struct hvfh_range){gpa, size, (uint64_t)(uintptr_t)uva, flags, -1};
    if (range_install(r)) {
        ret = HV_NO_RESOURCES;
        goto out;
    }
    hvfh_vm.n_ranges++;
out:
    pthread_mutex_unlock(&hvfh_vm_lock);
    return ret;
}

/* Applies `flags` (or removal, when unmap) to [gpa, gpa+size): every page
 * in it must be mapped; ranges partly inside are split. */
static hv_return_t reshape(uint64_t gpa, uint64_t size, int unmap,
                           hv_memory_flags_t flags)
{
    if (!aligned(gpa, size))
        return HV_BAD_ARGUMENT;
    pthread_mutex_lock(&hvfh_vm_lock);
    hv_return_t ret = HV_SUCCESS;
    uint64_t covered = 0;
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[i];
        uint64_t lo = r->gpa > gpa ? r->gpa : gpa;
        uint64_t hi =
            r->gpa + r->size < gpa + size ? r->gpa + r->size : gpa + size;
        if (lo < hi)
            covered += hi - lo;
    }
    if (!hvfh_vm.created || covered != size) {
        ret = HV_BAD_ARGUMENT;
        goto out;
    }
    struct hvfh_range keep[HVFH_MAX_RANGES * 3];
    int n = 0;
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range r = hvfh_vm.ranges[i];
        if (!(gpa < r.gpa + r.size && r.gpa < gpa + size)) {
            keep[n++] = r;
            continue;
        }
        range_remove(&hvfh_vm.ranges[i]);
        uint64_t lo = r.gpa > gpa ? r.gpa : gpa;
        uint64_t hi = r.gpa + r.size < gpa + size ? r.gpa + r.size : gpa + size;
        if (r.gpa < lo)
            keep[n++] =
                (struct hvfh_range){r.gpa, lo - r.gpa, r.uva, r.flags, -1};
        if (!unmap)
            keep[n++] = (struct hvfh_range){lo, hi - lo, r.uva + (lo - r.gpa),
                                            flags, -1};
        if (hi < r.gpa + r.size)
            keep[n++] = (struct hvfh_range){hi, r.gpa + r.size - hi,
                                            r.uva + (hi - r.gpa), r.flags, -1};
    }
    if (n > HVFH_MAX_RANGES) {
        ret = HV_NO_RESOURCES; /* (the old slots are gone: reinstalled) */
        n = HVFH_MAX_RANGES;
    }
    hvfh_vm.n_ranges = 0;
    for (int i = 0; i < n; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[hvfh_vm.n_ranges];
        *r = keep[i];
        if (r->slot < 0 && range_install(r))
            ret = HV_NO_RESOURCES;
        hvfh_vm.n_ranges++;
    }
out:
    pthread_mutex_unlock(&hvfh_vm_lock);
    return ret;
}

hv_return_t hv_vm_unmap(hv_gpaddr_t gpa, size_t size)
{
    return reshape(gpa, size, 1, 0);
}

hv_return_t hv_vm_protect(hv_gpaddr_t gpa, size_t size, hv_memory_flags_t flags)
{
    if (flags & ~(uint64_t)(HV_MEMORY_READ | HV_MEMORY_WRITE | HV_MEMORY_EXEC))
        return HV_BAD_ARGUMENT;
    return reshape(gpa, size, 0, flags);
}

/* The access rights of gpa's page as EPT bits 2:0 (0 when unmapped). */
unsigned hvfh_gpa_rights(uint64_t gpa);
unsigned hvfh_gpa_rights(uint64_t gpa)
{
    unsigned rights = 0;
    pthread_mutex_lock(&hvfh_vm_lock);
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[i];
        if (gpa >= r->gpa && gpa < r->gpa + r->size)
            rights = (unsigned)(r->flags & 7);
    }
    pthread_mutex_unlock(&hvfh_vm_lock);
    return rights;
}

/* One address space: the others are refused. */
hv_return_t hv_vm_space_create(hv_vm_space_t *asid)
{
    (void)asid;
    return HV_UNSUPPORTED;
}
hv_return_t hv_vm_space_destroy(hv_vm_space_t asid)
{
    (void)asid;
    return HV_UNSUPPORTED;
}
hv_return_t hv_vm_map_space(hv_vm_space_t asid, hv_uvaddr_t uva,
                            hv_gpaddr_t gpa, size_t size,
                            hv_memory_flags_t flags)
{
    return asid == HV_VM_SPACE_DEFAULT ? hv_vm_map(uva, gpa, size, flags)
                                       : HV_BAD_ARGUMENT;
}
hv_return_t hv_vm_unmap_space(hv_vm_space_t asid, hv_gpaddr_t gpa, size_t size)
{
    return asid == HV_VM_SPACE_DEFAULT ? hv_vm_unmap(gpa, size)
                                       : HV_BAD_ARGUMENT;
}
hv_return_t hv_vm_protect_space(hv_vm_space_t asid, hv_gpaddr_t gpa,
                                size_t size, hv_memory_flags_t flags)
{
    return asid == HV_VM_SPACE_DEFAULT ? hv_vm_protect(gpa, size, flags)
                                       : HV_BAD_ARGUMENT;
}

/* Every vCPU's TSC to `tsc` as of now: the offset from the host's TSC,
 * applied by each owner at its next entry (a vCPU belongs to its thread).
 * HV_UNSUPPORTED where KVM cannot offset the guest's TSC. */
hv_return_t hv_vm_sync_tsc(uint64_t tsc)
{
    uint64_t off = tsc - __rdtsc();
    pthread_mutex_lock(&hvfh_vm_lock);
    if (!hvfh_vm.created) {
        pthread_mutex_unlock(&hvfh_vm_lock);
        return HV_BAD_ARGUMENT;
    }
    if (!hvfh_vm.tsc_offset_works) {
        pthread_mutex_unlock(&hvfh_vm_lock);
        return HV_UNSUPPORTED;
    }
    for (int i = 0; i < HVFH_MAX_VCPUS; i++)
        if (hvfh_vm.vcpus[i]) {
            hvfh_vm.vcpus[i]->tsc_offset = (int64_t)off;
            hvfh_vm.vcpus[i]->tsc_sync_pending = 1;
        }
    pthread_mutex_unlock(&hvfh_vm_lock);
    return HV_SUCCESS;
}

uint64_t hv_tsc_clock(void)
{
    return __rdtsc();
}

/* The allowed-0/allowed-1 settings this layer implements. */
hv_return_t hv_vmx_read_capability(hv_vmx_capability_t field, uint64_t *value)
{
    if (!value)
        return HV_BAD_ARGUMENT;
    uint64_t may1, must1;
    switch (field) {
    case HV_VMX_CAP_PINBASED:
        must1 = 0x16;
        may1 = must1 | PIN_BASED_INTR | PIN_BASED_NMI | PIN_BASED_VIRTUAL_NMI;
        break;
    case HV_VMX_CAP_PROCBASED:
        must1 = 0x0401e172u & ~(uint64_t)(CPU_BASED_HLT); /* HLT: always */
        must1 |= CPU_BASED_HLT | CPU_BASED_UNCOND_IO;
        may1 = must1 | CPU_BASED_IRQ_WND | CPU_BASED_TSC_OFFSET |
               CPU_BASED_IO_BITMAPS | CPU_BASED_MSR_BITMAPS |
               CPU_BASED_SECONDARY_CTLS | CPU_BASED_TPR_SHADOW |
               CPU_BASED_CR8_LOAD | CPU_BASED_CR8_STORE;
        break;
    case HV_VMX_CAP_PROCBASED2:
        must1 = CPU_BASED2_EPT | CPU_BASED2_UNRESTRICTED;
        may1 = must1 | CPU_BASED2_RDTSCP | CPU_BASED2_VPID |
               CPU_BASED2_INVPCID | CPU_BASED2_XSAVES_XRSTORS;
        break;
    case HV_VMX_CAP_ENTRY:
        must1 = 0x11ff;
        must1 &= ~(uint64_t)VMENTRY_GUEST_IA32E;
        may1 = must1 | VMENTRY_GUEST_IA32E | VMENTRY_LOAD_EFER |
               VMENTRY_LOAD_IA32_PAT;
        break;
    case HV_VMX_CAP_EXIT:
        must1 = 0x36dff;
        may1 = must1 | VMEXIT_HOST_IA32E | VMEXIT_SAVE_EFER | VMEXIT_LOAD_EFER |
               VMEXIT_SAVE_IA32_PAT | VMEXIT_LOAD_IA32_PAT;
        break;
    case HV_VMX_CAP_PREEMPTION_TIMER: *value = 0; return HV_SUCCESS;
    default: return HV_BAD_ARGUMENT;
    }
    *value = (may1 << 32) | must1;
    return HV_SUCCESS;
}
