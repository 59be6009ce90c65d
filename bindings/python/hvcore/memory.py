"""Guest memory regions and their host views."""

import ctypes
import mmap
import threading

from . import _structs as S
from ._handle import Node
from ._lib import lib
from .constants import DirtyFlags, DirtyMode, MemoryFlags, to_enum

__all__ = ["MemoryRegion"]


class RegionNode(Node):
    """A ``hvc_memory_region`` and the host memory Python sees it through.

    The view of a library-allocated region is a second mapping of the
    region's memfd (``hvc_memory_region_fd``), owned by Python: it shares the
    guest's pages, yet stays mapped for as long as a memoryview of it
    exists, so a view kept after the region or its VM is gone reads and
    writes detached memory instead of crashing the process. For memory the
    caller supplied (``host=``), the view is over the caller's own buffer,
    whose export the region holds while it exists (an ``mmap`` cannot be
    closed under the guest).
    """

    kind = "memory region"

    def __init__(self, ptr, parent, host_view=None, host_array=None):
        super().__init__(ptr, parent)
        self.guest_addr = lib.hvc_memory_region_guest_addr(ptr)
        self.length = lib.hvc_memory_region_length(ptr)
        self.flags = to_enum(MemoryFlags, lib.hvc_memory_region_flags(ptr))
        self.host_view = host_view      # the caller's buffer, exported
        self.host_array = host_array    # ctypes array over it (the export)
        self.view_lock = threading.Lock()
        self.view = None
        self.mapping = None
        self.wrapper_ref = None

    def describe(self):
        return f"memory region {self.guest_addr:#x}+{self.length:#x}"

    def destroy(self, ptr):
        lib.hvc_vm_remove_memory(self.parent.ptr, ptr)

    def get_view(self, node_ptr):
        with self.view_lock:
            if self.view is None:
                self.view = self._make_view(node_ptr)
            return self.view

    def _make_view(self, ptr):
        if self.host_view is not None:
            return self.host_view[:self.length]
        fd = lib.hvc_memory_region_fd(ptr)
        if fd >= 0:
            self.mapping = mmap.mmap(fd, self.length, mmap.MAP_SHARED,
                                     mmap.PROT_READ | mmap.PROT_WRITE)
            return memoryview(self.mapping)
        # A backend without a memfd: a view straight over the library's
        # mapping. Using it after the region is removed is unsafe; the view
        # is released on close, but slices taken from it are not.
        hva = lib.hvc_memory_region_hva(ptr)
        array = (ctypes.c_char * self.length).from_address(hva)
        return memoryview(array).cast("B")

    def on_closed(self):
        with self.view_lock:
            view, self.view = self.view, None
            mapping, self.mapping = self.mapping, None
        if view is not None:
            try:
                view.release()
            except BufferError:
                pass  # someone holds an export of it; it stays valid
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                pass  # slices of the view are alive; unmapped with them
        if self.host_array is not None:
            self.host_array = None
            try:
                self.host_view.release()
            except BufferError:
                pass
            self.host_view = None


class MemoryRegion:
    """A guest-physical range backed by host memory.

    Created with :meth:`hvcore.VM.add_memory`; owned by its VM, which
    removes it when it is closed. The object keeps its VM alive.

    Attributes:
        vm: the :class:`hvcore.VM`.
        guest_addr, length: the range (page multiples).
        flags: :class:`MemoryFlags`.
    """

    __slots__ = ("_vm", "_node", "__weakref__")

    def __init__(self, vm, node):
        self._vm = vm
        self._node = node

    @property
    def vm(self):
        return self._vm

    @property
    def guest_addr(self):
        return self._node.guest_addr

    @property
    def length(self):
        return self._node.length

    @property
    def end(self):
        """First guest-physical address after the region."""
        return self._node.guest_addr + self._node.length

    @property
    def flags(self):
        return self._node.flags

    @property
    def readonly(self):
        return bool(self._node.flags & MemoryFlags.READONLY)

    @property
    def closed(self):
        return self._node.closed

    @property
    def view(self):
        """A writable memoryview (format "B") over the region's memory.

        Offset 0 is ``guest_addr``. Writes are seen by the guest at once and
        guest writes appear in it (it is the same memory), also for a
        read-only region (as with ``VM.write``, the host may write a ROM).
        Raises ClosedError once the region is removed; a view obtained
        before then stays safe to touch but no longer reaches the guest.
        """
        return self._node.call(self._node.get_view)

    @property
    def host_address(self):
        """Host virtual address of the first byte (for other native code);
        valid until the region is removed."""
        return self._node.call(lib.hvc_memory_region_hva)

    @property
    def fd(self):
        """The memfd behind a library-allocated region, or None. Owned by
        the library: ``os.dup()`` it to keep it."""
        fd = self._node.call(lib.hvc_memory_region_fd)
        return fd if fd >= 0 else None

    # -- dirty-page tracking (hvc_memory_dirty_*) --

    def dirty_start(self, mode=DirtyMode.AUTO, clean=False):
        """Starts tracking the pages written to this region.

        ``mode``: :attr:`DirtyMode.AUTO` (the ring in a VM created with
        ``VmFlags.DIRTY_RING``, else the bitmap), ``BITMAP`` or ``RING``.
        The first fetch reports every page, unless ``clean``: then only the
        pages written after the start. HvError EALREADY when tracked
        already, ENOTSUP when the mode is not available in this VM.
        """
        opts = S.DirtyOptions(ctypes.sizeof(S.DirtyOptions), int(mode),
                              int(DirtyFlags.START_CLEAN) if clean else 0)
        self._node.call(lib.hvc_memory_dirty_start, ctypes.byref(opts))

    def dirty_fetch_bitmap(self):
        """Fetches and clears the pages written since the last fetch:
        ``(bitmap, count)``, where bit i of the bytes (little-endian 64-bit
        words) is page i of the region. HvError ENOENT when untracked."""
        size = self._node.call(lib.hvc_memory_dirty_bitmap_size)
        words = (ctypes.c_uint64 * max(size // 8, 1))()
        count = ctypes.c_uint64()
        self._node.call(lib.hvc_memory_dirty_fetch, words, size,
                        ctypes.byref(count))
        return bytes(words)[:size], count.value

    def dirty_fetch(self):
        """As :meth:`dirty_fetch_bitmap`, as a sorted list of page numbers
        (page i is ``guest_addr + i * 4096``)."""
        bitmap, count = self.dirty_fetch_bitmap()
        pages = []
        for index in range(0, len(bitmap), 8):
            word = int.from_bytes(bitmap[index:index + 8], "little")
            while word:
                low = word & -word
                pages.append(index * 8 + low.bit_length() - 1)
                word ^= low
        assert len(pages) == count
        return pages

    def dirty_stop(self):
        """Stops tracking; HvError ENOENT when untracked."""
        self._node.call(lib.hvc_memory_dirty_stop)

    @property
    def dirty_mode(self):
        """How the region is tracked (:class:`DirtyMode` bits), 0 when it
        is not."""
        return to_enum(DirtyMode,
                       self._node.call(lib.hvc_memory_dirty_mode))

    def contains(self, guest_addr, length=1):
        return (self.guest_addr <= guest_addr
                and guest_addr + length <= self.end)

    def close(self):
        """Removes the region from its VM (idempotent; a no-op once the VM
        is closed)."""
        self._node.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __eq__(self, other):
        return isinstance(other, MemoryRegion) and other._node is self._node

    def __hash__(self):
        return hash(self._node)

    def __repr__(self):
        state = " closed" if self.closed else ""
        ro = " readonly" if self.readonly else ""
        return (f"<hvcore.MemoryRegion {self.guest_addr:#x}+"
                f"{self.length:#x}{ro}{state}>")
