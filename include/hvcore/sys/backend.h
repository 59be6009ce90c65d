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
#include "../tsc.h"
#include "../vcpu.h"
#include "../vm.h"
#include "../x86.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Current value of hvc_backend_ops::version. 2 added hvc_backend_ops::tsc;
 * 3 the state calls migration needs (vcpu_flush and the *_state calls);
 * 4 gave vm_unmap_memory a length, made get_cap answer ::HVC_CAP_IRQ_LINES,
 * and requires vcpu_kick to be async-signal-safe; 5 added dirty-page
 * tracking (vm_dirty_start, vm_dirty_fetch, vm_dirty_stop) and made
 * vm_create honour ::HVC_VM_DIRTY_RING; 6 added hvc_backend_ops::flags
 * (::HVC_BACKEND_VCPU_THREAD_BOUND), wrote down the kick contract
 * (hvc_backend_ops::vcpu_kick) and made get_cap answer ::HVC_CAP_MAX_VMS and
 * ::HVC_CAP_PAGE_SIZE. All before 1.0, so no older table is accepted: the
 * core refuses one at open.
 */
#define HVC_BACKEND_OPS_VERSION 6

/**
 * Flags of hvc_backend_ops::flags (version 6).
 *
 * ::HVC_BACKEND_VCPU_THREAD_BOUND: each backend vCPU belongs to the thread
 * that created it (Hypervisor.framework: every hv_vcpu_* call from another
 * thread fails). The core then guarantees that vcpu_create, vcpu_destroy,
 * vcpu_run_prepare, vcpu_run, every vcpu_get_* / vcpu_set_*, vcpu_fpu_size,
 * vcpu_set_runnable, vcpu_flush, vcpu_state_size and the
 * hvc_backend_tsc_ops vcpu_* calls of one vCPU are all made on one thread,
 * its vCPU thread: a thread the library owns, started when the vCPU is
 * first needed (its first hvc_vcpu_run() or the first call that needs the
 * backend vCPU) and ended by hvc_vcpu_destroy(). Callers on other threads
 * are forwarded there by the core (src/core/vcpu_forward.c, docs/BACKENDS.md).
 * vcpu_kick is the only vCPU call made from other threads (and from signal
 * handlers). VM calls (vm_*) may still come from any thread, one VM's
 * calls possibly concurrently, as before. Without the flag a backend vCPU
 * may be called from any thread, one call at a time.
 */
#define HVC_BACKEND_VCPU_THREAD_BOUND 1u

/**
 * Kinds of backend state blobs (hvc_backend_ops::vcpu_get_state and
 * vm_get_state). Since stream format 2 every kind a backend implements has
 * an architectural layout, the same for every backend: the structs of
 * src/arch/x86/arch_state.h named below (a version/size header, then
 * fixed-size little-endian fields), so that a stream saved under one
 * backend restores under another. A stream records the backend's name as
 * information only. Kinds 1-9 and 64-67 carried KVM's UAPI structs in
 * format 1: they are retired, no backend implements them, and their
 * numbers are never reused. Never renumbered.
 */
typedef enum hvc_backend_state {
    /* Retired (format 1, KVM's structs): kvm_cpuid2, kvm_xcrs, kvm_msrs,
     * kvm_mp_state, kvm_lapic_state, kvm_vcpu_events, kvm_debugregs,
     * kvm_sregs, kvm_regs. */
    HVC_BACKEND_VCPU_CPUID = 1,
    HVC_BACKEND_VCPU_XCRS = 2,
    HVC_BACKEND_VCPU_MSRS = 3,
    HVC_BACKEND_VCPU_MP_STATE = 4,
    HVC_BACKEND_VCPU_LAPIC = 5,
    HVC_BACKEND_VCPU_EVENTS = 6,
    HVC_BACKEND_VCPU_DEBUGREGS = 7,
    HVC_BACKEND_VCPU_SREGS = 8,
    HVC_BACKEND_VCPU_REGS = 9,

    /* vCPU state, architectural (state17). A restore sets ARCH_CPUID,
     * ARCH_SREGS, ARCH_REGS, ARCH_XSAVE, ARCH_MSRS, ARCH_LAPIC, then
     * ARCH_EVENTS. A kind whose size is 0 on a vCPU is neither saved nor
     * expected. */
    /** General registers, RIP, RFLAGS by id (struct hvi_x86_regs). */
    HVC_BACKEND_VCPU_ARCH_REGS = 10,
    /** Segment and descriptor-table registers (VMX access rights), CR0,
     * CR2, CR3, CR4, CR8, EFER, IA32_APIC_BASE, DR0-DR3, DR6, DR7 (struct
     * hvi_x86_sregs). */
    HVC_BACKEND_VCPU_ARCH_SREGS = 11,
    /** (index, value) pairs of every MSR the backend saves, except those
     * other kinds and the TSC record carry (struct hvi_x86_msrs). */
    HVC_BACKEND_VCPU_ARCH_MSRS = 12,
    /** XCR0 and the XSAVE area in the standard (non-compacted) format
     * (struct hvi_x86_xsave). */
    HVC_BACKEND_VCPU_ARCH_XSAVE = 13,
    /** Pending and injected exception, interrupt, NMI; NMI blocking, the
     * interrupt shadow, SMM, the activity state (struct hvi_x86_events). */
    HVC_BACKEND_VCPU_ARCH_EVENTS = 14,
    /** The local APIC register page and IA32_APIC_BASE (struct
     * hvi_x86_lapic); size 0 when the backend has no local APIC model. */
    HVC_BACKEND_VCPU_ARCH_LAPIC = 15,
    /** The CPUID the vCPU was given (struct hvi_x86_cpuid). Setting it
     * checks every feature against what the host supports. */
    HVC_BACKEND_VCPU_ARCH_CPUID = 16,

    /* Retired (format 1): kvm_irqchip chips 0-2, kvm_pit_state2. */
    HVC_BACKEND_VM_PIC_MASTER = 64,
    HVC_BACKEND_VM_PIC_SLAVE = 65,
    HVC_BACKEND_VM_IOAPIC = 66,
    HVC_BACKEND_VM_PIT = 67,

    /* VM state, architectural (state17); size 0 for a chip the backend
     * does not model (a userspace one saves itself in the same layout). */
    /** The master 8259 (struct hvi_x86_pic). */
    HVC_BACKEND_VM_ARCH_PIC_MASTER = 68,
    /** The slave 8259 (struct hvi_x86_pic). */
    HVC_BACKEND_VM_ARCH_PIC_SLAVE = 69,
    /** The IOAPIC (struct hvi_x86_ioapic). */
    HVC_BACKEND_VM_ARCH_IOAPIC = 70,
    /** The 8254 PIT (struct hvi_x86_pit). */
    HVC_BACKEND_VM_ARCH_PIT = 71
} hvc_backend_state;

/** Flags of hvc_backend_ops::vm_map_memory. */
#define HVC_BACKEND_MAP_READONLY 1u

/** Flags of hvc_backend_ops::vm_dirty_start. */
#define HVC_BACKEND_DIRTY_CLEAN 1u /* first fetch: only pages written after */

/** Current value of hvc_backend_tsc_ops::version. */
#define HVC_BACKEND_TSC_OPS_VERSION 1

/** Flags of hvc_backend_tsc_ops::vm_set_frequency. */
#define HVC_BACKEND_TSC_PINNED 1u /* the VMM pinned the frequency */
#define HVC_BACKEND_TSC_SCALE 2u  /* program hardware scaling */

/** Flags of hvc_backend_clock::flags. */
#define HVC_BACKEND_CLOCK_KERNEL 1u /* host_tsc, realtime_ns from the kernel   \
                                     */
#define HVC_BACKEND_CLOCK_STABLE 2u /* the guest clock is TSC-stable */

/**
 * One sample of a VM's guest clock (KVM: kvmclock) with the host TSC and
 * CLOCK_REALTIME of the same instant, exactly when the backend could sample
 * them together (HVC_BACKEND_CLOCK_KERNEL), else within @c error_ns.
 */
typedef struct hvc_backend_clock {
    uint64_t clock_ns;
    uint64_t host_tsc;
    uint64_t realtime_ns;
    uint32_t flags;
    uint32_t error_ns;
} hvc_backend_clock;

/**
 * TSC virtualization, reached through hvc_backend_ops::tsc (NULL when the
 * backend has none: every TSC call then fails with -ENOTSUP). A separate,
 * separately versioned table, so the main one grows by one pointer. The
 * core keeps the policy (shared offset, pause points, the restore
 * procedure); a backend only does what its accelerator does.
 */
typedef struct hvc_backend_tsc_ops {
    /** ::HVC_BACKEND_TSC_OPS_VERSION the backend was written for. */
    uint32_t version;
    /**
     * Fills every field of @p info (its @c size is sizeof(hvc_tsc_info))
     * and the host's boot identity (all zero when unknown). May probe
     * once; later calls are cheap.
     */
    int (*get_info)(void *priv, hvc_tsc_info *info, uint8_t boot_id[16]);
    /** Reads the host TSC, ordered against the surrounding code. */
    uint64_t (*host_tsc)(void *priv);
    /**
     * Sets the VM's guest TSC frequency (HVC_BACKEND_TSC_* @p flags) for
     * vCPUs created from now on, and for the VM as a whole where the
     * accelerator can. Called only before any vCPU ran. The core then
     * calls vcpu_apply_frequency() for each vCPU that exists.
     */
    int (*vm_set_frequency)(void *vm_priv, uint32_t khz, uint32_t flags);
    /** Applies the VM's frequency (and the CPUID telling it) to a vCPU. */
    int (*vcpu_apply_frequency)(void *vcpu_priv);
    /** Samples the guest clock with the host TSC and CLOCK_REALTIME. */
    int (*vm_get_clock)(void *vm_priv, hvc_backend_clock *out);
    /**
     * Sets the guest clock to @p clock_ns; when @p realtime_ns is non-zero,
     * advanced by the CLOCK_REALTIME elapsed since @p realtime_ns (never
     * moved back), measured as close to the write as the backend can.
     */
    int (*vm_set_clock)(void *vm_priv, uint64_t clock_ns, uint64_t realtime_ns);
    /** Reads a vCPU's TSC offset. */
    int (*vcpu_get_offset)(void *vcpu_priv, uint64_t *offset);
    /** Writes a vCPU's TSC offset (ignored by hosts without the ability). */
    int (*vcpu_set_offset)(void *vcpu_priv, uint64_t offset);
    /** Switches reinjection of missed PIT ticks (no-op without a PIT). */
    int (*vm_set_pit_catchup)(void *vm_priv, int enable);
    /** Drops the PIT ticks queued for reinjection (no-op without one). */
    int (*vm_drop_pit_backlog)(void *vm_priv);
} hvc_backend_tsc_ops;

/** An accelerator backend. */
typedef struct hvc_backend_ops {
    /** ::HVC_BACKEND_OPS_VERSION the backend was written for. */
    uint32_t version;
    /** Short name, e.g. "kvm". */
    const char *name;

    /** Can the backend open on this host? Keeps nothing open. */
    int (*probe)(void);
    /** Opens the backend; stores its private pointer in @p priv. */
    int (*open)(void **priv);
    /** Closes what open() opened. */
    void (*close)(void *priv);
    /** Answers an ::hvc_cap; -EINVAL for one it does not know. */
    int (*get_cap)(void *priv, int cap, uint64_t *value);

    /** Creates a VM; @p opts is normalised (every field present). */
    int (*vm_create)(void *priv, const hvc_vm_options *opts, void **vm_priv);
    /** Destroys a VM; its vCPUs were destroyed before. */
    void (*vm_destroy)(void *vm_priv);
    /** Maps host memory at a guest-physical range into slot @p slot. */
    int (*vm_map_memory)(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                         uint64_t length, void *host_addr, uint32_t flags);
    /** Unmaps slot @p slot, which vm_map_memory() mapped at
     * [guest_addr, guest_addr + length) (Hypervisor.framework and WHP unmap
     * by range, not by slot). */
    int (*vm_unmap_memory)(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                           uint64_t length);
    /** Sets an interrupt line level. */
    int (*vm_set_irq)(void *vm_priv, uint32_t gsi, int level);
    /** Sends an MSI. */
    int (*vm_send_msi)(void *vm_priv, uint64_t address, uint32_t data);

    /** Creates vCPU @p id. */
    int (*vcpu_create)(void *vm_priv, uint32_t id, void **vcpu_priv);
    /** Destroys a vCPU. */
    void (*vcpu_destroy)(void *vcpu_priv);
    /**
     * Called once per hvc_vcpu_run() on the thread that is about to run the
     * vCPU, before any vcpu_run(); this thread stays the runner until
     * hvc_vcpu_run() returns.
     */
    int (*vcpu_run_prepare)(void *vcpu_priv);
    /**
     * Enters the guest once and fills @p exit. Returns -EINTR when the
     * entry was cut short by vcpu_kick() (the core then checks why).
     * Port and MMIO exits set their data pointer to a buffer the backend
     * hands to the guest on the next entry.
     */
    int (*vcpu_run)(void *vcpu_priv, hvc_exit *exit);
    /**
     * The kick. Contract, the same on every backend (the core relies on
     * nothing else, e.g. not on which signal, if any, a backend uses):
     * - if the runner is inside vcpu_run(), that entry returns -EINTR (or a
     *   normal exit that had already happened) promptly, without waiting
     *   for a guest event;
     * - otherwise the runner's next vcpu_run() returns -EINTR at once,
     *   without entering the guest for more than a bounded moment
     *   (Hypervisor.framework's hv_vcpu_interrupt() latches the same way);
     * - one kick makes at most one entry return -EINTR, and the core reads
     *   its own flags after every return, so a kick is never lost and a
     *   spurious -EINTR is harmless;
     * - async-signal-safe, never blocks, takes no lock the runner may hold:
     *   hvc_vcpu_kick() may be called from a signal handler.
     * Called from any thread, only once vcpu_run_prepare() has returned on
     * the runner and until the core lets the runner leave hvc_vcpu_run().
     * With ::HVC_BACKEND_VCPU_THREAD_BOUND this is the one vCPU call made
     * off the vCPU thread.
     */
    void (*vcpu_kick)(void *vcpu_priv);
    /** Reads scalar registers; ids are already validated as known. */
    int (*vcpu_get_regs)(void *vcpu_priv, const hvc_reg *ids, uint64_t *values,
                         size_t count);
    /** Writes scalar registers; all or nothing. */
    int (*vcpu_set_regs)(void *vcpu_priv, const hvc_reg *ids,
                         const uint64_t *values, size_t count);
    /** Reads a segment or descriptor-table register. */
    int (*vcpu_get_segment)(void *vcpu_priv, hvc_reg id, hvc_x86_segment *seg);
    /** Writes a segment or descriptor-table register. */
    int (*vcpu_set_segment)(void *vcpu_priv, hvc_reg id,
                            const hvc_x86_segment *seg);
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

    /* Version 2 (all before 1.0.0): TSC, interrupt eventfds, doorbells. */
    /** TSC virtualization (hvcore/tsc.h); NULL when there is none. */
    const hvc_backend_tsc_ops *tsc;
    /**
     * Connects (@p assign) or disconnects eventfd @p fd to GSI @p gsi: a
     * write to it raises an edge on the line without a call into the VMM
     * (KVM_IRQFD). NULL when the backend has no such path.
     */
    int (*vm_irqfd)(void *vm_priv, int fd, uint32_t gsi, int assign);
    /**
     * Makes a guest write of @p length bytes at @p addr in @p space (and,
     * when @p match, only of value @p data) signal eventfd @p fd without
     * leaving the guest (KVM_IOEVENTFD); or undoes it. NULL when the
     * backend has none.
     */
    int (*vm_ioeventfd)(void *vm_priv, int fd, uint32_t space, uint64_t addr,
                        uint32_t length, int match, uint64_t data, int assign);

    /* Version 3 (all before 1.0.0): migration. */
    /**
     * Completes what the last exit left pending (the data of a port or
     * MMIO read, a string I/O step) without entering the guest, so the
     * registers read next are the ones the guest will see. Called with the
     * vCPU out of the guest, on any thread.
     */
    int (*vcpu_flush)(void *vcpu_priv);
    /**
     * Size in bytes of a vCPU state blob of @p kind (::hvc_backend_state);
     * 0 when this vCPU has none of that kind (it is then neither saved
     * nor expected). -EINVAL for a kind the backend does not know.
     */
    int (*vcpu_state_size)(void *vcpu_priv, uint32_t kind, size_t *size);
    /** Reads a vCPU state blob; @p length is what vcpu_state_size() said.
     */
    int (*vcpu_get_state)(void *vcpu_priv, uint32_t kind, void *buf,
                          size_t length);
    /**
     * Writes a vCPU state blob that came from a stream: hostile input.
     * The backend checks @p length and every field it can before the
     * accelerator sees it, and names what is wrong.
     */
    int (*vcpu_set_state)(void *vcpu_priv, uint32_t kind, const void *buf,
                          size_t length);
    /** As vcpu_state_size(), for a VM state blob. */
    int (*vm_state_size)(void *vm_priv, uint32_t kind, size_t *size);
    /** As vcpu_get_state(), for a VM state blob. */
    int (*vm_get_state)(void *vm_priv, uint32_t kind, void *buf, size_t length);
    /** As vcpu_set_state(), for a VM state blob. */
    int (*vm_set_state)(void *vm_priv, uint32_t kind, const void *buf,
                        size_t length);

    /* Version 5 (before 1.0.0): dirty-page tracking. NULL when the backend
     * has none (every hvc_memory_dirty_* call then fails with -ENOTSUP).
     * The core calls them with the VM's memory map locked, one call at a
     * time per VM; vCPUs may be running. */
    /**
     * Starts logging writes to slot @p slot, which vm_map_memory() mapped
     * with @p guest_addr, @p length, @p host_addr and @p map_flags.
     * @p mode is ::HVC_DIRTY_BITMAP, ::HVC_DIRTY_RING, or ::HVC_DIRTY_AUTO
     * for the backend's choice; -ENOTSUP with a message when it cannot.
     * @p flags: HVC_BACKEND_DIRTY_*. Stores in @p used the mode chosen with
     * its property bits. With ::HVC_DIRTY_INITIALLY_SET in @p used, the
     * first fetch reports every page; without it, none written before the
     * start (the core then marks them itself unless asked not to).
     */
    int (*vm_dirty_start)(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                          uint64_t length, void *host_addr, uint32_t map_flags,
                          uint32_t mode, uint32_t flags, uint32_t *used);
    /**
     * Stores in @p bitmap (one bit per page of the slot, in whole 64-bit
     * words, zeroed by the core) the pages written since the start or the
     * previous fetch, and re-arms them. On failure, what it stored may
     * have been re-armed already: the core keeps those bits for the next
     * fetch.
     */
    int (*vm_dirty_fetch)(void *vm_priv, uint32_t slot, uint64_t length,
                          uint64_t *bitmap);
    /** Stops logging slot @p slot (arguments as vm_dirty_start()). */
    int (*vm_dirty_stop)(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                         uint64_t length, void *host_addr, uint32_t map_flags);

    /* Version 6 (before 1.0.0), branch core17: thread-bound vCPUs, the
     * VM limit and the page size. get_cap answers ::HVC_CAP_MAX_VMS (0: no
     * limit of the backend's own) and ::HVC_CAP_PAGE_SIZE (the granule of
     * vm_map_memory); a backend that answers -EINVAL gets the core's
     * defaults (no limit; the host page size). vm_irqfd and vm_ioeventfd
     * may be NULL: the core then emulates them (docs/BACKENDS.md). */
    /** HVC_BACKEND_* flags (::HVC_BACKEND_VCPU_THREAD_BOUND). */
    uint32_t flags;
} hvc_backend_ops;

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_SYS_BACKEND_H */
