"""ctypes mirrors of the live-migration structs of migration.h and of the
hand-over structs of handover.h, and their callback type.

These structs are append-only and start with ``uint32_t size``: the
bindings pass ``ctypes.sizeof`` of the layouts declared here (the library
reads, or fills, only the fields that size covers). Field names are the C
names, so tests/test_library.py compares every offset and the total size
with the compiler's (a tiny C program built against include/hvcore).
"""

import ctypes
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_uint8, c_uint32, c_uint64
from ctypes import c_size_t, c_void_p

# ----------------------------------------------------------- migration.h --


class MigrateTls(ctypes.Structure):
    """``hvc_migrate_tls``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("cert", c_char_p),
        ("key", c_char_p),
        ("ca", c_char_p),
        ("server_name", c_char_p),
    ]


class MigrateStats(ctypes.Structure):
    """``hvc_migrate_stats``."""

    _fields_ = [
        ("size", c_uint32),
        ("dirty_mode", c_uint32),
        ("rounds", c_uint32),
        ("completed", c_uint32),
        ("setup_ms", c_uint64),
        ("total_ms", c_uint64),
        ("downtime_us", c_uint64),
        ("bytes_initial", c_uint64),
        ("pages_initial", c_uint64),
        ("bytes_precopy", c_uint64),
        ("pages_precopy", c_uint64),
        ("bytes_final", c_uint64),
        ("pages_final", c_uint64),
        ("throughput_bps", c_uint64),
        ("dirty_pages_per_s", c_uint64),
        ("remaining_pages", c_uint64),
        ("expected_downtime_us", c_uint64),
        ("pause_us", c_uint64),
        ("final_send_us", c_uint64),
        ("ack_wait_us", c_uint64),
        ("throttle_percent", c_uint32),
        ("tls", c_uint32),
        ("postcopy", c_uint32),
        ("reserved", c_uint32),
        ("postcopy_pages", c_uint64),
        ("postcopy_pages_pushed", c_uint64),
        ("postcopy_pages_requested", c_uint64),
        ("postcopy_bytes", c_uint64),
        ("postcopy_fault_median_us", c_uint64),
        ("postcopy_fault_p99_us", c_uint64),
        ("postcopy_pages_lost", c_uint64),
        ("postcopy_ms", c_uint64),
        ("connections", c_uint32),
        ("postcopy_channel", c_uint32),
        ("connection_bytes", c_uint64 * 16),
        ("connection_pages", c_uint64 * 16),
    ]


#: ``hvc_migrate_progress_fn``: int (*)(void *opaque,
#: const hvc_migrate_stats *stats)
MigrateProgressFn = CFUNCTYPE(ctypes.c_int, c_void_p, POINTER(MigrateStats))


class MigrateOptions(ctypes.Structure):
    """``hvc_migrate_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("key", POINTER(c_uint8)),
        ("passphrase", c_char_p),
        ("user_data", c_void_p),
        ("user_data_length", c_size_t),
        ("max_downtime_ms", c_uint32),
        ("max_rounds", c_uint32),
        ("timeout_ms", c_uint32),
        ("reserved", c_uint32),
        ("progress", MigrateProgressFn),
        ("opaque", c_void_p),
        ("tls", POINTER(MigrateTls)),
        ("bandwidth_mib", c_uint32),
        ("postcopy_after_rounds", c_uint32),
        ("connections", c_uint32),
        ("reserved2", c_uint32),
        ("address", c_char_p),
    ]


# ------------------------------------------------------------ handover.h --


class HandoverOptions(ctypes.Structure):
    """``hvc_handover_options``."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("user_data", c_void_p),
        ("user_data_length", c_size_t),
    ]


class HandoverStats(ctypes.Structure):
    """``hvc_handover_stats``."""

    _fields_ = [
        ("size", c_uint32),
        ("completed", c_uint32),
        ("regions", c_uint32),
        ("device_fds", c_uint32),
        ("memory_bytes", c_uint64),
        ("stream_bytes", c_uint64),
        ("pause_us", c_uint64),
        ("vcpu_stop_us", c_uint64),
        ("save_us", c_uint64),
        ("transfer_us", c_uint64),
        ("map_us", c_uint64),
        ("load_us", c_uint64),
        ("confirm_wait_us", c_uint64),
    ]


#: The C struct name of each mirror above (for the layout test).
C_NAMES = {
    MigrateTls: "hvc_migrate_tls",
    MigrateStats: "hvc_migrate_stats",
    MigrateOptions: "hvc_migrate_options",
    HandoverOptions: "hvc_handover_options",
    HandoverStats: "hvc_handover_stats",
}
