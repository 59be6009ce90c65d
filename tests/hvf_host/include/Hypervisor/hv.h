/* Hypervisor.framework (Intel Macs): VMs, guest memory and vCPUs. See
 * hv_error.h. Rules the framework documents and tests/hvf_host enforces:
 * one VM per process (hv_vm_create on a process that has one: HV_BUSY);
 * a vCPU belongs to the thread that created it, and every hv_vcpu_* and
 * hv_vmx_vcpu_* call on it from another thread fails (HV_BAD_ARGUMENT),
 * except hv_vcpu_interrupt; hv_vcpu_destroy must also run on the owner. */
#ifndef HVF_HOST_HV_H
#define HVF_HOST_HV_H

#include "hv_arch_vmx.h"
#include "hv_arch_x86.h"
#include "hv_error.h"
#include "hv_types.h"
#include "hv_vmx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* hv_vcpu_create() options (macOS 10.15 / 11). */
enum { HV_VCPU_ACCEL_RDPMC = 1 << 0, HV_VCPU_TSC_RELATIVE = 1 << 1 };

hv_return_t hv_capability(hv_capability_t capability, uint64_t *value);

/* The one VM of the calling process. */
hv_return_t hv_vm_create(hv_vm_options_t flags);
hv_return_t hv_vm_destroy(void);
hv_return_t hv_vm_map(hv_uvaddr_t uva, hv_gpaddr_t gpa, size_t size,
                      hv_memory_flags_t flags);
hv_return_t hv_vm_unmap(hv_gpaddr_t gpa, size_t size);
hv_return_t hv_vm_protect(hv_gpaddr_t gpa, size_t size,
                          hv_memory_flags_t flags);
hv_return_t hv_vm_sync_tsc(uint64_t tsc);
hv_return_t hv_vm_space_create(hv_vm_space_t *asid);
hv_return_t hv_vm_space_destroy(hv_vm_space_t asid);
hv_return_t hv_vm_map_space(hv_vm_space_t asid, hv_uvaddr_t uva,
                            hv_gpaddr_t gpa, size_t size,
                            hv_memory_flags_t flags);
hv_return_t hv_vm_unmap_space(hv_vm_space_t asid, hv_gpaddr_t gpa, size_t size);
hv_return_t hv_vm_protect_space(hv_vm_space_t asid, hv_gpaddr_t gpa,
                                size_t size, hv_memory_flags_t flags);

/* vCPUs. */
hv_return_t hv_vcpu_create(hv_vcpuid_t *vcpu, hv_vcpu_options_t flags);
hv_return_t hv_vcpu_destroy(hv_vcpuid_t vcpu);
hv_return_t hv_vcpu_set_space(hv_vcpuid_t vcpu, hv_vm_space_t asid);
hv_return_t hv_vcpu_read_register(hv_vcpuid_t vcpu, hv_x86_reg_t reg,
                                  uint64_t *value);
hv_return_t hv_vcpu_write_register(hv_vcpuid_t vcpu, hv_x86_reg_t reg,
                                   uint64_t value);
/* The FXSAVE/XSAVE image of the vCPU (standard, non-compacted layout). */
hv_return_t hv_vcpu_read_fpstate(hv_vcpuid_t vcpu, void *buffer, size_t size);
hv_return_t hv_vcpu_write_fpstate(hv_vcpuid_t vcpu, void *buffer, size_t size);
hv_return_t hv_vcpu_enable_native_msr(hv_vcpuid_t vcpu, uint32_t msr,
                                      bool enable);
hv_return_t hv_vcpu_read_msr(hv_vcpuid_t vcpu, uint32_t msr, uint64_t *value);
hv_return_t hv_vcpu_write_msr(hv_vcpuid_t vcpu, uint32_t msr, uint64_t value);
hv_return_t hv_vcpu_flush(hv_vcpuid_t vcpu);
hv_return_t hv_vcpu_invalidate_tlb(hv_vcpuid_t vcpu);
/* Enters the guest until the next VM exit; the reason is in the VMCS. */
hv_return_t hv_vcpu_run(hv_vcpuid_t vcpu);
hv_return_t hv_vcpu_run_until(hv_vcpuid_t vcpu, uint64_t deadline);
/* Any thread: forces the listed vCPUs out of the guest. */
hv_return_t hv_vcpu_interrupt(hv_vcpuid_t *vcpus, unsigned int vcpu_count);
hv_return_t hv_vcpu_get_exec_time(hv_vcpuid_t vcpu, uint64_t *time);
/* With HV_VCPU_TSC_RELATIVE: guest TSC = hv_tsc_clock() + offset. */
hv_return_t hv_vcpu_set_tsc_relative(hv_vcpuid_t vcpu, int64_t offset);
uint64_t hv_tsc_clock(void);

#ifdef __cplusplus
}
#endif

#endif
