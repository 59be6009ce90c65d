"""Shared fixtures: KVM or skip, a VM with RAM, and the C suites' guests.

The guests are the ones the C build produces (tests/guests/*.S), found in
$HVCORE_GUEST_DIR, else $HVCORE_BUILD_DIR/tests/guests, else next to the
loaded library (<build>/src/libhvcore.so.1 -> <build>/tests/guests), else
the source tree's build/tests/guests. Their conventions are
tests/guests/guest.h; the numbers are repeated below.

Tests that need KVM skip with the reason when it is unusable, unless
HVCORE_REQUIRE_KVM=1, in which case they fail (the rule of the C suites).
"""

import os
from pathlib import Path

import pytest

import hvcore

GUEST_LOAD = 0x8000
GUEST_STACK = 0x7000
GUEST_TABLES = 0x100000
DATA_IN = 0x20000
DATA_OUT = 0x30000
PORT_DONE = 0xF4
PORT_DATA = 0x10
PORT_STRING = 0x18
PORT_UNCLAIMED_OUT = 0x99
PORT_UNCLAIMED_IN = 0x98
PORT_SMP = 0x20
MMIO_HANDLED = 0xD0000000
MMIO_UNCLAIMED = 0xE0000000
MEM_SIZE = 4 << 20

SOURCE_ROOT = Path(__file__).resolve().parents[3]


def source_file(*parts):
    """A file of the libhvcore source tree, or None outside one."""
    path = SOURCE_ROOT.joinpath(*parts)
    return path if path.exists() else None


def build_dir():
    """The CMake build directory the library and guests come from."""
    env = os.environ.get("HVCORE_BUILD_DIR")
    if env:
        return Path(env)
    lib = Path(hvcore.library_path)
    if lib.parent.name == "src" and (lib.parent.parent / "tests").is_dir():
        return lib.parent.parent
    return SOURCE_ROOT / "build"


def guest_dir():
    env = os.environ.get("HVCORE_GUEST_DIR")
    return Path(env) if env else build_dir() / "tests" / "guests"


def kvm_problem():
    """None when KVM can open here, else the library's reason."""
    rc, reason = hvcore._lib.lib.hvc_backend_probe(b"kvm")
    if rc == 0:
        return None
    return f"{hvcore.strerror(rc)}: {reason}"


def pytest_report_header(config):
    problem = kvm_problem()
    return [
        f"hvcore package: {Path(hvcore.__file__).parent}",
        f"libhvcore {hvcore.library_version}: {hvcore.library_path} "
        f"(via {hvcore.library_origin})",
        f"guests: {guest_dir()}",
        "KVM: usable" if problem is None else f"KVM: unusable ({problem})",
    ]


@pytest.fixture
def require_kvm():
    problem = kvm_problem()
    if problem is None:
        return
    if os.environ.get("HVCORE_REQUIRE_KVM") == "1":
        pytest.fail(f"HVCORE_REQUIRE_KVM=1 but KVM is unusable: {problem}")
    pytest.skip(f"KVM is not usable here: {problem}")


@pytest.fixture
def hv(require_kvm):
    with hvcore.Hypervisor("kvm") as opened:
        yield opened


def read_guest(name):
    path = guest_dir() / f"{name}.bin"
    if not path.is_file():
        pytest.fail(f"guest {path} not found: build the C tree (cmake "
                    "--build) or set HVCORE_GUEST_DIR / HVCORE_BUILD_DIR")
    return path.read_bytes()


class Machine:
    """A VM with MEM_SIZE of RAM at 0, like tests/hvtest.c's hvt_open()."""

    def __init__(self, hv, **vm_options):
        self.hv = hv
        self.vm = hv.create_vm(**vm_options)
        self.ram = self.vm.add_memory(0, MEM_SIZE)

    def load(self, name, at=GUEST_LOAD):
        self.vm.write(at, read_guest(name))

    def vcpu(self, vcpu_id=0, mode="long64", entry_offset=0):
        vcpu = self.vm.vcpu(vcpu_id)
        vcpu.set_mode(mode, entry=GUEST_LOAD + entry_offset,
                      stack=GUEST_STACK, tables=GUEST_TABLES)
        return vcpu

    def close(self):
        self.vm.close()


def run_done(vcpu):
    """Runs to the done port; returns the status byte the guest wrote."""
    exit = vcpu.run()
    assert exit.reason == hvcore.ExitReason.PIO, exit
    assert exit.port == PORT_DONE, exit
    assert exit.is_write
    return exit.data[0]


@pytest.fixture
def machine(hv):
    m = Machine(hv)
    yield m
    m.close()


@pytest.fixture
def make_machine(hv):
    """Factory for machines with VM options (no_irqchip=True, ...)."""
    made = []

    def make(**vm_options):
        made.append(Machine(hv, **vm_options))
        return made[-1]

    yield make
    for m in made:
        m.close()
