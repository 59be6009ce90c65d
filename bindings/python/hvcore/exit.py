"""The exit record of a vCPU run, as a Python object."""

import ctypes
from dataclasses import dataclass
from typing import Optional, Tuple

from .constants import ExitFlags, ExitReason, IoSpace, to_enum

__all__ = ["Exit"]


@dataclass(frozen=True)
class Exit:
    """Why ``vcpu.run()`` returned: a copy of the C ``hvc_exit`` record.

    The C record is only valid until the next run; this object is a
    snapshot and stays valid. Fields that do not apply to the reason are
    ``None``.

    Attributes:
        reason: an :class:`ExitReason` (a plain int if this version of the
            bindings does not know it).
        flags: :class:`ExitFlags` bits.
        backend_reason: the backend's own exit code (KVM: exit_reason).
        space: ``IoSpace.PIO`` or ``IoSpace.MMIO`` for I/O exits.
        port: port number (PIO).
        addr: guest-physical address (MMIO).
        size: bytes per element (PIO: 1, 2, 4; MMIO: 1, 2, 4, 8).
        is_write: True for OUT/OUTS and MMIO writes.
        count: elements transferred (PIO; more than 1 for string I/O).
        data: ``size * count`` bytes: what the guest wrote or, for a read
            nobody completed yet, the all-ones placeholder.
        internal_code, internal_data: backend diagnostics of an
            ``INTERNAL_ERROR`` exit.
        code: for RESET, POWEROFF and SHUTDOWN, a device's status
            (``hvc_exit.u.system.code``: the byte a debug-exit port got,
            or ``vcpu.request_exit()``'s code); 0 otherwise.
    """

    reason: int
    flags: int = 0
    backend_reason: int = 0
    space: Optional[IoSpace] = None
    port: Optional[int] = None
    addr: Optional[int] = None
    size: Optional[int] = None
    is_write: Optional[bool] = None
    count: Optional[int] = None
    data: Optional[bytes] = None
    internal_code: Optional[int] = None
    internal_data: Optional[Tuple[int, ...]] = None
    code: Optional[int] = None

    @property
    def handled(self):
        """True when a handler served the access and ended the run
        (returned :data:`hvcore.IO_EXIT`): there is nothing to complete."""
        return bool(self.flags & ExitFlags.HANDLED)

    @property
    def is_io(self):
        return self.space is not None

    @property
    def is_read(self):
        """True for an IN/INS or MMIO read (complete it with
        ``vcpu.complete_io()`` unless it was handled)."""
        return self.space is not None and not self.is_write

    @property
    def value(self):
        """``data`` as a little-endian unsigned integer (None if no data)."""
        if self.data is None:
            return None
        return int.from_bytes(self.data, "little")

    @classmethod
    def from_c(cls, record):
        """Copies an ``HvExit`` ctypes struct, including the data it
        points to."""
        reason = to_enum(ExitReason, record.reason)
        common = dict(reason=reason,
                      flags=to_enum(ExitFlags, record.flags),
                      backend_reason=record.backend_reason)
        if reason == ExitReason.PIO:
            io = record.u.io
            nbytes = io.size * io.count
            data = ctypes.string_at(io.data, nbytes) if io.data else None
            return cls(space=IoSpace.PIO, port=io.port, size=io.size,
                       is_write=bool(io.is_write), count=io.count, data=data,
                       **common)
        if reason == ExitReason.MMIO:
            mmio = record.u.mmio
            data = (ctypes.string_at(mmio.data, mmio.size) if mmio.data
                    else None)
            return cls(space=IoSpace.MMIO, addr=mmio.addr, size=mmio.size,
                       is_write=bool(mmio.is_write), count=1, data=data,
                       **common)
        if reason in (ExitReason.RESET, ExitReason.POWEROFF,
                      ExitReason.SHUTDOWN):
            return cls(code=record.u.system.code, **common)
        if reason == ExitReason.INTERNAL_ERROR:
            internal = record.u.internal
            ndata = min(internal.ndata, len(internal.data))
            return cls(internal_code=internal.code,
                       internal_data=tuple(internal.data[:ndata]), **common)
        return cls(**common)

    def __repr__(self):
        reason = getattr(self.reason, "name", self.reason)
        parts = [f"reason={reason}"]
        if self.space == IoSpace.PIO:
            parts.append(f"port={self.port:#x}")
        elif self.space == IoSpace.MMIO:
            parts.append(f"addr={self.addr:#x}")
        if self.space is not None:
            parts += [f"size={self.size}", f"is_write={self.is_write}"]
            if self.count != 1:
                parts.append(f"count={self.count}")
            parts.append(f"data={self.data!r}")
        if self.handled:
            parts.append("handled=True")
        if self.code:
            parts.append(f"code={self.code:#x}")
        if self.internal_code is not None:
            parts += [f"internal_code={self.internal_code:#x}",
                      f"internal_data={self.internal_data!r}"]
        if self.reason in (ExitReason.UNKNOWN, ExitReason.INTERNAL_ERROR):
            parts.append(f"backend_reason={self.backend_reason}")
        return f"Exit({', '.join(parts)})"
