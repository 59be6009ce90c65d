"""hvcore: Python bindings for libhvcore, the embeddable hypervisor core.

Pure ctypes, no compiled extension. Importing the package loads libhvcore
(see :mod:`hvcore._lib` for where it is looked for) and checks its version.

    import hvcore

    with hvcore.Hypervisor() as hv, hv.create_vm() as vm:
        ram = vm.add_memory(0, 2 << 20)
        vm.write(0x8000, image)
        vm.add_io_handler("pio", 0xe9, 1, console)
        vcpu = vm.vcpu(0)
        vcpu.set_mode("long64", entry=0x8000, stack=0x8000, tables=0x100000)
        exit = vcpu.run()

Devices: ``vm.add_serial(output=...)``, ``vm.add_debug_exit()``, ...,
``vm.add_device(model, ranges)`` for a :class:`DeviceModel` written in
Python, ``vm.add_virtio_blk(path, base=..., irq=...)``; kernels:
``info = vm.load_kernel(path, cmdline=...)`` then ``vcpu.boot(info)``.

Snapshots and migration: ``with vm.paused(): vm.save(path_fd_or_file,
key=..., user_data=...)``, then ``VM.restore(hv, source, setup=attach)``
where ``attach(vm, user_data)`` attaches the devices (see
:mod:`hvcore.migration`). Live: ``stats = vm.migrate_send(sock)`` while
the vCPUs run, ``VM.migrate_receive(hv, sock, setup=attach)`` on the other
side, ``vm.snapshot_live(path)``, ``hvcore.migrate_listen("tcp:...")`` /
``hvcore.migrate_connect(...)``, and hand-over to a new process without
copying memory, ``vm.handover_send(unix_sock)`` /
``VM.handover_receive(hv, unix_sock, setup=...)`` (see :mod:`hvcore.live`).

The library never prints: ``hvcore.set_log(callback)`` or
``hvcore.log_to_logging()`` receive its messages (see :mod:`hvcore.log`).

Errors from the library raise :class:`HvError` (an OSError with the errno,
the library's description and its message about what exactly was wrong).
"""

from . import _lib
from .audit import C_NAMES as _AUDIT_C_NAMES
from .audit import AuditFlags, SharingFlags, SharingKind, SharingReport
from .constants import *  # noqa: F401,F403 - the C names and enums
from .constants import (IO_EXIT, AcpiFlags, BootProtocol, Cap, DirtyFlags,
                        DirtyMode,
                        DoorbellFlags, ExitFlags, ExitReason, FdEvents,
                        IoResult, IoSpace, KernelFormat, LogLevel, MemoryFlags,
                        MigrateFlags, MigrateTlsFlags, NumaPolicy, PlacementFlags, RestoreFlags,
                        SaveFlags, TscCatchup,
                        TscConfigFlags, TscInfoFlags, TscPausePolicy,
                        TscWriteFlags, VirtioBlkFlags, VirtioNetFlags,
                        VmFlags, X86Mode,
                        X86Reg, msr)
from .device import Device, DeviceModel, Serial
from .virtio import VirtioNet
from .events import Doorbell
from .errors import ClosedError, HvError, LibraryError
from .exit import Exit
from .hypervisor import Backend, Hypervisor, backends
from .live import (HandoverStats, MigrateStats, MigrateTLS, migrate_connect,
                   migrate_listen)
from .loader import BootInfo
from .log import log_to_logging, set_log
from .memory import MemoryRegion
from .platform import AcpiDevice
from .registers import Segment
from .topology import (NumaNode, PciDevice, Placement, Topology,
                       pin_thread_to_cpus, pin_thread_to_node)
from .tsc import TscConfig, TscInfo, TscPolicy, tsc_ratio, tsc_scale
from .vcpu import VCPU, Registers
from .vm import VM

__version__ = "1.0.0"

#: The library file that was loaded, and why it was chosen.
library_path = _lib.path
library_origin = _lib.origin
#: The loaded library's version, as a string ("1.0.0") and a tuple.
library_version = _lib.version
library_version_info = _lib.version_info


def strerror(code):
    """The library's description of an errno (negative or positive)."""
    return _lib.lib.hvc_strerror(int(code))


def backend_available(name):
    """True when backend ``name`` can open on this host right now."""
    rc, _ = _lib.lib.hvc_backend_probe(str(name).encode())
    return rc == 0


__all__ = [
    "Hypervisor", "VM", "VCPU", "MemoryRegion", "Registers", "Segment",
    "Exit", "Backend", "backends", "backend_available", "strerror",
    "set_log", "log_to_logging", "LogLevel",
    "Device", "DeviceModel", "Serial", "Doorbell", "AcpiDevice", "BootInfo",
    "Topology", "NumaNode", "PciDevice", "Placement", "pin_thread_to_cpus",
    "pin_thread_to_node", "TscInfo", "TscConfig", "TscPolicy", "tsc_ratio",
    "tsc_scale", "AcpiFlags", "BootProtocol", "DoorbellFlags", "FdEvents",
    "KernelFormat", "NumaPolicy", "PlacementFlags", "TscCatchup",
    "TscConfigFlags", "TscInfoFlags", "TscPausePolicy", "TscWriteFlags",
    "VirtioBlkFlags", "VirtioNetFlags", "VirtioNet", "SaveFlags",
    "RestoreFlags", "MigrateFlags", "MigrateTlsFlags", "MigrateStats",
    "HandoverStats", "MigrateTLS", "migrate_connect", "migrate_listen",
    "HvError", "ClosedError", "LibraryError",
    "SharingReport", "SharingFlags", "SharingKind", "AuditFlags",
    "IO_EXIT", "IoResult", "Cap", "DirtyMode", "DirtyFlags", "ExitFlags",
    "ExitReason",
    "IoSpace", "MemoryFlags", "VmFlags", "X86Mode", "X86Reg", "msr",
    "library_path", "library_origin", "library_version",
    "library_version_info", "__version__",
]

# audit.h's constants under their C names, like those of hvcore.constants.
globals().update(_AUDIT_C_NAMES)
__all__ += sorted(_AUDIT_C_NAMES)
