"""Running: kicks from other threads, pause/resume, HLT, shutdown,
interrupts, two VMs at once."""

import errno
import struct
import threading
import time

import pytest

import hvcore
from conftest import DATA_IN, DATA_OUT, run_done


class Runner(threading.Thread):
    """Runs a vCPU once on its own thread, recording how it ended."""

    def __init__(self, vcpu):
        super().__init__(daemon=True)
        self.vcpu = vcpu
        self.exit = None
        self.error = None
        self.returned = None

    def run(self):
        try:
            self.exit = self.vcpu.run()
        except BaseException as exc:  # noqa: B902 - reported by the test
            self.error = exc
        self.returned = time.monotonic()


def counter(vm):
    return struct.unpack("<Q", vm.read(DATA_OUT, 8))[0]


def wait_spinning(vm):
    deadline = time.monotonic() + 5
    while counter(vm) < 1000:
        assert time.monotonic() < deadline, "the guest never started"
        time.sleep(0.001)


def test_kick_from_another_thread_stops_a_spinning_guest(machine):
    m = machine
    m.load("spin64")
    vcpu = m.vcpu()
    runner = Runner(vcpu)
    runner.start()
    wait_spinning(m.vm)
    # while it runs: a second run, destroying it, or its registers: refused
    for call, what in [(vcpu.run, "already running"),
                       (lambda: vcpu.regs.rax, "pause the VM"),
                       (vcpu.close, "in use"), (m.vm.close, "in use")]:
        with pytest.raises(hvcore.HvError) as info:
            call()
        assert info.value.errno == errno.EBUSY
        assert what in info.value.message
    kicked = time.monotonic()
    vcpu.kick()
    runner.join(5)
    assert not runner.is_alive() and runner.error is None
    assert runner.exit.reason == hvcore.ExitReason.KICK
    latency = runner.returned - kicked
    assert latency < 0.1, f"kick took {latency * 1000:.1f} ms"
    # the guest resumes where it was
    before = counter(m.vm)
    again = Runner(vcpu)
    again.start()
    time.sleep(0.02)
    vcpu.kick()
    again.join(5)
    assert again.exit.reason == hvcore.ExitReason.KICK
    assert counter(m.vm) > before
    assert vcpu.regs.rax >= before


def test_kick_before_run_returns_at_once(machine):
    m = machine
    m.load("spin64")
    vcpu = m.vcpu()
    vcpu.kick()
    assert vcpu.run().reason == hvcore.ExitReason.KICK


def test_pause_and_resume(machine):
    m = machine
    m.load("spin64")
    vcpu = m.vcpu()
    runner = Runner(vcpu)
    runner.start()
    wait_spinning(m.vm)
    with m.vm.paused():
        assert m.vm.is_paused
        c1 = counter(m.vm)
        time.sleep(0.03)
        assert counter(m.vm) == c1, "the guest ran while paused"
        assert vcpu.regs.rax in (c1, c1 + 1)  # readable while paused
        with m.vm.paused():  # pauses nest
            pass
        assert m.vm.is_paused
    assert not m.vm.is_paused
    with pytest.raises(hvcore.HvError) as info:
        m.vm.resume()
    assert info.value.errno == errno.EINVAL
    time.sleep(0.03)
    assert counter(m.vm) > c1, "the guest did not resume"
    assert runner.is_alive(), "run() stays in while paused"
    # a kick releases a thread parked by a pause
    m.vm.pause()
    vcpu.kick()
    runner.join(5)
    assert runner.exit.reason == hvcore.ExitReason.KICK
    m.vm.resume()


def test_hlt_and_shutdown_without_irqchip(make_machine):
    m = make_machine(no_irqchip=True)
    assert m.vm.flags == hvcore.VmFlags.NO_IRQCHIP
    m.load("hlt64")
    vcpu = m.vcpu()
    assert vcpu.run().reason == hvcore.ExitReason.HLT
    assert run_done(vcpu) == 0x48
    exit = vcpu.run()
    assert exit.reason == hvcore.ExitReason.SHUTDOWN, "ud2 without an IDT"
    assert exit.data is None and exit.port is None
    for call in (lambda: m.vm.set_irq(4, 1),
                 lambda: m.vm.send_msi(0xFEE00000, 0x30)):
        with pytest.raises(hvcore.HvError) as info:
            call()
        assert info.value.errno == errno.ENOTSUP


def test_interrupt_lines_and_msi(machine):
    vm = machine.vm
    vm.vcpu(0)
    vm.set_irq(4, True)
    vm.set_irq(4, False)
    vm.pulse_irq(5)
    vm.set_irq(23, 1)
    with pytest.raises(hvcore.HvError) as info:
        vm.set_irq(24, 1)
    assert "GSI 24" in info.value.message
    with pytest.raises(hvcore.HvError):
        vm.set_irq(4, 2)
    with pytest.raises(ValueError):
        vm.set_irq(-1, 1)
    # the LAPIC is disabled after reset: delivery may be refused
    assert vm.send_msi(0xFEE00000, 0x30) in (True, False)


def test_run_without_memory_is_refused(hv):
    with hv.create_vm() as vm:
        with pytest.raises(hvcore.HvError) as info:
            vm.vcpu(0).run()
        assert info.value.errno == errno.EINVAL
        assert "no memory" in info.value.message


def test_two_vms_on_two_threads(make_machine):
    a, b = make_machine(), make_machine()
    for m, values in ((a, (10, 20)), (b, (1000, 2000))):
        m.load("long64")
        m.vm.write(DATA_IN, struct.pack("<3Q", 2, *values))
    runners = [Runner(a.vcpu()), Runner(b.vcpu())]
    for r in runners:
        r.start()
    for r in runners:
        r.join(10)
    assert [r.exit.data for r in runners] == [b"\x64", b"\x64"]
    assert counter(a.vm) == 30 and counter(b.vm) == 3000
    assert runners[0].vcpu.regs.rbx == 30
    assert runners[1].vcpu.regs.rbx == 3000
