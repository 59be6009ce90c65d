/* TSC virtualization on Hypervisor.framework. vCPUs are created with
 * HV_VCPU_TSC_RELATIVE: guest TSC = hv_tsc_clock() + the vCPU's offset
 * (hv_vcpu_set_tsc_relative), so the host TSC the core reasons with is
 * hv_tsc_clock(). The framework has no TSC scaling, so the guest runs at
 * the host frequency; and no paravirtual clock, so the "guest clock" the
 * core saves and restores is a software one: CLOCK_MONOTONIC plus a VM
 * delta, which set_clock moves. */
#define _GNU_SOURCE
#include "hvf.h"

#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define TOLERANCE_PPM 250

static uint64_t ns(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* One sample of the TSC rate over about 10 ms: each clock is read between
 * two reads of the other, and a sample whose brackets are wide (the thread
 * was preempted between reads) is thrown away. kHz, or 0. */
static uint32_t measure_once(void)
{
    uint64_t c0 = hvi_hvf.hv_tsc_clock(), t0 = ns(CLOCK_MONOTONIC_RAW);
    uint64_t c0b = hvi_hvf.hv_tsc_clock();
    struct timespec s = {0, 10000000};
    nanosleep(&s, NULL);
    uint64_t c1 = hvi_hvf.hv_tsc_clock(), t1 = ns(CLOCK_MONOTONIC_RAW);
    uint64_t c1b = hvi_hvf.hv_tsc_clock();
    /* Brackets under 20 µs each put the error under 0.4%/5 samples' median;
     * at 2.6 GHz that is 52000 TSC ticks. */
    if (t1 <= t0 || c0b - c0 > 50000 || c1b - c1 > 50000)
        return 0;
    uint64_t dc = (c1 + c1b) / 2 - (c0 + c0b) / 2;
    return (uint32_t)(dc * 1000000ull / (t1 - t0));
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* kHz from the platform (machdep.tsc.frequency: the kernel's calibration,
 * what KVM also reports on a Linux host), CPUID 0x15 (crystal ratio),
 * 0x40000010 (a hypervisor's timing leaf), else the median of up to 7
 * measurements against CLOCK_MONOTONIC_RAW. A measurement's error (tens of
 * ppm at best) matters: restoring a snapshot compares this figure with
 * the stream's within 250 ppm. */
uint32_t hvi_hvf_host_khz(void)
{
    uint64_t hz = hvi_hvf_platform_tsc_hz();
    if (hz >= 1000000 && hz / 1000 <= UINT32_MAX)
        return (uint32_t)((hz + 500) / 1000);
    unsigned a, b, c, d;
    if (__get_cpuid_count(0x15, 0, &a, &b, &c, &d) && a && b && c)
        return (uint32_t)((uint64_t)c * b / a / 1000);
    __cpuid(1, a, b, c, d);
    if (c & (1u << 31)) {
        __cpuid(0x40000000, a, b, c, d);
        if (a >= 0x40000010) {
            __cpuid(0x40000010, a, b, c, d);
            if (a)
                return a;
        }
    }
    uint32_t k[7];
    int n = 0;
    for (int tries = 0; tries < 20 && n < 7; tries++)
        if ((k[n] = measure_once()) != 0)
            n++;
    if (n == 0)
        return 0;
    qsort(k, (size_t)n, sizeof(k[0]), cmp_u32);
    return k[n / 2];
}

/* Whether a vCPU's TSC offset takes effect: the framework's does, but an
 * implementation of its API may refuse offsets (tests/hvf_host on a KVM
 * that drops them says HV_UNSUPPORTED). Probed once per process on a
 * throw-away VM, when none exists yet; a process that already has its VM
 * assumes the framework's behaviour. */
static pthread_once_t offset_once = PTHREAD_ONCE_INIT;
static bool offset_ok = true;

static void probe_offset(void)
{
    if (hvi_hvf.hv_vm_create(HV_VM_DEFAULT) != HV_SUCCESS)
        return;
    hv_vcpuid_t id;
    if (hvi_hvf.hv_vcpu_create(&id, HV_VCPU_TSC_RELATIVE) == HV_SUCCESS) {
        offset_ok =
            hvi_hvf.hv_vcpu_set_tsc_relative(id, 1ll << 40) == HV_SUCCESS;
        hvi_hvf.hv_vcpu_destroy(id);
    }
    hvi_hvf.hv_vm_destroy();
}

bool hvi_hvf_tsc_offset_works(void)
{
    pthread_once(&offset_once, probe_offset);
    return offset_ok;
}

static int hvf_tsc_info(void *priv, hvc_tsc_info *info, uint8_t boot_id[16])
{
    struct hvi_hvf *h = priv;
    unsigned a, b, c, d;
    bool invariant = __get_cpuid(0x80000007, &a, &b, &c, &d) && (d & 0x100);
    info->flags = (h->caps[HVC_CAP_TSC_OFFSET] ? HVC_TSC_OFFSET : 0) |
                  (invariant ? HVC_TSC_HOST_INVARIANT : 0) |
                  HVC_TSC_PIT_CATCHUP; /* the library's PIT (irq_user.c) */
    info->host_tsc_khz = h->tsc_khz;
    info->backend_tolerance_ppm = TOLERANCE_PPM;
    info->ratio_frac_bits = 0;
    info->apic_bus_khz = 1000000; /* the userspace LAPIC: 1 ns per tick */
    info->ratio_max = 0;
    info->max_guest_tsc_khz = h->tsc_khz;
    info->reserved = 0;
    for (int i = 0; i < 16; i++)
        boot_id[i] = 0;
    return 0;
}

static uint64_t hvf_host_tsc(void *priv)
{
    (void)priv;
    return hvi_hvf.hv_tsc_clock();
}

static int hvf_set_frequency(void *vm_priv, uint32_t khz, uint32_t flags)
{
    struct hvi_hvf_vm *vm = vm_priv;
    uint32_t host = vm->hvf->tsc_khz;
    uint64_t diff = khz > host ? khz - host : host - khz;
    if ((flags & HVC_BACKEND_TSC_SCALE) ||
        diff * 1000000ull > (uint64_t)host * TOLERANCE_PPM)
        return hvi_error(-ENOTSUP,
                         "Hypervisor.framework cannot scale the TSC: the "
                         "guest runs at the host's %u kHz, not %u kHz",
                         host, khz);
    vm->tsc_khz = khz;
    return 0;
}

static int hvf_apply_frequency(void *vcpu_priv)
{
    (void)vcpu_priv;
    return 0;
}

static int hvf_get_clock(void *vm_priv, hvc_backend_clock *out)
{
    struct hvi_hvf_vm *vm = vm_priv;
    uint64_t t0 = hvi_hvf.hv_tsc_clock();
    uint64_t mono = ns(CLOCK_MONOTONIC), rt = ns(CLOCK_REALTIME);
    uint64_t t1 = hvi_hvf.hv_tsc_clock();
    out->clock_ns = mono + (uint64_t)atomic_load(&vm->clock_delta);
    out->host_tsc = t0 + (t1 - t0) / 2;
    out->realtime_ns = rt;
    out->flags = HVC_BACKEND_CLOCK_STABLE;
    uint32_t khz = vm->hvf->tsc_khz ? vm->hvf->tsc_khz : 1000000;
    out->error_ns = (uint32_t)((t1 - t0) * 1000000ull / khz / 2 + 1);
    return 0;
}

static int hvf_set_clock(void *vm_priv, uint64_t clock_ns, uint64_t since)
{
    struct hvi_hvf_vm *vm = vm_priv;
    uint64_t mono = ns(CLOCK_MONOTONIC);
    if (since) {
        uint64_t rt = ns(CLOCK_REALTIME);
        if (rt > since)
            clock_ns += rt - since;
    }
    atomic_store(&vm->clock_delta, (int64_t)(clock_ns - mono));
    return 0;
}

static int hvf_get_offset(void *vcpu_priv, uint64_t *ofs)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    *ofs = v->tsc_offset;
    return 0;
}

static int hvf_set_offset(void *vcpu_priv, uint64_t ofs)
{
    struct hvi_hvf_vcpu *v = vcpu_priv;
    hv_return_t h = hvi_hvf.hv_vcpu_set_tsc_relative(v->vcpu, (int64_t)ofs);
    if (h == HV_UNSUPPORTED) /* as documented: ignored without the ability */
        return 0;
    if (h != HV_SUCCESS)
        return hvi_hvf_fail("hv_vcpu_set_tsc_relative", h);
    v->tsc_offset = ofs;
    return 0;
}

static int hvf_no_pit(void *vm_priv, int enable)
{
    (void)vm_priv;
    (void)enable;
    return 0;
}

static int hvf_no_pit_backlog(void *vm_priv)
{
    (void)vm_priv;
    return 0;
}

const hvc_backend_tsc_ops hvi_hvf_tsc_ops = {
    .version = HVC_BACKEND_TSC_OPS_VERSION,
    .get_info = hvf_tsc_info,
    .host_tsc = hvf_host_tsc,
    .vm_set_frequency = hvf_set_frequency,
    .vcpu_apply_frequency = hvf_apply_frequency,
    .vm_get_clock = hvf_get_clock,
    .vm_set_clock = hvf_set_clock,
    .vcpu_get_offset = hvf_get_offset,
    .vcpu_set_offset = hvf_set_offset,
    .vm_set_pit_catchup = hvf_no_pit,
    .vm_drop_pit_backlog = hvf_no_pit_backlog,
};
