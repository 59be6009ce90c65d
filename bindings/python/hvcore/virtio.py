"""virtio-mmio devices (hvcore/virtio.h): block, entropy, console."""

import ctypes
import os
from ctypes import byref, c_size_t

from . import _convert
from ._lib import lib
from ._structs_ext import (VirtioBlkOptions, VirtioConsoleOptions,
                           VirtioMmio)
from .constants import VirtioBlkFlags
from .device import name_bytes
from .platform import fd_option, output_trampoline

__all__ = ["VirtioMixin"]


def _mmio(base, irq):
    return VirtioMmio(base=_convert.u64(base, "base"),
                      irq=_convert.u32(irq, "irq"))


class VirtioMixin:
    """The virtio.h calls of :class:`hvcore.VM`. Each device has a 0x200
    byte MMIO window at ``base`` (512-byte aligned, outside RAM) and its
    own interrupt ``irq`` (GSI 0..23); requests are served on the VM's
    event thread."""

    def add_virtio_blk(self, path=None, *, fd=None, base, irq,
                       readonly=False, serial=None, name=None):
        """A virtio-blk disk over the file or block device ``path`` (or an
        open ``fd``/file object, kept referenced and not closed while the
        device exists). ``serial`` is what GET_ID returns (20 bytes at
        most). HvError with the file's errno (its path in the message),
        EINVAL for a bad window, EEXIST for one over RAM or another
        device."""
        if (path is None) == (fd is None):
            raise TypeError("add_virtio_blk() takes a path or an fd")
        opts = VirtioBlkOptions(size=ctypes.sizeof(VirtioBlkOptions),
                                mmio=_mmio(base, irq), fd=-1)
        if readonly:
            opts.flags = VirtioBlkFlags.READONLY
        keep = []
        if path is not None:
            opts.path = os.fsencode(path)
        else:
            opts.fd, held = fd_option(fd, "fd")
            keep.append(held)
        opts.serial = None if serial is None else str(serial).encode()
        opts.name = name_bytes(name)
        return self._new_device(lib.hvc_virtio_blk_create, byref(opts),
                                keep=keep)

    def add_virtio_rng(self, *, base, irq, name=None):
        """A virtio-rng device fed by getrandom(2)."""
        mmio = _mmio(base, irq)
        return self._new_device(lib.hvc_virtio_rng_create, byref(mmio),
                                name_bytes(name))

    def add_virtio_console(self, *, base, irq, output=None, output_fd=None,
                           input_fd=None, name=None):
        """A one-port virtio-console. ``output(data: bytes)`` runs on the
        VM's event thread (exceptions: see :mod:`hvcore.events`);
        ``output_fd``/``input_fd`` are fds or file objects (kept
        referenced, not closed)."""
        opts = VirtioConsoleOptions(
            size=ctypes.sizeof(VirtioConsoleOptions), mmio=_mmio(base, irq))
        opts.output_fd, out_file = fd_option(output_fd, "output_fd")
        opts.input_fd, in_file = fd_option(input_fd, "input_fd")
        keep = [out_file, in_file]
        if output is not None:
            fn = output_trampoline(self._node, output, True)
            opts.output_fn = fn
            keep.append(fn)
        opts.name = name_bytes(name)
        return self._new_device(lib.hvc_virtio_console_create, byref(opts),
                                keep=keep)

    def virtio_cmdline(self):
        """The Linux command-line words announcing every virtio-mmio device
        ("virtio_mmio.device=512@0xd0000000:5 ..."); "" when none."""
        length = c_size_t(0)
        while True:
            size = length.value + 1
            buf = ctypes.create_string_buffer(size)
            rc = self._node.call(lib.hvc_virtio_cmdline, buf, size,
                                 byref(length))
            if rc >= 0:
                return buf.value.decode()
