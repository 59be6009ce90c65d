/* Hypervisor.framework (Intel Macs): types and flags. See hv_error.h. */
#ifndef HVF_HOST_HV_TYPES_H
#define HVF_HOST_HV_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t hv_vm_options_t;
typedef uint64_t hv_vcpu_options_t;
typedef unsigned hv_vcpuid_t;
typedef const void *hv_uvaddr_t;
typedef uint64_t hv_gpaddr_t;
typedef unsigned hv_vm_space_t;
typedef uint64_t hv_capability_t;
typedef uint64_t hv_memory_flags_t;

/* hv_vm_create() options. */
enum { HV_VM_DEFAULT = 0 };
/* hv_vcpu_create() options. */
enum { HV_VCPU_DEFAULT = 0 };
/* The default guest address space. */
enum { HV_VM_SPACE_DEFAULT = 0 };

/* Guest memory permissions (hv_vm_map, hv_vm_protect). */
enum {
    HV_MEMORY_READ = 1 << 0,
    HV_MEMORY_WRITE = 1 << 1,
    HV_MEMORY_EXEC = 1 << 2
};

/* hv_capability() queries. */
enum { HV_CAP_VCPUMAX = 0, HV_CAP_ADDRSPACEMAX = 1 };

/* hv_vcpu_run_until(): no deadline. */
#define HV_DEADLINE_FOREVER UINT64_MAX

#endif
