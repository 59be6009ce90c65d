/**
 * @file hvcore/vm.h
 * @brief Virtual machines: creation, pause/resume, I/O dispatch, interrupts.
 *
 * A ::hvc_vm is one guest. Its memory regions (hvcore/memory.h), its vCPUs
 * (hvcore/vcpu.h) and the I/O handlers registered here hang under it and
 * are destroyed with it.
 *
 * Thread rules: hvc_vm_pause(), hvc_vm_resume(), hvc_vm_set_irq(),
 * hvc_vm_send_msi(), hvc_vm_read()/hvc_vm_write() and the I/O handler calls may
 * be called from any thread. hvc_vm_destroy() must not race with any other
 * call on the same VM.
 */
#ifndef HVCORE_VM_H
#define HVCORE_VM_H

#include "common.h"
#include "hypervisor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One guest. Opaque. */
typedef struct hvc_vm hvc_vm;
/** One virtual CPU, see hvcore/vcpu.h. Opaque. */
typedef struct hvc_vcpu hvc_vcpu;

/** Flags for hvc_vm_options::flags. */
typedef enum hvc_vm_flags {
    /**
     * No in-kernel interrupt controller and PIT. HLT then returns to the
     * caller as ::HVC_EXIT_HLT, and hvc_vm_set_irq()/hvc_vm_send_msi() fail
     * with -ENOTSUP. Without this flag the VM gets the backend's interrupt
     * controllers (on KVM: PIC, IOAPIC, LAPICs and PIT), and HLT waits in
     * the kernel for an interrupt.
     */
    HVC_VM_NO_IRQCHIP = 1u << 0,
    /**
     * Gives every vCPU a dirty ring (KVM: KVM_CAP_DIRTY_LOG_RING, which
     * must be enabled before the first vCPU exists, hence a creation
     * flag). Dirty tracking in this VM then always uses the ring
     * (::HVC_DIRTY_RING), never the bitmap: with the ring, KVM keeps no
     * bitmap. Each ring holds 65536 pages (1 MiB per vCPU), or the
     * backend's maximum if smaller; a vCPU whose ring fills exits to the
     * library, which empties it and enters again. A host that lets a ring
     * overflow (KVM over PVM does, when a guest dirties more pages than
     * the ring holds without leaving the guest) loses entries: the library
     * then reports every tracked page, and if the vCPU cannot go on,
     * hvc_vcpu_run() fails with -EOVERFLOW. -ENOTSUP from
     * hvc_vm_create() when ::HVC_CAP_DIRTY_TRACKING lacks
     * ::HVC_DIRTY_RING.
     */
    HVC_VM_DIRTY_RING = 1u << 1,
    /**
     * The library's own interrupt controllers instead of the backend's: a
     * local APIC per vCPU (xAPIC page and x2APIC MSRs, timer in one-shot,
     * periodic and TSC-deadline modes), an IOAPIC with 24 pins, the two
     * 8259s and the 8254 PIT, emulated in the process (src/arch/x86).
     * hvc_vm_set_irq() and hvc_vm_send_msi() reach them; HLT waits inside
     * hvc_vcpu_run() for an interrupt (or a kick, or a pause) as it does in
     * the kernel; their state travels in snapshots and migrations. The
     * timers run on a thread of the VM's own. A backend that has no
     * in-kernel controllers (::HVC_CAP_IRQCHIP_LAPIC and the others answer
     * ::HVC_IRQCHIP_USER) gets this without asking. Not with
     * ::HVC_VM_NO_IRQCHIP (-EINVAL). On KVM: no KVM_CREATE_IRQCHIP nor PIT;
     * IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC MSRs reach the
     * library through KVM's userspace-MSR exits (KVM_CAP_X86_USER_SPACE_MSR
     * and KVM_X86_SET_MSR_FILTER); -ENOTSUP when the host has neither.
     * Interrupt eventfds (hvc_vm_irq_eventfd()) are unavailable (-ENOTSUP).
     */
    HVC_VM_USER_IRQCHIP = 1u << 2
} hvc_vm_flags;

/**
 * VM creation options. Initialise with ::HVC_VM_OPTIONS_INIT; fields are only
 * ever appended, and the library reads only the fields that @c size covers.
 */
typedef struct hvc_vm_options {
    /** sizeof(hvc_vm_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_vm_flags. */
    uint32_t flags;
    /** Most vCPUs this VM will have; 0 picks the backend maximum. */
    uint32_t max_vcpus;
    /**
     * Signal used to kick vCPU threads out of the guest; 0 picks SIGRTMIN.
     * The library installs a no-op handler (SA_RESTART) for it when its
     * disposition is the default; a caller-installed handler is kept.
     * Only backends that kick with a signal use it (KVM); others (HVF:
     * hv_vcpu_interrupt) ignore it, and a kick behaves the same on all.
     */
    int32_t kick_signal;
} hvc_vm_options;

/** Initialiser for ::hvc_vm_options with defaults. */
#define HVC_VM_OPTIONS_INIT                                                    \
    {                                                                          \
        sizeof(hvc_vm_options), 0, 0, 0                                        \
    }

/**
 * Creates a VM.
 *
 * @param opts options, or NULL for the defaults.
 * @param out  receives the VM.
 * @return 0; -EINVAL (NULL handle, unknown size or flags, max_vcpus above
 *         ::HVC_CAP_MAX_VCPUS); -EBUSY when the process already has
 *         ::HVC_CAP_MAX_VMS VMs on this backend; -ENOMEM; a backend error.
 */
HVC_EXTERN int hvc_vm_create(hvc_hypervisor *hv, const hvc_vm_options *opts,
                             hvc_vm **out);

/**
 * Destroys a VM with its vCPUs, memory regions and I/O handlers.
 *
 * @return 0; -EINVAL for NULL; -EBUSY while a vCPU is inside hvc_vcpu_run()
 *         (stop the vCPU threads first; nothing is destroyed then);
 *         -EDEADLK from an I/O handler or the event thread of the same VM.
 */
HVC_EXTERN int hvc_vm_destroy(hvc_vm *vm);

/**
 * Stops every vCPU of the VM and keeps it stopped until hvc_vm_resume().
 *
 * A vCPU that is in the guest is taken out of it; its thread stays inside
 * hvc_vcpu_run() (it does not return) and waits there. A vCPU whose thread
 * calls hvc_vcpu_run() while paused waits likewise. When the call returns,
 * no vCPU executes guest code, so its state can be read or written from
 * this thread. Pauses nest: each call needs its own hvc_vm_resume().
 * The outermost pause is the TSC pause point (hvcore/tsc.h): the guest's
 * clocks as a save sees them, and as the freeze policy keeps them.
 * Once the vCPUs stopped, the library's devices that serve requests on
 * threads of their own (virtio-blk) finish the request they are doing and
 * start no other until the last hvc_vm_resume(), so no request is
 * half-done in a saved state; the call may wait as long as that request
 * takes.
 *
 * @return 0; -EINVAL for NULL; -EDEADLK when called from an I/O handler of
 *         the same VM (it would wait on itself) or from its event thread
 *         (an fd-watch or doorbell callback, which a vCPU's I/O handler may
 *         be waiting for); a backend error when the
 *         pause point cannot be taken (the VM is then not paused).
 */
HVC_EXTERN int hvc_vm_pause(hvc_vm *vm);

/**
 * Undoes one hvc_vm_pause(); the last one lets the vCPUs run again, after
 * applying the TSC pause policy (hvcore/tsc.h).
 *
 * @return 0; -EINVAL for NULL or when the VM is not paused; a backend error
 *         when the freeze policy cannot be applied (the VM then stays
 *         paused: retry, or switch to the advance policy and resume);
 *         -EBUSY, or the audit's error, when the sharing guard
 *         (hvc_vm_set_sharing_guard(), hvcore/audit.h) finds shared pages
 *         (the VM then stays paused).
 */
HVC_EXTERN int hvc_vm_resume(hvc_vm *vm);

/** Non-zero when @p vm is paused (0 for NULL). */
HVC_EXTERN int hvc_vm_is_paused(const hvc_vm *vm);

/** Address spaces for I/O handlers and exits. */
typedef enum hvc_io_space {
    /** x86 port I/O; addresses are 0..0xffff. */
    HVC_IO_PIO = 0,
    /** Memory-mapped I/O; addresses are guest-physical. */
    HVC_IO_MMIO = 1
} hvc_io_space;

/**
 * Return value of an ::hvc_io_fn that handled the access and wants
 * hvc_vcpu_run() to return to its caller (the exit then has
 * ::HVC_EXIT_F_HANDLED set). Return 0 to keep running the guest.
 */
#define HVC_IO_EXIT 1

/**
 * An I/O handler, called on the vCPU thread that made the access.
 *
 * For a read, fill @p data with @p size bytes; for a write, @p data holds
 * them (little-endian, as the guest wrote them). String and `rep` port I/O
 * call the handler once per element.
 *
 * Handlers of one range may run concurrently on several vCPU threads; they
 * protect their own state. A handler may call hvc_vcpu_kick(),
 * hvc_vm_set_irq(), hvc_vm_read()/hvc_vm_write(), but not hvc_vm_pause() or
 * hvc_vm_destroy().
 *
 * @param opaque the pointer given when the handler was registered.
 * @param vcpu   the vCPU that made the access.
 * @param offset offset of the access from the start of the range.
 * @param data   the data; @p size bytes.
 * @param size   1, 2, 4 or 8 (MMIO up to 8; port I/O up to 4).
 * @param is_write non-zero for OUT or a memory write.
 * @return 0 to continue the guest; ::HVC_IO_EXIT to return to the caller of
 *         hvc_vcpu_run(); a negative errno to make hvc_vcpu_run() fail with
 *         it (the handler should describe the problem in its own way; the
 *         library's message names the address).
 */
typedef int (*hvc_io_fn)(void *opaque, hvc_vcpu *vcpu, uint64_t offset,
                         void *data, uint32_t size, int is_write);

/**
 * Registers a handler for a port-I/O or MMIO range. Accesses that fall in
 * the range are served inside hvc_vcpu_run() without returning.
 *
 * An access must lie wholly inside one range to reach its handler. One
 * that straddles a range's start or end (a 4-byte IN at the last port of a
 * range, say) reaches no handler, not even in part: hvc_vcpu_run() returns
 * it to the caller as an unclaimed ::HVC_EXIT_PIO or ::HVC_EXIT_MMIO exit,
 * with all-ones read data until hvc_vcpu_complete_io(), like any access
 * nobody registered.
 *
 * @param space  ::HVC_IO_PIO or ::HVC_IO_MMIO.
 * @param base   first port or guest-physical address of the range.
 * @param length number of ports or bytes; non-zero.
 * @param fn     the handler, called for reads and writes.
 * @param opaque passed to @p fn unchanged.
 * @return 0; -EINVAL (NULL, bad space, zero or wrapping length, a port
 *         range past 0xffff); -EEXIST when it overlaps a registered range
 *         (the message names both); -ENOMEM.
 */
HVC_EXTERN int hvc_vm_add_io_handler(hvc_vm *vm, int space, uint64_t base,
                                     uint64_t length, hvc_io_fn fn,
                                     void *opaque);

/**
 * Removes the handler registered at exactly @p space / @p base. Once the
 * call returns, the handler is not running and will not be called again.
 *
 * @return 0; -EINVAL for NULL or a bad space; -ENOENT when nothing is
 *         registered at @p base.
 */
HVC_EXTERN int hvc_vm_remove_io_handler(hvc_vm *vm, int space, uint64_t base);

/**
 * Sets the level of an interrupt line (GSI) of the VM's interrupt
 * controllers, the backend's or (::HVC_VM_USER_IRQCHIP) the library's. For
 * an edge-triggered line, raise then lower it. A line has
 * one level for all its users: two devices cannot share a GSI (each would
 * undo the other's level).
 *
 * @param gsi   the global system interrupt number (0..23 on the IOAPIC;
 *              0..15 also reach the PIC).
 * @param level 1 to raise, 0 to lower.
 * @return 0; -EINVAL for NULL or a GSI out of range; -ENOTSUP when the VM
 *         was created with ::HVC_VM_NO_IRQCHIP.
 */
HVC_EXTERN int hvc_vm_set_irq(hvc_vm *vm, uint32_t gsi, int level);

/**
 * Sends a message-signalled interrupt.
 *
 * @param address the MSI address (0xfeexxxxx on x86).
 * @param data    the MSI data.
 * @return 0 when delivered; -EAGAIN when the guest blocked it; -EINVAL
 *         (on the library's chips also for an address outside
 *         0xfee00000-0xfeefffff or an SMI, INIT or SIPI delivery mode);
 *         -ENOTSUP in a VM created with ::HVC_VM_NO_IRQCHIP.
 */
HVC_EXTERN int hvc_vm_send_msi(hvc_vm *vm, uint64_t address, uint32_t data);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_VM_H */
