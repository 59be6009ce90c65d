"""Python port-I/O and MMIO handlers: sizes, string I/O, unclaimed exits,
handlers that end the run, and handlers that fail."""

import errno
import struct
import threading

import pytest

import hvcore
from conftest import (DATA_IN, DATA_OUT, MMIO_HANDLED, MMIO_UNCLAIMED,
                      PORT_DATA, PORT_DONE, PORT_SMP, PORT_STRING,
                      PORT_UNCLAIMED_IN, PORT_UNCLAIMED_OUT, run_done)


class Log:
    def __init__(self):
        self.pio_out = []   # (value, size)
        self.pio_in = 0
        self.outs = bytearray()
        self.ins = 0
        self.mmio_w = []    # (offset, size, value)
        self.mmio_r = 0
        self.mmio_regs = bytearray(16)
        self.vcpus = set()

    def data_port(self, vcpu, offset, data, size, is_write):
        """Reads are answered with an int."""
        self.vcpus.add(vcpu)
        assert offset == 0
        if is_write:
            assert isinstance(data, bytes) and len(data) == size
            self.pio_out.append((int.from_bytes(data, "little"), size))
            return None
        assert isinstance(data, bytearray) and data == bytes(size)
        self.pio_in += 1
        return {1: 0xA1, 2: 0xB2B2, 4: 0xC4C4C4C4}[size]

    def string_port(self, vcpu, offset, data, size, is_write):
        """Reads are answered with bytes."""
        assert (offset, size) == (0, 1)
        if is_write:
            self.outs += data
            return 0  # anything but IO_EXIT is ignored for a write
        value = bytes([0xE0 + self.ins])
        self.ins += 1
        return value

    def mmio(self, vcpu, offset, data, size, is_write):
        """Reads fill the buffer in place and return None."""
        assert offset + size <= len(self.mmio_regs)
        if is_write:
            self.mmio_w.append((offset, size, int.from_bytes(data, "little")))
            self.mmio_regs[offset:offset + size] = data
        else:
            data[:] = self.mmio_regs[offset:offset + size]
            self.mmio_r += 1


def test_every_size_string_mmio_and_unclaimed(machine):
    m = machine
    m.load("io64")
    msg = b"string-io-bytes!"
    m.vm.write(DATA_IN, msg)
    log = Log()
    m.vm.add_io_handler("pio", PORT_DATA, 4, log.data_port)
    m.vm.add_io_handler(hvcore.IoSpace.PIO, PORT_STRING, 1, log.string_port)
    m.vm.add_io_handler("mmio", MMIO_HANDLED, 0x1000, log.mmio)
    vcpu = m.vcpu()

    # 1. unclaimed OUT: everything before it was served in Python
    exit = vcpu.run()
    assert exit.reason == hvcore.ExitReason.PIO and not exit.handled
    assert exit.flags == 0
    assert (exit.port, exit.is_write, exit.size, exit.count) == \
        (PORT_UNCLAIMED_OUT, True, 1, 1)
    assert exit.data == b"\xa5" and exit.value == 0xA5
    with pytest.raises(hvcore.HvError) as info:
        vcpu.complete_io(b"x")  # nothing to complete
    assert info.value.errno == errno.EINVAL
    assert log.vcpus == {vcpu}, "handlers get the VCPU object"
    assert log.pio_out == [(0x11, 1), (0x2222, 2), (0x33333333, 4)]
    assert log.pio_in == 3
    assert bytes(log.outs) == msg and log.ins == 16
    assert log.mmio_w == [(0, 1, 0x44), (2, 2, 0x5555), (4, 4, 0x66666666),
                          (8, 8, 0x7777777777777777)]
    assert log.mmio_r == 4

    # 2. unclaimed 2-byte IN, completed with an int
    exit = vcpu.run()
    assert (exit.port, exit.is_write, exit.size) == \
        (PORT_UNCLAIMED_IN, False, 2)
    assert exit.is_read and exit.data == b"\xff\xff"
    with pytest.raises(hvcore.HvError) as info:
        vcpu.complete_io(b"abcd")
    assert "2 bytes" in info.value.message
    with pytest.raises(ValueError):
        vcpu.complete_io(0x10000)
    vcpu.complete_io(0xABCD)

    # 3. unclaimed 8-byte MMIO read, completed with bytes
    exit = vcpu.run()
    assert exit.reason == hvcore.ExitReason.MMIO
    assert (exit.addr, exit.is_write, exit.size) == (MMIO_UNCLAIMED, False, 8)
    vcpu.complete_io(struct.pack("<Q", 0x0102030405060708))

    # 4. unclaimed 4-byte MMIO write
    exit = vcpu.run()
    assert (exit.addr, exit.is_write, exit.size, exit.value) == \
        (MMIO_UNCLAIMED, True, 4, 0xDEADBEEF)
    assert vcpu.exit == exit, "vcpu.exit is the same record"

    # 5. unclaimed 4-byte IN left uncompleted: reads all-ones
    exit = vcpu.run()
    assert (exit.port, exit.size) == (PORT_UNCLAIMED_IN, 4)

    assert run_done(vcpu) == 0x10
    out = m.vm.read(DATA_OUT, 68)
    assert out[0] == 0xA1
    assert struct.unpack_from("<HI", out, 2) == (0xB2B2, 0xC4C4C4C4)
    assert out[16:32] == bytes(range(0xE0, 0xF0))
    assert struct.unpack_from("<BxHIQ", out, 32) == \
        (0x44, 0x5555, 0x66666666, 0x7777777777777777)
    assert struct.unpack_from("<H", out, 48)[0] == 0xABCD
    assert struct.unpack_from("<Q", out, 56)[0] == 0x0102030405060708
    assert struct.unpack_from("<I", out, 64)[0] == 0xFFFFFFFF


def test_unclaimed_string_io_is_completed_by_the_caller(machine):
    """Without a handler on PORT_STRING, rep outsb/insb come back to the
    caller (KVM: one or more elements per exit); each IN is completed with
    exactly size * count bytes."""
    m = machine
    m.load("io64")
    msg = b"string-io-bytes!"
    m.vm.write(DATA_IN, msg)
    log = Log()
    m.vm.add_io_handler("pio", PORT_DATA, 4, log.data_port)
    m.vm.add_io_handler("mmio", MMIO_HANDLED, 0x1000, log.mmio)
    vcpu = m.vcpu()
    written = b""
    while len(written) < 16:
        exit = vcpu.run()
        assert (exit.port, exit.size, exit.is_write) == (PORT_STRING, 1, True)
        assert len(exit.data) == exit.count
        written += exit.data
    assert written == msg
    supplied = 0
    while supplied < 16:
        exit = vcpu.run()
        assert (exit.port, exit.size, exit.is_write) == \
            (PORT_STRING, 1, False)
        assert exit.data == b"\xff" * exit.count
        vcpu.complete_io(bytes(range(0x40 + supplied,
                                     0x40 + supplied + exit.count)))
        supplied += exit.count
    assert vcpu.run().port == PORT_UNCLAIMED_OUT
    assert m.vm.read(DATA_OUT + 16, 16) == bytes(range(0x40, 0x50))


def test_handler_can_end_the_run(machine):
    m = machine
    m.load("long64")
    m.vm.write(DATA_IN, bytes(8))
    seen = []

    def done(vcpu, offset, data, size, is_write):
        seen.append(data[0])
        return hvcore.IO_EXIT

    m.vm.add_io_handler("pio", PORT_DONE, 1, done)
    exit = m.vcpu().run()
    assert exit.reason == hvcore.ExitReason.PIO
    assert exit.handled and exit.flags == hvcore.ExitFlags.HANDLED
    assert seen == [0x64]


def test_read_handler_returning_one_supplies_data(machine):
    """IO_EXIT is recognised by identity: the number 1 is data."""
    m = machine
    m.load("io64")
    m.vm.add_io_handler("pio", PORT_DATA, 4, lambda *a: 1)
    m.vm.add_io_handler("pio", PORT_STRING, 1, lambda *a: None)
    m.vm.add_io_handler("mmio", MMIO_HANDLED, 0x1000, lambda *a: None)
    exit = m.vcpu().run()
    assert exit.port == PORT_UNCLAIMED_OUT, "the run went on"
    out = m.vm.read(DATA_OUT, 32)
    assert out[0] == 1 and struct.unpack_from("<HI", out, 2) == (1, 1)
    assert out[16:32] == bytes(16), "None: the zero-filled buffer"


class GuestDeviceError(Exception):
    pass


def test_handler_exception_surfaces_from_run(machine):
    m = machine
    m.load("long64")
    calls = []

    def broken(vcpu, offset, data, size, is_write):
        calls.append(offset)
        raise GuestDeviceError("device on fire")

    m.vm.add_io_handler("pio", 0xF0, 8, broken)
    vcpu = m.vcpu()
    with pytest.raises(GuestDeviceError, match="device on fire") as info:
        vcpu.run()
    cause = info.value.__cause__
    assert isinstance(cause, hvcore.HvError)
    assert cause.errno == errno.EIO and cause.function == "hvc_vcpu_run"
    assert "port handler at 0xf0" in cause.message
    assert "0xf4" in cause.message
    assert calls == [4]
    # the exception is not raised again, and the VM stays usable
    m.vm.remove_io_handler("pio", 0xF0)
    m.vm.add_io_handler("pio", PORT_DONE, 1, lambda *a: hvcore.IO_EXIT)
    assert m.vm.read(0x8000, 1)
    assert not m.vm.closed


def test_handler_oserror_passes_its_errno(machine):
    m = machine
    m.load("long64")

    def gone(vcpu, offset, data, size, is_write):
        raise OSError(errno.ENODEV, "no such device")

    m.vm.add_io_handler("pio", PORT_DONE, 1, gone)
    with pytest.raises(OSError) as info:
        m.vcpu().run()
    assert info.value.errno == errno.ENODEV
    assert info.value.__cause__.errno == errno.ENODEV


@pytest.mark.parametrize("result, error", [
    (0x100, ValueError),          # does not fit a 1-byte read
    (b"\x01\x02", ValueError),    # 2 bytes for a 1-byte read
    ("a", TypeError),             # not data
    (1.0, TypeError),
])
def test_bad_read_results_surface_from_run(machine, result, error):
    m = machine
    m.load("io64")
    m.vm.add_io_handler("pio", PORT_DATA, 4, lambda *a: result)
    with pytest.raises(error):
        m.vcpu().run()


def test_handler_sees_guest_memory_and_cannot_deadlock(machine):
    """From a handler: memory accessors work; pause, close and handler
    (de)registration of the same VM are refused, not hung."""
    m = machine
    m.load("long64")
    m.vm.write(DATA_IN, struct.pack("<2Q", 1, 5))
    results = {}

    def reentrant(vcpu, offset, data, size, is_write):
        results["memory"] = m.vm.read(DATA_OUT, 8)
        results["rbx"] = vcpu.regs.rbx
        for name, call in [("pause", m.vm.pause), ("close", m.vm.close),
                           ("add", lambda: m.vm.add_io_handler(
                               "pio", 0x500, 1, print)),
                           ("remove", lambda: m.vm.remove_io_handler(
                               "pio", PORT_DONE))]:
            try:
                call()
            except hvcore.HvError as err:
                results[name] = err.errno
        return hvcore.IO_EXIT

    m.vm.add_io_handler("pio", PORT_DONE, 1, reentrant)
    assert m.vcpu().run().handled
    assert results["memory"] == struct.pack("<Q", 5)
    assert results["rbx"] == 5
    assert results["pause"] == errno.EDEADLK
    assert results["close"] == errno.EBUSY
    assert results["add"] == errno.EDEADLK
    assert results["remove"] == errno.EDEADLK


def test_registration_checks(machine):
    vm = machine.vm

    def nop(*args):
        return None

    vm.add_io_handler("pio", 0x3F8, 8, nop)
    with pytest.raises(hvcore.HvError) as info:
        vm.add_io_handler("pio", 0x3FC, 8, nop)
    assert info.value.errno == errno.EEXIST
    assert "0x3f8" in info.value.message
    with pytest.raises(hvcore.HvError) as info:
        vm.add_io_handler("pio", 0xFFF0, 0x20, nop)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(hvcore.HvError) as info:
        vm.add_io_handler("mmio", 0x1000, 0, nop)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ValueError, match="unknown I/O space"):
        vm.add_io_handler("dma", 0, 1, nop)
    with pytest.raises(ValueError, match="unknown I/O space"):
        vm.add_io_handler(2, 0, 1, nop)
    with pytest.raises(TypeError, match="callable"):
        vm.add_io_handler("pio", 0x500, 1, None)
    with pytest.raises(ValueError):
        vm.add_io_handler("pio", -1, 1, nop)
    vm.add_io_handler("mmio", 0x3F8, 8, nop)  # the other space is separate
    assert [(s, b, n) for s, b, n, _ in vm.io_handlers] == \
        [(hvcore.IoSpace.PIO, 0x3F8, 8), (hvcore.IoSpace.MMIO, 0x3F8, 8)]
    with pytest.raises(hvcore.HvError) as info:
        vm.remove_io_handler("pio", 0x3F9)
    assert info.value.errno == errno.ENOENT
    vm.remove_io_handler("pio", 0x3F8)
    with pytest.raises(hvcore.HvError):
        vm.remove_io_handler("pio", 0x3F8)
    vm.add_io_handler("pio", 0x3FC, 4, nop)


def test_access_straddling_a_range_is_unclaimed(machine):
    m = machine
    m.load("io64")
    log = Log()
    m.vm.add_io_handler("pio", PORT_DATA, 1, log.data_port)
    exit = m.vcpu().run()
    assert (exit.port, exit.size) == (PORT_DATA, 2)
    assert log.pio_out == [(0x11, 1)]


def test_four_vcpus_on_four_threads(machine):
    """Python handlers called concurrently from four vCPU threads."""
    m = machine
    m.load("smp64")
    ncpu = 4
    lock = threading.Lock()
    counts = [0] * ncpu
    expected = [0] * ncpu
    errors = []

    def smp_port(vcpu, offset, data, size, is_write):
        value = int.from_bytes(data, "little")
        cpu, i = value >> 16, value & 0xFFFF
        with lock:
            if (size, is_write, cpu) != (4, True, vcpu.id) or \
                    i != expected[cpu]:
                errors.append((vcpu.id, value))
            expected[cpu] = i + 1
            counts[cpu] += 1

    m.vm.add_io_handler("pio", PORT_SMP, 4, smp_port)
    vcpus = [m.vcpu(i) for i in range(ncpu)]
    for i, vcpu in enumerate(vcpus):
        vcpu.regs.rdi = i
    status = [None] * ncpu

    def runner(i):
        status[i] = run_done(vcpus[i])

    threads = [threading.Thread(target=runner, args=(i,))
               for i in range(ncpu)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert status == list(range(ncpu))
    assert counts == [1000] * ncpu and not errors
    for i in range(ncpu):
        assert struct.unpack("<Q", m.vm.read(DATA_OUT + 8 * i, 8))[0] == 1000
