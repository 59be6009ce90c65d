/* Apple Hypervisor.framework names shared by its x86 and arm64 APIs, as
 * libhvcore's own declarations (written from Apple's documented names and
 * signatures, not copied from its headers). They exist for one purpose:
 * tests/abi/check_foreign_names.sh compiles them together with <hvcore.h>
 * to prove that libhvcore declares nothing in the hv_/HV_ namespace that
 * Hypervisor.framework owns and that its HVF backend must include. They are
 * never used to build or call anything. */
#ifndef HVCORE_TEST_FOREIGN_HVF_COMMON_H
#define HVCORE_TEST_FOREIGN_HVF_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The framework's return code is a Mach error (kern_return_t, an int). */
typedef int hv_return_t;

/* Mach errors of the framework: system 0x3e, subsystem 0xba5. */
#define HV_SUCCESS ((hv_return_t)0)
#define HV_ERROR ((hv_return_t)0xfae94001)
#define HV_BUSY ((hv_return_t)0xfae94002)
#define HV_BAD_ARGUMENT ((hv_return_t)0xfae94003)
#define HV_ILLEGAL_GUEST_STATE ((hv_return_t)0xfae94004)
#define HV_NO_RESOURCES ((hv_return_t)0xfae94005)
#define HV_NO_DEVICE ((hv_return_t)0xfae94006)
#define HV_DENIED ((hv_return_t)0xfae94007)
#define HV_UNSUPPORTED ((hv_return_t)0xfae9400f)

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
