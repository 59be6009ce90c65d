"""vCPU modes, registers by name, MSRs, segments, FPU state."""

import errno
import struct

import pytest

import hvcore
from conftest import (DATA_IN, DATA_OUT, GUEST_LOAD, GUEST_STACK,
                      GUEST_TABLES, MEM_SIZE, run_done)


def test_real_mode_guest(machine):
    machine.load("real16")
    machine.vm.write(DATA_IN, struct.pack("<H", 0xBEEF))
    vcpu = machine.vcpu(mode="real")
    assert run_done(vcpu) == 0x16
    assert vcpu.get("rcx") & 0xFFFF == 0x68AC
    assert vcpu.regs.rsi & 0xFFFF == 0xBEEF
    assert vcpu.get("cr0") & 1 == 0, "still in real mode"
    ds = vcpu.get_segment("ds")
    assert (ds.selector, ds.base) == (0x2000, 0x20000)


def test_real_mode_entry_above_64k(machine):
    machine.load("real16", at=0x18000)
    vcpu = machine.vm.vcpu(0)
    vcpu.set_mode(hvcore.X86Mode.REAL, entry=0x18000)
    assert vcpu.get_segment("cs").selector == 0x1000
    assert vcpu.regs.rip == 0x8000
    assert run_done(vcpu) == 0x16


def test_protected32_guest(machine):
    machine.load("prot32")
    machine.vm.write(DATA_IN, struct.pack("<6I", 5, 1, 2, 3, 4, 1000))
    vcpu = machine.vcpu(mode="prot32")
    assert run_done(vcpu) == 0x32
    assert struct.unpack("<I", machine.vm.read(DATA_OUT, 4))[0] == 1010
    assert vcpu.regs.rbx & 0xFFFFFFFF == 1010
    assert vcpu.regs.cr0 & 0x80000001 == 1, "PE, no paging"
    assert vcpu.regs.efer & 0x400 == 0, "not long mode"
    cs = vcpu.get_segment(hvcore.X86Reg.CS)
    assert (cs.selector, cs.db, cs.l) == (0x10, 1, 0)


def test_long64_guest_registers_by_name(machine):
    machine.load("long64")
    machine.vm.write(DATA_IN, struct.pack("<4Q", 3, 0x100000000,
                                          0x200000000, 7))
    vcpu = machine.vcpu()
    assert run_done(vcpu) == 0x64
    total = 0x300000007
    regs = vcpu.get_regs(["rax", "rbx", "r15", "rsp", "efer", "cr3", "rip"])
    assert list(regs) == ["rax", "rbx", "r15", "rsp", "efer", "cr3", "rip"]
    assert regs["rax"] >> 8 == total >> 8, "AL holds the status"
    assert regs["rbx"] == total
    assert regs["r15"] == 0x1122334455667788
    assert regs["rsp"] == GUEST_STACK, "push/pop balanced"
    assert regs["efer"] & 0x500 == 0x500, "EFER.LME and LMA"
    assert regs["cr3"] == GUEST_TABLES + 0x1000
    assert GUEST_LOAD < regs["rip"] < GUEST_LOAD + 0x100
    assert vcpu.regs.rbx == vcpu.regs["RBX"] == vcpu.get(hvcore.X86Reg.RBX)
    assert vcpu.get(hvcore.HVC_X86_R15) == 0x1122334455667788
    everything = vcpu.regs.read_all()
    assert everything["rbx"] == total and "apic_base" in everything
    assert "rax" in dir(vcpu.regs)


def test_registers_round_trip(machine):
    vcpu = machine.vcpu()
    values = {"rax": 0xA, "r8": 0x8888888888888888, "r15": 0xF,
              "rbp": 0xBBBB, "cr2": 0xC2C2C2C2C2, "dr0": 0xD0D0,
              "dr3": 0xD3D3, "dr7": 0x401, "cr8": 0x5,
              hvcore.msr(0xC0000102): 0xFFFF800012345000}
    vcpu.set_regs(values)
    assert vcpu.get_regs(values) == values
    vcpu.set_regs(rax=1, rbx=2)
    assert vcpu.get_regs(["rax", "rbx"]) == {"rax": 1, "rbx": 2}
    vcpu.regs.rcx = 0x1000
    vcpu.regs["rdx"] = 0x2000
    vcpu.set("rsi", -1)  # two's complement
    assert (vcpu.regs.rcx, vcpu.regs.rdx) == (0x1000, 0x2000)
    assert vcpu.regs.rsi == (1 << 64) - 1
    vcpu.set_msr(0x174, 0x10)
    assert vcpu.get_msr(0x174) == 0x10
    assert vcpu.get(hvcore.HVC_X86_MSR(0x174)) == 0x10
    # EFER and APIC base by name and as MSRs agree
    assert vcpu.get_msr(0xC0000080) == vcpu.regs.efer
    assert vcpu.regs.apic_base & ~0xFFF == 0xFEE00000
    assert vcpu.get_msr(0x1B) == vcpu.regs.apic_base


def test_set_regs_is_all_or_nothing(machine):
    vcpu = machine.vcpu()
    vcpu.regs.rax = 1
    vcpu.set_msr(0x174, 0x11)
    with pytest.raises(hvcore.HvError) as info:
        vcpu.set_regs({"rax": 3, hvcore.msr(0x174): 0x23,
                       hvcore.msr(0x4B564DFF): 1})
    assert info.value.errno == errno.EIO
    assert "0x4b564dff" in info.value.message
    assert vcpu.regs.rax == 1 and vcpu.get_msr(0x174) == 0x11
    cr0 = vcpu.regs.cr0
    with pytest.raises(hvcore.HvError):
        vcpu.set_regs(rax=2, cr0=0x80000000)  # PG without PE
    assert (vcpu.regs.rax, vcpu.regs.cr0) == (1, cr0)


def test_register_errors(machine):
    vcpu = machine.vcpu()
    with pytest.raises(ValueError, match="unknown register name 'rzz'"):
        vcpu.get("rzz")
    with pytest.raises(ValueError, match="get_segment"):
        vcpu.get("cs")
    with pytest.raises(ValueError, match="unknown register"):
        vcpu.get_regs(["rax", "nope"])
    with pytest.raises(AttributeError, match="no register named 'rzz'"):
        vcpu.regs.rzz
    with pytest.raises(AttributeError):
        vcpu.regs.rzz = 1
    with pytest.raises(TypeError):
        vcpu.get(1.5)
    with pytest.raises(ValueError, match="does not fit in 64 bits"):
        vcpu.set("rax", 1 << 64)
    with pytest.raises(ValueError):
        vcpu.set("rax", -(1 << 63) - 1)
    with pytest.raises(TypeError):
        vcpu.set("rax", "1")
    with pytest.raises(hvcore.HvError) as info:
        vcpu.get(0x777)  # an id the library does not know
    assert info.value.errno == errno.EINVAL
    assert "0x777" in info.value.message
    with pytest.raises(hvcore.HvError) as info:
        vcpu.get_regs([hvcore.HVC_X86_RAX, hvcore.HVC_X86_CS])
    assert "segment" in info.value.message
    with pytest.raises(hvcore.HvError) as info:
        vcpu.get_msr(0x4B564DFF)
    assert info.value.errno == errno.EIO
    assert vcpu.get_regs([]) == {}


def test_segments_round_trip(machine):
    vcpu = machine.vcpu(mode="prot32")
    fs = hvcore.Segment(base=0x12345000, limit=0xFFFFF, selector=0x18,
                        type=3, present=1, s=1, db=1)
    vcpu.set_segment("fs", fs)
    back = vcpu.get_segment("fs")
    assert (back.base, back.limit, back.selector, back.type, back.db) == \
        (0x12345000, 0xFFFFF, 0x18, 3, 1)
    vcpu.set_segment("idtr", hvcore.Segment(base=0x9000, limit=0x7FF))
    idt = vcpu.get_segment("idtr")
    assert (idt.base, idt.limit) == (0x9000, 0x7FF)
    assert vcpu.get_segment("gdtr").base == GUEST_TABLES
    with pytest.raises(hvcore.HvError) as info:
        vcpu.set_segment("idtr", hvcore.Segment(base=0x9000, limit=0x10000))
    assert info.value.errno == errno.EINVAL
    fs.type = 16
    with pytest.raises(hvcore.HvError):
        vcpu.set_segment("fs", fs)
    fs.type, fs.selector = 3, 0x10000
    with pytest.raises(ValueError, match="selector"):
        vcpu.set_segment("fs", fs)
    with pytest.raises(ValueError, match="use get"):
        vcpu.get_segment("rax")
    with pytest.raises(TypeError):
        vcpu.set_segment("fs", {"base": 0})


def test_fpu_state_moves_between_vcpus(machine, hv):
    machine.load("fpu64")
    pattern = bytes((0x40 + i * 7) & 0xFF for i in range(32))
    machine.vm.write(DATA_IN, pattern)
    a = machine.vcpu(0)
    b = machine.vcpu(1, entry_offset=0x100)
    assert run_done(a) == 0x01  # a loads xmm0, xmm7
    assert a.fpu_state_size == hv.cap("fpu_state_size")
    blob = a.get_fpu_state()
    assert isinstance(blob, bytes) and len(blob) == a.fpu_state_size
    with pytest.raises(hvcore.HvError) as info:
        b.set_fpu_state(blob + b"\0")
    assert info.value.errno == errno.EINVAL
    b.set_fpu_state(bytearray(blob))
    assert run_done(b) == 0x02  # b stores them
    assert machine.vm.read(DATA_OUT, 32) == pattern


def test_mode_tables_size(machine):
    vm = machine.vm
    assert vm.mode_tables_size("real") == 0
    assert vm.mode_tables_size("prot32") == 4096
    assert vm.mode_tables_size("long64") == 7 * 4096
    assert vm.mode_tables_size("long64", map_length=64 << 30) == 67 * 4096
    with pytest.raises(hvcore.HvError) as info:
        vm.mode_tables_size("long64", map_length=3 << 29)
    assert info.value.errno == errno.EINVAL


def test_set_mode_rejects_bad_options(machine):
    vcpu = machine.vm.vcpu(0)
    with pytest.raises(ValueError, match="unknown vCPU mode 'long128'"):
        vcpu.set_mode("long128")
    with pytest.raises(hvcore.HvError) as info:
        vcpu.set_mode(7)
    assert "mode 7" in info.value.message
    cases = [(dict(mode="real", entry=0x100000), errno.EINVAL),
             (dict(mode="prot32", entry=1 << 32), errno.EINVAL),
             (dict(mode="prot32", entry=GUEST_LOAD, tables=0x1234),
              errno.EINVAL),
             (dict(mode="long64", entry=GUEST_LOAD,
                   tables=MEM_SIZE - 0x2000), errno.EFAULT)]
    for kwargs, code in cases:
        with pytest.raises(hvcore.HvError) as info:
            vcpu.set_mode(**kwargs)
        assert info.value.errno == code, kwargs
        assert info.value.message


def test_vcpu_objects_and_ids(hv):
    with hv.create_vm(max_vcpus=2) as vm:
        one = vm.vcpu(1)
        assert one.id == 1 and one.vm is vm
        assert vm.vcpu(1) is one, "the same vCPU, not a new one"
        assert vm.vcpus == [one]
        with pytest.raises(hvcore.HvError) as info:
            vm.vcpu(2)
        assert info.value.errno == errno.EINVAL
        assert "vCPU id 2" in info.value.message
        one.close()
        assert one.closed and vm.vcpus == []
        one.close()
        with pytest.raises(hvcore.ClosedError, match="vCPU 1 is closed"):
            one.regs.rax
    with pytest.raises(hvcore.HvError) as info:
        hv.create_vm(max_vcpus=1 << 30)
    assert info.value.errno == errno.EINVAL
