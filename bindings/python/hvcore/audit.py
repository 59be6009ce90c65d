"""The memory-sharing audit (hvcore/audit.h): which pages of a VM's guest
RAM share a physical frame with another mapping, and the responses.

    report = vm.audit_sharing()           # root with CAP_SYS_ADMIN
    if report.ksm:
        vm.audit_sharing(unmerge=True)    # give merged pages their own frame
    vm.set_sharing_guard(hvcore.SharingKind.KSM | hvcore.SharingKind.MAPPED)
    # from now on vm.resume() raises HvError(EBUSY) while pages are shared

Without the privilege the audit raises HvError(EPERM) saying what is
missing, unless ``residency_only=True``: then only the residency counts
are filled and ``report.flags`` has ``SharingFlags.NO_FRAMES``.

Both calls may be made from any thread, also while vCPUs run (the report
is then a snapshot). The functions are loaded when the library exports
them; otherwise the Python call raises HvError(ENOSYS).
"""

import ctypes
import enum
from ctypes import byref
from dataclasses import dataclass

from . import _convert
from ._lib import lib
from ._structs_audit import AuditOptions, SharingReport as CSharingReport
from .constants import to_enum

__all__ = ["AuditFlags", "SharingFlags", "SharingKind", "SharingReport",
           "VmAuditMixin", "C_NAMES"]

# The C names of audit.h's constants (also hvcore.HVC_AUDIT_UNMERGE, ...).
HVC_AUDIT_UNMERGE = 1 << 0
HVC_AUDIT_RESIDENCY_ONLY = 1 << 1
HVC_SHARING_NO_FRAMES = 1 << 0
HVC_SHARING_UNMERGED = 1 << 1
HVC_SHARING_KSM = 1 << 0
HVC_SHARING_MAPPED = 1 << 1
HVC_SHARING_ZERO = 1 << 2
C_NAMES = {name: value for name, value in globals().items()
           if name.startswith("HVC_")}


class AuditFlags(enum.IntFlag):
    """``hvc_audit_flags``."""

    UNMERGE = HVC_AUDIT_UNMERGE
    RESIDENCY_ONLY = HVC_AUDIT_RESIDENCY_ONLY


class SharingFlags(enum.IntFlag):
    """``hvc_sharing_flags``: what a report says about itself."""

    NO_FRAMES = HVC_SHARING_NO_FRAMES
    UNMERGED = HVC_SHARING_UNMERGED


class SharingKind(enum.IntFlag):
    """``hvc_sharing_kind``: the kinds of shared page a guard refuses."""

    KSM = HVC_SHARING_KSM
    MAPPED = HVC_SHARING_MAPPED
    ZERO = HVC_SHARING_ZERO


@dataclass(frozen=True)
class SharingReport:
    """What an audit found, in 4 KiB pages (see ``hvc_sharing_report``).

    ``resident + swapped + not_resident == pages``; ``zero``, ``ksm`` and
    ``mapped_elsewhere`` are resident pages, each counted once.
    """

    flags: SharingFlags
    regions: int
    pages: int
    resident: int
    swapped: int
    not_resident: int
    ksm: int
    mapped_elsewhere: int
    zero: int
    unmerged_regions: int

    @property
    def shared(self):
        """Pages sharing a frame, of every kind."""
        return self.ksm + self.mapped_elsewhere + self.zero


class VmAuditMixin:
    """The audit.h calls of :class:`hvcore.VM`."""

    def audit_sharing(self, *, unmerge=False, residency_only=False):
        """Counts the guest RAM pages that share a frame; a SharingReport.

        ``unmerge``: afterwards withdraw KSM advice from every region,
        which gives merged pages their own frames and keeps them unmerged
        (the report has the counts found before). ``residency_only``:
        without the privilege, report residency only instead of raising
        HvError(EPERM).
        """
        flags = AuditFlags(0)
        if unmerge:
            flags |= AuditFlags.UNMERGE
        if residency_only:
            flags |= AuditFlags.RESIDENCY_ONLY
        opts = AuditOptions(size=ctypes.sizeof(AuditOptions),
                            flags=int(flags))
        raw = CSharingReport(size=ctypes.sizeof(CSharingReport))
        self._node.call(lib.hvc_vm_audit_sharing, byref(opts), byref(raw))
        values = {name: getattr(raw, name) for name, _ in raw._fields_
                  if name not in ("size", "flags")}
        return SharingReport(flags=to_enum(SharingFlags, raw.flags),
                             **values)

    def set_sharing_guard(self, kinds):
        """Makes the outermost resume() raise HvError(EBUSY), the VM staying
        paused, while pages of ``kinds`` (SharingKind bits) are shared;
        0 turns it off. HvError(EPERM) when this process cannot audit."""
        self._node.call(lib.hvc_vm_set_sharing_guard,
                        _convert.u32(int(kinds), "kinds"))
