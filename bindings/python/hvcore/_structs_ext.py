"""ctypes mirrors of the structs of device.h, platform.h, loader.h,
virtio.h, topology.h, tsc.h and migration.h, and their callback types.

Fixed-layout structs (``hvc_acpi_device`` 64 bytes, ``hvc_boot_info`` 128,
``hvc_doorbell`` 32, ``hvc_tsc_state`` 128, ``hvc_tsc_vcpu_state`` 48) are
size-checked at import (:data:`hvcore._structs.ABI_SIZES`). Options structs
start with ``uint32_t size`` and are passed with ``sizeof`` of these 1.0
layouts.
"""

import ctypes
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_int, c_int32, c_int64,
                    c_size_t, c_uint8, c_uint16, c_uint32, c_uint64,
                    c_void_p)

# -------------------------------------------------------------- device.h --

#: ``read``: int (*)(void *opaque, hvc_vcpu *, uint32_t range,
#: uint64_t offset, void *data, uint32_t size)
DevReadFn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_uint32, c_uint64,
                      c_void_p, c_uint32)
#: ``write``: as read, with const data.
DevWriteFn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_uint32, c_uint64,
                       c_void_p, c_uint32)
#: ``reset`` and ``destroy``: void (*)(void *opaque)
DevVoidFn = CFUNCTYPE(None, c_void_p)
#: ``save_state``: int (*)(void *, void *buf, size_t capacity, size_t *len)
DevSaveFn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t, POINTER(c_size_t))
#: ``load_state``: int (*)(void *, const void *buf, size_t length)
DevLoadFn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


class DeviceOps(ctypes.Structure):
    """``hvc_device_ops`` (version 1)."""

    _fields_ = [
        ("version", c_uint32),
        ("reserved", c_uint32),
        ("type", c_char_p),
        ("read", DevReadFn),
        ("write", DevWriteFn),
        ("reset", DevVoidFn),
        ("destroy", DevVoidFn),
        ("save_state", DevSaveFn),
        ("load_state", DevLoadFn),
    ]


class DeviceRange(ctypes.Structure):
    """``hvc_device_range``."""

    _fields_ = [
        ("space", c_uint32),
        ("flags", c_uint32),
        ("base", c_uint64),
        ("length", c_uint64),
    ]


class DeviceOptions(ctypes.Structure):
    """``hvc_device_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("nr_ranges", c_uint32),
        ("ranges", POINTER(DeviceRange)),
        ("name", c_char_p),
    ]


#: ``hvc_fd_fn``: void (*)(void *opaque, int fd, uint32_t events)
FdFn = CFUNCTYPE(None, c_void_p, c_int, c_uint32)


class MemoryGrant(ctypes.Structure):
    """``hvc_memory_grant`` (fixed layout, 16 bytes)."""

    _fields_ = [
        ("gpa", c_uint64),
        ("length", c_uint64),
    ]


class Doorbell(ctypes.Structure):
    """``hvc_doorbell`` (fixed layout, 32 bytes)."""

    _fields_ = [
        ("space", c_uint32),
        ("length", c_uint32),
        ("addr", c_uint64),
        ("flags", c_uint32),
        ("reserved", c_uint32),
        ("data", c_uint64),
    ]


#: ``hvc_doorbell_fn``: void (*)(void *opaque, const hvc_doorbell *)
DoorbellFn = CFUNCTYPE(None, c_void_p, POINTER(Doorbell))

# ------------------------------------------------------------ platform.h --

#: ``hvc_serial_output_fn``: void (*)(void *opaque, const void *, size_t)
OutputFn = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)


class SerialOptions(ctypes.Structure):
    """``hvc_serial_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("irq", c_uint32),
        ("port", c_uint64),
        ("output_fd", c_int32),
        ("input_fd", c_int32),
        ("output_fn", OutputFn),
        ("output_opaque", c_void_p),
        ("name", c_char_p),
    ]


class AcpiDevice(ctypes.Structure):
    """``hvc_acpi_device`` (fixed layout, 64 bytes)."""

    _fields_ = [
        ("hid", c_char_p),
        ("space", c_uint32),
        ("irq", c_uint32),
        ("base", c_uint64),
        ("length", c_uint64),
        ("flags", c_uint32),
        ("reserved", c_uint32 * 7),
    ]


class AcpiOptions(ctypes.Structure):
    """``hvc_acpi_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("nr_cpus", c_uint32),
        ("address", c_uint64),
        ("length", c_uint64),
        ("devices", POINTER(AcpiDevice)),
        ("nr_devices", c_uint32),
        ("reserved", c_uint32),
    ]

# -------------------------------------------------------------- loader.h --


class BootOptions(ctypes.Structure):
    """``hvc_boot_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("format", c_uint32),
        ("kernel", c_void_p),
        ("kernel_size", c_uint64),
        ("initrd", c_void_p),
        ("initrd_size", c_uint64),
        ("cmdline", c_char_p),
        ("raw_address", c_uint64),
        ("raw_entry", c_uint64),
        ("raw_mode", c_uint32),
        ("reserved", c_uint32),
        ("acpi_rsdp", c_uint64),
    ]


class BootInfo(ctypes.Structure):
    """``hvc_boot_info`` (fixed layout, 128 bytes)."""

    _fields_ = [
        ("format", c_uint32),
        ("protocol", c_uint32),
        ("mode", c_uint32),
        ("reserved0", c_uint32),
        ("entry", c_uint64),
        ("kernel_start", c_uint64),
        ("kernel_end", c_uint64),
        ("initrd_address", c_uint64),
        ("initrd_size", c_uint64),
        ("cmdline_address", c_uint64),
        ("params_address", c_uint64),
        ("tables_address", c_uint64),
        ("stack", c_uint64),
        ("reserved", c_uint64 * 5),
    ]

# -------------------------------------------------------------- virtio.h --


class VirtioMmio(ctypes.Structure):
    """``hvc_virtio_mmio``."""

    _fields_ = [
        ("base", c_uint64),
        ("irq", c_uint32),
        ("reserved", c_uint32),
    ]


class VirtioBlkOptions(ctypes.Structure):
    """``hvc_virtio_blk_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("mmio", VirtioMmio),
        ("path", c_char_p),
        ("fd", c_int32),
        ("reserved", c_uint32),
        ("serial", c_char_p),
        ("name", c_char_p),
    ]


class VirtioConsoleOptions(ctypes.Structure):
    """``hvc_virtio_console_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("mmio", VirtioMmio),
        ("output_fd", c_int32),
        ("input_fd", c_int32),
        ("output_fn", OutputFn),
        ("output_opaque", c_void_p),
        ("name", c_char_p),
    ]



class VirtioNetOptions(ctypes.Structure):
    """``hvc_virtio_net_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("mmio", VirtioMmio),
        ("tap", c_char_p),
        ("fd", c_int32),
        ("queues", c_uint32),
        ("mac", ctypes.c_uint8 * 6),
        ("reserved", ctypes.c_uint16),
        ("name", c_char_p),
    ]


class VirtioNetStats(ctypes.Structure):
    """``hvc_virtio_net_stats``."""

    _fields_ = [("size", c_uint32), ("attached", c_uint32)] + [
        (n, c_uint64) for n in (
            "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped",
            "faulty_events", "faulty_resolved", "faulty_wait_ns_total",
            "faulty_wait_ns_max", "rx_queued", "tx_held",
            "tx_delivered_held", "tx_dropped", "tx_holding", "announces")]

# ------------------------------------------------------------ topology.h --


class PciDevice(ctypes.Structure):
    """``hvc_pci_device``."""

    _fields_ = [
        ("size", c_uint32),
        ("domain", c_uint32),
        ("bus", c_uint8),
        ("device", c_uint8),
        ("function", c_uint8),
        ("reserved", c_uint8),
        ("vendor_id", c_uint16),
        ("device_id", c_uint16),
        ("class_code", c_uint32),
        ("numa_node", c_int32),
        ("vendor_name", c_char_p),
        ("device_name", c_char_p),
        ("class_name", c_char_p),
    ]


class Placement(ctypes.Structure):
    """``hvc_placement``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("node", c_uint32),
        ("device_node", c_int32),
        ("distance", c_uint32),
    ]

# ----------------------------------------------------------------- tsc.h --


class TscInfo(ctypes.Structure):
    """``hvc_tsc_info``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("host_tsc_khz", c_uint32),
        ("backend_tolerance_ppm", c_uint32),
        ("ratio_frac_bits", c_uint32),
        ("apic_bus_khz", c_uint32),
        ("ratio_max", c_uint64),
        ("max_guest_tsc_khz", c_uint32),
        ("reserved", c_uint32),
    ]


class TscFrequencyOptions(ctypes.Structure):
    """``hvc_tsc_frequency_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("tsc_khz", c_uint32),
        ("tolerance_ppm", c_uint32),
    ]


class TscConfig(ctypes.Structure):
    """``hvc_tsc_config``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("tsc_khz", c_uint32),
        ("effective_khz", c_uint32),
        ("ratio", c_uint64),
        ("ratio_frac_bits", c_uint32),
        ("tolerance_ppm", c_uint32),
    ]


class TscPolicy(ctypes.Structure):
    """``hvc_tsc_policy``."""

    _fields_ = [
        ("size", c_uint32),
        ("pause", c_uint32),
        ("catchup", c_uint32),
        ("catchup_max_ms", c_uint32),
    ]


class TscRestoreOptions(ctypes.Structure):
    """``hvc_tsc_restore_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("pause", c_uint32),
        ("max_error_us", c_uint32),
    ]


class TscState(ctypes.Structure):
    """``hvc_tsc_state``: header of a TSC state record (128 bytes)."""

    _fields_ = [
        ("magic", c_uint32),
        ("version", c_uint16),
        ("header_size", c_uint16),
        ("vcpu_size", c_uint16),
        ("reserved0", c_uint16),
        ("nr_vcpus", c_uint32),
        ("flags", c_uint32),
        ("tsc_khz", c_uint32),
        ("host_tsc_khz", c_uint32),
        ("ratio_frac_bits", c_uint32),
        ("ratio", c_uint64),
        ("host_tsc", c_uint64),
        ("kvmclock_ns", c_uint64),
        ("realtime_ns", c_uint64),
        ("sample_error_ns", c_uint32),
        ("reserved1", c_uint32),
        ("host_boot_id", c_uint8 * 16),
        ("reserved", c_uint64 * 5),
    ]


class TscVcpuState(ctypes.Structure):
    """``hvc_tsc_vcpu_state`` (48 bytes)."""

    _fields_ = [
        ("id", c_uint32),
        ("flags", c_uint32),
        ("offset", c_uint64),
        ("guest_tsc", c_uint64),
        ("tsc_adjust", c_uint64),
        ("tsc_deadline", c_uint64),
        ("reserved", c_uint64),
    ]


# ----------------------------------------------------------- migration.h --

#: ``hvc_stream::write``: int64_t (*)(void *opaque, const void *buf,
#: size_t length)
StreamWriteFn = CFUNCTYPE(c_int64, c_void_p, c_void_p, c_size_t)
#: ``hvc_stream::read``: int64_t (*)(void *opaque, void *buf, size_t length)
StreamReadFn = CFUNCTYPE(c_int64, c_void_p, c_void_p, c_size_t)
#: ``hvc_progress_fn``: int (*)(void *opaque, uint64_t done, uint64_t total)
ProgressFn = CFUNCTYPE(c_int, c_void_p, c_uint64, c_uint64)
#: ``hvc_restore_setup_fn``: int (*)(void *opaque, hvc_vm *vm,
#: const void *user_data, size_t length)
RestoreSetupFn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p, c_size_t)


class Stream(ctypes.Structure):
    """``hvc_stream``."""

    _fields_ = [
        ("size", c_uint32),
        ("reserved", c_uint32),
        ("write", StreamWriteFn),
        ("read", StreamReadFn),
        ("opaque", c_void_p),
    ]


class SaveOptions(ctypes.Structure):
    """``hvc_save_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("key", POINTER(c_uint8)),
        ("passphrase", c_char_p),
        ("user_data", c_void_p),
        ("user_data_length", c_size_t),
        ("progress", ProgressFn),
        ("opaque", c_void_p),
    ]


class RestoreOptions(ctypes.Structure):
    """``hvc_restore_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("key", POINTER(c_uint8)),
        ("passphrase", c_char_p),
        ("setup", RestoreSetupFn),
        ("progress", ProgressFn),
        ("opaque", c_void_p),
        ("kick_signal", c_int32),
        ("reserved", c_uint32),
        ("tls", c_void_p),  # const hvc_migrate_tls *: live migration only
        ("listen_fd", c_int32),  # -1: none (restore_options sets it)
        ("timeout_ms", c_uint32),  # live migration only; 0: 30 s
        ("reserved2", c_uint32),
    ]
