/* Apple Hypervisor.framework, Intel (x86-64) API: libhvcore's own
 * declarations of the documented names and signatures, for the collision
 * check only (see hvf_common.h). */
#ifndef HVCORE_TEST_FOREIGN_HVF_X86_H
#define HVCORE_TEST_FOREIGN_HVF_X86_H

#include "hvf_common.h"

typedef uint64_t hv_vm_options_t;
typedef uint64_t hv_vcpu_options_t;
typedef unsigned hv_vcpuid_t;
typedef const void *hv_uvaddr_t;
typedef uint64_t hv_gpaddr_t;
typedef unsigned hv_vm_space_t;
typedef uint64_t hv_capability_t;

enum { HV_VM_DEFAULT = 0 };
enum { HV_VCPU_DEFAULT = 0 };
enum { HV_VM_SPACE_DEFAULT = 0 };
#define HV_DEADLINE_FOREVER UINT64_MAX

enum { HV_CAP_VCPUMAX = 0, HV_CAP_ADDRSPACEMAX = 1 };

/* Architectural registers by id, in the framework's order. */
typedef enum {
    HV_X86_RIP,
    HV_X86_RFLAGS,
    HV_X86_RAX,
    HV_X86_RCX,
    HV_X86_RDX,
    HV_X86_RBX,
    HV_X86_RSI,
    HV_X86_RDI,
    HV_X86_RSP,
    HV_X86_RBP,
    HV_X86_R8,
    HV_X86_R9,
    HV_X86_R10,
    HV_X86_R11,
    HV_X86_R12,
    HV_X86_R13,
    HV_X86_R14,
    HV_X86_R15,
    HV_X86_CS,
    HV_X86_SS,
    HV_X86_DS,
    HV_X86_ES,
    HV_X86_FS,
    HV_X86_GS,
    HV_X86_IDT_BASE,
    HV_X86_IDT_LIMIT,
    HV_X86_GDT_BASE,
    HV_X86_GDT_LIMIT,
    HV_X86_LDTR,
    HV_X86_LDT_BASE,
    HV_X86_LDT_LIMIT,
    HV_X86_LDT_AR,
    HV_X86_TR,
    HV_X86_TSS_BASE,
    HV_X86_TSS_LIMIT,
    HV_X86_TSS_AR,
    HV_X86_CR0,
    HV_X86_CR1,
    HV_X86_CR2,
    HV_X86_CR3,
    HV_X86_CR4,
    HV_X86_DR0,
    HV_X86_DR1,
    HV_X86_DR2,
    HV_X86_DR3,
    HV_X86_DR4,
    HV_X86_DR5,
    HV_X86_DR6,
    HV_X86_DR7,
    HV_X86_TPR,
    HV_X86_XCR0,
    HV_X86_REGISTERS_MAX
} hv_x86_reg_t;

/* VMX capabilities of the host (hv_vmx_read_capability()). */
typedef enum {
    HV_VMX_CAP_PINBASED = 0,
    HV_VMX_CAP_PROCBASED = 1,
    HV_VMX_CAP_PROCBASED2 = 2,
    HV_VMX_CAP_ENTRY = 3,
    HV_VMX_CAP_EXIT = 4,
    HV_VMX_CAP_PREEMPTION_TIMER = 32
} hv_vmx_capability_t;

/* VMCS field encodings (Intel SDM, appendix B) under the framework's
 * names, for hv_vmx_vcpu_read_vmcs() and hv_vmx_vcpu_write_vmcs(). A
 * subset. */
enum {
    VMCS_VPID = 0x0000,
    VMCS_GUEST_ES = 0x0800,
    VMCS_GUEST_CS = 0x0802,
    VMCS_GUEST_SS = 0x0804,
    VMCS_GUEST_DS = 0x0806,
    VMCS_GUEST_FS = 0x0808,
    VMCS_GUEST_GS = 0x080a,
    VMCS_GUEST_LDTR = 0x080c,
    VMCS_GUEST_TR = 0x080e,
    VMCS_GUEST_PHYSICAL_ADDRESS = 0x2400,
    VMCS_CTRL_PIN_BASED = 0x4000,
    VMCS_CTRL_CPU_BASED = 0x4002,
    VMCS_CTRL_EXC_BITMAP = 0x4004,
    VMCS_CTRL_VMEXIT_CONTROLS = 0x400c,
    VMCS_CTRL_VMENTRY_CONTROLS = 0x4012,
    VMCS_CTRL_CPU_BASED2 = 0x401e,
    VMCS_RO_EXIT_REASON = 0x4402,
    VMCS_RO_VMEXIT_INSTR_LEN = 0x440c,
    VMCS_RO_EXIT_QUALIFIC = 0x6400,
    VMCS_GUEST_CR0 = 0x6800,
    VMCS_GUEST_CR3 = 0x6802,
    VMCS_GUEST_CR4 = 0x6804,
    VMCS_GUEST_RSP = 0x681c,
    VMCS_GUEST_RIP = 0x681e,
    VMCS_GUEST_RFLAGS = 0x6820
};

/* Basic VM-exit reasons (Intel SDM, appendix C) under the framework's
 * names. A subset. */
enum {
    VMX_REASON_EXC_NMI = 0,
    VMX_REASON_IRQ = 1,
    VMX_REASON_TRIPLE_FAULT = 2,
    VMX_REASON_CPUID = 10,
    VMX_REASON_HLT = 12,
    VMX_REASON_IO = 30,
    VMX_REASON_RDMSR = 31,
    VMX_REASON_WRMSR = 32,
    VMX_REASON_EPT_VIOLATION = 48
};

/* VMs and guest memory. */
hv_return_t hv_capability(hv_capability_t capability, uint64_t *value);
hv_return_t hv_vm_create(hv_vm_options_t flags);
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

/* vCPUs: each belongs to the thread that created it. */
hv_return_t hv_vcpu_create(hv_vcpuid_t *vcpu, hv_vcpu_options_t flags);
hv_return_t hv_vcpu_destroy(hv_vcpuid_t vcpu);
hv_return_t hv_vcpu_set_space(hv_vcpuid_t vcpu, hv_vm_space_t asid);
hv_return_t hv_vcpu_read_register(hv_vcpuid_t vcpu, hv_x86_reg_t reg,
                                  uint64_t *value);
hv_return_t hv_vcpu_write_register(hv_vcpuid_t vcpu, hv_x86_reg_t reg,
                                   uint64_t value);
hv_return_t hv_vcpu_read_fpstate(hv_vcpuid_t vcpu, void *buffer, size_t size);
hv_return_t hv_vcpu_write_fpstate(hv_vcpuid_t vcpu, void *buffer, size_t size);
hv_return_t hv_vcpu_enable_native_msr(hv_vcpuid_t vcpu, uint32_t msr,
                                      bool enable);
hv_return_t hv_vcpu_read_msr(hv_vcpuid_t vcpu, uint32_t msr, uint64_t *value);
hv_return_t hv_vcpu_write_msr(hv_vcpuid_t vcpu, uint32_t msr, uint64_t value);
hv_return_t hv_vcpu_flush(hv_vcpuid_t vcpu);
hv_return_t hv_vcpu_invalidate_tlb(hv_vcpuid_t vcpu);
hv_return_t hv_vcpu_run(hv_vcpuid_t vcpu);
hv_return_t hv_vcpu_run_until(hv_vcpuid_t vcpu, uint64_t deadline);
hv_return_t hv_vcpu_interrupt(hv_vcpuid_t *vcpus, unsigned int vcpu_count);
hv_return_t hv_vcpu_get_exec_time(hv_vcpuid_t vcpu, uint64_t *time);

/* VMX: the VMCS and host capabilities. */
hv_return_t hv_vmx_read_capability(hv_vmx_capability_t field, uint64_t *value);
hv_return_t hv_vmx_vcpu_read_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                  uint64_t *value);
hv_return_t hv_vmx_vcpu_write_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                   uint64_t value);
hv_return_t hv_vmx_vcpu_read_shadow_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                         uint64_t *value);
hv_return_t hv_vmx_vcpu_write_shadow_vmcs(hv_vcpuid_t vcpu, uint32_t field,
                                          uint64_t value);
hv_return_t hv_vmx_vcpu_set_apic_address(hv_vcpuid_t vcpu, hv_gpaddr_t gpa);

#endif /* HVCORE_TEST_FOREIGN_HVF_X86_H */
