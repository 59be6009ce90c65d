"""Saving and restoring VMs (hvcore/migration.h) with the counter64 guest.

counter64 (tests/guests/counter64.S): vCPU index in rdi; each iteration n
rewrites 32 pattern pages, checks the previous pattern (BAD counts
mismatches) and the TSC (BACK counts steps backwards), and vCPU 0 prints
"count n\\r\\n" on COM1; its state is at DATA_OUT + 0x100 + 0x40 * index.
Once n reaches the non-zero qword at DATA_IN, a vCPU writes 0x60 + index
to the done port. A restored guest must go on counting where it stopped
with no pattern or TSC error.
"""

import errno
import gc
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hvcore
from conftest import DATA_IN, DATA_OUT, PORT_DONE, Machine

STATE = DATA_OUT + 0x100
KEY = bytes(range(32))
CHILD = Path(__file__).with_name("migration_child.py")


class Counter:
    """A counter64 machine with ``nr_vcpus`` vCPUs and a UART "com1"."""

    def __init__(self, hv, nr_vcpus=1):
        self.m = Machine(hv)
        self.vm = self.m.vm
        self.m.load("counter64")
        self.console = []
        self.vm.add_serial(name="com1", output=self.console.append)
        self.vcpus = []
        for i in range(nr_vcpus):
            vcpu = self.m.vcpu(i)
            vcpu.regs.rdi = i
            self.vcpus.append(vcpu)

    def text(self):
        return console_text(self.console)


def console_text(chunks):
    return b"".join(chunks).decode()


def counts(n_from, n_to):
    return "".join(f"count {n}\r\n" for n in range(n_from, n_to + 1))


def run_until(vm, limit):
    """Lets every vCPU count to ``limit``."""
    vm.write(DATA_IN, struct.pack("<Q", limit))
    for vcpu in vm.vcpus:
        exit = vcpu.run()
        assert exit.reason == hvcore.ExitReason.PIO, exit
        assert exit.port == PORT_DONE, exit
        assert exit.data[0] == 0x60 + vcpu.id, exit


def state(vm, index):
    """(n, pattern errors, backward TSC steps) of vCPU ``index``."""
    return struct.unpack("<3Q", vm.read(STATE + 0x40 * index, 24))


def check(vm, n, nr_vcpus=1):
    for i in range(nr_vcpus):
        assert state(vm, i) == (n, 0, 0), f"vCPU {i}"


def save_bytes(vm, **options):
    out = io.BytesIO()
    with vm.paused():
        vm.save(out, **options)
    return out.getvalue()


def uart_setup(console, seen=None):
    """A setup callable attaching "com1" with its output into console."""

    def setup(vm, user_data):
        if seen is not None:
            seen.append((vm, user_data))
        vm.add_serial(name="com1", output=console.append)

    return setup


def vm_count(hv):
    return sum(1 for node in hv._node.children.values())


@pytest.fixture
def counter(hv):
    made = []

    def make(nr_vcpus=1):
        made.append(Counter(hv, nr_vcpus))
        return made[-1]

    yield make
    for c in made:
        c.vm.close()


# -- in this process ---------------------------------------------------------

def test_file_object_round_trip_in_the_same_process(hv, counter):
    c = counter()
    run_until(c.vm, 3)
    assert c.text() == counts(1, 3)
    data = save_bytes(c.vm, user_data=b"disk=/dev/null")
    assert data[:8] == b"HVCORESN"

    console, seen = [], []
    vm = hvcore.VM.restore(hv, io.BytesIO(data),
                           setup=uart_setup(console, seen))
    with vm:
        # setup saw the very VM returned, with its vCPUs and memory
        assert len(seen) == 1 and seen[0][0] is vm
        assert seen[0][1] == b"disk=/dev/null"
        assert vm.vcpu_count == 1
        assert [v.id for v in vm.vcpus] == [0]
        assert vm.vcpu(0) is vm.vcpus[0]
        assert [(r.guest_addr, r.length) for r in vm.regions] == \
            [(0, 4 << 20)]
        assert vm.find_memory(0x8000) == vm.regions[0]
        assert vm.find_device("com1").type == "16550a"
        assert vm.flags is None and vm.hypervisor is hv
        check(vm, 3)
        run_until(vm, 6)
        check(vm, 6)
        assert console_text(console) == counts(4, 6)
        # the source is untouched and goes on by itself
        run_until(c.vm, 4)
        check(c.vm, 4)
        assert c.text() == counts(1, 4)
        check(vm, 6)
    assert vm.closed


def test_save_to_a_buffered_file_object_flushes_it(hv, counter, tmp_path):
    """A save into a buffered writer leaves nothing in Python's buffer: the
    file on disk holds the whole stream when save() returns, and a restore
    from it (a separate open) works while the writer is still open."""
    c = counter()
    run_until(c.vm, 2)
    path = tmp_path / "buffered.snap"
    flushed = []

    class Buffered(io.BufferedWriter):
        def flush(self):
            flushed.append(True)
            return super().flush()

    raw = io.FileIO(path, "w")
    f = Buffered(raw, buffer_size=1 << 20)  # larger than this snapshot
    try:
        with c.vm.paused():
            c.vm.save(f)
        assert flushed, "save() did not flush the file object"
        assert not f.closed
        size = path.stat().st_size
        assert size > 0 and size == f.tell()
        with open(path, "rb") as src:
            console, seen = [], []
            vm = hvcore.VM.restore(hv, src, setup=uart_setup(console, seen))
        with vm:
            check(vm, 2)
    finally:
        f.close()

    class FlushFails(io.BytesIO):
        def flush(self):
            raise OSError(errno.ENOSPC, "disk full at flush")

    with pytest.raises(OSError, match="disk full at flush"):
        with c.vm.paused():
            c.vm.save(FlushFails())


def test_save_a_running_smp_guest_to_a_snapshot_and_restore(hv, counter,
                                                            tmp_path):
    c = counter(2)
    c.vm.write(DATA_IN, struct.pack("<Q", 0))  # count forever
    exits = {}

    def spin(vcpu):
        exits[vcpu.id] = vcpu.run()

    threads = [threading.Thread(target=spin, args=(v,), daemon=True)
               for v in c.vcpus]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while min(state(c.vm, 0)[0], state(c.vm, 1)[0]) < 5:
        assert time.monotonic() < deadline, "the guest does not count"
        time.sleep(0.005)
    path = tmp_path / "smp.snap"
    c.vm.pause()  # the vCPU threads stay parked inside run()
    try:
        saved = [state(c.vm, i)[0] for i in range(2)]
        c.vm.save(str(path))
        assert [state(c.vm, i)[0] for i in range(2)] == saved
    finally:
        c.vm.resume()
    for vcpu in c.vcpus:
        vcpu.kick()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert all(e.reason == hvcore.ExitReason.KICK for e in exits.values())

    console = []
    with hv.restore_vm(path, setup=uart_setup(console)) as vm:
        assert [v.id for v in vm.vcpus] == [0, 1]
        for i in range(2):
            assert state(vm, i) == (saved[i], 0, 0)
        limit = max(saved) + 3
        run_until(vm, limit)
        check(vm, limit, 2)
        # vCPU 0 may have been stopped halfway through a line
        assert console_text(console).endswith(counts(saved[0] + 1, limit))


def test_fd_of_a_regular_file_and_path_objects(hv, counter, tmp_path):
    c = counter()
    run_until(c.vm, 2)
    path = tmp_path / "stream.bin"
    with open(path, "wb") as f:
        f.write(b"PREFIX")
        f.flush()
        with c.vm.paused():
            c.vm.save(f.fileno())
        assert f.tell() == os.path.getsize(path) > 6
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.read(fd, 6) == b"PREFIX"
        console = []
        with hvcore.VM.restore(hv, fd, setup=uart_setup(console)) as vm:
            run_until(vm, 4)
            check(vm, 4)
            assert console_text(console) == counts(3, 4)
    finally:
        os.close(fd)
    # an os.PathLike is a snapshot path, for saving and restoring
    snap = tmp_path / "pathlike.snap"
    with c.vm.paused():
        c.vm.save(snap)
    assert snap.stat().st_size > 0
    with hvcore.VM.restore(hv, snap, setup=uart_setup([])) as vm:
        check(vm, 2)


@pytest.mark.parametrize("verify", [False, True])
def test_mmap_restore_of_a_snapshot(hv, counter, tmp_path, verify):
    c = counter()
    run_until(c.vm, 3)
    path = tmp_path / "mapped.snap"
    with c.vm.paused():
        c.vm.save(path)
    before = path.read_bytes()
    console = []
    with hvcore.VM.restore(hv, path, setup=uart_setup(console), mmap=True,
                           verify_memory=verify) as vm:
        check(vm, 3)
        run_until(vm, 5)
        check(vm, 5)
        assert console_text(console) == counts(4, 5)
        # the view of a mapped region is the guest's memory
        view = vm.regions[0].view
        assert struct.unpack_from("<Q", view, STATE)[0] == 5
    # copy-on-write: the guest's writes never reached the file
    assert path.read_bytes() == before


def test_mmap_needs_a_snapshot_path(hv, counter):
    data = save_bytes(counter().vm)
    with pytest.raises(ValueError, match="snapshot file path"):
        hvcore.VM.restore(hv, io.BytesIO(data), mmap=True)


# -- encryption --------------------------------------------------------------

def test_key_encrypted_stream(hv, counter):
    c = counter()
    run_until(c.vm, 2)
    data = save_bytes(c.vm, key=KEY)
    assert b"count" not in data[80:]  # the guest's text is not in clear
    before = vm_count(hv)
    for key in (None, bytes(32), KEY[::-1]):
        with pytest.raises(hvcore.HvError) as info:
            hvcore.VM.restore(hv, io.BytesIO(data), key=key,
                              setup=uart_setup([]))
        assert info.value.errno == errno.EKEYREJECTED, info.value
        assert info.value.function == "hvc_vm_restore"
        assert info.value.message
        assert vm_count(hv) == before
    console = []
    with hvcore.VM.restore(hv, io.BytesIO(data), key=bytearray(KEY),
                           setup=uart_setup(console)) as vm:
        run_until(vm, 3)
        check(vm, 3)
        assert console_text(console) == counts(3, 3)


def test_passphrase_encrypted_snapshot_in_a_new_process(hv, counter,
                                                        tmp_path):
    # the only test paying for PBKDF2 (600000 iterations, ~0.5 s a time)
    c = counter()
    run_until(c.vm, 2)
    path = tmp_path / "secret.snap"
    with c.vm.paused():
        c.vm.save(path, passphrase="correct horse", user_data=b"pass")
    with pytest.raises(hvcore.HvError) as info:
        hvcore.VM.restore(hv, path, passphrase=b"wrong horse",
                          setup=uart_setup([]))
    assert info.value.errno == errno.EKEYREJECTED
    assert str(path) in info.value.message
    result = run_child([str(path), "4", "--passphrase", "correct horse"])
    assert result["user_data"] == "pass"
    assert result["states"] == [[4, 0, 0]]
    assert result["console"] == counts(3, 4)


def test_bad_key_arguments(hv, counter):
    vm = counter().vm
    with vm.paused():
        with pytest.raises(ValueError, match="32 bytes"):
            vm.save(io.BytesIO(), key=b"short")
        with pytest.raises(TypeError):
            vm.save(io.BytesIO(), key="a string")
        with pytest.raises(ValueError, match="NUL"):
            vm.save(io.BytesIO(), passphrase="a\0b")
        with pytest.raises(hvcore.HvError) as info:
            vm.save(io.BytesIO(), key=KEY, passphrase="both")
        assert info.value.errno == errno.EINVAL
        with pytest.raises(hvcore.HvError) as info:
            vm.save(io.BytesIO(),
                    user_data=bytes(hvcore.HVC_STREAM_USER_DATA_MAX + 1))
        assert info.value.errno == errno.EINVAL
        with pytest.raises(TypeError):
            vm.save(object())
    with pytest.raises(TypeError):
        hvcore.VM.restore(hv, object())


# -- in a new process --------------------------------------------------------

def child_env():
    env = dict(os.environ)
    env.pop("HVCORE_BUILD_DIR", None)
    env["HVCORE_LIBRARY"] = hvcore.library_path
    package_parent = os.path.dirname(os.path.dirname(hvcore.__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def run_child(args, **kwargs):
    done = subprocess.run([sys.executable, str(CHILD)] + args,
                          env=child_env(), capture_output=True, timeout=120,
                          **kwargs)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


@pytest.mark.parametrize("mmap", [False, True])
def test_snapshot_restored_in_a_new_process(hv, counter, tmp_path, mmap):
    c = counter(2)
    run_until(c.vm, 3)
    path = tmp_path / "child.snap"
    with c.vm.paused():
        c.vm.save(path, key=KEY, user_data=b"from the parent")
    args = [str(path), "7", "--key", KEY.hex()]
    if mmap:
        args += ["--mmap", "--verify"]
    result = run_child(args)
    assert result["user_data"] == "from the parent"
    assert result["vcpus_in_setup"] == result["vcpus"] == [0, 1]
    assert result["states"] == [[7, 0, 0], [7, 0, 0]]
    assert result["console"] == counts(4, 7)


@pytest.mark.parametrize("how", ["fd", "file"])
def test_streamed_through_a_pipe_to_a_new_process(hv, counter, how):
    c = counter()
    run_until(c.vm, 5)
    child = subprocess.Popen([sys.executable, str(CHILD), how, "8"],
                             env=child_env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with c.vm.paused():
            if how == "fd":
                c.vm.save(child.stdin.fileno(), user_data=b"piped")
            else:
                c.vm.save(child.stdin, user_data=b"piped")
        out, err = child.communicate(timeout=120)  # flushes, closes stdin
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["user_data"] == "piped"
    assert result["states"] == [[8, 0, 0]]
    assert result["console"] == counts(6, 8)


# -- failures ----------------------------------------------------------------

def test_save_needs_a_paused_vm(counter):
    c = counter()
    with pytest.raises(hvcore.HvError) as info:
        c.vm.save(io.BytesIO())
    assert info.value.errno == errno.EBUSY
    assert info.value.function == "hvc_vm_save"


@pytest.mark.parametrize("cut", [40, 80, 5000, -100, -1])
def test_truncated_stream_raises_enodata_and_leaves_no_vm(hv, counter, cut):
    data = save_bytes(counter().vm)
    before = vm_count(hv)
    seen = []
    with pytest.raises(hvcore.HvError) as info:
        hvcore.VM.restore(hv, io.BytesIO(data[:cut]),
                          setup=uart_setup([], seen))
    assert info.value.errno == errno.ENODATA, info.value
    assert vm_count(hv) == before
    for vm, _ in seen:  # the VM setup saw was destroyed with the restore
        assert vm.closed
        assert vm.vcpus == [] and vm.regions == []
        with pytest.raises(hvcore.ClosedError):
            vm.read(0, 1)


def test_truncated_stream_from_a_pipe(hv, counter):
    data = save_bytes(counter().vm)
    r, w = os.pipe()
    try:
        writer = threading.Thread(
            target=lambda: (os.write(w, data[:len(data) // 2]), os.close(w)))
        writer.start()
        with pytest.raises(hvcore.HvError) as info:
            hvcore.VM.restore(hv, r, setup=uart_setup([]))
        writer.join()
    finally:
        os.close(r)
    assert info.value.errno == errno.ENODATA
    assert info.value.function == "hvc_vm_restore_fd"


class FailingReader(io.RawIOBase):
    """A stream that raises ``exc`` once ``after`` bytes were read."""

    def __init__(self, data, after, exc):
        self.inner = io.BytesIO(data)
        self.after = after
        self.exc = exc

    def readable(self):
        return True

    def readinto(self, buf):
        if self.inner.tell() >= self.after:
            raise self.exc
        return self.inner.readinto(buf)


@pytest.mark.parametrize("after", [0, 100, 20000])
def test_exception_in_the_read_callback_propagates(hv, counter, after):
    data = save_bytes(counter().vm)
    before = vm_count(hv)
    boom = RuntimeError("network went away")
    with pytest.raises(RuntimeError) as info:
        hvcore.VM.restore(hv, FailingReader(data, after, boom),
                          setup=uart_setup([]))
    assert info.value is boom
    cause = info.value.__cause__
    assert isinstance(cause, hvcore.HvError)
    assert cause.errno == errno.EIO and cause.function == "hvc_vm_restore"
    assert vm_count(hv) == before
    # an OSError's errno is what the library is told
    reset = ConnectionResetError(errno.ECONNRESET, "reset by peer")
    with pytest.raises(ConnectionResetError) as info:
        hvcore.VM.restore(hv, FailingReader(data, after, reset),
                          setup=uart_setup([]))
    assert info.value.__cause__.errno == errno.ECONNRESET


def test_read_callback_returning_nonsense(hv, counter):
    data = save_bytes(counter().vm)

    class TooMuch:
        def read(self, n):
            return data[:n + 1]

    with pytest.raises(OSError) as info:
        hvcore.VM.restore(hv, TooMuch())
    assert "returned" in str(info.value)
    # read() alone (no readinto) is enough for a well-behaved object
    class ReadOnly:
        def __init__(self):
            self.inner = io.BytesIO(data)

        def read(self, n):
            return self.inner.read(min(n, 1000))  # short reads too

    with hvcore.VM.restore(hv, ReadOnly(), setup=uart_setup([])) as vm:
        check(vm, 0)


def test_exception_in_the_write_callback_propagates(counter):
    c = counter()
    run_until(c.vm, 2)

    class Full(io.RawIOBase):
        def __init__(self):
            self.written = 0

        def writable(self):
            return True

        def write(self, data):
            if self.written > 10000:
                raise OSError(errno.ENOSPC, "disk full")
            n = min(len(data), 777)  # short writes are continued
            self.written += n
            return n

    with c.vm.paused():
        with pytest.raises(OSError) as info:
            c.vm.save(Full())
        assert info.value.errno == errno.ENOSPC
        assert info.value.__cause__.errno == errno.ENOSPC
        assert c.vm.is_paused
        # a text file: its TypeError, not a crash
        with pytest.raises(TypeError):
            c.vm.save(io.StringIO())
    run_until(c.vm, 3)  # the VM is fine
    check(c.vm, 3)


def test_progress_and_cancel(hv, counter, tmp_path):
    c = counter()
    run_until(c.vm, 1)
    calls = []
    out = io.BytesIO()
    with c.vm.paused():
        c.vm.save(out, progress=lambda done, total: calls.append(
            (done, total)))
    assert calls and calls[-1][0] == len(out.getvalue())
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    read_calls = []
    with hvcore.VM.restore(hv, io.BytesIO(out.getvalue()),
                           setup=uart_setup([]),
                           progress=lambda d, t: read_calls.append(d)) as vm:
        check(vm, 1)
    assert read_calls == sorted(read_calls)
    assert 0 < read_calls[-1] <= len(out.getvalue())

    # False cancels; an atomic snapshot save keeps the old file
    path = tmp_path / "keep.snap"
    path.write_bytes(b"old snapshot")
    with c.vm.paused():
        with pytest.raises(hvcore.HvError) as info:
            c.vm.save(path, progress=lambda done, total: False)
        assert info.value.errno == errno.ECANCELED
        with pytest.raises(KeyError):
            c.vm.save(path, progress=lambda done, total: {}["stop"])
    assert path.read_bytes() == b"old snapshot"
    assert sorted(os.listdir(tmp_path)) == ["keep.snap"]
    with pytest.raises(ZeroDivisionError):
        hvcore.VM.restore(hv, io.BytesIO(out.getvalue()),
                          setup=uart_setup([]), progress=lambda d, t: 1 / 0)


def test_restore_progress_ends_with_the_stream_length(hv, counter):
    data = save_bytes(counter().vm)
    calls = []
    with hvcore.VM.restore(hv, io.BytesIO(data), setup=uart_setup([]),
                           progress=lambda d, t: calls.append(d)):
        pass
    assert calls[-1] == len(data)


def test_setup_must_attach_the_devices(hv, counter):
    data = save_bytes(counter().vm)
    before = vm_count(hv)
    with pytest.raises(hvcore.HvError) as info:
        hvcore.VM.restore(hv, io.BytesIO(data))  # no UART attached
    assert info.value.errno == errno.ENOENT
    assert vm_count(hv) == before

    def wrong_name(vm, user_data):
        vm.add_serial(name="com2")

    with pytest.raises(hvcore.HvError) as info:
        hvcore.VM.restore(hv, io.BytesIO(data), setup=wrong_name)
    assert info.value.errno == errno.ENOENT

    kept = []

    def failing(vm, user_data):
        kept.append(vm)
        vm.add_serial(name="com1")
        raise ValueError("no disk for this VM")

    with pytest.raises(ValueError, match="no disk") as info:
        hvcore.VM.restore(hv, io.BytesIO(data), setup=failing)
    assert isinstance(info.value.__cause__, hvcore.HvError)
    assert kept[0].closed and vm_count(hv) == before

    def closing(vm, user_data):
        vm.close()  # the library still owns it: refused

    with pytest.raises(hvcore.HvError) as info:
        hvcore.VM.restore(hv, io.BytesIO(data), setup=closing)
    assert info.value.errno == errno.EBUSY
    assert vm_count(hv) == before


class Register(hvcore.DeviceModel):
    """A port-I/O scratch register with state, to save and restore."""

    type = "scratch"

    def __init__(self, value=0):
        self.value = value
        self.loaded = None
        self.destroyed = False

    def read(self, vcpu, index, offset, size):
        return self.value

    def write(self, vcpu, index, offset, data):
        self.value = data[0]

    def save_state(self):
        return bytes([self.value])

    def load_state(self, data):
        if len(data) != 1:
            raise ValueError("one byte of state")
        self.loaded = data
        self.value = data[0]

    def destroy(self):
        self.destroyed = True


def test_restored_vm_keeps_its_python_devices_alive(hv, counter):
    c = counter()
    c.vm.add_device(Register(0x5a), [("pio", 0x99, 1)], name="scratch")
    run_until(c.vm, 2)
    data = save_bytes(c.vm)

    console = []

    def setup(vm, user_data):
        vm.add_serial(name="com1", output=lambda b: console.append(b))
        vm.add_device(Register(), [("pio", 0x99, 1)], name="scratch")

    vm = hvcore.VM.restore(hv, io.BytesIO(data), setup=setup)
    del setup
    gc.collect()
    model = vm.find_device("scratch").model
    assert isinstance(model, Register)
    assert model.loaded == b"\x5a" and model.value == 0x5a
    run_until(vm, 4)  # the UART's Python output callable still works
    assert console_text(console) == counts(3, 4)
    vcpu = vm.vcpu(0)
    vm.close()
    assert model.destroyed and vcpu.closed
    with pytest.raises(hvcore.ClosedError):
        vcpu.run()


def test_a_device_models_load_state_error_propagates(hv, counter):
    c = counter()
    c.vm.add_device(Register(1), [("pio", 0x99, 1)], name="scratch")
    data = save_bytes(c.vm)

    class Picky(Register):
        def load_state(self, data):
            raise ValueError("state from the future")

    models = []

    def setup(vm, user_data):
        vm.add_serial(name="com1")
        models.append(Picky())
        vm.add_device(models[-1], [("pio", 0x99, 1)], name="scratch")

    with pytest.raises(ValueError, match="from the future") as info:
        hvcore.VM.restore(hv, io.BytesIO(data), setup=setup)
    assert info.value.__cause__.errno == errno.EBADMSG
    assert models[0].destroyed  # the library destroyed the VM with it


def test_restore_is_refused_after_the_hypervisor_closed(counter, hv):
    data = save_bytes(counter().vm)
    other = hvcore.Hypervisor("kvm")
    other.close()
    with pytest.raises(hvcore.ClosedError):
        hvcore.VM.restore(other, io.BytesIO(data))


def test_a_device_models_save_state_error_propagates(counter):
    c = counter()

    class Broken(Register):
        def save_state(self):
            raise RuntimeError("cannot save")

    c.vm.add_device(Broken(), [("pio", 0x99, 1)], name="scratch")
    with c.vm.paused():
        with pytest.raises(RuntimeError, match="cannot save") as info:
            c.vm.save(io.BytesIO())
    assert isinstance(info.value.__cause__, hvcore.HvError)
    assert info.value.__cause__.function == "hvc_vm_save"
