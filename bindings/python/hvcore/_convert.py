"""Argument checks for values handed to C.

ctypes silently truncates an out-of-range integer to the C type; these
helpers refuse it instead, naming the argument.
"""

import ctypes
import operator


def uint(value, bits, what):
    """``value`` as an unsigned ``bits``-bit integer, or ValueError."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not "
                        f"{type(value).__name__}") from None
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what} {value:#x} does not fit in {bits} bits "
                         "unsigned")
    return value


def reg_value(value, what):
    """A 64-bit register value; negative values are two's complement."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not "
                        f"{type(value).__name__}") from None
    if -(1 << 63) <= value < 0:
        return value + (1 << 64)
    return uint(value, 64, what)


def u64(value, what):
    return uint(value, 64, what)


def u32(value, what):
    return uint(value, 32, what)


def length(value, what="length"):
    """A non-negative size_t."""
    return uint(value, 8 * ctypes.sizeof(ctypes.c_size_t), what)


def input_buffer(data):
    """(pointer-compatible object, length) for bytes-like ``data``.

    Writable buffers are passed without a copy; others are copied once.
    """
    if isinstance(data, bytes):
        return data, len(data)
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError("expected a bytes-like object, not "
                        f"{type(data).__name__}") from None
    if not view.readonly and view.c_contiguous:
        view = view.cast("B")
        return (ctypes.c_char * len(view)).from_buffer(view), len(view)
    raw = view.tobytes()
    return raw, len(raw)
