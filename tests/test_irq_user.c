/* The library's userspace interrupt controllers (HVC_VM_USER_IRQCHIP, KVM
 * without its in-kernel irqchip): PIT ticks through the 8259s, the LAPIC
 * timer in periodic and TSC-deadline modes, IOAPIC lines raised by the
 * host (edge, and level with EOI), an MSI, IPIs between two vCPUs, an AP
 * brought up by INIT/SIPI, HLT waking on interrupts and not holding a
 * pause, and the chips' state across a snapshot (tests/guests/irq_user.S,
 * tsc_pit.S). Counts are checked against wide windows: the machine is a
 * loaded 2-core one. */
#include "hvtest.h"


#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TestSuite(irq_user, .timeout = 60);

#include "irq_user_util.h"

Test(irq_user, caps_and_flags)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    uint64_t all = 0, v;
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_IRQCHIP, &all));
    for (int c = HVC_CAP_IRQCHIP_LAPIC; c <= HVC_CAP_IRQCHIP_PIT; c++) {
        HVT_OK(hvc_hypervisor_get_cap(hv, c, &v));
        cr_assert_eq(v, all ? HVC_IRQCHIP_KERNEL : HVC_IRQCHIP_USER,
                     "cap %d = %llu", c, (unsigned long long)v);
    }
    HVT_ERR(hvc_hypervisor_get_cap(hv, 21, &v), -EINVAL);
    hvc_vm_options o = HVC_VM_OPTIONS_INIT;
    hvc_vm *vm;
    o.flags = HVC_VM_NO_IRQCHIP | HVC_VM_USER_IRQCHIP;
    HVT_ERR(hvc_vm_create(hv, &o, &vm), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "exclude"), "%s", hvc_last_error());
    o.flags = HVC_VM_USER_IRQCHIP;
    HVT_OK(hvc_vm_create(hv, &o, &vm));
    /* hostile arguments to the userspace chips */
    HVT_ERR(hvc_vm_set_irq(vm, 24, 1), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "24"), "%s", hvc_last_error());
    HVT_ERR(hvc_vm_set_irq(vm, 3, 2), -EINVAL);
    HVT_ERR(hvc_vm_send_msi(vm, 0xfed00000, 0x30), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "0xfed00000"), "%s", hvc_last_error());
    HVT_ERR(hvc_vm_send_msi(vm, 0xfee00000, 0x630), -EINVAL);
    /* no kernel path: the core's fallback watches the eventfd */
    int fd, again;
    HVT_OK(hvc_vm_irq_eventfd(vm, 4, &fd));
    HVT_OK(hvc_vm_irq_eventfd(vm, 4, &again));
    cr_assert_eq(fd, again);
    HVT_OK(hvc_vm_set_irq(vm, 4, 1));
    HVT_OK(hvc_vm_set_irq(vm, 4, 0));
    HVT_OK(hvc_vm_send_msi(vm, 0xfee00000, 0x30));
    HVT_OK(hvc_vm_destroy(vm));
    HVT_OK(hvc_hypervisor_close(hv));
}

Test(irq_user, pit_through_the_8259s)
{
    hvt t;
    hvt_open(&t, HVC_VM_USER_IRQCHIP);
    hvt_load(t.vm, "tsc_pit");
    struct runner r;
    start(&r, hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0));
    uint64_t n = wait_q(t.vm, DATA_OUT, 20, 5000);
    cr_assert_geq(n, 20, "%llu PIT ticks in 5 s (status %d)",
                  (unsigned long long)n, r.status);
    double hz = rate_hz(t.vm, 500);
    cr_log_info("PIT through the userspace 8259s: %.0f Hz (1000 set)", hz);
    cr_assert(hz > 500 && hz < 1100, "PIT at %.0f Hz, 1000 set", hz);
    finish(&t, &r, 0x5a);
    hvt_close(&t);
}

static void timer_test(uint32_t flags, int mode, uint64_t delta)
{
    hvt t;
    hvt_open(&t, flags);
    hvt_load(t.vm, "irq_user");
    put_q(t.vm, MODE, (uint64_t)mode);
    put_q(t.vm, DELTA, delta);
    struct runner r;
    start(&r, hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0));
    uint64_t n = wait_q(t.vm, DATA_OUT, 20, 5000);
    cr_assert_geq(n, 20, "%llu timer interrupts in 5 s (status 0x%x)",
                  (unsigned long long)n, r.status);
    double hz = rate_hz(t.vm, 500);
    cr_log_info("LAPIC timer mode %d (%s chips): %.0f Hz (1000 set)", mode,
                flags ? "userspace" : "in-kernel", hz);
    cr_assert(q(t.vm, DATA_OUT + 64) & (1u << 9),
              "CPUID.1:EDX 0x%llx says there is no APIC",
              (unsigned long long)q(t.vm, DATA_OUT + 64));
    if (mode == 7) /* the x2APIC ID read through MSR 0x802 */
        cr_assert_eq(q(t.vm, DATA_OUT + 56), 0);
    cr_assert(hz > 300 && hz < 1100, "LAPIC timer at %.0f Hz, 1000 set", hz);
    finish(&t, &r, 0x5a);
    hvt_close(&t);
}

Test(irq_user, lapic_timer_periodic)
{
    timer_test(HVC_VM_USER_IRQCHIP, 1, 0);
}

/* The same guests on KVM's own chips: what the userspace ones must match. */
Test(irq_user, in_kernel_lapic_timers)
{
    timer_test(0, 1, 0);
    timer_test(0, 2, tsc_khz());
    timer_test(0, 7, 0);
}

Test(irq_user, lapic_timer_in_x2apic_mode)
{
    timer_test(HVC_VM_USER_IRQCHIP, 7, 0);
}

Test(irq_user, lapic_timer_tsc_deadline)
{
    timer_test(HVC_VM_USER_IRQCHIP, 2, tsc_khz()); /* 1 ms of TSC */
}
/* Port 0x12: the guest's level handler asks the "device" to lower GSI 6;
 * PORT_DATA: the guest programmed its IOAPIC. */
static atomic_int ready, lowered, keep_high;

/* keep_high > 0: the "device" leaves its line up that many times more. */
static int lower_line(void *opaque, hvc_vcpu *vcpu, uint64_t off, void *data,
                      uint32_t size, int is_write)
{
    (void)vcpu, (void)off, (void)data, (void)size, (void)is_write;
    if (atomic_load(&keep_high) > 0) {
        atomic_fetch_sub(&keep_high, 1);
        return 0;
    }
    atomic_fetch_add(&lowered, 1);
    return hvc_vm_set_irq(opaque, 6, 0);
}

static int guest_ready(void *opaque, hvc_vcpu *vcpu, uint64_t off, void *data,
                       uint32_t size, int is_write)
{
    (void)opaque, (void)vcpu, (void)off, (void)data, (void)size,
        (void)is_write;
    atomic_store(&ready, 1);
    return 0;
}

static void ioapic_test(uint32_t flags)
{
    hvt t;
    hvt_open(&t, flags);
    hvt_load(t.vm, "irq_user");
    put_q(t.vm, MODE, 3);
    atomic_store(&ready, 0);
    atomic_store(&lowered, 0);
    atomic_store(&keep_high, 0);
    HVT_OK(hvc_vm_add_io_handler(t.vm, HVC_IO_PIO, 0x12, 1, lower_line, t.vm));
    HVT_OK(hvc_vm_add_io_handler(t.vm, HVC_IO_PIO, PORT_DATA, 1, guest_ready,
                                 NULL));
    struct runner r;
    start(&r, hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0));
    for (int i = 0; i < 5000 && !atomic_load(&ready); i++)
        usleep(1000);
    cr_assert(atomic_load(&ready), "the guest never programmed its IOAPIC");
    usleep(20000); /* into HLT */

    /* edge: one interrupt per rising edge, at the pin's vector */
    for (uint64_t i = 1; i <= 3; i++) {
        HVT_OK(hvc_vm_set_irq(t.vm, 5, 1));
        HVT_OK(hvc_vm_set_irq(t.vm, 5, 0));
        cr_assert_eq(wait_q(t.vm, DATA_OUT + 8, i, 3000), i);
    }
    /* a line held high is one edge */
    HVT_OK(hvc_vm_set_irq(t.vm, 5, 1));
    HVT_OK(hvc_vm_set_irq(t.vm, 5, 1));
    cr_assert_eq(wait_q(t.vm, DATA_OUT + 8, 4, 3000), 4);
    HVT_OK(hvc_vm_set_irq(t.vm, 5, 0));

    /* level: delivered, lowered by the handler, EOI; once per raise. KVM's
     * own IOAPIC on this host delivers each raise twice (the line lowered
     * before the EOI notwithstanding): for it, at least once, and each
     * delivery lowered the line. */
    uint64_t got = 0;
    for (uint64_t i = 1; i <= 3; i++) {
        HVT_OK(hvc_vm_set_irq(t.vm, 6, 1));
        got = wait_q(t.vm, DATA_OUT + 16, flags ? i : got + 1, 3000);
        if (flags)
            cr_assert_eq(got, i,
                         "level interrupt %llu: counted %llu (lowered %d)",
                         (unsigned long long)i, (unsigned long long)got,
                         atomic_load(&lowered));
        else
            cr_assert_geq(got, i);
    }
    usleep(50000);
    got = q(t.vm, DATA_OUT + 16);
    if (flags)
        cr_assert_eq(got, 3, "a lowered level line came back");
    else
        cr_log_info("KVM's IOAPIC: %llu deliveries for 3 raises",
                    (unsigned long long)got);
    cr_assert_eq((uint64_t)atomic_load(&lowered), got);

    /* a level line still up at the EOI is delivered again (remote IRR
     * cleared, the pin still asserted), until the device lowers it */
    if (flags) {
        atomic_store(&keep_high, 2);
        HVT_OK(hvc_vm_set_irq(t.vm, 6, 1));
        cr_assert_eq(wait_q(t.vm, DATA_OUT + 16, 6, 3000), 6);
        usleep(50000);
        cr_assert_eq(q(t.vm, DATA_OUT + 16), 6, "deliveries after lowering");
        cr_assert_eq(atomic_load(&lowered), 4);
    }

    /* MSI straight to the LAPIC */
    for (uint64_t i = 1; i <= 2; i++) {
        HVT_OK(hvc_vm_send_msi(t.vm, 0xfee00000, 0x52));
        cr_assert_eq(wait_q(t.vm, DATA_OUT + 24, i, 3000), i);
    }

    /* a vCPU in HLT does not hold a pause */
    uint64_t t0 = mono_ns();
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    cr_assert_lt(mono_ns() - t0, 2000000000ull);
    cr_assert_eq(q(t.vm, DATA_OUT), 0, "no timer was programmed");
    /* DATA_IN alone wakes nobody: HLT waits for an interrupt */
    put_q(t.vm, DATA_IN, 1);
    usleep(50000);
    cr_assert_eq(r.status, -1, "the vCPU left HLT with no interrupt");
    HVT_OK(hvc_vm_send_msi(t.vm, 0xfee00000, 0x52));
    pthread_join(r.th, NULL);
    cr_assert_eq(r.status, 0x5a, "status 0x%x rc %d", r.status, r.rc);
    hvt_close(&t);
}

Test(irq_user, ioapic_lines_and_msi)
{
    ioapic_test(HVC_VM_USER_IRQCHIP);
}

Test(irq_user, in_kernel_ioapic_lines_and_msi)
{
    ioapic_test(0);
}

static void ipi_test(uint32_t flags)
{
    hvt t;
    hvt_open(&t, flags);
    hvt_load(t.vm, "irq_user");
    put_q(t.vm, MODE, 4);
    put_q(t.vm, DELTA, 1000); /* round trips */
    hvc_vcpu *bsp = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    hvc_vcpu *ap = hvt_vcpu(t.vm, 1, HVC_X86_MODE_LONG64, 0);
    const hvc_reg ids[] = {HVC_X86_RDI, HVC_X86_RSP};
    const uint64_t vals[] = {1, GUEST_STACK - 0x800};
    HVT_OK(hvc_vcpu_set_regs(ap, ids, vals, 2));
    struct runner a, b;
    start(&a, ap);
    while (q(t.vm, DATA_OUT + 56) == 0) /* the AP is ready */
        usleep(1000);
    uint64_t t0 = mono_ns();
    start(&b, bsp);
    pthread_join(b.th, NULL);
    cr_log_info("IPI round trip between two vCPUs (%s chips): %.1f us",
                flags ? "userspace" : "in-kernel",
                (double)(mono_ns() - t0) / 1000 / 1000);
    cr_assert_eq(b.status, 0x5a, "BSP: status 0x%x rc %d (%s)", b.status,
                 b.rc, hvc_last_error());
    cr_assert_eq(q(t.vm, DATA_OUT + 32), 1000, "IPIs the AP took");
    cr_assert_eq(q(t.vm, DATA_OUT + 40), 1000, "IPIs the BSP took back");
    HVT_OK(hvc_vcpu_kick(ap)); /* it sleeps in HLT */
    pthread_join(a.th, NULL);
    cr_assert_eq(a.status, 0x100, "AP: status 0x%x", a.status);
    hvt_close(&t);
}

Test(irq_user, ipis_between_two_vcpus)
{
    ipi_test(HVC_VM_USER_IRQCHIP);
}

/* The same guest on KVM's own LAPICs: the guest is right, and the cost of
 * the userspace path can be compared. */
Test(irq_user, ipis_between_two_vcpus_in_kernel)
{
    ipi_test(0);
}

static void sipi_test(uint32_t flags)
{
    hvt t;
    hvt_open(&t, flags);
    hvt_load(t.vm, "irq_user");
    put_q(t.vm, MODE, 6);
    hvc_vcpu *bsp = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    hvc_vcpu *ap;
    HVT_OK(hvc_vcpu_create(t.vm, 1, &ap)); /* waits for its SIPI */
    struct runner a, b;
    start(&a, ap);
    usleep(50000);
    cr_assert_eq(q(t.vm, DATA_OUT + 48), 0, "the AP ran before its SIPI");
    cr_assert_eq(a.status, -1, "the AP left its wait: 0x%x", a.status);
    start(&b, bsp);
    pthread_join(b.th, NULL);
    cr_assert_eq(b.status, 0x5a, "BSP: status 0x%x rc %d", b.status, b.rc);
    cr_assert_eq(q(t.vm, DATA_OUT + 48), 0x5151);
    uint64_t cs = 0;
    hvc_x86_segment seg;
    HVT_OK(hvc_vcpu_kick(ap)); /* cli; hlt */
    pthread_join(a.th, NULL);
    cr_assert_eq(a.status, 0x100, "AP: status 0x%x rc %d", a.status, a.rc);
    HVT_OK(hvc_vcpu_get_segment(ap, HVC_X86_CS, &seg));
    cs = seg.selector;
    cr_assert_eq(cs, 0x900, "AP CS 0x%llx", (unsigned long long)cs);
    hvt_close(&t);
}

Test(irq_user, ap_started_by_init_sipi)
{
    sipi_test(HVC_VM_USER_IRQCHIP);
}

Test(irq_user, in_kernel_ap_started_by_init_sipi)
{
    sipi_test(0);
}


/* A vCPU halted with interrupts off (it waits in the core's halt) is saved
 * by a pause and a snapshot: on a backend whose vCPUs are bound to their
 * threads (hvf) the save's calls are forwarded to the halted vCPU while the
 * saver holds vm->lock, which the halted vCPU used to wait for without
 * serving them (a deadlock, caught by the suite's timeout). */
Test(irq_user, snapshot_of_a_halted_vcpu)
{
    hvt t;
    hvt_open(&t, HVC_VM_USER_IRQCHIP);
    hvt_load(t.vm, "hlt64");
    struct runner r;
    start(&r, hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0));
    usleep(100000); /* into the HLT; IF=0, so it stays there */
    cr_assert_eq(atomic_load(&r.status), -1, "the guest went past its HLT");
    char path[] = "/tmp/irq_user_haltXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    for (int i = 0; i < 3; i++) {
        HVT_OK(hvc_vm_pause(t.vm));
        /* still halted: RIP past the HLT (the backend stepped over it) */
        cr_assert_eq(hvt_reg(r.vcpu, HVC_X86_RIP), GUEST_LOAD + 1);
        HVT_OK(hvc_snapshot_save(t.vm, path, NULL));
        HVT_OK(hvc_vm_resume(t.vm));
        usleep(20000);
    }
    unlink(path);
    cr_assert_eq(atomic_load(&r.status), -1,
                 "the save woke the guest: status 0x%x rc %d reason %u",
                 atomic_load(&r.status), r.rc, r.reason);
    HVT_OK(hvc_vcpu_kick(r.vcpu));
    pthread_join(r.th, NULL);
    cr_assert_eq(r.status, 0x100, "status 0x%x rc %d", r.status, r.rc);
    cr_assert_eq(hvt_reg(r.vcpu, HVC_X86_RIP), GUEST_LOAD + 1,
                 "rip 0x%llx: not past the HLT",
                 (unsigned long long)hvt_reg(r.vcpu, HVC_X86_RIP));
    hvt_close(&t);
}
