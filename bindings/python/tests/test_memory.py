"""Memory regions, views over guest RAM, and the accessors."""

import errno
import mmap
import os
import struct

import pytest

import hvcore
from conftest import (DATA_IN, DATA_OUT, GUEST_LOAD, MEM_SIZE, read_guest,
                      run_done)


@pytest.fixture
def vm(hv):
    with hv.create_vm() as created:
        yield created


def test_add_find_remove(vm):
    low = vm.add_memory(0, 0x10000)
    high = vm.add_memory(0x100000, 0x4000, readonly=True)
    assert (low.guest_addr, low.length, low.end) == (0, 0x10000, 0x10000)
    assert high.readonly and high.flags == hvcore.MemoryFlags.READONLY
    assert not low.readonly
    assert vm.regions == [low, high]
    assert vm.find_memory(0x100fff) == high
    assert vm.find_memory(0x100fff) is high  # one object per region
    assert low.contains(0xfff0, 16) and not low.contains(0xfff0, 17)
    with pytest.raises(hvcore.HvError) as info:
        vm.find_memory(0x20000)
    assert info.value.errno == errno.ENOENT
    assert "0x20000" in info.value.message
    vm.remove_memory(high)
    assert high.closed and vm.regions == [low]
    high.close()  # idempotent
    with pytest.raises(hvcore.HvError):
        vm.find_memory(0x100000)


def test_overlap_is_refused_with_the_message(vm):
    vm.add_memory(0, MEM_SIZE)
    with pytest.raises(hvcore.HvError) as info:
        vm.add_memory(0x1000, 0x2000)
    err = info.value
    assert err.errno == errno.EEXIST
    assert err.strerror == hvcore.strerror(-errno.EEXIST)
    assert err.message == ("memory region 0x1000+0x2000 overlaps region "
                           "0x0+0x400000")
    assert err.function == "hvc_vm_add_memory"
    assert isinstance(err, OSError)


@pytest.mark.parametrize("addr, length, what", [
    (0x1001, 0x1000, "not aligned"),
    (0, 0x1800, "not aligned"),
    (0, 0, "zero length"),
    (1 << 60, 0x1000, "beyond"),
])
def test_bad_regions(vm, addr, length, what):
    with pytest.raises(hvcore.HvError) as info:
        vm.add_memory(addr, length)
    assert info.value.errno == errno.EINVAL
    assert what in info.value.message


def test_bad_arguments_never_reach_c(vm):
    with pytest.raises(ValueError, match="does not fit in 64 bits"):
        vm.add_memory(-4096, 4096)
    with pytest.raises(TypeError):
        vm.add_memory(0)
    with pytest.raises(TypeError):
        vm.add_memory("0", 4096)
    with pytest.raises(ValueError):
        vm.read(0, -1)
    with pytest.raises(TypeError):
        vm.write(0, "text is not bytes")


def test_view_writes_reach_the_guest_and_back(machine):
    """The long64 guest sums qwords the host put through the view, and its
    results appear in the same view."""
    m = machine
    m.load("long64")
    qwords = m.ram.view.cast("Q")
    values = [0x100000000, 0x200000000, 7, 1000]
    qwords[DATA_IN // 8] = len(values)
    qwords[DATA_IN // 8 + 1:DATA_IN // 8 + 1 + len(values)] = \
        memoryview(struct.pack("<4Q", *values)).cast("Q")
    vcpu = m.vcpu()
    assert run_done(vcpu) == 0x64
    assert qwords[DATA_OUT // 8] == sum(values)
    assert qwords[DATA_OUT // 8 + 1] == 3 * sum(values)
    assert vcpu.regs.rbx == sum(values)
    assert m.ram.view[DATA_OUT:DATA_OUT + 8] == struct.pack("<Q", sum(values))
    assert m.vm.read(DATA_OUT, 8) == struct.pack("<Q", sum(values))
    # vm.view() is a window on the same memory
    window = m.vm.view(DATA_OUT, 16)
    assert window.nbytes == 16 and window.cast("Q")[1] == 3 * sum(values)


def test_view_is_writable_and_page_backed(machine):
    view = machine.ram.view
    assert view.nbytes == MEM_SIZE and not view.readonly
    assert view.format == "B"
    view[0x4000:0x4004] = b"\xce\xfa\xed\xfe"
    assert machine.vm.read(0x4000, 4) == b"\xce\xfa\xed\xfe"
    machine.vm.write(0x5000, b"hello")
    assert bytes(view[0x5000:0x5005]) == b"hello"
    assert machine.ram.view is view
    assert machine.vm.host_address(0x5000, 5) == \
        machine.ram.host_address + 0x5000
    fd = machine.ram.fd
    assert fd is not None and os.fstat(fd).st_size == MEM_SIZE


def test_accessors_are_bounds_checked(machine):
    vm = machine.vm
    assert vm.read(MEM_SIZE - 4, 4) == b"\0" * 4
    assert vm.read(0, 0) == b""
    for call in (lambda: vm.read(MEM_SIZE - 4, 8),
                 lambda: vm.write(MEM_SIZE - 2, b"abcd"),
                 lambda: vm.view(MEM_SIZE - 4, 8),
                 lambda: vm.host_address(MEM_SIZE, 1)):
        with pytest.raises(hvcore.HvError) as info:
            call()
        assert info.value.errno == errno.EFAULT
        assert info.value.message
    assert vm.read(MEM_SIZE - 4, 4) == b"\0" * 4, "nothing half-written"


def test_write_accepts_any_bytes_like(machine):
    vm = machine.vm
    vm.write(0x1000, bytearray(b"ab"))
    vm.write(0x1002, memoryview(b"cd"))
    vm.write(0x1004, memoryview(bytearray(b"xxefxx"))[2:4])
    vm.write(0x1006, memoryview(b"g_h_")[::2])  # not contiguous
    vm.write(0x1008, struct.pack("<H", 0x6a69))
    assert vm.read(0x1000, 10) == b"abcdefghij"


def test_caller_supplied_memory(hv):
    """host= an mmap: the guest uses the caller's memory directly."""
    mem = mmap.mmap(-1, MEM_SIZE)
    with hv.create_vm() as vm:
        region = vm.add_memory(0, host=mem)
        assert region.length == MEM_SIZE and region.fd is None
        mem[GUEST_LOAD:GUEST_LOAD + len(read_guest("long64"))] = \
            read_guest("long64")
        struct.pack_into("<4Q", mem, DATA_IN, 3, 100, 20, 3)
        vcpu = vm.vcpu(0)
        vcpu.set_mode("long64", entry=GUEST_LOAD, stack=0x7000,
                      tables=0x100000)
        assert run_done(vcpu) == 0x64
        assert struct.unpack_from("<Q", mem, DATA_OUT)[0] == 123
        assert region.view[DATA_OUT] == 123
        # the region exports the buffer: it cannot be unmapped under the guest
        with pytest.raises(BufferError):
            mem.close()
    # the VM is gone; the memory is still the caller's
    assert struct.unpack_from("<Q", mem, DATA_OUT + 8)[0] == 369
    mem.close()


def test_caller_memory_checks(vm):
    with pytest.raises(ValueError, match="writable"):
        vm.add_memory(0, 4096, host=b"\0" * 4096)
    with pytest.raises(ValueError, match="fewer than"):
        vm.add_memory(0, 8192, host=mmap.mmap(-1, 4096))
    unaligned = memoryview(mmap.mmap(-1, 8192))[1:4097]
    with pytest.raises(hvcore.HvError) as info:
        vm.add_memory(0, 4096, host=unaligned)
    assert info.value.errno == errno.EINVAL
    assert "page-aligned" in info.value.message


def test_readonly_region_guest_writes_exit_as_mmio(machine):
    m = machine
    m.ram.close()
    m.vm.add_memory(0, DATA_OUT)
    rom = m.vm.add_memory(DATA_OUT, 0x10000, readonly=True)
    m.vm.add_memory(DATA_OUT + 0x10000, MEM_SIZE - DATA_OUT - 0x10000)
    marker = struct.pack("<Q", 0x0123456789ABCDEF)
    m.vm.write(DATA_OUT, marker)  # the host may write a ROM
    m.load("long64")
    m.vm.write(DATA_IN, struct.pack("<2Q", 1, 42))
    exit = m.vcpu().run()
    assert exit.reason == hvcore.ExitReason.MMIO
    assert (exit.addr, exit.size, exit.is_write) == (DATA_OUT, 8, True)
    assert exit.value == 42 and exit.space == hvcore.IoSpace.MMIO
    assert rom.view[:8] == marker, "the guest's write must not reach ROM"


def test_views_stay_safe_after_close(machine):
    """A view kept past its region is detached memory, never a crash."""
    view = machine.ram.view
    window = view[DATA_OUT:DATA_OUT + 8]
    qwords = view.cast("Q")
    machine.vm.write(DATA_OUT, b"12345678")
    machine.vm.close()
    with pytest.raises(hvcore.ClosedError, match="memory region .* closed"):
        machine.ram.view
    with pytest.raises(ValueError, match="released"):
        view[0]
    assert bytes(window) == b"12345678"
    window[:] = b"87654321"  # reaches nothing, harms nothing
    qwords[0] = 5
    assert qwords[0] == 5
