"""The ownership tree of C handles, and safe use of a handle.

libhvcore owns its objects as a tree (hypervisor > VM > vCPUs and memory
regions): destroying a VM destroys what hangs under it, and using a handle
after that is undefined behaviour. Python objects can outlive their C
objects, and several threads may use them, so every C handle the bindings
hold is a :class:`Node` that:

* marks its whole subtree closed when it is destroyed, so a child's
  ``close()`` becomes a no-op and any other use raises ClosedError instead
  of passing a dangling pointer to C;
* counts the calls in progress on it and its descendants, so that it is
  never destroyed under a call running on another thread (``close()``
  raises HvError(EBUSY) instead, as the C library does for a running vCPU).

One re-entrant lock per tree guards pointers and counts; it is never held
across a C call, so handlers that call back into the bindings cannot
deadlock on it.
"""

import errno
import threading

from .errors import ClosedError, HvError

#: Nodes whose C object could not be destroyed during garbage collection;
#: kept so that the callbacks C may still call stay alive.
_leaked = []


class Node:
    """A C handle (``ptr``) with its parent and children."""

    kind = "handle"
    #: Close the children one by one before this node (the C call refuses
    #: while they exist), instead of letting C destroy them with it.
    close_children_first = False

    def __init__(self, ptr, parent=None):
        self.ptr = ptr
        self.key = ptr
        self.parent = parent
        self.children = {}
        self.users = 0
        self.closed_reason = None
        self.lock = parent.lock if parent is not None else threading.RLock()
        if parent is not None:
            with self.lock:
                parent.children[ptr] = self

    def describe(self):
        """Name used in messages ("VM", "vCPU 0", ...)."""
        return self.kind

    @property
    def closed(self):
        return self.ptr is None

    # -- use ------------------------------------------------------------

    def acquire(self):
        """Counts a use of this node and its ancestors; returns the ptr."""
        with self.lock:
            ptr = self.ptr
            if ptr is None:
                raise ClosedError(self.describe(), self._closed_message())
            node = self
            while node is not None:
                node.users += 1
                node = node.parent
        return ptr

    def release(self):
        with self.lock:
            node = self
            while node is not None:
                node.users -= 1
                node = node.parent

    def call(self, func, *args):
        """``func(ptr, *args)`` while this node is held open."""
        ptr = self.acquire()
        try:
            return func(ptr, *args)
        finally:
            self.release()

    def _closed_message(self):
        what = self.describe()
        if self.closed_reason:
            return f"{what} is closed: {self.closed_reason}"
        return f"{what} is closed"

    # -- close ----------------------------------------------------------

    def destroy(self, ptr):
        """Destroys the C object ``ptr`` (subclasses call into C)."""
        raise NotImplementedError

    def on_closed(self):
        """Drops what was kept for the C object (subclasses)."""

    def _subtree(self):
        nodes = [self]
        for child in list(self.children.values()):
            nodes.extend(child._subtree())
        return nodes

    def close(self):
        """Destroys the C object once; True when this call destroyed it.

        Raises HvError(EBUSY) while a call on this node or a descendant is
        in progress, and the C library's error if it refuses; the node then
        stays open.
        """
        if self.close_children_first:
            for child in list(self.children.values()):
                child.close()
        with self.lock:
            ptr = self.ptr
            if ptr is None:
                return False
            if self.users:
                raise HvError(
                    errno.EBUSY, "busy",
                    f"{self.describe()} is in use: a call on it or on an "
                    "object under it (such as vcpu.run()) is in progress",
                    "close")
            subtree = self._subtree()
            saved = [(node, node.ptr) for node in subtree]
            for node in subtree:
                node.ptr = None
                if node is not self:
                    node.closed_reason = f"its {self.kind} was closed"
            # Keep the ancestors open while C destroys this object.
            node = self.parent
            while node is not None:
                node.users += 1
                node = node.parent
        try:
            self.destroy(ptr)
        except BaseException:
            with self.lock:
                for node, old in saved:
                    node.ptr = old
                    node.closed_reason = None
            raise
        finally:
            with self.lock:
                node = self.parent
                while node is not None:
                    node.users -= 1
                    node = node.parent
        with self.lock:
            if self.parent is not None:
                self.parent.children.pop(self.key, None)
        for node in reversed(subtree):
            node.children = {}
            node.on_closed()
        return True

    def forget(self, reason):
        """Marks this subtree closed without destroying anything: for a C
        object the library destroyed itself (a failed restore's VM).
        The caller makes sure no call on it is still in progress."""
        with self.lock:
            subtree = self._subtree()
            for node in subtree:
                node.ptr = None
                node.closed_reason = reason
            if self.parent is not None:
                self.parent.children.pop(self.key, None)
        for node in reversed(subtree):
            node.children = {}
            node.on_closed()

    def close_from_gc(self):
        """close() for finalizers: never raises; keeps what it cannot free."""
        try:
            self.close()
        except Exception:
            _leaked.append(self)
