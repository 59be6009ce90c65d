/* TSC virtualization (hvcore/tsc.h) on KVM: the ratio arithmetic, the
 * host facts, the guest frequency and the CPUID that tells it, RDTSC and
 * RDTSCP continuity across vCPUs and pauses, the pause policies, values and
 * offsets per vCPU, and PIT catch-up. Save and restore are in
 * test_tsc_restore.c; tests/tsc_model.c checks the paths this project's
 * hosts cannot take (offsetting, scaling) against a model backend.
 *
 * Timing checks compare guest TSC readings (tests/guests/tsc64.S) with host
 * CLOCK_MONOTONIC_RAW taken around the pause points, and use medians of
 * several trials: the hosts are shared and noisy. Checks that need a host
 * ability run where it exists; elsewhere the test checks the documented
 * refusal instead, and says so in its log. */
#include "tsc_guest.h"

#include <errno.h>
#include <stdio.h>

/* ---- pure arithmetic: no VM, no KVM ---- */

Test(tsc, ratio_math_matches_hand_values)
{
    uint64_t r;
    /* VMX 16.48: equal frequencies are exactly 1.0 */
    HVT_OK(hvc_tsc_ratio(2596098, 2596098, 48, &r));
    cr_assert_eq(r, 1ull << 48);
    HVT_OK(hvc_tsc_ratio(3000000, 2000000, 48, &r));
    cr_assert_eq(r, 0x1800000000000ull); /* 1.5 */
    /* truncated, never rounded up: 2/3 = 0.AAAA..., 1/3 = 0.5555... */
    HVT_OK(hvc_tsc_ratio(2, 3, 48, &r));
    cr_assert_eq(r, 187649984473770ull); /* 2^49 / 3 = ...770.67 */
    HVT_OK(hvc_tsc_ratio(2, 3, 32, &r));
    cr_assert_eq(r, 0xaaaaaaaaull); /* 2^33 / 3 = 2863311530.67 */
    HVT_OK(hvc_tsc_ratio(1, 3, 32, &r));
    cr_assert_eq(r, 0x55555555ull);
    /* 1 ppm below the host: 2^48 * 2596097 / 2596098, truncated */
    HVT_OK(hvc_tsc_ratio(2596097, 2596098, 48, &r));
    cr_assert_eq(r, 281474868288332ull);
    /* the smallest ratios the formats can hold from 32-bit kHz */
    HVT_OK(hvc_tsc_ratio(1, 4000000, 48, &r));
    cr_assert_eq(r, 70368744ull); /* 70368744.18 */
    HVT_OK(hvc_tsc_ratio(1, 4000000, 32, &r));
    cr_assert_eq(r, 1073ull); /* 1073.74 */
    HVT_OK(hvc_tsc_ratio(1, UINT32_MAX, 32, &r));
    cr_assert_eq(r, 1ull);
    HVT_OK(hvc_tsc_ratio(1, UINT32_MAX, 48, &r));
    cr_assert_eq(r, 65536ull);
    /* the largest: VMX up to 65536.0 exclusive, SVM up to 256.0 exclusive */
    HVT_OK(hvc_tsc_ratio(65535999, 1000, 48, &r));
    cr_assert_eq(r, 0xffffffbe76c8b439ull); /* 65535.999 * 2^48 */
    HVT_ERR(hvc_tsc_ratio(65536000, 1000, 48, &r), -ERANGE);
    cr_assert(strstr(hvc_last_error(), "VMX"), "%s", hvc_last_error());
    HVT_OK(hvc_tsc_ratio(255999, 1000, 32, &r));
    cr_assert_eq(r, 1099507332808ull); /* 255.999 * 2^32 */
    HVT_ERR(hvc_tsc_ratio(256000, 1000, 32, &r), -ERANGE);
    cr_assert(strstr(hvc_last_error(), "SVM"), "%s", hvc_last_error());
    /* bad arguments */
    HVT_ERR(hvc_tsc_ratio(1, 1, 40, &r), -EINVAL);
    HVT_ERR(hvc_tsc_ratio(0, 1, 48, &r), -EINVAL);
    HVT_ERR(hvc_tsc_ratio(1, 0, 48, &r), -EINVAL);
    HVT_ERR(hvc_tsc_ratio(1, 1, 48, NULL), -EINVAL);

    /* scaling, as the hardware: 128-bit product, truncated, mod 2^64 */
    uint64_t g;
    HVT_OK(hvc_tsc_scale(1000, 1ull << 48, 48, &g));
    cr_assert_eq(g, 1000);
    HVT_OK(hvc_tsc_scale(UINT64_MAX, 1ull << 48, 48, &g));
    cr_assert_eq(g, UINT64_MAX);
    HVT_OK(hvc_tsc_scale(UINT64_MAX, 0x1800000000000ull, 48, &g));
    cr_assert_eq(g, 0x7ffffffffffffffeull); /* 1.5 * (2^64 - 1), wrapped */
    HVT_OK(hvc_tsc_scale(3, 0xaaaaaaaaull, 32, &g));
    cr_assert_eq(g, 1); /* 3 * 0.6666... = 1.99999 -> 1 */
    HVT_OK(hvc_tsc_scale(3000000000ull, 0xaaaaaaaaull, 32, &g));
    cr_assert_eq(g, 1999999999ull);
    HVT_OK(hvc_tsc_scale(12345, 1, 0, &g));
    cr_assert_eq(g, 12345); /* unscaled */
    HVT_ERR(hvc_tsc_scale(1, 1, 64, &g), -EINVAL);
    HVT_ERR(hvc_tsc_scale(1, 1, 48, NULL), -EINVAL);
}

/* ---- host facts and the frequency ---- */

Test(tsc, host_info_agrees_with_the_capabilities)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_tsc_info in = host_info(hv);
    cr_log_info("host TSC %u kHz, flags 0x%x, frac bits %u, tolerance %u ppm",
                in.host_tsc_khz, in.flags, in.ratio_frac_bits,
                in.backend_tolerance_ppm);
    cr_assert_gt(in.host_tsc_khz, 100000u);
    cr_assert_eq(in.apic_bus_khz, 1000000u);
    cr_assert_gt(in.backend_tolerance_ppm, 0u);
    uint64_t cap;
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_TSC_SCALING, &cap));
    cr_assert_eq(!!cap, !!(in.flags & HVC_TSC_SCALING));
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_TSC_OFFSET, &cap));
    cr_assert_eq(!!cap, !!(in.flags & HVC_TSC_OFFSET));
    if (in.flags & HVC_TSC_SCALING) {
        cr_assert(in.ratio_frac_bits == 48 || in.ratio_frac_bits == 32);
        cr_assert_gt(in.max_guest_tsc_khz, in.host_tsc_khz);
    } else {
        cr_assert_eq(in.ratio_frac_bits, 0);
        cr_assert_eq(in.ratio_max, 0);
        cr_assert_eq(in.max_guest_tsc_khz, in.host_tsc_khz);
    }
    hvc_tsc_info bad = HVC_TSC_INFO_INIT;
    bad.size = 8;
    HVT_ERR(hvc_tsc_get_info(hv, &bad), -EINVAL);
    HVT_ERR(hvc_tsc_get_info(NULL, &in), -EINVAL);
    HVT_OK(hvc_hypervisor_close(hv));
}

Test(tsc, frequency_needing_scaling_fails_without_it)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_tsc_info in = host_info(t.hv);
    uint32_t host = in.host_tsc_khz;
    hvc_tsc_frequency_options f = HVC_TSC_FREQUENCY_OPTIONS_INIT;
    f.tsc_khz = host / 10 * 9; /* 10% slow: scaling needed */
    if (!(in.flags & HVC_TSC_SCALING)) {
        HVT_ERR(hvc_vm_set_tsc_frequency(t.vm, &f), -ENOTSUP);
        cr_assert(strstr(hvc_last_error(), "cannot scale"), "%s",
                  hvc_last_error());
        char want[32];
        snprintf(want, sizeof(want), "%u kHz", f.tsc_khz);
        cr_assert(strstr(hvc_last_error(), want), "%s", hvc_last_error());
        /* a zero tolerance demands scaling for 1 kHz too */
        f.tsc_khz = host + 1;
        f.tolerance_ppm = 0;
        HVT_ERR(hvc_vm_set_tsc_frequency(t.vm, &f), -ENOTSUP);
    } else {
        HVT_OK(hvc_vm_set_tsc_frequency(t.vm, &f));
        hvc_tsc_config c = HVC_TSC_CONFIG_INIT;
        HVT_OK(hvc_vm_get_tsc_config(t.vm, &c));
        cr_assert(c.flags & HVC_TSC_SCALED);
        cr_assert_eq(c.effective_khz, f.tsc_khz);
    }
    /* within the tolerance: accepted, pinned, unscaled */
    pin(t.vm, host + host / 5000, HVC_TSC_DEFAULT_TOLERANCE_PPM); /* 200 ppm */
    hvc_tsc_config c = HVC_TSC_CONFIG_INIT;
    HVT_OK(hvc_vm_get_tsc_config(t.vm, &c));
    cr_assert_eq(c.flags, HVC_TSC_PINNED);
    cr_assert_eq(c.tsc_khz, host + host / 5000);
    cr_assert_eq(c.effective_khz, host);
    cr_assert_eq(c.ratio, 1);
    /* bad options */
    f = (hvc_tsc_frequency_options)HVC_TSC_FREQUENCY_OPTIONS_INIT;
    HVT_ERR(hvc_vm_set_tsc_frequency(t.vm, &f), -EINVAL); /* 0 kHz */
    f.tsc_khz = host;
    f.tolerance_ppm = HVC_TSC_MAX_TOLERANCE_PPM + 1;
    HVT_ERR(hvc_vm_set_tsc_frequency(t.vm, &f), -EINVAL);
    f.tolerance_ppm = 0;
    f.size = 4;
    HVT_ERR(hvc_vm_set_tsc_frequency(t.vm, &f), -EINVAL);
    HVT_ERR(hvc_vm_set_tsc_frequency(NULL, &f), -EINVAL);
    hvt_close(&t);
}

Test(tsc, frequency_is_fixed_once_a_vcpu_ran)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "long64");
    uint64_t in[2] = {1, 5};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, in, sizeof(in)));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x64);
    hvc_tsc_frequency_options f = HVC_TSC_FREQUENCY_OPTIONS_INIT;
    f.tsc_khz = host_info(t.hv).host_tsc_khz;
    HVT_ERR(hvc_vm_set_tsc_frequency(t.vm, &f), -EBUSY);
    cr_assert(strstr(hvc_last_error(), "before running"), "%s",
              hvc_last_error());
    hvt_close(&t);
}

/* Runs tests/guests/tsc_cpuid.S and returns leaf i's {eax, ebx, ecx,
 * edx}. */
enum { L0, L15, L16, LKVM, LTIMING, LPOWER, LEXT, NLEAVES };

static void read_leaves(hvt *t, uint32_t out[NLEAVES][4])
{
    hvt_load(t->vm, "tsc_cpuid");
    hvc_vcpu *v = hvt_vcpu(t->vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x15);
    HVT_OK(hvc_vm_read(t->vm, DATA_OUT, out, sizeof(uint32_t) * 4 * NLEAVES));
}

/* Whether the guest was offered the timing leaf 0x40000010 (TSC and APIC
 * bus kHz): within the hypervisor leaves' range, which KVM's signature
 * (KVMKVMKVM) must offer. */
static bool has_timing_leaf(uint32_t l[NLEAVES][4])
{
    bool kvm = l[LKVM][1] == 0x4b4d564bu && l[LKVM][2] == 0x564b4d56u &&
               l[LKVM][3] == 0x4du;
    if (kvm)
        cr_assert_geq(l[LKVM][0], 0x40000010u,
                      "KVM's signature without the timing leaf");
    return l[LKVM][0] >= 0x40000010u && l[LKVM][0] < 0x40010000u;
}

static void assert_timing_leaf(uint32_t l[NLEAVES][4], uint32_t khz,
                               uint32_t bus_khz)
{
    cr_assert_eq(l[LTIMING][0], khz);
    cr_assert_eq(l[LTIMING][1], bus_khz);
}

Test(tsc, cpuid_tells_the_frequency)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_tsc_info in = host_info(t.hv);
    uint32_t khz = in.host_tsc_khz + in.host_tsc_khz / 10000; /* +100 ppm */
    pin(t.vm, khz, HVC_TSC_DEFAULT_TOLERANCE_PPM);
    uint32_t l[NLEAVES][4];
    read_leaves(&t, l);
    cr_assert_geq(l[L0][0], 0x16u, "max basic leaf 0x%x", l[L0][0]);
    /* 0x15: TSC Hz = crystal * ebx / eax, the crystal the APIC bus */
    cr_assert_eq(l[L15][2], in.apic_bus_khz * 1000u);
    cr_assert_neq(l[L15][0], 0u);
    cr_assert_eq((uint64_t)l[L15][2] * l[L15][1] / l[L15][0],
                 (uint64_t)khz * 1000);
    /* 0x16: MHz */
    cr_assert_eq(l[L16][0], (khz + 500) / 1000);
    cr_assert_eq(l[L16][1], (khz + 500) / 1000);
    cr_assert_eq(l[L16][2], in.apic_bus_khz / 1000);
    /* 0x40000010: kHz, where the hypervisor leaves reach it (KVM's
     * signature promises them; a backend without them, hvf, tells the
     * frequency in 0x15/0x16 only, checked above) */
    if (has_timing_leaf(l))
        assert_timing_leaf(l, khz, in.apic_bus_khz);
    /* invariant TSC: pinned, so passed when the host has it */
    cr_assert_eq(!!(l[LPOWER][3] & (1u << 8)),
                 !!(in.flags & HVC_TSC_HOST_INVARIANT));
    cr_log_info("RDTSCP %s offered to guests here",
                l[LEXT][3] & (1u << 27) ? "is" : "is not");
    hvt_close(&t);

    /* unpinned: the host's frequency, and no invariant-TSC promise */
    hvt_open(&t, 0);
    read_leaves(&t, l);
    if (has_timing_leaf(l))
        assert_timing_leaf(l, in.host_tsc_khz, in.apic_bus_khz);
    cr_assert_eq((uint64_t)l[L15][2] * l[L15][1] / l[L15][0],
                 (uint64_t)in.host_tsc_khz * 1000);
    cr_assert_eq(l[L16][0], (in.host_tsc_khz + 500) / 1000);
    cr_assert_eq(l[LPOWER][3] & (1u << 8), 0u);
    hvt_close(&t);
}

static int64_t observed_ppm(struct tvm *v, uint32_t khz)
{
    int64_t ppm[5];
    for (int i = 0; i < 5; i++) {
        uint64_t h0 = 0, g0 = 0, h1 = 0, g1 = 0;
        fresh(v, &h0, &g0);
        usleep(250000);
        fresh(v, &h1, &g1);
        double f = (double)(g1 - g0) * 1e6 / (double)(h1 - h0);
        ppm[i] = (int64_t)((f - khz) * 1e6 / khz);
    }
    return median(ppm, 5);
}

Test(tsc, guest_observes_the_configured_frequency)
{
    struct tvm v;
    tvm_open(&v, 1, true);
    tvm_start(&v);
    progress(v.t.vm, 0, 1000);
    int64_t ppm = observed_ppm(&v, v.khz);
    cr_log_info("guest TSC at %u kHz: observed %+lld ppm", v.khz,
                (long long)ppm);
    cr_assert(ppm < 100 && ppm > -100, "observed %+lld ppm off %u kHz",
              (long long)ppm, v.khz);
    tvm_stop(&v);
    check_monotonic(v.t.vm, 1);
    hvt_close(&v.t);

    hvc_tsc_info in;
    hvt_open(&v.t, 0);
    in = host_info(v.t.hv);
    hvt_close(&v.t);
    if (!(in.flags & HVC_TSC_SCALING)) {
        cr_log_info("no TSC scaling here: scaled frequencies are refused "
                    "(frequency_needing_scaling_fails_without_it)");
        return;
    }
    /* 80% of the host, scaled in hardware */
    uint32_t khz = in.host_tsc_khz / 5 * 4;
    memset(&v, 0, sizeof(v));
    hvt_open(&v.t, 0);
    pin(v.t.vm, khz, 0);
    hvt_load(v.t.vm, "tsc64");
    v.n = 1;
    v.khz = khz;
    tvm_sampler(&v);
    v.r[0].vcpu = hvt_vcpu(v.t.vm, 0, HVC_X86_MODE_LONG64, 0);
    tvm_start(&v);
    progress(v.t.vm, 0, 1000);
    ppm = observed_ppm(&v, khz);
    cr_assert(ppm < 100 && ppm > -100, "scaled: %+lld ppm off %u kHz",
              (long long)ppm, khz);
    tvm_stop(&v);
    hvt_close(&v.t);
}

/* How far the guest's clock moved across a pause, beyond the host time
 * it ran: fresh readings before and after, against the host clock.
 * Advance must give the paused time W, freeze nothing; the result is the
 * difference, in us (latencies of kicks and wake-ups cancel out, so this
 * holds on a busy host). @p seen_us gets the raw gap the guest saw between
 * two readings (its largest step, reset while paused), for the log. */
Test(tsc, advance_jump_equals_the_paused_time)
{
    struct tvm v;
    tvm_open(&v, 1, true);
    hvc_tsc_policy p = HVC_TSC_POLICY_INIT;
    HVT_OK(hvc_vm_get_tsc_policy(v.t.vm, &p));
    cr_assert_eq(p.pause, HVC_TSC_PAUSE_ADVANCE); /* the default */
    tvm_start(&v);
    int64_t err[TRIALS], seen[TRIALS];
    pause_trials(&v, HVC_TSC_PAUSE_ADVANCE, err, seen);
    int64_t m = median(err, TRIALS), s = median(seen, TRIALS);
    cr_log_info("advance: jump - paused time, median %lld us (%lld..%lld); "
                "gap seen by the guest, median %lld us for 50 ms pauses",
                (long long)m, (long long)err[0], (long long)err[TRIALS - 1],
                (long long)s);
    cr_assert(m < 1000 && m > -1000, "median error %lld us", (long long)m);
    cr_assert_gt(s, 49000, "the guest saw a %lld us gap", (long long)s);
    tvm_stop(&v);
    check_monotonic(v.t.vm, 1);
    hvt_close(&v.t);
}

Test(tsc, freeze_hides_the_pause_or_is_refused)
{
    struct tvm v;
    tvm_open(&v, 1, true);
    hvc_tsc_info in = host_info(v.t.hv);
    hvc_tsc_policy p = HVC_TSC_POLICY_INIT;
    p.pause = HVC_TSC_PAUSE_FREEZE;
    if (!(in.flags & HVC_TSC_OFFSET)) {
        HVT_ERR(hvc_vm_set_tsc_policy(v.t.vm, &p), -ENOTSUP);
        cr_assert(strstr(hvc_last_error(), "offset"), "%s", hvc_last_error());
        cr_log_info("freeze refused: %s", hvc_last_error());
        hvc_tsc_policy now = HVC_TSC_POLICY_INIT;
        HVT_OK(hvc_vm_get_tsc_policy(v.t.vm, &now));
        cr_assert_eq(now.pause, HVC_TSC_PAUSE_ADVANCE, "unchanged");
        hvt_close(&v.t);
        return;
    }
    HVT_OK(hvc_vm_set_tsc_policy(v.t.vm, &p));
    tvm_start(&v);
    int64_t err[TRIALS], seen[TRIALS];
    pause_trials(&v, HVC_TSC_PAUSE_FREEZE, err, seen);
    int64_t m = median(err, TRIALS), s = median(seen, TRIALS);
    cr_log_info("freeze: jump median %lld us (%lld..%lld); gap seen by the "
                "guest, median %lld us for 50 ms pauses",
                (long long)m, (long long)err[0], (long long)err[TRIALS - 1],
                (long long)s);
    cr_assert(m < 1000 && m > -1000, "median jump %lld us", (long long)m);
    cr_assert_lt(s, 49000, "the guest saw the pause: %lld us", (long long)s);
    tvm_stop(&v);
    check_monotonic(v.t.vm, 1);
    hvt_close(&v.t);
}

Test(tsc, never_backwards_across_vcpus_and_pauses)
{
    struct tvm v;
    tvm_open(&v, 2, true);
    tvm_start(&v);
    for (int i = 0; i < 10; i++) {
        progress(v.t.vm, 0, 1000);
        progress(v.t.vm, 1, 1000);
        usleep(20000);
        HVT_OK(hvc_vm_pause(v.t.vm));
        check_monotonic(v.t.vm, 2);
        usleep(5000);
        HVT_OK(hvc_vm_resume(v.t.vm));
    }
    progress(v.t.vm, 0, 1000);
    progress(v.t.vm, 1, 1000);
    tvm_stop(&v);
    check_monotonic(v.t.vm, 2);
    cr_log_info("%llu + %llu readings, %llu + %llu of them by RDTSCP (used "
                "when CPUID offers it)",
                (unsigned long long)q(v.t.vm, CPU(0) + ITER),
                (unsigned long long)q(v.t.vm, CPU(1) + ITER),
                (unsigned long long)q(v.t.vm, CPU(0) + NTSCP),
                (unsigned long long)q(v.t.vm, CPU(1) + NTSCP));
    /* every vCPU shares one offset */
    uint64_t o0, o1;
    HVT_OK(hvc_vcpu_get_tsc_offset(v.r[0].vcpu, &o0));
    HVT_OK(hvc_vcpu_get_tsc_offset(v.r[1].vcpu, &o1));
    cr_assert_eq(o0, o1);
    hvt_close(&v.t);
}

Test(tsc, value_and_offset_per_vcpu)
{
    struct tvm v;
    tvm_open(&v, 2, true);
    hvc_tsc_info in = host_info(v.t.hv);
    uint64_t o0, o1, g;
    HVT_OK(hvc_vcpu_get_tsc_offset(v.r[0].vcpu, &o0));
    HVT_OK(hvc_vcpu_get_tsc_offset(v.r[1].vcpu, &o1));
    cr_assert_eq(o0, o1, "one offset for all vCPUs");
    /* the guest TSC is the host TSC plus the offset (unscaled here) */
    uint64_t t0 = __builtin_ia32_rdtsc();
    HVT_OK(hvc_vcpu_get_tsc(v.r[0].vcpu, &g));
    uint64_t t1 = __builtin_ia32_rdtsc();
    cr_assert(g - o0 >= t0 && g - o0 <= t1, "guest %llu, host %llu..%llu",
              (unsigned long long)(g - o0), (unsigned long long)t0,
              (unsigned long long)t1);
    /* writing the offset in place works on any host */
    HVT_OK(hvc_vcpu_set_tsc_offset(v.r[0].vcpu, o0, 0));
    HVT_OK(hvc_vcpu_set_tsc_offset(v.r[1].vcpu, o1, HVC_TSC_THIS_VCPU));
    if (in.flags & HVC_TSC_OFFSET) {
        HVT_OK(hvc_vcpu_set_tsc(v.r[0].vcpu, 1000000000000ull, 0));
        HVT_OK(hvc_vcpu_get_tsc(v.r[1].vcpu, &g));
        cr_assert(g >= 1000000000000ull && g < 1000000000000ull + v.khz * 100,
                  "vCPU 1 reads %llu", (unsigned long long)g);
        HVT_OK(
            hvc_vcpu_set_tsc(v.r[1].vcpu, 5000000000000ull, HVC_TSC_THIS_VCPU));
        HVT_OK(hvc_vcpu_get_tsc_offset(v.r[0].vcpu, &o0));
        HVT_OK(hvc_vcpu_get_tsc_offset(v.r[1].vcpu, &o1));
        cr_assert_neq(o0, o1, "HVC_TSC_THIS_VCPU moves one vCPU only");
        /* a vCPU created now gets the shared offset */
        hvc_vcpu *late;
        HVT_OK(hvc_vcpu_create(v.t.vm, 2, &late));
        uint64_t o2;
        HVT_OK(hvc_vcpu_get_tsc_offset(late, &o2));
        cr_assert_eq(o2, o0);
    } else {
        HVT_ERR(hvc_vcpu_set_tsc(v.r[0].vcpu, 1000000000000ull, 0), -ENOTSUP);
        cr_assert(strstr(hvc_last_error(), "cannot offset"), "%s",
                  hvc_last_error());
        HVT_ERR(hvc_vcpu_set_tsc_offset(v.r[0].vcpu, o0 + 1, HVC_TSC_THIS_VCPU),
                -ENOTSUP);
    }
    HVT_ERR(hvc_vcpu_set_tsc(v.r[0].vcpu, 0, 0x8), -EINVAL);
    HVT_ERR(hvc_vcpu_set_tsc_offset(NULL, 0, 0), -EINVAL);
    HVT_ERR(hvc_vcpu_get_tsc(v.r[0].vcpu, NULL), -EINVAL);
    HVT_ERR(hvc_vcpu_get_tsc_offset(v.r[0].vcpu, NULL), -EINVAL);

    /* another thread runs the vCPUs: refused until paused */
    if (in.flags & HVC_TSC_OFFSET) /* undo the divergence before running */
        HVT_OK(hvc_vcpu_set_tsc_offset(v.r[0].vcpu, o0, 0));
    tvm_start(&v);
    progress(v.t.vm, 0, 100);
    HVT_ERR(hvc_vcpu_get_tsc(v.r[0].vcpu, &g), -EBUSY);
    cr_assert(strstr(hvc_last_error(), "pause the VM"), "%s", hvc_last_error());
    HVT_ERR(hvc_vcpu_set_tsc_offset(v.r[0].vcpu, o0, 0), -EBUSY);
    HVT_OK(hvc_vm_pause(v.t.vm));
    HVT_OK(hvc_vcpu_get_tsc(v.r[0].vcpu, &g));
    cr_assert_geq(g, q(v.t.vm, CPU(0) + LAST));
    HVT_OK(hvc_vcpu_set_tsc_offset(v.r[0].vcpu, o0, 0));
    HVT_OK(hvc_vm_resume(v.t.vm));
    tvm_stop(&v);
    check_monotonic(v.t.vm, 2);
    hvt_close(&v.t);
}

Test(tsc, a_late_vcpu_joins_the_shared_offset)
{
    /* KVM lines a new vCPU up with the others only within a second */
    hvt t;
    hvt_open(&t, 0);
    hvc_vcpu *a, *b;
    HVT_OK(hvc_vcpu_create(t.vm, 0, &a));
    usleep(1100000);
    HVT_OK(hvc_vcpu_create(t.vm, 1, &b));
    uint64_t oa, ob;
    HVT_OK(hvc_vcpu_get_tsc_offset(a, &oa));
    HVT_OK(hvc_vcpu_get_tsc_offset(b, &ob));
    cr_assert_eq(oa, ob, "offsets 0x%llx and 0x%llx", (unsigned long long)oa,
                 (unsigned long long)ob);
    hvt_close(&t);
}

/* ---- PIT catch-up (tests/guests/tsc_pit.S) ---- */

#define PIT_HZ (1193182.0 / 1193.0)

/* Lets the ticker run, pauses it for @p pause_ms, lets it run again;
 * returns the ticks counted and the host time covered. */
static uint64_t pit_ticks(hvt *t, struct runner *r, uint32_t pause_ms,
                          bool catchup, double *covered_ms)
{
    uint64_t start = q(t->vm, DATA_OUT);
    for (int i = 0; i < 5000 && q(t->vm, DATA_OUT) < start + 50; i++)
        usleep(1000);
    cr_assert_geq(q(t->vm, DATA_OUT), start + 50, "no PIT ticks: status %d",
                  r->status);
    uint64_t t0 = raw_ns(), n0 = q(t->vm, DATA_OUT);
    usleep(100000);
    HVT_OK(hvc_vm_pause(t->vm));
    usleep(pause_ms * 1000);
    HVT_OK(hvc_vm_resume(t->vm));
    /* Catching up takes the guest CPU time, which a busy host hands out
     * late: give it up to 3 s to come within 3% of every tick so far. */
    uint64_t t1, n1;
    for (int i = 0;; i++) {
        usleep(i ? 20000 : 300000);
        t1 = raw_ns();
        n1 = q(t->vm, DATA_OUT);
        if (!catchup || i >= 135 ||
            (double)(n1 - n0) >= (double)(t1 - t0) * PIT_HZ / 1e9 * 0.97)
            break;
    }
    *covered_ms = (double)(t1 - t0) / 1e6;
    return n1 - n0;
}

Test(tsc, pit_catchup_after_a_pause)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "tsc_pit");
    struct runner r = {.vcpu = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0)};
    cr_assert_eq(pthread_create(&r.th, NULL, run_thread, &r), 0);
    hvc_tsc_info in = host_info(t.hv);
    cr_assert(in.flags & HVC_TSC_PIT_CATCHUP);

    /* the default: every tick of the pause is delivered afterwards */
    double ms;
    uint64_t n = pit_ticks(&t, &r, 400, true, &ms);
    double all = ms * PIT_HZ / 1000;
    cr_log_info("PIT, catch-up: %llu ticks over %.0f ms (%.0f expected)",
                (unsigned long long)n, ms, all);
    cr_assert_gt((double)n, all * 0.95, "%llu ticks, %.0f expected",
                 (unsigned long long)n, all);

    /* a pause longer than catchup_max_ms is not caught up */
    hvc_tsc_policy p = HVC_TSC_POLICY_INIT;
    p.catchup_max_ms = 100;
    HVT_OK(hvc_vm_set_tsc_policy(t.vm, &p));
    n = pit_ticks(&t, &r, 400, false, &ms);
    double ran = (ms - 400) * PIT_HZ / 1000;
    cr_log_info("PIT, limited: %llu ticks over %.0f ms (%.0f while running)",
                (unsigned long long)n, ms, ran);
    cr_assert_lt((double)n, ran + 100, "%llu ticks, %.0f while running",
                 (unsigned long long)n, ran);

    /* no catch-up at all: the same */
    p.catchup = 0;
    p.catchup_max_ms = 0;
    HVT_OK(hvc_vm_set_tsc_policy(t.vm, &p));
    n = pit_ticks(&t, &r, 400, false, &ms);
    ran = (ms - 400) * PIT_HZ / 1000;
    cr_assert_lt((double)n, ran + 100, "%llu ticks, %.0f while running",
                 (unsigned long long)n, ran);
    hvc_tsc_policy got = HVC_TSC_POLICY_INIT;
    HVT_OK(hvc_vm_get_tsc_policy(t.vm, &got));
    cr_assert_eq(got.catchup, 0);

    /* KVM has no local APIC timer catch-up */
    p.catchup = HVC_TSC_CATCHUP_LAPIC;
    HVT_ERR(hvc_vm_set_tsc_policy(t.vm, &p), -ENOTSUP);
    cr_assert(strstr(hvc_last_error(), "local APIC"), "%s", hvc_last_error());
    p.catchup = 0x80;
    HVT_ERR(hvc_vm_set_tsc_policy(t.vm, &p), -EINVAL);
    p.catchup = 0;
    p.pause = 9;
    HVT_ERR(hvc_vm_set_tsc_policy(t.vm, &p), -EINVAL);

    put_q(t.vm, DATA_IN, 1);
    pthread_join(r.th, NULL);
    cr_assert_eq(r.status, 0x5a, "status %d rc %d", r.status, r.rc);
    hvt_close(&t);
}
