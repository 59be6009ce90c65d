/* Hypervisor.framework (Intel Macs): the VMCS and the host's VMX
 * capabilities. See hv_error.h. */
#ifndef HVF_HOST_HV_VMX_H
#define HVF_HOST_HV_VMX_H

#include "hv_error.h"
#include "hv_types.h"

/* hv_vmx_read_capability() fields: the allowed settings of a control
 * field, low 32 bits = bits that must be 1, high 32 bits = bits that may
 * be 1 (as the VMX capability MSRs report them). */
typedef enum {
    HV_VMX_CAP_PINBASED = 0,
    HV_VMX_CAP_PROCBASED = 1,
    HV_VMX_CAP_PROCBASED2 = 2,
    HV_VMX_CAP_ENTRY = 3,
    HV_VMX_CAP_EXIT = 4,
    HV_VMX_CAP_PREEMPTION_TIMER = 32
} hv_vmx_capability_t;

/* Shadow-VMCS access permissions (hv_vmx_vcpu_set_shadow_access). */
enum { HV_SHADOW_VMCS_NONE = 0, HV_SHADOW_VMCS_READ = 1 << 0,
       HV_SHADOW_VMCS_WRITE = 1 << 1 };

hv_return_t hv_vmx_read_capability(hv_vmx_capability_t field, uint64_t *value);
/* The owning thread only. */
hv_return_t hv_vmx_vcpu_read_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                  uint64_t *value);
hv_return_t hv_vmx_vcpu_write_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                   uint64_t value);
hv_return_t hv_vmx_vcpu_read_shadow_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                         uint64_t *value);
hv_return_t hv_vmx_vcpu_write_shadow_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                          uint64_t value);
hv_return_t hv_vmx_vcpu_set_shadow_access(hv_vcpuid_t vcpu, uint32_t field,
                                          uint64_t access);
hv_return_t hv_vmx_vcpu_set_apic_address(hv_vcpuid_t vcpu, hv_gpaddr_t gpa);

#endif
