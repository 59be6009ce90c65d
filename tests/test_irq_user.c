/* The library's userspace interrupt controllers (HVC_VM_USER_IRQCHIP, KVM
 * without its in-kernel irqchip): PIT ticks through the 8259s, the LAPIC
 * timer in periodic and TSC-deadline modes, IOAPIC lines raised by the
 * host (edge, and level with EOI), an MSI, IPIs between two vCPUs, an AP
 * brought up by INIT/SIPI, HLT waking on interrupts and not holding a
 * pause, and the chips' state across a snapshot (tests/guests/irq_user.S,
 * tsc_pit.S). Counts are checked against wide windows: the machine is a
 * loaded 2-core one. */
#include "hvtest.h"

#include <hvcore/sys/backend.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TestSuite(irq_user, .timeout = 60);

#define MODE (DATA_IN + 8)
#define DELTA (DATA_IN + 16)

static uint64_t q(hvc_vm *vm, uint64_t gpa)
{
    uint64_t v = 0;
    HVT_OK(hvc_vm_read(vm, gpa, &v, sizeof(v)));
    return v;
}

static void put_q(hvc_vm *vm, uint64_t gpa, uint64_t v)
{
    HVT_OK(hvc_vm_write(vm, gpa, &v, sizeof(v)));
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A vCPU on its own thread until its PORT_DONE (status), a kick (0x100)
 * or an error (rc). */
struct runner {
    hvc_vcpu *vcpu;
    pthread_t th;
    int rc;
    atomic_int status; /* -1 while it runs */
    uint32_t reason;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    const hvc_exit *e;
    for (;;) {
        r->rc = hvc_vcpu_run(r->vcpu, &e);
        if (r->rc < 0)
            return NULL;
        r->reason = e->reason;
        if (e->reason == HVC_EXIT_KICK) {
            r->status = 0x100;
            return NULL;
        }
        if (e->reason == HVC_EXIT_PIO && e->u.io.port == PORT_DONE) {
            r->status = ((const uint8_t *)e->u.io.data)[0];
            return NULL;
        }
        return NULL; /* anything else: the test looks at reason */
    }
}

static void start(struct runner *r, hvc_vcpu *v)
{
    memset(r, 0, sizeof(*r));
    r->vcpu = v;
    atomic_store(&r->status, -1);
    cr_assert_eq(pthread_create(&r->th, NULL, run_thread, r), 0);
}

/* Waits up to @p ms for the qword at @p gpa to reach @p want. */
static uint64_t wait_q(hvc_vm *vm, uint64_t gpa, uint64_t want, int ms)
{
    uint64_t v = 0;
    for (int i = 0; i < ms; i++) {
        if ((v = q(vm, gpa)) >= want)
            break;
        usleep(1000);
    }
    return v;
}

static void finish(hvt *t, struct runner *r, int status)
{
    put_q(t->vm, DATA_IN, 1);
    pthread_join(r->th, NULL);
    cr_assert_eq(r->rc, 0, "run: %d (%s)", r->rc, hvc_last_error());
    cr_assert_eq(r->status, status, "status 0x%x (exit reason %u)", r->status,
                 r->reason);
}

/* Ticks counted at DATA_OUT over @p ms, after the first @p warm. */
static double rate_hz(hvc_vm *vm, int ms)
{
    uint64_t n0 = q(vm, DATA_OUT), t0 = mono_ns();
    usleep((useconds_t)ms * 1000);
    uint64_t n1 = q(vm, DATA_OUT), t1 = mono_ns();
    return (double)(n1 - n0) * 1e9 / (double)(t1 - t0);
}

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
    int fd;
    HVT_ERR(hvc_vm_irq_eventfd(vm, 4, &fd), -ENOTSUP);
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
    if (mode == 7) /* the x2APIC ID read through MSR 0x802 */
        cr_assert_eq(q(t.vm, DATA_OUT + 56), 0);
    cr_assert(hz > 300 && hz < 1100, "LAPIC timer at %.0f Hz, 1000 set", hz);
    finish(&t, &r, 0x5a);
    hvt_close(&t);
}

static uint32_t tsc_khz(void)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_tsc_info in = {.size = sizeof(in)};
    HVT_OK(hvc_tsc_get_info(hv, &in));
    HVT_OK(hvc_hypervisor_close(hv));
    cr_assert_gt(in.host_tsc_khz, 0);
    return in.host_tsc_khz;
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
static atomic_int ready, lowered;

static int lower_line(void *opaque, hvc_vcpu *vcpu, uint64_t off, void *data,
                      uint32_t size, int is_write)
{
    (void)vcpu, (void)off, (void)data, (void)size, (void)is_write;
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

static void snapshot_test(int mode, uint64_t delta)
{
    hvt t;
    hvt_open(&t, HVC_VM_USER_IRQCHIP);
    hvt_load(t.vm, "irq_user");
    put_q(t.vm, MODE, (uint64_t)mode);
    put_q(t.vm, DELTA, delta);
    struct runner r;
    start(&r, hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0));
    uint64_t n = wait_q(t.vm, DATA_OUT, 50, 5000);
    cr_assert_geq(n, 50);
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vcpu_kick(r.vcpu));
    HVT_OK(hvc_vm_resume(t.vm));
    pthread_join(r.th, NULL);
    cr_assert_eq(r.status, 0x100, "status 0x%x", r.status);
    HVT_OK(hvc_vm_pause(t.vm));
    char path[] = "/tmp/irq_user_snapXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    HVT_OK(hvc_snapshot_save(t.vm, path, NULL));
    uint64_t saved = q(t.vm, DATA_OUT);
    HVT_OK(hvc_vm_destroy(t.vm));
    t.vm = NULL;

    hvc_vm *vm;
    HVT_OK(hvc_snapshot_restore(t.hv, path, NULL, &vm));
    unlink(path);
    t.vm = vm;
    cr_assert_eq(q(vm, DATA_OUT), saved);
    hvc_vcpu *v;
    HVT_OK(hvc_vm_get_vcpu(vm, 0, &v));
    start(&r, v);
    n = wait_q(vm, DATA_OUT, saved + 50, 5000);
    cr_assert_geq(n, saved + 50, "%llu ticks after the restore (%llu saved)",
                  (unsigned long long)n, (unsigned long long)saved);
    double hz = rate_hz(vm, 300);
    cr_log_info("restored LAPIC timer (mode %d): %.0f Hz", mode, hz);
    cr_assert(hz > 300 && hz < 1100, "LAPIC timer at %.0f Hz", hz);
    finish(&t, &r, 0x5a);
    hvt_close(&t);
}

Test(irq_user, periodic_timer_keeps_counting_across_a_snapshot)
{
    snapshot_test(1, 0);
}

Test(irq_user, tsc_deadline_keeps_counting_across_a_snapshot)
{
    snapshot_test(2, tsc_khz());
}
/* ---- Hostile chip state in a stream ---- */

#define STREAM_HDR 80
#define SEC_HDR 24
#define SEC_IRQCHIP 4

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Bitwise CRC32C, independent of the library. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* The offset of the IRQCHIP section's header. */
static size_t irqchip_section(const uint8_t *s, size_t len)
{
    for (size_t at = STREAM_HDR; at + SEC_HDR <= len;) {
        uint16_t id;
        uint64_t n;
        memcpy(&id, s + at, 2);
        memcpy(&n, s + at + 8, 8);
        if (id == SEC_IRQCHIP)
            return at;
        if (id == 0xffff)
            break;
        at += SEC_HDR + n;
    }
    cr_assert_fail("no IRQCHIP section");
    return 0;
}

/* The data of field @p tag in the section's record. */
static uint8_t *field_at(uint8_t *s, size_t sec, uint16_t tag)
{
    uint64_t len;
    memcpy(&len, s + sec + 8, 8);
    uint8_t *p = s + sec + SEC_HDR;
    for (size_t o = 0; o + 8 <= len;) {
        uint16_t t;
        uint32_t n;
        memcpy(&t, p + o, 2);
        memcpy(&n, p + o + 4, 4);
        if (t == tag)
            return p + o + 8;
        o += 8 + ((n + 7u) & ~7u);
    }
    cr_assert_fail("no field %u in IRQCHIP", tag);
    return NULL;
}

static void reseal(uint8_t *s, size_t sec)
{
    uint64_t len;
    memcpy(&len, s + sec + 8, 8);
    uint32_t crc = crc32c(0, s + sec, 20);
    crc = crc32c(crc, s + sec + SEC_HDR, len);
    memcpy(s + sec + 20, &crc, 4);
}

static void refused(hvc_hypervisor *hv, const uint8_t *s, size_t len,
                    const char *what)
{
    char path[] = "/tmp/irq_user_badXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, s, len), (ssize_t)len);
    close(fd);
    hvc_vm *vm = NULL;
    int r = hvc_snapshot_restore(hv, path, NULL, &vm);
    unlink(path);
    cr_assert_lt(r, 0, "%s: restored", what);
    cr_assert_null(vm);
    cr_assert(strstr(hvc_last_error(), what), "refused without naming %s: %s",
              what, hvc_last_error());
}

Test(irq_user, hostile_chip_state_is_refused_by_name)
{
    hvt t;
    hvt_open(&t, HVC_VM_USER_IRQCHIP);
    hvt_load(t.vm, "tsc_pit");
    struct runner r;
    start(&r, hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0));
    cr_assert_geq(wait_q(t.vm, DATA_OUT, 5, 5000), 5);
    HVT_OK(hvc_vm_pause(t.vm));
    char path[] = "/tmp/irq_user_okXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    HVT_OK(hvc_snapshot_save(t.vm, path, NULL));
    HVT_OK(hvc_vcpu_kick(r.vcpu));
    HVT_OK(hvc_vm_resume(t.vm));
    pthread_join(r.th, NULL);
    size_t len;
    uint8_t *good = slurp(path, &len);
    uint8_t *s = malloc(len);
    cr_assert_not_null(s);
    size_t sec = irqchip_section(good, len);

    /* the unmodified stream restores (the test's own walk is right) */
    hvc_vm *vm;
    HVT_OK(hvc_snapshot_restore(t.hv, path, NULL, &vm));
    HVT_OK(hvc_vm_destroy(vm));
    unlink(path);

    /* PIT channel 0 with a count of 0 (the header at 0, flags, reserved,
     * then 24 bytes a channel, the count first) */
    memcpy(s, good, len);
    uint32_t zero = 0;
    memcpy(field_at(s, sec, HVC_BACKEND_VM_ARCH_PIT) + 16, &zero, 4);
    reseal(s, sec);
    refused(t.hv, s, len, "PIT state: channel 0");
    /* the master 8259 with an ELCR mask this chipset does not have */
    memcpy(s, good, len);
    uint8_t *pic = field_at(s, sec, HVC_BACKEND_VM_ARCH_PIC_MASTER);
    pic[8 + 15] = 0xff; /* elcr_mask */
    reseal(s, sec);
    refused(t.hv, s, len, "ELCR mask");
    /* the IOAPIC elsewhere than 0xfec00000 */
    memcpy(s, good, len);
    uint64_t base = 0xfed00000;
    memcpy(field_at(s, sec, HVC_BACKEND_VM_ARCH_IOAPIC) + 8, &base, 8);
    reseal(s, sec);
    refused(t.hv, s, len, "0xfed00000");
    free(s);
    free(good);
    hvt_close(&t);
}

/* ---- The same state on both kinds of chips ---- */

#define SEC_CONFIG 1

static size_t find_section(const uint8_t *s, size_t len, uint16_t want)
{
    for (size_t at = STREAM_HDR; at + SEC_HDR <= len;) {
        uint16_t id;
        uint64_t n;
        memcpy(&id, s + at, 2);
        memcpy(&n, s + at + 8, 8);
        if (id == want)
            return at;
        if (id == 0xffff)
            break;
        at += SEC_HDR + n;
    }
    cr_assert_fail("no section %u", want);
    return 0;
}

/* Saves a guest counting at DATA_OUT on one kind of chips, rewrites the
 * stream's VM flags to the other kind (the only difference between the
 * two streams' formats), restores it there and checks that the count goes
 * on at its rate: the LAPIC, 8259, IOAPIC and PIT state the kernel's chips
 * saved drives the library's, and the reverse. */
static void cross(const char *guest, int mode, uint64_t delta, uint32_t from,
                  uint32_t to)
{
    hvt t;
    hvt_open(&t, from);
    hvt_load(t.vm, guest);
    put_q(t.vm, MODE, (uint64_t)mode);
    put_q(t.vm, DELTA, delta);
    struct runner r;
    start(&r, hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0));
    cr_assert_geq(wait_q(t.vm, DATA_OUT, 50, 5000), 50);
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vcpu_kick(r.vcpu));
    HVT_OK(hvc_vm_resume(t.vm));
    pthread_join(r.th, NULL);
    cr_assert_eq(r.status, 0x100);
    HVT_OK(hvc_vm_pause(t.vm));
    char path[] = "/tmp/irq_user_crossXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    HVT_OK(hvc_snapshot_save(t.vm, path, NULL));
    uint64_t saved = q(t.vm, DATA_OUT);
    HVT_OK(hvc_vm_destroy(t.vm));
    t.vm = NULL;

    size_t len;
    uint8_t *s = slurp(path, &len);
    size_t cfg = find_section(s, len, SEC_CONFIG);
    uint8_t *flags = field_at(s, cfg, 1); /* HVI_CFG_VM_FLAGS, a u64 */
    uint64_t f;
    memcpy(&f, flags, 8);
    cr_assert_eq(f, from, "the stream says VM flags 0x%llx",
                 (unsigned long long)f);
    f = to;
    memcpy(flags, &f, 8);
    reseal(s, cfg);
    FILE *o = fopen(path, "wb");
    cr_assert_not_null(o);
    cr_assert_eq(fwrite(s, 1, len, o), len);
    fclose(o);
    free(s);

    hvc_vm *vm;
    HVT_OK(hvc_snapshot_restore(t.hv, path, NULL, &vm));
    unlink(path);
    t.vm = vm;
    /* which chips it has: interrupt eventfds only on the kernel's */
    int efd;
    int e = hvc_vm_irq_eventfd(vm, 4, &efd);
    cr_assert_eq(e, to ? -ENOTSUP : 0, "irq eventfd: %d", e);
    hvc_vcpu *v;
    HVT_OK(hvc_vm_get_vcpu(vm, 0, &v));
    start(&r, v);
    uint64_t n = wait_q(vm, DATA_OUT, saved + 50, 5000);
    cr_assert_geq(n, saved + 50, "%s mode %d, flags 0x%x -> 0x%x: %llu ticks "
                  "after the restore, %llu saved (status 0x%x)",
                  guest, mode, from, to, (unsigned long long)n,
                  (unsigned long long)saved, r.status);
    double hz = rate_hz(vm, 300);
    cr_log_info("%s mode %d, %s chips -> %s chips: %.0f Hz", guest, mode,
                from ? "userspace" : "kernel", to ? "userspace" : "kernel",
                hz);
    cr_assert(hz > 300 && hz < 1100, "%.0f Hz after the move", hz);
    finish(&t, &r, 0x5a);
    hvt_close(&t);
}

Test(irq_user, lapic_timer_moves_between_kernel_and_userspace_chips)
{
    cross("irq_user", 1, 0, 0, HVC_VM_USER_IRQCHIP);
    cross("irq_user", 1, 0, HVC_VM_USER_IRQCHIP, 0);
    uint32_t khz = tsc_khz();
    cross("irq_user", 2, khz, 0, HVC_VM_USER_IRQCHIP);
    cross("irq_user", 2, khz, HVC_VM_USER_IRQCHIP, 0);
}

Test(irq_user, pit_and_8259s_move_between_kernel_and_userspace_chips)
{
    cross("tsc_pit", 0, 0, 0, HVC_VM_USER_IRQCHIP);
    cross("tsc_pit", 0, 0, HVC_VM_USER_IRQCHIP, 0);
}
