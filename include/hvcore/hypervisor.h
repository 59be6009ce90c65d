/**
 * @file hvcore/hypervisor.h
 * @brief Opening an accelerator backend and asking what it can do.
 *
 * A ::hvc_hypervisor is one opened backend ("kvm" on Linux, "hvf" on macOS).
 * It is the root of the object tree: VMs are created from it and must be
 * destroyed before it is closed.
 *
 * Thread rules: all functions here may be called from any thread. A
 * hypervisor handle may be shared by threads that create VMs from it.
 */
#ifndef HVCORE_HYPERVISOR_H
#define HVCORE_HYPERVISOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opened accelerator backend. Opaque. */
typedef struct hvc_hypervisor hvc_hypervisor;

/**
 * Capabilities, queried with hvc_hypervisor_get_cap(). Values are stable and
 * never renumbered; new capabilities are appended.
 */
typedef enum hvc_cap {
    /** Largest number of vCPUs a VM may have. */
    HVC_CAP_MAX_VCPUS = 1,
    /** Number of vCPUs the backend recommends at most (host CPUs). */
    HVC_CAP_NR_VCPUS = 2,
    /** Largest number of memory regions a VM may have. */
    HVC_CAP_MAX_MEMORY_REGIONS = 3,
    /** Non-zero when read-only memory regions are supported. */
    HVC_CAP_READONLY_MEMORY = 4,
    /** Bit mask of ::hvc_dirty_mode values the backend supports. */
    HVC_CAP_DIRTY_TRACKING = 5,
    /** Non-zero when the guest TSC frequency can be scaled in hardware. */
    HVC_CAP_TSC_SCALING = 6,
    /** Non-zero when the guest TSC offset can be set per vCPU. */
    HVC_CAP_TSC_OFFSET = 7,
    /** Non-zero when an in-kernel interrupt controller and PIT exist. */
    HVC_CAP_IRQCHIP = 8,
    /** Non-zero when MSIs can be injected with hvc_vm_send_msi(). */
    HVC_CAP_MSI = 9,
    /** Size in bytes of the blob hvc_vcpu_get_fpu_state() produces. */
    HVC_CAP_FPU_STATE_SIZE = 10,
    /** Non-zero when event-fd interrupt injection (irqfd) exists. */
    HVC_CAP_IRQFD = 11,
    /** Non-zero when event-fd doorbells (ioeventfd) exist. */
    HVC_CAP_IOEVENTFD = 12,
    /** Highest guest-physical address bit count the backend supports. */
    HVC_CAP_PHYS_ADDR_BITS = 13,
    /** Interrupt lines (GSIs) a VM has: hvc_vm_set_irq() takes 0 to this
     * number less one. */
    HVC_CAP_IRQ_LINES = 14,
    /** Largest number of VMs that may exist at once in this process on this
     * backend (all hvc_hypervisor handles together); 0 means the backend
     * sets no limit of its own (KVM: only memory and descriptors limit it).
     * Hypervisor.framework: 1. hvc_vm_create() beyond it fails with
     * -EBUSY. */
    HVC_CAP_MAX_VMS = 15,
    /** The page size of guest memory in bytes: the granule of guest-physical
     * addresses and lengths of memory regions (4096 on x86 hosts). */
    HVC_CAP_PAGE_SIZE = 16
} hvc_cap;

/**
 * Dirty-page tracking modes and their properties, as bits of
 * ::HVC_CAP_DIRTY_TRACKING (what the backend can do) and of
 * hvc_memory_dirty_mode() (what a tracked region uses); one of the modes
 * as hvc_dirty_options::mode. hvcore/memory.h has the calls.
 */
typedef enum hvc_dirty_mode {
    /** hvc_dirty_options::mode only: the library picks (the ring in a VM
     * created with ::HVC_VM_DIRTY_RING, else the bitmap). */
    HVC_DIRTY_AUTO = 0,
    /** A bitmap per memory region, fetched and cleared by the VMM. */
    HVC_DIRTY_BITMAP = 1u << 0,
    /** A ring of dirtied pages per vCPU, which the library harvests into
     * the region's bitmap. Needs a VM created with ::HVC_VM_DIRTY_RING. */
    HVC_DIRTY_RING = 1u << 1,
    /**
     * A property of the bitmap: starting it marks every page dirty
     * without write-protecting any (KVM: KVM_DIRTY_LOG_INITIALLY_SET), so
     * a start costs the same on any size of region, and each page is
     * write-protected only when a fetch first reports it. Never with the
     * ring.
     */
    HVC_DIRTY_INITIALLY_SET = 1u << 2,
    /**
     * A property of the bitmap: a fetch re-arms only the pages it reports,
     * in chunks (KVM: KVM_CLEAR_DIRTY_LOG), rather than the whole region
     * at once.
     */
    HVC_DIRTY_MANUAL_CLEAR = 1u << 3
} hvc_dirty_mode;

/**
 * Number of backends compiled into this library (0 on a core-only build).
 */
HVC_EXTERN size_t hvc_backend_count(void);

/**
 * Name of compiled-in backend @p index ("kvm", "hvf").
 *
 * @return a static string, or NULL when @p index >= hvc_backend_count().
 */
HVC_EXTERN const char *hvc_backend_name(size_t index);

/**
 * Checks whether backend @p name can open on this host right now, without
 * keeping anything open.
 *
 * @return 0 when it can; -ENOENT when no backend of that name is compiled
 *         in; otherwise the error opening it would give (-EACCES when
 *         /dev/kvm is not accessible, -ENODEV when it does not exist, ...),
 *         with hvc_last_error() saying why.
 */
HVC_EXTERN int hvc_backend_probe(const char *name);

/**
 * Opens a backend.
 *
 * @param name a backend name from hvc_backend_name(), or NULL or "auto" to
 *             open the first compiled-in backend that works on this host.
 * @param out  receives the handle on success; untouched on failure.
 * @return 0, -EINVAL (NULL @p out), -ENOENT (unknown name or no backend
 *         available), or the backend's own error (-EACCES, -ENODEV, ...).
 */
HVC_EXTERN int hvc_hypervisor_open(const char *name, hvc_hypervisor **out);

/**
 * Closes a backend opened with hvc_hypervisor_open().
 *
 * @return 0; -EINVAL for NULL; -EBUSY while VMs created from it still exist
 *         (destroy them first).
 */
HVC_EXTERN int hvc_hypervisor_close(hvc_hypervisor *hv);

/** Name of the backend behind @p hv, or NULL when @p hv is NULL. */
HVC_EXTERN const char *hvc_hypervisor_backend(const hvc_hypervisor *hv);

/**
 * Queries one capability.
 *
 * @param cap   an ::hvc_cap value.
 * @param value receives the value (0 for an absent boolean capability).
 * @return 0; -EINVAL for NULL arguments or a capability this library
 *         version does not know.
 */
HVC_EXTERN int hvc_hypervisor_get_cap(hvc_hypervisor *hv, int cap,
                                      uint64_t *value);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_HYPERVISOR_H */
