"""Dirty-page tracking through the bindings, with the C suites' dirty64
guest writing known pages (tests/guests/dirty64.S)."""

import errno
import struct

import pytest

import hvcore
from conftest import DATA_IN, Machine, run_done

BASE = 0x10000000
LENGTH = 1 << 20  # 256 pages
PAGE = 4096


def write_pages(machine, vcpu, pages):
    """Runs dirty64 once over the listed pages of the tracked region."""
    addrs = [BASE + p * PAGE for p in pages]
    machine.vm.write(DATA_IN, struct.pack(f"<{1 + len(addrs)}Q",
                                          len(addrs), *addrs))
    assert run_done(vcpu) == 0x5D


def tracked_machine(hv, **vm_options):
    m = Machine(hv, **vm_options)
    region = m.vm.add_memory(BASE, LENGTH)
    m.load("dirty64")
    return m, region, m.vcpu()


def test_bitmap_first_fetch_all_then_only_writes(hv):
    m, region, vcpu = tracked_machine(hv)
    try:
        caps = hvcore.DirtyMode(hv.cap(hvcore.Cap.DIRTY_TRACKING))
        assert region.dirty_mode == 0
        region.dirty_start()
        mode = region.dirty_mode
        assert mode & hvcore.DirtyMode.BITMAP
        assert (mode & hvcore.DirtyMode.INITIALLY_SET) == \
            (caps & hvcore.DirtyMode.INITIALLY_SET)
        write_pages(m, vcpu, [3, 70, 200])
        assert region.dirty_fetch() == list(range(256))  # the first: all
        assert region.dirty_fetch() == []
        write_pages(m, vcpu, [200, 70, 3])
        assert region.dirty_fetch() == [3, 70, 200]
        m.vm.write(BASE + 100 * PAGE, b"x")
        bitmap, count = region.dirty_fetch_bitmap()
        assert count == 1 and len(bitmap) == 32
        assert bitmap[100 // 8] == 1 << (100 % 8)
        region.view[150 * PAGE] = 1
        m.vm.mark_dirty(BASE + 150 * PAGE, 1)
        assert region.dirty_fetch() == [150]
        region.dirty_stop()
        assert region.dirty_mode == 0
    finally:
        m.close()


def test_clean_start_and_errors(hv):
    m, region, vcpu = tracked_machine(hv)
    try:
        with pytest.raises(hvcore.HvError) as e:
            region.dirty_fetch()
        assert e.value.errno == errno.ENOENT
        with pytest.raises(hvcore.HvError) as e:
            region.dirty_start(mode=hvcore.DirtyMode.RING)
        assert e.value.errno == errno.ENOTSUP
        assert "HVC_VM_DIRTY_RING" in str(e.value)
        region.dirty_start(clean=True)
        with pytest.raises(hvcore.HvError) as e:
            region.dirty_start()
        assert e.value.errno == errno.EALREADY
        write_pages(m, vcpu, [0, 255])
        assert region.dirty_fetch() == [0, 255]
        assert region.dirty_fetch() == []
    finally:
        m.close()


def test_ring(hv):
    if not hv.cap(hvcore.Cap.DIRTY_TRACKING) & hvcore.DirtyMode.RING:
        pytest.skip("this KVM has no dirty ring")
    m, region, vcpu = tracked_machine(hv, flags=hvcore.VmFlags.DIRTY_RING)
    try:
        region.dirty_start(clean=True)
        assert region.dirty_mode == hvcore.DirtyMode.RING
        write_pages(m, vcpu, [3, 70, 200])
        assert region.dirty_fetch() == [3, 70, 200]
        assert region.dirty_fetch() == []
        write_pages(m, vcpu, [9])
        assert region.dirty_fetch() == [9]
    finally:
        m.close()
