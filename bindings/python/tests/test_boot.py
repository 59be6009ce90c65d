"""Booting the C build's kernels through vm.load_kernel() + vcpu.boot(),
with the platform devices and a UART captured in Python (the Python twin
of tests/test_boot.c, which does the same through hvrun); ACPI tables."""

import errno
import struct
import threading

import pytest

import hvcore
from conftest import build_dir, guest_dir

MIB = 1 << 20


def kernel(name):
    path = guest_dir() / name
    if not path.is_file():
        pytest.fail(f"{path} not found: build the C tree first")
    return path


class Board:
    """A PC like hvrun's: RAM, UART -> Python, debug-exit, i8042, CMOS,
    port 0x80 and ACPI tables."""

    def __init__(self, hv, mem_mib=64, cpus=1):
        self.vm = hv.create_vm(max_vcpus=cpus)
        self.vm.add_memory(0, mem_mib * MIB)
        self.console = bytearray()
        self.serial = self.vm.add_serial(output=self.console.extend,
                                         name="com1")
        self.vm.add_debug_exit(0xF4)
        self.vm.add_i8042()
        self.vm.add_cmos()
        self.vm.add_port80()
        self.rsdp = self.vm.build_acpi(
            [hvcore.AcpiDevice("PNP0501", "pio", 0x3F8, 8, irq=4)],
            nr_cpus=cpus)

    @property
    def text(self):
        return self.console.decode("latin-1")

    def run(self, vcpu, timeout=20):
        """Runs the boot vCPU to a power-off; returns exit.code."""
        timer = threading.Timer(timeout, vcpu.kick)
        timer.start()
        try:
            while True:
                exit = vcpu.run()
                if exit.reason == hvcore.ExitReason.POWEROFF:
                    assert exit.handled
                    return exit.code
                assert exit.reason in (hvcore.ExitReason.PIO,
                                       hvcore.ExitReason.MMIO), \
                    (exit, self.text)
        finally:
            timer.cancel()


@pytest.fixture
def board(hv):
    made = []

    def make(**kwargs):
        made.append(Board(hv, **kwargs))
        return made[-1]

    yield make
    for b in made:
        b.vm.close()


def test_pvh_elf32_boots_with_serial_and_debug_exit(board):
    b = board(mem_mib=64)
    assert b.rsdp == 0xE0000
    info = b.vm.load_kernel(kernel("pvh32.elf"),
                            cmdline="console=ttyS0 hello pvh",
                            initrd=b"INITRD-CONTENTS!and more",
                            acpi_rsdp=b.rsdp)
    assert isinstance(info, hvcore.BootInfo)
    assert info.format == hvcore.KernelFormat.ELF
    assert info.protocol == hvcore.BootProtocol.PVH
    assert info.mode == hvcore.X86Mode.PROTECTED32
    assert info.initrd_size == 24 and info.initrd_address
    assert b.vm.read(info.cmdline_address, 23) == b"console=ttyS0 hello pvh"
    vcpu = b.vm.vcpu(0)
    vcpu.boot(info)
    assert b.run(vcpu) == 33, b.text
    assert "magic ok version 1" in b.text
    assert "pvh: cmdline: [console=ttyS0 hello pvh]" in b.text
    assert "pvh: rsdp 0xe0000 signature ok" in b.text
    assert "pvh: modules 1 size 24 first bytes [INITRD-CONTENTS!]" in b.text
    assert "pvh: ram KiB 65151" in b.text


def test_elf64_linux_boot_protocol_from_bytes(board, tmp_path):
    b = board(mem_mib=128)
    image = kernel("linux64.elf").read_bytes()
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"ramdisk-bytes-0123456789")
    info = b.vm.load_kernel(bytearray(image), initrd=initrd,
                            cmdline="root=/dev/vda quiet", format="elf",
                            acpi_rsdp=b.rsdp)
    assert info.protocol == hvcore.BootProtocol.LINUX64
    vcpu = b.vm.vcpu(0)
    vcpu.boot(info)
    assert b.run(vcpu) == 64, b.text
    assert "HdrS ok loader 0xff" in b.text
    assert "linux64: cmdline: [root=/dev/vda quiet]" in b.text
    assert "linux64: rsdp 0xe0000" in b.text
    assert "linux64: initrd 24 bytes [ramdisk-bytes-01]" in b.text
    assert "linux64: ram KiB 130687" in b.text


def test_bzimage(board):
    b = board(mem_mib=64)
    info = b.vm.load_kernel(kernel("bzimage64.bin"),
                            cmdline="console=ttyS0 bz test")
    assert info.format == hvcore.KernelFormat.BZIMAGE
    vcpu = b.vm.vcpu(0)
    vcpu.boot(info)
    assert b.run(vcpu) == 0x42, b.text
    assert "bzImage: cmdline: [console=ttyS0 bz test]" in b.text


def test_load_errors_leave_memory_alone(board):
    b = board(mem_mib=16)
    with pytest.raises(hvcore.HvError) as err:
        b.vm.load_kernel(b"\x7fNOT an image at all" * 10)
    assert err.value.errno == errno.ENOEXEC
    assert err.value.function == "hvc_vm_load_kernel"
    with pytest.raises(hvcore.HvError) as err:
        b.vm.load_kernel(b"\x90" * 64, format="raw", raw_address=64 * MIB)
    assert err.value.errno == errno.EFAULT and err.value.message
    with pytest.raises(ValueError):
        b.vm.load_kernel(b"", format="coff")
    with pytest.raises(FileNotFoundError):
        b.vm.load_kernel("/nonexistent/kernel")


def test_raw_image_boots_flat(board):
    b = board(mem_mib=4)
    hello = build_dir() / "examples" / "guests" / "hello.bin"
    if not hello.is_file():
        pytest.fail(f"{hello} not found: build the C tree first")
    seen = bytearray()
    b.vm.add_io_handler("pio", 0xE9, 1, lambda v, o, d, s, w:
                        seen.extend(d) if w else None)
    info = b.vm.load_kernel(hello, format="raw", raw_address=0x8000,
                            raw_mode="long64")
    assert info.protocol == hvcore.BootProtocol.FLAT
    assert info.entry == 0x8000
    vcpu = b.vm.vcpu(0)
    vcpu.boot(info)
    assert b.run(vcpu) == 0
    assert b"hello" in seen.lower()


def test_acpi_tables_and_their_errors(hv):
    with hv.create_vm() as vm:
        vm.add_memory(0, 2 * MIB)
        rsdp = vm.build_acpi(
            [{"hid": "PNP0501", "space": "pio", "base": 0x3F8, "length": 8,
              "irq": 4},
             hvcore.AcpiDevice("LNRO0005", "mmio", 0xD0000000, 0x200, irq=5,
                               level=True)], nr_cpus=2)
        raw = vm.read(rsdp, 36)
        assert raw[:8] == b"RSD PTR "
        assert sum(raw[:20]) % 256 == 0 and sum(raw) % 256 == 0
        xsdt = struct.unpack_from("<Q", raw, 24)[0]
        assert vm.read(xsdt, 4) == b"XSDT"
        with pytest.raises(hvcore.HvError) as err:
            vm.build_acpi(nr_cpus=0)
        assert err.value.errno == errno.EINVAL
        with pytest.raises(hvcore.HvError) as err:
            vm.build_acpi([hvcore.AcpiDevice("TOOLONGHID", "pio", 0, 1)])
        assert err.value.errno == errno.EINVAL and "0" in err.value.message
        with pytest.raises(hvcore.HvError) as err:
            vm.build_acpi(address=0x10000, length=64)
        assert err.value.errno == errno.ENOSPC
    assert hvcore._structs.ABI_SIZES[hvcore._structs.AcpiDevice] == 64


def test_platform_devices_are_listed_and_owned_by_the_vm(hv):
    vm = hv.create_vm()
    vm.add_memory(0, 2 * MIB)
    serial = vm.add_serial(name="ttyS0")
    dbg = vm.add_debug_exit()
    vm.add_cmos()
    assert isinstance(serial, hvcore.Serial)
    assert [d.name for d in vm.devices][:2] == ["ttyS0", dbg.name]
    assert vm.find_device("ttyS0") == serial
    assert serial.type == "16550a"
    assert serial.receive(b"abc") == 1  # FIFOs off after reset: 1 byte
    with pytest.raises(hvcore.HvError) as err:
        vm.find_device("nope")
    assert err.value.errno == errno.ENOENT
    with pytest.raises(hvcore.HvError) as err:
        vm.add_serial(name="ttyS0", port=0x2F8, irq=3)
    assert err.value.errno == errno.EEXIST
    vm.reset_devices()
    dbg.close()
    dbg.close()  # idempotent
    assert dbg.closed and dbg not in vm.devices
    vm.close()
    assert serial.closed
    with pytest.raises(hvcore.ClosedError):
        serial.receive(b"x")
    with pytest.raises(hvcore.ClosedError):
        serial.save_state()
    serial.close()
