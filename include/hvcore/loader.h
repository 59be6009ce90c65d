/**
 * @file hvcore/loader.h
 * @brief Loading kernels into guest memory and starting the boot vCPU.
 *
 * One call loads what VMMs boot in practice, detected from its first bytes:
 * - an ELF image (ELF32 or ELF64, read with libelf): with a PVH note
 *   (XEN_ELFNOTE_PHYS32_ENTRY) it is started in 32-bit flat protected mode
 *   at the note's entry with EBX = an hvm_start_info (PVH boot ABI);
 *   without one, an ELF32 starts in 32-bit mode at e_entry and an ELF64 in
 *   64-bit mode at e_entry with RSI = a Linux boot_params ("zero page");
 * - a Linux bzImage (boot protocol 2.06 or later with a 64-bit entry),
 *   started at its 64-bit entry with RSI = boot_params;
 * - a raw binary at a given address and entry (::HVC_KERNEL_RAW only).
 * The boot data carries the command line, an initrd (a PVH module or the
 * boot_params ramdisk), a memory map built from the VM's memory regions, and
 * the ACPI RSDP. docs/BOOT.md gives the guest-physical layout.
 *
 * Every input is treated as hostile: each offset and size is checked
 * against the image and against guest RAM before anything is written, and a
 * failed load leaves guest memory exactly as it was.
 */
#ifndef HVCORE_LOADER_H
#define HVCORE_LOADER_H

#include "common.h"
#include "vcpu.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Kernel image formats. Values are stable. */
typedef enum hvc_kernel_format {
    /** Detect ELF or bzImage from the image; raw is never guessed. */
    HVC_KERNEL_AUTO = 0,
    /** ELF32 or ELF64, with or without a PVH note. */
    HVC_KERNEL_ELF = 1,
    /** A Linux bzImage. */
    HVC_KERNEL_BZIMAGE = 2,
    /** A flat binary: hvc_boot_options::raw_address, raw_entry, raw_mode. */
    HVC_KERNEL_RAW = 3
} hvc_kernel_format;

/** How the boot vCPU is started (hvc_boot_info::protocol). */
typedef enum hvc_boot_protocol {
    /** Flat entry in hvc_boot_info::mode with no boot data. */
    HVC_BOOT_FLAT = 0,
    /** PVH: 32-bit flat, EBX = hvm_start_info address. */
    HVC_BOOT_PVH = 1,
    /** Linux 64-bit boot protocol: RSI = boot_params address. */
    HVC_BOOT_LINUX64 = 2
} hvc_boot_protocol;

/**
 * What to load. Initialise with ::HVC_BOOT_OPTIONS_INIT; fields are only
 * ever appended. The buffers are read during the call only.
 */
typedef struct hvc_boot_options {
    /** sizeof(hvc_boot_options) as the caller was compiled. */
    uint32_t size;
    /** An ::hvc_kernel_format. */
    uint32_t format;
    /** The kernel image. */
    const void *kernel;
    /** Its size in bytes. */
    uint64_t kernel_size;
    /** An initial ramdisk, or NULL. */
    const void *initrd;
    /** Its size in bytes. */
    uint64_t initrd_size;
    /** Kernel command line (NUL-terminated), or NULL for an empty one. */
    const char *cmdline;
    /** ::HVC_KERNEL_RAW: guest-physical load address. */
    uint64_t raw_address;
    /** ::HVC_KERNEL_RAW: entry point; 0 means raw_address. */
    uint64_t raw_entry;
    /** ::HVC_KERNEL_RAW: an ::hvc_x86_mode to start in. */
    uint32_t raw_mode;
    /** Zero. */
    uint32_t reserved;
    /** Guest-physical address of the ACPI RSDP (hvc_acpi_build()), or 0. */
    uint64_t acpi_rsdp;
} hvc_boot_options;

/** Initialiser for ::hvc_boot_options. */
#define HVC_BOOT_OPTIONS_INIT                                                  \
    {                                                                          \
        sizeof(hvc_boot_options), HVC_KERNEL_AUTO, NULL, 0, NULL, 0, NULL, 0,  \
            0, HVC_X86_MODE_LONG64, 0, 0                                       \
    }

/**
 * What was loaded and how to start it; filled by hvc_vm_load_kernel() and
 * consumed by hvc_vcpu_boot(). Fixed layout (128 bytes); it never changes.
 */
typedef struct hvc_boot_info {
    /** The ::hvc_kernel_format found. */
    uint32_t format;
    /** An ::hvc_boot_protocol. */
    uint32_t protocol;
    /** The ::hvc_x86_mode the boot vCPU starts in. */
    uint32_t mode;
    /** Zero. */
    uint32_t reserved0;
    /** Entry point (guest-physical). */
    uint64_t entry;
    /** Lowest and one past the highest guest-physical byte loaded. */
    uint64_t kernel_start;
    uint64_t kernel_end;
    /** Where the initrd went, or 0. */
    uint64_t initrd_address;
    uint64_t initrd_size;
    /** The command line in guest memory, or 0. */
    uint64_t cmdline_address;
    /** hvm_start_info (PVH) or boot_params (Linux), or 0. */
    uint64_t params_address;
    /** Scratch area for the GDT and page tables (hvc_vcpu_set_mode()). */
    uint64_t tables_address;
    /** Initial stack pointer. */
    uint64_t stack;
    /** Zero. */
    uint64_t reserved[5];
} hvc_boot_info;

/**
 * Loads a kernel (and initrd, command line, boot data) into guest memory.
 * The VM's memory regions must be in place first: the memory map given to
 * the guest is built from them.
 *
 * @param info receives what was loaded; pass it to hvc_vcpu_boot().
 * @return 0; -EINVAL (NULL, bad options, an unrecognised or malformed
 *         image, a boot protocol too old, no 64-bit entry, a command line
 *         too long); -ENOEXEC for an image that is not ELF or bzImage
 *         under ::HVC_KERNEL_AUTO; -EFAULT (a segment, the initrd or the
 *         boot data does not fit in RAM); -EEXIST (one of them overlaps
 *         another: the message names both); -E2BIG (an
 *         initrd too large for the space the kernel allows); -ENOMEM. The
 *         message names the offending value. Guest memory is unchanged on
 *         failure.
 */
HVC_EXTERN int hvc_vm_load_kernel(hvc_vm *vm, const hvc_boot_options *opts,
                                  hvc_boot_info *info);

/**
 * Puts the boot vCPU at the loaded entry: mode (segments, control
 * registers, GDT and identity page tables at info->tables_address), RIP,
 * RSP, and EBX or RSI as the protocol asks.
 *
 * @return 0; -EINVAL for NULL or an info that hvc_vm_load_kernel() did not
 *         produce; errors of hvc_vcpu_set_mode().
 */
HVC_EXTERN int hvc_vcpu_boot(hvc_vcpu *vcpu, const hvc_boot_info *info);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_LOADER_H */
