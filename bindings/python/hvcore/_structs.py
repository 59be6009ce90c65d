"""ctypes mirrors of the public C structs, checked against their ABI sizes.

The fixed-layout structs (``hvc_exit``: 264 bytes, ``hvc_x86_segment``: 32
bytes) never change. The options structs start with ``uint32_t size`` and
only grow at the end; these are their 1.0 layouts, and the bindings pass
``sizeof`` of them, so a newer library reads exactly these fields.
"""

import ctypes
from ctypes import (POINTER, c_int, c_int32, c_uint8, c_uint16, c_uint32,
                    c_uint64, c_void_p)

from ._structs_ext import (AcpiDevice, BootInfo, Doorbell, TscState,
                           TscVcpuState)


class VmOptions(ctypes.Structure):
    """``hvc_vm_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("max_vcpus", c_uint32),
        ("kick_signal", c_int32),
    ]


class DirtyOptions(ctypes.Structure):
    """``hvc_dirty_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("mode", c_uint32),
        ("flags", c_uint32),
    ]


class MemoryOptions(ctypes.Structure):
    """``hvc_memory_options`` (with the NUMA fields appended in 1.0)."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("guest_addr", c_uint64),
        ("length", c_uint64),
        ("host_addr", c_void_p),
        ("numa_policy", c_uint32),
        ("numa_node_count", c_uint32),
        ("numa_nodes", POINTER(c_uint32)),
    ]


#: The size of hvc_memory_options before the NUMA fields: passed when no
#: NUMA policy is asked for, so a library built before them still works.
MEMORY_OPTIONS_BASE_SIZE = MemoryOptions.numa_policy.offset


class ModeOptions(ctypes.Structure):
    """``hvc_vcpu_mode_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("mode", c_uint32),
        ("entry", c_uint64),
        ("stack", c_uint64),
        ("tables_addr", c_uint64),
        ("map_length", c_uint64),
    ]


class X86Segment(ctypes.Structure):
    """``hvc_x86_segment`` (fixed layout, 32 bytes)."""

    _fields_ = [
        ("base", c_uint64),
        ("limit", c_uint32),
        ("selector", c_uint16),
        ("type", c_uint8),
        ("present", c_uint8),
        ("dpl", c_uint8),
        ("db", c_uint8),
        ("s", c_uint8),
        ("l", c_uint8),
        ("g", c_uint8),
        ("avl", c_uint8),
        ("unusable", c_uint8),
        ("reserved", c_uint8 * 9),
    ]


class ExitIo(ctypes.Structure):
    """``hvc_exit.u.io``."""

    _fields_ = [
        ("port", c_uint16),
        ("size", c_uint8),
        ("is_write", c_uint8),
        ("count", c_uint32),
        ("data", c_void_p),
    ]


class ExitMmio(ctypes.Structure):
    """``hvc_exit.u.mmio``."""

    _fields_ = [
        ("addr", c_uint64),
        ("size", c_uint32),
        ("is_write", c_uint32),
        ("data", c_void_p),
    ]


class ExitInternal(ctypes.Structure):
    """``hvc_exit.u.internal``."""

    _fields_ = [
        ("code", c_uint32),
        ("ndata", c_uint32),
        ("data", c_uint64 * 16),
    ]


class ExitSystem(ctypes.Structure):
    """``hvc_exit.u.system``."""

    _fields_ = [("code", c_uint64)]


class ExitUnion(ctypes.Union):
    """``hvc_exit.u``."""

    _fields_ = [
        ("io", ExitIo),
        ("mmio", ExitMmio),
        ("internal", ExitInternal),
        ("system", ExitSystem),
        ("raw", c_uint64 * 31),
    ]


class HvExit(ctypes.Structure):
    """``hvc_exit`` (fixed layout, 264 bytes)."""

    _fields_ = [
        ("reason", c_uint32),
        ("flags", c_uint32),
        ("backend_reason", c_uint64),
        ("u", ExitUnion),
    ]


#: ``hvc_io_fn``: int (*)(void *opaque, hvc_vcpu *vcpu, uint64_t offset,
#: void *data, uint32_t size, int is_write)
IoFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_uint64, c_void_p,
                        c_uint32, c_int)

#: ``hvc_log_fn``: void (*)(void *opaque, int level, const char *message)
LogFn = ctypes.CFUNCTYPE(None, c_void_p, c_int, ctypes.c_char_p)

#: Fixed sizes the ABI promises on every platform (ABI.md); checked when
#: the package is imported. (The options structs follow the platform's C
#: layout, which ctypes computes the same way the compiler does.)
ABI_SIZES = {
    HvExit: 264,
    X86Segment: 32,
    AcpiDevice: 64,
    BootInfo: 128,
    Doorbell: 32,
    TscState: 128,
    TscVcpuState: 48,
}


def check_layouts():
    """Raises ImportError if a struct does not have its C size here."""
    for struct, size in ABI_SIZES.items():
        if ctypes.sizeof(struct) != size:
            raise ImportError(
                f"hvcore: ctypes lays out {struct.__name__} in "
                f"{ctypes.sizeof(struct)} bytes, but the C ABI says {size}; "
                "these bindings cannot work on this platform")
