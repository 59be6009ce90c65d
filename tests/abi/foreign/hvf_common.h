/* Apple Hypervisor.framework names of its arm64 API that its x86 API
 * shares, as libhvcore's own declarations (written from Apple's documented
 * names and signatures, not copied from its headers), for hvf_arm64.h. The
 * x86 API is tests/hvf_host/include/Hypervisor/, which the HVF backend
 * builds against. tests/abi/check_foreign_names.sh compiles both with
 * <hvcore.h> to prove that libhvcore declares nothing in the hv_/HV_
 * namespace that Hypervisor.framework owns. The arm64 declarations are
 * never used to build or call anything. */
#ifndef HVCORE_TEST_FOREIGN_HVF_COMMON_H
#define HVCORE_TEST_FOREIGN_HVF_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The framework's return codes are the same on both architectures: the
 * declarations the x86 backend builds against. */
#include "Hypervisor/hv_error.h"

/* Guest memory permissions for hv_vm_map() and hv_vm_protect(). */
typedef uint64_t hv_memory_flags_t;
enum {
    HV_MEMORY_READ = 1 << 0,
    HV_MEMORY_WRITE = 1 << 1,
    HV_MEMORY_EXEC = 1 << 2
};

/* The one VM of the calling process (both architectures). */
hv_return_t hv_vm_destroy(void);

#endif /* HVCORE_TEST_FOREIGN_HVF_COMMON_H */
