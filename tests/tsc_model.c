/* The TSC core (src/core/tsc*.c) against a model backend: a host TSC the
 * test moves by hand, kvmclock, per-vCPU offsets, scaling and the TSC MSRs
 * as KVM defines them, and a log of the writes. The hosts this project runs
 * on cannot offset or scale a guest's TSC, so the paths that do (the freeze
 * policy, restores that move the TSC, scaled frequencies, the order of the
 * writes, undoing a failed restore) are checked here, to the cycle.
 *
 * White-box: it builds a hypervisor handle on the model backend
 * (src/core/internal.h), so it links the static library. */
#include "tsc_model.h"

/* ---- pure arithmetic ---- */

Test(tsc_model, restore_math_by_hand)
{
    /* 2 s passed in kvmclock at 2 GHz: the guest TSC at the destination
     * sample is the source's plus 4e9 */
    uint64_t ofs = hvi_restore_offset(1000000000ull, 5000000000ull,
                                      7000000000000ull, 7000000000ull, 2000000);
    cr_assert_eq(7000000000000ull + ofs, 5000000000ull);
    /* kvmclock 1 us before the source value: 2000 cycles less */
    ofs = hvi_restore_offset(1000000000ull, 5000000000ull, 7000000000000ull,
                             4999999000ull, 2000000);
    cr_assert_eq(7000000000000ull + ofs, 1000000000ull - 2000);
    /* a guest TSC below the host's: the offset wraps, as KVM's */
    cr_assert_eq(hvi_restore_offset(10, 0, 1000, 0, 2000000), (uint64_t)-990);
    cr_assert_eq(hvi_ns_to_cycles(-1000, 2596098), -2596);
    cr_assert_eq(hvi_cycles_to_ns(2596098000ull, 2596098), SEC);
    /* the tolerance edge: 250 ppm of 2 GHz is 500 kHz */
    cr_assert(hvi_within_ppm(2000500, 2000000, 250));
    cr_assert(!hvi_within_ppm(2000501, 2000000, 250));
    cr_assert(hvi_within_ppm(1999500, 2000000, 250));
    cr_assert(!hvi_within_ppm(1999499, 2000000, 250));
    /* leaf 0x15 with KVM's 1 GHz APIC bus as the crystal: TSC Hz =
     * ecx * ebx / eax exactly, the fraction reduced */
    uint32_t a, b, c;
    hvi_tsc_leaf_15(2596098, 1000000, &a, &b, &c);
    cr_assert(a == 500000 && b == 1298049 && c == 1000000000u, "%u %u %u", a, b,
              c);
    hvi_tsc_leaf_15(2100000, 1000000, &a, &b, &c);
    cr_assert(a == 10 && b == 21 && c == 1000000000u, "%u %u %u", a, b, c);
    hvi_tsc_leaf_16(2596098, 1000000, &a, &b, &c);
    cr_assert(a == 2596 && b == 2596 && c == 1000, "%u %u %u", a, b, c);
}

/* ---- pauses ---- */

Test(tsc_model, freeze_hides_a_pause_to_the_cycle)
{
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET, 1);
    struct mv m;
    mv_open(&m, &h, 2);
    policy(m.vm, HVC_TSC_PAUSE_FREEZE, 0);
    advance(&h, 3 * SEC); /* the guest ran for 3 s */
    uint64_t g0 = guest_tsc(mcpu(&m, 0)), kc0 = kvmclock(mvm(&m));
    NEAR(g0, 6000000000ull, 0);
    OK(hvc_vcpu_set_reg(m.v[0], HVC_X86_MSR(MSR_DEADLINE), g0 + 1000));

    OK(hvc_vm_pause(m.vm));
    cr_assert_eq(mcpu(&m, 0)->deadline, 0, "the deadline is disarmed");
    advance(&h, 5 * SEC);
    uint64_t g;
    OK(hvc_vcpu_get_tsc(m.v[1], &g));
    cr_assert_eq(g, g0, "frozen while paused");
    /* a save while paused is the pause point, deadline included */
    uint8_t rec[sizeof(hvc_tsc_state) + 2 * sizeof(hvc_tsc_vcpu_state)];
    OK(hvc_vm_save_tsc(m.vm, rec, sizeof(rec), NULL));
    hvc_tsc_vcpu_state e;
    memcpy(&e, rec + sizeof(hvc_tsc_state), sizeof(e));
    cr_assert_eq(e.guest_tsc, g0);
    cr_assert_eq(e.tsc_deadline, g0 + 1000);
    int mark = h.nlog;
    OK(hvc_vm_resume(m.vm));

    cr_assert_eq(guest_tsc(mcpu(&m, 0)), g0);
    cr_assert_eq(guest_tsc(mcpu(&m, 1)), g0);
    cr_assert_eq(kvmclock(mvm(&m)), kc0);
    cr_assert_eq(mcpu(&m, 0)->deadline, g0 + 1000, "armed again");
    /* clock, then the offsets, then the deadline */
    int clock = first(&h, "clock", mark), o0 = first(&h, "offset0", mark),
        o1 = first(&h, "offset1", mark), d = first(&h, "deadline0", mark);
    cr_assert(clock >= 0 && clock < o0 && o0 < d && o1 < d,
              "order clock %d offsets %d %d deadline %d", clock, o0, o1, d);
    cr_assert_eq(mvm(&m)->pit_drops, 1, "the pause's PIT ticks are dropped");
    /* the time after the resume counts again */
    advance(&h, SEC);
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), g0 + 2000000000ull);
    mv_close(&m);
}

Test(tsc_model, advance_leaves_the_clocks_running)
{
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET, 1);
    struct mv m;
    mv_open(&m, &h, 2);
    advance(&h, 3 * SEC);
    uint64_t g0 = guest_tsc(mcpu(&m, 0)), kc0 = kvmclock(mvm(&m));
    OK(hvc_vcpu_set_reg(m.v[0], HVC_X86_MSR(MSR_DEADLINE), g0 + 1000));
    OK(hvc_vm_pause(m.vm));
    advance(&h, 5 * SEC);
    int mark = h.nlog;
    OK(hvc_vm_resume(m.vm));
    cr_assert_eq(h.nlog, mark, "nothing is written: %s", h.log[mark]);
    cr_assert_eq(guest_tsc(mcpu(&m, 1)), g0 + 10000000000ull);
    NEAR(kvmclock(mvm(&m)), kc0 + 5 * SEC, 1);
    cr_assert_eq(mcpu(&m, 0)->deadline, g0 + 1000);
    cr_assert_eq(mvm(&m)->pit_drops, 0, "PIT ticks caught up");
    /* longer than catchup_max_ms: not caught up */
    policy(m.vm, HVC_TSC_PAUSE_ADVANCE, 1000);
    OK(hvc_vm_pause(m.vm));
    OK(hvc_vm_resume(m.vm));
    cr_assert_eq(mvm(&m)->pit_drops, 0, "a short pause is caught up");
    mv_close(&m);
}

Test(tsc_model, policy_changes_while_paused)
{
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET, 1);
    struct mv m;
    mv_open(&m, &h, 1);
    uint64_t g0 = guest_tsc(mcpu(&m, 0));
    OK(hvc_vcpu_set_reg(m.v[0], HVC_X86_MSR(MSR_DEADLINE), g0 + 77));
    policy(m.vm, HVC_TSC_PAUSE_FREEZE, 0);
    OK(hvc_vm_pause(m.vm));
    advance(&h, SEC);
    policy(m.vm, HVC_TSC_PAUSE_ADVANCE, 0); /* the resume's policy decides */
    OK(hvc_vm_resume(m.vm));
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), g0 + 2000000000ull);
    cr_assert_eq(mcpu(&m, 0)->deadline, g0 + 77, "armed again");
    policy(m.vm, HVC_TSC_PAUSE_ADVANCE, 0);
    OK(hvc_vm_pause(m.vm));
    advance(&h, SEC);
    policy(m.vm, HVC_TSC_PAUSE_FREEZE, 0);
    uint64_t g1 = guest_tsc(mcpu(&m, 0));
    OK(hvc_vm_resume(m.vm)); /* frozen from the pause point */
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), g1 - 2000000000ull);
    mv_close(&m);
}

/* ---- save and restore ---- */

Test(tsc_model, restore_on_another_host_with_scaling)
{
    /* A: Intel-like 2 GHz host scaling to 1.5 GHz */
    struct mhost ha, hb;
    host_init(&ha, 2000000, HVC_TSC_OFFSET | HVC_TSC_SCALING, 1);
    ha.frac = 48;
    struct mv a;
    mv_open(&a, &ha, 2);
    pin(a.vm, 1500000);
    hvc_tsc_config c = HVC_TSC_CONFIG_INIT;
    OK(hvc_vm_get_tsc_config(a.vm, &c));
    cr_assert_eq(c.flags, HVC_TSC_PINNED | HVC_TSC_SCALED);
    cr_assert_eq(c.ratio, 0xc00000000000ull); /* 0.75 in 16.48 */
    cr_assert_eq(c.effective_khz, 1500000);
    OK(hvc_vcpu_set_tsc(a.v[0], 1000000000000ull, 0));
    cr_assert_eq(guest_tsc(mcpu(&a, 1)), 1000000000000ull);
    advance(&ha, 3 * SEC);
    cr_assert_eq(guest_tsc(mcpu(&a, 1)), 1004500000000ull);
    OK(hvc_vcpu_set_reg(a.v[1], HVC_X86_MSR(MSR_ADJUST), 77));
    OK(hvc_vm_pause(a.vm));
    uint8_t rec[sizeof(hvc_tsc_state) + 2 * sizeof(hvc_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    hvc_tsc_state hdr;
    memcpy(&hdr, rec, sizeof(hdr));
    cr_assert_eq(hdr.flags & (HVC_TSC_STATE_SCALED | HVC_TSC_STATE_PINNED),
                 HVC_TSC_STATE_SCALED | HVC_TSC_STATE_PINNED);
    cr_assert_eq(hdr.ratio, 0xc00000000000ull);
    uint64_t src = 1004500000000ull, kc = kvmclock(mvm(&a));

    /* B: an AMD-like 3 GHz host (8.32 ratios), another boot, other TSC;
     * its wall clock 2 s later */
    host_init(&hb, 3000000, HVC_TSC_OFFSET | HVC_TSC_SCALING, 2);
    hb.frac = 32;
    hb.tsc = 5000000000ull;
    hb.realtime_ns = ha.realtime_ns + 2 * SEC;
    struct mv b;
    mv_open(&b, &hb, 2);
    OK(restore(&b, rec, len, HVC_TSC_PAUSE_ADVANCE));
    OK(hvc_vm_get_tsc_config(b.vm, &c));
    cr_assert_eq(c.flags, HVC_TSC_PINNED | HVC_TSC_SCALED, "pinned by restore");
    cr_assert_eq(c.ratio, 0x80000000ull); /* 0.5 in 8.32 */
    NEAR(guest_tsc(mcpu(&b, 0)), src + 3000000000ull, 2);
    NEAR(guest_tsc(mcpu(&b, 1)), src + 3000000000ull, 2);
    cr_assert_eq(guest_tsc(mcpu(&b, 0)), guest_tsc(mcpu(&b, 1)));
    NEAR(kvmclock(mvm(&b)), kc + 2 * SEC, 1);
    cr_assert_eq(mcpu(&b, 1)->adjust, 77);
    advance(&hb, SEC);
    NEAR(guest_tsc(mcpu(&b, 0)), src + 4500000000ull, 2);

    /* the same record, frozen, into C on host B */
    struct mv cc;
    mv_open(&cc, &hb, 2);
    OK(restore(&cc, rec, len, HVC_TSC_PAUSE_FREEZE));
    NEAR(guest_tsc(mcpu(&cc, 0)), src, 2);
    NEAR(kvmclock(mvm(&cc)), kc, 1);
    mv_close(&cc);
    mv_close(&b);
    OK(hvc_vm_resume(a.vm));
    mv_close(&a);
}

Test(tsc_model, same_boot_measures_with_the_tsc)
{
    /* CLOCK_REALTIME is stepped 100 s between save and restore; the host
     * TSC says 4 s passed, and it is right */
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET, 1);
    struct mv a, b;
    mv_open(&a, &h, 1);
    advance(&h, SEC);
    OK(hvc_vm_pause(a.vm));
    uint8_t rec[sizeof(hvc_tsc_state) + sizeof(hvc_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    uint64_t g0 = guest_tsc(mcpu(&a, 0)), kc = kvmclock(mvm(&a));
    advance(&h, 4 * SEC);
    h.realtime_ns += 100 * SEC;
    mv_open(&b, &h, 1);
    OK(restore(&b, rec, len, HVC_TSC_PAUSE_ADVANCE));
    NEAR(guest_tsc(mcpu(&b, 0)), g0 + 8000000000ull, 2);
    NEAR(kvmclock(mvm(&b)), kc + 4 * SEC, 1);
    mv_close(&b);
    mv_close(&a);
}

Test(tsc_model, restore_writes_tsc_then_adjust_then_deadline)
{
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET, 1);
    struct mv a, b;
    mv_open(&a, &h, 2);
    uint64_t g = guest_tsc(mcpu(&a, 0));
    OK(hvc_vcpu_set_reg(a.v[0], HVC_X86_MSR(MSR_DEADLINE), g + 5000));
    OK(hvc_vcpu_set_reg(a.v[1], HVC_X86_MSR(MSR_ADJUST), 3));
    uint8_t rec[sizeof(hvc_tsc_state) + 2 * sizeof(hvc_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    mv_open(&b, &h, 2);
    OK(hvc_vcpu_set_reg(b.v[1], HVC_X86_MSR(MSR_DEADLINE), 999)); /* stale */
    int mark = h.nlog;
    OK(restore(&b, rec, len, HVC_TSC_PAUSE_FREEZE));
    int clock = first(&h, "clock", mark), o = last(&h, "offset"),
        adj = first(&h, "adjust", mark), dl = first(&h, "deadline", mark);
    cr_assert(clock >= mark && clock < first(&h, "offset", mark) && o < adj &&
                  adj < dl,
              "clock %d, offsets to %d, adjust %d, deadline %d", clock, o, adj,
              dl);
    cr_assert_eq(mcpu(&b, 0)->deadline, g + 5000);
    cr_assert_eq(mcpu(&b, 1)->deadline, 0, "the record's disarmed deadline");
    cr_assert_eq(mcpu(&b, 1)->adjust, 3);
    cr_assert_eq(guest_tsc(mcpu(&b, 0)), g);
    mv_close(&a);
    mv_close(&b);
}

Test(tsc_model, a_failed_restore_changes_nothing)
{
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET, 1);
    struct mv a, b;
    mv_open(&a, &h, 2);
    advance(&h, SEC);
    OK(hvc_vcpu_set_reg(a.v[0], HVC_X86_MSR(MSR_ADJUST), 5));
    uint8_t rec[sizeof(hvc_tsc_state) + 2 * sizeof(hvc_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    mv_open(&b, &h, 2);
    advance(&h, SEC);
    uint64_t g0 = guest_tsc(mcpu(&b, 0)), g1 = guest_tsc(mcpu(&b, 1));
    uint64_t kc = kvmclock(mvm(&b));
    h.offset_writes = 0;
    h.fail_offset_write = 2;
    ERR(restore(&b, rec, len, HVC_TSC_PAUSE_FREEZE), -EIO);
    cr_assert(strstr(hvc_last_error(), "nothing was changed"), "%s",
              hvc_last_error());
    cr_assert_eq(guest_tsc(mcpu(&b, 0)), g0);
    cr_assert_eq(guest_tsc(mcpu(&b, 1)), g1);
    cr_assert_eq(mcpu(&b, 0)->adjust, 0);
    NEAR(kvmclock(mvm(&b)), kc, 1);
    h.fail_offset_write = 0;
    OK(restore(&b, rec, len, HVC_TSC_PAUSE_FREEZE));
    cr_assert_eq(mcpu(&b, 0)->adjust, 5);
    mv_close(&a);
    mv_close(&b);
}

Test(tsc_model, restore_into_a_paused_vm)
{
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET, 1);
    struct mv a, b;
    mv_open(&a, &h, 1);
    uint64_t g = guest_tsc(mcpu(&a, 0));
    OK(hvc_vcpu_set_reg(a.v[0], HVC_X86_MSR(MSR_DEADLINE), g + 9));
    uint8_t rec[sizeof(hvc_tsc_state) + sizeof(hvc_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    mv_open(&b, &h, 1);
    policy(b.vm, HVC_TSC_PAUSE_FREEZE, 0);
    OK(hvc_vm_pause(b.vm));
    advance(&h, SEC);
    OK(restore(&b, rec, len, HVC_TSC_PAUSE_FREEZE));
    cr_assert_eq(mcpu(&b, 0)->deadline, 0, "kept for the resume");
    advance(&h, SEC); /* frozen from the restore to the resume */
    OK(hvc_vm_resume(b.vm));
    cr_assert_eq(guest_tsc(mcpu(&b, 0)), g);
    cr_assert_eq(mcpu(&b, 0)->deadline, g + 9);
    mv_close(&a);
    mv_close(&b);
}

/* ---- values and offsets ---- */

Test(tsc_model, one_offset_for_all_vcpus)
{
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET, 1);
    struct mv m;
    mv_open(&m, &h, 2);
    uint64_t g = guest_tsc(mcpu(&m, 0));
    OK(hvc_vcpu_set_reg(m.v[0], HVC_X86_MSR(MSR_DEADLINE), g + 100));
    int mark = h.nlog;
    OK(hvc_vcpu_set_tsc(m.v[1], 5000000000000ull, 0));
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), 5000000000000ull);
    cr_assert_eq(guest_tsc(mcpu(&m, 1)), 5000000000000ull);
    /* the armed deadline is armed again, after the offset */
    int o = first(&h, "offset0", mark), d = first(&h, "deadline0", mark);
    cr_assert(o >= 0 && d > o, "offset %d deadline %d", o, d);
    OK(hvc_vcpu_set_tsc(m.v[1], 7000000000000ull, HVC_TSC_THIS_VCPU));
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), 5000000000000ull);
    cr_assert_eq(guest_tsc(mcpu(&m, 1)), 7000000000000ull);
    /* a vCPU created later, long after: the shared offset */
    advance(&h, 10 * SEC);
    OK(hvc_vcpu_create(m.vm, 2, &m.v[2]));
    cr_assert_eq(guest_tsc(mcpu(&m, 2)), guest_tsc(mcpu(&m, 0)));
    uint64_t ofs;
    OK(hvc_vcpu_get_tsc_offset(m.v[2], &ofs));
    cr_assert_eq(ofs, mcpu(&m, 0)->offset);
    OK(hvc_vcpu_set_tsc_offset(m.v[0], 42, 0));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(mcpu(&m, i)->offset, 42);
    mv_close(&m);
}

/* ---- a host that cannot offset the TSC (PVM) ---- */

Test(tsc_model, without_offsetting_only_the_truth_is_restored)
{
    struct mhost h;
    host_init(&h, 2000000, 0, 1);
    struct mv a, b;
    mv_open(&a, &h, 1);
    hvc_tsc_policy p = HVC_TSC_POLICY_INIT;
    p.pause = HVC_TSC_PAUSE_FREEZE;
    ERR(hvc_vm_set_tsc_policy(a.vm, &p), -ENOTSUP);
    ERR(hvc_vcpu_set_tsc(a.v[0], 5, 0), -ENOTSUP);
    OK(hvc_vm_pause(a.vm));
    uint8_t rec[sizeof(hvc_tsc_state) + sizeof(hvc_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    advance(&h, 10000000); /* 10 ms */
    mv_open(&b, &h, 1);
    int mark = h.nlog;
    ERR(restore(&b, rec, len, HVC_TSC_PAUSE_FREEZE), -ENOTSUP);
    cr_assert(strstr(hvc_last_error(), "-10000 us"), "%s", hvc_last_error());
    cr_assert_eq(h.nlog, mark, "nothing applied: %s", h.log[mark]);
    /* the host TSC is what advance asks for */
    OK(restore(&b, rec, len, HVC_TSC_PAUSE_ADVANCE));
    /* a wider allowance accepts the 10 ms */
    hvc_tsc_restore_options o = HVC_TSC_RESTORE_OPTIONS_INIT;
    o.pause = HVC_TSC_PAUSE_FREEZE;
    o.max_error_us = 20000;
    OK(hvc_vm_restore_tsc(b.vm, rec, len, &o));
    /* a record from a host whose TSC reads otherwise */
    hvc_tsc_state hdr;
    memcpy(&hdr, rec, sizeof(hdr));
    memset(hdr.host_boot_id, 9, 16);
    memcpy(rec, &hdr, sizeof(hdr));
    h.realtime_ns += SEC; /* and its clock says 1 s more than the TSC */
    ERR(restore(&b, rec, len, HVC_TSC_PAUSE_ADVANCE), -ENOTSUP);
    OK(hvc_vm_resume(a.vm));
    mv_close(&a);
    mv_close(&b);
}

/* ---- the frequency ---- */

Test(tsc_model, frequency_with_scaling)
{
    struct mhost h;
    host_init(&h, 2000000, HVC_TSC_OFFSET | HVC_TSC_SCALING, 1);
    h.frac = 32;
    struct mv m;
    mv_open(&m, &h, 2); /* vCPUs first: each gets the frequency */
    int mark = h.nlog;
    pin(m.vm, 1000000);
    cr_assert(first(&h, "apply0", mark) > 0 && first(&h, "apply1", mark) > 0);
    cr_assert_eq(mcpu(&m, 1)->hw_khz, 1000000);
    uint64_t g0 = guest_tsc(mcpu(&m, 0));
    advance(&h, SEC);
    cr_assert_eq(guest_tsc(mcpu(&m, 0)) - g0, 1000000000ull);
    /* beyond the hardware: 256x for 8.32 */
    hvc_tsc_frequency_options f = HVC_TSC_FREQUENCY_OPTIONS_INIT;
    f.tsc_khz = 2000000u * 256;
    ERR(hvc_vm_set_tsc_frequency(m.vm, &f), -ERANGE);
    /* within the tolerance: no scaling */
    pin(m.vm, 2000400);
    hvc_tsc_config c = HVC_TSC_CONFIG_INIT;
    OK(hvc_vm_get_tsc_config(m.vm, &c));
    cr_assert_eq(c.flags, HVC_TSC_PINNED);
    cr_assert_eq(c.effective_khz, 2000000);
    cr_assert_eq(mcpu(&m, 0)->hw_khz, 0);
    /* a run fixes it */
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = 1 << 20;
    OK(hvc_vm_add_memory(m.vm, &mo, NULL));
    const hvc_exit *e;
    OK(hvc_vcpu_run(m.v[0], &e));
    cr_assert_eq(e->reason, HVC_EXIT_HLT);
    f.tsc_khz = 1000000;
    ERR(hvc_vm_set_tsc_frequency(m.vm, &f), -EBUSY);
    mv_close(&m);
}
