"""The library's PC platform devices and ACPI tables (hvcore/platform.h).

``vm.add_serial()``, ``add_debug_exit()``, ``add_i8042()``, ``add_cmos()``,
``add_port80()`` attach the library's models and return :class:`Device`
handles (a :class:`Serial` for the UART); ``vm.build_acpi()`` writes the
ACPI tables and returns the RSDP's address for ``vm.load_kernel()``.
"""

import ctypes
import operator
from ctypes import byref, c_uint64
from dataclasses import dataclass
from typing import Optional

from . import _convert
from ._lib import lib
from ._structs_ext import AcpiDevice as CAcpiDevice
from ._structs_ext import AcpiOptions, OutputFn, SerialOptions
from .constants import HVC_ACPI_NO_IRQ, AcpiFlags
from .device import Serial, name_bytes
from .events import fileno
from .io import io_space

__all__ = ["AcpiDevice", "PlatformMixin", "output_trampoline"]


def output_trampoline(vm_node, fn, on_event_thread):
    """An ``hvc_serial_output_fn`` calling ``fn(bytes)``.

    On a vCPU thread (the UART) an exception is kept for ``vcpu.run()``,
    which is kicked so that it returns and raises it; on the event thread
    (virtio-console) it is logged and raised by the next ``run()``.
    """
    if not callable(fn):
        raise TypeError(f"output must be callable, not {type(fn).__name__}")

    def output(opaque, data, length):
        try:
            fn(ctypes.string_at(data, length))
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            if on_event_thread:
                vm_node.events.record_error(exc, f"output callable {fn!r}")
                return
            pending = vm_node.io._pending
            vcpu = getattr(pending, "vcpu", None)
            if vcpu is None:  # not inside run(): nobody else to tell
                vm_node.events.record_error(exc, f"output callable {fn!r}")
                return
            if getattr(pending, "exc", None) is None:
                pending.exc = exc
            try:
                vcpu.kick()
            except Exception:  # noqa: BLE001 - closing: run() ends anyway
                pass

    return OutputFn(output)


def fd_option(fd, what):
    """(fd number or -1, object to keep referenced)."""
    if fd is None:
        return -1, None
    return fileno(fd, what), fd


@dataclass(frozen=True)
class AcpiDevice:
    """A device for the ACPI DSDT (``hvc_acpi_device``).

    ``hid`` is the _HID ("PNP0501" for a 16550, "LNRO0005" for
    virtio-mmio); ``space`` "pio"/"mmio"; ``irq`` a GSI 0..23 or None.
    """

    hid: str
    space: object
    base: int
    length: int
    irq: Optional[int] = None
    level: bool = False
    active_low: bool = False

    def to_c(self):
        flags = ((AcpiFlags.IRQ_LEVEL if self.level else 0)
                 | (AcpiFlags.IRQ_ACTIVE_LOW if self.active_low else 0))
        irq = HVC_ACPI_NO_IRQ if self.irq is None else self.irq
        return CAcpiDevice(hid=str(self.hid).encode(),
                           space=int(io_space(self.space)),
                           irq=_convert.u32(irq, "irq"),
                           base=_convert.u64(self.base, "base"),
                           length=_convert.u64(self.length, "length"),
                           flags=int(flags))


class PlatformMixin:
    """The platform.h calls of :class:`hvcore.VM`."""

    def add_serial(self, *, output=None, output_fd=None, input_fd=None,
                   port=0x3f8, irq=4, name=None):
        """Attaches a 16550A UART (COM1 by default); returns a
        :class:`hvcore.Serial`.

        ``output(data: bytes)`` receives what the guest transmits, on the
        vCPU thread (an exception it raises ends ``vcpu.run()``, which
        re-raises it). ``output_fd`` (an fd or file object, not closed)
        gets the same bytes; ``input_fd`` is read on the VM's event thread
        and received by the guest (a pipe, tty or socket: not a regular
        file). Both file objects are kept referenced while the device
        exists.
        """
        opts = SerialOptions(size=ctypes.sizeof(SerialOptions),
                             irq=_convert.u32(irq, "irq"),
                             port=_convert.u64(port, "port"))
        opts.output_fd, out_file = fd_option(output_fd, "output_fd")
        opts.input_fd, in_file = fd_option(input_fd, "input_fd")
        keep = [out_file, in_file]
        if output is not None:
            fn = output_trampoline(self._node, output, False)
            opts.output_fn = fn
            keep.append(fn)
        opts.name = raw_name = name_bytes(name)
        keep.append(raw_name)
        return self._new_device(lib.hvc_serial_create, byref(opts),
                                cls=Serial, keep=keep)

    def add_debug_exit(self, port=0xF4):
        """A debug-exit port: a guest write of byte v ends ``vcpu.run()``
        with ExitReason.POWEROFF, ``handled`` and ``exit.code == v``."""
        return self._new_device(lib.hvc_debug_exit_create,
                                _convert.uint(port, 16, "port"))

    def add_i8042(self):
        """The i8042 reset line (ports 0x60/0x64): 0xfe to port 0x64 ends
        ``vcpu.run()`` with ExitReason.RESET."""
        return self._new_device(lib.hvc_i8042_create)

    def add_cmos(self):
        """A CMOS real-time clock at ports 0x70/0x71."""
        return self._new_device(lib.hvc_cmos_create)

    def add_port80(self):
        """A sink for port 0x80 (POST codes)."""
        return self._new_device(lib.hvc_port80_create)

    def build_acpi(self, devices=(), *, nr_cpus=1, address=0, length=0):
        """Writes RSDP, XSDT, FADT, MADT and a DSDT listing ``devices``
        (:class:`AcpiDevice` objects or dicts of their fields) into guest
        memory; returns the RSDP's guest-physical address (pass it to
        ``vm.load_kernel(acpi_rsdp=...)``). ``address`` 0 means 0xe0000.
        HvError EINVAL (the message names a bad entry), ENOSPC, EFAULT."""
        entries = [d if isinstance(d, AcpiDevice) else AcpiDevice(**d)
                   for d in devices]
        array = (CAcpiDevice * max(len(entries), 1))(
            *[e.to_c() for e in entries])
        opts = AcpiOptions(size=ctypes.sizeof(AcpiOptions),
                           nr_cpus=_convert.u32(operator.index(nr_cpus),
                                                "nr_cpus"),
                           address=_convert.u64(address, "address"),
                           length=_convert.u64(length, "length"),
                           devices=array if entries else None,
                           nr_devices=len(entries))
        rsdp = c_uint64()
        self._node.call(lib.hvc_acpi_build, byref(opts), byref(rsdp))
        return rsdp.value
