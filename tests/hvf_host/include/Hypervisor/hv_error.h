/* Hypervisor.framework (Intel Macs): return codes. Part of libhvcore's own
 * declarations of Apple's documented C API (names, values and signatures
 * are the framework's; the text is ours), used to build src/backends/hvf
 * on Linux against tests/hvf_host, which implements the same calls on
 * /dev/kvm. On macOS the backend includes the SDK's headers instead. */
#ifndef HVF_HOST_HV_ERROR_H
#define HVF_HOST_HV_ERROR_H

/* A Mach error (kern_return_t is an int): system 0x3e, subsystem 0xba5. */
typedef int hv_return_t;

#define HV_SUCCESS ((hv_return_t)0)
#define HV_ERROR ((hv_return_t)0xfae94001)
#define HV_BUSY ((hv_return_t)0xfae94002)
#define HV_BAD_ARGUMENT ((hv_return_t)0xfae94003)
#define HV_ILLEGAL_GUEST_STATE ((hv_return_t)0xfae94004)
#define HV_NO_RESOURCES ((hv_return_t)0xfae94005)
#define HV_NO_DEVICE ((hv_return_t)0xfae94006)
#define HV_DENIED ((hv_return_t)0xfae94007)
#define HV_UNSUPPORTED ((hv_return_t)0xfae9400f)

#endif
