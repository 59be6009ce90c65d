"""Object lifetimes: idempotent close, use after close, parents kept alive,
garbage collection without close, no leaks."""

import gc
import os

import pytest

import hvcore
from conftest import MEM_SIZE, run_done


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_children_closed_by_their_vm_close_as_no_ops(hv):
    vm = hv.create_vm()
    ram = vm.add_memory(0, MEM_SIZE)
    vcpu = vm.vcpu(0)
    vm.close()
    assert vm.closed and vcpu.closed and ram.closed
    vcpu.close()  # no double free: the VM destroyed it
    ram.close()
    vm.close()
    with vm:  # a closed VM still works as a context manager
        pass


def test_use_after_close_raises_a_clear_error(hv):
    vm = hv.create_vm()
    ram = vm.add_memory(0, MEM_SIZE)
    vcpu = vm.vcpu(0)
    vm.close()
    calls = [vcpu.run, vcpu.kick, lambda: vcpu.regs.rip,
             lambda: vcpu.set("rax", 1), lambda: vcpu.get_segment("cs"),
             vcpu.get_fpu_state, lambda: vcpu.set_mode("real"),
             lambda: ram.view, lambda: ram.fd,
             lambda: vm.read(0, 1), lambda: vm.write(0, b"x"),
             lambda: vm.vcpu(1), lambda: vm.add_memory(0, 4096),
             vm.pause, lambda: vm.set_irq(1, 1),
             lambda: vm.add_io_handler("pio", 1, 1, print)]
    for call in calls:
        with pytest.raises(hvcore.ClosedError) as info:
            call()
        assert "closed" in str(info.value)
        assert isinstance(info.value, ValueError)
    assert "its VM was closed" in str(pytest.raises(
        hvcore.ClosedError, vcpu.run).value)


def test_a_vcpu_keeps_its_vm_alive(require_kvm):
    def make():
        hv = hvcore.Hypervisor()
        vm = hv.create_vm()
        vm.add_memory(0, MEM_SIZE)
        vm.write(0x8000, b"\xb0\x2a\xe6\xf4")  # mov al, 42; out 0xf4, al
        vcpu = vm.vcpu(0)
        vcpu.set_mode("long64", entry=0x8000, stack=0x7000, tables=0x100000)
        return vcpu

    vcpu = make()
    gc.collect()
    assert not vcpu.closed and not vcpu.vm.closed
    assert run_done(vcpu) == 42
    assert not vcpu.vm.hypervisor.closed
    assert vcpu.vm.vcpu(0) is vcpu


def test_dropped_objects_are_destroyed(require_kvm):
    """VMs and hypervisors dropped without close() release their file
    descriptors, also when a handler closure refers back to the VM."""
    gc.collect()
    baseline = open_fds()
    for _ in range(10):
        hv = hvcore.Hypervisor()
        vm = hv.create_vm()
        vm.add_memory(0, MEM_SIZE).view  # noqa: B018 - maps the memfd
        vm.vcpu(0)
        vm.add_io_handler("pio", 0xE9, 1,
                          lambda *args, vm=vm: vm.read(0, 1))  # a cycle
        del hv, vm
    gc.collect()
    assert open_fds() == baseline


def test_create_and_destroy_many(require_kvm):
    gc.collect()
    baseline = open_fds()
    with hvcore.Hypervisor() as hv:
        for _ in range(50):
            with hv.create_vm(max_vcpus=2) as vm:
                vm.add_memory(0, 0x10000)
                vm.vcpu(0)
                vm.vcpu(1)
                vm.add_io_handler("pio", 0x10, 1, print)
    gc.collect()
    assert open_fds() == baseline


def test_hypervisor_close_closes_its_vms(require_kvm):
    hv = hvcore.Hypervisor()
    vms = [hv.create_vm() for _ in range(3)]
    vms[1].close()
    hv.close()
    assert all(vm.closed for vm in vms)
    assert hv.closed


def test_context_managers(require_kvm):
    with hvcore.Hypervisor() as hv:
        with hv.create_vm() as vm:
            with vm.add_memory(0, 0x1000) as region:
                with vm.vcpu(0) as vcpu:
                    pass
                assert vcpu.closed and not region.closed
            assert region.closed and not vm.closed
        assert vm.closed
    assert hv.closed


def test_region_removal_keeps_old_views_safe(machine):
    view = machine.ram.view
    part = view[0x1000:0x2000]
    machine.ram.close()
    part[0] = 1  # detached memory; no crash
    assert machine.vm.regions == []
    with pytest.raises(hvcore.HvError):
        machine.vm.read(0x1000, 1)
