"""ctypes mirrors of hvcore/audit.h's structs (the memory-sharing audit).

Both are size-versioned and only grow at the end: ``size`` is set to the
layout these bindings know, and a library reads only what it covers.
"""

import ctypes
from ctypes import c_uint32, c_uint64

__all__ = ["AuditOptions", "SharingReport"]


class AuditOptions(ctypes.Structure):
    """``hvc_audit_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
    ]


class SharingReport(ctypes.Structure):
    """``hvc_sharing_report``: counts in 4 KiB pages."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("regions", c_uint64),
        ("pages", c_uint64),
        ("resident", c_uint64),
        ("swapped", c_uint64),
        ("not_resident", c_uint64),
        ("ksm", c_uint64),
        ("mapped_elsewhere", c_uint64),
        ("zero", c_uint64),
        ("unmerged_regions", c_uint64),
    ]


assert ctypes.sizeof(AuditOptions) == 8
assert ctypes.sizeof(SharingReport) == 80
