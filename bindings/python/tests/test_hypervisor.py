"""Opening backends, capabilities, closing."""

import errno

import pytest

import hvcore


def test_open_auto_and_by_name(require_kvm):
    with hvcore.Hypervisor() as auto, hvcore.Hypervisor("kvm") as named:
        assert auto.backend == named.backend == "kvm"
        assert not auto.closed
    assert auto.closed and named.closed


def test_unknown_backend_is_named():
    with pytest.raises(hvcore.HvError) as info:
        hvcore.Hypervisor("no-such-backend")
    err = info.value
    assert err.errno == errno.ENOENT
    assert err.function == "hvc_hypervisor_open"
    assert "no-such-backend" in err.message
    assert "no-such-backend" in str(err)


def test_capabilities(hv):
    assert hv.cap("max_vcpus") >= hv.cap(hvcore.Cap.NR_VCPUS) >= 1
    assert hv.cap("MAX_VCPUS") == hv.cap(hvcore.HVC_CAP_MAX_VCPUS)
    assert hv.cap(hvcore.Cap.FPU_STATE_SIZE) >= 512
    assert hv.cap("readonly_memory") == 1
    assert hv.cap("irqchip") == 1
    assert 36 <= hv.cap("phys_addr_bits") <= 64
    assert hv.cap("dirty_tracking") & hvcore.DirtyMode.BITMAP
    caps = hv.caps()
    assert set(caps) == set(hvcore.Cap)
    assert caps[hvcore.Cap.MAX_VCPUS] == hv.cap("max_vcpus")


def test_bad_capabilities(hv):
    with pytest.raises(ValueError, match="unknown capability 'warp_drive'"):
        hv.cap("warp_drive")
    with pytest.raises(hvcore.HvError) as info:
        hv.cap(999)
    assert info.value.errno == errno.EINVAL
    assert info.value.message


def test_close_is_idempotent_and_closes_vms(require_kvm):
    hv = hvcore.Hypervisor()
    vm1 = hv.create_vm()
    vm2 = hvcore.VM(hv, max_vcpus=2)
    vcpu = vm2.vcpu(1)
    hv.close()
    assert hv.closed and vm1.closed and vm2.closed and vcpu.closed
    hv.close()
    vm1.close()
    vcpu.close()
    with pytest.raises(hvcore.ClosedError, match="hypervisor is closed"):
        hv.cap("max_vcpus")
    with pytest.raises(hvcore.ClosedError, match="VM is closed"):
        vm1.read(0, 1)
    with pytest.raises(hvcore.ClosedError, match="hypervisor is closed"):
        hv.create_vm()
    assert "closed" in repr(hv) and "closed" in repr(vm1)


def test_irqchip_split_caps(hv):
    """Caps 17-20 say where each interrupt controller lives; a VM on the
    library's userspace chips is created and takes interrupts calls."""
    from hvcore import constants as c
    allk = hv.cap(hvcore.Cap.IRQCHIP)
    for cap in (hvcore.Cap.IRQCHIP_LAPIC, hvcore.Cap.IRQCHIP_IOAPIC,
                hvcore.Cap.IRQCHIP_PIC, hvcore.Cap.IRQCHIP_PIT):
        assert hv.cap(cap) == (c.HVC_IRQCHIP_KERNEL if allk
                               else c.HVC_IRQCHIP_USER)
    vm = hv.create_vm(flags=hvcore.VmFlags.USER_IRQCHIP)
    try:
        vm.set_irq(4, 1)
        vm.set_irq(4, 0)
        with pytest.raises(hvcore.HvError):
            vm.set_irq(24, 1)
    finally:
        vm.close()
