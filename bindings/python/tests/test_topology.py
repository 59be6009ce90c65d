"""Host topology snapshots (checked against /sys), hand-built
descriptions, placement, thread pinning and NUMA region options."""

import errno
import os
import threading
from pathlib import Path

import pytest

import hvcore

NODES = Path("/sys/devices/system/node")


def cpulist(text):
    cpus = []
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus += range(int(lo), int(hi or lo) + 1)
    return cpus


def test_host_snapshot_matches_sys():
    with hvcore.Topology.host() as topo:
        ids = topo.node_ids
        assert 0 in ids
        node0 = topo.node(0)
        if (NODES / "node0" / "cpulist").exists():
            online = set(cpulist(Path("/sys/devices/system/cpu/online")
                                 .read_text()))
            expected = [c for c in cpulist((NODES / "node0" / "cpulist")
                                           .read_text()) if c in online]
            assert list(node0.cpus) == expected
        else:  # no NUMA in the kernel: one node with every CPU
            assert len(node0.cpus) == os.cpu_count()
        assert node0.mem_total > node0.mem_free > 0
        assert node0.distances[0] == hvcore.HVC_NUMA_DISTANCE_LOCAL
        assert topo.nodes[0] == node0
        pci = topo.pci_devices
        sys_pci = sorted(p.name for p in Path("/sys/bus/pci/devices")
                         .iterdir()) if Path("/sys/bus/pci/devices").exists() \
            else []
        assert sorted(d.address for d in pci) == sys_pci
        if pci:
            first = pci[0]
            assert topo.find_pci(first.address) == first
            assert (Path("/sys/bus/pci/devices") / first.address /
                    "vendor").read_text().strip() == f"{first.vendor_id:#06x}"
            where = topo.place(first.address)
            assert where.node in ids and where.cpus
        with pytest.raises(hvcore.HvError) as err:
            topo.find_pci("ffff:ff:1f.7")
        assert err.value.errno == errno.ENOENT
        with pytest.raises(hvcore.HvError) as err:
            topo.find_pci("not an address")
        assert err.value.errno == errno.EINVAL
    assert topo.closed
    with pytest.raises(hvcore.ClosedError):
        topo.node_ids
    topo.close()


def test_hand_built_description_and_placement():
    with hvcore.Topology() as topo:
        topo.add_node(0, [0, 1, 2, 3], 8 << 30, 4 << 30)
        topo.add_node(1, [4, 5, 6, 7], 8 << 30, 6 << 30)
        topo.add_node(2, [], 16 << 30, 16 << 30)  # memory only
        topo.set_distance(2, 1, 12)
        topo.set_distance(2, 0, 30)
        topo.add_pci(domain=0, bus=0x3B, device=0, function=0,
                     vendor_id=0x8086, device_id=0x1572,
                     class_code=0x020000, numa_node=1,
                     device_name="Ethernet X710")
        topo.add_pci(hvcore.PciDevice(0, 0x5E, 0, 0, numa_node=2))
        with pytest.raises(hvcore.HvError) as err:
            topo.add_node(3, [2], 1, 1)
        assert err.value.errno == errno.EEXIST and "2" in err.value.message
        assert topo.node_ids == (0, 1, 2)
        assert topo.distance(0, 1) == hvcore.HVC_NUMA_DISTANCE_REMOTE
        nic = topo.find_pci("3b:00.0")
        assert nic.device_name == "Ethernet X710" and nic.numa_node == 1
        here = topo.place("0000:3b:00.0")
        assert (here.node, here.cpus, here.flags) == (1, (4, 5, 6, 7), 0)
        near = topo.place("5e:00.0")
        assert near.node == 1 and near.device_node == 2
        assert near.flags == hvcore.PlacementFlags.NEAREST
        assert near.distance == 12


def test_thread_pinning_and_numa_regions(machine):
    cpus = sorted(os.sched_getaffinity(0))
    result = {}

    def worker():
        try:
            hvcore.pin_thread_to_cpus(cpus[:1])
            result["cpus"] = os.sched_getaffinity(0)
            hvcore.pin_thread_to_node(0)
            result["node"] = os.sched_getaffinity(0)
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert "error" not in result, result
    assert result["cpus"] == set(cpus[:1])
    assert os.sched_getaffinity(0) == set(cpus)  # only that thread
    with pytest.raises(hvcore.HvError) as err:
        hvcore.pin_thread_to_cpus([])
    assert err.value.errno == errno.EINVAL
    with pytest.raises(hvcore.HvError) as err:
        hvcore.pin_thread_to_node(4095)
    assert err.value.errno == errno.ENOENT

    vm = machine.vm
    bound = vm.add_memory(0x1000000, 1 << 20, numa_policy="bind",
                          numa_nodes=[0],
                          flags=hvcore.MemoryFlags.PREFAULT)
    assert bound.flags & hvcore.MemoryFlags.PREFAULT
    vm.add_memory(0x2000000, 1 << 20, numa_policy=hvcore.NumaPolicy.
                  INTERLEAVE, numa_nodes=[0])
    merge = vm.add_memory(0x3000000, 1 << 20,
                          flags=hvcore.MemoryFlags.MERGEABLE)
    assert merge.fd is None  # anonymous memory, for KSM
    with pytest.raises(hvcore.HvError) as err:
        vm.add_memory(0x4000000, 1 << 20, numa_nodes=[4095])
    assert err.value.errno == errno.ENOENT
    with pytest.raises(ValueError):
        vm.add_memory(0x4000000, 1 << 20, numa_policy="nearest")
