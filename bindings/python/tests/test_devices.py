"""Devices written in Python (hvc_vm_add_device with Python callbacks),
their state records, callback errors, doorbells, watched fds, interrupt
eventfds and vcpu.request_exit()."""

import errno
import gc
import os
import struct
import threading
import time

import pytest

import hvcore
from conftest import (DATA_IN, GUEST_LOAD, GUEST_STACK, GUEST_TABLES,
                      build_dir, run_done)

PORT = 0x510


class Accumulator(hvcore.DeviceModel):
    """examples/device.c's accumulator: write port+0 adds, read port+0 is
    the sum, port+4 the count."""

    type = "accumulator"

    def __init__(self):
        self.lock = threading.Lock()
        self.sum = self.count = 0
        self.destroyed = 0
        self.vcpus = set()

    def read(self, vcpu, index, offset, size):
        self.vcpus.add(vcpu)
        assert index == 0
        with self.lock:
            return {0: self.sum, 4: self.count}.get(offset, 0)

    def write(self, vcpu, index, offset, data):
        if offset == 0:
            with self.lock:
                self.sum += int.from_bytes(data, "little")
                self.count += 1

    def reset(self):
        with self.lock:
            self.sum = self.count = 0

    def save_state(self):
        with self.lock:
            return struct.pack("<III", 1, self.sum, self.count)

    def load_state(self, data):
        if len(data) != 12:
            raise ValueError(f"state of {len(data)} bytes, not 12")
        version, total, count = struct.unpack("<III", data)
        if version != 1 or (count == 0 and total != 0):
            raise ValueError("impossible accumulator state")
        with self.lock:
            self.sum, self.count = total, count

    def destroy(self):
        self.destroyed += 1


def device_guest():
    path = build_dir() / "examples" / "guests" / "device_guest.bin"
    if not path.is_file():
        pytest.fail(f"{path} not found: build the C tree first")
    return path.read_bytes()


def start(vm, image, vcpu_id=0):
    vm.write(GUEST_LOAD, image)
    vcpu = vm.vcpu(vcpu_id)
    vcpu.set_mode("long64", entry=GUEST_LOAD, stack=GUEST_STACK,
                  tables=GUEST_TABLES)
    return vcpu


def test_python_device_served_to_a_guest_and_state_moved(machine):
    vm = machine.vm
    model = Accumulator()
    dev = vm.add_device(model, [("pio", PORT, 8)], name="acc0")
    assert (dev.name, dev.type, dev.model) == ("acc0", "accumulator", model)
    vm.add_debug_exit(0xF4)
    text = bytearray()
    vm.add_io_handler("pio", 0xE9, 1,
                      lambda v, o, d, s, w: text.extend(d) if w else None)
    vcpu = start(vm, device_guest())
    exit = vcpu.run()
    assert exit.reason == hvcore.ExitReason.POWEROFF and exit.handled
    assert exit.code == 0, text
    assert b"= 5050 (n=100)" in text
    assert (model.sum, model.count) == (5050, 100)
    assert model.vcpus == {vcpu}

    with vm.paused():
        record = dev.save_state()
    assert b"accumulator" in record  # the library's header names the type
    assert struct.pack("<III", 1, 5050, 100) in record
    dev.close()
    assert model.destroyed == 1 and dev.closed
    fresh = Accumulator()
    copy = vm.add_device(fresh, [("pio", PORT, 8)], name="acc1")
    copy.load_state(record)
    assert (fresh.sum, fresh.count) == (5050, 100)
    # a damaged record is refused by the library's CRC check
    bad = bytearray(record)
    bad[-1] ^= 0x40
    with pytest.raises(hvcore.HvError) as err:
        copy.load_state(bad)
    assert err.value.errno == errno.EBADMSG
    assert (fresh.sum, fresh.count) == (5050, 100)
    vm.reset_devices()
    assert (fresh.sum, fresh.count) == (0, 0)
    vm.close()
    assert fresh.destroyed == 1


def test_state_into_another_vm_and_model_refusals(hv):
    records = []
    with hv.create_vm() as vm:
        model = Accumulator()
        model.sum, model.count = 7, 2
        dev = vm.add_device(model, [("pio", PORT, 8)])
        records.append(dev.save_state())
        # a model that refuses: ValueError reaches C as EBADMSG and is
        # re-raised, chained to the library's error
        model.sum, model.count = 9, 0
        odd = dev.save_state()
        with pytest.raises(ValueError, match="impossible") as err:
            dev.load_state(odd)
        assert isinstance(err.value.__cause__, hvcore.HvError)
        assert err.value.__cause__.errno == errno.EBADMSG
    with hv.create_vm() as vm2:
        fresh = Accumulator()
        dev2 = vm2.add_device(fresh, [("pio", PORT, 8)])
        dev2.load_state(records[0])
        assert (fresh.sum, fresh.count) == (7, 2)
        other = vm2.add_debug_exit()
        with pytest.raises(hvcore.HvError) as err:
            other.load_state(records[0])
        assert err.value.errno == errno.EINVAL
        assert other.save_state()[:0] == b""


def test_device_errors_and_ownership(machine):
    vm = machine.vm
    dev = vm.add_device(Accumulator(), [("pio", PORT, 8)], name="a")
    with pytest.raises(hvcore.HvError) as err:
        vm.add_device(Accumulator(), [("pio", PORT + 4, 4)], name="b")
    assert err.value.errno == errno.EEXIST
    with pytest.raises(hvcore.HvError) as err:
        vm.add_device(Accumulator(), [("pio", 0x600, 4)], name="a")
    assert err.value.errno == errno.EEXIST
    with pytest.raises(ValueError):
        vm.add_device(Accumulator(), [])
    with pytest.raises(ValueError):
        vm.add_device(Accumulator(), [("pio", 0x700 + i, 1)
                                      for i in range(17)])
    assert [d.name for d in vm.devices] == ["a"]
    del dev
    gc.collect()
    again = vm.find_device("a")  # the handle is made again
    assert again.model.type == "accumulator"


class Faulty(hvcore.DeviceModel):
    def __init__(self):
        self.fail_reset = False

    def read(self, vcpu, index, offset, size):
        raise KeyError("no such register")

    def write(self, vcpu, index, offset, data):
        raise PermissionError(errno.EACCES, "read-only register")

    def reset(self):
        if self.fail_reset:
            raise RuntimeError("reset failed")

    def destroy(self):
        raise RuntimeError("destroy failed")


def test_model_exceptions_never_reach_c(machine, caplog):
    vm = machine.vm
    model = Faulty()
    dev = vm.add_device(model, [("pio", PORT, 8)])
    vcpu = start(vm, device_guest())  # its first access is a write
    with pytest.raises(PermissionError) as err:
        vcpu.run()
    assert isinstance(err.value.__cause__, hvcore.HvError)
    assert err.value.__cause__.errno == errno.EACCES
    model.fail_reset = True
    with pytest.raises(RuntimeError, match="reset failed"):
        vm.reset_devices()
    with pytest.raises(RuntimeError, match="destroy failed"):
        dev.close()
    assert dev.closed
    assert "destroy failed" in caplog.text
    vm.add_device(Faulty(), [("pio", PORT, 8)])
    vm.close()  # destroy() raises again: logged only


class Poweroff(hvcore.DeviceModel):
    def write(self, vcpu, index, offset, data):
        vcpu.request_exit("poweroff", 0x1234 + data[0])


def test_request_exit_from_a_device(make_machine):
    machine = make_machine(no_irqchip=True)
    vm = machine.vm
    vm.add_device(Poweroff(), [("pio", 0xF4, 1)])
    machine.load("hlt64")
    vcpu = machine.vcpu()
    assert vcpu.run().reason == hvcore.ExitReason.HLT
    exit = vcpu.run()
    assert exit.reason == hvcore.ExitReason.POWEROFF and exit.handled
    assert exit.code == 0x1234 + 0x48
    with pytest.raises(hvcore.HvError) as err:  # not from a callback
        vcpu.request_exit("poweroff")
    assert err.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        vcpu.request_exit("explode")


def script(vm, ops):
    """tests/guests/mmio_script.S: (addr, value, size, op) entries."""
    raw = b"".join(struct.pack("<QQII", *op) for op in ops)
    vm.write(DATA_IN, raw + struct.pack("<QQII", 0, 0, 0, 2))


def test_doorbells_ring_from_guest_writes(machine):
    vm = machine.vm
    rung = []
    event = threading.Event()

    def ring(bell):
        rung.append(threading.current_thread())
        event.set()

    bell = vm.add_doorbell("mmio", 0xE0001000, 4, ring, data=7)
    assert bell == hvcore.Doorbell(hvcore.IoSpace.MMIO, 0xE0001000, 4, 7)
    assert vm.doorbells == [bell]
    with pytest.raises(hvcore.HvError) as err:
        vm.add_doorbell("mmio", 0xE0001000, 4, ring, data=7)
    assert err.value.errno == errno.EEXIST
    with pytest.raises(hvcore.HvError) as err:
        vm.add_doorbell("mmio", 0xE0002000, 3, ring)
    assert err.value.errno == errno.EINVAL
    machine.load("mmio_script")
    script(vm, [(0xE0001000, 7, 4, 0), (0xE0001000, 7, 4, 0)])
    assert run_done(machine.vcpu()) == 0x5C
    assert event.wait(5), "the doorbell never rang"
    assert rung[0] is not threading.current_thread()  # the event thread
    # another value is an ordinary unclaimed access
    script(vm, [(0xE0001000, 8, 4, 0)])
    exit = machine.vcpu().run()
    assert exit.reason == hvcore.ExitReason.MMIO
    assert (exit.addr, exit.value) == (0xE0001000, 8)
    vm.remove_doorbell(bell)
    assert vm.doorbells == []
    with pytest.raises(hvcore.HvError) as err:
        vm.remove_doorbell(bell)
    assert err.value.errno == errno.ENOENT


def test_event_thread_exceptions_are_logged_then_raised_by_run(machine,
                                                               caplog):
    vm = machine.vm
    calls = []

    def bad(bell):
        calls.append(bell)
        raise ZeroDivisionError("in a doorbell")

    vm.add_doorbell("mmio", 0xE0001000, 4, bad)
    machine.load("mmio_script")
    script(vm, [(0xE0001000, 1, 4, 0)])
    vcpu = machine.vcpu()
    assert run_done(vcpu) == 0x5C
    for _ in range(400):
        if "in a doorbell" in caplog.text:
            break
        time.sleep(0.005)
    assert "in a doorbell" in caplog.text
    with pytest.raises(ZeroDivisionError):
        vcpu.run()
    assert vm.callback_errors() == []  # raised once, then cleared
    assert run_done(machine.vcpu()) == 0x5C  # the guest goes on


def test_watch_fd_and_irq_eventfd(machine):
    vm = machine.vm
    r, w = os.pipe()
    got = []
    ready = threading.Event()

    def on_input(fd, events):
        got.append((fd, events, os.read(fd, 64)))
        ready.set()

    with os.fdopen(r, "rb", buffering=0) as reader:
        vm.watch_fd(reader, on_input)
        with pytest.raises(hvcore.HvError) as err:
            vm.watch_fd(r, on_input)
        assert err.value.errno == errno.EEXIST
        os.write(w, b"typed")
        assert ready.wait(5)
        assert got[0] == (r, hvcore.FdEvents.READABLE, b"typed")
        vm.unwatch_fd(reader)
        with pytest.raises(hvcore.HvError) as err:
            vm.unwatch_fd(r)
        assert err.value.errno == errno.ENOENT
    os.close(w)
    with open(__file__, "rb") as regular, pytest.raises(hvcore.HvError) as err:
        vm.watch_fd(regular, on_input)
    assert err.value.errno == errno.EINVAL

    fd = vm.irq_eventfd(5)
    assert fd == vm.irq_eventfd(5) and fd >= 0
    os.write(fd, (1).to_bytes(8, "little"))
    with pytest.raises(hvcore.HvError) as err:
        vm.irq_eventfd(24)
    assert err.value.errno == errno.EINVAL


def test_irq_eventfd_needs_an_irqchip(make_machine):
    m = make_machine(no_irqchip=True)
    with pytest.raises(hvcore.HvError) as err:
        m.vm.irq_eventfd(5)
    assert err.value.errno == errno.ENOTSUP


def test_serial_output_callable_exception_ends_run(machine):
    vm = machine.vm

    def output(data):
        raise OSError(errno.EPIPE, "console went away")

    vm.add_serial(output=output)
    vm.add_debug_exit()
    machine.load("serial_poll")
    with pytest.raises(OSError) as err:
        machine.vcpu().run()
    assert err.value.errno == errno.EPIPE
