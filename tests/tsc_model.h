/* The model backend of tests/tsc_model.c: a host TSC the test moves by
 * hand, kvmclock, per-vCPU offsets, scaling and the TSC MSRs as KVM
 * defines them, and a log of the writes (tests/tsc_model_backend.c).
 * White-box: it builds a hypervisor handle on the model (internal.h). */
#ifndef TSC_MODEL_H
#define TSC_MODEL_H

#include "internal.h"
#include "tsc_math.h"
#include "../arch/x86/cpuid.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define OK(call)                                                               \
    do {                                                                       \
        int r_ = (call);                                                       \
        cr_assert_eq(r_, 0, "%s = %d: %s", #call, r_, hvc_last_error());       \
    } while (0)
#define ERR(call, err)                                                         \
    do {                                                                       \
        int r_ = (call);                                                       \
        cr_assert_eq(r_, (err), "%s = %d, expected %d: %s", #call, r_, (err),  \
                     hvc_last_error());                                        \
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
#define SEC 1000000000ull

struct mhost {
    uint64_t tsc; /* the host TSC: only the test moves it */
    uint32_t khz;
    uint64_t realtime_ns;
    uint8_t boot[16];
    uint32_t flags;        /* hvc_tsc_info flags */
    uint32_t frac;         /* with HVC_TSC_SCALING */
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

struct mv {
    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_vcpu *v[3];
    uint32_t n;
};

/* The host moves on by @p ns: its TSC and its CLOCK_REALTIME. */
void advance(struct mhost *h, uint64_t ns);
uint64_t guest_tsc(const struct mvcpu *v);
uint64_t kvmclock(const struct mvm *vm);
/* A host of @p khz with @p flags (hvc_tsc_info), boot identity @p boot. */
void host_init(struct mhost *h, uint32_t khz, uint32_t flags, uint8_t boot);
/* A VM with @p n vCPUs on the model of host @p h. */
void mv_open(struct mv *m, struct mhost *h, uint32_t n);
void mv_close(struct mv *m);
struct mvcpu *mcpu(const struct mv *m, uint32_t i);
struct mvm *mvm(const struct mv *m);
void policy(hvc_vm *vm, uint32_t pause, uint32_t max_ms);
void pin(hvc_vm *vm, uint32_t khz);
/* Index of the first log entry from @p from (the last) that starts with
 * @p prefix; -1 if none. */
int first(const struct mhost *h, const char *prefix, int from);
int last(const struct mhost *h, const char *prefix);
size_t save(struct mv *m, uint8_t *buf, size_t size);
int restore(struct mv *m, const uint8_t *buf, size_t len, uint32_t pause);

#endif
