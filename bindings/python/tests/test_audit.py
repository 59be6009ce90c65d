"""The memory-sharing audit (hvcore.audit) on a real VM: a second process
mapping a region's memfd is counted page for page, the resume guard
refuses while it does, a process without the privilege is told so, and
bad arguments are refused. (The KSM merge and unmerge test is the C
suite's, tests/test_audit.c, which switches KSM on and restores it.)"""

import ctypes
import errno
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

import hvcore
from conftest import source_file

PAGE = 4096
REGION = 0x10000000
PAGES = 64

# The second process: maps the memfd it was handed, writes to pages 0..15,
# reads pages 32..39 (a read fault maps the pages around it too), prints
# how many pages of the region it maps (its own pagemap) and waits for
# its stdin to close.
SHARER = textwrap.dedent("""
    import ctypes, mmap, struct, sys
    fd, pages = int(sys.argv[1]), int(sys.argv[2])
    m = mmap.mmap(fd, pages * 4096)
    for i in range(16):
        m[i * 4096 + 8] = 0x5a
    for i in range(32, 40):
        m[i * 4096]
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(base // 4096 * 8)
        entries = struct.unpack(f"{pages}Q", f.read(8 * pages))
    print(sum(e >> 63 for e in entries), flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def vm(hv):
    if os.geteuid() != 0:
        pytest.skip("the audit reads /proc/kpagecount: root only")
    with hv.create_vm() as created:
        created.add_memory(0, 4 << 20)
        yield created


def _fill(vm):
    for i in range(PAGES):
        vm.write(REGION + i * PAGE, bytes([i + 1]) * PAGE)


class Sharer:
    """The second process, mapping the region's memfd while it lives."""

    def __init__(self, region):
        fd = region.fd
        assert fd is not None
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SHARER, str(fd), str(PAGES)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=[fd],
            text=True)
        self.mapped = int(self.proc.stdout.readline())

    def stop(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


def test_counts_pages_mapped_by_another_process(vm):
    region = vm.add_memory(REGION, PAGES * PAGE)
    _fill(vm)
    before = vm.audit_sharing()
    assert isinstance(before, hvcore.SharingReport)
    assert before.regions == 2
    assert before.pages == (4 << 20) // PAGE + PAGES
    assert before.resident == PAGES
    assert before.resident + before.swapped + before.not_resident \
        == before.pages
    assert before.shared == 0 and before.flags == 0

    sharer = Sharer(region)
    try:
        assert sharer.mapped >= 24
        during = vm.audit_sharing()
        assert during.mapped_elsewhere == sharer.mapped
        assert during.ksm == 0
    finally:
        sharer.stop()
    assert vm.audit_sharing().mapped_elsewhere == 0


def test_guard_refuses_resume_while_shared(vm):
    region = vm.add_memory(REGION, PAGES * PAGE)
    _fill(vm)
    vm.set_sharing_guard(hvcore.SharingKind.MAPPED)
    vm.pause()
    sharer = Sharer(region)
    try:
        with pytest.raises(hvcore.HvError) as info:
            vm.resume()
        assert info.value.errno == errno.EBUSY
        assert f"{sharer.mapped} mapped elsewhere" in info.value.message
        assert vm.is_paused
    finally:
        sharer.stop()
    vm.resume()
    assert not vm.is_paused
    vm.set_sharing_guard(0)


def test_unmerge_flag_and_report(vm):
    vm.add_memory(REGION, PAGES * PAGE)
    report = vm.audit_sharing(unmerge=True)
    assert report.flags == hvcore.SharingFlags.UNMERGED
    assert report.unmerged_regions == 0  # nothing was merged


def test_rejects_unknown_guard_kinds(vm):
    with pytest.raises(hvcore.HvError) as info:
        vm.set_sharing_guard(0x100)
    assert info.value.errno == errno.EINVAL


def _as_nobody(vm):
    """In a child as user nobody: the audit's error, then a residency-only
    report. Returns (errno, message, report fields) from the child."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(read_end)
            os.setuid(65534)
            # Changing the user id made the process undumpable, which
            # makes its /proc/self files root's; an unprivileged VMM is
            # dumpable.
            ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)
            vm.write(REGION, b"\x07" * (8 * PAGE))
            try:
                vm.audit_sharing()
                out = {"errno": 0}
            except hvcore.HvError as e:
                out = {"errno": e.errno, "message": e.message}
            report = vm.audit_sharing(residency_only=True)
            out["report"] = {"flags": int(report.flags),
                             "resident": report.resident,
                             "shared": report.shared}
            os.write(write_end, json.dumps(out).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and data, "the child failed"
    return json.loads(data)


def test_without_privilege_says_so(vm):
    vm.add_memory(REGION, PAGES * PAGE)
    out = _as_nobody(vm)
    assert out["errno"] == errno.EPERM
    assert "CAP_SYS_ADMIN" in out["message"]
    assert out["report"] == {"flags": int(hvcore.SharingFlags.NO_FRAMES),
                             "resident": 8, "shared": 0}


def test_constants_mirror_audit_h():
    header = source_file("include", "hvcore", "audit.h")
    if header is None:
        pytest.skip("include/hvcore/audit.h is not here")
    values = {name: eval(value.replace("u", ""))  # noqa: S307 - our header
              for name, value in re.findall(
                  r"^\s*(HVC_[A-Z_]+)\s*=\s*([^,\n/]+)",
                  header.read_text(), re.M)}
    assert len(values) == 7, values
    for name, value in values.items():
        assert getattr(hvcore, name) == value, name
    for enum_type, prefix in ((hvcore.AuditFlags, "HVC_AUDIT_"),
                              (hvcore.SharingFlags, "HVC_SHARING_"),
                              (hvcore.SharingKind, "HVC_SHARING_")):
        for member in enum_type:
            assert values[prefix + member.name] == member
