/* Helpers shared by the TSC suites (tests/test_tsc.c,
 * tests/test_tsc_restore.c): VMs running tests/guests/tsc64.S, and guest
 * TSC readings paired with host CLOCK_MONOTONIC_RAW. Static inline, so a
 * suite that does not use one does not warn. */
#ifndef TSC_GUEST_H
#define TSC_GUEST_H

#include "hvtest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* tests/guests/tsc64.S */
#define STOP DATA_IN
#define SAMPLE (DATA_IN + 8)
#define GMAX (DATA_OUT + 0x00)
#define XERR (DATA_OUT + 0x08)
#define CPU(i) (DATA_OUT + 0x100 + 0x40 * (uint64_t)(i))
#define LAST 0x00
#define ITER 0x08
#define BACK 0x10
#define MAXD 0x18
#define NTSCP 0x38

#define TRIALS 7
static inline uint64_t raw_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Guest cycles at @p khz to nanoseconds. */
static inline uint64_t cyc_ns(uint64_t cycles, uint32_t khz)
{
    return (uint64_t)((unsigned __int128)cycles * 1000000 / khz);
}

static inline uint64_t q(hvc_vm *vm, uint64_t gpa)
{
    uint64_t v;
    HVT_OK(hvc_vm_read(vm, gpa, &v, 8));
    return v;
}

static inline void put_q(hvc_vm *vm, uint64_t gpa, uint64_t v)
{
    HVT_OK(hvc_vm_write(vm, gpa, &v, 8));
}

static inline int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static inline int64_t median(int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    return v[n / 2];
}

static inline hvc_tsc_info host_info(hvc_hypervisor *hv)
{
    hvc_tsc_info in = HVC_TSC_INFO_INIT;
    HVT_OK(hvc_tsc_get_info(hv, &in));
    return in;
}

static inline void pin(hvc_vm *vm, uint32_t khz, uint32_t tol)
{
    hvc_tsc_frequency_options f = HVC_TSC_FREQUENCY_OPTIONS_INIT;
    f.tsc_khz = khz;
    f.tolerance_ppm = tol;
    HVT_OK(hvc_vm_set_tsc_frequency(vm, &f));
}

/* ---- a VM running tsc64.S ---- */

struct runner {
    hvc_vcpu *vcpu;
    pthread_t th;
    int rc;
    uint32_t reason;
    int status;
};

static inline void *run_thread(void *arg)
{
    struct runner *r = arg;
    const hvc_exit *e = NULL;
    r->rc = hvc_vcpu_run(r->vcpu, &e);
    r->reason = e ? e->reason : 0;
    r->status =
        r->rc == 0 && e->reason == HVC_EXIT_PIO && e->u.io.port == PORT_DONE
            ? *(uint8_t *)e->u.io.data
            : -1;
    return NULL;
}

/* Guest TSC readings of vCPU 0 paired with host CLOCK_MONOTONIC_RAW on
 * the vCPU's own thread: while SAMPLE is set, tsc64.S follows each
 * reading with an OUT to PORT_DATA, and this handler takes the host clock
 * and the reading the guest just stored. No second thread has to be
 * running at the same moment, so this holds on a busy host. */
#define NSAMPLES 32

struct sampler {
    hvc_vm *vm;
    atomic_uint n;    /* samples taken */
    atomic_uint want; /* taken while n < want */
    uint64_t h[NSAMPLES], g[NSAMPLES];
};

static inline int sample_port(void *opaque, hvc_vcpu *vcpu, uint64_t off,
                              void *data, uint32_t size, int is_write)
{
    struct sampler *s = opaque;
    uint64_t t = raw_ns(), g;
    (void)off, (void)data, (void)size, (void)is_write;
    unsigned n = atomic_load(&s->n);
    if (hvc_vcpu_id(vcpu) != 0 || n >= atomic_load(&s->want) ||
        hvc_vm_read(s->vm, CPU(0) + LAST, &g, 8) < 0)
        return 0;
    s->h[n] = t;
    s->g[n] = g;
    atomic_store(&s->n, n + 1);
    return 0;
}

struct tvm {
    hvt t;
    struct runner r[2];
    uint32_t n;
    uint32_t khz; /* the rate the guest TSC runs at */
    struct sampler s;
};

/* The sampler of a VM built by hand (a restore target). */
static inline void tvm_sampler(struct tvm *v)
{
    v->s.vm = v->t.vm;
    HVT_OK(hvc_vm_add_io_handler(v->t.vm, HVC_IO_PIO, PORT_DATA, 4, sample_port,
                                 &v->s));
}

static const hvc_reg gprs[] = {
    HVC_X86_RAX, HVC_X86_RBX, HVC_X86_RCX,   HVC_X86_RDX, HVC_X86_RSI,
    HVC_X86_RDI, HVC_X86_RSP, HVC_X86_RBP,   HVC_X86_R8,  HVC_X86_R9,
    HVC_X86_R10, HVC_X86_R11, HVC_X86_R12,   HVC_X86_R13, HVC_X86_R14,
    HVC_X86_R15, HVC_X86_RIP, HVC_X86_RFLAGS};
#define NGPRS (sizeof(gprs) / sizeof(gprs[0]))

/* A VM with @p n vCPUs at tsc64.S's entry, its frequency pinned to the
 * host's (unless @p pinned is false), not yet running. */
static inline void tvm_open(struct tvm *v, uint32_t n, bool pinned)
{
    memset(v, 0, sizeof(*v));
    hvt_open(&v->t, 0);
    v->n = n;
    v->khz = host_info(v->t.hv).host_tsc_khz;
    if (pinned)
        pin(v->t.vm, v->khz, HVC_TSC_DEFAULT_TOLERANCE_PPM);
    hvt_load(v->t.vm, "tsc64");
    tvm_sampler(v);
    for (uint32_t i = 0; i < n; i++) {
        v->r[i].vcpu = hvt_vcpu(v->t.vm, i, HVC_X86_MODE_LONG64, 0);
        HVT_OK(hvc_vcpu_set_reg(v->r[i].vcpu, HVC_X86_RDI, i));
    }
}

static inline void tvm_start(struct tvm *v)
{
    for (uint32_t i = 0; i < v->n; i++)
        cr_assert_eq(pthread_create(&v->r[i].th, NULL, run_thread, &v->r[i]),
                     0);
}

/* Waits until vCPU i has looped @p n more times (it is running). */
static inline void progress(hvc_vm *vm, uint32_t i, uint64_t n)
{
    uint64_t start = q(vm, CPU(i) + ITER);
    for (int k = 0; k < 10000 && q(vm, CPU(i) + ITER) < start + n; k++)
        usleep(500);
    cr_assert_geq(q(vm, CPU(i) + ITER), start + n, "vCPU %u is not looping", i);
}

/* Ends the runs: through STOP when running, a kick when paused. */
static inline void tvm_stop(struct tvm *v)
{
    bool paused = hvc_vm_is_paused(v->t.vm);
    if (!paused)
        put_q(v->t.vm, STOP, 1);
    for (uint32_t i = 0; i < v->n; i++) {
        if (paused)
            HVT_OK(hvc_vcpu_kick(v->r[i].vcpu));
        pthread_join(v->r[i].th, NULL);
        cr_assert_eq(v->r[i].rc, 0, "vCPU %u: %s", i, hvc_last_error());
        if (!paused)
            cr_assert_eq(v->r[i].status, (int)i);
    }
    put_q(v->t.vm, STOP, 0);
}

static inline void check_monotonic(hvc_vm *vm, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(q(vm, CPU(i) + BACK), 0,
                     "vCPU %u's TSC went backwards %llu times, last by %llu", i,
                     (unsigned long long)q(vm, CPU(i) + BACK),
                     (unsigned long long)q(vm, CPU(i) + 0x30));
    cr_assert_eq(q(vm, XERR), 0,
                 "a reading was smaller than another vCPU's earlier one "
                 "(%llu times, last by %llu cycles)",
                 (unsigned long long)q(vm, XERR),
                 (unsigned long long)q(vm, XERR + 8));
}

/* A guest TSC reading of vCPU 0 and the host time it was taken. A pair
 * can be late: the vCPU may leave the guest (a kick, the host scheduler)
 * between its RDTSC and its OUT. So the next pair must follow it by the
 * same time on both clocks; the best of up to 50 rounds of NSAMPLES is
 * kept (usually the first, to within 3 us), and a host too busy to give one
 * within 200 us fails the test rather than blur it. */
static inline void fresh(struct tvm *v, uint64_t *host, uint64_t *guest)
{
    struct sampler *s = &v->s;
    uint64_t best = UINT64_MAX;
    for (int round = 0; round < 50 && best > 3000; round++) {
        atomic_store(&s->want, 0);
        atomic_store(&s->n, 0);
        atomic_store(&s->want, NSAMPLES);
        put_q(v->t.vm, SAMPLE, 1);
        uint64_t end = raw_ns() + 2000000000ull;
        while (atomic_load(&s->n) < NSAMPLES && raw_ns() < end)
            usleep(200);
        put_q(v->t.vm, SAMPLE, 0);
        atomic_store(&s->want, 0);
        unsigned n = atomic_load(&s->n);
        for (unsigned i = 1; i < n; i++) {
            uint64_t dh = s->h[i] - s->h[i - 1];
            if (s->g[i] <= s->g[i - 1] || dh > 1000000)
                continue;
            int64_t miss =
                (int64_t)cyc_ns(s->g[i] - s->g[i - 1], v->khz) - (int64_t)dh;
            uint64_t err = (uint64_t)(miss < 0 ? -miss : miss);
            if (err < best) {
                best = err;
                *host = s->h[i - 1];
                *guest = s->g[i - 1];
            }
        }
    }
    cr_assert_lt(best, 200000,
                 "no fresh TSC reading: the best pairing was %llu ns off (a "
                 "host too busy to measure)",
                 (unsigned long long)best);
}

static inline int64_t clock_error_us(uint64_t h0, uint64_t g0, uint64_t h1,
                                     uint64_t g1, uint64_t w, uint32_t khz,
                                     uint32_t pause)
{
    int64_t dg = (int64_t)cyc_ns(g1 - g0, khz);
    int64_t moved = dg - ((int64_t)(h1 - h0) - (int64_t)w);
    int64_t want = pause == HVC_TSC_PAUSE_ADVANCE ? (int64_t)w : 0;
    return (moved - want) / 1000;
}

static inline void pause_trials(struct tvm *v, uint32_t pause, int64_t *err_us,
                                int64_t *seen_us)
{
    hvc_vm *vm = v->t.vm;
    for (int i = 0; i < TRIALS; i++) {
        uint64_t h0 = 0, g0 = 0, h1 = 0, g1 = 0;
        progress(vm, 0, 100);
        fresh(v, &h0, &g0);
        HVT_OK(hvc_vm_pause(vm));
        uint64_t paused = raw_ns();
        put_q(vm, CPU(0) + MAXD, 0);
        usleep(50000);
        uint64_t resumed = raw_ns();
        HVT_OK(hvc_vm_resume(vm));
        fresh(v, &h1, &g1);
        err_us[i] =
            clock_error_us(h0, g0, h1, g1, resumed - paused, v->khz, pause);
        seen_us[i] = (int64_t)cyc_ns(q(vm, CPU(0) + MAXD), v->khz) / 1000;
    }
}

#endif
