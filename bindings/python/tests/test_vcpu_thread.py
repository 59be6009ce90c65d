"""vCPU thread affinity (core17) from Python: with the KVM backend's
test-only strict mode (HVCORE_KVM_STRICT_THREADS=1, read when a hypervisor
opens), libhvcore runs each vCPU and its callbacks on a thread of its own,
as it must for Hypervisor.framework. run() still re-raises what a handler
raised, registers set on one thread are seen by a run on another, and the
capabilities of issue 17 read back."""
import errno
import os
import threading

import pytest

import hvcore
from conftest import Machine, run_done


@pytest.fixture
def strict_hv(require_kvm, monkeypatch):
    monkeypatch.setenv("HVCORE_KVM_STRICT_THREADS", "1")
    with hvcore.Hypervisor("kvm") as opened:
        monkeypatch.delenv("HVCORE_KVM_STRICT_THREADS")
        yield opened


class Fire(Exception):
    pass


def test_handler_runs_on_the_vcpu_thread_and_its_error_surfaces(strict_hv):
    m = Machine(strict_hv)
    try:
        m.load("long64")
        seen = []

        def broken(vcpu, offset, data, size, is_write):
            seen.append(threading.get_ident())
            raise Fire("handler on fire")

        m.vm.add_io_handler("pio", 0xF0, 8, broken)
        vcpu = m.vcpu()
        with pytest.raises(Fire) as info:
            vcpu.run()
        assert info.value.__cause__.errno == errno.EIO
        # the library's vCPU thread, not this one
        assert seen and seen[0] != threading.get_ident()
    finally:
        m.close()


def test_set_on_one_thread_run_on_another(strict_hv):
    m = Machine(strict_hv)
    try:
        m.load("long64")
        m.vm.write(0x20000, (1).to_bytes(8, "little") +
                   (5).to_bytes(8, "little"))
        vcpu = m.vcpu()  # registers set on this thread
        result = []
        t = threading.Thread(target=lambda: result.append(run_done(vcpu)))
        t.start()
        t.join()
        assert result == [0x64]
        assert vcpu.get("rip") != 0x8000  # read back here
    finally:
        m.close()


def test_max_vms_and_page_size(require_kvm):
    with hvcore.Hypervisor("kvm") as hv:
        assert hv.cap(hvcore.Cap.MAX_VMS) == 0
        assert hv.cap(hvcore.Cap.PAGE_SIZE) == 4096
    os.environ["HVCORE_KVM_MAX_VMS"] = "1"
    try:
        hv = hvcore.Hypervisor("kvm")
    finally:
        del os.environ["HVCORE_KVM_MAX_VMS"]
    with hv:
        assert hv.cap("MAX_VMS") == 1
        vm = hv.create_vm()
        with pytest.raises(hvcore.HvError) as err:
            hv.create_vm()
        assert err.value.errno == errno.EBUSY
        vm.close()
        hv.create_vm().close()
