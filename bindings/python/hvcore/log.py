"""The library's log hook (``hvc_set_log()``): where libhvcore's messages go.

libhvcore never prints; until a hook is set it is silent. Two ways to
listen:

    hvcore.set_log(lambda level, message: print(level.name, message))
    hvcore.log_to_logging()          # into logging.getLogger("hvcore.library")

The hook is process-wide. The callback runs on whichever library thread
logs (a vCPU thread inside ``vcpu.run()``, the VM's event thread, a device
worker), several at once, so it must be thread-safe, should be quick, and
must not pause or destroy VMs, nor call :func:`set_log`. An exception it
raises is logged to ``logging.getLogger("hvcore")`` and dropped: nothing
may reach the C caller.
"""

import errno
import logging
import threading

from . import _structs as S
from ._lib import lib
from .constants import LogLevel
from .errors import HvError

log = logging.getLogger("hvcore")

#: The C callback in use: ctypes frees the thunk with its Python object, so
#: it is kept here until the library has stopped calling it (hvc_set_log()
#: returns only then).
_current = None
_lock = threading.Lock()
#: ``inside`` is True on a thread while it runs a callback.
_state = threading.local()

#: libhvcore level -> logging level.
_TO_LOGGING = {
    LogLevel.ERROR: logging.ERROR,
    LogLevel.WARN: logging.WARNING,
    LogLevel.INFO: logging.INFO,
    LogLevel.DEBUG: logging.DEBUG,
}


def _level(value):
    try:
        return LogLevel(value)
    except ValueError:
        return int(value)  # a level newer than these bindings


def set_log(callback, level=LogLevel.DEBUG):
    """Sends the library's messages to ``callback(level, message)``.

    ``level`` is the least severe :class:`LogLevel` delivered (default:
    all). ``callback`` gets a :class:`LogLevel` (a plain ``int`` for a level
    newer than these bindings) and the message as ``str``. ``None``
    silences the library again. Raises HvError(EINVAL) for an unknown
    level, HvError(EDEADLK) from inside a callback, HvError(ENOSYS) when
    the loaded library has no log hook.
    """
    global _current
    if callback is None:
        thunk = S.LogFn()  # NULL
        level = LogLevel.ERROR
    else:
        if not callable(callback):
            raise TypeError("callback must be callable or None")

        def deliver(opaque, raw_level, raw_message):
            _state.inside = True
            try:
                message = raw_message.decode("utf-8", "replace")
                callback(_level(raw_level), message)
            except BaseException as exc:  # noqa: B902 - nothing may reach C
                log.error("hvcore: log callback raised %s: %s",
                          type(exc).__name__, exc,
                          exc_info=(type(exc), exc, exc.__traceback__))
            finally:
                _state.inside = False

        thunk = S.LogFn(deliver)
    if getattr(_state, "inside", False):
        # Before _lock, which a set_log() waiting for this callback holds.
        raise HvError(errno.EDEADLK, "would deadlock",
                      "hvc_set_log: called from the log callback, which it "
                      "would wait for", "hvc_set_log")
    with _lock:
        # ctypes releases the GIL for the call, so a callback running on
        # another thread can finish while this waits for it.
        lib.hvc_set_log(int(level), thunk, None)
        _current = thunk  # the old thunk is no longer called: drop it


def log_to_logging(logger="hvcore.library", level=None):
    """Forwards the library's messages to the :mod:`logging` module.

    ``logger`` is a :class:`logging.Logger` or a logger name (default
    ``"hvcore.library"``, under the bindings' own ``"hvcore"``). Library
    ERROR, WARN, INFO and DEBUG become logging's ERROR, WARNING, INFO and
    DEBUG. ``level`` (a :class:`LogLevel`) is the least severe level the
    library formats and sends; by default the one the logger is enabled for
    now, so a change to the logger's level later needs another call.
    Returns the logger.
    """
    if not isinstance(logger, logging.Logger):
        logger = logging.getLogger(logger)
    if level is None:
        level = LogLevel.ERROR
        for lib_level in (LogLevel.WARN, LogLevel.INFO, LogLevel.DEBUG):
            if logger.isEnabledFor(_TO_LOGGING[lib_level]):
                level = lib_level

    def forward(lib_level, message):
        logger.log(_TO_LOGGING.get(lib_level, logging.DEBUG), "%s", message)

    set_log(forward, level)
    return logger
