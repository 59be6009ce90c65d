/**
 * @file hvcore/sys/backend.h
 * @brief The accelerator backend ops table.
 *
 * The core reaches an accelerator only through one of these tables. Each
 * backend (src/backends/kvm, src/backends/hvf) defines one as a
 * `static const` object listed in the core's registry. The table is
 * versioned by its first field and only ever grows at the end; a core that
 * finds a smaller @c version treats the missing entries as absent.
 *
 * This header is public so that backends can be written against a fixed
 * contract, but libhvcore 1.0 has no call to register a backend at run time:
 * the registry is the static list compiled in (a static link keeps every
 * backend). It is not part of the stable ABI until such a call exists; see
 * ABI.md.
 *
 * Every callback receives the private pointer the backend returned when it
 * created the object. Callbacks return 0 or a negative errno and describe
 * failures with the core's error function (set before returning).
 */
#ifndef HVCORE_SYS_BACKEND_H
#define HVCORE_SYS_BACKEND_H

#include "../common.h"
#include "../vcpu.h"
#include "../vm.h"
#include "../x86.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Current value of hv_backend_ops::version. */
#define HV_BACKEND_OPS_VERSION 1

/** Flags of hv_backend_ops::vm_map_memory. */
#define HV_BACKEND_MAP_READONLY 1u

/** An accelerator backend. */
typedef struct hv_backend_ops {
    /** ::HV_BACKEND_OPS_VERSION the backend was written for. */
    uint32_t version;
    /** Short name, e.g. "kvm". */
    const char *name;

    /** Can the backend open on this host? Keeps nothing open. */
    int (*probe)(void);
    /** Opens the backend; stores its private pointer in @p priv. */
    int (*open)(void **priv);
    /** Closes what open() opened. */
    void (*close)(void *priv);
    /** Answers an ::hv_cap; -EINVAL for one it does not know. */
    int (*get_cap)(void *priv, int cap, uint64_t *value);

    /** Creates a VM; @p opts is normalised (every field present). */
    int (*vm_create)(void *priv, const hv_vm_options *opts, void **vm_priv);
    /** Destroys a VM; its vCPUs were destroyed before. */
    void (*vm_destroy)(void *vm_priv);
    /** Maps host memory at a guest-physical range into slot @p slot. */
    int (*vm_map_memory)(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                         uint64_t length, void *host_addr, uint32_t flags);
    /** Unmaps slot @p slot. */
    int (*vm_unmap_memory)(void *vm_priv, uint32_t slot, uint64_t guest_addr);
    /** Sets an interrupt line level. */
    int (*vm_set_irq)(void *vm_priv, uint32_t gsi, int level);
    /** Sends an MSI. */
    int (*vm_send_msi)(void *vm_priv, uint64_t address, uint32_t data);

    /** Creates vCPU @p id. */
    int (*vcpu_create)(void *vm_priv, uint32_t id, void **vcpu_priv);
    /** Destroys a vCPU. */
    void (*vcpu_destroy)(void *vcpu_priv);
    /**
     * Called once per hv_vcpu_run() on the thread that is about to run the
     * vCPU, before any vcpu_run(); this thread stays the runner until
     * hv_vcpu_run() returns.
     */
    int (*vcpu_run_prepare)(void *vcpu_priv);
    /**
     * Enters the guest once and fills @p exit. Returns -EINTR when the
     * entry was cut short by vcpu_kick() (the core then checks why).
     * Port and MMIO exits set their data pointer to a buffer the backend
     * hands to the guest on the next entry.
     */
    int (*vcpu_run)(void *vcpu_priv, hv_exit *exit);
    /**
     * Forces the runner thread out of the guest, or makes its next entry
     * return -EINTR at once. Called from any thread, only while the core
     * knows the runner is inside hv_vcpu_run().
     */
    void (*vcpu_kick)(void *vcpu_priv);
    /** Reads scalar registers; ids are already validated as known. */
    int (*vcpu_get_regs)(void *vcpu_priv, const hv_reg *ids, uint64_t *values,
                         size_t count);
    /** Writes scalar registers; all or nothing. */
    int (*vcpu_set_regs)(void *vcpu_priv, const hv_reg *ids,
                         const uint64_t *values, size_t count);
    /** Reads a segment or descriptor-table register. */
    int (*vcpu_get_segment)(void *vcpu_priv, hv_reg id, hv_x86_segment *seg);
    /** Writes a segment or descriptor-table register. */
    int (*vcpu_set_segment)(void *vcpu_priv, hv_reg id,
                            const hv_x86_segment *seg);
    /** Size of the FPU/XSAVE blob. */
    int (*vcpu_fpu_size)(void *vcpu_priv, size_t *size);
    /** Reads the FPU/XSAVE blob; @p length is at least vcpu_fpu_size(). */
    int (*vcpu_get_fpu)(void *vcpu_priv, void *buf, size_t length);
    /** Writes the FPU/XSAVE blob; @p length equals vcpu_fpu_size(). */
    int (*vcpu_set_fpu)(void *vcpu_priv, const void *buf, size_t length);
    /**
     * Makes the vCPU runnable now, as if started: an application processor
     * would otherwise wait for an INIT/SIPI from the guest.
     */
    int (*vcpu_set_runnable)(void *vcpu_priv);
} hv_backend_ops;

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_SYS_BACKEND_H */
