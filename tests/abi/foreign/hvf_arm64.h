/* Apple Hypervisor.framework, Apple silicon (arm64) API: libhvcore's own
 * declarations of the documented names and signatures, for the collision
 * check only (see hvf_common.h). */
#ifndef HVCORE_TEST_FOREIGN_HVF_ARM64_H
#define HVCORE_TEST_FOREIGN_HVF_ARM64_H

#include "hvf_common.h"

/* Configuration objects (reference-counted OS objects in the framework). */
typedef struct hv_vm_config_s *hv_vm_config_t;
typedef struct hv_vcpu_config_s *hv_vcpu_config_t;
typedef struct hv_gic_config_s *hv_gic_config_t;

typedef uint64_t hv_vcpu_t;
typedef uint64_t hv_ipa_t;
typedef uint64_t hv_exception_syndrome_t;
typedef uint64_t hv_exception_address_t;

/* Why hv_vcpu_run() returned. */
typedef enum {
    HV_EXIT_REASON_CANCELED = 0,
    HV_EXIT_REASON_EXCEPTION = 1,
    HV_EXIT_REASON_VTIMER_ACTIVATED = 2,
    HV_EXIT_REASON_UNKNOWN = 3
} hv_exit_reason_t;

typedef struct {
    hv_exception_syndrome_t syndrome;       /* ESR_EL2 */
    hv_exception_address_t virtual_address; /* FAR_EL2 */
    hv_ipa_t physical_address;              /* HPFAR_EL2 */
} hv_vcpu_exit_exception_t;

/* The exit record the framework hands out at vCPU creation. */
typedef struct {
    hv_exit_reason_t reason;
    hv_vcpu_exit_exception_t exception;
} hv_vcpu_exit_t;

typedef enum {
    HV_INTERRUPT_TYPE_IRQ = 0,
    HV_INTERRUPT_TYPE_FIQ = 1
} hv_interrupt_type_t;

/* General registers by id. */
typedef enum {
    HV_REG_X0 = 0,
    HV_REG_X1,
    HV_REG_X2,
    HV_REG_X3,
    HV_REG_X4,
    HV_REG_X5,
    HV_REG_X6,
    HV_REG_X7,
    HV_REG_X8,
    HV_REG_X9,
    HV_REG_X10,
    HV_REG_X11,
    HV_REG_X12,
    HV_REG_X13,
    HV_REG_X14,
    HV_REG_X15,
    HV_REG_X16,
    HV_REG_X17,
    HV_REG_X18,
    HV_REG_X19,
    HV_REG_X20,
    HV_REG_X21,
    HV_REG_X22,
    HV_REG_X23,
    HV_REG_X24,
    HV_REG_X25,
    HV_REG_X26,
    HV_REG_X27,
    HV_REG_X28,
    HV_REG_X29,
    HV_REG_FP = HV_REG_X29,
    HV_REG_X30,
    HV_REG_LR = HV_REG_X30,
    HV_REG_PC,
    HV_REG_FPCR,
    HV_REG_FPSR,
    HV_REG_CPSR
} hv_reg_t;

/* SIMD and floating-point registers Q0..Q31 by id. */
typedef enum {
    HV_SIMD_FP_REG_Q0 = 0,
    HV_SIMD_FP_REG_Q1,
    HV_SIMD_FP_REG_Q2,
    HV_SIMD_FP_REG_Q3,
    HV_SIMD_FP_REG_Q4,
    HV_SIMD_FP_REG_Q5,
    HV_SIMD_FP_REG_Q6,
    HV_SIMD_FP_REG_Q7,
    HV_SIMD_FP_REG_Q8,
    HV_SIMD_FP_REG_Q9,
    HV_SIMD_FP_REG_Q10,
    HV_SIMD_FP_REG_Q11,
    HV_SIMD_FP_REG_Q12,
    HV_SIMD_FP_REG_Q13,
    HV_SIMD_FP_REG_Q14,
    HV_SIMD_FP_REG_Q15,
    HV_SIMD_FP_REG_Q16,
    HV_SIMD_FP_REG_Q17,
    HV_SIMD_FP_REG_Q18,
    HV_SIMD_FP_REG_Q19,
    HV_SIMD_FP_REG_Q20,
    HV_SIMD_FP_REG_Q21,
    HV_SIMD_FP_REG_Q22,
    HV_SIMD_FP_REG_Q23,
    HV_SIMD_FP_REG_Q24,
    HV_SIMD_FP_REG_Q25,
    HV_SIMD_FP_REG_Q26,
    HV_SIMD_FP_REG_Q27,
    HV_SIMD_FP_REG_Q28,
    HV_SIMD_FP_REG_Q29,
    HV_SIMD_FP_REG_Q30,
    HV_SIMD_FP_REG_Q31
} hv_simd_fp_reg_t;

/* A 128-bit SIMD register's bytes (a vector type in the framework). */
typedef struct {
    uint8_t b[16];
} hv_simd_fp_uchar16_t;

/* System registers, numbered by their MSR/MRS encoding
 * (op0 << 14 | op1 << 11 | CRn << 7 | CRm << 3 | op2). A subset. */
typedef enum {
    HV_SYS_REG_MIDR_EL1 = 0xc000,
    HV_SYS_REG_MPIDR_EL1 = 0xc005,
    HV_SYS_REG_SCTLR_EL1 = 0xc080,
    HV_SYS_REG_CPACR_EL1 = 0xc082,
    HV_SYS_REG_TTBR0_EL1 = 0xc100,
    HV_SYS_REG_TTBR1_EL1 = 0xc101,
    HV_SYS_REG_TCR_EL1 = 0xc102,
    HV_SYS_REG_SPSR_EL1 = 0xc200,
    HV_SYS_REG_ELR_EL1 = 0xc201,
    HV_SYS_REG_SP_EL0 = 0xc208,
    HV_SYS_REG_ESR_EL1 = 0xc290,
    HV_SYS_REG_FAR_EL1 = 0xc300,
    HV_SYS_REG_MAIR_EL1 = 0xc510,
    HV_SYS_REG_VBAR_EL1 = 0xc600,
    HV_SYS_REG_TPIDR_EL1 = 0xc684,
    HV_SYS_REG_CNTV_CTL_EL0 = 0xdf19,
    HV_SYS_REG_CNTV_CVAL_EL0 = 0xdf1a,
    HV_SYS_REG_SP_EL1 = 0xe208
} hv_sys_reg_t;

/* Feature (ID) registers of a vCPU configuration. A subset. */
typedef enum {
    HV_FEATURE_REG_ID_AA64DFR0_EL1,
    HV_FEATURE_REG_ID_AA64DFR1_EL1,
    HV_FEATURE_REG_ID_AA64ISAR0_EL1,
    HV_FEATURE_REG_ID_AA64ISAR1_EL1,
    HV_FEATURE_REG_ID_AA64MMFR0_EL1,
    HV_FEATURE_REG_ID_AA64MMFR1_EL1,
    HV_FEATURE_REG_ID_AA64MMFR2_EL1,
    HV_FEATURE_REG_ID_AA64PFR0_EL1,
    HV_FEATURE_REG_ID_AA64PFR1_EL1,
    HV_FEATURE_REG_CTR_EL0,
    HV_FEATURE_REG_CLIDR_EL1,
    HV_FEATURE_REG_DCZID_EL0
} hv_feature_reg_t;

/* VM configuration and the VM. */
hv_vm_config_t hv_vm_config_create(void);
hv_return_t hv_vm_config_get_max_ipa_size(uint32_t *ipa_bit_length);
hv_return_t hv_vm_config_get_default_ipa_size(uint32_t *ipa_bit_length);
hv_return_t hv_vm_config_set_ipa_size(hv_vm_config_t config,
                                      uint32_t ipa_bit_length);
hv_return_t hv_vm_create(hv_vm_config_t config);
hv_return_t hv_vm_get_max_vcpu_count(uint32_t *max_vcpu_count);
hv_return_t hv_vm_map(void *addr, hv_ipa_t ipa, size_t size,
                      hv_memory_flags_t flags);
hv_return_t hv_vm_unmap(hv_ipa_t ipa, size_t size);
hv_return_t hv_vm_protect(hv_ipa_t ipa, size_t size, hv_memory_flags_t flags);

/* vCPU configuration and vCPUs: each belongs to the thread that created
 * it. */
hv_vcpu_config_t hv_vcpu_config_create(void);
hv_return_t hv_vcpu_config_get_feature_reg(hv_vcpu_config_t config,
                                           hv_feature_reg_t feature_reg,
                                           uint64_t *value);
hv_return_t hv_vcpu_create(hv_vcpu_t *vcpu, hv_vcpu_exit_t **exit,
                           hv_vcpu_config_t config);
hv_return_t hv_vcpu_destroy(hv_vcpu_t vcpu);
hv_return_t hv_vcpu_run(hv_vcpu_t vcpu);
hv_return_t hv_vcpus_exit(hv_vcpu_t *vcpus, uint32_t vcpu_count);
hv_return_t hv_vcpu_get_reg(hv_vcpu_t vcpu, hv_reg_t reg, uint64_t *value);
hv_return_t hv_vcpu_set_reg(hv_vcpu_t vcpu, hv_reg_t reg, uint64_t value);
hv_return_t hv_vcpu_get_simd_fp_reg(hv_vcpu_t vcpu, hv_simd_fp_reg_t reg,
                                    hv_simd_fp_uchar16_t *value);
hv_return_t hv_vcpu_set_simd_fp_reg(hv_vcpu_t vcpu, hv_simd_fp_reg_t reg,
                                    hv_simd_fp_uchar16_t value);
hv_return_t hv_vcpu_get_sys_reg(hv_vcpu_t vcpu, hv_sys_reg_t reg,
                                uint64_t *value);
hv_return_t hv_vcpu_set_sys_reg(hv_vcpu_t vcpu, hv_sys_reg_t reg,
                                uint64_t value);
hv_return_t hv_vcpu_get_pending_interrupt(hv_vcpu_t vcpu,
                                          hv_interrupt_type_t type,
                                          bool *pending);
hv_return_t hv_vcpu_set_pending_interrupt(hv_vcpu_t vcpu,
                                          hv_interrupt_type_t type,
                                          bool pending);
hv_return_t hv_vcpu_get_vtimer_mask(hv_vcpu_t vcpu, bool *vtimer_is_masked);
hv_return_t hv_vcpu_set_vtimer_mask(hv_vcpu_t vcpu, bool vtimer_is_masked);
hv_return_t hv_vcpu_get_vtimer_offset(hv_vcpu_t vcpu, uint64_t *vtimer_offset);
hv_return_t hv_vcpu_set_vtimer_offset(hv_vcpu_t vcpu, uint64_t vtimer_offset);
hv_return_t hv_vcpu_get_exec_time(hv_vcpu_t vcpu, uint64_t *time);
hv_return_t hv_vcpu_get_trap_debug_exceptions(hv_vcpu_t vcpu, bool *value);
hv_return_t hv_vcpu_set_trap_debug_exceptions(hv_vcpu_t vcpu, bool value);

/* The in-kernel GIC (macOS 15). */
hv_gic_config_t hv_gic_config_create(void);
hv_return_t hv_gic_create(hv_gic_config_t gic_config);
hv_return_t hv_gic_set_spi(uint32_t intid, bool level);

#endif /* HVCORE_TEST_FOREIGN_HVF_ARM64_H */
