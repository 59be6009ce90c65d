"""Constants mirrored from the libhvcore 1.0 public headers.

Two spellings of each value:

* the C names, exactly as the headers define them (``HV_CAP_MAX_VCPUS``,
  ``HV_EXIT_PIO``, ``HV_X86_RAX``, ``HV_X86_MSR(n)``, ...), for code ported
  from C;
* Python enums (:class:`Cap`, :class:`ExitReason`, :class:`X86Reg`, ...),
  which the object API accepts and returns.

Values are part of the stable ABI (ABI.md): never renumbered or reused, only
appended. A value a newer library returns that this module does not know is
passed through as a plain ``int``.
"""

import enum

# -- hvcore/common.h: the header version these bindings were written for --
HV_VERSION_MAJOR = 1
HV_VERSION_MINOR = 0
HV_VERSION_PATCH = 0
HV_VERSION_NUMBER = (HV_VERSION_MAJOR * 10000 + HV_VERSION_MINOR * 100
                     + HV_VERSION_PATCH)

# -- hvcore/hypervisor.h --
HV_CAP_MAX_VCPUS = 1
HV_CAP_NR_VCPUS = 2
HV_CAP_MAX_MEMORY_REGIONS = 3
HV_CAP_READONLY_MEMORY = 4
HV_CAP_DIRTY_TRACKING = 5
HV_CAP_TSC_SCALING = 6
HV_CAP_TSC_OFFSET = 7
HV_CAP_IRQCHIP = 8
HV_CAP_MSI = 9
HV_CAP_FPU_STATE_SIZE = 10
HV_CAP_IRQFD = 11
HV_CAP_IOEVENTFD = 12
HV_CAP_PHYS_ADDR_BITS = 13

HV_DIRTY_BITMAP = 1 << 0
HV_DIRTY_RING = 1 << 1

# -- hvcore/vm.h --
HV_VM_NO_IRQCHIP = 1 << 0
HV_IO_PIO = 0
HV_IO_MMIO = 1


class IoResult(enum.IntEnum):
    """What an I/O handler may return besides data (see :data:`IO_EXIT`)."""

    EXIT = 1


#: Returned by an I/O handler: the access is handled, and ``vcpu.run()``
#: returns to its caller with an exit whose ``handled`` flag is set. Equal
#: to the C value 1, but recognised by identity: a read handler returning
#: the *number* 1 supplies data, it does not end the run.
HV_IO_EXIT = IO_EXIT = IoResult.EXIT

# -- hvcore/memory.h --
HV_PAGE_SIZE = 4096
HV_MEMORY_READONLY = 1 << 0
HV_MEMORY_MERGEABLE = 1 << 1
HV_MEMORY_PREFAULT = 1 << 2
HV_MEMORY_HUGETLB = 1 << 3
HV_MEMORY_THP = 1 << 4
# NUMA policies of hv_memory_options::numa_policy.
HV_NUMA_DEFAULT = 0
HV_NUMA_BIND = 1
HV_NUMA_PREFERRED = 2
HV_NUMA_INTERLEAVE = 3

# -- hvcore/vcpu.h --
HV_EXIT_NONE = 0
HV_EXIT_PIO = 1
HV_EXIT_MMIO = 2
HV_EXIT_HLT = 3
HV_EXIT_SHUTDOWN = 4
HV_EXIT_RESET = 5
HV_EXIT_POWEROFF = 6
HV_EXIT_INTERNAL_ERROR = 7
HV_EXIT_KICK = 8
HV_EXIT_DEBUG = 9
HV_EXIT_UNKNOWN = 10

HV_EXIT_F_HANDLED = 1 << 0

# -- hvcore/x86.h --
HV_X86_RAX = 0x0000
HV_X86_RBX = 0x0001
HV_X86_RCX = 0x0002
HV_X86_RDX = 0x0003
HV_X86_RSI = 0x0004
HV_X86_RDI = 0x0005
HV_X86_RSP = 0x0006
HV_X86_RBP = 0x0007
HV_X86_R8 = 0x0008
HV_X86_R9 = 0x0009
HV_X86_R10 = 0x000a
HV_X86_R11 = 0x000b
HV_X86_R12 = 0x000c
HV_X86_R13 = 0x000d
HV_X86_R14 = 0x000e
HV_X86_R15 = 0x000f
HV_X86_RIP = 0x0010
HV_X86_RFLAGS = 0x0011
HV_X86_CR0 = 0x0100
HV_X86_CR2 = 0x0102
HV_X86_CR3 = 0x0103
HV_X86_CR4 = 0x0104
HV_X86_CR8 = 0x0108
HV_X86_EFER = 0x0180
HV_X86_APIC_BASE = 0x0181
HV_X86_DR0 = 0x0200
HV_X86_DR1 = 0x0201
HV_X86_DR2 = 0x0202
HV_X86_DR3 = 0x0203
HV_X86_DR6 = 0x0206
HV_X86_DR7 = 0x0207
HV_X86_CS = 0x0300
HV_X86_DS = 0x0301
HV_X86_ES = 0x0302
HV_X86_FS = 0x0303
HV_X86_GS = 0x0304
HV_X86_SS = 0x0305
HV_X86_TR = 0x0306
HV_X86_LDTR = 0x0307
HV_X86_GDTR = 0x0308
HV_X86_IDTR = 0x0309

HV_X86_MODE_REAL = 0
HV_X86_MODE_PROTECTED32 = 1
HV_X86_MODE_LONG64 = 2

_MSR_TAG = 1 << 32


def HV_X86_MSR(index):  # noqa: N802 - the C macro's name
    """Register id of the model-specific register ``index`` (any MSR)."""
    return _MSR_TAG | (int(index) & 0xFFFFFFFF)


def HV_X86_IS_MSR(reg_id):  # noqa: N802 - the C macro's name
    """True when ``reg_id`` names an MSR."""
    return (int(reg_id) >> 32) == 1


def msr(index):
    """Register id of MSR ``index``; checks that it is a 32-bit index."""
    index = int(index)
    if not 0 <= index <= 0xFFFFFFFF:
        raise ValueError(f"MSR index {index:#x} is not a 32-bit value")
    return _MSR_TAG | index


# ---------------------------------------------------------------- enums --

class Cap(enum.IntEnum):
    """Capabilities for :meth:`hvcore.Hypervisor.cap` (``hv_cap``)."""

    MAX_VCPUS = HV_CAP_MAX_VCPUS
    NR_VCPUS = HV_CAP_NR_VCPUS
    MAX_MEMORY_REGIONS = HV_CAP_MAX_MEMORY_REGIONS
    READONLY_MEMORY = HV_CAP_READONLY_MEMORY
    DIRTY_TRACKING = HV_CAP_DIRTY_TRACKING
    TSC_SCALING = HV_CAP_TSC_SCALING
    TSC_OFFSET = HV_CAP_TSC_OFFSET
    IRQCHIP = HV_CAP_IRQCHIP
    MSI = HV_CAP_MSI
    FPU_STATE_SIZE = HV_CAP_FPU_STATE_SIZE
    IRQFD = HV_CAP_IRQFD
    IOEVENTFD = HV_CAP_IOEVENTFD
    PHYS_ADDR_BITS = HV_CAP_PHYS_ADDR_BITS


class DirtyMode(enum.IntFlag):
    """Bits of :attr:`Cap.DIRTY_TRACKING` (``hv_dirty_mode``)."""

    BITMAP = HV_DIRTY_BITMAP
    RING = HV_DIRTY_RING


class VmFlags(enum.IntFlag):
    """Flags for VM creation (``hv_vm_flags``)."""

    NO_IRQCHIP = HV_VM_NO_IRQCHIP


class MemoryFlags(enum.IntFlag):
    """Flags of a memory region (``hv_memory_flags``)."""

    READONLY = HV_MEMORY_READONLY
    MERGEABLE = HV_MEMORY_MERGEABLE
    PREFAULT = HV_MEMORY_PREFAULT
    HUGETLB = HV_MEMORY_HUGETLB
    THP = HV_MEMORY_THP


class IoSpace(enum.IntEnum):
    """Address spaces of I/O handlers and exits (``hv_io_space``)."""

    PIO = HV_IO_PIO
    MMIO = HV_IO_MMIO


class ExitReason(enum.IntEnum):
    """Why ``vcpu.run()`` returned (``hv_exit_reason``)."""

    NONE = HV_EXIT_NONE
    PIO = HV_EXIT_PIO
    MMIO = HV_EXIT_MMIO
    HLT = HV_EXIT_HLT
    SHUTDOWN = HV_EXIT_SHUTDOWN
    RESET = HV_EXIT_RESET
    POWEROFF = HV_EXIT_POWEROFF
    INTERNAL_ERROR = HV_EXIT_INTERNAL_ERROR
    KICK = HV_EXIT_KICK
    DEBUG = HV_EXIT_DEBUG
    UNKNOWN = HV_EXIT_UNKNOWN


class ExitFlags(enum.IntFlag):
    """Bits of an exit record's flags (``hv_exit_flags``)."""

    HANDLED = HV_EXIT_F_HANDLED


class X86Reg(enum.IntEnum):
    """x86 register ids (``hv_x86_reg``); MSRs are :func:`msr`."""

    RAX = HV_X86_RAX
    RBX = HV_X86_RBX
    RCX = HV_X86_RCX
    RDX = HV_X86_RDX
    RSI = HV_X86_RSI
    RDI = HV_X86_RDI
    RSP = HV_X86_RSP
    RBP = HV_X86_RBP
    R8 = HV_X86_R8
    R9 = HV_X86_R9
    R10 = HV_X86_R10
    R11 = HV_X86_R11
    R12 = HV_X86_R12
    R13 = HV_X86_R13
    R14 = HV_X86_R14
    R15 = HV_X86_R15
    RIP = HV_X86_RIP
    RFLAGS = HV_X86_RFLAGS
    CR0 = HV_X86_CR0
    CR2 = HV_X86_CR2
    CR3 = HV_X86_CR3
    CR4 = HV_X86_CR4
    CR8 = HV_X86_CR8
    EFER = HV_X86_EFER
    APIC_BASE = HV_X86_APIC_BASE
    DR0 = HV_X86_DR0
    DR1 = HV_X86_DR1
    DR2 = HV_X86_DR2
    DR3 = HV_X86_DR3
    DR6 = HV_X86_DR6
    DR7 = HV_X86_DR7
    CS = HV_X86_CS
    DS = HV_X86_DS
    ES = HV_X86_ES
    FS = HV_X86_FS
    GS = HV_X86_GS
    SS = HV_X86_SS
    TR = HV_X86_TR
    LDTR = HV_X86_LDTR
    GDTR = HV_X86_GDTR
    IDTR = HV_X86_IDTR


class X86Mode(enum.IntEnum):
    """Execution modes for ``vcpu.set_mode()`` (``hv_x86_mode``)."""

    REAL = HV_X86_MODE_REAL
    PROTECTED32 = HV_X86_MODE_PROTECTED32
    LONG64 = HV_X86_MODE_LONG64


class NumaPolicy(enum.IntEnum):
    """NUMA policy of a region's host memory (``hv_numa_policy``)."""

    DEFAULT = HV_NUMA_DEFAULT
    BIND = HV_NUMA_BIND
    PREFERRED = HV_NUMA_PREFERRED
    INTERLEAVE = HV_NUMA_INTERLEAVE


from .constants_ext import *  # noqa: E402,F401,F403 - device.h and later


def to_enum(enum_type, value):
    """``enum_type(value)``, or the plain int for a value it does not know."""
    try:
        return enum_type(value)
    except ValueError:
        return int(value)


__all__ = sorted(name for name in dir() if name.startswith("HV_")) + [
    "Cap", "DirtyMode", "VmFlags", "MemoryFlags", "IoSpace", "IoResult",
    "IO_EXIT", "ExitReason", "ExitFlags", "X86Reg", "X86Mode", "msr",
    "NumaPolicy", "FdEvents", "DoorbellFlags", "AcpiFlags", "KernelFormat",
    "BootProtocol", "VirtioBlkFlags", "PlacementFlags", "TscInfoFlags",
    "TscConfigFlags", "TscWriteFlags", "TscPausePolicy", "TscCatchup",
    "SaveFlags", "RestoreFlags",
]
