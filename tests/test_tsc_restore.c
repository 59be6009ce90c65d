/* TSC state records (hvcore/tsc.h) on KVM: save -> new VM -> restore of a
 * running two-vCPU guest under each pause policy, the record taken at the
 * pause point, and the validation of every field. Helpers and their
 * measuring rules: tests/tsc_guest.h. */
#include "tsc_guest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- save -> new VM -> restore ---- */

static uint8_t ram[HVT_MEM];
/* The whole record of the last migrate(). */
static uint8_t last_rec[sizeof(hvc_tsc_state) + 4 * sizeof(hvc_tsc_vcpu_state)];
static size_t last_len;

/* Pauses @p from, saves its TSC record, stops its runs, closes it once its
 * RAM and registers are copied (a backend may allow one VM per process),
 * and builds @p to: a new VM with @p from's RAM (the jump fields reset),
 * its registers, and the record restored under @p pause. Returns the
 * restore's result; @p paused_ns receives the host time the pause
 * returned. */
static int migrate(struct tvm *from, struct tvm *to, uint32_t pause,
                   uint64_t *paused_ns, hvc_tsc_state *rec_out)
{
    HVT_OK(hvc_vm_pause(from->t.vm));
    *paused_ns = raw_ns();
    size_t need, len;
    HVT_OK(hvc_vm_tsc_state_size(from->t.vm, &need));
    cr_assert_eq(need,
                 sizeof(hvc_tsc_state) + from->n * sizeof(hvc_tsc_vcpu_state));
    uint8_t *rec = malloc(need);
    HVT_OK(hvc_vm_save_tsc(from->t.vm, rec, need, &len));
    cr_assert_eq(len, need);
    memcpy(rec_out, rec, sizeof(*rec_out));
    cr_assert_leq(len, sizeof(last_rec));
    memcpy(last_rec, rec, len);
    last_len = len;
    tvm_stop(from);
    usleep(20000); /* the record travels */
    uint64_t regs[2][NGPRS];
    for (uint32_t i = 0; i < from->n; i++)
        HVT_OK(hvc_vcpu_get_regs(from->r[i].vcpu, gprs, regs[i], NGPRS));
    HVT_OK(hvc_vm_read(from->t.vm, 0, ram, HVT_MEM));
    for (uint32_t i = 0; i < from->n; i++)
        memset(ram + CPU(i) + MAXD, 0, 8);
    hvt_close(&from->t);

    memset(to, 0, sizeof(*to));
    hvt_open(&to->t, 0);
    to->n = from->n;
    to->khz = from->khz;
    tvm_sampler(to);
    HVT_OK(hvc_vm_write(to->t.vm, 0, ram, HVT_MEM));
    for (uint32_t i = 0; i < to->n; i++) {
        to->r[i].vcpu = hvt_vcpu(to->t.vm, i, HVC_X86_MODE_LONG64, 0);
        HVT_OK(hvc_vcpu_set_regs(to->r[i].vcpu, gprs, regs[i], NGPRS));
    }
    hvc_tsc_restore_options o = HVC_TSC_RESTORE_OPTIONS_INIT;
    o.pause = pause;
    int r = hvc_vm_restore_tsc(to->t.vm, rec, len, &o);
    free(rec);
    return r;
}

/* @p n save -> new VM -> restore cycles of a 2-vCPU guest: the error of
 * each jump against the policy (clock_error_us) and the gap the guest saw,
 * in us. */
static void chain(uint32_t pause, int64_t *err_us, int64_t *seen_us, int n)
{
    struct tvm vms[2], *cur = &vms[0], *next = &vms[1];
    tvm_open(cur, 2, true);
    tvm_start(cur);
    for (int c = 0; c < n; c++) {
        progress(cur->t.vm, 0, 1000);
        progress(cur->t.vm, 1, 1000);
        usleep(10000);
        uint64_t paused = 0, h0 = 0, g0 = 0, h1 = 0, g1 = 0;
        hvc_tsc_state a;
        fresh(cur, &h0, &g0);
        HVT_OK(migrate(cur, next, pause, &paused, &a));
        uint64_t restored = raw_ns();
        /* kvmclock went on (advance) or stood still (freeze) with it */
        hvc_tsc_state b;
        uint8_t rec[sizeof(hvc_tsc_state) + 2 * sizeof(hvc_tsc_vcpu_state)];
        HVT_OK(hvc_vm_save_tsc(next->t.vm, rec, sizeof(rec), NULL));
        memcpy(&b, rec, sizeof(b));
        /* against the records' own CLOCK_REALTIME (sampled with kvmclock),
         * not this thread's timing, which a busy host delays */
        int64_t rt = (int64_t)(b.realtime_ns - a.realtime_ns);
        int64_t kv = (int64_t)(b.kvmclock_ns - a.kvmclock_ns);
        if (pause == HVC_TSC_PAUSE_ADVANCE)
            cr_assert(kv - rt < 1000000 && kv - rt > -1000000,
                      "kvmclock moved %lld ns across the restore, the host "
                      "%lld ns",
                      (long long)kv, (long long)rt);
        else
            cr_assert(kv > -1000000 && kv < rt - 15000000,
                      "kvmclock moved %lld ns across a frozen restore of "
                      "%lld ns",
                      (long long)kv, (long long)rt);
        cr_assert_eq(b.flags & HVC_TSC_STATE_PINNED, HVC_TSC_STATE_PINNED,
                     "the restore pinned the new VM's frequency");
        tvm_start(next);
        fresh(next, &h1, &g1);
        progress(next->t.vm, 1, 100);
        err_us[c] =
            clock_error_us(h0, g0, h1, g1, restored - paused, next->khz, pause);
        seen_us[c] =
            (int64_t)cyc_ns(q(next->t.vm, CPU(0) + MAXD), next->khz) / 1000;
        check_monotonic(next->t.vm, 2);
        struct tvm *t = cur; /* closed by migrate() */
        cur = next;
        next = t;
    }
    tvm_stop(cur);
    check_monotonic(cur->t.vm, 2);
    hvt_close(&cur->t);
}

Test(tsc_restore, save_restore_into_a_new_vm_advances)
{
    int64_t err[5], seen[5];
    chain(HVC_TSC_PAUSE_ADVANCE, err, seen, 5);
    int64_t m = median(err, 5), s = median(seen, 5);
    cr_log_info("restore (advance): jump - time saved, median %lld us "
                "(%lld..%lld); gap seen by the guest, median %lld us",
                (long long)m, (long long)err[0], (long long)err[4],
                (long long)s);
    cr_assert(m < 1000 && m > -1000, "median error %lld us", (long long)m);
}

Test(tsc_restore, save_restore_freezes_or_is_refused)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_tsc_info in = host_info(t.hv);
    hvt_close(&t);
    if (in.flags & HVC_TSC_OFFSET) {
        int64_t err[5], seen[5];
        chain(HVC_TSC_PAUSE_FREEZE, err, seen, 5);
        int64_t m = median(err, 5);
        cr_log_info("restore (freeze): jump median %lld us (%lld..%lld); gap "
                    "seen by the guest, median %lld us",
                    (long long)m, (long long)err[0], (long long)err[4],
                    (long long)median(seen, 5));
        cr_assert(m < 1000 && m > -1000, "median jump %lld us", (long long)m);
        return;
    }
    /* This host cannot move the guest TSC: a freeze would be a lie. */
    struct tvm a, b;
    tvm_open(&a, 2, true);
    tvm_start(&a);
    progress(a.t.vm, 0, 1000);
    usleep(20000);
    uint64_t paused;
    hvc_tsc_state rec;
    HVT_ERR(migrate(&a, &b, HVC_TSC_PAUSE_FREEZE, &paused, &rec), -ENOTSUP);
    cr_assert(strstr(hvc_last_error(), "cannot offset"), "%s",
              hvc_last_error());
    cr_log_info("freeze restore refused: %s", hvc_last_error());
    /* nothing was applied: the same record (the one saved at a's pause;
     * a_save_while_paused_is_the_pause_point: every save of one pause is
     * the same) restores under advance */
    cr_assert_eq(last_len,
                 sizeof(hvc_tsc_state) + 2 * sizeof(hvc_tsc_vcpu_state));
    hvc_tsc_restore_options o = HVC_TSC_RESTORE_OPTIONS_INIT;
    HVT_OK(hvc_vm_restore_tsc(b.t.vm, last_rec, last_len, &o));
    tvm_start(&b);
    progress(b.t.vm, 0, 1000);
    tvm_stop(&b);
    check_monotonic(b.t.vm, 2);
    hvt_close(&b.t);
}

Test(tsc_restore, a_save_while_paused_is_the_pause_point)
{
    struct tvm v;
    tvm_open(&v, 1, true);
    tvm_start(&v);
    progress(v.t.vm, 0, 1000);
    HVT_OK(hvc_vm_pause(v.t.vm));
    uint8_t r1[sizeof(hvc_tsc_state) + sizeof(hvc_tsc_vcpu_state)];
    uint8_t r2[sizeof(r1)];
    HVT_OK(hvc_vm_save_tsc(v.t.vm, r1, sizeof(r1), NULL));
    usleep(30000);
    HVT_OK(hvc_vm_save_tsc(v.t.vm, r2, sizeof(r2), NULL));
    cr_assert_arr_eq(r1, r2, sizeof(r1), "two saves of one pause differ");
    /* the record's guest TSC is the guest's last reading, or just after */
    hvc_tsc_vcpu_state e;
    memcpy(&e, r1 + sizeof(hvc_tsc_state), sizeof(e));
    uint64_t last = q(v.t.vm, CPU(0) + LAST);
    cr_assert_geq(e.guest_tsc, last);
    cr_assert_lt(e.guest_tsc - last, (uint64_t)v.khz * 100,
                 "record %llu cycles after the last reading",
                 (unsigned long long)(e.guest_tsc - last));
    HVT_ERR(hvc_vm_save_tsc(v.t.vm, r1, sizeof(r1) - 1, NULL), -ENOSPC);
    HVT_OK(hvc_vm_resume(v.t.vm));
    uint64_t x;
    HVT_ERR(hvc_vm_save_tsc(v.t.vm, r1, sizeof(r1), &x), -EBUSY);
    tvm_stop(&v);
    hvt_close(&v.t);
}

/* A record of @p n vCPUs from a stopped 2-vCPU VM. */
static size_t good_record(struct tvm *v, uint8_t *buf, size_t size)
{
    size_t len;
    HVT_OK(hvc_vm_save_tsc(v->t.vm, buf, size, &len));
    return len;
}

#define HDR(buf) ((hvc_tsc_state *)(void *)(buf))
#define ENT(buf, i)                                                            \
    ((hvc_tsc_vcpu_state *)(void *)((buf) + sizeof(hvc_tsc_state) +            \
                                    (i) * sizeof(hvc_tsc_vcpu_state)))

static void refused(hvc_vm *vm, const uint8_t *buf, size_t len, const char *why)
{
    HVT_ERR(hvc_vm_restore_tsc(vm, buf, len, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), why), "expected \"%s\": %s", why,
              hvc_last_error());
}

Test(tsc_restore, records_are_validated)
{
    struct tvm a, b;
    tvm_open(&a, 2, true);
    _Alignas(8)
        uint8_t good[sizeof(hvc_tsc_state) + 2 * sizeof(hvc_tsc_vcpu_state)];
    _Alignas(8) uint8_t r[sizeof(good)];
    size_t len = good_record(&a, good, sizeof(good));
    /* the record outlives its VM (a backend may allow one per process) */
    hvt_close(&a.t);
    tvm_open(&b, 2, false);
    cr_assert_eq(len, sizeof(good));
    const hvc_tsc_state *h = HDR(good);
    cr_assert_eq(h->magic, HVC_TSC_STATE_MAGIC);
    cr_assert_eq(memcmp(good, "HVTS", 4), 0);
    cr_assert_eq(h->version, HVC_TSC_STATE_VERSION);
    cr_assert_eq(h->header_size, 128);
    cr_assert_eq(h->vcpu_size, 48);
    cr_assert_eq(h->nr_vcpus, 2);
    cr_assert_eq(h->tsc_khz, a.khz);
    cr_assert(h->flags & HVC_TSC_STATE_PINNED);
    cr_assert_eq(ENT(good, 0)->guest_tsc, h->host_tsc + ENT(good, 0)->offset);
    cr_assert_eq(ENT(good, 1)->id, 1);
    HVT_OK(hvc_vm_restore_tsc(b.t.vm, good, len, NULL));

#define CORRUPT(stmt, why)                                                     \
    do {                                                                       \
        memcpy(r, good, len);                                                  \
        stmt;                                                                  \
        refused(b.t.vm, r, len, why);                                          \
    } while (0)
    CORRUPT(HDR(r)->magic ^= 1, "magic");
    CORRUPT(HDR(r)->version = 2, "version");
    CORRUPT(HDR(r)->header_size = 64, "header size");
    CORRUPT(HDR(r)->vcpu_size = 8, "entry size");
    CORRUPT(HDR(r)->nr_vcpus = 0, "vCPUs");
    CORRUPT(HDR(r)->nr_vcpus = 3, "bytes");
    CORRUPT(HDR(r)->flags |= 0x100, "unknown flags");
    CORRUPT(HDR(r)->reserved[4] = 1, "reserved");
    CORRUPT(HDR(r)->reserved0 = 1, "reserved");
    CORRUPT(HDR(r)->tsc_khz = 5, "frequency");
    CORRUPT(HDR(r)->tsc_khz = HDR(r)->host_tsc_khz * 2, "far from");
    CORRUPT(HDR(r)->ratio = 3, "unscaled");
    CORRUPT((HDR(r)->flags |= HVC_TSC_STATE_SCALED,
             HDR(r)->ratio_frac_bits = 48, HDR(r)->ratio = 12345),
            "does not scale");
    CORRUPT(
        (HDR(r)->flags |= HVC_TSC_STATE_SCALED, HDR(r)->ratio_frac_bits = 40),
        "fractional bits");
    CORRUPT((HDR(r)->flags |= HVC_TSC_STATE_KERNEL_SAMPLE,
             HDR(r)->sample_error_ns = 5),
            "sampling error");
    CORRUPT(HDR(r)->sample_error_ns = 2000000000u, "above 1 s");
    CORRUPT(HDR(r)->realtime_ns = 0, "impossible");
    CORRUPT(ENT(r, 1)->id = 0, "twice");
    CORRUPT(ENT(r, 1)->id = 7, "not in the VM");
    CORRUPT(ENT(r, 1)->id = 1u << 30, "out of range");
    CORRUPT(ENT(r, 0)->flags = 0x40, "unknown flags");
    CORRUPT(ENT(r, 0)->reserved = 1, "reserved");
    CORRUPT(ENT(r, 0)->guest_tsc += 1, "guest TSC");
    CORRUPT(ENT(r, 1)->offset -= 1, "guest TSC");
#undef CORRUPT
    memcpy(r, good, len);
    HDR(r)->nr_vcpus = 1;
    refused(b.t.vm, r, len - sizeof(hvc_tsc_vcpu_state), "not in the record");
    refused(b.t.vm, good, len - 1, "bytes");
    refused(b.t.vm, good, 16, "shorter");
    HVT_ERR(hvc_vm_restore_tsc(b.t.vm, NULL, len, NULL), -EINVAL);
    hvc_tsc_restore_options o = HVC_TSC_RESTORE_OPTIONS_INIT;
    o.pause = 7;
    HVT_ERR(hvc_vm_restore_tsc(b.t.vm, good, len, &o), -EINVAL);
    o = (hvc_tsc_restore_options)HVC_TSC_RESTORE_OPTIONS_INIT;
    o.size = 2;
    HVT_ERR(hvc_vm_restore_tsc(b.t.vm, good, len, &o), -EINVAL);

    /* A record whose guest TSC is about 2^56 ticks from this host's: where
     * the host cannot offset the TSC, the refusal's message computes the
     * distance in microseconds without overflowing (UBSan aborted here). */
    memcpy(r, good, len);
    for (int i = 0; i < 2; i++) {
        ENT(r, i)->offset += 1ull << 56;
        ENT(r, i)->guest_tsc += 1ull << 56;
    }
    int far = hvc_vm_restore_tsc(b.t.vm, r, len, NULL);
    if (far < 0) {
        cr_assert_eq(far, -ENOTSUP, "%s", hvc_last_error());
        /* the distance, 2^56 ticks give or take the time this took */
        const char *at = strstr(hvc_last_error(), "TSC +");
        cr_assert_not_null(at, "%s", hvc_last_error());
        long long us = strtoll(at + 4, NULL, 10);
        long long want = (long long)((1ull << 56) / HDR(r)->tsc_khz * 1000);
        cr_assert(us > want - want / 100 && us < want + want / 100,
                  "%lld us, expected about %lld: %s", us, want,
                  hvc_last_error());
        cr_assert(strstr(hvc_last_error(), "cannot offset"), "%s",
                  hvc_last_error());
    }
    HVT_OK(hvc_vm_restore_tsc(b.t.vm, good, len, NULL));

    /* a running VM refuses; once its vCPUs ran, so does another frequency */
    tvm_start(&b);
    progress(b.t.vm, 0, 100);
    HVT_ERR(hvc_vm_restore_tsc(b.t.vm, good, len, NULL), -EBUSY);
    tvm_stop(&b);
    HVT_OK(hvc_vm_restore_tsc(b.t.vm, good, len, NULL));
    memcpy(r, good, len);
    HDR(r)->tsc_khz += HDR(r)->tsc_khz / 10000; /* 100 ppm: still unscaled */
    HVT_ERR(hvc_vm_restore_tsc(b.t.vm, r, len, NULL), -EBUSY);
    cr_assert(strstr(hvc_last_error(), "have run"), "%s", hvc_last_error());
    hvt_close(&b.t);
}

/* Every kvmclock a restore accepts keeps the VM's own save -> restore
 * round trip working: a record near 2^62 ns (where a bound used to sit)
 * and one that wraps past 2^64 while the guest runs both restore, run,
 * save, and restore again into a new VM. */
Test(tsc_restore, far_kvmclock_values_round_trip)
{
    const uint64_t far[] = {(1ull << 62) - 1, UINT64_MAX - 2000000ull};
    for (int k = 0; k < 2; k++) {
        /* one VM at a time (a backend may allow one per process) */
        struct tvm a, b, c;
        tvm_open(&a, 2, true);
        _Alignas(8)
            uint8_t rec[sizeof(hvc_tsc_state) + 2 * sizeof(hvc_tsc_vcpu_state)];
        size_t len = good_record(&a, rec, sizeof(rec));
        hvt_close(&a.t);
        tvm_open(&b, 2, false);
        HDR(rec)->kvmclock_ns = far[k];
        HVT_OK(hvc_vm_restore_tsc(b.t.vm, rec, len, NULL));
        tvm_start(&b);
        progress(b.t.vm, 0, 100); /* the guest runs; kvmclock moves on */
        tvm_stop(&b);
        _Alignas(8) uint8_t again[sizeof(rec)];
        size_t len2 = good_record(&b, again, sizeof(again));
        uint64_t moved = HDR(again)->kvmclock_ns - far[k]; /* modular */
        cr_assert(moved > 0 && moved < 60ull * 1000000000ull,
                  "kvmclock moved by %" PRIu64 " ns from %" PRIu64, moved,
                  far[k]);
        hvt_close(&b.t);
        tvm_open(&c, 2, false);
        HVT_OK(hvc_vm_restore_tsc(c.t.vm, again, len2, NULL));
        hvt_close(&c.t);
    }
}
