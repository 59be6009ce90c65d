"""Opening a backend, its capabilities, and the list of backends."""

import operator
from ctypes import byref, c_uint64, c_void_p
from dataclasses import dataclass

from ._handle import Node
from ._lib import lib
from .constants import Cap
from .tsc import HypervisorTscMixin
from .vm import VM

__all__ = ["Hypervisor", "Backend", "backends"]


@dataclass(frozen=True)
class Backend:
    """A compiled-in backend and whether it can open on this host now.

    ``reason`` is the library's explanation when it cannot ("/dev/kvm: no
    such device", ...), else "".
    """

    name: str
    available: bool
    errno: int = 0
    reason: str = ""


def backends():
    """Every backend compiled into the library, probed: [Backend]."""
    found = []
    for index in range(lib.hvc_backend_count()):
        name = lib.hvc_backend_name(index)
        if name is None:
            continue
        rc, reason = lib.hvc_backend_probe(name.encode())
        found.append(Backend(name, rc == 0, -rc if rc < 0 else 0, reason))
    return found


def cap_id(cap):
    """A capability id from a Cap, its value, or its name ("max_vcpus")."""
    if isinstance(cap, str):
        try:
            return Cap[cap.upper()]
        except KeyError:
            names = ", ".join(c.name.lower() for c in Cap)
            raise ValueError(f"unknown capability {cap!r}; known: {names}") \
                from None
    return operator.index(cap)  # an unknown id: the library says EINVAL


class HypervisorNode(Node):
    """A ``hvc_hypervisor``: the root of the tree."""

    kind = "hypervisor"
    close_children_first = True  # hvc_hypervisor_close() refuses live VMs

    def destroy(self, ptr):
        lib.hvc_hypervisor_close(ptr)


class Hypervisor(HypervisorTscMixin):
    """An opened accelerator backend: ``Hypervisor()`` opens the first one
    that works here ("kvm" on Linux), ``Hypervisor("kvm")`` that one.

    It is the root of the object tree: closing it (``close()``, the
    ``with`` block, or garbage collection) first closes every VM created
    from it. HvError ENOENT for an unknown backend name, or the backend's
    own error (EACCES, ENODEV for /dev/kvm, ...).

    Any thread may use it (hvcore/hypervisor.h).
    """

    def __init__(self, name=None):
        out = c_void_p()
        raw = None if name is None else str(name).encode()
        lib.hvc_hypervisor_open(raw, byref(out))
        self._node = HypervisorNode(out.value)
        self._backend = lib.hvc_hypervisor_backend(out.value).decode()

    @property
    def backend(self):
        """The backend's name ("kvm")."""
        return self._backend

    @property
    def closed(self):
        return self._node.closed

    def cap(self, cap):
        """One capability: ``hv.cap("max_vcpus")`` or ``hv.cap(Cap.MSI)``.
        Boolean capabilities are 0 or 1."""
        value = c_uint64()
        self._node.call(lib.hvc_hypervisor_get_cap, cap_id(cap), byref(value))
        return value.value

    def caps(self):
        """Every capability these bindings know: {Cap: value}."""
        return {cap: self.cap(cap) for cap in Cap}

    def create_vm(self, **options):
        """A new :class:`VM`; keyword options as for ``VM()``."""
        return VM(self, **options)

    def restore_vm(self, source, **options):
        """A VM restored from a saved stream: ``VM.restore(self, source,
        **options)`` (see :meth:`hvcore.VM.restore`)."""
        return VM.restore(self, source, **options)

    def close(self):
        """Closes the VMs made from it, then the backend. Idempotent."""
        self._node.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        node = getattr(self, "_node", None)
        if node is not None:
            node.close_from_gc()

    def __repr__(self):
        state = " closed" if self.closed else ""
        return f"<hvcore.Hypervisor {self._backend!r}{state}>"
