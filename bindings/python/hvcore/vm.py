"""Virtual machines: memory, I/O handlers, vCPUs, pause, interrupts."""

import contextlib
import ctypes
import errno
import operator
import threading
import weakref
from ctypes import byref, c_uint64, c_void_p

from . import _convert
from .audit import VmAuditMixin
from ._handle import Node
from ._lib import lib
from ._structs import MEMORY_OPTIONS_BASE_SIZE, MemoryOptions, VmOptions
from .constants import MemoryFlags, NumaPolicy, VmFlags, to_enum
from .errors import HvError
from .device import DeviceMixin
from .events import EventDispatcher
from .io import IoDispatcher
from .live import LiveMixin
from .loader import LoaderMixin
from .memory import MemoryRegion, RegionNode
from .migration import MigrationMixin, restore_vm
from .platform import PlatformMixin
from .tsc import VmTscMixin
from .vcpu import VCPU, VCPUNode, mode_options
from .virtio import VirtioMixin

__all__ = ["VM"]


class VMNode(Node):
    """A ``hvc_vm`` with its I/O dispatcher; owned by its hypervisor node."""

    kind = "VM"

    def __init__(self, ptr, parent):
        super().__init__(ptr, parent)
        self.wrapper_ref = None
        self.create_lock = threading.Lock()
        self.io = IoDispatcher(self, self.vcpu_for_ptr)
        self.events = EventDispatcher(self)

    def destroy(self, ptr):
        lib.hvc_vm_destroy(ptr)

    def on_closed(self):
        self.io.clear()
        self.events.clear()

    def vcpu_node(self, vcpu_id):
        with self.lock:
            for node in self.children.values():
                if isinstance(node, VCPUNode) and node.id == vcpu_id:
                    return node
        return None

    def vcpu_wrapper(self, node):
        """The VCPU object of ``node``, made again if it was collected."""
        with self.lock:
            vcpu = node.wrapper_ref() if node.wrapper_ref else None
            if vcpu is None:
                vm = self.wrapper_ref()
                vcpu = VCPU(vm, node)
                node.wrapper_ref = weakref.ref(vcpu)
            return vcpu

    def vcpu_for_ptr(self, ptr):
        node = self.children.get(ptr)
        if not isinstance(node, VCPUNode):
            return None
        return self.vcpu_wrapper(node)

    def region_wrapper(self, node):
        with self.lock:
            region = node.wrapper_ref() if node.wrapper_ref else None
            if region is None:
                region = MemoryRegion(self.wrapper_ref(), node)
                node.wrapper_ref = weakref.ref(region)
            return region


def _vm_options(flags, no_irqchip, max_vcpus, kick_signal):
    flags = _convert.u32(flags, "flags")
    if no_irqchip:
        flags |= VmFlags.NO_IRQCHIP
    kick_signal = operator.index(kick_signal)
    if not -(1 << 31) <= kick_signal < (1 << 31):
        raise ValueError(f"kick_signal {kick_signal} is not a signal number")
    return VmOptions(size=ctypes.sizeof(VmOptions), flags=flags,
                     max_vcpus=_convert.u32(max_vcpus, "max_vcpus"),
                     kick_signal=kick_signal)


def _numa(policy, nodes):
    """(policy, count, uint32 array) for the NUMA fields, or None."""
    nodes = [_convert.u32(n, "NUMA node") for n in nodes]
    if policy is None:
        if not nodes:
            return None
        policy = NumaPolicy.BIND
    if isinstance(policy, str):
        try:
            policy = NumaPolicy[policy.upper()]
        except KeyError:
            raise ValueError(f"unknown NUMA policy {policy!r}; known: "
                             "default, bind, preferred, interleave") from None
    array = (ctypes.c_uint32 * max(len(nodes), 1))(*nodes)
    return _convert.u32(policy, "numa_policy"), len(nodes), array


def _host_buffer(host, length):
    """(byte view, ctypes array exporting it, length) of caller memory."""
    with memoryview(host) as whole:
        if whole.readonly or not whole.c_contiguous:
            raise ValueError("host memory must be a writable, contiguous "
                             "buffer")
        view = whole.cast("B")
    size = view.nbytes
    if length is None:
        length = size
    if size == 0 or size < length:
        view.release()
        raise ValueError(f"host buffer has {size} bytes, fewer than length "
                         f"{length:#x}")
    return view, (ctypes.c_char * size).from_buffer(view), length


class VM(DeviceMixin, PlatformMixin, LoaderMixin, VirtioMixin, VmTscMixin,
         MigrationMixin, LiveMixin, VmAuditMixin):
    """One guest: memory, I/O handlers, vCPUs, interrupts, devices.

    ``VM(hv, no_irqchip=False, max_vcpus=0, kick_signal=0, flags=0)`` or
    ``hv.create_vm(...)``:

    * ``no_irqchip`` (or ``flags=hvcore.VmFlags.NO_IRQCHIP``): no in-kernel
      interrupt controller and PIT; HLT then returns as ExitReason.HLT;
    * ``flags=hvcore.VmFlags.USER_IRQCHIP``: the library's userspace LAPICs,
      IOAPIC, 8259s and PIT instead of the kernel's;
    * ``max_vcpus``: most vCPUs (0: the backend maximum);
    * ``kick_signal``: the signal used to kick vCPU threads (0: SIGRTMIN).

    Devices (hvcore.device), the platform devices and ACPI
    (hvcore.platform), kernel loading (hvcore.loader), virtio
    (hvcore.virtio), TSC calls (hvcore.tsc), ``save()``
    (hvcore.migration), ``migrate_send()``, ``snapshot_live()`` and
    ``handover_send()`` (hvcore.live) and the memory-sharing audit
    (hvcore.audit) are methods too; ``VM.restore(hv, source, ...)``
    makes a VM from a saved stream, ``VM.migrate_receive(hv, sock, ...)``
    and ``VM.handover_receive(hv, sock, ...)`` from a live one.

    Closing the VM (``close()``, the ``with`` block, or garbage collection)
    destroys its vCPUs, memory regions, devices and handlers; their Python
    objects then report ``closed`` and refuse further use. The VM keeps
    its Hypervisor alive.

    Thread rules (hvcore/vm.h): pause(), resume(), set_irq(), send_msi(),
    read(), write() and the I/O handler calls may be made from any thread.
    """

    def __init__(self, hypervisor, *, flags=0, no_irqchip=False, max_vcpus=0,
                 kick_signal=0):
        opts = _vm_options(flags, no_irqchip, max_vcpus, kick_signal)
        self._hv = hypervisor
        out = c_void_p()
        hvc_node = hypervisor._node
        hvc_node.call(lib.hvc_vm_create, byref(opts), byref(out))
        self._node = VMNode(out.value, hvc_node)
        self._node.wrapper_ref = weakref.ref(self)
        self._flags = to_enum(VmFlags, opts.flags)

    @classmethod
    def restore(cls, hypervisor, source, *, key=None, passphrase=None,
                setup=None, progress=None, mmap=False, verify_memory=False,
                kick_signal=0):
        """A new VM of ``hypervisor`` from a stream ``vm.save()`` wrote.

        ``source``: a snapshot file path, a file descriptor, or a file-like
        object with ``readinto()`` or ``read()`` (see
        :mod:`hvcore.migration`). ``key``/``passphrase``: what the stream
        was saved with. ``setup(vm, user_data)`` attaches the devices the
        stream has state for, with the same names (HvError ENOENT when one
        is missing); ``vm`` is the VM returned here. ``mmap=True`` maps a
        snapshot file's memory copy-on-write instead of reading it (the
        file must then stay unchanged while the VM lives);
        ``verify_memory`` also checks the mapped pages' CRCs.
        ``kick_signal`` as for ``VM()``.

        The VM is not paused; its vCPUs (``vm.vcpus``, ``vm.vcpu(id)``)
        continue where the saved ones stopped at their next ``run()``.
        HvError EKEYREJECTED (no or wrong key), ENODATA (the stream ends
        early), EBADMSG (damaged), EPROTO (another format or backend),
        ENOTSUP (this host lacks what the VM needs); nothing is left
        behind then. An exception of ``setup``, ``progress`` or the file
        object is re-raised, chained to the HvError.
        """
        return restore_vm(cls, hypervisor, source, key=key,
                          passphrase=passphrase, setup=setup,
                          progress=progress, mmap=mmap,
                          verify_memory=verify_memory,
                          kick_signal=kick_signal)

    @classmethod
    def _adopt(cls, hypervisor, ptr, owned):
        """The VM object of a ``hvc_vm`` the library made (a restore), with
        nodes for the vCPUs and memory regions it already has. ``owned``:
        the caller owns the VM (destroyed if this fails), else the library
        still does (a restore's setup callback)."""
        self = cls.__new__(cls)
        self._hv = hypervisor
        self._node = VMNode(ptr, hypervisor._node)
        self._node.wrapper_ref = weakref.ref(self)
        self._flags = None  # the library does not report a VM's flags
        try:
            self._adopt_children()
        except BaseException:
            if owned:
                self._node.close()
            else:
                self._node.forget("adopting the restored VM failed")
            raise
        return self

    def _adopt_children(self):
        node = self._node
        count = node.call(lib.hvc_vm_vcpu_count)
        found = 0
        vcpu_id = 0
        limit = max(count, self._hv.cap("max_vcpus"), 1024)
        while found < count and vcpu_id < limit:
            out = c_void_p()
            try:
                node.call(lib.hvc_vm_get_vcpu, vcpu_id, byref(out))
            except HvError as err:
                if err.errno != errno.ENOENT:
                    raise
            else:
                VCPUNode(out.value, node, vcpu_id)
                found += 1
            vcpu_id += 1
        self._adopt_regions()

    def _adopt_regions(self):
        """Nodes for memory regions the bindings did not make."""
        count = ctypes.c_size_t(0)
        while True:
            size = count.value
            array = (c_void_p * max(size, 1))()
            self._node.call(lib.hvc_vm_list_memory, array, size, byref(count))
            if count.value <= size:
                break
        with self._node.lock:
            for ptr in array[:count.value]:
                if ptr not in self._node.children:
                    RegionNode(ptr, self._node)

    @property
    def hypervisor(self):
        return self._hv

    @property
    def flags(self):
        """The VmFlags it was created with; None for a restored VM."""
        return self._flags

    @property
    def closed(self):
        return self._node.closed

    # -- lifetime ----------------------------------------------------------

    def close(self):
        """Destroys the VM with everything under it. Idempotent.

        Raises HvError(EBUSY) while a call on the VM or one of its vCPUs
        (such as ``vcpu.run()``) is in progress: stop the vCPU threads
        first.
        """
        self._node.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        node = getattr(self, "_node", None)
        if node is not None:
            node.close_from_gc()

    def __repr__(self):
        state = " closed" if self.closed else ""
        return f"<hvcore.VM of {self._hv.backend!r}{state}>"

    # -- memory ------------------------------------------------------------

    def add_memory(self, guest_addr, length=None, *, readonly=False,
                   host=None, flags=0, numa_policy=None, numa_nodes=()):
        """Adds a guest memory region; returns its :class:`MemoryRegion`.

        ``guest_addr`` and ``length`` are multiples of 4096. By default the
        library allocates zeroed memory (a memfd). ``host`` may instead be a
        writable, page-aligned buffer of at least ``length`` bytes (an
        ``mmap.mmap``, say; ``length`` defaults to its size) that the guest
        then uses directly; the region holds an export of it while it
        exists. HvError EEXIST when it overlaps a region, EINVAL for
        unaligned or empty ranges, ENOSPC when no slot is left.

        ``flags`` are :class:`MemoryFlags` (MERGEABLE, PREFAULT, HUGETLB,
        THP). ``numa_policy`` ("bind", "preferred", "interleave" or a
        :class:`NumaPolicy`) with ``numa_nodes`` (host node ids, see
        :class:`hvcore.Topology`) places the host memory; HvError ENOENT
        names a node the host does not have.
        """
        flags = _convert.u32(flags, "flags")
        numa = _numa(numa_policy, numa_nodes)
        if readonly:
            flags |= MemoryFlags.READONLY
        guest_addr = _convert.u64(guest_addr, "guest_addr")
        host_view = host_array = host_addr = None
        if host is not None:
            host_view, host_array, length = _host_buffer(host, length)
            host_addr = ctypes.addressof(host_array)
        out = c_void_p()
        try:
            if length is None:
                raise TypeError("add_memory() needs a length (or host=)")
            opts = MemoryOptions(size=MEMORY_OPTIONS_BASE_SIZE,
                                 flags=flags, guest_addr=guest_addr,
                                 length=_convert.u64(length, "length"),
                                 host_addr=host_addr)
            if numa is not None:
                opts.size = ctypes.sizeof(MemoryOptions)
                opts.numa_policy, opts.numa_node_count = numa[0], numa[1]
                opts.numa_nodes = numa[2]
            self._node.call(lib.hvc_vm_add_memory, byref(opts), byref(out))
        except BaseException:
            if host_view is not None:
                del host_array  # drops its export of the view
                host_view.release()
            raise
        node = RegionNode(out.value, self._node, host_view, host_array)
        return self._node.region_wrapper(node)

    def remove_memory(self, region):
        """Removes a region of this VM (same as ``region.close()``)."""
        if not isinstance(region, MemoryRegion) or region.vm is not self:
            raise ValueError(f"{region!r} is not a memory region of this VM")
        region.close()

    def find_memory(self, guest_addr):
        """The region containing ``guest_addr``; HvError ENOENT if none."""
        out = c_void_p()
        self._node.call(lib.hvc_vm_find_memory,
                        _convert.u64(guest_addr, "guest_addr"), byref(out))
        with self._node.lock:
            node = self._node.children.get(out.value)
            if node is None:  # made by the library itself (a restore)
                node = RegionNode(out.value, self._node)
        return self._node.region_wrapper(node)

    @property
    def regions(self):
        """The memory regions, in guest-physical order."""
        with self._node.lock:
            nodes = [n for n in self._node.children.values()
                     if isinstance(n, RegionNode)]
        nodes.sort(key=lambda n: n.guest_addr)
        return [self._node.region_wrapper(n) for n in nodes]

    def read(self, guest_addr, length):
        """``length`` bytes of guest memory; HvError EFAULT (and nothing
        read) when any byte is outside guest memory."""
        length = _convert.length(length)
        buf = ctypes.create_string_buffer(length)
        self._node.call(lib.hvc_vm_read,
                        _convert.u64(guest_addr, "guest_addr"), buf, length)
        return buf.raw

    def write(self, guest_addr, data):
        """Copies bytes-like ``data`` to guest memory (read-only regions
        included: it is how ROMs are loaded); HvError EFAULT, nothing
        written, when any byte is outside guest memory."""
        buf, length = _convert.input_buffer(data)
        self._node.call(lib.hvc_vm_write,
                        _convert.u64(guest_addr, "guest_addr"), buf, length)

    def mark_dirty(self, guest_addr, length):
        """Reports a write made through a view (or another host pointer)
        to regions whose dirty pages are tracked; call it after writing.
        HvError EFAULT unless the range lies in one region."""
        self._node.call(lib.hvc_vm_mark_dirty,
                        _convert.u64(guest_addr, "guest_addr"),
                        _convert.length(length))

    def view(self, guest_addr, length):
        """A memoryview of ``length`` bytes of guest memory at
        ``guest_addr``; HvError EFAULT unless the range lies in one
        region."""
        guest_addr = _convert.u64(guest_addr, "guest_addr")
        length = _convert.length(length)
        hva = c_void_p()
        self._node.call(lib.hvc_vm_gpa_to_hva, guest_addr, length, byref(hva))
        region = self.find_memory(guest_addr)
        start = guest_addr - region.guest_addr
        return region.view[start:start + length]

    def host_address(self, guest_addr, length=1):
        """Host address of guest-physical ``guest_addr``, checking that
        ``length`` bytes from it lie in one region (for other native
        code; valid until the region is removed)."""
        hva = c_void_p()
        self._node.call(lib.hvc_vm_gpa_to_hva,
                        _convert.u64(guest_addr, "guest_addr"),
                        _convert.length(length), byref(hva))
        return hva.value

    # -- I/O handlers ------------------------------------------------------

    def add_io_handler(self, space, base, length, fn):
        """Serves guest accesses to a port-I/O or MMIO range in Python.

        ``space`` is "pio"/"mmio" or an IoSpace. ``fn(vcpu, offset, data,
        size, is_write)`` runs on the vCPU's thread inside ``run()``; see
        :mod:`hvcore.io` for its contract: return None (done), an int or
        bytes for a read, or :data:`hvcore.IO_EXIT` to end ``run()``; an
        exception it raises is re-raised by ``run()``. HvError EEXIST when
        the range overlaps a registered one.
        """
        self._node.io.add(space, base, length, fn)

    def remove_io_handler(self, space, base):
        """Removes the handler registered at exactly ``space``/``base``;
        when this returns it is not running and will not run again."""
        self._node.io.remove(space, base)

    @property
    def io_handlers(self):
        """[(space, base, length, fn)] of the registered handlers."""
        return self._node.io.handlers()

    # -- vCPUs -------------------------------------------------------------

    def vcpu(self, vcpu_id=0):
        """The vCPU with APIC id ``vcpu_id``, created on first use.

        A new vCPU is in the x86 reset state; see :meth:`VCPU.set_mode`.
        HvError EINVAL when the id is not below the VM's max_vcpus.
        """
        vcpu_id = _convert.u32(vcpu_id, "vCPU id")
        with self._node.create_lock:
            node = self._node.vcpu_node(vcpu_id)
            if node is None:
                out = c_void_p()
                self._node.call(lib.hvc_vcpu_create, vcpu_id, byref(out))
                node = VCPUNode(out.value, self._node, vcpu_id)
        return self._node.vcpu_wrapper(node)

    @property
    def vcpu_count(self):
        """How many vCPUs the VM has (``hvc_vm_vcpu_count()``)."""
        return self._node.call(lib.hvc_vm_vcpu_count)

    @property
    def vcpus(self):
        """The vCPUs, by id."""
        with self._node.lock:
            nodes = [n for n in self._node.children.values()
                     if isinstance(n, VCPUNode)]
        nodes.sort(key=lambda n: n.id)
        return [self._node.vcpu_wrapper(n) for n in nodes]

    def mode_tables_size(self, mode, map_length=0):
        """Bytes of scratch RAM ``vcpu.set_mode(mode, tables=...)`` needs."""
        opts = mode_options(mode, 0, 0, 0, map_length)
        size = c_uint64()
        self._node.call(lib.hvc_vcpu_mode_tables_size, byref(opts),
                        byref(size))
        return size.value

    # -- pause -------------------------------------------------------------

    def pause(self):
        """Stops every vCPU and keeps them stopped until resume(). Pauses
        nest. vCPU threads stay inside run(). Not from an I/O handler of
        this VM (HvError EDEADLK)."""
        self._node.call(lib.hvc_vm_pause)

    def resume(self):
        """Undoes one pause(); HvError EINVAL when not paused."""
        self._node.call(lib.hvc_vm_resume)

    @property
    def is_paused(self):
        return self._node.call(lib.hvc_vm_is_paused)

    @contextlib.contextmanager
    def paused(self):
        """``with vm.paused(): ...``: the vCPUs are stopped in the block
        (their registers may be read from this thread)."""
        self.pause()
        try:
            yield self
        finally:
            self.resume()

    # -- interrupts --------------------------------------------------------

    def set_irq(self, gsi, level):
        """Sets interrupt line ``gsi`` to ``level`` (True/1 or False/0).
        HvError ENOTSUP without an in-kernel irqchip."""
        level = operator.index(level)
        self._node.call(lib.hvc_vm_set_irq, _convert.u32(gsi, "gsi"),
                        _convert.uint(level, 31, "level"))

    def pulse_irq(self, gsi):
        """Raises then lowers ``gsi`` (an edge-triggered interrupt)."""
        self.set_irq(gsi, 1)
        self.set_irq(gsi, 0)

    def send_msi(self, address, data):
        """Sends a message-signalled interrupt. Returns True when it was
        delivered, False when the guest blocked it (the library's
        -EAGAIN); other failures raise HvError."""
        try:
            self._node.call(lib.hvc_vm_send_msi, _convert.u64(address,
                                                             "address"),
                            _convert.u32(data, "data"))
        except HvError as err:
            if err.errno == errno.EAGAIN:
                return False
            raise
        return True
