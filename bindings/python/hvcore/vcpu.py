"""Virtual CPUs: registers, running, exits, kicks."""

import ctypes
import operator
from ctypes import POINTER, byref, c_size_t, c_uint64

from . import _convert
from ._handle import Node
from ._lib import lib
from ._structs import HvExit, ModeOptions, X86Segment
from .constants import ExitReason, X86Mode, msr
from .errors import HvError
from .exit import Exit
from .registers import (SCALAR_REGISTERS, Segment, register_id,
                        segment_id)
from .tsc import VcpuTscMixin

__all__ = ["VCPU", "Registers"]

_MODE_NAMES = {
    "real": X86Mode.REAL, "real16": X86Mode.REAL,
    "protected32": X86Mode.PROTECTED32, "prot32": X86Mode.PROTECTED32,
    "protected": X86Mode.PROTECTED32,
    "long64": X86Mode.LONG64, "long": X86Mode.LONG64,
}


def x86_mode(mode):
    """An X86Mode from an X86Mode, its value, or a name ("long64", ...)."""
    if isinstance(mode, str):
        try:
            return _MODE_NAMES[mode.lower()]
        except KeyError:
            raise ValueError(f"unknown vCPU mode {mode!r}; known: "
                             f"{', '.join(_MODE_NAMES)}") from None
    return _convert.u32(mode, "vCPU mode")  # unknown values: C says EINVAL


def mode_options(mode, entry, stack, tables, map_length):
    """A filled ``hvc_vcpu_mode_options``."""
    return ModeOptions(size=ctypes.sizeof(ModeOptions), mode=x86_mode(mode),
                       entry=_convert.u64(entry, "entry"),
                       stack=_convert.u64(stack, "stack"),
                       tables_addr=_convert.u64(tables, "tables"),
                       map_length=_convert.u64(map_length, "map_length"))


class VCPUNode(Node):
    """A ``hvc_vcpu``; owned by its VM's node."""

    kind = "vCPU"

    def __init__(self, ptr, parent, vcpu_id):
        super().__init__(ptr, parent)
        self.id = vcpu_id
        self.wrapper_ref = None

    def describe(self):
        return f"vCPU {self.id}"

    def destroy(self, ptr):
        lib.hvc_vcpu_destroy(ptr)


class Registers:
    """Scalar registers of a vCPU as attributes or items.

    ``vcpu.regs.rax = 0x1000``, ``vcpu.regs["cr0"]``, ``vcpu.regs[msr_id]``.
    Each access is one library call; use :meth:`VCPU.get_regs` and
    :meth:`VCPU.set_regs` to move several in one call.
    """

    __slots__ = ("_vcpu",)

    def __init__(self, vcpu):
        object.__setattr__(self, "_vcpu", vcpu)

    def __getattr__(self, name):
        if name.lower() not in SCALAR_REGISTERS:
            raise AttributeError(f"no register named {name!r}")
        return self._vcpu.get(name)

    def __setattr__(self, name, value):
        if name.lower() not in SCALAR_REGISTERS:
            raise AttributeError(f"no register named {name!r}")
        self._vcpu.set(name, value)

    def __getitem__(self, reg):
        return self._vcpu.get(reg)

    def __setitem__(self, reg, value):
        self._vcpu.set(reg, value)

    def __dir__(self):
        return sorted(SCALAR_REGISTERS)

    def read_all(self):
        """Every named scalar register, in one call: {name: value}."""
        return self._vcpu.get_regs(list(SCALAR_REGISTERS))

    def __repr__(self):
        return f"<hvcore.Registers of {self._vcpu!r}>"


class VCPU(VcpuTscMixin):
    """One virtual CPU, created with :meth:`hvcore.VM.vcpu`.

    Thread rules (from hvcore/vcpu.h): one thread runs a vCPU at a time;
    register calls come from that thread, or from any thread while the vCPU
    is not running (for instance while the VM is paused). :meth:`kick` may
    be called from any thread: ctypes releases the GIL during ``run()``, so
    one Python thread can run the guest while another kicks it.

    The object keeps its VM alive; the vCPU itself belongs to the VM and is
    destroyed with it (``close()`` destroys it earlier). ``vm.vcpu(id)``
    returns the same vCPU again.
    """

    __slots__ = ("_vm", "_node", "_regs", "__weakref__")

    def __init__(self, vm, node):
        self._vm = vm
        self._node = node
        self._regs = Registers(self)

    # -- identity ----------------------------------------------------------

    @property
    def id(self):
        return self._node.id

    @property
    def vm(self):
        return self._vm

    @property
    def closed(self):
        return self._node.closed

    @property
    def regs(self):
        """The :class:`Registers` proxy."""
        return self._regs

    # -- registers ---------------------------------------------------------

    def get(self, reg):
        """One scalar register by name ("rax"), X86Reg or id (msr(n))."""
        reg_id = register_id(reg)
        value = c_uint64()
        self._node.call(lib.hvc_vcpu_get_reg, reg_id, byref(value))
        return value.value

    def set(self, reg, value):
        """Writes one scalar register (negative values: two's complement)."""
        reg_id = register_id(reg)
        self._node.call(lib.hvc_vcpu_set_reg, reg_id,
                        _convert.reg_value(value, f"value of {reg!r}"))

    def get_regs(self, regs):
        """Several registers in one call: {reg: value}, keyed as given."""
        regs = list(regs)
        ids = (c_uint64 * len(regs))(*[register_id(r) for r in regs])
        values = (c_uint64 * len(regs))()
        self._node.call(lib.hvc_vcpu_get_regs, ids, values, len(regs))
        return dict(zip(regs, values))

    def set_regs(self, values=None, **kwargs):
        """Writes several registers in one call, all or none.

        ``set_regs({"rax": 1, hvcore.msr(0x174): 0x10}, rbx=2)``.
        """
        items = dict(values or {}, **kwargs)
        keys = list(items)
        ids = (c_uint64 * len(keys))(*[register_id(k) for k in keys])
        vals = (c_uint64 * len(keys))(
            *[_convert.reg_value(items[k], f"value of {k!r}") for k in keys])
        self._node.call(lib.hvc_vcpu_set_regs, ids, vals, len(keys))

    def get_msr(self, index):
        """A model-specific register by index (``get_msr(0x174)``)."""
        return self.get(msr(index))

    def set_msr(self, index, value):
        self.set(msr(index), value)

    def get_segment(self, reg):
        """A segment ("cs", ...) or table ("gdtr", "idtr") register."""
        reg_id = segment_id(reg)
        seg = X86Segment()
        self._node.call(lib.hvc_vcpu_get_segment, reg_id, byref(seg))
        return Segment.from_c(seg)

    def set_segment(self, reg, segment):
        """Writes a segment or descriptor-table register from a Segment."""
        reg_id = segment_id(reg)
        if not isinstance(segment, Segment):
            raise TypeError("set_segment() takes an hvcore.Segment, not "
                            f"{type(segment).__name__}")
        seg = segment.to_c()
        self._node.call(lib.hvc_vcpu_set_segment, reg_id, byref(seg))

    @property
    def fpu_state_size(self):
        """Size in bytes of the FPU/XSAVE blob."""
        size = c_size_t()
        self._node.call(lib.hvc_vcpu_fpu_state_size, byref(size))
        return size.value

    def get_fpu_state(self):
        """The FPU/SSE/AVX (XSAVE) state as an opaque bytes blob."""
        size = self.fpu_state_size
        buf = ctypes.create_string_buffer(size)
        self._node.call(lib.hvc_vcpu_get_fpu_state, buf, size)
        return buf.raw

    def set_fpu_state(self, blob):
        """Loads a blob from get_fpu_state() (same backend and CPU)."""
        buf, size = _convert.input_buffer(blob)
        self._node.call(lib.hvc_vcpu_set_fpu_state, buf, size)

    def set_mode(self, mode, entry=0, stack=0, tables=0, map_length=0):
        """Prepares a flat entry: ``set_mode("long64", entry=0x8000,
        stack=0x7000, tables=0x100000)``.

        ``mode`` is "real", "prot32"/"protected32", "long64" or an X86Mode;
        ``tables`` is the page-aligned guest-physical scratch area for the
        GDT and page tables (``vm.mode_tables_size()`` bytes; unused in real
        mode); ``map_length`` is the 64-bit identity map size (0: all RAM,
        at least 4 GiB).
        """
        opts = mode_options(mode, entry, stack, tables, map_length)
        self._node.call(lib.hvc_vcpu_set_mode, byref(opts))

    # -- running -----------------------------------------------------------

    def run(self):
        """Runs the guest on this thread until an exit nobody handles.

        Returns an :class:`Exit`. Registered I/O handlers run inside this
        call; if one raises, its exception is re-raised here (its
        ``__cause__`` is the HvError with the library's message). Raises
        HvError(EBUSY) when another thread is running this vCPU.

        Python device models and a UART's ``output`` callable run inside
        it too: what they raise is re-raised here (an output callable's
        exception after a kick ends the run). An exception an event-thread
        callback (doorbell, watched fd, virtio-console output) raised
        since the last run is raised here, before the guest is entered
        (see :mod:`hvcore.events`).

        The GIL is released while the guest runs. Note that a signal such
        as Ctrl-C does not end the call (the library resumes the guest);
        kick the vCPU from another thread instead.
        """
        vm_node = self._vm._node
        vm_node.events.raise_first_error()
        dispatcher = vm_node.io
        dispatcher.clear_pending()
        pending = dispatcher._pending
        outer = getattr(pending, "vcpu", None)
        pending.vcpu = self
        pending.enter_run(self)  # callbacks on the vCPU's own thread
        record = POINTER(HvExit)()
        try:
            self._node.call(lib.hvc_vcpu_run, byref(record))
        except HvError as err:
            exc = dispatcher.take_pending()
            if exc is not None:
                raise exc from err
            raise
        finally:
            pending.exit_run(self)
            pending.vcpu = outer
        exc = dispatcher.take_pending()
        if exc is not None:  # from a callback that cannot fail the access
            raise exc
        return Exit.from_c(record.contents)

    def boot(self, info):
        """Puts this (boot) vCPU at the entry of a kernel loaded with
        ``vm.load_kernel()``: mode, page tables, RIP, RSP, and EBX/RSI
        as the boot protocol asks. ``info`` is its :class:`BootInfo`."""
        raw = info.to_c()
        self._node.call(lib.hvc_vcpu_boot, byref(raw))

    def request_exit(self, reason, code=0):
        """From an I/O handler or device model running on this vCPU's
        thread: ends the current ``run()``, once the callback returns,
        with ``reason`` ("poweroff", "reset", "shutdown" or an
        ExitReason), ``handled`` set and ``exit.code == code``."""
        if isinstance(reason, str):
            try:
                reason = ExitReason[reason.upper()]
            except KeyError:
                raise ValueError(f"unknown exit reason {reason!r}") from None
        self._node.call(lib.hvc_vcpu_request_exit,
                        _convert.u32(reason, "reason"),
                        _convert.u64(code, "code"))

    @property
    def exit(self):
        """The exit record of the last run, as an Exit snapshot."""
        return Exit.from_c(self._node.call(lib.hvc_vcpu_get_exit).contents)

    def complete_io(self, data):
        """Supplies the data of the unclaimed read the last exit returned.

        ``data`` is ``size * count`` bytes (port I/O) or ``size`` bytes
        (MMIO), or an int to encode little-endian in that many bytes.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            try:
                value = operator.index(data)
            except TypeError:
                pass
            else:
                data = self._int_for_pending_read(value)
        buf, size = _convert.input_buffer(data)
        self._node.call(lib.hvc_vcpu_complete_io, buf, size)

    def _int_for_pending_read(self, value):
        last = self.exit
        size = (last.size or 0) * (last.count or 0)
        if size == 0:
            return b""  # the library explains what is wrong
        if -(1 << (8 * size - 1)) <= value < 0:
            value += 1 << (8 * size)
        try:
            return value.to_bytes(size, "little")
        except OverflowError:
            raise ValueError(f"{value:#x} does not fit in the {size}-byte "
                             "pending read") from None

    def kick(self):
        """Makes run() return with ExitReason.KICK, now if it is running,
        else at the start of the next run. Callable from any thread."""
        self._node.call(lib.hvc_vcpu_kick)

    # -- lifetime ----------------------------------------------------------

    def close(self):
        """Destroys the vCPU (idempotent; a no-op once its VM is closed).
        HvError(EBUSY) while it runs."""
        self._node.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __eq__(self, other):
        return isinstance(other, VCPU) and other._node is self._node

    def __hash__(self):
        return hash(self._node)

    def __repr__(self):
        state = " closed" if self.closed else ""
        return f"<hvcore.VCPU {self.id}{state}>"
