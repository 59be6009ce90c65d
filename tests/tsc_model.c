/* The TSC core (src/core/tsc*.c) against a model backend: a host TSC the
 * test moves by hand, kvmclock, per-vCPU offsets, scaling and the TSC MSRs
 * as KVM defines them, and a log of the writes. The hosts this project runs
 * on cannot offset or scale a guest's TSC, so the paths that do (the freeze
 * policy, restores that move the TSC, scaled frequencies, the order of the
 * writes, undoing a failed restore) are checked here, to the cycle.
 *
 * White-box: it builds a hypervisor handle on the model backend
 * (src/core/internal.h), so it links the static library. */
#include "internal.h"
#include "tsc_math.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK(call)                                                               \
    do {                                                                       \
        int r_ = (call);                                                       \
        cr_assert_eq(r_, 0, "%s = %d: %s", #call, r_, hv_last_error());        \
    } while (0)
#define ERR(call, err)                                                         \
    do {                                                                       \
        int r_ = (call);                                                       \
        cr_assert_eq(r_, (err), "%s = %d, expected %d: %s", #call, r_, (err),  \
                     hv_last_error());                                         \
    } while (0)
/* Within a few cycles: ns <-> cycle conversions truncate. */
#define NEAR(a, b, slack)                                                      \
    cr_assert((int64_t)((a) - (b)) <= (slack) &&                               \
                  (int64_t)((a) - (b)) >= -(int64_t)(slack),                   \
              "%s = %llu, %s = %llu (off by %lld)", #a,                        \
              (unsigned long long)(a), #b, (unsigned long long)(b),            \
              (long long)((a) - (b)))

#define MSR_TSC 0x10u
#define MSR_ADJUST 0x3bu
#define MSR_DEADLINE 0x6e0u

/* ---- the model ---- */

struct mhost {
    uint64_t tsc; /* the host TSC: only the test moves it */
    uint32_t khz;
    uint64_t realtime_ns;
    uint8_t boot[16];
    uint32_t flags; /* hv_tsc_info flags */
    uint32_t frac;  /* with HV_TSC_SCALING */
    int fail_offset_write; /* fail the n-th offset write; 0: never */
    int offset_writes;
    char log[128][24];
    int nlog;
};

struct mvm {
    struct mhost *h;
    int64_t clock_offset; /* kvmclock = host ns + this */
    uint32_t khz;         /* pinned frequency; 0: unpinned */
    uint32_t hw_khz;      /* scaled frequency; 0: the host's */
    int pit_reinject;
    int pit_drops;
};

struct mvcpu {
    struct mvm *vm;
    uint32_t id;
    uint32_t hw_khz;
    uint64_t offset;
    uint64_t adjust;
    uint64_t deadline;
};

static void mlog(struct mhost *h, const char *fmt, unsigned a,
                 unsigned long long b)
{
    if (h->nlog < 128)
        snprintf(h->log[h->nlog++], sizeof(h->log[0]), fmt, a, b);
}

static void advance(struct mhost *h, uint64_t ns)
{
    h->tsc += hvi_mul_div(ns, h->khz, 1000000);
    h->realtime_ns += ns;
}

static uint64_t host_ns(const struct mhost *h)
{
    return hvi_mul_div(h->tsc, 1000000, h->khz);
}

static uint64_t scaled(const struct mvcpu *v, uint64_t tsc)
{
    uint64_t r;
    if (!v->hw_khz)
        return tsc;
    cr_assert_eq(hv_tsc_ratio(v->hw_khz, v->vm->h->khz, v->vm->h->frac, &r),
                 0);
    return hvi_mul_shr(tsc, r, v->vm->h->frac);
}

static uint64_t guest_tsc(const struct mvcpu *v)
{
    return scaled(v, v->vm->h->tsc) + v->offset;
}

static uint64_t kvmclock(const struct mvm *vm)
{
    return host_ns(vm->h) + (uint64_t)vm->clock_offset;
}

static int m_probe(void)
{
    return 0;
}
static int m_open(void **priv)
{
    (void)priv;
    return -ENOTSUP;
}
static void m_close(void *priv)
{
    (void)priv;
}

static int m_get_cap(void *priv, int cap, uint64_t *value)
{
    struct mhost *h = priv;
    switch (cap) {
    case HV_CAP_MAX_VCPUS:
    case HV_CAP_NR_VCPUS:
    case HV_CAP_MAX_MEMORY_REGIONS: *value = 8; return 0;
    case HV_CAP_PHYS_ADDR_BITS: *value = 40; return 0;
    case HV_CAP_TSC_OFFSET: *value = !!(h->flags & HV_TSC_OFFSET); return 0;
    default: *value = 0; return 0;
    }
}

static int m_vm_create(void *priv, const hv_vm_options *o, void **out)
{
    (void)o;
    struct mvm *vm = calloc(1, sizeof(*vm));
    vm->h = priv;
    vm->pit_reinject = 1;
    *out = vm;
    return 0;
}
static void m_vm_destroy(void *vm)
{
    free(vm);
}
static int m_map(void *vm, uint32_t slot, uint64_t gpa, uint64_t len,
                 void *hva, uint32_t flags)
{
    (void)vm, (void)slot, (void)gpa, (void)len, (void)hva, (void)flags;
    return 0;
}
static int m_unmap(void *vm, uint32_t slot, uint64_t gpa)
{
    (void)vm, (void)slot, (void)gpa;
    return 0;
}

/* As KVM: a new vCPU's TSC starts at 0, on a host that can offset it;
 * without offsetting it is the host's. */
static int m_vcpu_create(void *vm_priv, uint32_t id, void **out)
{
    struct mvm *vm = vm_priv;
    struct mvcpu *v = calloc(1, sizeof(*v));
    v->vm = vm;
    v->id = id;
    v->hw_khz = vm->hw_khz;
    if (vm->h->flags & HV_TSC_OFFSET)
        v->offset = 0 - scaled(v, vm->h->tsc);
    *out = v;
    return 0;
}
static void m_vcpu_destroy(void *v)
{
    free(v);
}
static int m_run_prepare(void *v)
{
    (void)v;
    return 0;
}
static int m_run(void *v, hv_exit *exit)
{
    (void)v;
    exit->reason = HV_EXIT_HLT;
    return 0;
}
static void m_kick(void *v)
{
    (void)v;
}

static int m_get_regs(void *priv, const hv_reg *ids, uint64_t *values,
                      size_t n)
{
    struct mvcpu *v = priv;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == HV_X86_MSR(MSR_TSC))
            values[i] = guest_tsc(v);
        else if (ids[i] == HV_X86_MSR(MSR_ADJUST))
            values[i] = v->adjust;
        else if (ids[i] == HV_X86_MSR(MSR_DEADLINE))
            values[i] = v->deadline;
        else
            values[i] = 0;
    }
    return 0;
}

static int m_set_regs(void *priv, const hv_reg *ids, const uint64_t *values,
                      size_t n)
{
    struct mvcpu *v = priv;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == HV_X86_MSR(MSR_ADJUST)) {
            v->adjust = values[i];
            mlog(v->vm->h, "adjust%u=%llu", v->id, values[i]);
        } else if (ids[i] == HV_X86_MSR(MSR_DEADLINE)) {
            v->deadline = values[i];
            mlog(v->vm->h, "deadline%u=%llu", v->id, values[i]);
        }
    }
    return 0;
}

static int m_get_seg(void *v, hv_reg id, hv_x86_segment *s)
{
    (void)v, (void)id;
    memset(s, 0, sizeof(*s));
    return 0;
}
static int m_set_seg(void *v, hv_reg id, const hv_x86_segment *s)
{
    (void)v, (void)id, (void)s;
    return 0;
}
static int m_fpu_size(void *v, size_t *size)
{
    (void)v;
    *size = 512;
    return 0;
}
static int m_get_fpu(void *v, void *buf, size_t len)
{
    (void)v;
    memset(buf, 0, len);
    return 0;
}
static int m_set_fpu(void *v, const void *buf, size_t len)
{
    (void)v, (void)buf, (void)len;
    return 0;
}
static int m_runnable(void *v)
{
    (void)v;
    return 0;
}

static int t_info(void *priv, hv_tsc_info *in, uint8_t boot[16])
{
    struct mhost *h = priv;
    memset(in, 0, sizeof(*in));
    in->size = sizeof(*in);
    in->flags = h->flags;
    in->host_tsc_khz = h->khz;
    in->backend_tolerance_ppm = 250;
    in->apic_bus_khz = 1000000;
    in->max_guest_tsc_khz = h->khz;
    if (h->flags & HV_TSC_SCALING) {
        in->ratio_frac_bits = h->frac;
        in->ratio_max = h->frac == 48 ? UINT64_MAX - 1 : (1ull << 40) - 2;
        in->max_guest_tsc_khz = h->khz * (h->frac == 48 ? 1000u : 200u);
    }
    memcpy(boot, h->boot, 16);
    return 0;
}
static uint64_t t_host_tsc(void *priv)
{
    return ((struct mhost *)priv)->tsc;
}
static int t_set_frequency(void *priv, uint32_t khz, uint32_t flags)
{
    struct mvm *vm = priv;
    vm->khz = flags & HV_BACKEND_TSC_PINNED ? khz : 0;
    vm->hw_khz = flags & HV_BACKEND_TSC_SCALE ? khz : 0;
    mlog(vm->h, "frequency%u=%llu", 0, khz);
    return 0;
}
static int t_apply(void *priv)
{
    struct mvcpu *v = priv;
    v->hw_khz = v->vm->hw_khz;
    mlog(v->vm->h, "apply%u%llu", v->id, 0);
    return 0;
}
static int t_get_clock(void *priv, hv_backend_clock *c)
{
    struct mvm *vm = priv;
    c->clock_ns = kvmclock(vm);
    c->host_tsc = vm->h->tsc;
    c->realtime_ns = vm->h->realtime_ns;
    c->flags = HV_BACKEND_CLOCK_KERNEL | HV_BACKEND_CLOCK_STABLE;
    c->error_ns = 0;
    return 0;
}
static int t_set_clock(void *priv, uint64_t clock, uint64_t since)
{
    struct mvm *vm = priv;
    if (since && vm->h->realtime_ns > since)
        clock += vm->h->realtime_ns - since;
    vm->clock_offset = (int64_t)(clock - host_ns(vm->h));
    mlog(vm->h, "clock%u=%llu", 0, clock);
    return 0;
}
static int t_get_offset(void *priv, uint64_t *ofs)
{
    *ofs = ((struct mvcpu *)priv)->offset;
    return 0;
}
static int t_set_offset(void *priv, uint64_t ofs)
{
    struct mvcpu *v = priv;
    struct mhost *h = v->vm->h;
    if (!(h->flags & HV_TSC_OFFSET))
        return 0; /* accepted and dropped, as under PVM */
    if (++h->offset_writes == h->fail_offset_write)
        return hvi_error(-EIO, "model: offset write %d fails",
                         h->offset_writes);
    v->offset = ofs;
    mlog(h, "offset%u=%llu", v->id, ofs);
    return 0;
}
static int t_pit_catchup(void *priv, int on)
{
    ((struct mvm *)priv)->pit_reinject = on;
    return 0;
}
static int t_pit_drop(void *priv)
{
    ((struct mvm *)priv)->pit_drops++;
    return 0;
}

static const hv_backend_tsc_ops model_tsc = {
    .version = HV_BACKEND_TSC_OPS_VERSION,
    .get_info = t_info,
    .host_tsc = t_host_tsc,
    .vm_set_frequency = t_set_frequency,
    .vcpu_apply_frequency = t_apply,
    .vm_get_clock = t_get_clock,
    .vm_set_clock = t_set_clock,
    .vcpu_get_offset = t_get_offset,
    .vcpu_set_offset = t_set_offset,
    .vm_set_pit_catchup = t_pit_catchup,
    .vm_drop_pit_backlog = t_pit_drop,
};

static const hv_backend_ops model_ops = {
    .version = HV_BACKEND_OPS_VERSION,
    .name = "model",
    .probe = m_probe,
    .open = m_open,
    .close = m_close,
    .get_cap = m_get_cap,
    .vm_create = m_vm_create,
    .vm_destroy = m_vm_destroy,
    .vm_map_memory = m_map,
    .vm_unmap_memory = m_unmap,
    .vcpu_create = m_vcpu_create,
    .vcpu_destroy = m_vcpu_destroy,
    .vcpu_run_prepare = m_run_prepare,
    .vcpu_run = m_run,
    .vcpu_kick = m_kick,
    .vcpu_get_regs = m_get_regs,
    .vcpu_set_regs = m_set_regs,
    .vcpu_get_segment = m_get_seg,
    .vcpu_set_segment = m_set_seg,
    .vcpu_fpu_size = m_fpu_size,
    .vcpu_get_fpu = m_get_fpu,
    .vcpu_set_fpu = m_set_fpu,
    .vcpu_set_runnable = m_runnable,
    .tsc = &model_tsc,
};

/* A host: 2 GHz, offsets that work, invariant, at some point in time. */
static void host_init(struct mhost *h, uint32_t khz, uint32_t flags,
                      uint8_t boot)
{
    memset(h, 0, sizeof(*h));
    h->khz = khz;
    h->flags = flags | HV_TSC_HOST_INVARIANT | HV_TSC_PIT_CATCHUP;
    h->tsc = 123456789000ull;
    h->realtime_ns = 1700000000000000000ull;
    memset(h->boot, boot, sizeof(h->boot));
}

static hv_hypervisor *model_hv(struct mhost *h)
{
    hv_hypervisor *hv = calloc(1, sizeof(*hv));
    hv->ops = &model_ops;
    hv->priv = h;
    atomic_init(&hv->nr_vms, 0);
    return hv;
}

struct mv {
    hv_hypervisor *hv;
    hv_vm *vm;
    hv_vcpu *v[3];
    uint32_t n;
};

static void mv_open(struct mv *m, struct mhost *h, uint32_t n)
{
    m->hv = model_hv(h);
    m->n = n;
    OK(hv_vm_create(m->hv, NULL, &m->vm));
    for (uint32_t i = 0; i < n; i++)
        OK(hv_vcpu_create(m->vm, i, &m->v[i]));
}

static void mv_close(struct mv *m)
{
    OK(hv_vm_destroy(m->vm));
    OK(hv_hypervisor_close(m->hv));
}

static struct mvcpu *mcpu(const struct mv *m, uint32_t i)
{
    return m->v[i]->priv;
}

static struct mvm *mvm(const struct mv *m)
{
    return m->vm->priv;
}

static void policy(hv_vm *vm, uint32_t pause, uint32_t max_ms)
{
    hv_tsc_policy p = HV_TSC_POLICY_INIT;
    p.pause = pause;
    p.catchup_max_ms = max_ms;
    OK(hv_vm_set_tsc_policy(vm, &p));
}

static void pin(hv_vm *vm, uint32_t khz)
{
    hv_tsc_frequency_options f = HV_TSC_FREQUENCY_OPTIONS_INIT;
    f.tsc_khz = khz;
    OK(hv_vm_set_tsc_frequency(vm, &f));
}

/* Index of the first log entry starting with @p prefix; -1 if none. */
static int first(const struct mhost *h, const char *prefix, int from)
{
    for (int i = from; i < h->nlog; i++)
        if (strncmp(h->log[i], prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

static int last(const struct mhost *h, const char *prefix)
{
    for (int i = h->nlog - 1; i >= 0; i--)
        if (strncmp(h->log[i], prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

#define SEC 1000000000ull

/* ---- pure arithmetic ---- */

Test(tsc_model, restore_math_by_hand)
{
    /* 2 s passed in kvmclock at 2 GHz: the guest TSC at the destination
     * sample is the source's plus 4e9 */
    uint64_t ofs = hvi_restore_offset(1000000000ull, 5000000000ull,
                                      7000000000000ull, 7000000000ull,
                                      2000000);
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
    cr_assert(a == 500000 && b == 1298049 && c == 1000000000u, "%u %u %u", a,
              b, c);
    hvi_tsc_leaf_15(2100000, 1000000, &a, &b, &c);
    cr_assert(a == 10 && b == 21 && c == 1000000000u, "%u %u %u", a, b, c);
    hvi_tsc_leaf_16(2596098, 1000000, &a, &b, &c);
    cr_assert(a == 2596 && b == 2596 && c == 1000, "%u %u %u", a, b, c);
}

/* ---- pauses ---- */

Test(tsc_model, freeze_hides_a_pause_to_the_cycle)
{
    struct mhost h;
    host_init(&h, 2000000, HV_TSC_OFFSET, 1);
    struct mv m;
    mv_open(&m, &h, 2);
    policy(m.vm, HV_TSC_PAUSE_FREEZE, 0);
    advance(&h, 3 * SEC); /* the guest ran for 3 s */
    uint64_t g0 = guest_tsc(mcpu(&m, 0)), kc0 = kvmclock(mvm(&m));
    NEAR(g0, 6000000000ull, 0);
    OK(hv_vcpu_set_reg(m.v[0], HV_X86_MSR(MSR_DEADLINE), g0 + 1000));

    OK(hv_vm_pause(m.vm));
    cr_assert_eq(mcpu(&m, 0)->deadline, 0, "the deadline is disarmed");
    advance(&h, 5 * SEC);
    uint64_t g;
    OK(hv_vcpu_get_tsc(m.v[1], &g));
    cr_assert_eq(g, g0, "frozen while paused");
    /* a save while paused is the pause point, deadline included */
    uint8_t rec[sizeof(hv_tsc_state) + 2 * sizeof(hv_tsc_vcpu_state)];
    OK(hv_vm_save_tsc(m.vm, rec, sizeof(rec), NULL));
    hv_tsc_vcpu_state e;
    memcpy(&e, rec + sizeof(hv_tsc_state), sizeof(e));
    cr_assert_eq(e.guest_tsc, g0);
    cr_assert_eq(e.tsc_deadline, g0 + 1000);
    int mark = h.nlog;
    OK(hv_vm_resume(m.vm));

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
    host_init(&h, 2000000, HV_TSC_OFFSET, 1);
    struct mv m;
    mv_open(&m, &h, 2);
    advance(&h, 3 * SEC);
    uint64_t g0 = guest_tsc(mcpu(&m, 0)), kc0 = kvmclock(mvm(&m));
    OK(hv_vcpu_set_reg(m.v[0], HV_X86_MSR(MSR_DEADLINE), g0 + 1000));
    OK(hv_vm_pause(m.vm));
    advance(&h, 5 * SEC);
    int mark = h.nlog;
    OK(hv_vm_resume(m.vm));
    cr_assert_eq(h.nlog, mark, "nothing is written: %s", h.log[mark]);
    cr_assert_eq(guest_tsc(mcpu(&m, 1)), g0 + 10000000000ull);
    NEAR(kvmclock(mvm(&m)), kc0 + 5 * SEC, 1);
    cr_assert_eq(mcpu(&m, 0)->deadline, g0 + 1000);
    cr_assert_eq(mvm(&m)->pit_drops, 0, "PIT ticks caught up");
    /* longer than catchup_max_ms: not caught up */
    policy(m.vm, HV_TSC_PAUSE_ADVANCE, 1000);
    OK(hv_vm_pause(m.vm));
    OK(hv_vm_resume(m.vm));
    cr_assert_eq(mvm(&m)->pit_drops, 0, "a short pause is caught up");
    mv_close(&m);
}

Test(tsc_model, policy_changes_while_paused)
{
    struct mhost h;
    host_init(&h, 2000000, HV_TSC_OFFSET, 1);
    struct mv m;
    mv_open(&m, &h, 1);
    uint64_t g0 = guest_tsc(mcpu(&m, 0));
    OK(hv_vcpu_set_reg(m.v[0], HV_X86_MSR(MSR_DEADLINE), g0 + 77));
    policy(m.vm, HV_TSC_PAUSE_FREEZE, 0);
    OK(hv_vm_pause(m.vm));
    advance(&h, SEC);
    policy(m.vm, HV_TSC_PAUSE_ADVANCE, 0); /* the resume's policy decides */
    OK(hv_vm_resume(m.vm));
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), g0 + 2000000000ull);
    cr_assert_eq(mcpu(&m, 0)->deadline, g0 + 77, "armed again");
    policy(m.vm, HV_TSC_PAUSE_ADVANCE, 0);
    OK(hv_vm_pause(m.vm));
    advance(&h, SEC);
    policy(m.vm, HV_TSC_PAUSE_FREEZE, 0);
    uint64_t g1 = guest_tsc(mcpu(&m, 0));
    OK(hv_vm_resume(m.vm)); /* frozen from the pause point */
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), g1 - 2000000000ull);
    mv_close(&m);
}

/* ---- save and restore ---- */

static size_t save(struct mv *m, uint8_t *buf, size_t size)
{
    size_t len;
    OK(hv_vm_save_tsc(m->vm, buf, size, &len));
    return len;
}

static int restore(struct mv *m, const uint8_t *buf, size_t len,
                   uint32_t pause)
{
    hv_tsc_restore_options o = HV_TSC_RESTORE_OPTIONS_INIT;
    o.pause = pause;
    return hv_vm_restore_tsc(m->vm, buf, len, &o);
}

Test(tsc_model, restore_on_another_host_with_scaling)
{
    /* A: Intel-like 2 GHz host scaling to 1.5 GHz */
    struct mhost ha, hb;
    host_init(&ha, 2000000, HV_TSC_OFFSET | HV_TSC_SCALING, 1);
    ha.frac = 48;
    struct mv a;
    mv_open(&a, &ha, 2);
    pin(a.vm, 1500000);
    hv_tsc_config c = HV_TSC_CONFIG_INIT;
    OK(hv_vm_get_tsc_config(a.vm, &c));
    cr_assert_eq(c.flags, HV_TSC_PINNED | HV_TSC_SCALED);
    cr_assert_eq(c.ratio, 0xc00000000000ull); /* 0.75 in 16.48 */
    cr_assert_eq(c.effective_khz, 1500000);
    OK(hv_vcpu_set_tsc(a.v[0], 1000000000000ull, 0));
    cr_assert_eq(guest_tsc(mcpu(&a, 1)), 1000000000000ull);
    advance(&ha, 3 * SEC);
    cr_assert_eq(guest_tsc(mcpu(&a, 1)), 1004500000000ull);
    OK(hv_vcpu_set_reg(a.v[1], HV_X86_MSR(MSR_ADJUST), 77));
    OK(hv_vm_pause(a.vm));
    uint8_t rec[sizeof(hv_tsc_state) + 2 * sizeof(hv_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    hv_tsc_state hdr;
    memcpy(&hdr, rec, sizeof(hdr));
    cr_assert_eq(hdr.flags & (HV_TSC_STATE_SCALED | HV_TSC_STATE_PINNED),
                 HV_TSC_STATE_SCALED | HV_TSC_STATE_PINNED);
    cr_assert_eq(hdr.ratio, 0xc00000000000ull);
    uint64_t src = 1004500000000ull, kc = kvmclock(mvm(&a));

    /* B: an AMD-like 3 GHz host (8.32 ratios), another boot, other TSC;
     * its wall clock 2 s later */
    host_init(&hb, 3000000, HV_TSC_OFFSET | HV_TSC_SCALING, 2);
    hb.frac = 32;
    hb.tsc = 5000000000ull;
    hb.realtime_ns = ha.realtime_ns + 2 * SEC;
    struct mv b;
    mv_open(&b, &hb, 2);
    OK(restore(&b, rec, len, HV_TSC_PAUSE_ADVANCE));
    OK(hv_vm_get_tsc_config(b.vm, &c));
    cr_assert_eq(c.flags, HV_TSC_PINNED | HV_TSC_SCALED, "pinned by restore");
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
    OK(restore(&cc, rec, len, HV_TSC_PAUSE_FREEZE));
    NEAR(guest_tsc(mcpu(&cc, 0)), src, 2);
    NEAR(kvmclock(mvm(&cc)), kc, 1);
    mv_close(&cc);
    mv_close(&b);
    OK(hv_vm_resume(a.vm));
    mv_close(&a);
}

Test(tsc_model, same_boot_measures_with_the_tsc)
{
    /* CLOCK_REALTIME is stepped 100 s between save and restore; the host
     * TSC says 4 s passed, and it is right */
    struct mhost h;
    host_init(&h, 2000000, HV_TSC_OFFSET, 1);
    struct mv a, b;
    mv_open(&a, &h, 1);
    advance(&h, SEC);
    OK(hv_vm_pause(a.vm));
    uint8_t rec[sizeof(hv_tsc_state) + sizeof(hv_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    uint64_t g0 = guest_tsc(mcpu(&a, 0)), kc = kvmclock(mvm(&a));
    advance(&h, 4 * SEC);
    h.realtime_ns += 100 * SEC;
    mv_open(&b, &h, 1);
    OK(restore(&b, rec, len, HV_TSC_PAUSE_ADVANCE));
    NEAR(guest_tsc(mcpu(&b, 0)), g0 + 8000000000ull, 2);
    NEAR(kvmclock(mvm(&b)), kc + 4 * SEC, 1);
    mv_close(&b);
    mv_close(&a);
}

Test(tsc_model, restore_writes_tsc_then_adjust_then_deadline)
{
    struct mhost h;
    host_init(&h, 2000000, HV_TSC_OFFSET, 1);
    struct mv a, b;
    mv_open(&a, &h, 2);
    uint64_t g = guest_tsc(mcpu(&a, 0));
    OK(hv_vcpu_set_reg(a.v[0], HV_X86_MSR(MSR_DEADLINE), g + 5000));
    OK(hv_vcpu_set_reg(a.v[1], HV_X86_MSR(MSR_ADJUST), 3));
    uint8_t rec[sizeof(hv_tsc_state) + 2 * sizeof(hv_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    mv_open(&b, &h, 2);
    OK(hv_vcpu_set_reg(b.v[1], HV_X86_MSR(MSR_DEADLINE), 999)); /* stale */
    int mark = h.nlog;
    OK(restore(&b, rec, len, HV_TSC_PAUSE_FREEZE));
    int clock = first(&h, "clock", mark), o = last(&h, "offset"),
        adj = first(&h, "adjust", mark), dl = first(&h, "deadline", mark);
    cr_assert(clock >= mark && clock < first(&h, "offset", mark) && o < adj &&
                  adj < dl,
              "clock %d, offsets to %d, adjust %d, deadline %d", clock, o,
              adj, dl);
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
    host_init(&h, 2000000, HV_TSC_OFFSET, 1);
    struct mv a, b;
    mv_open(&a, &h, 2);
    advance(&h, SEC);
    OK(hv_vcpu_set_reg(a.v[0], HV_X86_MSR(MSR_ADJUST), 5));
    uint8_t rec[sizeof(hv_tsc_state) + 2 * sizeof(hv_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    mv_open(&b, &h, 2);
    advance(&h, SEC);
    uint64_t g0 = guest_tsc(mcpu(&b, 0)), g1 = guest_tsc(mcpu(&b, 1));
    uint64_t kc = kvmclock(mvm(&b));
    h.offset_writes = 0;
    h.fail_offset_write = 2;
    ERR(restore(&b, rec, len, HV_TSC_PAUSE_FREEZE), -EIO);
    cr_assert(strstr(hv_last_error(), "nothing was changed"), "%s",
              hv_last_error());
    cr_assert_eq(guest_tsc(mcpu(&b, 0)), g0);
    cr_assert_eq(guest_tsc(mcpu(&b, 1)), g1);
    cr_assert_eq(mcpu(&b, 0)->adjust, 0);
    NEAR(kvmclock(mvm(&b)), kc, 1);
    h.fail_offset_write = 0;
    OK(restore(&b, rec, len, HV_TSC_PAUSE_FREEZE));
    cr_assert_eq(mcpu(&b, 0)->adjust, 5);
    mv_close(&a);
    mv_close(&b);
}

Test(tsc_model, restore_into_a_paused_vm)
{
    struct mhost h;
    host_init(&h, 2000000, HV_TSC_OFFSET, 1);
    struct mv a, b;
    mv_open(&a, &h, 1);
    uint64_t g = guest_tsc(mcpu(&a, 0));
    OK(hv_vcpu_set_reg(a.v[0], HV_X86_MSR(MSR_DEADLINE), g + 9));
    uint8_t rec[sizeof(hv_tsc_state) + sizeof(hv_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    mv_open(&b, &h, 1);
    policy(b.vm, HV_TSC_PAUSE_FREEZE, 0);
    OK(hv_vm_pause(b.vm));
    advance(&h, SEC);
    OK(restore(&b, rec, len, HV_TSC_PAUSE_FREEZE));
    cr_assert_eq(mcpu(&b, 0)->deadline, 0, "kept for the resume");
    advance(&h, SEC); /* frozen from the restore to the resume */
    OK(hv_vm_resume(b.vm));
    cr_assert_eq(guest_tsc(mcpu(&b, 0)), g);
    cr_assert_eq(mcpu(&b, 0)->deadline, g + 9);
    mv_close(&a);
    mv_close(&b);
}

/* ---- values and offsets ---- */

Test(tsc_model, one_offset_for_all_vcpus)
{
    struct mhost h;
    host_init(&h, 2000000, HV_TSC_OFFSET, 1);
    struct mv m;
    mv_open(&m, &h, 2);
    uint64_t g = guest_tsc(mcpu(&m, 0));
    OK(hv_vcpu_set_reg(m.v[0], HV_X86_MSR(MSR_DEADLINE), g + 100));
    int mark = h.nlog;
    OK(hv_vcpu_set_tsc(m.v[1], 5000000000000ull, 0));
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), 5000000000000ull);
    cr_assert_eq(guest_tsc(mcpu(&m, 1)), 5000000000000ull);
    /* the armed deadline is armed again, after the offset */
    int o = first(&h, "offset0", mark), d = first(&h, "deadline0", mark);
    cr_assert(o >= 0 && d > o, "offset %d deadline %d", o, d);
    OK(hv_vcpu_set_tsc(m.v[1], 7000000000000ull, HV_TSC_THIS_VCPU));
    cr_assert_eq(guest_tsc(mcpu(&m, 0)), 5000000000000ull);
    cr_assert_eq(guest_tsc(mcpu(&m, 1)), 7000000000000ull);
    /* a vCPU created later, long after: the shared offset */
    advance(&h, 10 * SEC);
    OK(hv_vcpu_create(m.vm, 2, &m.v[2]));
    cr_assert_eq(guest_tsc(mcpu(&m, 2)), guest_tsc(mcpu(&m, 0)));
    uint64_t ofs;
    OK(hv_vcpu_get_tsc_offset(m.v[2], &ofs));
    cr_assert_eq(ofs, mcpu(&m, 0)->offset);
    OK(hv_vcpu_set_tsc_offset(m.v[0], 42, 0));
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
    hv_tsc_policy p = HV_TSC_POLICY_INIT;
    p.pause = HV_TSC_PAUSE_FREEZE;
    ERR(hv_vm_set_tsc_policy(a.vm, &p), -ENOTSUP);
    ERR(hv_vcpu_set_tsc(a.v[0], 5, 0), -ENOTSUP);
    OK(hv_vm_pause(a.vm));
    uint8_t rec[sizeof(hv_tsc_state) + sizeof(hv_tsc_vcpu_state)];
    size_t len = save(&a, rec, sizeof(rec));
    advance(&h, 10000000); /* 10 ms */
    mv_open(&b, &h, 1);
    int mark = h.nlog;
    ERR(restore(&b, rec, len, HV_TSC_PAUSE_FREEZE), -ENOTSUP);
    cr_assert(strstr(hv_last_error(), "-10000 us"), "%s", hv_last_error());
    cr_assert_eq(h.nlog, mark, "nothing applied: %s", h.log[mark]);
    /* the host TSC is what advance asks for */
    OK(restore(&b, rec, len, HV_TSC_PAUSE_ADVANCE));
    /* a wider allowance accepts the 10 ms */
    hv_tsc_restore_options o = HV_TSC_RESTORE_OPTIONS_INIT;
    o.pause = HV_TSC_PAUSE_FREEZE;
    o.max_error_us = 20000;
    OK(hv_vm_restore_tsc(b.vm, rec, len, &o));
    /* a record from a host whose TSC reads otherwise */
    hv_tsc_state hdr;
    memcpy(&hdr, rec, sizeof(hdr));
    memset(hdr.host_boot_id, 9, 16);
    memcpy(rec, &hdr, sizeof(hdr));
    h.realtime_ns += SEC; /* and its clock says 1 s more than the TSC */
    ERR(restore(&b, rec, len, HV_TSC_PAUSE_ADVANCE), -ENOTSUP);
    OK(hv_vm_resume(a.vm));
    mv_close(&a);
    mv_close(&b);
}

/* ---- the frequency ---- */

Test(tsc_model, frequency_with_scaling)
{
    struct mhost h;
    host_init(&h, 2000000, HV_TSC_OFFSET | HV_TSC_SCALING, 1);
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
    hv_tsc_frequency_options f = HV_TSC_FREQUENCY_OPTIONS_INIT;
    f.tsc_khz = 2000000u * 256;
    ERR(hv_vm_set_tsc_frequency(m.vm, &f), -ERANGE);
    /* within the tolerance: no scaling */
    pin(m.vm, 2000400);
    hv_tsc_config c = HV_TSC_CONFIG_INIT;
    OK(hv_vm_get_tsc_config(m.vm, &c));
    cr_assert_eq(c.flags, HV_TSC_PINNED);
    cr_assert_eq(c.effective_khz, 2000000);
    cr_assert_eq(mcpu(&m, 0)->hw_khz, 0);
    /* a run fixes it */
    hv_memory_options mo = HV_MEMORY_OPTIONS_INIT;
    mo.length = 1 << 20;
    OK(hv_vm_add_memory(m.vm, &mo, NULL));
    const hv_exit *e;
    OK(hv_vcpu_run(m.v[0], &e));
    cr_assert_eq(e->reason, HV_EXIT_HLT);
    f.tsc_khz = 1000000;
    ERR(hv_vm_set_tsc_frequency(m.vm, &f), -EBUSY);
    mv_close(&m);
}
