/**
 * @file hvcore/vcpu.h
 * @brief Virtual CPUs: creation, registers, running, exits, kicks.
 *
 * Thread rules: a vCPU is run by one thread at a time; a second concurrent
 * hvc_vcpu_run() fails with -EBUSY. Register calls are made by the thread
 * that runs the vCPU, or by any thread while the vCPU is not running (for
 * example while the VM is paused). hvc_vcpu_kick() may be called from any
 * thread, including signal-free contexts such as another vCPU's handler.
 * These rules are the same on every backend: where the accelerator binds a
 * vCPU to the thread that created it (Hypervisor.framework), the library
 * keeps a thread of its own per vCPU, runs the vCPU there (hvc_vcpu_run()
 * waits for it) and forwards every other call to it, so that any thread
 * may still call any vCPU function. A vCPU's I/O handlers then run on that
 * thread, and calls they make on their own vCPU are direct.
 */
#ifndef HVCORE_VCPU_H
#define HVCORE_VCPU_H

#include "common.h"
#include "vm.h"
#include "x86.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Why hvc_vcpu_run() returned. Values are stable; new ones are appended. */
typedef enum hvc_exit_reason {
    /** Nothing happened yet (the record before the first run). */
    HVC_EXIT_NONE = 0,
    /** Port I/O: see hvc_exit::u::io. */
    HVC_EXIT_PIO = 1,
    /** MMIO: see hvc_exit::u::mmio. */
    HVC_EXIT_MMIO = 2,
    /** HLT with no in-kernel interrupt controller (::HVC_VM_NO_IRQCHIP). */
    HVC_EXIT_HLT = 3,
    /** Triple fault or an explicit shutdown; the vCPU cannot go on. */
    HVC_EXIT_SHUTDOWN = 4,
    /** The guest requested a system reset (see also the i8042 device). */
    HVC_EXIT_RESET = 5,
    /** The guest requested power-off. */
    HVC_EXIT_POWEROFF = 6,
    /** The backend could not emulate or enter; see hvc_exit::u::internal. */
    HVC_EXIT_INTERNAL_ERROR = 7,
    /** hvc_vcpu_kick() was called. */
    HVC_EXIT_KICK = 8,
    /** A debug event (breakpoint, single step). */
    HVC_EXIT_DEBUG = 9,
    /** An exit the library does not model; hvc_exit::backend_reason says. */
    HVC_EXIT_UNKNOWN = 10
} hvc_exit_reason;

/** Flags in hvc_exit::flags. */
typedef enum hvc_exit_flags {
    /**
     * The access was served by a registered handler that returned
     * ::HVC_IO_EXIT; there is nothing to complete.
     */
    HVC_EXIT_F_HANDLED = 1u << 0
} hvc_exit_flags;

/**
 * The exit record. Fixed layout (264 bytes); it never changes. It belongs to
 * the vCPU and stays valid until the next hvc_vcpu_run() on it.
 */
typedef struct hvc_exit {
    /** An ::hvc_exit_reason. */
    uint32_t reason;
    /** Bit mask of ::hvc_exit_flags. */
    uint32_t flags;
    /** The backend's own exit code (KVM: kvm_run.exit_reason). */
    uint64_t backend_reason;
    union {
        /** ::HVC_EXIT_PIO. */
        struct {
            /** Port number. */
            uint16_t port;
            /** Bytes per element: 1, 2 or 4. */
            uint8_t size;
            /** 1 for OUT/OUTS, 0 for IN/INS. */
            uint8_t is_write;
            /** Elements transferred: 1, or more for string I/O. */
            uint32_t count;
            /**
             * size * count bytes: what the guest wrote, or, for a read,
             * where the caller puts the data (hvc_vcpu_complete_io() does it
             * with a length check). Unless completed, a read returns
             * all-ones bytes, like a floating bus.
             */
            void *data;
        } io;
        /** ::HVC_EXIT_MMIO. */
        struct {
            /** Guest-physical address. */
            uint64_t addr;
            /** Bytes: 1, 2, 4 or 8. */
            uint32_t size;
            /** 1 for a write, 0 for a read. */
            uint32_t is_write;
            /** As hvc_exit::u::io::data, with @c size bytes. */
            void *data;
        } mmio;
        /** ::HVC_EXIT_INTERNAL_ERROR. */
        struct {
            /** Backend sub-code (KVM: suberror, or the entry failure). */
            uint32_t code;
            /** Valid entries in @c data. */
            uint32_t ndata;
            /** Backend diagnostic words. */
            uint64_t data[16];
        } internal;
        /** ::HVC_EXIT_RESET, ::HVC_EXIT_POWEROFF, ::HVC_EXIT_SHUTDOWN. */
        struct {
            /** A device's status (hvc_vcpu_request_exit()); 0 otherwise. */
            uint64_t code;
        } system;
        /** Reserved so the union keeps its size. */
        uint64_t raw[31];
    } u;
} hvc_exit;

/**
 * Creates a vCPU. Its registers are in the reset state of an x86 CPU (real
 * mode at 0xfffffff0); hvc_vcpu_set_mode() prepares a flat entry instead.
 *
 * @param id the vCPU's APIC id; unique in the VM and below the VM's
 *           max_vcpus.
 * @return 0; -EINVAL (NULL, id out of range); -EEXIST when the id is taken;
 *         -ENOMEM; a backend error.
 */
HVC_EXTERN int hvc_vcpu_create(hvc_vm *vm, uint32_t id, hvc_vcpu **out);

/**
 * Destroys a vCPU. On KVM its id cannot be used again in the same VM (the
 * kernel keeps the vCPU until the VM goes): hvc_vcpu_create() with that id
 * then fails with -EEXIST.
 *
 * @return 0; -EINVAL for NULL; -EBUSY while it is inside hvc_vcpu_run();
 *         -EDEADLK from the vCPU's own thread on a backend that binds
 *         vCPUs to threads (that thread is joined).
 */
HVC_EXTERN int hvc_vcpu_destroy(hvc_vcpu *vcpu);

/**
 * Finds a VM's vCPU by id, for example one that hvc_vm_restore() created.
 *
 * @return 0; -EINVAL for NULL; -ENOENT when the VM has no vCPU @p id.
 */
HVC_EXTERN int hvc_vm_get_vcpu(hvc_vm *vm, uint32_t id, hvc_vcpu **out);

/**
 * Number of vCPUs the VM has now; 0 for NULL. Their ids are below
 * hvc_vm_options::max_vcpus; hvc_vm_get_vcpu() finds each.
 */
HVC_EXTERN uint32_t hvc_vm_vcpu_count(hvc_vm *vm);

/** The id given to hvc_vcpu_create(); UINT32_MAX for NULL. */
HVC_EXTERN uint32_t hvc_vcpu_id(const hvc_vcpu *vcpu);

/** The VM a vCPU belongs to; NULL for NULL. */
HVC_EXTERN hvc_vm *hvc_vcpu_vm(const hvc_vcpu *vcpu);

/**
 * Attaches a caller pointer to the vCPU, for I/O handlers that need their
 * own per-vCPU state (a binding's vCPU object, say). The library never
 * dereferences it.
 *
 * @return 0; -EINVAL for NULL @p vcpu.
 */
HVC_EXTERN int hvc_vcpu_set_user_data(hvc_vcpu *vcpu, void *data);

/** The pointer from hvc_vcpu_set_user_data(); NULL if none or for NULL. */
HVC_EXTERN void *hvc_vcpu_user_data(const hvc_vcpu *vcpu);

/**
 * Runs the guest on the calling thread until an exit that no registered
 * handler claims (see ::hvc_exit_reason), a handler that returns
 * ::HVC_IO_EXIT, or a kick. While the VM is paused, the call waits.
 *
 * @param exit receives the vCPU's exit record (may be NULL; see
 *             hvc_vcpu_get_exit()).
 * @return 0 with the exit record filled; -EINVAL (NULL; the VM has no
 *         memory); -EBUSY when another thread is running this vCPU; the
 *         negative errno of a failing handler; a backend error.
 */
HVC_EXTERN int hvc_vcpu_run(hvc_vcpu *vcpu, const hvc_exit **exit);

/** The exit record of the last run; NULL for NULL. */
HVC_EXTERN const hvc_exit *hvc_vcpu_get_exit(const hvc_vcpu *vcpu);

/**
 * Supplies the data of the read (IN, INS or MMIO read) that the last exit
 * returned, for the guest to receive when it runs again. May be called
 * again to replace the data, until the vCPU runs.
 *
 * A save of the VM (hvc_vm_save() and friends) takes in the read as it
 * stands when the save starts: with the data completed before, else
 * all-ones. The saved stream and the source guest then agree, and a
 * completion after that save fails with -EALREADY. So complete a read
 * before the VM can be saved. Thread-safe against a concurrent save.
 *
 * @param data   size * count bytes for port I/O, size bytes for MMIO.
 * @param length must equal that.
 * @return 0; -EINVAL (NULL, the last exit was not a read, wrong length);
 *         -EALREADY after a save took the read's data in.
 */
HVC_EXTERN int hvc_vcpu_complete_io(hvc_vcpu *vcpu, const void *data,
                                    size_t length);

/**
 * Makes the vCPU leave the guest and its hvc_vcpu_run() return with
 * ::HVC_EXIT_KICK: at once when it is running, else at the start of its
 * next run. A vCPU parked by hvc_vm_pause() returns too. Callable from
 * any thread, at any time (also before or during the vCPU's first run),
 * and async-signal-safe: it may be called from a signal handler, even one
 * that interrupted hvc_vcpu_kick() or hvc_vm_pause() on the same thread. It
 * takes no lock and never waits for another thread. The same on every
 * backend (hvcore/sys/backend.h states what a backend's kick must do).
 *
 * @return 0; -EINVAL for NULL (that error path formats a message and is
 *         not signal-safe).
 */
HVC_EXTERN int hvc_vcpu_kick(hvc_vcpu *vcpu);

/**
 * Reads scalar registers in one call.
 *
 * @param ids    @p count register ids (::hvc_x86_reg or HVC_X86_MSR()).
 * @param values receives @p count values, in the order of @p ids.
 * @return 0; -EINVAL for NULL arrays, an unknown id or a segment id (the
 *         message names the id and its index); -EIO when the backend
 *         refuses an MSR (the message names it); nothing is written to
 *         @p values on failure.
 */
HVC_EXTERN int hvc_vcpu_get_regs(hvc_vcpu *vcpu, const hvc_reg *ids,
                                 uint64_t *values, size_t count);

/**
 * Writes scalar registers in one call. Every id is checked before anything
 * is written, and if the backend refuses a value, what was written is put
 * back: the call applies all values or none.
 *
 * @return as hvc_vcpu_get_regs(); -EINVAL also for a value the backend
 *         rejects (a reserved CR0/CR4/EFER bit, a non-canonical address).
 */
HVC_EXTERN int hvc_vcpu_set_regs(hvc_vcpu *vcpu, const hvc_reg *ids,
                                 const uint64_t *values, size_t count);

/** hvc_vcpu_get_regs() for one register. */
HVC_EXTERN int hvc_vcpu_get_reg(hvc_vcpu *vcpu, hvc_reg id, uint64_t *value);

/** hvc_vcpu_set_regs() for one register. */
HVC_EXTERN int hvc_vcpu_set_reg(hvc_vcpu *vcpu, hvc_reg id, uint64_t value);

/**
 * Reads a segment register (HVC_X86_CS ... HVC_X86_LDTR) or a descriptor
 * table register (HVC_X86_GDTR, HVC_X86_IDTR).
 *
 * @return 0; -EINVAL for NULL or an id that is not a segment.
 */
HVC_EXTERN int hvc_vcpu_get_segment(hvc_vcpu *vcpu, hvc_reg id,
                                    hvc_x86_segment *out);

/** Writes a segment or descriptor table register; as hvc_vcpu_get_segment(). */
HVC_EXTERN int hvc_vcpu_set_segment(hvc_vcpu *vcpu, hvc_reg id,
                                    const hvc_x86_segment *seg);

/**
 * Size in bytes of the FPU/SSE/AVX (XSAVE) state blob of this vCPU.
 *
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_vcpu_fpu_state_size(hvc_vcpu *vcpu, size_t *size);

/**
 * Copies the FPU/XSAVE state out as an opaque blob, restorable with
 * hvc_vcpu_set_fpu_state() on a vCPU of the same backend and CPU features.
 *
 * @param length size of @p buf; at least hvc_vcpu_fpu_state_size().
 * @return 0; -EINVAL for NULL; -ENOSPC when @p length is too small.
 */
HVC_EXTERN int hvc_vcpu_get_fpu_state(hvc_vcpu *vcpu, void *buf, size_t length);

/**
 * Loads an FPU/XSAVE blob from hvc_vcpu_get_fpu_state().
 *
 * @param length must equal hvc_vcpu_fpu_state_size().
 * @return 0; -EINVAL for NULL, a wrong length or a blob the backend
 *         rejects.
 */
HVC_EXTERN int hvc_vcpu_set_fpu_state(hvc_vcpu *vcpu, const void *buf,
                                      size_t length);

/**
 * Options for hvc_vcpu_set_mode(). Initialise with
 * ::HVC_VCPU_MODE_OPTIONS_INIT; fields are only ever appended.
 */
typedef struct hvc_vcpu_mode_options {
    /** sizeof(hvc_vcpu_mode_options) as the caller was compiled. */
    uint32_t size;
    /** An ::hvc_x86_mode. */
    uint32_t mode;
    /**
     * Entry point: a linear address. In real mode below 1 MiB; CS becomes
     * (entry >> 4) & 0xf000 and IP the rest.
     */
    uint64_t entry;
    /** Initial stack pointer (RSP). */
    uint64_t stack;
    /**
     * Guest-physical address of a page-aligned scratch area in RAM where
     * the library writes a GDT (32- and 64-bit modes) and identity page
     * tables (64-bit mode); hvc_vcpu_mode_tables_size() gives its size.
     * Ignored in real mode. The GDT holds a flat code segment at selector
     * 0x10 and a flat data segment at 0x18, as the Linux boot protocol
     * expects.
     */
    uint64_t tables_addr;
    /**
     * 64-bit mode: bytes identity-mapped from address 0, a multiple of
     * 1 GiB up to 512 GiB; 0 maps every memory region and at least 4 GiB.
     */
    uint64_t map_length;
} hvc_vcpu_mode_options;

/** Initialiser for ::hvc_vcpu_mode_options. */
#define HVC_VCPU_MODE_OPTIONS_INIT                                             \
    {                                                                          \
        sizeof(hvc_vcpu_mode_options), HVC_X86_MODE_REAL, 0, 0, 0, 0           \
    }

/**
 * Size of the scratch area hvc_vcpu_set_mode() needs for @p opts on @p vm.
 *
 * @return 0; -EINVAL for NULL or bad options.
 */
HVC_EXTERN int hvc_vcpu_mode_tables_size(hvc_vm *vm,
                                         const hvc_vcpu_mode_options *opts,
                                         uint64_t *size);

/**
 * Puts the vCPU in a mode ready to run a flat entry point: segments, control
 * registers, EFER, GDT and (64-bit) page tables, RIP, RSP and RFLAGS = 0x2.
 * Several vCPUs may share one scratch area; its content is identical.
 * The vCPU becomes runnable at once: an application processor (id > 0) does
 * not wait for an INIT/SIPI from the guest. Other registers keep their
 * values.
 *
 * @return 0; -EINVAL (NULL, unknown mode, entry out of range for the mode,
 *         a scratch area not in RAM or unaligned); -EFAULT when the scratch
 *         area does not fit in one memory region.
 */
HVC_EXTERN int hvc_vcpu_set_mode(hvc_vcpu *vcpu,
                                 const hvc_vcpu_mode_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_VCPU_H */
