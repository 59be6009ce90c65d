"""Finding and loading libhvcore, and declaring every C function it exports.

Where the library comes from, in this order:

1. ``HVCORE_LIBRARY``: the library file to load (or a directory holding
   it). Nothing else is tried: if it cannot be used, import fails.
2. ``HVCORE_BUILD_DIR``: a CMake build directory; ``<dir>/src/libhvcore.so.1``
   is loaded. Nothing else is tried either.
3. ``ctypes.util.find_library("hvcore")``: an installed library.
4. When this package sits in a libhvcore source tree (bindings/python), that
   tree's build directories: ``build/src/libhvcore.so.1`` first, then other
   ``build*/src/`` directories, newest first.

A library is accepted when it loads, exports every function these bindings
declare, and ``hvc_version()`` reports major version 1 with a minor version
of at least the one the bindings were written for (1.0). The TSC and
migration functions (:data:`OPTIONAL_PROTOTYPES`) may be absent: the calls
that need them then raise HvError(ENOSYS). The file that was
loaded and why it was chosen are :data:`path` and :data:`origin`; a refusal
raises :class:`hvcore.LibraryError` (an ImportError) naming the file and the
reason. ``logging.getLogger("hvcore")`` logs every attempt at DEBUG level.
"""

import ctypes
import ctypes.util
import errno
import logging
import os
import sys
from ctypes import (POINTER, c_char_p, c_int, c_size_t, c_uint, c_uint16,
                    c_uint32, c_uint64, c_void_p)
from pathlib import Path

from . import _structs as S
from . import _structs_audit as A
from . import _structs_ext as X
from . import _structs_live as L
from .constants import HVC_VERSION_MAJOR, HVC_VERSION_MINOR
from .errors import HvError, LibraryError

log = logging.getLogger("hvcore")

if sys.platform == "darwin":
    _FILE_NAMES = ("libhvcore.1.dylib", "libhvcore.dylib")
else:
    _FILE_NAMES = ("libhvcore.so.1", "libhvcore.so")


# ----------------------------------------------------------- errchecks --
# Each runs on the calling thread right after its C call, so the
# thread-local hvc_last_error() still describes that call.

def _text(raw):
    return raw.decode("utf-8", "replace") if raw is not None else ""


def error_for(code, function):
    """The HvError for negative errno ``code`` returned by ``function``.

    Must be called on the thread of the failing call, before any other
    libhvcore call, so that hvc_last_error() is still that call's message.
    """
    message = lib.hvc_last_error()
    return HvError(-code, lib.hvc_strerror(code), message, function)


def _check_rc(result, func, args):
    """int returns: 0 or more is success, negative is -errno."""
    if result < 0:
        raise error_for(result, func.__name__)
    return result


def _check_nonnull(result, func, args):
    """Pointer returns where NULL only means a bad argument."""
    if not result:
        raise HvError(errno.EINVAL, "invalid argument",
                      f"{func.__name__} returned NULL", func.__name__)
    return result


def _check_value(result, func, args):
    """Calls that cannot fail (version, counts, region getters)."""
    return result


def _check_text(result, func, args):
    """const char * returns that are never NULL: decoded to str."""
    return _text(result)


def _check_optional_text(result, func, args):
    """const char * returns where NULL means "none": str or None."""
    return None if result is None else _text(result)


def _check_rc_nospc(result, func, args):
    """Size-query calls: -ENOSPC is returned (the caller grows its buffer
    and calls again); other negative values raise."""
    if result < 0 and result != -errno.ENOSPC:
        raise error_for(result, func.__name__)
    return result


def _check_bool(result, func, args):
    return bool(result)


def _check_probe(result, func, args):
    """hvc_backend_probe(): (0, "") or (-errno, hvc_last_error())."""
    if result < 0:
        return result, lib.hvc_last_error()
    return result, ""


_P = POINTER
_HANDLE = c_void_p
#: name: (restype, argtypes, errcheck). Every symbol of HVCORE_1.0.
PROTOTYPES = {
    # common.h
    "hvc_version": (c_uint, [], _check_value),
    "hvc_version_string": (c_char_p, [], _check_text),
    "hvc_strerror": (c_char_p, [c_int], _check_text),
    "hvc_last_error": (c_char_p, [], _check_text),
    # hypervisor.h
    "hvc_backend_count": (c_size_t, [], _check_value),
    "hvc_backend_name": (c_char_p, [c_size_t], _check_optional_text),
    "hvc_backend_probe": (c_int, [c_char_p], _check_probe),
    "hvc_hypervisor_open": (c_int, [c_char_p, _P(_HANDLE)], _check_rc),
    "hvc_hypervisor_close": (c_int, [_HANDLE], _check_rc),
    "hvc_hypervisor_backend": (c_char_p, [_HANDLE], _check_nonnull),
    "hvc_hypervisor_get_cap": (c_int, [_HANDLE, c_int, _P(c_uint64)],
                              _check_rc),
    # vm.h
    "hvc_vm_create": (c_int, [_HANDLE, _P(S.VmOptions), _P(_HANDLE)],
                     _check_rc),
    "hvc_vm_destroy": (c_int, [_HANDLE], _check_rc),
    "hvc_vm_pause": (c_int, [_HANDLE], _check_rc),
    "hvc_vm_resume": (c_int, [_HANDLE], _check_rc),
    "hvc_vm_is_paused": (c_int, [_HANDLE], _check_bool),
    "hvc_vm_add_io_handler": (c_int, [_HANDLE, c_int, c_uint64, c_uint64,
                                     S.IoFn, c_void_p], _check_rc),
    "hvc_vm_remove_io_handler": (c_int, [_HANDLE, c_int, c_uint64],
                                _check_rc),
    "hvc_vm_set_irq": (c_int, [_HANDLE, c_uint32, c_int], _check_rc),
    "hvc_vm_send_msi": (c_int, [_HANDLE, c_uint64, c_uint32], _check_rc),
    # memory.h
    "hvc_vm_add_memory": (c_int, [_HANDLE, _P(S.MemoryOptions), _P(_HANDLE)],
                         _check_rc),
    "hvc_vm_remove_memory": (c_int, [_HANDLE, _HANDLE], _check_rc),
    "hvc_vm_find_memory": (c_int, [_HANDLE, c_uint64, _P(_HANDLE)],
                          _check_rc),
    "hvc_memory_region_guest_addr": (c_uint64, [_HANDLE], _check_value),
    "hvc_memory_region_length": (c_uint64, [_HANDLE], _check_value),
    "hvc_memory_region_hva": (c_void_p, [_HANDLE], _check_nonnull),
    "hvc_memory_region_flags": (c_uint32, [_HANDLE], _check_value),
    "hvc_memory_region_fd": (c_int, [_HANDLE], _check_value),
    "hvc_vm_read": (c_int, [_HANDLE, c_uint64, c_void_p, c_size_t],
                   _check_rc),
    "hvc_vm_write": (c_int, [_HANDLE, c_uint64, c_void_p, c_size_t],
                    _check_rc),
    "hvc_vm_gpa_to_hva": (c_int, [_HANDLE, c_uint64, c_size_t, _P(c_void_p)],
                         _check_rc),
    # vcpu.h
    "hvc_vcpu_create": (c_int, [_HANDLE, c_uint32, _P(_HANDLE)], _check_rc),
    "hvc_vcpu_destroy": (c_int, [_HANDLE], _check_rc),
    "hvc_vcpu_id": (c_uint32, [_HANDLE], _check_value),
    "hvc_vcpu_vm": (c_void_p, [_HANDLE], _check_nonnull),
    "hvc_vcpu_run": (c_int, [_HANDLE, _P(_P(S.HvExit))], _check_rc),
    "hvc_vcpu_get_exit": (_P(S.HvExit), [_HANDLE], _check_nonnull),
    "hvc_vcpu_complete_io": (c_int, [_HANDLE, c_void_p, c_size_t], _check_rc),
    "hvc_vcpu_kick": (c_int, [_HANDLE], _check_rc),
    "hvc_vcpu_get_regs": (c_int, [_HANDLE, _P(c_uint64), _P(c_uint64),
                                 c_size_t], _check_rc),
    "hvc_vcpu_set_regs": (c_int, [_HANDLE, _P(c_uint64), _P(c_uint64),
                                 c_size_t], _check_rc),
    "hvc_vcpu_get_reg": (c_int, [_HANDLE, c_uint64, _P(c_uint64)], _check_rc),
    "hvc_vcpu_set_reg": (c_int, [_HANDLE, c_uint64, c_uint64], _check_rc),
    "hvc_vcpu_get_segment": (c_int, [_HANDLE, c_uint64, _P(S.X86Segment)],
                            _check_rc),
    "hvc_vcpu_set_segment": (c_int, [_HANDLE, c_uint64, _P(S.X86Segment)],
                            _check_rc),
    "hvc_vcpu_fpu_state_size": (c_int, [_HANDLE, _P(c_size_t)], _check_rc),
    "hvc_vcpu_get_fpu_state": (c_int, [_HANDLE, c_void_p, c_size_t],
                              _check_rc),
    "hvc_vcpu_set_fpu_state": (c_int, [_HANDLE, c_void_p, c_size_t],
                              _check_rc),
    "hvc_vcpu_mode_tables_size": (c_int, [_HANDLE, _P(S.ModeOptions),
                                         _P(c_uint64)], _check_rc),
    "hvc_vcpu_set_mode": (c_int, [_HANDLE, _P(S.ModeOptions)], _check_rc),
    # device.h
    "hvc_vm_add_device": (c_int, [_HANDLE, _P(X.DeviceOps), c_void_p,
                                 _P(X.DeviceOptions), _P(_HANDLE)],
                         _check_rc),
    "hvc_vm_remove_device": (c_int, [_HANDLE, _HANDLE], _check_rc),
    "hvc_vm_list_devices": (c_int, [_HANDLE, _P(_HANDLE), c_size_t,
                                   _P(c_size_t)], _check_rc),
    "hvc_vm_find_device": (c_int, [_HANDLE, c_char_p, _P(_HANDLE)],
                          _check_rc),
    "hvc_device_name": (c_char_p, [_HANDLE], _check_optional_text),
    "hvc_device_type": (c_char_p, [_HANDLE], _check_optional_text),
    "hvc_device_opaque": (c_void_p, [_HANDLE], _check_value),
    "hvc_device_save_state": (c_int, [_HANDLE, c_void_p, c_size_t,
                                     _P(c_size_t)], _check_rc_nospc),
    "hvc_device_load_state": (c_int, [_HANDLE, c_void_p, c_size_t],
                             _check_rc),
    "hvc_device_set_grants": (c_int, [_HANDLE, _P(X.MemoryGrant), c_size_t],
                             _check_rc),
    "hvc_device_get_grants": (c_int, [_HANDLE, _P(X.MemoryGrant), c_size_t,
                                     _P(c_size_t)], _check_rc),
    "hvc_device_grant_refusals": (c_int, [_HANDLE, _P(c_uint64)], _check_rc),
    "hvc_device_read": (c_int, [_HANDLE, c_uint64, c_void_p, c_size_t],
                       _check_rc),
    "hvc_device_write": (c_int, [_HANDLE, c_uint64, c_void_p, c_size_t],
                        _check_rc),
    "hvc_vm_reset_devices": (c_int, [_HANDLE], _check_rc),
    "hvc_vm_watch_fd": (c_int, [_HANDLE, c_int, c_uint32, X.FdFn, c_void_p],
                       _check_rc),
    "hvc_vm_unwatch_fd": (c_int, [_HANDLE, c_int], _check_rc),
    "hvc_vm_irq_eventfd": (c_int, [_HANDLE, c_uint32, _P(c_int)], _check_rc),
    "hvc_vm_add_doorbell": (c_int, [_HANDLE, _P(X.Doorbell), X.DoorbellFn,
                                   c_void_p], _check_rc),
    "hvc_vm_remove_doorbell": (c_int, [_HANDLE, _P(X.Doorbell)], _check_rc),
    "hvc_vcpu_request_exit": (c_int, [_HANDLE, c_uint32, c_uint64],
                             _check_rc),
    # platform.h
    "hvc_serial_create": (c_int, [_HANDLE, _P(X.SerialOptions), _P(_HANDLE)],
                         _check_rc),
    "hvc_serial_receive": (c_int, [_HANDLE, c_void_p, c_size_t], _check_rc),
    "hvc_debug_exit_create": (c_int, [_HANDLE, c_uint16, _P(_HANDLE)],
                             _check_rc),
    "hvc_i8042_create": (c_int, [_HANDLE, _P(_HANDLE)], _check_rc),
    "hvc_cmos_create": (c_int, [_HANDLE, _P(_HANDLE)], _check_rc),
    "hvc_port80_create": (c_int, [_HANDLE, _P(_HANDLE)], _check_rc),
    "hvc_acpi_build": (c_int, [_HANDLE, _P(X.AcpiOptions), _P(c_uint64)],
                      _check_rc),
    # loader.h
    "hvc_vm_load_kernel": (c_int, [_HANDLE, _P(X.BootOptions),
                                  _P(X.BootInfo)], _check_rc),
    "hvc_vcpu_boot": (c_int, [_HANDLE, _P(X.BootInfo)], _check_rc),
    # virtio.h
    "hvc_virtio_blk_create": (c_int, [_HANDLE, _P(X.VirtioBlkOptions),
                                     _P(_HANDLE)], _check_rc),
    "hvc_virtio_rng_create": (c_int, [_HANDLE, _P(X.VirtioMmio), c_char_p,
                                     _P(_HANDLE)], _check_rc),
    "hvc_virtio_console_create": (c_int, [_HANDLE, _P(X.VirtioConsoleOptions),
                                         _P(_HANDLE)], _check_rc),
    "hvc_virtio_cmdline": (c_int, [_HANDLE, c_char_p, c_size_t, _P(c_size_t)],
                          _check_rc_nospc),
    "hvc_virtio_net_create": (c_int, [_HANDLE, _P(X.VirtioNetOptions),
                                     _P(_HANDLE)], _check_rc),
    "hvc_virtio_net_detach_backend": (c_int, [_HANDLE], _check_rc),
    "hvc_virtio_net_attach_backend": (c_int, [_HANDLE, c_char_p, c_int],
                                      _check_rc),
    "hvc_virtio_net_announce": (c_int, [_HANDLE], _check_rc),
    "hvc_virtio_net_set_link": (c_int, [_HANDLE, c_int], _check_rc),
    "hvc_virtio_net_get_stats": (c_int, [_HANDLE, _P(X.VirtioNetStats)],
                                 _check_rc),
    # topology.h
    "hvc_topology_host": (c_int, [_P(_HANDLE)], _check_rc),
    "hvc_topology_create": (c_int, [_P(_HANDLE)], _check_rc),
    "hvc_topology_destroy": (c_int, [_HANDLE], _check_rc),
    "hvc_topology_add_node": (c_int, [_HANDLE, c_uint32, _P(c_uint32),
                                     c_size_t, c_uint64, c_uint64],
                             _check_rc),
    "hvc_topology_set_distance": (c_int, [_HANDLE, c_uint32, c_uint32,
                                         c_uint32], _check_rc),
    "hvc_topology_add_pci": (c_int, [_HANDLE, _P(X.PciDevice)], _check_rc),
    "hvc_topology_list_nodes": (c_int, [_HANDLE, _P(c_uint32), c_size_t,
                                       _P(c_size_t)], _check_rc),
    "hvc_topology_node_cpus": (c_int, [_HANDLE, c_uint32, _P(c_uint32),
                                      c_size_t, _P(c_size_t)], _check_rc),
    "hvc_topology_node_memory": (c_int, [_HANDLE, c_uint32, _P(c_uint64),
                                        _P(c_uint64)], _check_rc),
    "hvc_topology_distance": (c_int, [_HANDLE, c_uint32, c_uint32,
                                     _P(c_uint32)], _check_rc),
    "hvc_topology_pci_count": (c_size_t, [_HANDLE], _check_value),
    "hvc_topology_pci_device": (c_int, [_HANDLE, c_size_t, _P(X.PciDevice)],
                               _check_rc),
    "hvc_topology_find_pci": (c_int, [_HANDLE, c_char_p, _P(c_size_t)],
                             _check_rc),
    "hvc_topology_place": (c_int, [_HANDLE, c_char_p, _P(X.Placement),
                                  _P(c_uint32), c_size_t, _P(c_size_t)],
                          _check_rc),
    "hvc_thread_pin_cpus": (c_int, [_P(c_uint32), c_size_t], _check_rc),
    "hvc_thread_pin_node": (c_int, [c_uint32], _check_rc),
}

#: tsc.h, migration.h, handover.h, audit.h, hvc_set_log() (with
#: hvc_vm_get_vcpu(), hvc_vm_vcpu_count() and hvc_vm_list_memory(), which
#: a restored VM needs): later additions to
#: HVCORE_1.0 without a version bump, so a 1.0 library without one of these
#: is accepted; the Python calls that need it raise HvError(ENOSYS).
OPTIONAL_PROTOTYPES = {
    "hvc_tsc_ratio": (c_int, [c_uint32, c_uint32, c_uint32, _P(c_uint64)],
                     _check_rc),
    "hvc_tsc_scale": (c_int, [c_uint64, c_uint64, c_uint32, _P(c_uint64)],
                     _check_rc),
    "hvc_tsc_get_info": (c_int, [_HANDLE, _P(X.TscInfo)], _check_rc),
    "hvc_vm_set_tsc_frequency": (c_int, [_HANDLE, _P(X.TscFrequencyOptions)],
                                _check_rc),
    "hvc_vm_get_tsc_config": (c_int, [_HANDLE, _P(X.TscConfig)], _check_rc),
    "hvc_vcpu_get_tsc": (c_int, [_HANDLE, _P(c_uint64)], _check_rc),
    "hvc_vcpu_set_tsc": (c_int, [_HANDLE, c_uint64, c_uint32], _check_rc),
    "hvc_vcpu_get_tsc_offset": (c_int, [_HANDLE, _P(c_uint64)], _check_rc),
    "hvc_vcpu_set_tsc_offset": (c_int, [_HANDLE, c_uint64, c_uint32],
                               _check_rc),
    "hvc_vm_set_tsc_policy": (c_int, [_HANDLE, _P(X.TscPolicy)], _check_rc),
    "hvc_vm_get_tsc_policy": (c_int, [_HANDLE, _P(X.TscPolicy)], _check_rc),
    "hvc_vm_tsc_state_size": (c_int, [_HANDLE, _P(c_size_t)], _check_rc),
    "hvc_vm_save_tsc": (c_int, [_HANDLE, c_void_p, c_size_t, _P(c_size_t)],
                       _check_rc),
    "hvc_vm_restore_tsc": (c_int, [_HANDLE, c_void_p, c_size_t,
                                  _P(X.TscRestoreOptions)], _check_rc),
    # common.h: the log hook (hvcore.log)
    "hvc_set_log": (c_int, [c_int, S.LogFn, c_void_p], _check_rc),
    # memory.h, vcpu.h: enumerating what a restore created
    "hvc_vm_list_memory": (c_int, [_HANDLE, _P(_HANDLE), c_size_t,
                                  _P(c_size_t)], _check_rc),
    "hvc_vm_get_vcpu": (c_int, [_HANDLE, c_uint32, _P(_HANDLE)], _check_rc),
    "hvc_vm_vcpu_count": (c_uint32, [_HANDLE], _check_value),
    # memory.h: dirty-page tracking
    "hvc_memory_dirty_start": (c_int, [_HANDLE, _P(S.DirtyOptions)],
                               _check_rc),
    "hvc_memory_dirty_fetch": (c_int, [_HANDLE, c_void_p, c_size_t,
                                       _P(c_uint64)], _check_rc),
    "hvc_memory_dirty_stop": (c_int, [_HANDLE], _check_rc),
    "hvc_memory_dirty_mode": (c_uint32, [_HANDLE], _check_value),
    "hvc_memory_dirty_bitmap_size": (c_size_t, [_HANDLE], _check_value),
    "hvc_vm_mark_dirty": (c_int, [_HANDLE, c_uint64, c_size_t], _check_rc),
    # migration.h
    "hvc_vm_save": (c_int, [_HANDLE, _P(X.Stream), _P(X.SaveOptions)],
                   _check_rc),
    "hvc_vm_save_fd": (c_int, [_HANDLE, c_int, _P(X.SaveOptions)],
                      _check_rc),
    "hvc_snapshot_save": (c_int, [_HANDLE, c_char_p, _P(X.SaveOptions)],
                         _check_rc),
    "hvc_vm_restore": (c_int, [_HANDLE, _P(X.Stream), _P(X.RestoreOptions),
                              _P(_HANDLE)], _check_rc),
    "hvc_vm_restore_fd": (c_int, [_HANDLE, c_int, _P(X.RestoreOptions),
                                 _P(_HANDLE)], _check_rc),
    "hvc_snapshot_restore": (c_int, [_HANDLE, c_char_p, _P(X.RestoreOptions),
                                    _P(_HANDLE)], _check_rc),
    # migration.h: live migration, live snapshots, transport (hvcore.live)
    "hvc_vm_migrate_send": (c_int, [_HANDLE, c_int, _P(L.MigrateOptions),
                                   _P(L.MigrateStats)], _check_rc),
    "hvc_vm_migrate_cancel": (c_int, [_HANDLE], _check_rc),
    "hvc_vm_migrate_receive": (c_int, [_HANDLE, c_int, _P(X.RestoreOptions),
                                      _P(_HANDLE)], _check_rc),
    "hvc_snapshot_save_live": (c_int, [_HANDLE, c_char_p,
                                      _P(L.MigrateOptions),
                                      _P(L.MigrateStats)], _check_rc),
    "hvc_migrate_connect": (c_int, [c_char_p], _check_rc),
    "hvc_migrate_listen": (c_int, [c_char_p], _check_rc),
    "hvc_migrate_stats_json": (c_int, [_P(L.MigrateStats), c_char_p,
                                      c_size_t], _check_rc),
    # handover.h (hvcore.live)
    "hvc_vm_handover_send": (c_int, [_HANDLE, c_int, _P(L.HandoverOptions),
                                    _P(L.HandoverStats)], _check_rc),
    "hvc_vm_handover_receive": (c_int, [_HANDLE, c_int, _P(X.RestoreOptions),
                                       _P(_HANDLE)], _check_rc),
    "hvc_vm_handover_fd": (c_int, [_HANDLE, c_char_p, c_uint32, _P(c_int)],
                           _check_rc),
    # audit.h: the memory-sharing audit (hvcore.audit)
    "hvc_vm_audit_sharing": (c_int, [_HANDLE, _P(A.AuditOptions),
                                    _P(A.SharingReport)], _check_rc),
    "hvc_vm_set_sharing_guard": (c_int, [_HANDLE, c_uint32], _check_rc),
}


def _missing(name):
    def call(*args):
        raise HvError(errno.ENOSYS, "function not implemented",
                      f"the loaded libhvcore does not export {name}()", name)
    call.__name__ = name
    return call


class _Library:
    """The CDLL with the optional functions filled in when absent."""

    def __init__(self, cdll, missing):
        self._cdll = cdll
        for name in missing:
            setattr(self, name, _missing(name))

    def __getattr__(self, name):
        return getattr(self._cdll, name)


# ------------------------------------------------------------- loading --

class _Refused(Exception):
    """A candidate library that cannot be used, and why."""


def _source_root():
    """The libhvcore source tree this package sits in, or None."""
    root = Path(__file__).resolve().parents[3]
    if ((root / "include" / "hvcore" / "common.h").is_file()
            and (root / "bindings" / "python" / "hvcore").is_dir()):
        return root
    return None


def _in_build_dir(build_dir, origin):
    build_dir = Path(build_dir)
    return [(str(build_dir / "src" / name), origin) for name in _FILE_NAMES]


def _explicit_candidates():
    """Candidates named by the environment, or None when it names none."""
    lib = os.environ.get("HVCORE_LIBRARY")
    if lib:
        origin = f"HVCORE_LIBRARY={lib}"
        if os.path.isdir(lib):
            return [(os.path.join(lib, name), origin) for name in _FILE_NAMES]
        return [(lib, origin)]
    build = os.environ.get("HVCORE_BUILD_DIR")
    if build:
        return _in_build_dir(build, f"HVCORE_BUILD_DIR={build}")
    return None


def _search_candidates():
    found = []
    name = ctypes.util.find_library("hvcore")
    if name:
        found.append((name, "ctypes.util.find_library('hvcore')"))
    root = _source_root()
    if root is not None:
        others = [d for d in root.glob("build?*") if d.is_dir()]
        others.sort(key=lambda d: d.stat().st_mtime, reverse=True)
        for build in [root / "build"] + others:
            found += _in_build_dir(build, f"source-tree build dir {build}")
    return found


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", c_char_p), ("dli_fbase", c_void_p),
                ("dli_sname", c_char_p), ("dli_saddr", c_void_p)]


def _loaded_file(cdll, fallback):
    """The file the dynamic loader actually mapped for ``cdll``."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):
        return fallback
    dladdr.argtypes = [c_void_p, POINTER(_DlInfo)]
    dladdr.restype = c_int
    info = _DlInfo()
    address = ctypes.cast(cdll.hvc_version, c_void_p).value
    if dladdr(address, ctypes.byref(info)) and info.dli_fname:
        return os.path.abspath(os.fsdecode(info.dli_fname))
    return fallback


def _open(path):
    """Loads, version-checks and declares one candidate; raises _Refused."""
    try:
        cdll = ctypes.CDLL(path)
    except OSError as e:
        raise _Refused(f"cannot be loaded: {e}") from None
    try:
        hvc_version = cdll.hvc_version
    except AttributeError:
        raise _Refused("it does not export hvc_version(): not libhvcore") \
            from None
    hvc_version.restype = c_uint
    hvc_version.argtypes = []
    number = hvc_version()
    major, minor, patch = number // 10000, number // 100 % 100, number % 100
    if major != HVC_VERSION_MAJOR or minor < HVC_VERSION_MINOR:
        raise _Refused(
            f"it is libhvcore {major}.{minor}.{patch} (hvc_version() = "
            f"{number}); these bindings need {HVC_VERSION_MAJOR}."
            f"{HVC_VERSION_MINOR} or a later {HVC_VERSION_MAJOR}.x")
    for name, (restype, argtypes, errcheck) in PROTOTYPES.items():
        try:
            func = getattr(cdll, name)
        except AttributeError:
            raise _Refused(
                f"it reports version {major}.{minor}.{patch} but does not "
                f"export {name}()") from None
        func.restype = restype
        func.argtypes = argtypes
        func.errcheck = errcheck
    missing = []
    for name, (restype, argtypes, errcheck) in OPTIONAL_PROTOTYPES.items():
        func = getattr(cdll, name, None)
        if func is None:
            missing.append(name)
            continue
        func.restype = restype
        func.argtypes = argtypes
        func.errcheck = errcheck
    return _Library(cdll, missing), (major, minor, patch)


def _load():
    explicit = _explicit_candidates()
    candidates = explicit if explicit is not None else _search_candidates()
    tried = []
    for path, origin in candidates:
        is_name = os.sep not in path
        if not is_name and not os.path.exists(path):
            tried.append(f"{path} ({origin}): no such file")
            continue
        log.debug("hvcore: trying %s (%s)", path, origin)
        try:
            cdll, version = _open(path)
        except _Refused as why:
            log.debug("hvcore: refused %s: %s", path, why)
            if explicit is not None:
                raise LibraryError(
                    f"hvcore: refusing {path} ({origin}): {why}",
                    name="hvcore", path=path) from None
            tried.append(f"{path} ({origin}): {why}")
            continue
        loaded = _loaded_file(cdll, path)
        log.debug("hvcore: loaded %s (%s), version %d.%d.%d", loaded, origin,
                  *version)
        return cdll, loaded, origin, version
    if explicit is not None:
        where = "; ".join(tried)
        raise LibraryError(f"hvcore: cannot find libhvcore: {where}",
                           name="hvcore", path=candidates[0][0])
    lines = "".join(f"\n  - {t}" for t in tried) or \
        "\n  - ctypes.util.find_library('hvcore') found nothing"
    raise LibraryError(
        "hvcore: cannot find a usable libhvcore. Tried:" + lines +
        "\nSet HVCORE_LIBRARY to the library file (e.g. "
        "build/src/libhvcore.so.1) or HVCORE_BUILD_DIR to a CMake build "
        "directory.", name="hvcore")


lib, path, origin, version_info = _load()
#: "1.0.0": the loaded library's version string.
version = lib.hvc_version_string()
S.check_layouts()
