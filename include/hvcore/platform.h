/**
 * @file hvcore/platform.h
 * @brief The library's x86 PC platform devices and ACPI tables.
 *
 * Ready-made device models, attached with hvc_vm_add_device() underneath and
 * listed by hvc_vm_list_devices() like any other: a 16550A UART, a
 * debug-exit port, the i8042 reset line, a CMOS real-time clock, the port
 * 0x80 POST sink; and a builder for the ACPI tables an SMP guest needs to
 * find its CPUs, interrupt controllers and devices.
 *
 * Thread rules: as hvcore/device.h. Constructors may be called from any
 * thread; the devices serialise their own state.
 */
#ifndef HVCORE_PLATFORM_H
#define HVCORE_PLATFORM_H

#include "common.h"
#include "device.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Receives the bytes the guest transmitted on a UART. */
typedef void (*hvc_serial_output_fn)(void *opaque, const void *data,
                                     size_t length);

/**
 * UART options. Initialise with ::HVC_SERIAL_OPTIONS_INIT (COM1: port
 * 0x3f8, IRQ 4, no output, no input); fields are only ever appended.
 */
typedef struct hvc_serial_options {
    /** sizeof(hvc_serial_options) as the caller was compiled. */
    uint32_t size;
    /** GSI raised for the UART's interrupt; default 4. */
    uint32_t irq;
    /** First of its 8 ports; default 0x3f8. */
    uint64_t port;
    /** Transmitted bytes are written here when >= 0 (not closed by the
     * library). */
    int32_t output_fd;
    /** Bytes read from here (on the VM's event thread) are received by the
     * guest when >= 0 (not closed by the library). */
    int32_t input_fd;
    /** Transmitted bytes are passed here when non-NULL (on the vCPU
     * thread). */
    hvc_serial_output_fn output_fn;
    /** Passed to @c output_fn. */
    void *output_opaque;
    /** Instance name; NULL for "serial<N>". */
    const char *name;
} hvc_serial_options;

/** Initialiser for ::hvc_serial_options. */
#define HVC_SERIAL_OPTIONS_INIT                                                \
    {                                                                          \
        sizeof(hvc_serial_options), 4, 0x3f8, -1, -1, NULL, NULL, NULL         \
    }

/**
 * Attaches a 16550A UART: THR/RBR, IER, IIR, FCR, LCR, MCR, LSR, MSR,
 * scratch and divisor latch, 16-byte FIFOs, loopback, and transmit-empty,
 * receive-data and line-status interrupts on its IRQ line (a VM created with
 * ::HVC_VM_NO_IRQCHIP gets a polled UART). The interrupt line is high while
 * an enabled interrupt is pending and MCR.OUT2 is set, as on a PC.
 *
 * Output is written synchronously on the vCPU thread (THRE is always set).
 * A full non-blocking @c output_fd gets a 20 ms grace, then bytes are
 * dropped; a pipe whose reader went away stops output to the fd without a
 * SIGPIPE. @c output_fn still receives every byte. Input from @c input_fd
 * is read only as far as the receive FIFO has room, so no byte is lost;
 * end of file ends input. A hand-over (hvcore/handover.h) passes its
 * descriptors in two slots: 0 the output, 1 the input.
 *
 * @param opts options, or NULL for COM1 with no output and no input.
 * @return 0; -EINVAL for bad options; errors of hvc_vm_add_device() and
 *         hvc_vm_watch_fd().
 */
HVC_EXTERN int hvc_serial_create(hvc_vm *vm, const hvc_serial_options *opts,
                                 hvc_device **out);

/**
 * Hands bytes to a UART's receiver as if they arrived on the line. Bytes
 * beyond the receive FIFO's free space are dropped (an overrun, as on the
 * hardware); with its FIFOs off (after reset) the UART holds one byte.
 *
 * @return the number of bytes accepted; -EINVAL when @p dev is not a UART.
 */
HVC_EXTERN int hvc_serial_receive(hvc_device *dev, const void *data,
                                  size_t length);

/**
 * Attaches a debug-exit port (QEMU's isa-debug-exit convention, port 0xf4
 * in the test guests): a guest write of byte v ends hvc_vcpu_run() with
 * ::HVC_EXIT_POWEROFF, ::HVC_EXIT_F_HANDLED and hvc_exit::u::system::code = v.
 *
 * @param port the port; 0 for 0xf4.
 */
HVC_EXTERN int hvc_debug_exit_create(hvc_vm *vm, uint16_t port,
                                     hvc_device **out);

/**
 * Attaches the i8042 keyboard controller's system-control side at ports
 * 0x60 and 0x64: the reset command (0xfe to port 0x64) ends hvc_vcpu_run()
 * with ::HVC_EXIT_RESET; status reads report an empty controller.
 */
HVC_EXTERN int hvc_i8042_create(hvc_vm *vm, hvc_device **out);

/**
 * Attaches a CMOS real-time clock at ports 0x70/0x71: the time from the
 * host's clock (UTC), in BCD or binary and 12 or 24 hours as the guest
 * selects, status registers A-D, and the memory-size bytes firmware and
 * Linux read (0x15-0x18, 0x30-0x31, 0x34-0x35, 0x5b-0x5d) computed from the
 * VM's memory regions.
 */
HVC_EXTERN int hvc_cmos_create(hvc_vm *vm, hvc_device **out);

/** Attaches a sink for port 0x80 (POST codes, I/O delays): writes are
 * ignored, reads return 0xff, nothing exits. */
HVC_EXTERN int hvc_port80_create(hvc_vm *vm, hvc_device **out);

/** Flags of hvc_acpi_device::flags. */
typedef enum hvc_acpi_device_flags {
    /** The interrupt is level-triggered (default: edge). */
    HVC_ACPI_IRQ_LEVEL = 1u << 0,
    /** The interrupt is active-low (default: active-high). */
    HVC_ACPI_IRQ_ACTIVE_LOW = 1u << 1
} hvc_acpi_device_flags;

/**
 * A device to describe in the ACPI DSDT. Fixed layout (64 bytes), passed
 * as an array: it never changes; new properties take the reserved words.
 */
typedef struct hvc_acpi_device {
    /** ACPI _HID, 1-8 printable characters, e.g. "PNP0501" (a 16550 UART)
     * or "LNRO0005" (virtio-mmio). */
    const char *hid;
    /** ::HVC_IO_PIO or ::HVC_IO_MMIO. */
    uint32_t space;
    /** GSI 0..23 (the IOAPIC's pins), or UINT32_MAX for none. */
    uint32_t irq;
    /** First port or address. */
    uint64_t base;
    /** Ports or bytes. */
    uint64_t length;
    /** Bit mask of ::hvc_acpi_device_flags. */
    uint32_t flags;
    /** Zero. */
    uint32_t reserved[7];
} hvc_acpi_device;

/**
 * ACPI options. Initialise with ::HVC_ACPI_OPTIONS_INIT; fields are only
 * ever appended.
 */
typedef struct hvc_acpi_options {
    /** sizeof(hvc_acpi_options) as the caller was compiled. */
    uint32_t size;
    /** Number of CPUs; the MADT lists APIC ids 0..nr_cpus-1. */
    uint32_t nr_cpus;
    /** Guest-physical address where the tables go (16-byte aligned, in
     * RAM); 0 for 0xe0000, where a BIOS would put them. */
    uint64_t address;
    /** Bytes available at @c address; 0 for 0x20000. */
    uint64_t length;
    /** Devices for the DSDT. */
    const hvc_acpi_device *devices;
    /** Entries in @c devices. */
    uint32_t nr_devices;
    /** Zero. */
    uint32_t reserved;
} hvc_acpi_options;

/** Initialiser for ::hvc_acpi_options. */
#define HVC_ACPI_OPTIONS_INIT                                                  \
    {                                                                          \
        sizeof(hvc_acpi_options), 1, 0, 0, NULL, 0, 0                          \
    }

/**
 * Writes RSDP, XSDT, FADT (hardware-reduced ACPI), MADT (one local APIC per
 * CPU and the IOAPIC at 0xfec00000 with GSI 0-23, ISA interrupt overrides)
 * and a DSDT describing @c devices into guest memory, all checksummed.
 *
 * The FADT names port 0x64 (value 0xfe) as the reset register and the CMOS
 * century byte, so it assumes hvc_i8042_create() and hvc_cmos_create(); the
 * MADT describes the in-kernel interrupt controllers, so the VM should not
 * have ::HVC_VM_NO_IRQCHIP. Keep the tables in the legacy hole (the default
 * address): the boot loader's memory map reserves 0x9fc00-0x100000, but
 * reports other RAM as usable, where a guest would overwrite them.
 *
 * @param rsdp receives the RSDP's guest-physical address, for the boot
 *             loader to pass on (hvc_boot_options::acpi_rsdp).
 * @return 0; -EINVAL (NULL, nr_cpus outside 1..255, an unaligned or
 *         wrapping area, bad device entries: the message names the index
 *         and field); -ENOSPC when the tables do not fit in @c length;
 *         -EFAULT when the area is not RAM; -ENOMEM. Guest memory is
 *         unchanged on failure.
 */
HVC_EXTERN int hvc_acpi_build(hvc_vm *vm, const hvc_acpi_options *opts,
                              uint64_t *rsdp);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_PLATFORM_H */
