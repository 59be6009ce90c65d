"""examples/hello.py runs the bundled demo guest like examples/hello."""

import os
import subprocess
import sys

import pytest

import hvcore
from conftest import build_dir, source_file


def test_hello_py(require_kvm):
    script = source_file("examples", "hello.py")
    if script is None:
        pytest.skip("examples/hello.py is not here (outside the source tree)")
    guest = build_dir() / "examples" / "guests" / "hello.bin"
    if not guest.is_file():
        pytest.fail(f"{guest} not found: build the C tree first")
    env = dict(os.environ, HVCORE_LIBRARY=hvcore.library_path)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(os.path.dirname(hvcore.__file__)),
                    env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, str(script), str(guest)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Hello from a libhvcore guest!\n")
    assert "fib(90) computed in 64-bit long mode: 2880067194370816120" in \
        done.stdout
    assert done.stdout.endswith("hello: guest exited with status 0\n")
    assert len(script.read_text().splitlines()) < 30


def test_boot_py_is_a_mini_hvrun(require_kvm):
    script = source_file("examples", "boot.py")
    if script is None:
        pytest.skip("examples/boot.py is not here (outside the source tree)")
    kernel = build_dir() / "tests" / "guests" / "linux64.elf"
    if not kernel.is_file():
        pytest.fail(f"{kernel} not found: build the C tree first")
    env = dict(os.environ, HVCORE_LIBRARY=hvcore.library_path)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(os.path.dirname(hvcore.__file__)),
                    env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, str(script), str(kernel),
                           "root=/dev/vda quiet", "128"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 64, done.stderr + done.stdout
    assert "linux64: cmdline: [root=/dev/vda quiet]" in done.stdout
    assert "linux64: rsdp 0xe0000" in done.stdout
    assert "linux64: ram KiB 130687" in done.stdout
    assert len(script.read_text().splitlines()) < 40
