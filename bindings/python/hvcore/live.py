"""Live migration, live snapshots, the transport and hand-over
(hvcore/migration.h, "Live migration"; hvcore/handover.h).

Live migration moves a *running* VM to another process or host over a
connected stream socket::

    # destination                          # source (vCPU threads running)
    listener = hvcore.migrate_listen(      sock = hvcore.migrate_connect(
        "tcp:0.0.0.0:4444")                    "tcp:dst:4444")
    conn, _ = listener.accept()            stats = vm.migrate_send(sock)
    vm = hvcore.VM.migrate_receive(        vm.close()  # handed over
        hv, conn, setup=attach)

``vm.migrate_send()`` copies memory while the guest runs, round after
round, then pauses it for the rest and the state, and returns once the
destination acknowledged: the source VM then stays paused for good
(``resume()`` raises EPERM): kick its vCPU threads out of ``run()``
(``vcpu.kick()``) and close it. On failure (HvError: ECANCELED,
ETIMEDOUT, ECONNABORTED, the destination's error) the source runs on as
before. ``vm.migrate_cancel()`` stops it from any thread.

``vm.snapshot_live(path)`` writes a snapshot file the same way while the
guest runs (``VM.restore(hv, path)`` reads it back).

Hand-over (``vm.handover_send(sock)`` / ``VM.handover_receive(hv, sock)``)
moves a running VM to another process on this host over a unix socket
without copying its memory: the memory files and device descriptors are
passed (SCM_RIGHTS). The receiver's ``setup`` takes a device's
descriptors with ``vm.handover_fd(device_name, slot)``.

Connections are an ``int`` file descriptor or an object with
``fileno()`` (a ``socket.socket``), in blocking mode (a socket with a
timeout is refused: the library's writes and reads would fail with
EAGAIN); the bindings never close them. ``migrate_connect()`` and
``migrate_listen()`` return ``socket.socket`` objects that the caller
closes (and, for "unix:PATH", unlinks PATH after listening).

Statistics come back as :class:`MigrateStats` / :class:`HandoverStats`,
read-only objects with every C field as an attribute; a failed call
attaches them to its exception as ``exc.stats``. Callables (``progress``,
``setup``) run on the calling thread inside the call; an exception they
raise is re-raised, chained to the library's HvError, as in
:mod:`hvcore.migration`.
"""

import ctypes
import errno
import operator
import os
import socket
from ctypes import byref, c_int

from . import _convert
from . import _structs_live as L
from ._lib import lib
from .constants import MigrateFlags, MigrateTlsFlags
from .errors import HvError
from .migration import (_Operation, _fd, _is_path, _key, _passphrase,
                        restore_options, run_restore)

__all__ = ["MigrateStats", "HandoverStats", "MigrateTLS", "migrate_connect",
           "migrate_listen", "LiveMixin"]


# ---------------------------------------------------------- statistics --

class _Stats:
    """A read-only copy of a C statistics struct: every field (but
    ``size``) as an attribute, in C order."""

    __slots__ = ("_raw",)
    _struct = None

    def __init__(self, raw):
        if not isinstance(raw, self._struct):
            raise TypeError(f"{type(self).__name__} is made by the library")
        copy = self._struct.from_buffer_copy(raw)
        # A library struct with fields appended after these: json() must
        # not read past this copy.
        copy.size = min(copy.size, ctypes.sizeof(self._struct))
        object.__setattr__(self, "_raw", copy)

    @classmethod
    def fields(cls):
        """The field names, in C order."""
        return tuple(name for name, _ in cls._struct._fields_
                     if name != "size" and not name.startswith("reserved"))

    def _value(self, name):
        v = getattr(self._raw, name)
        if isinstance(v, ctypes.Array):  # per connection: as many as used
            return list(v[:min(self._raw.connections, len(v))])
        return v

    def __getattr__(self, name):
        if name in self.fields():
            return self._value(name)
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.fields()))

    def as_dict(self):
        """``{field: int}`` for every field, in C order (a list of ints
        per connection for the per-connection ones, as in the JSON)."""
        return {name: self._value(name) for name in self.fields()}

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    __hash__ = None

    def __repr__(self):
        body = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"{type(self).__name__}({body})"


class MigrateStats(_Stats):
    """Statistics of ``vm.migrate_send()`` / ``vm.snapshot_live()``
    (``hvc_migrate_stats``): ``rounds``, ``completed`` (non-zero once the
    destination acknowledged), ``setup_ms``, ``total_ms``,
    ``downtime_us`` (the pause), ``bytes_*``/``pages_*`` of the initial
    pass, the pre-copy rounds and the final phase, ``throughput_bps``,
    ``dirty_pages_per_s``, ``remaining_pages``, ``expected_downtime_us``,
    ``pause_us``/``final_send_us``/``ack_wait_us`` (parts of the
    downtime), ``throttle_percent`` (auto-converge), ``tls``,
    ``dirty_mode``, ``connections`` with ``connection_bytes`` and
    ``connection_pages`` (lists, index 0 the main connection) and
    ``postcopy_channel``. :meth:`json` renders them as the library does."""

    __slots__ = ()
    _struct = L.MigrateStats

    def json(self):
        """The library's JSON object of these statistics
        (``hvc_migrate_stats_json``): every field by its C name, and
        "dirty_tracking" ("bitmap", "ring", "none")."""
        raw = self._raw
        length = lib.hvc_migrate_stats_json(byref(raw), None, 0)
        buf = ctypes.create_string_buffer(length + 1)
        lib.hvc_migrate_stats_json(byref(raw), buf, length + 1)
        return buf.value.decode("utf-8")


class HandoverStats(_Stats):
    """Statistics of ``vm.handover_send()`` (``hvc_handover_stats``):
    ``completed``, ``regions``, ``device_fds``, ``memory_bytes`` (shared,
    not copied), ``stream_bytes``, ``pause_us`` and its parts
    ``vcpu_stop_us``, ``save_us``, ``transfer_us``, the receiver's
    ``map_us`` and ``load_us``, and ``confirm_wait_us`` (microseconds)."""

    __slots__ = ()
    _struct = L.HandoverStats


def _new_stats(struct):
    return struct(size=ctypes.sizeof(struct))


def _attach_stats(exc, stats):
    try:
        exc.stats = stats
    except AttributeError:  # an exception type without a __dict__
        pass


# -------------------------------------------------------------- options --

class MigrateTLS:
    """TLS for a live migration (``hvc_migrate_tls``; TLS 1.2 or newer,
    OpenSSL's libssl loaded on first use).

    The sender is the TLS client: ``ca`` (PEM file of trusted CAs) is
    required there, ``server_name`` is the name or address the
    receiver's certificate must carry (None: the chain only), and
    ``cert``/``key`` are its own, for a receiver that asks. The receiver
    is the server: ``cert`` and ``key`` are required, and with
    ``verify_peer=True`` it requires a sender certificate signed by a CA
    of ``ca``. Paths are str, bytes or os.PathLike; the files are read
    during the call.
    """

    __slots__ = ("cert", "key", "ca", "server_name", "verify_peer")

    def __init__(self, *, cert=None, key=None, ca=None, server_name=None,
                 verify_peer=False):
        self.cert = cert
        self.key = key
        self.ca = ca
        self.server_name = server_name
        self.verify_peer = bool(verify_peer)

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}"
                           for name in self.__slots__)
        return f"MigrateTLS({fields})"

    def _to_c(self, keep):
        """The ``hvc_migrate_tls``; its strings are appended to ``keep``."""
        tls = L.MigrateTls(size=ctypes.sizeof(L.MigrateTls))
        for name in ("cert", "key", "ca"):
            value = getattr(self, name)
            if value is None:
                continue
            if not _is_path(value):
                raise TypeError(f"tls {name} must be a path, not "
                                f"{type(value).__name__}")
            raw = os.fsencode(value)
            if not raw or b"\0" in raw:
                raise ValueError(f"tls {name} {value!r} is not a file path")
            keep.append(raw)
            setattr(tls, name, raw)
        if self.server_name is not None:
            name = self.server_name
            raw = name.encode("idna" if not name.isascii() else "ascii") \
                if isinstance(name, str) else bytes(name)
            if not raw or b"\0" in raw:
                raise ValueError(f"tls server_name {name!r} is not a host "
                                 "name")
            keep.append(raw)
            tls.server_name = raw
        if self.verify_peer:
            tls.flags = int(MigrateTlsFlags.VERIFY_PEER)
        return tls


def _tls(op, tls):
    """A kept ``hvc_migrate_tls`` for ``tls`` (MigrateTLS or a dict of
    its keyword arguments), or None."""
    if tls is None:
        return None
    if isinstance(tls, dict):
        tls = MigrateTLS(**tls)
    if not isinstance(tls, MigrateTLS):
        raise TypeError("tls must be a hvcore.MigrateTLS or a dict, not "
                        f"{type(tls).__name__}")
    raw = tls._to_c(op.keep)
    op.keep.append(raw)
    return raw


def _conn_fd(conn, what):
    """The descriptor of a connection: an int or an object with
    ``fileno()`` in blocking mode."""
    if isinstance(conn, bool) or _is_path(conn):
        raise TypeError(f"{what} takes a connected socket or its file "
                        f"descriptor, not {type(conn).__name__}")
    if isinstance(conn, int):
        return _fd(conn)
    fileno = getattr(conn, "fileno", None)
    if not callable(fileno):
        raise TypeError(f"{what} takes a connected socket or its file "
                        f"descriptor, not {type(conn).__name__}")
    gettimeout = getattr(conn, "gettimeout", None)
    if callable(gettimeout) and gettimeout() is not None:
        raise ValueError(f"{what} needs a blocking socket, not one with a "
                         f"timeout of {gettimeout()} s (settimeout(None))")
    return _fd(fileno())


def _user_data(op, user_data):
    """(address, length) of a kept copy of ``user_data``."""
    data = memoryview(user_data if user_data is not None else b"").tobytes()
    if not data:
        return None, 0
    buf = ctypes.create_string_buffer(data, len(data))
    op.keep.append(buf)
    return ctypes.addressof(buf), len(data)


def _migrate_progress(op, progress):
    if progress is None:
        return None
    if not callable(progress):
        raise TypeError("progress must be callable, not "
                        f"{type(progress).__name__}")

    def trampoline(opaque, stats):
        try:
            if progress(MigrateStats(stats.contents)) is False:
                return -errno.ECANCELED
            return 0
        except BaseException as exc:  # noqa: B902 - nothing may reach C
            return op.fail(exc)

    fn = L.MigrateProgressFn(trampoline)
    op.keep.append(fn)
    return fn


def _migrate_options(op, *, max_downtime_ms=None, max_rounds=None,
                     timeout_ms=None, key=None, passphrase=None,
                     user_data=b"", bandwidth_mib=None, auto_converge=False,
                     tls=None, progress=None, leave_paused=False,
                     postcopy=False, postcopy_after_rounds=None,
                     connections=None, address=None):
    opts = L.MigrateOptions(size=ctypes.sizeof(L.MigrateOptions))
    for name, value in (("max_downtime_ms", max_downtime_ms),
                        ("max_rounds", max_rounds),
                        ("timeout_ms", timeout_ms),
                        ("bandwidth_mib", bandwidth_mib),
                        ("postcopy_after_rounds", postcopy_after_rounds),
                        ("connections", connections)):
        if value is not None:
            setattr(opts, name, _convert.u32(value, name))
    if address is not None:
        raw_addr = _convert.path(address) if hasattr(_convert, "path") \
            else (address.encode() if isinstance(address, str) else
                  bytes(address))
        op.keep.append(raw_addr)
        opts.address = raw_addr
    raw_key = _key(key)
    if raw_key is not None:
        op.keep.append(raw_key)
        opts.key = raw_key
    opts.passphrase = raw_pass = _passphrase(passphrase)
    op.keep.append(raw_pass)
    opts.user_data, opts.user_data_length = _user_data(op, user_data)
    flags = 0
    if auto_converge:
        flags |= MigrateFlags.AUTO_CONVERGE
    if leave_paused:
        flags |= MigrateFlags.LEAVE_PAUSED
    if postcopy or postcopy_after_rounds:
        flags |= MigrateFlags.POSTCOPY
    opts.flags = int(flags)
    raw_tls = _tls(op, tls)
    if raw_tls is not None:
        opts.tls = ctypes.pointer(raw_tls)
    fn = _migrate_progress(op, progress)
    if fn is not None:
        opts.progress = fn
    return opts


def _run_with_stats(op, vm, func, target, opts, stats_struct, stats_cls):
    """``func(vm, target, &opts, &stats)``; the statistics object (also
    attached to the exception as ``stats`` on failure)."""
    raw = _new_stats(stats_struct)
    node = vm._node
    try:
        op.call(node, node, func, target, byref(opts), byref(raw))
    except BaseException as exc:
        _attach_stats(exc, stats_cls(raw))
        raise
    return stats_cls(raw)


# ------------------------------------------------------------ transport --

def _address(addr):
    if isinstance(addr, str):
        raw = addr.encode("utf-8")
    elif isinstance(addr, (bytes, bytearray)):
        raw = bytes(addr)
    else:
        raise TypeError("a migration address is a str such as "
                        "'tcp:HOST:PORT' or 'unix:PATH', not "
                        f"{type(addr).__name__}")
    if b"\0" in raw:
        raise ValueError(f"migration address {addr!r} contains NUL")
    return raw


def _socket_of(fd):
    try:
        return socket.socket(fileno=fd)
    except BaseException:
        os.close(fd)
        raise


def migrate_connect(addr):
    """A ``socket.socket`` connected to migration address ``addr``
    ("unix:PATH", "tcp:HOST:PORT", "tcp:[v6]:PORT"; TCP_NODELAY set),
    blocking until connected. HvError EINVAL (a bad address; the
    message quotes it), EHOSTUNREACH, connect(2)'s errno."""
    return _socket_of(lib.hvc_migrate_connect(_address(addr)))


def migrate_listen(addr):
    """A listening ``socket.socket`` on migration address ``addr`` (as
    :func:`migrate_connect`; "tcp:127.0.0.1:0" picks a port, which
    ``getsockname()`` tells). A unix socket left at PATH by an earlier
    run is replaced; unlink PATH when done. ``accept()`` the sender."""
    return _socket_of(lib.hvc_migrate_listen(_address(addr)))


# --------------------------------------------------------------- the VM --

class LiveMixin:
    """The live-migration and hand-over calls of :class:`hvcore.VM`."""

    def migrate_send(self, conn, *, max_downtime_ms=None, max_rounds=None,
                     timeout_ms=None, key=None, passphrase=None,
                     user_data=b"", bandwidth_mib=None, auto_converge=False,
                     tls=None, progress=None, postcopy=False,
                     postcopy_after_rounds=None, connections=None,
                     address=None):
        """Migrates this running VM to ``VM.migrate_receive()`` at the
        other end of ``conn`` (a connected stream socket or its fd);
        returns :class:`MigrateStats` once the destination acknowledged.

        Call it on a thread that runs no vCPU (theirs go on running in
        ``run()``). Options (None: the library's default):
        ``max_downtime_ms`` (10), ``max_rounds`` of pre-copy (30),
        ``timeout_ms`` before the switchover (no limit),
        ``bandwidth_mib`` per second for pre-copy (no limit),
        ``auto_converge`` throttles a guest that dirties faster than the
        link; ``key``/``passphrase`` encrypt, ``user_data`` goes to the
        receiver's ``setup``; ``tls`` a :class:`MigrateTLS` (or dict);
        ``progress(stats)`` after each round, False to cancel;
        ``postcopy`` allows a post-copy switchover when pre-copy does not
        converge, ``postcopy_after_rounds`` forces one after that many
        rounds (the destination's VM then fills its memory in the
        background: ``VM.postcopy_*`` are not bound yet).
        ``connections`` (1-16) carry memory at once, the others opened to
        ``address`` ("unix:PATH", "tcp:HOST:PORT"), which also takes
        post-copy's page channel over TCP; the receiver then needs
        ``listen_fd``.

        On success this VM stays paused for good (kick its vCPU threads,
        then close it). HvError EBUSY (paused, or already migrating),
        ECANCELED, ETIMEDOUT, ECONNABORTED, EKEYREJECTED/EPROTO (TLS),
        the destination's error: the VM then runs on; ``exc.stats``.
        """
        op = _Operation()
        fd = _conn_fd(conn, "migrate_send")
        opts = _migrate_options(
            op, max_downtime_ms=max_downtime_ms, max_rounds=max_rounds,
            timeout_ms=timeout_ms, key=key, passphrase=passphrase,
            user_data=user_data, bandwidth_mib=bandwidth_mib,
            auto_converge=auto_converge, tls=tls, progress=progress,
            postcopy=postcopy, postcopy_after_rounds=postcopy_after_rounds,
            connections=connections, address=address)
        return _run_with_stats(op, self, lib.hvc_vm_migrate_send, fd, opts,
                               L.MigrateStats, MigrateStats)

    def migrate_cancel(self):
        """Asks a running ``migrate_send()`` or ``snapshot_live()`` of this
        VM to stop (from any thread): it raises HvError ECANCELED soon
        after and the VM runs on. No effect when none runs, or once the
        whole stream was sent."""
        self._node.call(lib.hvc_vm_migrate_cancel)

    def snapshot_live(self, path, *, leave_paused=False,
                      max_downtime_ms=None, max_rounds=None, timeout_ms=None,
                      key=None, passphrase=None, user_data=b"",
                      bandwidth_mib=None, auto_converge=False,
                      progress=None):
        """Saves this running VM to a snapshot file at ``path`` while it
        runs (pre-copy into a file, written atomically); returns
        :class:`MigrateStats` (``downtime_us`` is the pause). The VM is
        resumed afterwards, or stays paused with ``leave_paused=True``
        (``vm.resume()`` it). Options as :meth:`migrate_send`;
        ``migrate_cancel()`` stops it. ``VM.restore(hv, path)`` reads it.
        HvError EBUSY (paused, or a migration runs), ECANCELED,
        ETIMEDOUT, a file error naming the path: the VM runs on, the file
        is not written.
        """
        if not _is_path(path):
            raise TypeError("snapshot_live() takes a file path, not "
                            f"{type(path).__name__}")
        raw_path = os.fsencode(path)
        op = _Operation()
        opts = _migrate_options(
            op, max_downtime_ms=max_downtime_ms, max_rounds=max_rounds,
            timeout_ms=timeout_ms, key=key, passphrase=passphrase,
            user_data=user_data, bandwidth_mib=bandwidth_mib,
            auto_converge=auto_converge, progress=progress,
            leave_paused=leave_paused)
        return _run_with_stats(op, self, lib.hvc_snapshot_save_live,
                               raw_path, opts, L.MigrateStats, MigrateStats)

    @classmethod
    def migrate_receive(cls, hypervisor, conn, *, key=None, passphrase=None,
                        setup=None, progress=None, tls=None, kick_signal=0,
                        listen_fd=None, timeout_ms=0):
        """The VM ``vm.migrate_send()`` sends at the other end of ``conn``
        (a connected stream socket or its fd), as a new VM of
        ``hypervisor``, once the whole stream was read, checked and
        acknowledged. ``key``/``passphrase``: what the sender used;
        ``setup(vm, user_data)`` attaches the devices (as
        ``VM.restore()``); ``progress(done, total)``; ``tls`` a
        :class:`MigrateTLS` with this side's ``cert`` and ``key``;
        ``listen_fd`` the listening socket (or its fd) ``conn`` came from,
        where a sender's extra connections arrive;
        ``timeout_ms`` the longest wait for the sender's next bytes (0:
        30 s, 0xffffffff: none).

        The VM is not paused: run its vCPUs (``vm.vcpus``). HvError as
        ``VM.restore()``, ENODATA when the sender went away, ETIMEDOUT
        when it stalled, EPIPE when the acknowledgement could not be
        written; nothing is left then.
        """
        op = _Operation()
        fd = _conn_fd(conn, "migrate_receive")
        opts = restore_options(op, cls, hypervisor, key=key,
                               passphrase=passphrase, setup=setup,
                               progress=progress, kick_signal=kick_signal)
        raw_tls = _tls(op, tls)
        if raw_tls is not None:
            opts.tls = ctypes.addressof(raw_tls)
        if listen_fd is not None:
            opts.listen_fd = _conn_fd(listen_fd, "migrate_receive")
        timeout_ms = operator.index(timeout_ms)
        if not 0 <= timeout_ms <= 0xffffffff:
            raise ValueError(f"timeout_ms {timeout_ms} is not in "
                             "0..0xffffffff")
        opts.timeout_ms = timeout_ms
        return run_restore(op, cls, hypervisor, lib.hvc_vm_migrate_receive,
                           (fd,), opts)

    def handover_send(self, sock, *, user_data=b""):
        """Hands this running VM over to ``VM.handover_receive()`` at the
        other end of ``sock`` (a connected AF_UNIX stream socket or its
        fd) without copying its memory; returns :class:`HandoverStats`
        once the receiver confirmed. This VM then stays paused for good
        (kick its vCPU threads, close it); the receiver keeps the memory.
        ``user_data`` goes to the receiver's ``setup``. HvError EINVAL
        (not a unix socket), EBUSY, ENOTSUP (memory or a device that
        cannot be handed over: the message names it), ECONNABORTED, the
        receiver's error: the VM then runs on, unchanged; ``exc.stats``.
        """
        op = _Operation()
        fd = _conn_fd(sock, "handover_send")
        opts = L.HandoverOptions(size=ctypes.sizeof(L.HandoverOptions))
        opts.user_data, opts.user_data_length = _user_data(op, user_data)
        return _run_with_stats(op, self, lib.hvc_vm_handover_send, fd, opts,
                               L.HandoverStats, HandoverStats)

    @classmethod
    def handover_receive(cls, hypervisor, sock, *, setup=None,
                         progress=None, kick_signal=0):
        """The VM ``vm.handover_send()`` hands over at the other end of
        ``sock`` (a connected unix socket or its fd), as a new VM of
        ``hypervisor`` sharing the sender's memory. ``setup(vm,
        user_data)`` re-attaches the devices, taking their descriptors
        with ``vm.handover_fd(name, slot)``. HvError EBADMSG (a malformed
        packet or a descriptor of the wrong kind), EPROTO (not a
        hand-over), ENODATA (the sender went away), the errors of
        ``VM.restore()``; nothing is left then (untaken descriptors are
        closed)."""
        op = _Operation()
        fd = _conn_fd(sock, "handover_receive")
        opts = restore_options(op, cls, hypervisor, setup=setup,
                               progress=progress, kick_signal=kick_signal)
        return run_restore(op, cls, hypervisor, lib.hvc_vm_handover_receive,
                           (fd,), opts)

    def handover_fd(self, device, slot):
        """Takes descriptor ``slot`` that the sender passed for the device
        named ``device`` (a UART: 0 its output fd, 1 its input fd; a
        virtio-blk: its image), from the ``setup`` of
        ``VM.handover_receive()``; the caller owns the returned int fd
        (``os.close()`` it, or give it to a device). HvError ENOENT when
        there is no such descriptor, it was taken, or no hand-over is
        being received into this VM."""
        if not isinstance(device, (str, bytes)):
            raise TypeError("device must be a device name (str), not "
                            f"{type(device).__name__}")
        raw = device.encode("utf-8") if isinstance(device, str) else device
        if b"\0" in raw:
            raise ValueError(f"device name {device!r} contains NUL")
        out = c_int(-1)
        self._node.call(lib.hvc_vm_handover_fd, raw,
                        _convert.u32(slot, "slot"), byref(out))
        if out.value < 0:  # not what hvcore/handover.h says
            raise HvError(errno.EPROTO, "protocol error",
                          f"hvc_vm_handover_fd returned fd {out.value}",
                          "hvc_vm_handover_fd")
        return out.value
