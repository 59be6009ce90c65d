"""Constants mirrored from the libhvcore 1.0 public headers.

Two spellings of each value:

* the C names, exactly as the headers define them (``HVC_CAP_MAX_VCPUS``,
  ``HVC_EXIT_PIO``, ``HVC_X86_RAX``, ``HVC_X86_MSR(n)``, ...), for code ported
  from C;
* Python enums (:class:`Cap`, :class:`ExitReason`, :class:`X86Reg`, ...),
  which the object API accepts and returns.

Values are part of the stable ABI (ABI.md): never renumbered or reused, only
appended. A value a newer library returns that this module does not know is
passed through as a plain ``int``.
"""

import enum

# -- hvcore/common.h: the header version these bindings were written for --
HVC_VERSION_MAJOR = 1
HVC_VERSION_MINOR = 0
HVC_VERSION_PATCH = 0
HVC_VERSION_NUMBER = (HVC_VERSION_MAJOR * 10000 + HVC_VERSION_MINOR * 100
                     + HVC_VERSION_PATCH)

# -- hvcore/common.h: log levels (hvc_log_level) --
HVC_LOG_ERROR = 1
HVC_LOG_WARN = 2
HVC_LOG_INFO = 3
HVC_LOG_DEBUG = 4


class LogLevel(enum.IntEnum):
    """``hvc_log_level``: lower is more severe."""

    ERROR = HVC_LOG_ERROR
    WARN = HVC_LOG_WARN
    INFO = HVC_LOG_INFO
    DEBUG = HVC_LOG_DEBUG

# -- hvcore/hypervisor.h --
HVC_CAP_MAX_VCPUS = 1
HVC_CAP_NR_VCPUS = 2
HVC_CAP_MAX_MEMORY_REGIONS = 3
HVC_CAP_READONLY_MEMORY = 4
HVC_CAP_DIRTY_TRACKING = 5
HVC_CAP_TSC_SCALING = 6
HVC_CAP_TSC_OFFSET = 7
HVC_CAP_IRQCHIP = 8
HVC_CAP_MSI = 9
HVC_CAP_FPU_STATE_SIZE = 10
HVC_CAP_IRQFD = 11
HVC_CAP_IOEVENTFD = 12
HVC_CAP_PHYS_ADDR_BITS = 13
HVC_CAP_IRQ_LINES = 14
HVC_CAP_MAX_VMS = 15
HVC_CAP_PAGE_SIZE = 16
HVC_CAP_IRQCHIP_LAPIC = 17
HVC_CAP_IRQCHIP_IOAPIC = 18
HVC_CAP_IRQCHIP_PIC = 19
HVC_CAP_IRQCHIP_PIT = 20
HVC_IRQCHIP_NONE = 0
HVC_IRQCHIP_KERNEL = 1
HVC_IRQCHIP_USER = 2

HVC_DIRTY_AUTO = 0
HVC_DIRTY_BITMAP = 1 << 0
HVC_DIRTY_RING = 1 << 1
HVC_DIRTY_INITIALLY_SET = 1 << 2
HVC_DIRTY_MANUAL_CLEAR = 1 << 3

# -- hvcore/vm.h --
HVC_VM_NO_IRQCHIP = 1 << 0
HVC_VM_DIRTY_RING = 1 << 1
HVC_VM_USER_IRQCHIP = 1 << 2
HVC_IO_PIO = 0
HVC_IO_MMIO = 1


class IoResult(enum.IntEnum):
    """What an I/O handler may return besides data (see :data:`IO_EXIT`)."""

    EXIT = 1


#: Returned by an I/O handler: the access is handled, and ``vcpu.run()``
#: returns to its caller with an exit whose ``handled`` flag is set. Equal
#: to the C value 1, but recognised by identity: a read handler returning
#: the *number* 1 supplies data, it does not end the run.
HVC_IO_EXIT = IO_EXIT = IoResult.EXIT

# -- hvcore/memory.h --
HVC_PAGE_SIZE = 4096
HVC_DIRTY_START_CLEAN = 1 << 0
HVC_MEMORY_READONLY = 1 << 0
HVC_MEMORY_MERGEABLE = 1 << 1
HVC_MEMORY_PREFAULT = 1 << 2
HVC_MEMORY_HUGETLB = 1 << 3
HVC_MEMORY_THP = 1 << 4
# NUMA policies of hvc_memory_options::numa_policy.
HVC_NUMA_DEFAULT = 0
HVC_NUMA_BIND = 1
HVC_NUMA_PREFERRED = 2
HVC_NUMA_INTERLEAVE = 3

# -- hvcore/vcpu.h --
HVC_EXIT_NONE = 0
HVC_EXIT_PIO = 1
HVC_EXIT_MMIO = 2
HVC_EXIT_HLT = 3
HVC_EXIT_SHUTDOWN = 4
HVC_EXIT_RESET = 5
HVC_EXIT_POWEROFF = 6
HVC_EXIT_INTERNAL_ERROR = 7
HVC_EXIT_KICK = 8
HVC_EXIT_DEBUG = 9
HVC_EXIT_UNKNOWN = 10

HVC_EXIT_F_HANDLED = 1 << 0

# -- hvcore/x86.h --
HVC_X86_RAX = 0x0000
HVC_X86_RBX = 0x0001
HVC_X86_RCX = 0x0002
HVC_X86_RDX = 0x0003
HVC_X86_RSI = 0x0004
HVC_X86_RDI = 0x0005
HVC_X86_RSP = 0x0006
HVC_X86_RBP = 0x0007
HVC_X86_R8 = 0x0008
HVC_X86_R9 = 0x0009
HVC_X86_R10 = 0x000a
HVC_X86_R11 = 0x000b
HVC_X86_R12 = 0x000c
HVC_X86_R13 = 0x000d
HVC_X86_R14 = 0x000e
HVC_X86_R15 = 0x000f
HVC_X86_RIP = 0x0010
HVC_X86_RFLAGS = 0x0011
HVC_X86_CR0 = 0x0100
HVC_X86_CR2 = 0x0102
HVC_X86_CR3 = 0x0103
HVC_X86_CR4 = 0x0104
HVC_X86_CR8 = 0x0108
HVC_X86_EFER = 0x0180
HVC_X86_APIC_BASE = 0x0181
HVC_X86_DR0 = 0x0200
HVC_X86_DR1 = 0x0201
HVC_X86_DR2 = 0x0202
HVC_X86_DR3 = 0x0203
HVC_X86_DR6 = 0x0206
HVC_X86_DR7 = 0x0207
HVC_X86_CS = 0x0300
HVC_X86_DS = 0x0301
HVC_X86_ES = 0x0302
HVC_X86_FS = 0x0303
HVC_X86_GS = 0x0304
HVC_X86_SS = 0x0305
HVC_X86_TR = 0x0306
HVC_X86_LDTR = 0x0307
HVC_X86_GDTR = 0x0308
HVC_X86_IDTR = 0x0309

HVC_X86_MODE_REAL = 0
HVC_X86_MODE_PROTECTED32 = 1
HVC_X86_MODE_LONG64 = 2

_MSR_TAG = 1 << 32


def HVC_X86_MSR(index):  # noqa: N802 - the C macro's name
    """Register id of the model-specific register ``index`` (any MSR)."""
    return _MSR_TAG | (int(index) & 0xFFFFFFFF)


def HVC_X86_IS_MSR(reg_id):  # noqa: N802 - the C macro's name
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
    """Capabilities for :meth:`hvcore.Hypervisor.cap` (``hvc_cap``)."""

    MAX_VCPUS = HVC_CAP_MAX_VCPUS
    NR_VCPUS = HVC_CAP_NR_VCPUS
    MAX_MEMORY_REGIONS = HVC_CAP_MAX_MEMORY_REGIONS
    READONLY_MEMORY = HVC_CAP_READONLY_MEMORY
    DIRTY_TRACKING = HVC_CAP_DIRTY_TRACKING
    TSC_SCALING = HVC_CAP_TSC_SCALING
    TSC_OFFSET = HVC_CAP_TSC_OFFSET
    IRQCHIP = HVC_CAP_IRQCHIP
    MSI = HVC_CAP_MSI
    FPU_STATE_SIZE = HVC_CAP_FPU_STATE_SIZE
    IRQFD = HVC_CAP_IRQFD
    IOEVENTFD = HVC_CAP_IOEVENTFD
    PHYS_ADDR_BITS = HVC_CAP_PHYS_ADDR_BITS
    IRQ_LINES = HVC_CAP_IRQ_LINES
    MAX_VMS = HVC_CAP_MAX_VMS
    PAGE_SIZE = HVC_CAP_PAGE_SIZE
    IRQCHIP_LAPIC = HVC_CAP_IRQCHIP_LAPIC
    IRQCHIP_IOAPIC = HVC_CAP_IRQCHIP_IOAPIC
    IRQCHIP_PIC = HVC_CAP_IRQCHIP_PIC
    IRQCHIP_PIT = HVC_CAP_IRQCHIP_PIT


class DirtyMode(enum.IntFlag):
    """Bits of :attr:`Cap.DIRTY_TRACKING` and of
    :attr:`MemoryRegion.dirty_mode` (``hvc_dirty_mode``); AUTO, BITMAP or
    RING as the mode asked of :meth:`MemoryRegion.dirty_start`."""

    AUTO = HVC_DIRTY_AUTO
    BITMAP = HVC_DIRTY_BITMAP
    RING = HVC_DIRTY_RING
    INITIALLY_SET = HVC_DIRTY_INITIALLY_SET
    MANUAL_CLEAR = HVC_DIRTY_MANUAL_CLEAR


class DirtyFlags(enum.IntFlag):
    """Flags of dirty tracking's start (``hvc_dirty_flags``)."""

    START_CLEAN = HVC_DIRTY_START_CLEAN


class VmFlags(enum.IntFlag):
    """Flags for VM creation (``hvc_vm_flags``)."""

    NO_IRQCHIP = HVC_VM_NO_IRQCHIP
    DIRTY_RING = HVC_VM_DIRTY_RING
    USER_IRQCHIP = HVC_VM_USER_IRQCHIP


class MemoryFlags(enum.IntFlag):
    """Flags of a memory region (``hvc_memory_flags``)."""

    READONLY = HVC_MEMORY_READONLY
    MERGEABLE = HVC_MEMORY_MERGEABLE
    PREFAULT = HVC_MEMORY_PREFAULT
    HUGETLB = HVC_MEMORY_HUGETLB
    THP = HVC_MEMORY_THP


class IoSpace(enum.IntEnum):
    """Address spaces of I/O handlers and exits (``hvc_io_space``)."""

    PIO = HVC_IO_PIO
    MMIO = HVC_IO_MMIO


class ExitReason(enum.IntEnum):
    """Why ``vcpu.run()`` returned (``hvc_exit_reason``)."""

    NONE = HVC_EXIT_NONE
    PIO = HVC_EXIT_PIO
    MMIO = HVC_EXIT_MMIO
    HLT = HVC_EXIT_HLT
    SHUTDOWN = HVC_EXIT_SHUTDOWN
    RESET = HVC_EXIT_RESET
    POWEROFF = HVC_EXIT_POWEROFF
    INTERNAL_ERROR = HVC_EXIT_INTERNAL_ERROR
    KICK = HVC_EXIT_KICK
    DEBUG = HVC_EXIT_DEBUG
    UNKNOWN = HVC_EXIT_UNKNOWN


class ExitFlags(enum.IntFlag):
    """Bits of an exit record's flags (``hvc_exit_flags``)."""

    HANDLED = HVC_EXIT_F_HANDLED


class X86Reg(enum.IntEnum):
    """x86 register ids (``hvc_x86_reg``); MSRs are :func:`msr`."""

    RAX = HVC_X86_RAX
    RBX = HVC_X86_RBX
    RCX = HVC_X86_RCX
    RDX = HVC_X86_RDX
    RSI = HVC_X86_RSI
    RDI = HVC_X86_RDI
    RSP = HVC_X86_RSP
    RBP = HVC_X86_RBP
    R8 = HVC_X86_R8
    R9 = HVC_X86_R9
    R10 = HVC_X86_R10
    R11 = HVC_X86_R11
    R12 = HVC_X86_R12
    R13 = HVC_X86_R13
    R14 = HVC_X86_R14
    R15 = HVC_X86_R15
    RIP = HVC_X86_RIP
    RFLAGS = HVC_X86_RFLAGS
    CR0 = HVC_X86_CR0
    CR2 = HVC_X86_CR2
    CR3 = HVC_X86_CR3
    CR4 = HVC_X86_CR4
    CR8 = HVC_X86_CR8
    EFER = HVC_X86_EFER
    APIC_BASE = HVC_X86_APIC_BASE
    DR0 = HVC_X86_DR0
    DR1 = HVC_X86_DR1
    DR2 = HVC_X86_DR2
    DR3 = HVC_X86_DR3
    DR6 = HVC_X86_DR6
    DR7 = HVC_X86_DR7
    CS = HVC_X86_CS
    DS = HVC_X86_DS
    ES = HVC_X86_ES
    FS = HVC_X86_FS
    GS = HVC_X86_GS
    SS = HVC_X86_SS
    TR = HVC_X86_TR
    LDTR = HVC_X86_LDTR
    GDTR = HVC_X86_GDTR
    IDTR = HVC_X86_IDTR


class X86Mode(enum.IntEnum):
    """Execution modes for ``vcpu.set_mode()`` (``hvc_x86_mode``)."""

    REAL = HVC_X86_MODE_REAL
    PROTECTED32 = HVC_X86_MODE_PROTECTED32
    LONG64 = HVC_X86_MODE_LONG64


class NumaPolicy(enum.IntEnum):
    """NUMA policy of a region's host memory (``hvc_numa_policy``)."""

    DEFAULT = HVC_NUMA_DEFAULT
    BIND = HVC_NUMA_BIND
    PREFERRED = HVC_NUMA_PREFERRED
    INTERLEAVE = HVC_NUMA_INTERLEAVE


from .constants_ext import *  # noqa: E402,F401,F403 - device.h and later


def to_enum(enum_type, value):
    """``enum_type(value)``, or the plain int for a value it does not know."""
    try:
        return enum_type(value)
    except ValueError:
        return int(value)


__all__ = sorted(name for name in dir() if name.startswith("HVC_")) + [
    "Cap", "DirtyMode", "DirtyFlags", "VmFlags", "MemoryFlags", "IoSpace", "IoResult",
    "IO_EXIT", "ExitReason", "ExitFlags", "X86Reg", "X86Mode", "msr",
    "NumaPolicy", "FdEvents", "DoorbellFlags", "AcpiFlags", "KernelFormat",
    "BootProtocol", "VirtioBlkFlags", "VirtioNetFlags", "PlacementFlags", "TscInfoFlags",
    "TscConfigFlags", "TscWriteFlags", "TscPausePolicy", "TscCatchup",
    "SaveFlags", "RestoreFlags", "MigrateFlags", "MigrateTlsFlags",
]
