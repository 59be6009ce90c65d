"""Host topology: NUMA nodes, PCI devices, placement, thread pinning
(hvcore/topology.h).

    with hvcore.Topology.host() as topo:
        for node in topo.nodes:
            print(node.id, node.cpus, node.mem_total)
        where = topo.place("0000:3b:00.0")   # a NIC's address
        hvcore.pin_thread_to_cpus(where.cpus)

A :class:`Topology` is a snapshot (or a description built by hand); it is
not tied to a hypervisor or VM. Its reads return plain dataclasses that
stay valid after ``close()``.
"""

import ctypes
from ctypes import byref, c_size_t, c_uint32, c_uint64, c_void_p
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from . import _convert
from ._handle import Node
from ._lib import lib
from ._structs_ext import PciDevice as CPciDevice
from ._structs_ext import Placement as CPlacement
from .constants import PlacementFlags, to_enum

__all__ = ["Topology", "NumaNode", "PciDevice", "Placement",
           "pin_thread_to_cpus", "pin_thread_to_node"]


@dataclass(frozen=True)
class NumaNode:
    """A NUMA node: its id, online CPUs, memory in bytes, and its
    distance to every node (ACPI SLIT units; 10 to itself)."""

    id: int
    cpus: Tuple[int, ...]
    mem_total: int
    mem_free: int
    distances: Dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PciDevice:
    """A PCI function (``hvc_pci_device``); ``numa_node`` -1 when the host
    does not say. ``address`` is "DDDD:BB:DD.F"."""

    domain: int
    bus: int
    device: int
    function: int
    vendor_id: int = 0
    device_id: int = 0
    class_code: int = 0
    numa_node: int = -1
    vendor_name: Optional[str] = None
    device_name: Optional[str] = None
    class_name: Optional[str] = None

    @property
    def address(self):
        return (f"{self.domain:04x}:{self.bus:02x}:{self.device:02x}."
                f"{self.function:x}")

    @classmethod
    def from_c(cls, raw):
        def text(value):
            return None if value is None else value.decode("utf-8",
                                                           "replace")
        return cls(raw.domain, raw.bus, raw.device, raw.function,
                   raw.vendor_id, raw.device_id, raw.class_code,
                   raw.numa_node, text(raw.vendor_name),
                   text(raw.device_name), text(raw.class_name))

    def to_c(self):
        def raw(value):
            return None if value is None else str(value).encode()
        return CPciDevice(
            size=ctypes.sizeof(CPciDevice),
            domain=_convert.u32(self.domain, "domain"),
            bus=_convert.uint(self.bus, 8, "bus"),
            device=_convert.uint(self.device, 8, "device"),
            function=_convert.uint(self.function, 8, "function"),
            vendor_id=_convert.uint(self.vendor_id, 16, "vendor_id"),
            device_id=_convert.uint(self.device_id, 16, "device_id"),
            class_code=_convert.u32(self.class_code, "class_code"),
            numa_node=self.numa_node, vendor_name=raw(self.vendor_name),
            device_name=raw(self.device_name),
            class_name=raw(self.class_name))


@dataclass(frozen=True)
class Placement:
    """Where a VM using a PCI device should run (``hvc_placement``)."""

    node: int
    cpus: Tuple[int, ...]
    flags: PlacementFlags
    device_node: int
    distance: int


class TopologyNode(Node):
    kind = "topology"

    def destroy(self, ptr):
        lib.hvc_topology_destroy(ptr)


def _u32_list(func, *args):
    """Calls a (…, uint32_t *out, size_t capacity, size_t *count) lister
    until the array is large enough."""
    count = c_size_t(0)
    while True:
        size = count.value
        array = (c_uint32 * max(size, 1))()
        func(*args, array, size, byref(count))
        if count.value <= size:
            return tuple(array[:count.value])


class Topology:
    """A description of a host's NUMA nodes and PCI devices.

    ``Topology.host()`` snapshots this host (HvError ENODEV when libpci
    reaches no PCI bus); ``Topology()`` is an empty description to fill
    with :meth:`add_node`, :meth:`set_distance` and :meth:`add_pci`, to
    plan placement for another host. Close it (or use ``with``) to free
    it; not locked: do not add to it while other threads read it.
    """

    def __init__(self, _ptr=None):
        if _ptr is None:
            out = c_void_p()
            lib.hvc_topology_create(byref(out))
            _ptr = out.value
        self._node = TopologyNode(_ptr)

    @classmethod
    def host(cls):
        """A snapshot of this host."""
        out = c_void_p()
        lib.hvc_topology_host(byref(out))
        return cls(out.value)

    # -- building ----------------------------------------------------------

    def add_node(self, node, cpus=(), mem_total=0, mem_free=0):
        """Adds node ``node`` with CPU ids ``cpus`` and its memory."""
        cpus = [_convert.u32(c, "cpu") for c in cpus]
        array = (c_uint32 * max(len(cpus), 1))(*cpus)
        self._node.call(lib.hvc_topology_add_node,
                        _convert.u32(node, "node"), array, len(cpus),
                        _convert.u64(mem_total, "mem_total"),
                        _convert.u64(mem_free, "mem_free"))

    def set_distance(self, from_node, to_node, distance):
        """The distance from one node to another (one direction)."""
        self._node.call(lib.hvc_topology_set_distance,
                        _convert.u32(from_node, "from"),
                        _convert.u32(to_node, "to"),
                        _convert.u32(distance, "distance"))

    def add_pci(self, pci=None, /, **fields_):
        """Adds a :class:`PciDevice`, or one made from keyword fields
        (``add_pci(bus=0x3b, device=0, function=0, numa_node=1)``)."""
        if pci is None:
            pci = PciDevice(**fields_)
        raw = pci.to_c()
        self._node.call(lib.hvc_topology_add_pci, byref(raw))

    # -- reading -----------------------------------------------------------

    @property
    def node_ids(self):
        return self._node.call(_u32_list_call, lib.hvc_topology_list_nodes)

    def node(self, node_id):
        """The :class:`NumaNode` ``node_id`` (HvError ENOENT if none)."""
        node_id = _convert.u32(node_id, "node")
        cpus = self._node.call(_u32_list_call, lib.hvc_topology_node_cpus,
                               node_id)
        total, free = c_uint64(), c_uint64()
        self._node.call(lib.hvc_topology_node_memory, node_id, byref(total),
                        byref(free))
        distances = {other: self.distance(node_id, other)
                     for other in self.node_ids}
        return NumaNode(node_id, cpus, total.value, free.value, distances)

    @property
    def nodes(self):
        """Every :class:`NumaNode`, by ascending id."""
        return [self.node(n) for n in self.node_ids]

    def distance(self, from_node, to_node):
        value = c_uint32()
        self._node.call(lib.hvc_topology_distance,
                        _convert.u32(from_node, "from"),
                        _convert.u32(to_node, "to"), byref(value))
        return value.value

    @property
    def pci_devices(self):
        """Every :class:`PciDevice`, in address order."""
        count = self._node.call(lib.hvc_topology_pci_count)
        return [self._pci(i) for i in range(count)]

    def _pci(self, index):
        raw = CPciDevice(size=ctypes.sizeof(CPciDevice))
        self._node.call(lib.hvc_topology_pci_device, index, byref(raw))
        return PciDevice.from_c(raw)

    def find_pci(self, address):
        """The :class:`PciDevice` at "DDDD:BB:DD.F" or "BB:DD.F"; HvError
        ENOENT when there is none, EINVAL when it does not parse."""
        index = c_size_t()
        self._node.call(lib.hvc_topology_find_pci, str(address).encode(),
                        byref(index))
        return self._pci(index.value)

    def place(self, address):
        """The :class:`Placement` (node and CPUs) for a VM using the PCI
        device at ``address``. A pure function of the description."""
        raw = CPlacement(size=ctypes.sizeof(CPlacement))
        count = c_size_t(0)
        encoded = str(address).encode()
        while True:
            size = count.value
            cpus = (c_uint32 * max(size, 1))()
            self._node.call(lib.hvc_topology_place, encoded, byref(raw),
                            cpus, size, byref(count))
            if count.value <= size:
                break
        return Placement(raw.node, tuple(cpus[:count.value]),
                         to_enum(PlacementFlags, raw.flags),
                         raw.device_node, raw.distance)

    # -- lifetime ----------------------------------------------------------

    @property
    def closed(self):
        return self._node.closed

    def close(self):
        """Frees the description. Idempotent."""
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
        if self.closed:
            return "<hvcore.Topology closed>"
        return (f"<hvcore.Topology nodes={list(self.node_ids)} "
                f"pci={self._node.call(lib.hvc_topology_pci_count)}>")


def _u32_list_call(ptr, func, *args):
    return _u32_list(func, ptr, *args)


def pin_thread_to_cpus(cpus):
    """Restricts the calling thread (and threads it starts later) to the
    host CPU ids ``cpus`` (sched_setaffinity). Call it on a vCPU's thread
    before its first run. HvError EINVAL names a CPU that is not online."""
    cpus = [_convert.u32(c, "cpu") for c in cpus]
    array = (c_uint32 * max(len(cpus), 1))(*cpus)
    lib.hvc_thread_pin_cpus(array, len(cpus))


def pin_thread_to_node(node):
    """Restricts the calling thread to the online CPUs of a NUMA node.
    HvError ENOENT when the host has no such node, EINVAL when it has no
    online CPUs."""
    lib.hvc_thread_pin_node(_convert.u32(node, "node"))
