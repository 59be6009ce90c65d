"""virtio-mmio devices (hvcore/virtio.h): block, entropy, console,
network."""

import ctypes
import os
from ctypes import byref, c_size_t

from . import _convert
from ._lib import lib
from ._structs_ext import (VirtioBlkOptions, VirtioConsoleOptions,
                           VirtioMmio, VirtioNetOptions, VirtioNetStats)
from .constants import VirtioBlkFlags, VirtioNetFlags
from .device import Device, name_bytes
from .platform import fd_option, output_trampoline

__all__ = ["VirtioMixin", "VirtioNet"]


class VirtioNet(Device):
    """A virtio-net device on a tap (:meth:`VirtioMixin.add_virtio_net`)."""

    __slots__ = ()

    def detach_backend(self):
        """Disconnects the tap; the guest's packets are held meanwhile.
        HvError EALREADY when detached."""
        self._node.call(lib.hvc_virtio_net_detach_backend)

    def attach_backend(self, tap=None, *, fd=None):
        """Connects a tap again: ``tap`` by name, an open ``fd``, or with
        neither the previous tap by name. Held packets leave first."""
        self._node.call(lib.hvc_virtio_net_attach_backend,
                        None if tap is None else os.fsencode(tap),
                        fd_option(fd, "fd")[0])

    def announce(self):
        """A gratuitous ARP (or RARP) for the guest on the tap, and the
        guest asked to announce itself."""
        self._node.call(lib.hvc_virtio_net_announce)

    def set_link(self, up):
        """The link status the guest sees."""
        self._node.call(lib.hvc_virtio_net_set_link, 1 if up else 0)

    @property
    def stats(self):
        """The counters (``hvc_virtio_net_stats``) as a dict."""
        st = VirtioNetStats(size=ctypes.sizeof(VirtioNetStats))
        self._node.call(lib.hvc_virtio_net_get_stats, byref(st))
        return {name: getattr(st, name) for name, _ in st._fields_
                if name != "size"}


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

    def add_virtio_net(self, tap=None, *, fd=None, base, irq, mac=None,
                       offloads=True, name=None):
        """A virtio-net device on the existing tap interface ``tap`` (or an
        open tap ``fd`` with IFF_VNET_HDR, kept referenced, not closed).
        ``mac`` is 6 bytes or "52:54:00:12:34:56" (None: random).
        HvError ENODEV (no such tap), EBUSY (taken), EPERM, EINVAL."""
        if (tap is None) == (fd is None):
            raise TypeError("add_virtio_net() takes a tap name or an fd")
        opts = VirtioNetOptions(size=ctypes.sizeof(VirtioNetOptions),
                                mmio=_mmio(base, irq), fd=-1)
        if not offloads:
            opts.flags = VirtioNetFlags.NO_OFFLOADS
        keep = []
        if tap is not None:
            opts.tap = os.fsencode(tap)
        else:
            opts.fd, held = fd_option(fd, "fd")
            keep.append(held)
        if mac is not None:
            raw = (bytes.fromhex(mac.replace(":", "")) if isinstance(mac, str)
                   else bytes(mac))
            if len(raw) != 6:
                raise ValueError("mac is not 6 bytes")
            opts.mac[:] = list(raw)
        opts.name = name_bytes(name)
        return self._new_device(lib.hvc_virtio_net_create, byref(opts),
                                keep=keep, cls=VirtioNet)

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
