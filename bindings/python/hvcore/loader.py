"""Loading kernels and starting the boot vCPU (hvcore/loader.h)."""

import ctypes
import os
from ctypes import byref
from dataclasses import dataclass, fields

from . import _convert
from ._lib import lib
from ._structs_ext import BootInfo as CBootInfo
from ._structs_ext import BootOptions
from .constants import BootProtocol, KernelFormat, X86Mode, to_enum
from .vcpu import x86_mode

__all__ = ["BootInfo", "LoaderMixin", "kernel_format"]

_FORMAT_NAMES = {"auto": KernelFormat.AUTO, "elf": KernelFormat.ELF,
                 "bzimage": KernelFormat.BZIMAGE, "raw": KernelFormat.RAW}


def kernel_format(value):
    """A KernelFormat from itself, its value or "auto"/"elf"/"bzimage"/
    "raw"."""
    if isinstance(value, str):
        try:
            return _FORMAT_NAMES[value.lower()]
        except KeyError:
            raise ValueError(f"unknown kernel format {value!r}; known: "
                             f"{', '.join(_FORMAT_NAMES)}") from None
    return _convert.u32(value, "format")


def _image(value, what):
    """(buffer, size) of a kernel/initrd given as bytes-like or a path."""
    if isinstance(value, (str, os.PathLike)):
        with open(value, "rb") as f:
            value = f.read()
    return _convert.input_buffer(value)


@dataclass(frozen=True)
class BootInfo:
    """What ``vm.load_kernel()`` loaded (``hvc_boot_info``, 128 bytes);
    pass it to ``vcpu.boot()``. Addresses are guest-physical."""

    format: KernelFormat
    protocol: BootProtocol
    mode: X86Mode
    entry: int
    kernel_start: int
    kernel_end: int
    initrd_address: int
    initrd_size: int
    cmdline_address: int
    params_address: int
    tables_address: int
    stack: int
    raw: bytes = b""  # the C record as filled, handed back unchanged

    @classmethod
    def from_c(cls, info):
        values = {f.name: getattr(info, f.name) for f in fields(cls)
                  if f.name != "raw"}
        values["format"] = to_enum(KernelFormat, info.format)
        values["protocol"] = to_enum(BootProtocol, info.protocol)
        values["mode"] = to_enum(X86Mode, info.mode)
        return cls(raw=bytes(info), **values)

    def to_c(self):
        if len(self.raw) == ctypes.sizeof(CBootInfo):
            return CBootInfo.from_buffer_copy(self.raw)
        info = CBootInfo()
        for f in fields(self):
            if f.name != "raw":
                setattr(info, f.name, int(getattr(self, f.name)))
        return info

    def __repr__(self):
        return (f"BootInfo(format={getattr(self.format, 'name', self.format)}"
                f", protocol={getattr(self.protocol, 'name', self.protocol)},"
                f" entry={self.entry:#x}, kernel={self.kernel_start:#x}-"
                f"{self.kernel_end:#x}, params={self.params_address:#x})")


class LoaderMixin:
    """The loader.h call of :class:`hvcore.VM` (``vcpu.boot()`` is on
    :class:`hvcore.VCPU`)."""

    def load_kernel(self, kernel, *, initrd=None, cmdline=None,
                    format="auto", raw_address=0, raw_entry=0,
                    raw_mode="long64", acpi_rsdp=0):
        """Loads a kernel (ELF with or without PVH note, bzImage, or raw),
        its initrd, command line and boot data; returns a
        :class:`BootInfo` for ``vcpu.boot()``.

        ``kernel`` and ``initrd`` are bytes-like images or paths (str or
        PathLike). Add the RAM first: the guest's memory map is built from
        the regions. ``format="raw"`` needs ``raw_address`` (and
        ``raw_entry``, default the address; ``raw_mode``). ``acpi_rsdp``
        is ``vm.build_acpi()``'s result. HvError ENOEXEC for an
        unrecognised image, EINVAL, EFAULT (does not fit in RAM), EEXIST
        (two parts overlap), E2BIG;
        guest memory is unchanged on failure.
        """
        kbuf, ksize = _image(kernel, "kernel")
        ibuf, isize = (None, 0) if initrd is None else _image(initrd,
                                                              "initrd")
        opts = BootOptions(size=ctypes.sizeof(BootOptions),
                           format=kernel_format(format),
                           kernel_size=ksize, initrd_size=isize,
                           cmdline=None if cmdline is None
                           else str(cmdline).encode(),
                           raw_address=_convert.u64(raw_address,
                                                    "raw_address"),
                           raw_entry=_convert.u64(raw_entry, "raw_entry"),
                           raw_mode=x86_mode(raw_mode),
                           acpi_rsdp=_convert.u64(acpi_rsdp, "acpi_rsdp"))
        # c_void_p fields need addresses: keep the buffers alive here.
        kref = ctypes.c_char_p(kbuf) if isinstance(kbuf, bytes) else kbuf
        opts.kernel = ctypes.cast(kref, ctypes.c_void_p)
        if ibuf is not None:
            iref = ctypes.c_char_p(ibuf) if isinstance(ibuf, bytes) else ibuf
            opts.initrd = ctypes.cast(iref, ctypes.c_void_p)
        info = CBootInfo()
        self._node.call(lib.hvc_vm_load_kernel, byref(opts), byref(info))
        del kref
        return BootInfo.from_c(info)
