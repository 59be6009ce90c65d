/* The userspace interrupt controllers' state in streams: LAPIC timers
 * (periodic, TSC-deadline) counting on across a snapshot, a guest moving
 * between KVM's chips and the library's both ways, and hostile chip state
 * refused by name (tests/guests/irq_user.S, tsc_pit.S). */
#include "irq_user_util.h"

#include <hvcore/sys/backend.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(irq_user_state, .timeout = 120);

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
    /* 1000 Hz set; ticks missed while a loaded host held the vCPU back
     * are caught up and lift a 300 ms window's rate (1236 Hz seen under
     * load), while a wrong divider or a doubled timer is 2000 Hz or more */
    cr_assert(hz > 300 && hz < 1500, "LAPIC timer at %.0f Hz", hz);
    finish(&t, &r, 0x5a);
    hvt_close(&t);
}

Test(irq_user_state, periodic_timer_keeps_counting_across_a_snapshot)
{
    snapshot_test(1, 0);
}

Test(irq_user_state, tsc_deadline_keeps_counting_across_a_snapshot)
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

Test(irq_user_state, hostile_chip_state_is_refused_by_name)
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
    /* one VM at a time (a backend may allow only one per process, hvf) */
    HVT_OK(hvc_vm_destroy(t.vm));
    t.vm = NULL;
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

/* The backend with the kind of chips @p flags asks for: the suite's, or
 * kvm for the kernel's where the suite's has none (hvf: every VM is on the
 * library's chips), so that the move is still between the two kinds. */
static const char *chips_backend(uint32_t flags)
{
    if (flags & HVC_VM_USER_IRQCHIP)
        return hvt_backend();
    hvc_hypervisor *hv;
    uint64_t lapic = 0;
    HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv));
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_IRQCHIP_LAPIC, &lapic));
    HVT_OK(hvc_hypervisor_close(hv));
    return lapic == HVC_IRQCHIP_KERNEL ? hvt_backend() : "kvm";
}

/* hvt_open on backend @p backend. */
static void open_on(hvt *t, const char *backend, uint32_t flags)
{
    memset(t, 0, sizeof(*t));
    HVT_OK(hvc_hypervisor_open(backend, &t->hv));
    hvc_vm_options o = HVC_VM_OPTIONS_INIT;
    o.flags = flags;
    o.max_vcpus = 4; /* within every backend's limit (the stream keeps it) */
    HVT_OK(hvc_vm_create(t->hv, &o, &t->vm));
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = HVT_MEM;
    HVT_OK(hvc_vm_add_memory(t->vm, &m, &t->ram));
}

/* Saves a guest counting at DATA_OUT on one kind of chips, rewrites the
 * stream's VM flags to the other kind (the only difference between the
 * two streams' formats), restores it there and checks that the count goes
 * on at its rate: the LAPIC, 8259, IOAPIC and PIT state the kernel's chips
 * saved drives the library's, and the reverse. */
static void cross(const char *guest, int mode, uint64_t delta, uint32_t from,
                  uint32_t to)
{
    hvt_require_kvm();
    const char *src = chips_backend(from), *dst = chips_backend(to);
    hvt t;
    open_on(&t, src, from);
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

    if (strcmp(src, dst) != 0) {
        HVT_OK(hvc_hypervisor_close(t.hv));
        HVT_OK(hvc_hypervisor_open(dst, &t.hv));
    }
    hvc_vm *vm;
    int rr = hvc_snapshot_restore(t.hv, path, NULL, &vm);
    unlink(path);
    cr_assert_eq(rr, 0, "%s -> %s: restore: %s", src, dst, hvc_last_error());
    t.vm = vm;
    /* interrupt eventfds on either kind of chips (the core's fallback
     * on the library's) */
    int efd;
    int e = hvc_vm_irq_eventfd(vm, 4, &efd);
    cr_assert_eq(e, 0, "irq eventfd: %d", e);
    hvc_vcpu *v;
    HVT_OK(hvc_vm_get_vcpu(vm, 0, &v));
    start(&r, v);
    uint64_t n = wait_q(vm, DATA_OUT, saved + 50, 5000);
    cr_assert_geq(n, saved + 50,
                  "%s mode %d, flags 0x%x -> 0x%x: %llu ticks "
                  "after the restore, %llu saved (status 0x%x)",
                  guest, mode, from, to, (unsigned long long)n,
                  (unsigned long long)saved, r.status);
    double hz = rate_hz(vm, 300);
    cr_log_info("%s mode %d, %s chips (%s) -> %s chips (%s): %.0f Hz", guest,
                mode, from ? "userspace" : "kernel", src,
                to ? "userspace" : "kernel", dst, hz);
    cr_assert(hz > 300 && hz < 1500,
              "%.0f Hz after the move (1000 set; "
              "catch-up of ticks missed under load lifts it a little)",
              hz);
    finish(&t, &r, 0x5a);
    hvt_close(&t);
}

Test(irq_user_state, lapic_timer_moves_between_kernel_and_userspace_chips)
{
    cross("irq_user", 1, 0, 0, HVC_VM_USER_IRQCHIP);
    cross("irq_user", 1, 0, HVC_VM_USER_IRQCHIP, 0);
    uint32_t khz = tsc_khz();
    cross("irq_user", 2, khz, 0, HVC_VM_USER_IRQCHIP);
    cross("irq_user", 2, khz, HVC_VM_USER_IRQCHIP, 0);
}

Test(irq_user_state, pit_and_8259s_move_between_kernel_and_userspace_chips)
{
    cross("tsc_pit", 0, 0, 0, HVC_VM_USER_IRQCHIP);
    cross("tsc_pit", 0, 0, HVC_VM_USER_IRQCHIP, 0);
}
