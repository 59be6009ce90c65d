"""TSC virtualization (hvcore/tsc.h): what the host can do, the scaling
arithmetic, a VM's guest TSC frequency and policy, per-vCPU TSC values,
and the TSC state record.

tsc.h is still evolving: the functions bound here are loaded when the
library exports them; otherwise the Python call raises HvError(ENOSYS).
"""

import ctypes
from ctypes import byref, c_size_t, c_uint64
from dataclasses import dataclass

from . import _convert
from ._lib import lib
from ._structs_ext import TscConfig as CTscConfig
from ._structs_ext import TscFrequencyOptions
from ._structs_ext import TscInfo as CTscInfo
from ._structs_ext import TscPolicy as CTscPolicy
from ._structs_ext import TscRestoreOptions
from .constants import (HVC_TSC_DEFAULT_TOLERANCE_PPM, TscCatchup,
                        TscConfigFlags, TscInfoFlags, TscPausePolicy,
                        TscWriteFlags, to_enum)

__all__ = ["tsc_ratio", "tsc_scale", "TscInfo", "TscConfig", "TscPolicy",
           "HypervisorTscMixin", "VmTscMixin", "VcpuTscMixin"]


def tsc_ratio(guest_khz, host_khz, frac_bits):
    """floor(guest_khz * 2**frac_bits / host_khz), the hardware scaling
    ratio (``frac_bits`` 48 for VMX, 32 for SVM). HvError ERANGE when it
    does not fit the format, EINVAL for zero frequencies."""
    ratio = c_uint64()
    lib.hvc_tsc_ratio(_convert.u32(guest_khz, "guest_khz"),
                     _convert.u32(host_khz, "host_khz"),
                     _convert.u32(frac_bits, "frac_bits"), byref(ratio))
    return ratio.value


def tsc_scale(host_tsc, ratio, frac_bits):
    """(host_tsc * ratio) >> frac_bits modulo 2**64, as the hardware
    scales a host TSC value."""
    out = c_uint64()
    lib.hvc_tsc_scale(_convert.u64(host_tsc, "host_tsc"),
                     _convert.u64(ratio, "ratio"),
                     _convert.u32(frac_bits, "frac_bits"), byref(out))
    return out.value


def _snapshot(cls, raw, flags_enum):
    values = {name: getattr(raw, name) for name, _ in raw._fields_
              if name not in ("size", "reserved")}
    values["flags"] = to_enum(flags_enum, raw.flags)
    return cls(**values)


@dataclass(frozen=True)
class TscInfoData:
    """``hvc_tsc_info``: the host TSC and the backend's abilities."""

    flags: TscInfoFlags
    host_tsc_khz: int
    backend_tolerance_ppm: int
    ratio_frac_bits: int
    apic_bus_khz: int
    ratio_max: int
    max_guest_tsc_khz: int


@dataclass(frozen=True)
class TscConfigData:
    """``hvc_tsc_config``: a VM's guest TSC frequency set-up."""

    flags: TscConfigFlags
    tsc_khz: int
    effective_khz: int
    ratio: int
    ratio_frac_bits: int
    tolerance_ppm: int


@dataclass(frozen=True)
class TscPolicyData:
    """``hvc_tsc_policy``: what a pause does to the guest's clocks."""

    pause: TscPausePolicy = TscPausePolicy.ADVANCE
    catchup: TscCatchup = TscCatchup.PIT
    catchup_max_ms: int = 0


class HypervisorTscMixin:
    """:meth:`tsc_info` of :class:`hvcore.Hypervisor`."""

    def tsc_info(self):
        """The host TSC and what the backend can do with it (the first
        call probes the backend)."""
        raw = CTscInfo(size=ctypes.sizeof(CTscInfo))
        self._node.call(lib.hvc_tsc_get_info, byref(raw))
        return _snapshot(TscInfoData, raw, TscInfoFlags)


class VmTscMixin:
    """The VM-wide tsc.h calls of :class:`hvcore.VM`."""

    def set_tsc_frequency(self, khz,
                          tolerance_ppm=HVC_TSC_DEFAULT_TOLERANCE_PPM):
        """Pins the guest TSC frequency before any vCPU first runs.
        Within ``tolerance_ppm`` of the host's it is accepted unscaled;
        otherwise HvError ENOTSUP when the host cannot scale, EBUSY once a
        vCPU has run."""
        opts = TscFrequencyOptions(size=ctypes.sizeof(TscFrequencyOptions),
                                   tsc_khz=_convert.u32(khz, "khz"),
                                   tolerance_ppm=_convert.u32(
                                       tolerance_ppm, "tolerance_ppm"))
        self._node.call(lib.hvc_vm_set_tsc_frequency, byref(opts))

    @property
    def tsc_config(self):
        raw = CTscConfig(size=ctypes.sizeof(CTscConfig))
        self._node.call(lib.hvc_vm_get_tsc_config, byref(raw))
        return _snapshot(TscConfigData, raw, TscConfigFlags)

    @property
    def tsc_policy(self):
        raw = CTscPolicy(size=ctypes.sizeof(CTscPolicy))
        self._node.call(lib.hvc_vm_get_tsc_policy, byref(raw))
        return TscPolicyData(to_enum(TscPausePolicy, raw.pause),
                             to_enum(TscCatchup, raw.catchup),
                             raw.catchup_max_ms)

    @tsc_policy.setter
    def tsc_policy(self, policy):
        raw = CTscPolicy(size=ctypes.sizeof(CTscPolicy),
                         pause=_convert.u32(policy.pause, "pause"),
                         catchup=_convert.u32(policy.catchup, "catchup"),
                         catchup_max_ms=_convert.u32(policy.catchup_max_ms,
                                                     "catchup_max_ms"))
        self._node.call(lib.hvc_vm_set_tsc_policy, byref(raw))

    def save_tsc(self):
        """The TSC state record (bytes) of every vCPU; pause the VM or
        stop its vCPUs first."""
        size = c_size_t()
        self._node.call(lib.hvc_vm_tsc_state_size, byref(size))
        buf = ctypes.create_string_buffer(size.value)
        written = c_size_t()
        self._node.call(lib.hvc_vm_save_tsc, buf, size.value, byref(written))
        return buf.raw[:written.value]

    def restore_tsc(self, record, *, pause=None, max_error_us=0):
        """Restores a :meth:`save_tsc` record (this VM or a new one with
        the same vCPU ids). ``pause``: a TscPausePolicy for the time since
        the save (None: the VM's policy)."""
        buf, length = _convert.input_buffer(record)
        opts = None
        if pause is not None or max_error_us:
            opts = TscRestoreOptions(
                size=ctypes.sizeof(TscRestoreOptions),
                pause=_convert.u32(pause or 0, "pause"),
                max_error_us=_convert.u32(max_error_us, "max_error_us"))
            opts = byref(opts)
        self._node.call(lib.hvc_vm_restore_tsc, buf, length, opts)


class VcpuTscMixin:
    """The per-vCPU tsc.h calls of :class:`hvcore.VCPU`."""

    __slots__ = ()

    @property
    def tsc(self):
        """The guest TSC now (what RDTSC would return)."""
        value = c_uint64()
        self._node.call(lib.hvc_vcpu_get_tsc, byref(value))
        return value.value

    def set_tsc(self, value, *, this_vcpu=False):
        """Makes the guest TSC read ``value`` now; every vCPU's offset
        moves together unless ``this_vcpu``."""
        flags = TscWriteFlags.THIS_VCPU if this_vcpu else 0
        self._node.call(lib.hvc_vcpu_set_tsc, _convert.u64(value, "tsc"),
                        int(flags))

    @property
    def tsc_offset(self):
        value = c_uint64()
        self._node.call(lib.hvc_vcpu_get_tsc_offset, byref(value))
        return value.value

    def set_tsc_offset(self, offset, *, this_vcpu=False):
        flags = TscWriteFlags.THIS_VCPU if this_vcpu else 0
        self._node.call(lib.hvc_vcpu_set_tsc_offset,
                        _convert.reg_value(offset, "offset"), int(flags))


TscInfo = TscInfoData
TscConfig = TscConfigData
TscPolicy = TscPolicyData
