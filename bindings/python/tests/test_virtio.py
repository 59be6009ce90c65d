"""virtio-mmio devices driven from the host like tests/test_virtio.c: the
mmio_script guest performs the register accesses a driver would, the test
builds the rings in guest memory."""

import errno
import os
import struct

import pytest

import hvcore
from conftest import DATA_IN, run_done

BASE = 0xD0000000
IRQ = 5
DESC, AVAIL, USED, BUF = 0x200000, 0x201000, 0x202000, 0x210000
QSIZE = 8
WRITE, READ, END, WAIT16 = 0, 1, 2, 3


class Driver:
    """Runs scripts of (addr, value, size, op) on the mmio_script guest."""

    def __init__(self, machine):
        self.m = machine
        machine.load("mmio_script")

    def run(self, ops):
        ops = list(ops) + [(0, 0, 0, END)]
        self.m.vm.write(DATA_IN, b"".join(struct.pack("<QQII", *o)
                                          for o in ops))
        assert run_done(self.m.vcpu()) == 0x5C
        raw = self.m.vm.read(DATA_IN, 24 * len(ops))
        values = [struct.unpack_from("<QQII", raw, 24 * i)[1]
                  for i in range(len(ops))]
        for op, value in zip(ops, values):
            assert not (op[3] == WAIT16 and value == 0xDEAD), "wait timed out"
        return values

    def init(self):
        w = [(0x070, 0), (0x070, 1), (0x070, 3), (0x024, 1), (0x020, 1),
             (0x024, 0), (0x020, 0), (0x070, 0xB)]
        ops = [(BASE + r, v, 4, WRITE) for r, v in w]
        for r, v in [(0x030, 0), (0x038, QSIZE), (0x080, DESC), (0x084, 0),
                     (0x090, AVAIL), (0x094, 0), (0x0A0, USED), (0x0A4, 0),
                     (0x044, 1), (0x070, 0xF)]:
            ops.append((BASE + r, v, 4, WRITE))
        ops.append((BASE + 0x070, 0, 4, READ))
        assert self.run(ops)[-2] == 0xF

    def registers(self, base=BASE):
        return self.run([(base + r, 0, 4, READ) for r in (0, 4, 8)])[:3]


def make_disk(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"".join(bytes([i]) * 512 for i in range(64)))
    return path


def test_blk_read_request_and_state_round_trip(machine, tmp_path):
    vm = machine.vm
    path = make_disk(tmp_path)
    dev = vm.add_virtio_blk(path, base=BASE, irq=IRQ, serial="SER-1",
                            name="vda")
    assert (dev.name, dev.type) == ("vda", "virtio-blk")
    drv = Driver(machine)
    assert drv.registers() == [0x74726976, 2, 2]  # "virt", v2, block
    drv.init()
    # read sector 9: header, data (device-writable), status
    vm.write(BUF, struct.pack("<IIQ", 0, 0, 9))
    vm.write(DESC, struct.pack("<QIHH", BUF, 16, 1, 1)
             + struct.pack("<QIHH", 0x300000, 512, 3, 2)
             + struct.pack("<QIHH", BUF + 0x80, 1, 2, 0))
    vm.write(BUF + 0x80, b"\xee")
    vm.write(AVAIL + 4, struct.pack("<H", 0))
    vm.write(AVAIL + 2, struct.pack("<H", 1))
    drv.run([(BASE + 0x050, 0, 4, WRITE), (USED + 2, 1, 2, WAIT16)])
    assert vm.read(BUF + 0x80, 1) == b"\x00"
    assert vm.read(0x300000, 512) == bytes([9]) * 512
    with vm.paused():
        record = dev.save_state()
    with hvcore.Hypervisor("kvm") as hv2, hv2.create_vm() as vm2:
        vm2.add_memory(0, 4 << 20)
        copy = vm2.add_virtio_blk(path, base=BASE, irq=IRQ)
        copy.load_state(record)
        rng = vm2.add_virtio_rng(base=BASE + 0x200, irq=6)
        with pytest.raises(hvcore.HvError) as err:
            rng.load_state(record)
        assert err.value.errno == errno.EINVAL
        assert "virtio-blk" in err.value.message
        bad = bytearray(record)
        bad[-3] ^= 0x40
        with pytest.raises(hvcore.HvError) as err:
            copy.load_state(bad)
        assert err.value.errno == errno.EBADMSG


def test_blk_from_an_fd_readonly(machine, tmp_path):
    path = make_disk(tmp_path)
    with open(path, "rb") as f:
        dev = machine.vm.add_virtio_blk(fd=f, base=BASE, irq=IRQ,
                                        readonly=True)
        drv = Driver(machine)
        features = drv.run([(BASE + 0x014, 0, 4, WRITE),
                            (BASE + 0x010, 0, 4, READ)])[1]
        assert features & (1 << 5)  # VIRTIO_BLK_F_RO
        dev.close()


def test_rng_console_cmdline_and_errors(machine, tmp_path):
    vm = machine.vm
    assert vm.virtio_cmdline() == ""
    rng = vm.add_virtio_rng(base=BASE, irq=IRQ)
    assert rng.name == "virtio-rng0" and rng.type == "virtio-rng"
    out = []
    r, w = os.pipe()
    try:
        con = vm.add_virtio_console(base=BASE + 0x200, irq=6,
                                    output=out.append, input_fd=r,
                                    name="hvc0")
        assert con.type == "virtio-console"
        drv = Driver(machine)
        assert drv.registers(BASE)[2] == 4
        assert drv.registers(BASE + 0x200)[2] == 3
        assert vm.virtio_cmdline() == (
            "virtio_mmio.device=512@0xd0000000:5 "
            "virtio_mmio.device=512@0xd0000200:6")
        with pytest.raises(hvcore.HvError) as err:
            vm.add_virtio_rng(base=0x100000, irq=7)  # inside RAM
        assert err.value.errno == errno.EEXIST
        assert "overlaps RAM" in err.value.message
        with pytest.raises(hvcore.HvError) as err:
            vm.add_virtio_rng(base=BASE + 0x410, irq=7)
        assert err.value.errno == errno.EINVAL
        with pytest.raises(hvcore.HvError) as err:
            vm.add_virtio_rng(base=BASE, irq=7)
        assert err.value.errno == errno.EEXIST
        with pytest.raises(hvcore.HvError) as err:
            vm.add_virtio_blk("/nonexistent/disk.img", base=BASE + 0x400,
                              irq=7)
        assert err.value.errno == errno.ENOENT
        assert "/nonexistent/disk.img" in err.value.message
        with pytest.raises(TypeError):
            vm.add_virtio_blk(base=BASE + 0x400, irq=7)
        with vm.paused():
            assert con.save_state()
            assert rng.save_state()
        vm.close()
        assert con.closed and rng.closed
    finally:
        os.close(r)
        os.close(w)


def test_blk_confined_to_a_grant(machine, tmp_path):
    vm = machine.vm
    path = make_disk(tmp_path)
    dev = vm.add_virtio_blk(path, base=BASE, irq=IRQ)
    assert dev.grants == dev.ALL_RAM
    with pytest.raises(hvcore.HvError) as err:
        dev.grants = [(0x1000, 0)]
    assert err.value.errno == errno.EINVAL
    dev.grants = [(0x200000, 0x10000), (0x210000, 0x10000)]  # merged
    assert dev.grants == [(0x200000, 0x20000)]
    drv = Driver(machine)
    drv.init()
    # write sector 9 from outside the window: IOERR, the disk unchanged
    vm.write(BUF, struct.pack("<IIQ", 1, 0, 9))
    vm.write(0x300000, b"\x55" * 512)
    vm.write(DESC, struct.pack("<QIHH", BUF, 16, 1, 1)
             + struct.pack("<QIHH", 0x300000, 512, 1, 2)
             + struct.pack("<QIHH", BUF + 0x80, 1, 2, 0))
    vm.write(BUF + 0x80, b"\xee")
    vm.write(AVAIL + 4, struct.pack("<H", 0))
    vm.write(AVAIL + 2, struct.pack("<H", 1))
    before = dev.grant_refusals
    drv.run([(BASE + 0x050, 0, 4, WRITE), (USED + 2, 1, 2, WAIT16)])
    assert vm.read(BUF + 0x80, 1) == b"\x01"  # VIRTIO_BLK_S_IOERR
    assert dev.grant_refusals > before
    assert path.read_bytes()[9 * 512:10 * 512] == bytes([9]) * 512
    # the device-side accessors obey the grant too
    assert dev.dma_read(BUF, 4) == struct.pack("<I", 1)
    with pytest.raises(hvcore.HvError) as err:
        dev.dma_read(0x300000, 4)
    assert err.value.errno == errno.EFAULT
    with pytest.raises(hvcore.HvError) as err:
        dev.dma_write(0x300000, b"x")
    assert vm.read(0x300000, 1) == b"\x55"
    with vm.paused():
        record = dev.save_state()
    with hvcore.Hypervisor("kvm") as hv2, hv2.create_vm() as vm2:
        vm2.add_memory(0, 4 << 20)
        copy = vm2.add_virtio_blk(path, base=BASE, irq=IRQ)
        copy.load_state(record)
        assert copy.grants == [(0x200000, 0x20000)]


def test_virtio_net_refuses_missing_and_non_taps(machine):
    """A tap that does not exist, or a descriptor that is no tap, is
    refused with its errno and nothing is attached."""
    vm = machine.vm
    with pytest.raises(hvcore.HvError) as e:
        vm.add_virtio_net("hvcnosuch0", base=BASE + 0x600, irq=9)
    assert e.value.errno == errno.ENODEV
    assert "hvcnosuch0" in str(e.value)
    with open("/dev/null", "rb") as f:
        with pytest.raises(hvcore.HvError) as e:
            vm.add_virtio_net(fd=f, base=BASE + 0x600, irq=9)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        vm.add_virtio_net("x", base=BASE + 0x600, irq=9, mac="52:54")
    with pytest.raises(TypeError):
        vm.add_virtio_net(base=BASE + 0x600, irq=9)
