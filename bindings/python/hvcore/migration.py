"""Saving a paused VM to a stream and restoring it (hvcore/migration.h).

``vm.save(target, ...)`` writes a migration stream of a *paused* VM
(``vm.pause()`` or ``with vm.paused():``); ``VM.restore(hv, source, ...)``
(or ``hv.restore_vm(source, ...)``) builds a new VM from one. The target
or source is:

* a path (``str``, ``bytes`` or ``os.PathLike``): a snapshot file, written
  atomically (temporary file, fsync, rename), which a restore may map
  copy-on-write (``mmap=True``) instead of reading;
* an ``int``: a file descriptor (a pipe, a socket, a file), used with
  write(2)/read(2) from where it is and left open;
* a file-like object: saving calls its ``write(bytes)``, restoring its
  ``readinto(buffer)`` (or ``read(n)``), on the calling thread, in order,
  never seeking. An object whose ``write()`` returns None is taken to have
  written everything (buffered files, ``io.BytesIO``); non-blocking files
  are not supported. A successful save ends with the object's ``flush()``
  (when it has one), so what the save wrote has left Python's buffers when
  ``save()`` returns; a failing flush fails the save. The bindings never
  close it.

Encryption: ``key`` (32 bytes, :data:`HVC_STREAM_KEY_SIZE`) or ``passphrase``
(str or bytes; PBKDF2 with 600000 iterations, so about half a second per
save or restore); a restore needs the same one (HvError EKEYREJECTED
otherwise). ``user_data`` (bytes, at most :data:`HVC_STREAM_USER_DATA_MAX`)
travels in the stream and is handed to the restore's ``setup`` callable.

Callables, all run on the calling thread inside the call:

* ``progress(done, total)``: bytes of the stream so far and about how many
  in all (0 when unknown); return False to cancel (HvError ECANCELED);
* ``setup(vm, user_data)`` (restore): attach the VM's devices, with the
  names they had on the source (``vm.add_serial(name="com1", ...)``,
  ``vm.add_device(model, ranges, name=...)``); ``vm`` is the VM being
  restored, already holding its memory and vCPUs. The returned VM is this
  same object, and the devices it attached (their Python models, output
  callables and files) stay alive with it.

An exception raised by a file-like object or one of these callables never
unwinds into C: the library is told the operation failed (-errno of an
OSError, else -EIO), stops, and the call re-raises the original exception,
chained (``__cause__``) to the HvError with the library's message. A failed
restore leaves no VM behind: the library destroys what it built, and a VM
object ``setup`` saw is closed (ClosedError on use).
"""

import ctypes
import errno
import operator
import os
from ctypes import byref, c_void_p

from ._lib import lib
from ._structs_ext import (ProgressFn, RestoreOptions, RestoreSetupFn,
                           SaveOptions, Stream, StreamReadFn, StreamWriteFn)
from .constants import HVC_STREAM_KEY_SIZE, RestoreFlags, SaveFlags
from .errors import HvError
from .io import _errno_of

__all__ = ["save_vm", "restore_vm", "MigrationMixin"]


class _Operation:
    """One save or restore: the C callbacks it made (kept alive until the
    call returned), the first exception they raised, and the VM."""

    def __init__(self):
        self.keep = []
        self.exc = None
        self.vm = None          # the VM object (restore: from setup)
        self.vm_held = False    # the restore holds vm._node (acquire())

    def fail(self, exc):
        """Records a callback's exception; the -errno to hand to C."""
        if self.exc is None:
            self.exc = exc
        return -_errno_of(exc)

    def take_exception(self, vm_node):
        """The first exception a callback (or a Python device model run
        by the library, say its load_state) raised, cleared."""
        exc, self.exc = self.exc, None
        if vm_node is not None:
            pending = vm_node.io.take_pending()
            if exc is None:
                exc = pending
        return exc

    def call(self, vm_node, node, func, *args):
        """``node.call(func, *args)``; raises a callback's exception
        chained to the library's HvError instead of the bare HvError."""
        io = vm_node.io if vm_node is not None else None
        outer = io.take_pending() if io is not None else None
        try:
            try:
                node.call(func, *args)
            except HvError as err:
                exc = self.take_exception(vm_node or self.vm_node())
                if exc is not None:
                    raise exc from err
                raise
            exc = self.take_exception(vm_node or self.vm_node())
            if exc is not None:
                raise exc
        finally:
            if outer is not None:
                io._pending.exc = outer

    def vm_node(self):
        return self.vm._node if self.vm is not None else None


# ---------------------------------------------------------- conversions --

def _key(key):
    """A ctypes array of the 32 key bytes, or None."""
    if key is None:
        return None
    try:
        raw = memoryview(key).tobytes()
    except TypeError:
        raise TypeError("key must be bytes, not "
                        f"{type(key).__name__}") from None
    if len(raw) != HVC_STREAM_KEY_SIZE:
        raise ValueError(f"key must be {HVC_STREAM_KEY_SIZE} bytes, not "
                         f"{len(raw)}")
    return (ctypes.c_uint8 * HVC_STREAM_KEY_SIZE).from_buffer_copy(raw)


def _passphrase(passphrase):
    if passphrase is None:
        return None
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    elif isinstance(passphrase, (bytes, bytearray, memoryview)):
        passphrase = bytes(passphrase)
    else:
        raise TypeError("passphrase must be str or bytes, not "
                        f"{type(passphrase).__name__}")
    if b"\0" in passphrase:
        raise ValueError("passphrase must not contain NUL")
    return passphrase


def _is_path(obj):
    return isinstance(obj, (str, bytes, os.PathLike))


def _fd(obj):
    if isinstance(obj, bool):
        raise TypeError("a file descriptor must be an int, not bool")
    fd = operator.index(obj)
    if not 0 <= fd < (1 << 31):
        raise ValueError(f"{fd} is not a file descriptor")
    return fd


def _progress(op, progress):
    if progress is None:
        return None
    if not callable(progress):
        raise TypeError("progress must be callable, not "
                        f"{type(progress).__name__}")

    def trampoline(opaque, done, total):
        try:
            if progress(done, total) is False:
                return -errno.ECANCELED
            return 0
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            return op.fail(exc)

    fn = ProgressFn(trampoline)
    op.keep.append(fn)
    return fn


# --------------------------------------------------------- file streams --

def _writer(op, target):
    """An ``hvc_stream`` calling ``target.write(bytes)``."""
    write = getattr(target, "write", None)
    if not callable(write):
        raise TypeError("save() takes a path, a file descriptor or an object "
                        f"with write(), not {type(target).__name__}")

    def trampoline(opaque, buf, length):
        try:
            data = ctypes.string_at(buf, length)
            done = 0
            while done < length:
                n = write(data[done:] if done else data)
                if n is None:  # buffered and text-style files: all of it
                    break
                n = operator.index(n)
                if not 0 < n <= length - done:
                    raise OSError(errno.EIO, f"{write!r} returned {n} for "
                                  f"{length - done} bytes")
                done += n
            return length
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            return op.fail(exc)

    fn = StreamWriteFn(trampoline)
    op.keep.append(fn)
    return Stream(size=ctypes.sizeof(Stream), write=fn)


def _reader(op, source):
    """An ``hvc_stream`` calling ``source.readinto()`` or ``read()``."""
    readinto = getattr(source, "readinto", None)
    read = getattr(source, "read", None)
    if not callable(readinto) and not callable(read):
        raise TypeError("restore() takes a path, a file descriptor or an "
                        "object with readinto() or read(), not "
                        f"{type(source).__name__}")

    def checked(n, fn, length):
        if n is None:
            raise BlockingIOError(errno.EAGAIN, f"{fn!r} returned None (a "
                                  "non-blocking file with no data)")
        n = operator.index(n)
        if not 0 <= n <= length:
            raise OSError(errno.EIO, f"{fn!r} returned {n} for a read of "
                          f"{length} bytes")
        return n

    def trampoline(opaque, buf, length):
        try:
            if callable(readinto):
                array = (ctypes.c_char * length).from_address(buf)
                view = memoryview(array).cast("B")
                try:
                    return checked(readinto(view), readinto, length)
                finally:
                    view.release()
            data = read(length)
            if data is not None:
                data = memoryview(data).tobytes()
            n = checked(None if data is None else len(data), read, length)
            ctypes.memmove(buf, data, n)
            return n
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            return op.fail(exc)

    fn = StreamReadFn(trampoline)
    op.keep.append(fn)
    return Stream(size=ctypes.sizeof(Stream), read=fn)


# ----------------------------------------------------------------- save --

def save_vm(vm, target, *, key=None, passphrase=None, user_data=b"",
            progress=None, align_pages=False):
    """``vm.save()``: see :meth:`MigrationMixin.save`."""
    op = _Operation()
    opts = SaveOptions(size=ctypes.sizeof(SaveOptions))
    raw_key = _key(key)
    if raw_key is not None:
        opts.key = raw_key
    opts.passphrase = _passphrase(passphrase)
    data = memoryview(user_data if user_data is not None else b"").tobytes()
    if data:
        buf = ctypes.create_string_buffer(data, len(data))
        op.keep.append(buf)
        opts.user_data = ctypes.addressof(buf)
        opts.user_data_length = len(data)
    if align_pages:
        opts.flags = int(SaveFlags.ALIGN_PAGES)
    progress_fn = _progress(op, progress)
    if progress_fn is not None:
        opts.progress = progress_fn
    node = vm._node
    if _is_path(target):
        op.call(node, node, lib.hvc_snapshot_save, os.fsencode(target),
                byref(opts))
    elif isinstance(target, int):
        op.call(node, node, lib.hvc_vm_save_fd, _fd(target), byref(opts))
    else:
        stream = _writer(op, target)
        op.call(node, node, lib.hvc_vm_save, byref(stream), byref(opts))
        flush = getattr(target, "flush", None)
        if callable(flush):
            flush()


# -------------------------------------------------------------- restore --

def restore_options(op, cls, hypervisor, *, key=None, passphrase=None,
                    setup=None, progress=None, kick_signal=0):
    """The ``hvc_restore_options`` of a restore (of any kind) into a new VM
    of ``hypervisor``: its callables are kept in ``op.keep``, and the VM
    object ``setup`` sees is ``op.vm``. Shared with hvcore.live."""
    opts = RestoreOptions(size=ctypes.sizeof(RestoreOptions), listen_fd=-1)
    raw_key = _key(key)
    if raw_key is not None:
        opts.key = raw_key
        op.keep.append(raw_key)
    opts.passphrase = raw_pass = _passphrase(passphrase)
    op.keep.append(raw_pass)
    kick_signal = operator.index(kick_signal)
    if not -(1 << 31) <= kick_signal < (1 << 31):
        raise ValueError(f"kick_signal {kick_signal} is not a signal number")
    opts.kick_signal = kick_signal
    progress_fn = _progress(op, progress)
    if progress_fn is not None:
        opts.progress = progress_fn
    if setup is not None:
        if not callable(setup):
            raise TypeError("setup must be callable, not "
                            f"{type(setup).__name__}")

        def trampoline(opaque, vm_ptr, data, length):
            try:
                vm = op.vm = cls._adopt(hypervisor, vm_ptr, owned=False)
                vm._node.acquire()  # no close() while C restores into it
                op.vm_held = True
                user = ctypes.string_at(data, length) if length else b""
                setup(vm, user)
                return 0
            except BaseException as exc:  # noqa: B902 - nothing may reach C
                return op.fail(exc)

        fn = RestoreSetupFn(trampoline)
        op.keep.append(fn)
        opts.setup = fn
    return opts


def run_restore(op, cls, hypervisor, func, args, opts):
    """``func(hv, *args, &opts, &out)``: the VM it made, as a ``cls``
    object (the one ``setup`` saw, when there was a setup). Shared with
    hvcore.live."""
    hvc_node = hypervisor._node
    out = c_void_p()
    try:
        op.call(None, hvc_node, func, *args, byref(opts), byref(out))
    except BaseException:
        if op.vm_held:
            op.vm._node.release()
            op.vm_held = False
        if op.vm is not None:
            # The library destroyed the VM (and called the destroy of
            # Python device models while op.keep and the nodes held them).
            op.vm._node.forget("the restore failed")
        raise
    if op.vm_held:
        op.vm._node.release()
    vm = op.vm
    if vm is None:
        vm = cls._adopt(hypervisor, out.value, owned=True)
    elif vm._node.ptr != out.value:  # not what hvcore/migration.h says
        raise HvError(errno.EPROTO, "protocol error",
                      f"{func.__name__} returned another VM than the one it "
                      "gave the setup callback", func.__name__)
    return vm


def restore_vm(cls, hypervisor, source, *, key=None, passphrase=None,
               setup=None, progress=None, mmap=False, verify_memory=False,
               kick_signal=0):
    """``VM.restore()``: see :meth:`hvcore.VM.restore`."""
    op = _Operation()
    opts = restore_options(op, cls, hypervisor, key=key,
                           passphrase=passphrase, setup=setup,
                           progress=progress, kick_signal=kick_signal)
    flags = 0
    if mmap:
        flags |= RestoreFlags.MMAP
    if verify_memory:
        flags |= RestoreFlags.VERIFY_MEMORY
    if flags and not _is_path(source):
        raise ValueError("mmap and verify_memory need a snapshot file path")
    opts.flags = int(flags)
    if _is_path(source):
        func, args = lib.hvc_snapshot_restore, (os.fsencode(source),)
    elif isinstance(source, int):
        func, args = lib.hvc_vm_restore_fd, (_fd(source),)
    else:
        stream = _reader(op, source)
        func, args = lib.hvc_vm_restore, (byref(stream),)
    return run_restore(op, cls, hypervisor, func, args, opts)


class MigrationMixin:
    """The migration.h calls of :class:`hvcore.VM`."""

    def save(self, target, *, key=None, passphrase=None, user_data=b"",
             progress=None, align_pages=False):
        """Saves this paused VM: memory, vCPUs, interrupt controllers, TSC
        and device state (see :mod:`hvcore.migration`).

        ``target``: a snapshot file path (written atomically), a file
        descriptor, or a file-like object with ``write()`` (flushed at the
        end of a successful save, never closed). ``key`` (32
        bytes) or ``passphrase`` encrypts; ``user_data`` (bytes) goes to
        the restore's ``setup``; ``progress(done, total)``;
        ``align_pages`` page-aligns the memory data in a stream as a
        snapshot file does (paths always are). HvError EBUSY when the VM
        is not paused (``with vm.paused(): vm.save(f)``), EINVAL for bad
        options (a key and a passphrase, too much user data), the file's
        errno; a callable's own exception is re-raised.
        """
        save_vm(self, target, key=key, passphrase=passphrase,
                user_data=user_data, progress=progress,
                align_pages=align_pages)
