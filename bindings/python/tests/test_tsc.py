"""The bound tsc.h calls. This host has no TSC scaling
(KVM_CAP_TSC_CONTROL=0): a frequency that needs scaling is refused with
ENOTSUP, which is what the tests expect when the host cannot scale."""

import errno

import pytest

import hvcore


def test_ratio_and_scale_are_pure_functions():
    assert hvcore.tsc_ratio(1_000_000, 2_000_000, 48) == 1 << 47
    assert hvcore.tsc_ratio(3_000_000, 3_000_000, 32) == 1 << 32
    assert hvcore.tsc_ratio(2_500_000, 3_000_000, 48) == \
        (2_500_000 << 48) // 3_000_000
    assert hvcore.tsc_scale(1000, 1 << 47, 48) == 500
    assert hvcore.tsc_scale(12345, 1, 0) == 12345
    big = (1 << 64) - 1
    assert hvcore.tsc_scale(big, 2 << 48, 48) == (big * 2) % (1 << 64)
    with pytest.raises(hvcore.HvError) as err:
        hvcore.tsc_ratio(0, 1000, 48)
    assert err.value.errno == errno.EINVAL
    with pytest.raises(hvcore.HvError) as err:
        hvcore.tsc_ratio(1000, 1000, 40)
    assert err.value.errno == errno.EINVAL
    with pytest.raises(hvcore.HvError) as err:
        hvcore.tsc_ratio(1 << 31, 1, 48)
    assert err.value.errno == errno.ERANGE and err.value.message
    with pytest.raises(hvcore.HvError):
        hvcore.tsc_scale(1, 1, 64)


def test_info_frequency_and_vcpu_tsc(hv, machine):
    info = hv.tsc_info()
    assert isinstance(info, hvcore.TscInfo)
    assert info.host_tsc_khz > 0
    assert info.apic_bus_khz > 0
    vm = machine.vm
    vcpu = machine.vcpu()
    config = vm.tsc_config
    assert not config.flags & hvcore.TscConfigFlags.PINNED
    assert config.tsc_khz == info.host_tsc_khz
    # within the tolerance: accepted unscaled
    vm.set_tsc_frequency(info.host_tsc_khz + 1)
    config = vm.tsc_config
    assert config.flags & hvcore.TscConfigFlags.PINNED
    assert config.tsc_khz == info.host_tsc_khz + 1
    assert config.effective_khz == info.host_tsc_khz
    half = info.host_tsc_khz // 2
    if info.flags & hvcore.TscInfoFlags.SCALING:
        vm.set_tsc_frequency(half)
        assert vm.tsc_config.flags & hvcore.TscConfigFlags.SCALED
    else:
        with pytest.raises(hvcore.HvError) as err:
            vm.set_tsc_frequency(half)
        assert err.value.errno == errno.ENOTSUP
        assert str(half) in err.value.message
    with pytest.raises(hvcore.HvError) as err:
        vm.set_tsc_frequency(info.host_tsc_khz, tolerance_ppm=20000)
    assert err.value.errno == errno.EINVAL
    before = vcpu.tsc
    assert vcpu.tsc >= before
    if info.flags & hvcore.TscInfoFlags.OFFSET:
        vcpu.set_tsc(1 << 40)
        assert (1 << 40) <= vcpu.tsc < (1 << 40) + (info.host_tsc_khz
                                                    * 1000 * 10)
    vcpu.set_tsc_offset(vcpu.tsc_offset)  # the same offset: always fine
    policy = vm.tsc_policy
    assert policy.pause == hvcore.TscPausePolicy.ADVANCE
    vm.tsc_policy = hvcore.TscPolicy(catchup=hvcore.TscCatchup(0))
    assert vm.tsc_policy.catchup == 0
    record = vm.save_tsc()
    assert record[:4] == b"HVTS"
    vm.restore_tsc(record)
