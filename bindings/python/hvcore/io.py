"""Python I/O handlers: the bridge from ``hvc_io_fn`` to a Python callable.

A handler is ``fn(vcpu, offset, data, size, is_write)``, called on the
thread running the vCPU that made the access (see ``VM.add_io_handler``):

* ``vcpu``: the :class:`hvcore.VCPU` that made the access;
* ``offset``: from the start of the registered range;
* ``size``: 1, 2, 4 (port I/O) or 8 (MMIO) bytes;
* ``is_write``: True for OUT and MMIO writes;
* ``data``: for a write, ``bytes`` with what the guest wrote (little
  endian); for a read, a zero-filled ``bytearray`` of ``size`` bytes the
  handler may fill in place.

What the handler returns:

* ``None``: handled, the guest continues (a read gets ``data`` as the
  handler left it, zeros if untouched);
* for a read, an ``int`` (written little-endian in ``size`` bytes; negative
  values as two's complement) or ``size`` bytes: the value the guest reads;
  for a write anything but IO_EXIT is ignored, so ``lambda ...:
  sys.stdout.write(...)`` is a fine console;
* :data:`hvcore.IO_EXIT`: handled, and ``vcpu.run()`` returns with an exit
  whose ``handled`` is True (for a read, fill ``data`` in place first).

String and ``rep`` port I/O call the handler once per element.

If the handler raises, the exception is kept, libhvcore is told the access
failed (-errno for an OSError carrying an errno, else -EIO), which makes
``hvc_vcpu_run()`` fail, and ``vcpu.run()`` re-raises the handler's own
exception, chained (``__cause__``) to the HvError that carries the
library's message about the access. Nothing escapes into C, so a buggy
handler never takes the process down.
"""

import ctypes
import errno
import itertools
import operator
import threading
import types

from . import _convert
from ._lib import lib
from ._structs import IoFn
from .constants import IO_EXIT, IoSpace

__all__ = ["IoDispatcher", "io_space"]

_C_IO_EXIT = int(IO_EXIT)  # what hvc_io_fn returns to end the run

_SPACE_NAMES = {"pio": IoSpace.PIO, "port": IoSpace.PIO,
                "mmio": IoSpace.MMIO}


def io_space(space):
    """An IoSpace from an IoSpace, its int value, or "pio"/"mmio"."""
    if isinstance(space, str):
        try:
            return _SPACE_NAMES[space.lower()]
        except KeyError:
            raise ValueError(f"unknown I/O space {space!r}; use 'pio' or "
                             "'mmio'") from None
    try:
        return IoSpace(operator.index(space))
    except (TypeError, ValueError):
        raise ValueError(f"unknown I/O space {space!r}; use hvcore.IoSpace."
                         "PIO or hvcore.IoSpace.MMIO") from None


def _read_value(fn, result, buf, size):
    """The ``size`` bytes a read handler's return value stands for."""
    if result is None:
        return bytes(buf)
    if isinstance(result, int):
        if -(1 << (8 * size - 1)) <= result < 0:
            result += 1 << (8 * size)
        try:
            return result.to_bytes(size, "little")
        except OverflowError:
            raise ValueError(
                f"I/O handler {fn!r} returned {result:#x} for a {size}-byte "
                "read; it does not fit") from None
    try:
        raw = memoryview(result).tobytes()
    except TypeError:
        raise TypeError(
            f"I/O handler {fn!r} returned {type(result).__name__} for a read;"
            " return None, an int, bytes or hvcore.IO_EXIT") from None
    if len(raw) != size:
        raise ValueError(f"I/O handler {fn!r} returned {len(raw)} bytes for "
                         f"a {size}-byte read")
    return raw


def _errno_of(exc):
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if isinstance(code, int) and 0 < code < 4096:
        return code
    return errno.EIO



class _Pending:
    """What a Python callback raised, per run: ``vcpu`` (the VCPU whose
    ``run()`` is in progress) and ``exc`` (the first exception), read and
    written as attributes, per thread.

    On a backend that binds vCPUs to threads (HVF; the KVM test mode
    HVCORE_KVM_STRICT_THREADS), libhvcore runs a vCPU's callbacks on the
    vCPU's own thread, not Python's, while ``run()`` waits on the caller's
    thread. Such a thread has no run of its own: it reads and writes the
    state of the run it serves (the vCPU its callbacks name, else the only
    run in progress), so that ``run()`` still re-raises what its callbacks
    raised."""

    def __init__(self):
        object.__setattr__(self, "_local", threading.local())
        object.__setattr__(self, "_runs", {})  # id(vcpu) -> run's state
        object.__setattr__(self, "_lock", threading.Lock())

    def _own(self):
        """The calling thread's state (a plain object other threads can
        reach, unlike the thread-local itself)."""
        st = getattr(self._local, "st", None)
        if st is None:
            st = self._local.st = types.SimpleNamespace()
        return st

    def _current(self):
        own = self._own()
        if getattr(own, "vcpu", None) is not None:
            return own
        if not isinstance(threading.current_thread(), threading._DummyThread):
            return own
        with self._lock:
            runs = self._runs
            served = getattr(own, "serves", None)
            if served in runs:
                return runs[served]
            if len(runs) == 1:
                return next(iter(runs.values()))
        return own

    def __getattr__(self, name):
        return getattr(self._current(), name)

    def __setattr__(self, name, value):
        # a run's own vCPU is always the calling thread's
        target = self._own() if name == "vcpu" else self._current()
        setattr(target, name, value)

    def serve(self, vcpu):
        """On a library thread: its callbacks are for ``vcpu``'s run."""
        own = self._own()
        if vcpu is not None and getattr(own, "vcpu", None) is None:
            own.serves = id(vcpu)

    def enter_run(self, vcpu):
        with self._lock:
            self._runs[id(vcpu)] = self._own()

    def exit_run(self, vcpu):
        with self._lock:
            if self._runs.get(id(vcpu)) is self._own():
                del self._runs[id(vcpu)]

class _Handler:
    __slots__ = ("fn", "space", "base", "length")

    def __init__(self, fn, space, base, length):
        self.fn, self.space, self.base, self.length = fn, space, base, length


class IoDispatcher:
    """The I/O handlers of one VM.

    One ctypes callback (``hvc_io_fn``) serves every handler of the VM; the
    ``opaque`` pointer C passes back is a token naming the Python handler.
    The dispatcher lives as long as the VM's C object, so the callback
    cannot be freed while C may still call it.
    """

    def __init__(self, vm_node, vcpu_lookup):
        self._vm_node = vm_node
        self._vcpu_lookup = vcpu_lookup
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)  # 0 would reach us as None
        self._handlers = {}
        self._by_range = {}
        self._pending = _Pending()
        self._c_callback = IoFn(self._dispatch)

    # -- called from C ---------------------------------------------------

    def _dispatch(self, opaque, vcpu_ptr, offset, data, size, is_write):
        try:
            handler = self._handlers[opaque]
            vcpu = self._vcpu_lookup(vcpu_ptr)
            self._pending.serve(vcpu)
            if is_write:
                result = handler.fn(vcpu, offset, ctypes.string_at(data, size),
                                    size, True)
                return _C_IO_EXIT if result is IO_EXIT else 0
            buf = bytearray(size)
            result = handler.fn(vcpu, offset, buf, size, False)
            if result is IO_EXIT:
                ctypes.memmove(data, bytes(buf), size)
                return _C_IO_EXIT
            ctypes.memmove(data, _read_value(handler.fn, result, buf, size),
                           size)
            return 0
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            if getattr(self._pending, "exc", None) is None:
                self._pending.exc = exc
            return -_errno_of(exc)

    # -- the run() side ----------------------------------------------------

    def clear_pending(self):
        self._pending.exc = None

    def take_pending(self):
        """The exception a handler raised on this thread, once."""
        exc = getattr(self._pending, "exc", None)
        self._pending.exc = None
        return exc

    # -- registration ------------------------------------------------------

    def add(self, space, base, length, fn):
        if not callable(fn):
            raise TypeError(f"I/O handler must be callable, not "
                            f"{type(fn).__name__}")
        space = io_space(space)
        base = _convert.u64(base, "I/O range base")
        length = _convert.u64(length, "I/O range length")
        with self._lock:
            token = next(self._tokens)
            self._handlers[token] = _Handler(fn, space, base, length)
        try:
            self._vm_node.call(lib.hvc_vm_add_io_handler, int(space), base,
                               length, self._c_callback, token)
        except BaseException:
            with self._lock:
                del self._handlers[token]
            raise
        with self._lock:
            self._by_range[(space, base)] = token

    def remove(self, space, base):
        space = io_space(space)
        base = _convert.u64(base, "I/O range base")
        # Once the C call returns the handler is not running and will not
        # be called again, so its entry can go.
        self._vm_node.call(lib.hvc_vm_remove_io_handler, int(space), base)
        with self._lock:
            token = self._by_range.pop((space, base), None)
            self._handlers.pop(token, None)

    def handlers(self):
        """[(space, base, length, fn)] in registration order."""
        with self._lock:
            return [(h.space, h.base, h.length, h.fn)
                    for h in (self._handlers[t]
                              for t in self._by_range.values())]

    def clear(self):
        """Drops every handler; only once the VM's C object is gone."""
        with self._lock:
            self._handlers.clear()
            self._by_range.clear()
