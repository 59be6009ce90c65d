"""Devices of a VM: the library's models and models written in Python.

A device (``hvc_device``) belongs to its VM: :class:`Device` objects are
handles to it, made by ``vm.add_device()``, the platform and virtio
constructors (``vm.add_serial()``, ``vm.add_virtio_blk()``, ...),
``vm.devices`` and ``vm.find_device()``. Closing the VM destroys its
devices; ``device.close()`` (or ``vm.remove_device()``) removes one
earlier. Afterwards the handle reports ``closed`` and raises ClosedError.

Writing a device in Python: subclass :class:`DeviceModel` (or pass any
object with the same methods) and attach it with ``vm.add_device(model,
ranges, name=...)``. The bindings build an ``hvc_device_ops`` table of
ctypes trampolines for the methods the model defines; the table, the
trampolines and the model stay referenced until the library destroyed the
device (removal or VM close), so C never calls freed code.

Exceptions raised by a model never unwind into C:

* ``read``/``write`` run on the vCPU thread inside ``vcpu.run()``: the
  access fails (-errno of an OSError, else -EIO) and ``run()`` re-raises
  the model's exception, chained to the library's HvError, exactly as for
  ``vm.add_io_handler()`` handlers;
* ``reset``, ``save_state`` and ``load_state`` run inside
  ``vm.reset_devices()``, ``device.save_state()`` and
  ``device.load_state()``: those calls re-raise the model's exception (a
  ``ValueError`` from ``load_state`` reaches C as -EBADMSG);
* ``destroy`` runs when the device is removed or its VM closed: an
  exception is logged on ``logging.getLogger("hvcore")`` and re-raised by
  ``device.close()`` (not by a VM close, which only logs it).
"""

import ctypes
import errno
import logging
import weakref
from ctypes import byref, c_int, c_size_t, c_void_p

from . import _convert
from ._handle import Node
from ._lib import lib
from ._structs_ext import (DeviceOps, DeviceOptions, DeviceRange, DevLoadFn,
                           DevReadFn, DevSaveFn, DevVoidFn, DevWriteFn,
                           MemoryGrant)
from .constants import (HVC_GRANT_ALL_GPA,
                        HVC_GRANT_ALL_LENGTH, IO_EXIT, FdEvents)
from .errors import HvError
from .io import _errno_of, _read_value, io_space

__all__ = ["Device", "DeviceModel", "Serial", "DeviceMixin"]

log = logging.getLogger("hvcore")

_MAX_RANGES = 16


class DeviceNode(Node):
    """A ``hvc_device``, owned by its VM's node, with what C may call."""

    kind = "device"

    def __init__(self, ptr, parent, model=None, keep=(), cls=None):
        super().__init__(ptr, parent)
        self.name = lib.hvc_device_name(ptr)
        self.type = lib.hvc_device_type(ptr)
        self.model = model
        self.keep = list(keep)     # ops table, trampolines, buffers, files
        self.cls = cls
        self.wrapper_ref = None
        self.destroy_error = None

    def describe(self):
        return f"device {self.name!r}"

    def destroy(self, ptr):
        lib.hvc_vm_remove_device(self.parent.ptr, ptr)

    def on_closed(self):
        # The library has destroyed the device: nothing calls these again.
        self.keep = []


def call_collecting(vm_node, node, func, *args):
    """``node.call(func, *args)``, re-raising what a Python callback that
    ran inside it on this thread raised (chained to the C error)."""
    io = vm_node.io
    outer = io.take_pending()  # called from inside an I/O handler
    try:
        try:
            result = node.call(func, *args)
        except HvError as err:
            exc = io.take_pending()
            if exc is not None:
                raise exc from err
            raise
        exc = io.take_pending()
        if exc is not None:
            raise exc
        return result
    finally:
        if outer is not None:
            io._pending.exc = outer


def device_wrapper(vm_node, node):
    """The Device object of ``node``, made again if it was collected."""
    with vm_node.lock:
        dev = node.wrapper_ref() if node.wrapper_ref else None
        if dev is None:
            dev = (node.cls or Device)(vm_node.wrapper_ref(), node)
            node.wrapper_ref = weakref.ref(dev)
        return dev


def adopt_device(vm_node, ptr, **kwargs):
    """The node of device ``ptr`` (made for devices new to the bindings)."""
    with vm_node.lock:
        node = vm_node.children.get(ptr)
        if node is None:
            node = DeviceNode(ptr, vm_node, **kwargs)
        return node


class Device:
    """A device attached to a VM (``hvc_device``).

    Attributes: ``name`` (instance name, unique in the VM), ``type`` (model
    name, "16550a", "virtio-blk", ...), ``vm``, ``model`` (the Python
    :class:`DeviceModel` for a device written in Python, else None).
    """

    __slots__ = ("_vm", "_node", "__weakref__")

    def __init__(self, vm, node):
        self._vm = vm
        self._node = node

    @property
    def vm(self):
        return self._vm

    @property
    def name(self):
        return self._node.name

    @property
    def type(self):
        return self._node.type

    @property
    def model(self):
        return self._node.model

    @property
    def closed(self):
        return self._node.closed

    def save_state(self):
        """The device's state record (bytes): a header naming its type,
        its payload and a CRC32C. Pause the VM first (``vm.paused()``)."""
        length = c_size_t(0)
        vm_node = self._vm._node
        for _ in range(8):  # the state may grow between the two calls
            size = length.value
            buf = ctypes.create_string_buffer(size) if size else None
            rc = call_collecting(vm_node, self._node,
                                 lib.hvc_device_save_state, buf, size,
                                 byref(length))
            if rc >= 0:
                return buf.raw[:length.value] if buf is not None else b""
        raise HvError(errno.ENOSPC, "no space", "the device's state kept "
                      "growing while it was saved", "hvc_device_save_state")

    #: ``grants`` value of a device that may reach all guest RAM (default).
    ALL_RAM = [(HVC_GRANT_ALL_GPA, HVC_GRANT_ALL_LENGTH)]

    @property
    def grants(self):
        """The guest memory the device may reach, as sorted, merged
        ``(gpa, length)`` pairs: :attr:`ALL_RAM` by default."""
        count = c_size_t(0)
        self._node.call(lib.hvc_device_get_grants, None, 0, byref(count))
        arr = (MemoryGrant * max(count.value, 1))()
        self._node.call(lib.hvc_device_get_grants, arr, count.value,
                        byref(count))
        return [(g.gpa, g.length) for g in arr[:count.value]]

    @grants.setter
    def grants(self, ranges):
        """Confines the device's guest-memory accesses to ``ranges``
        (``(gpa, length)`` pairs; empty: none at all). HvError EINVAL for
        more than 16, an empty or a wrapping range."""
        ranges = list(ranges)
        arr = (MemoryGrant * max(len(ranges), 1))(
            *[MemoryGrant(gpa, length) for gpa, length in ranges])
        self._node.call(lib.hvc_device_set_grants, arr, len(ranges))

    @property
    def grant_refusals(self):
        """How many accesses the device's grants refused."""
        n = ctypes.c_uint64(0)
        self._node.call(lib.hvc_device_grant_refusals, byref(n))
        return n.value

    def dma_read(self, gpa, length):
        """Reads guest memory as the device (within its grants): bytes;
        HvError EFAULT outside RAM or the grants."""
        buf = ctypes.create_string_buffer(length)
        self._node.call(lib.hvc_device_read, gpa, buf, length)
        return buf.raw

    def dma_write(self, gpa, data):
        """Writes guest memory as the device (within its grants)."""
        buf, size = _convert.input_buffer(data)
        self._node.call(lib.hvc_device_write, gpa, buf, size)

    def load_state(self, record):
        """Loads a record from :meth:`save_state` into this device (of the
        same type); on error (HvError EINVAL for another type, EBADMSG for
        a damaged record) the device keeps its state."""
        buf, size = _convert.input_buffer(record)
        call_collecting(self._vm._node, self._node, lib.hvc_device_load_state,
                        buf, size)

    def close(self):
        """Removes the device from its VM (idempotent; a no-op once the VM
        is closed). Re-raises what a Python model's ``destroy()`` raised."""
        node = self._node
        node.close()
        exc, node.destroy_error = node.destroy_error, None
        if exc is not None:
            raise exc

    remove = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __eq__(self, other):
        return isinstance(other, Device) and other._node is self._node

    def __hash__(self):
        return hash(self._node)

    def __repr__(self):
        state = " closed" if self.closed else ""
        return (f"<hvcore.{type(self).__name__} {self.name!r} "
                f"({self.type}){state}>")


class Serial(Device):
    """A 16550A UART from ``vm.add_serial()``."""

    __slots__ = ()

    def receive(self, data):
        """Hands bytes to the UART's receiver as if they came on the line;
        returns how many it accepted (the rest overran the FIFO)."""
        buf, size = _convert.input_buffer(data)
        return self._node.call(lib.hvc_serial_receive, buf, size)


class DeviceModel:
    """Base class for a device written in Python (``vm.add_device()``).

    Override what the device needs; a method left as inherited is a NULL
    entry in the ops table (reads all-ones, ignores writes, no reset, no
    state). The methods:

    * ``read(vcpu, index, offset, size)``: a guest read of ``size`` bytes
      at ``offset`` into range ``index``; return an int (little-endian),
      ``size`` bytes, or None (zeros). Runs on the vCPU's thread.
    * ``write(vcpu, index, offset, data)``: ``data`` is bytes. Return
      :data:`hvcore.IO_EXIT` to end ``vcpu.run()`` (flag ``handled``).
      ``vcpu.request_exit()`` may be called from both.
    * ``reset()``: back to the power-on state (``vm.reset_devices()``).
    * ``save_state()`` -> bytes, and ``load_state(data)``: the device's
      payload; ``load_state`` validates everything and changes nothing
      when it raises (ValueError for a bad state).
    * ``destroy()``: called once when the device is removed or its VM
      closed; no other method is called afterwards.

    Several vCPU threads may call a model at once (the GIL serialises
    Python code, but not a read-modify-write across calls): protect state
    shared by several methods with a lock when the guest is SMP. ``type``
    names the model (``hvc_device_type()``).
    """

    type = "python"

    def read(self, vcpu, index, offset, size):
        """Reads all-ones unless overridden."""

    def write(self, vcpu, index, offset, data):
        """Ignores writes unless overridden."""

    def reset(self):
        """No reset unless overridden."""

    def save_state(self):
        """No state unless overridden."""

    def load_state(self, data):
        """Accepts only an empty state unless overridden."""

    def destroy(self):
        """Nothing to free unless overridden."""


def _defines(model, name):
    fn = getattr(model, name, None)
    if not callable(fn):
        return False
    inherited = getattr(type(model), name, None)
    return inherited is not getattr(DeviceModel, name)


class _ModelOps:
    """The ``hvc_device_ops`` table and trampolines for one Python model."""

    def __init__(self, vm_node, model, type_name):
        self.vm_node = vm_node
        self.model = model
        self.node = None
        self.type_name = type_name.encode()
        # The table is version 1 (DeviceOps has no handover_fds): a Python
        # model passes no descriptors in a hand-over.
        self.ops = DeviceOps(version=1, type=self.type_name)
        table = {"read": (DevReadFn, self._read),
                 "write": (DevWriteFn, self._write),
                 "reset": (DevVoidFn, self._reset),
                 "destroy": (DevVoidFn, self._destroy),
                 "save_state": (DevSaveFn, self._save),
                 "load_state": (DevLoadFn, self._load)}
        self.trampolines = []
        for name, (ftype, method) in table.items():
            if name == "destroy" or _defines(model, name):
                fn = ftype(method)
                self.trampolines.append(fn)
                setattr(self.ops, name, fn)

    def _fail(self, exc):
        io = self.vm_node.io
        if getattr(io._pending, "exc", None) is None:
            io._pending.exc = exc
        if isinstance(exc, ValueError):
            return -errno.EBADMSG
        return -_errno_of(exc)

    def _read(self, opaque, vcpu_ptr, index, offset, data, size):
        try:
            vcpu = self.vm_node.vcpu_for_ptr(vcpu_ptr)
            self.vm_node.io._pending.serve(vcpu)
            result = self.model.read(vcpu, index, offset, size)
            if result is IO_EXIT:
                ctypes.memset(data, 0, size)
                return int(IO_EXIT)
            raw = _read_value(self.model.read, result, bytearray(size), size)
            ctypes.memmove(data, raw, size)
            return 0
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            return self._fail(exc)

    def _write(self, opaque, vcpu_ptr, index, offset, data, size):
        try:
            vcpu = self.vm_node.vcpu_for_ptr(vcpu_ptr)
            self.vm_node.io._pending.serve(vcpu)
            result = self.model.write(vcpu, index, offset,
                                      ctypes.string_at(data, size))
            return int(IO_EXIT) if result is IO_EXIT else 0
        except BaseException as exc:  # noqa: B902
            return self._fail(exc)

    def _reset(self, opaque):
        try:
            self.model.reset()
        except BaseException as exc:  # noqa: B902
            self._fail(exc)

    def _destroy(self, opaque):
        if not _defines(self.model, "destroy"):
            return
        try:
            self.model.destroy()
        except BaseException as exc:  # noqa: B902
            log.error("hvcore: destroy() of device model %r raised %s: %s",
                      self.model, type(exc).__name__, exc,
                      exc_info=(type(exc), exc, exc.__traceback__))
            if self.node is not None:
                self.node.destroy_error = exc

    def _save(self, opaque, buf, capacity, length):
        try:
            state = self.model.save_state()
            raw = b"" if state is None else memoryview(state).tobytes()
            length[0] = len(raw)
            if capacity < len(raw):
                return -errno.ENOSPC
            ctypes.memmove(buf, raw, len(raw))
            return 0
        except BaseException as exc:  # noqa: B902
            return self._fail(exc)

    def _load(self, opaque, buf, length):
        try:
            self.model.load_state(ctypes.string_at(buf, length))
            return 0
        except BaseException as exc:  # noqa: B902
            return self._fail(exc)


def _ranges(ranges):
    """A ctypes array of hvc_device_range from (space, base, length)s or
    dicts with those keys."""
    items = []
    for entry in ranges:
        if isinstance(entry, dict):
            entry = (entry["space"], entry["base"], entry["length"])
        space, base, length = entry
        items.append(DeviceRange(space=int(io_space(space)),
                                 base=_convert.u64(base, "range base"),
                                 length=_convert.u64(length,
                                                     "range length")))
    if not 0 < len(items) <= _MAX_RANGES:
        raise ValueError(f"a device claims 1 to {_MAX_RANGES} ranges, not "
                         f"{len(items)}")
    return (DeviceRange * len(items))(*items)


def name_bytes(name):
    return None if name is None else str(name).encode()


class DeviceMixin:
    """The device calls of :class:`hvcore.VM` (hvcore/device.h)."""

    def _new_device(self, func, *args, cls=Device, model=None, keep=()):
        """Calls a constructor taking ``(vm, *args, hvc_device **out)``."""
        out = c_void_p()
        self._node.call(func, *args, byref(out))
        node = adopt_device(self._node, out.value, model=model, keep=keep,
                            cls=cls)
        return device_wrapper(self._node, node)

    def add_device(self, model, ranges, *, name=None, type=None):
        """Attaches a device written in Python; returns its :class:`Device`.

        ``model`` is a :class:`DeviceModel` (or an object with its
        methods); ``ranges`` is a list of ``(space, base, length)`` with
        space "pio"/"mmio" (at most 16); ``name`` is unique in the VM
        (None: "<type><N>"); ``type`` defaults to ``model.type``. HvError
        EEXIST when a range overlaps or the name is taken.
        """
        type_name = type or getattr(model, "type", None) or "python"
        array = _ranges(ranges)
        raw_name = name_bytes(name)
        ops = _ModelOps(self._node, model, str(type_name))
        opts = DeviceOptions(size=ctypes.sizeof(DeviceOptions),
                             nr_ranges=len(array), ranges=array,
                             name=raw_name)
        out = c_void_p()
        # On failure the library does not call destroy: nothing to undo.
        self._node.call(lib.hvc_vm_add_device, byref(ops.ops), None,
                        byref(opts), byref(out))
        node = adopt_device(self._node, out.value, model=model, keep=[ops])
        ops.node = node
        return device_wrapper(self._node, node)

    def remove_device(self, device):
        """Removes a device of this VM (same as ``device.close()``)."""
        if not isinstance(device, Device) or device.vm is not self:
            raise ValueError(f"{device!r} is not a device of this VM")
        device.close()

    @property
    def devices(self):
        """The VM's devices, in the order they were attached."""
        count = c_size_t(0)
        while True:
            size = count.value
            array = (c_void_p * max(size, 1))()
            self._node.call(lib.hvc_vm_list_devices, array, size,
                            byref(count))
            if count.value <= size:
                break
        return [device_wrapper(self._node, adopt_device(self._node, ptr))
                for ptr in array[:count.value]]

    def find_device(self, name):
        """The device named ``name``; HvError ENOENT if there is none."""
        out = c_void_p()
        self._node.call(lib.hvc_vm_find_device, str(name).encode(),
                        byref(out))
        return device_wrapper(self._node, adopt_device(self._node,
                                                       out.value))

    def reset_devices(self):
        """Resets every device (``reset``), in attachment order; re-raises
        what a Python model's ``reset()`` raised."""
        call_collecting(self._node, self._node, lib.hvc_vm_reset_devices)

    def irq_eventfd(self, gsi):
        """An eventfd wired to interrupt line ``gsi``: writing an 8-byte
        non-zero count to it raises an edge. The VM owns it (do not close
        it); the same fd comes back for the same GSI. HvError ENOTSUP
        without an in-kernel irqchip."""
        fd = c_int(-1)
        self._node.call(lib.hvc_vm_irq_eventfd, _convert.u32(gsi, "gsi"),
                        byref(fd))
        return fd.value

    def add_doorbell(self, space, addr, length, fn, *, data=None):
        """Calls ``fn(doorbell)`` on the VM's event thread when the guest
        writes ``length`` bytes (1, 2, 4, 8) to ``addr`` (of value
        ``data`` when given) without leaving the guest (KVM ioeventfd).
        Returns the :class:`hvcore.Doorbell` to pass to
        :meth:`remove_doorbell`. See :mod:`hvcore.events` for exceptions."""
        return self._node.events.add_doorbell(space, addr, length, fn, data)

    def remove_doorbell(self, doorbell):
        """Removes a doorbell; when this returns its callback is not
        running and will not run (HvError ENOENT if not registered)."""
        self._node.events.remove_doorbell(doorbell)

    @property
    def doorbells(self):
        return self._node.events.doorbells()

    def watch_fd(self, fd, fn, events=FdEvents.READABLE):
        """Calls ``fn(fd, events)`` on the VM's event thread whenever
        ``fd`` (an int or an object with ``fileno()``, kept referenced)
        has one of ``events``. Regular files cannot be watched (HvError
        EINVAL); EEXIST when the fd is already watched."""
        self._node.events.watch_fd(fd, fn, events)

    def unwatch_fd(self, fd):
        """Stops watching ``fd``; its callback is then not running."""
        self._node.events.unwatch_fd(fd)

    def callback_errors(self):
        """The exceptions event-thread callbacks raised since the last
        call (they were logged), and clears them, so that the next
        ``vcpu.run()`` does not raise them."""
        return self._node.events.take_errors()
