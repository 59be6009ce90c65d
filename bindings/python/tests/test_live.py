"""Live migration, live snapshots, the transport and hand-over
(hvcore.live) with the counter64 guest running on vCPU threads.

counter64 (tests/guests/counter64.S, see test_migration.py): each
iteration n rewrites 32 pattern pages, checks the previous pattern and the
TSC, and vCPU 0 prints "count n\\r\\n" on COM1; with 0 at DATA_IN it
counts forever. A guest moved while it runs must go on counting where it
stopped, with no pattern or TSC error.
"""

import errno
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hvcore
from conftest import DATA_IN, Machine
from test_migration import (KEY, check, child_env, console_text, counts,
                            run_until, state)

CHILD = Path(__file__).with_name("live_child.py")


class Running:
    """A counter64 VM counting forever, each vCPU on a thread of its own,
    with a UART "com1" whose output goes to ``console`` (and to
    ``output_fd`` when given)."""

    def __init__(self, hv, nr_vcpus=1, output_fd=None):
        self.m = Machine(hv)
        self.vm = self.m.vm
        self.m.load("counter64")
        self.console = []
        self.vm.add_serial(name="com1", output=self.console.append,
                           output_fd=output_fd)
        self.vcpus = []
        for i in range(nr_vcpus):
            vcpu = self.m.vcpu(i)
            vcpu.regs.rdi = i
            self.vcpus.append(vcpu)
        self.vm.write(DATA_IN, struct.pack("<Q", 0))  # count forever
        self.stop = threading.Event()
        self.errors = []
        self.threads = []

    def start(self, at_least=2):
        for vcpu in self.vcpus:
            t = threading.Thread(target=self._run, args=(vcpu,), daemon=True)
            t.start()
            self.threads.append(t)
        self.wait(at_least)
        return self

    def _run(self, vcpu):
        try:
            while not self.stop.is_set():
                exit = vcpu.run()
                if exit.reason != hvcore.ExitReason.KICK:
                    raise AssertionError(f"vCPU {vcpu.id}: {exit}")
        except BaseException as exc:  # noqa: B902 - reported by halt()
            self.errors.append(exc)

    def count(self):
        return min(state(self.vm, i)[0] for i in range(len(self.vcpus)))

    def wait(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while self.count() < n:
            assert time.monotonic() < deadline, "the guest does not count"
            time.sleep(0.005)

    def halt(self):
        """Stops the vCPU threads (also those of a handed-over VM)."""
        self.stop.set()
        for vcpu in self.vcpus:
            vcpu.kick()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive()
        self.threads = []
        assert not self.errors, self.errors

    def close(self):
        if self.threads:
            self.stop.set()
            for vcpu in self.vcpus:
                vcpu.kick()
            for t in self.threads:
                t.join(30)
        self.vm.close()


@pytest.fixture
def running(hv):
    made = []

    def make(nr_vcpus=1, output_fd=None, at_least=2):
        made.append(Running(hv, nr_vcpus, output_fd))
        return made[-1].start(at_least)

    yield make
    for r in made:
        r.close()


def uart(console):
    def setup(vm, user_data):
        vm.add_serial(name="com1", output=console.append)
    return setup


def check_completed(stats):
    assert isinstance(stats, hvcore.MigrateStats)
    assert stats.completed and stats.rounds >= 1
    assert stats.bytes_initial > 0 and stats.pages_initial > 0
    assert stats.downtime_us > 0
    assert stats.total_ms >= stats.setup_ms
    assert stats.downtime_us >= stats.pause_us
    doc = json.loads(stats.json())
    assert {k: doc[k] for k in stats.as_dict()} == stats.as_dict()
    assert doc["dirty_tracking"] in ("bitmap", "ring", "none")


def run_child(how, extra, sock, **popen):
    return subprocess.Popen(
        [sys.executable, str(CHILD), how, str(sock.fileno()), str(extra)],
        env=child_env(), pass_fds=[sock.fileno()], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, **popen)


def child_result(child):
    try:
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err.decode()
    return json.loads(out)


# -- live migration -----------------------------------------------------------

def test_live_migration_to_a_child_process(running):
    """A running SMP guest moves over a socketpair to a new process, which
    receives it with VM.migrate_receive() and lets it count on."""
    r = running(nr_vcpus=2)
    mine, theirs = socket.socketpair()
    with mine, theirs:
        child = run_child("migrate", 3, theirs)
        theirs.close()
        progress = []
        try:
            stats = r.vm.migrate_send(mine, user_data=b"live",
                                      progress=progress.append)
        except BaseException:
            child.kill()
            raise
        result = child_result(child)
    check_completed(stats)
    assert progress and all(isinstance(p, hvcore.MigrateStats)
                            for p in progress)
    assert progress[-1].rounds <= stats.rounds
    moved = [state(r.vm, i)[0] for i in range(2)]
    # handed over: paused for good, and the copy went on from there
    assert r.vm.is_paused
    with pytest.raises(hvcore.HvError) as info:
        r.vm.resume()
    assert info.value.errno == errno.EPERM
    r.halt()
    assert [state(r.vm, i)[0] for i in range(2)] == moved
    assert result["user_data"] == "live"
    assert result["start"] == moved
    end = max(moved) + 3
    assert result["states"] == [[end, 0, 0], [end, 0, 0]]
    # vCPU 0 may have been stopped halfway through a line
    assert result["console"].endswith(counts(moved[0] + 1, end))
    assert console_text(r.console).startswith(counts(1, 2))


def receive_in_thread(hv, listener, **options):
    """VM.migrate_receive() of the first connection to ``listener``, on a
    thread; returns (thread, result dict with "vm" or "error")."""
    result = {}

    def receive():
        try:
            conn, _ = listener.accept()
            with conn:
                result["vm"] = hvcore.VM.migrate_receive(hv, conn, **options)
        except BaseException as exc:  # noqa: B902 - checked by the test
            result["error"] = exc

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    return t, result


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_migrate_listen_and_connect(hv, running, tmp_path, transport):
    if transport == "tcp":
        listener = hvcore.migrate_listen("tcp:127.0.0.1:0")
        assert listener.family == socket.AF_INET
        port = listener.getsockname()[1]
        assert port > 0
        addr = f"tcp:127.0.0.1:{port}"
    else:
        path = tmp_path / "mig.sock"
        path.write_bytes(b"")  # not a socket: refused, not removed
        with pytest.raises(hvcore.HvError):
            hvcore.migrate_listen(f"unix:{path}")
        assert path.exists()
        path.unlink()
        listener = hvcore.migrate_listen(f"unix:{path}")
        assert listener.family == socket.AF_UNIX
        addr = f"unix:{path}"
    r = running()
    console = []
    with listener:
        t, result = receive_in_thread(hv, listener, key=KEY,
                                      setup=uart(console))
        with hvcore.migrate_connect(addr) as sock:
            assert sock.type == socket.SOCK_STREAM
            if transport == "tcp":
                assert sock.getsockopt(socket.IPPROTO_TCP,
                                       socket.TCP_NODELAY)
            stats = r.vm.migrate_send(sock, key=KEY, max_downtime_ms=50,
                                      max_rounds=5)
        t.join(60)
    assert not t.is_alive() and "error" not in result, result
    check_completed(stats)
    assert stats.tls == 0
    r.halt()
    moved = r.count()
    with result["vm"] as vm:
        assert state(vm, 0)[0] == moved
        run_until(vm, moved + 2)
        check(vm, moved + 2)
        assert console_text(console).endswith(counts(moved + 1, moved + 2))


def test_migration_over_three_connections(hv, running):
    """connections=3 to ``address``: the receiver takes the extra ones on
    its listening socket (listen_fd); the guest counts on."""
    listener = hvcore.migrate_listen("tcp:127.0.0.1:0")
    addr = f"tcp:127.0.0.1:{listener.getsockname()[1]}"
    r = running()
    console = []
    with listener:
        t, result = receive_in_thread(hv, listener, key=KEY,
                                      setup=uart(console),
                                      listen_fd=listener)
        with hvcore.migrate_connect(addr) as sock:
            stats = r.vm.migrate_send(sock, key=KEY, max_downtime_ms=50,
                                      connections=3, address=addr)
        t.join(60)
    assert not t.is_alive() and "error" not in result, result
    check_completed(stats)
    assert stats.connections == 3
    assert len(stats.connection_pages) == 3
    assert sum(stats.connection_pages) == (
        stats.pages_initial + stats.pages_precopy + stats.pages_final)
    assert '"connection_pages":[' in stats.json()
    r.halt()
    moved = r.count()
    with result["vm"] as vm:
        assert state(vm, 0)[0] == moved
        run_until(vm, moved + 2)
        check(vm, moved + 2)
    with pytest.raises(hvcore.HvError) as info:
        r.vm.migrate_send(socket.socket(), connections=17, address=addr)
    assert info.value.errno in (errno.EINVAL, errno.EBUSY)


def test_receiver_refuses_a_wrong_key_and_the_source_runs_on(hv, running):
    r = running()
    listener = hvcore.migrate_listen("tcp:127.0.0.1:0")
    with listener:
        t, result = receive_in_thread(hv, listener, key=bytes(32),
                                      setup=uart([]))
        port = listener.getsockname()[1]
        with hvcore.migrate_connect(f"tcp:127.0.0.1:{port}") as sock:
            with pytest.raises(hvcore.HvError) as info:
                r.vm.migrate_send(sock, key=KEY)
        t.join(60)
    assert result["error"].errno == errno.EKEYREJECTED, result
    assert info.value.message  # the destination's refusal, in words
    assert isinstance(info.value.stats, hvcore.MigrateStats)
    assert not info.value.stats.completed
    assert not r.vm.is_paused
    r.wait(r.count() + 2)  # still counting here
    r.halt()
    check(r.vm, r.count())


def make_certs(directory):
    k = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    script = (
        f"openssl req -x509 {k} -keyout ca.key -out ca.pem -days 1 "
        "-subj /CN=py-ca && "
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > srv.ext && "
        f"openssl req {k} -keyout srv.key -out srv.csr -subj /CN=localhost "
        "&& openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out srv.pem -days 1 -extfile srv.ext")
    done = subprocess.run(["sh", "-c", script], cwd=directory,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_live_migration_over_tls(hv, running, tmp_path):
    make_certs(tmp_path)
    r = running()
    listener = hvcore.migrate_listen("tcp:127.0.0.1:0")
    server = hvcore.MigrateTLS(cert=tmp_path / "srv.pem",
                               key=str(tmp_path / "srv.key"))
    console = []
    with listener:
        t, result = receive_in_thread(hv, listener, tls=server,
                                      setup=uart(console))
        port = listener.getsockname()[1]
        with hvcore.migrate_connect(f"tcp:127.0.0.1:{port}") as sock:
            stats = r.vm.migrate_send(
                sock, tls={"ca": tmp_path / "ca.pem",
                           "server_name": "localhost"})
        t.join(60)
    assert "error" not in result, result
    check_completed(stats)
    assert stats.tls == 1 and json.loads(stats.json())["tls"] == 1
    r.halt()
    with result["vm"] as vm:
        moved = state(vm, 0)[0]
        run_until(vm, moved + 1)
        check(vm, moved + 1)


def test_cancel_from_another_thread(hv, running):
    """migrate_cancel() on this thread stops migrate_send() on another:
    ECANCELED there, the receiver sees the stream end, the guest counts
    on here."""
    r = running()
    mine, theirs = socket.socketpair()
    t, result = None, {}

    def receive():
        try:
            result["vm"] = hvcore.VM.migrate_receive(hv, theirs,
                                                     setup=uart([]))
        except BaseException as exc:  # noqa: B902 - checked below
            result["error"] = exc

    rounds = threading.Event()

    def send():
        try:
            # 1 MiB/s: each pre-copy round of the 32+ pages the guest
            # dirties per count takes over 0.1 s, and at that rate they
            # never fit the 10 ms budget, so 30 rounds would follow
            result["stats"] = r.vm.migrate_send(
                mine, bandwidth_mib=1, progress=lambda s: rounds.set())
        except BaseException as exc:  # noqa: B902 - checked below
            result["send_error"] = exc

    with mine, theirs:
        t = threading.Thread(target=receive, daemon=True)
        t.start()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        assert rounds.wait(30), "no pre-copy round ended"
        assert sender.is_alive()
        asked = time.monotonic()
        r.vm.migrate_cancel()
        sender.join(30)
        assert not sender.is_alive()
        took = time.monotonic() - asked
        mine.shutdown(socket.SHUT_RDWR)
        t.join(30)
    assert "stats" not in result, result["stats"]
    err = result["send_error"]
    assert isinstance(err, hvcore.HvError) and err.errno == errno.ECANCELED
    assert err.function == "hvc_vm_migrate_send"
    assert not err.stats.completed
    assert took < 5, took
    assert "vm" not in result and isinstance(result["error"], hvcore.HvError)
    assert not r.vm.is_paused
    r.wait(r.count() + 2)
    r.halt()
    check(r.vm, r.count())
    r.vm.migrate_cancel()  # none runs: no effect, no error


def test_bandwidth_limit_and_auto_converge(hv, running):
    """At 1 MiB/s the guest dirties pages faster than the link carries
    them: max_rounds ends the pre-copy, the rate stays under the limit, and
    auto-converge throttles the vCPUs."""
    r = running()
    mine, theirs = socket.socketpair()
    result = {}

    def receive():
        try:
            result["vm"] = hvcore.VM.migrate_receive(hv, theirs,
                                                     setup=uart([]))
        except BaseException as exc:  # noqa: B902 - checked below
            result["error"] = exc

    with mine, theirs:
        t = threading.Thread(target=receive, daemon=True)
        t.start()
        # eight rounds: a loaded host may starve the guest for a round or
        # two, and only a round the guest outran raises the throttle
        stats = r.vm.migrate_send(mine, bandwidth_mib=1, max_rounds=8,
                                  auto_converge=True)
        t.join(60)
    assert "error" not in result, result
    check_completed(stats)
    assert 2 <= stats.rounds <= 9  # the first pass and at most 8 more
    assert stats.bytes_precopy > 0
    # a round's rate may use up to 100 ms of saved credit
    assert 0 < stats.throughput_bps <= (1 << 20) * 1.5, stats.as_dict()
    assert stats.throttle_percent >= 20, stats.as_dict()
    assert json.loads(stats.json())["throttle_percent"] == \
        stats.throttle_percent
    r.halt()
    with result["vm"] as vm:
        n = state(vm, 0)[0]
        run_until(vm, n + 1)
        check(vm, n + 1)


def test_progress_stops_or_raises(hv, running):
    r = running()
    for progress, expected in ((lambda stats: False, hvcore.HvError),
                               (lambda stats: 1 / 0, ZeroDivisionError)):
        mine, theirs = socket.socketpair()
        drained = threading.Thread(target=lambda: theirs.recv_into(
            bytearray(8 << 20), 8 << 20, socket.MSG_WAITALL), daemon=True)
        with mine, theirs:
            drained.start()
            with pytest.raises(expected) as info:
                r.vm.migrate_send(mine, progress=progress)
            mine.shutdown(socket.SHUT_RDWR)
            drained.join(30)
        if expected is hvcore.HvError:
            assert info.value.errno == errno.ECANCELED
        else:
            assert isinstance(info.value.__cause__, hvcore.HvError)
            assert info.value.stats.rounds >= 1
        assert not r.vm.is_paused
    r.wait(r.count() + 1)


# -- live snapshots -----------------------------------------------------------

@pytest.mark.parametrize("leave_paused", [False, True])
def test_snapshot_live_then_restore(hv, running, tmp_path, leave_paused):
    r = running()
    path = tmp_path / "live.snap"
    key = KEY if leave_paused else None  # encrypted in one of the two
    stats = r.vm.snapshot_live(path, leave_paused=leave_paused, key=key,
                               user_data=b"snap", max_downtime_ms=20)
    assert isinstance(stats, hvcore.MigrateStats)
    assert stats.rounds >= 1 and stats.bytes_initial > 0
    assert stats.downtime_us > 0
    json.loads(stats.json())
    assert path.stat().st_size > 0
    assert r.vm.is_paused == leave_paused
    if leave_paused:
        saved = r.count()
        time.sleep(0.05)
        assert r.count() == saved  # the snapshot is the last state
        r.vm.resume()
    r.wait(r.count() + 2)  # the source counts on
    r.halt()
    seen, console = [], []

    def setup(vm, user_data):
        seen.append(user_data)
        vm.add_serial(name="com1", output=console.append)

    if key is not None:
        with pytest.raises(hvcore.HvError) as info:
            hvcore.VM.restore(hv, path, setup=setup)
        assert info.value.errno == errno.EKEYREJECTED
        assert b"count" not in path.read_bytes()[80:]
    with hvcore.VM.restore(hv, path, key=key, setup=setup) as vm:
        assert seen == [b"snap"]
        n = state(vm, 0)[0]
        assert n >= 2
        if leave_paused:
            assert n == saved
        run_until(vm, n + 2)
        check(vm, n + 2)
        assert console_text(console).endswith(counts(n + 1, n + 2))


# -- arguments ----------------------------------------------------------------

def test_bad_arguments_raise_with_a_message(hv, running, tmp_path):
    for addr in ("bogus", "tcp:127.0.0.1", "tcp:127.0.0.1:99999", "unix:"):
        for call in (hvcore.migrate_connect, hvcore.migrate_listen):
            with pytest.raises(hvcore.HvError) as info:
                call(addr)
            assert info.value.errno == errno.EINVAL, (call, addr)
            assert addr in info.value.message, info.value.message
    for bad in (None, 4444, ("127.0.0.1", 1)):
        with pytest.raises(TypeError):
            hvcore.migrate_connect(bad)
    with pytest.raises(ValueError, match="NUL"):
        hvcore.migrate_listen("unix:/tmp/a\0b")

    r = running()
    mine, theirs = socket.socketpair()
    with mine, theirs:
        with pytest.raises(ValueError, match="32 bytes"):
            r.vm.migrate_send(mine, key=b"short")
        with pytest.raises(ValueError, match="max_rounds"):
            r.vm.migrate_send(mine, max_rounds=-1)
        with pytest.raises(ValueError, match="bandwidth_mib"):
            r.vm.migrate_send(mine, bandwidth_mib=1 << 32)
        with pytest.raises(TypeError, match="socket"):
            r.vm.migrate_send(str(tmp_path / "x"))
        with pytest.raises(TypeError, match="MigrateTLS"):
            r.vm.migrate_send(mine, tls="ca.pem")
        with pytest.raises(TypeError):
            r.vm.migrate_send(mine, tls={"nonsense": 1})
        mine.settimeout(1.0)
        with pytest.raises(ValueError, match="blocking"):
            r.vm.migrate_send(mine)
        mine.settimeout(None)
        with pytest.raises(hvcore.HvError) as info:
            r.vm.migrate_send(mine, key=KEY, passphrase="both")
        assert info.value.errno == errno.EINVAL and info.value.message
        with pytest.raises(hvcore.HvError) as info:
            r.vm.migrate_send(mine, tls=hvcore.MigrateTLS(
                ca=tmp_path / "missing-ca.pem"))
        assert info.value.errno == errno.ENOENT
        assert "missing-ca.pem" in info.value.message, info.value.message
        with pytest.raises(hvcore.HvError) as info:
            r.vm.snapshot_live("")
        assert info.value.errno == errno.EINVAL
        with pytest.raises(TypeError):
            r.vm.snapshot_live(mine)
        with pytest.raises(hvcore.HvError) as info:
            r.vm.snapshot_live(tmp_path / "no-such-dir" / "x.snap")
        assert "no-such-dir" in info.value.message
        with pytest.raises(hvcore.HvError) as info:
            r.vm.handover_fd("com1", 0)  # no hand-over being received
        assert info.value.errno == errno.ENOENT
        with r.vm.paused():
            with pytest.raises(hvcore.HvError) as info:
                r.vm.migrate_send(mine)
            assert info.value.errno == errno.EBUSY
            assert r.vm.is_paused
    # a hand-over needs a unix socket
    listener = hvcore.migrate_listen("tcp:127.0.0.1:0")
    with listener, hvcore.migrate_connect(
            "tcp:127.0.0.1:%d" % listener.getsockname()[1]) as sock:
        with pytest.raises(hvcore.HvError) as info:
            r.vm.handover_send(sock)
        assert info.value.errno == errno.EINVAL and info.value.message
    assert not r.vm.is_paused
    r.wait(r.count() + 1)
    r.halt()
    check(r.vm, r.count())


def test_stats_objects_are_read_only_and_complete(running, tmp_path):
    r = running()
    path_stats = r.vm.snapshot_live(tmp_path / "stats.snap")
    fields = hvcore.MigrateStats.fields()
    assert fields[:4] == ("dirty_mode", "rounds", "completed", "setup_ms")
    assert fields.index("throttle_percent") + 1 == fields.index("tls")
    assert fields[-4:] == ("connections", "postcopy_channel",
                           "connection_bytes", "connection_pages")
    assert "reserved" not in fields
    assert list(path_stats.as_dict()) == list(fields)
    values = path_stats.as_dict()
    per_conn = ("connection_bytes", "connection_pages")
    assert all(isinstance(v, int) for k, v in values.items()
               if k not in per_conn)
    # a live snapshot writes one stream: one "connection", with every page
    assert values["connections"] == 1
    assert values["connection_pages"] == [
        values["pages_initial"] + values["pages_precopy"]
        + values["pages_final"]]
    with pytest.raises(AttributeError):
        path_stats.rounds = 3
    with pytest.raises(AttributeError):
        path_stats.no_such_field
    assert "rounds=" in repr(path_stats)
    assert path_stats == path_stats and path_stats != object()
    doc = json.loads(path_stats.json())
    assert set(doc) == set(fields) | {"dirty_tracking"}
    r.halt()


# -- hand-over ----------------------------------------------------------------

def test_handover_to_a_child_process(hv, running):
    """The running guest is handed over to a new process over a unix
    socketpair: its memory is shared, not copied, and the UART's output
    descriptor (a pipe) goes along, so the pipe shows one unbroken count
    from the guest in both processes."""
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as pipe:
        r = running(output_fd=write_end, at_least=3)
        mine, theirs = socket.socketpair(socket.AF_UNIX)
        with mine, theirs:
            child = run_child("handover", 3, theirs)
            theirs.close()
            try:
                stats = r.vm.handover_send(mine, user_data=b"upgrade")
            except BaseException:
                child.kill()
                raise
            result = child_result(child)
        r.halt()
        os.close(write_end)  # the child closed its copy when it exited
        text = pipe.read().decode()
    assert isinstance(stats, hvcore.HandoverStats)
    assert stats.completed and stats.regions == 1
    assert stats.device_fds == 1  # the UART's output pipe; no input fd
    assert stats.memory_bytes == 4 << 20
    assert stats.stream_bytes > 0
    assert stats.pause_us >= stats.vcpu_stop_us
    assert set(stats.as_dict()) == set(hvcore.HandoverStats.fields())
    with pytest.raises(hvcore.HvError) as info:
        r.vm.resume()
    assert info.value.errno == errno.EPERM
    assert result["user_data"] == "upgrade"
    assert result["empty_slot_errno"] == errno.ENOENT
    start = result["start"][0]
    assert start >= 3
    assert result["states"] == [[start + 3, 0, 0]]
    # one unbroken count through the hand-over, on the same pipe
    assert text == counts(1, start + 3)
    assert result["console"].endswith(counts(start + 1, start + 3))


def test_migrate_receive_gives_up_on_a_stalled_sender(hv):
    """A sender that keeps the connection open and sends nothing: the
    receive fails with ETIMEDOUT after timeout_ms, starting nothing; the
    bounds of the option are checked."""
    mine, theirs = socket.socketpair()
    with mine, theirs:
        t0 = time.monotonic()
        with pytest.raises(hvcore.HvError) as e:
            hvcore.VM.migrate_receive(hv, theirs, timeout_ms=200)
        took = time.monotonic() - t0
        assert e.value.errno == errno.ETIMEDOUT, e.value
        assert "stalled" in str(e.value) and "200 ms" in str(e.value)
        assert 0.19 <= took < 5, took
        with pytest.raises(ValueError):
            hvcore.VM.migrate_receive(hv, theirs, timeout_ms=-1)
