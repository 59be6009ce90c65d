"""Python callbacks on a VM's event thread: doorbells and watched fds.

libhvcore runs these on the VM's *event thread* (hvcore/device.h), a
thread of the library's own. Nothing may unwind into C from there, and
there is no caller to hand an exception to, so an exception raised by a
doorbell or fd callback (or a virtio-console output callable, which also
runs there) is:

1. logged at once on ``logging.getLogger("hvcore")`` (ERROR, with the
   traceback), and
2. stored on the VM, then re-raised by the next ``vcpu.run()`` of that
   VM, before it enters the guest (only the first stored exception is
   raised; the others are in ``vm.callback_errors()``, which also clears
   them without raising).

The callable's C trampoline and the Python callable stay referenced until
``remove_doorbell()``/``unwatch_fd()`` returned (after which the library
promises they are not running and will not run) or the VM is closed.
"""

import ctypes
import itertools
import logging
import operator
import threading
from dataclasses import dataclass
from typing import Optional

from . import _convert
from ._lib import lib
from ._structs_ext import Doorbell as CDoorbell
from ._structs_ext import DoorbellFn, FdFn
from .constants import DoorbellFlags, FdEvents, IoSpace, to_enum
from .io import io_space

__all__ = ["Doorbell", "EventDispatcher", "fileno"]

log = logging.getLogger("hvcore")


def fileno(fd, what="fd"):
    """An fd number from an int or an object with ``fileno()``."""
    if hasattr(fd, "fileno"):
        fd = fd.fileno()
    try:
        fd = operator.index(fd)
    except TypeError:
        raise TypeError(f"{what} must be a file descriptor or have "
                        f"fileno(), not {type(fd).__name__}") from None
    if not 0 <= fd < (1 << 31):
        raise ValueError(f"{what} {fd} is not a file descriptor")
    return fd


@dataclass(frozen=True)
class Doorbell:
    """A registered doorbell (``hvc_doorbell``): a guest write of
    ``length`` bytes to ``addr`` in ``space`` (of value ``data`` when it is
    not None) rings it without leaving the guest."""

    space: IoSpace
    addr: int
    length: int
    data: Optional[int] = None

    def to_c(self):
        flags = 0 if self.data is None else int(DoorbellFlags.DATAMATCH)
        return CDoorbell(space=int(self.space), length=self.length,
                         addr=self.addr, flags=flags,
                         data=self.data or 0)

    @classmethod
    def from_c(cls, raw):
        data = raw.data if raw.flags & DoorbellFlags.DATAMATCH else None
        return cls(to_enum(IoSpace, raw.space), raw.addr, raw.length, data)


class EventDispatcher:
    """A VM's doorbell and fd callbacks, and the errors they raised."""

    def __init__(self, vm_node):
        self._vm_node = vm_node
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._callbacks = {}     # token -> (kind, key, fn, keepalive)
        self._doorbells = {}     # Doorbell -> token
        self._fds = {}           # fd -> token
        self._errors = []
        self._c_doorbell = DoorbellFn(self._on_doorbell)
        self._c_fd = FdFn(self._on_fd)

    # -- errors ------------------------------------------------------------

    def record_error(self, exc, what):
        """Logs and stores an exception raised on the event thread."""
        log.error("hvcore: %s raised %s: %s", what, type(exc).__name__, exc,
                  exc_info=(type(exc), exc, exc.__traceback__))
        with self._lock:
            self._errors.append(exc)

    def take_errors(self):
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def raise_first_error(self):
        """Raises the oldest stored exception (dropping the others, which
        were logged)."""
        errors = self.take_errors()
        if errors:
            raise errors[0]

    # -- called from C ---------------------------------------------------

    def _on_doorbell(self, opaque, raw):
        try:
            entry = self._callbacks.get(opaque)
            if entry is not None:
                entry[2](Doorbell.from_c(raw.contents))
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            self.record_error(exc, "doorbell callback")

    def _on_fd(self, opaque, fd, events):
        try:
            entry = self._callbacks.get(opaque)
            if entry is not None:
                entry[2](fd, to_enum(FdEvents, events))
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            self.record_error(exc, f"fd {fd} callback")

    # -- doorbells ---------------------------------------------------------

    def add_doorbell(self, space, addr, length, fn, data):
        if not callable(fn):
            raise TypeError("doorbell callback must be callable")
        bell = Doorbell(io_space(space), _convert.u64(addr, "addr"),
                        _convert.u32(length, "length"),
                        None if data is None else _convert.u64(data, "data"))
        raw = bell.to_c()
        with self._lock:
            token = next(self._tokens)
            self._callbacks[token] = ("doorbell", bell, fn, None)
        try:
            self._vm_node.call(lib.hvc_vm_add_doorbell, ctypes.byref(raw),
                               self._c_doorbell, token)
        except BaseException:
            with self._lock:
                del self._callbacks[token]
            raise
        with self._lock:
            self._doorbells[bell] = token
        return bell

    def remove_doorbell(self, bell):
        if not isinstance(bell, Doorbell):
            raise TypeError("remove_doorbell() takes the Doorbell that "
                            "add_doorbell() returned")
        raw = bell.to_c()
        self._vm_node.call(lib.hvc_vm_remove_doorbell, ctypes.byref(raw))
        with self._lock:
            token = self._doorbells.pop(bell, None)
            self._callbacks.pop(token, None)

    def doorbells(self):
        with self._lock:
            return list(self._doorbells)

    # -- file descriptors --------------------------------------------------

    def watch_fd(self, fd, fn, events):
        if not callable(fn):
            raise TypeError("fd callback must be callable")
        number = fileno(fd)
        events = _convert.u32(events, "events")
        with self._lock:
            token = next(self._tokens)
            self._callbacks[token] = ("fd", number, fn, fd)
        try:
            self._vm_node.call(lib.hvc_vm_watch_fd, number, events,
                               self._c_fd, token)
        except BaseException:
            with self._lock:
                del self._callbacks[token]
            raise
        with self._lock:
            self._fds[number] = token

    def unwatch_fd(self, fd):
        number = fileno(fd)
        self._vm_node.call(lib.hvc_vm_unwatch_fd, number)
        with self._lock:
            token = self._fds.pop(number, None)
            self._callbacks.pop(token, None)

    def clear(self):
        """Drops every callback; only once the VM's C object is gone."""
        with self._lock:
            self._callbacks.clear()
            self._doorbells.clear()
            self._fds.clear()
