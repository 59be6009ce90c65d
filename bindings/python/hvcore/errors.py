"""Exceptions raised by the hvcore bindings.

Every libhvcore call that fails returns a negative errno; the bindings turn
that into :class:`HvError`, an :class:`OSError` whose ``errno`` is the
positive code, whose ``strerror`` is ``hvc_strerror()``'s text and whose
``message`` is what ``hvc_last_error()`` said on the failing thread right
after the call ("memory region 0x0+0x1000 overlaps region 0x0+0x400000").
"""

import errno as _errno

__all__ = ["HvError", "ClosedError", "LibraryError"]


class HvError(OSError):
    """A libhvcore call failed.

    Attributes:
        errno: the positive errno value (``errno.EEXIST``, ...).
        strerror: the library's short description of the code.
        message: the library's sentence about what exactly was wrong
            (may be empty).
        function: the name of the C function that failed, when known.
    """

    def __init__(self, errno, strerror, message="", function=None):
        super().__init__(errno, strerror)
        self.message = message or ""
        self.function = function

    @property
    def code(self):
        """The negative errno value the C call returned."""
        return -self.errno

    def __str__(self):
        name = _errno.errorcode.get(self.errno, str(self.errno))
        text = f"{self.strerror} [{name}]"
        if self.function:
            text = f"{self.function}: {text}"
        if self.message:
            text = f"{text}: {self.message}"
        return text

    def __repr__(self):
        return (f"{type(self).__name__}({self.errno!r}, {self.strerror!r}, "
                f"{self.message!r}, {self.function!r})")

    def __reduce__(self):
        return (type(self),
                (self.errno, self.strerror, self.message, self.function))


class ClosedError(HvError, ValueError):
    """An object was used after ``close()`` (or after its parent closed).

    It is a :class:`ValueError`, like I/O on a closed file, and an
    :class:`HvError` with ``errno.EINVAL``, which is what the C library
    answers for a NULL handle.
    """

    def __init__(self, what, message=None, function=None):
        if message is None:
            message = f"{what} is closed"
        super().__init__(_errno.EINVAL, "invalid argument", message, function)
        self.what = what

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (type(self), (self.what, self.message, self.function))


class LibraryError(ImportError):
    """libhvcore could not be found, loaded, or is not a usable version.

    ``path`` is the file that was refused (``None`` when nothing was found);
    the message says why, and lists every place that was tried.
    """
