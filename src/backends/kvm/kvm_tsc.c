/* KVM TSC virtualization: probing the host, the guest frequency
 * (KVM_SET_TSC_KHZ and the CPUID that tells it), kvmclock (KVM_GET_CLOCK,
 * KVM_SET_CLOCK), TSC offsets (KVM_VCPU_TSC_OFFSET) and PIT reinjection
 * (KVM_REINJECT_CONTROL). The policy is the core's (src/core/tsc*.c). */
#include "../../arch/x86/cpuid.h"
#include "../../core/tsc_math.h"
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MSR_IA32_TSC 0x10u
#define INVARIANT_TSC (1u << 8)

/* rdtsc is not ordered against surrounding loads and stores; the fences
 * keep it between the reads that bracket a KVM sample. */
static uint64_t rdtsc_ordered(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return (uint64_t)hi << 32 | lo;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void hvi_kvm_tsc_open(struct hvi_kvm *k)
{
    pthread_mutex_init(&k->tsc.lock, NULL);
    int r = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK);
    k->tsc.adjust_clock = r > 0 ? (uint32_t)r : 0;
}

void hvi_kvm_tsc_close(struct hvi_kvm *k)
{
    pthread_mutex_destroy(&k->tsc.lock);
}

static bool read_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    return ok;
}

/* /proc/sys/kernel/random/boot_id: 36 characters of UUID. */
static void read_boot_id(uint8_t id[16])
{
    char s[64];
    memset(id, 0, 16);
    if (!read_line("/proc/sys/kernel/random/boot_id", s, sizeof(s)))
        return;
    unsigned n = 0;
    for (const char *p = s; *p && n < 32; p++) {
        int v = *p >= '0' && *p <= '9'   ? *p - '0'
                : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                                         : -1;
        if (v < 0)
            continue;
        id[n / 2] |= (uint8_t)(n % 2 ? v : v << 4);
        n++;
    }
    if (n != 32)
        memset(id, 0, 16);
}

static const struct kvm_cpuid_entry2 *supported(const struct hvi_kvm *k,
                                                uint32_t function)
{
    for (uint32_t i = 0; i < k->cpuid->nent; i++)
        if (k->cpuid->entries[i].function == function)
            return &k->cpuid->entries[i];
    return NULL;
}

/* Whether a written KVM_VCPU_TSC_OFFSET takes effect: some KVMs (PVM,
 * where the guest's RDTSC is not trapped) accept the write and drop it. */
static bool offset_works(int vcpu)
{
    uint64_t before = 0, want, after = 0;
    struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL,
                                .attr = KVM_VCPU_TSC_OFFSET};
    if (ioctl(vcpu, KVM_HAS_DEVICE_ATTR, &a) < 0)
        return false;
    a.addr = (uintptr_t)&before;
    if (ioctl(vcpu, KVM_GET_DEVICE_ATTR, &a) < 0)
        return false;
    want = before + (1ull << 40);
    a.addr = (uintptr_t)&want;
    if (ioctl(vcpu, KVM_SET_DEVICE_ATTR, &a) < 0)
        return false;
    a.addr = (uintptr_t)&after;
    return ioctl(vcpu, KVM_GET_DEVICE_ATTR, &a) == 0 && after == want;
}

/* Once per hypervisor, with a throw-away VM and vCPU (k->tsc.lock held). */
static int probe(struct hvi_kvm *k)
{
    hvc_tsc_info *in = &k->tsc.info;
    memset(in, 0, sizeof(*in));
    in->size = sizeof(*in);
    int vm = ioctl(k->fd, KVM_CREATE_VM, 0);
    if (vm < 0)
        return hvi_kvm_fail("KVM_CREATE_VM (TSC probe)", errno);
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) {
        int r = hvi_kvm_fail("KVM_CREATE_VCPU (TSC probe)", errno);
        close(vm);
        return r;
    }
    /* A new vCPU runs at KVM's default: the host frequency. */
    int khz = ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
    bool offset = offset_works(vcpu);
    close(vcpu);
    close(vm);
    if (khz <= 0)
        return hvi_kvm_fail("KVM_GET_TSC_KHZ", khz < 0 ? errno : EIO);

    uint32_t f = 0;
    const struct kvm_cpuid_entry2 *pm = supported(k, HVI_CPUID_POWER_LEAF);
    if (pm && (pm->edx & INVARIANT_TSC))
        f |= HVC_TSC_HOST_INVARIANT;
    char cs[32];
    if (read_line("/sys/devices/system/clocksource/clocksource0/"
                  "current_clocksource",
                  cs, sizeof(cs)) &&
        strcmp(cs, "tsc\n") == 0)
        f |= HVC_TSC_HOST_STABLE;
    if (offset)
        f |= HVC_TSC_OFFSET;
    if (k->tsc.adjust_clock & KVM_CLOCK_REALTIME)
        f |= HVC_TSC_CLOCK_REALTIME;
    if (k->tsc.adjust_clock & KVM_CLOCK_HOST_TSC)
        f |= HVC_TSC_CLOCK_HOST_TSC;
    if (ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_REINJECT_CONTROL) > 0)
        f |= HVC_TSC_PIT_CATCHUP;

    in->host_tsc_khz = (uint32_t)khz;
    in->apic_bus_khz = HVI_KVM_APIC_BUS_KHZ;
    in->max_guest_tsc_khz = in->host_tsc_khz;
    in->backend_tolerance_ppm = HVC_TSC_DEFAULT_TOLERANCE_PPM;
    char tol[32];
    if (read_line("/sys/module/kvm/parameters/tsc_tolerance_ppm", tol,
                  sizeof(tol)))
        in->backend_tolerance_ppm = (uint32_t)strtoul(tol, NULL, 10);

    /* KVM scales with the vendor's format and refuses a ratio equal to the
     * format's maximum (kvm_caps.max_tsc_scaling_ratio is exclusive). */
    const struct kvm_cpuid_entry2 *v0 = supported(k, 0);
    uint32_t vendor = v0 ? v0->ebx : 0;
    if (k->caps[HVC_CAP_TSC_SCALING]) {
        if (vendor == 0x756e6547u) { /* "GenuineIntel" */
            in->ratio_frac_bits = HVC_TSC_FRAC_BITS_VMX;
            in->ratio_max = UINT64_MAX - 1;
        } else if (vendor == 0x68747541u || vendor == 0x6f677948u) {
            in->ratio_frac_bits = HVC_TSC_FRAC_BITS_SVM; /* AMD, Hygon */
            in->ratio_max = (1ull << 40) - 2;
        }
    }
    if (in->ratio_frac_bits) {
        f |= HVC_TSC_SCALING;
        if (ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TSC_CONTROL) > 0)
            f |= HVC_TSC_VM_FREQUENCY;
        /* KVM_SET_TSC_KHZ wants less than this (max_guest_tsc_khz). */
        uint64_t max = hvi_mul_shr(in->ratio_max + 1, in->host_tsc_khz,
                                   in->ratio_frac_bits);
        in->max_guest_tsc_khz =
            (uint32_t)(max > 0x7fffffffu ? 0x7ffffffeu : max - 1);
    }
    in->flags = f;
    read_boot_id(k->tsc.boot_id);
    return 0;
}

static int probed(struct hvi_kvm *k)
{
    pthread_mutex_lock(&k->tsc.lock);
    if (!k->tsc.probed) {
        k->tsc.probe_error = probe(k);
        k->tsc.probed = k->tsc.probe_error == 0;
    }
    int r = k->tsc.probed ? 0 : k->tsc.probe_error;
    pthread_mutex_unlock(&k->tsc.lock);
    return r;
}

uint64_t hvi_kvm_tsc_offset_cap(struct hvi_kvm *k)
{
    return probed(k) == 0 && (k->tsc.info.flags & HVC_TSC_OFFSET);
}

static int kvm_tsc_info(void *priv, hvc_tsc_info *info, uint8_t boot_id[16])
{
    struct hvi_kvm *k = priv;
    int r = probed(k);
    if (r < 0)
        return r;
    *info = k->tsc.info;
    memcpy(boot_id, k->tsc.boot_id, 16);
    return 0;
}

static uint64_t kvm_host_tsc(void *priv)
{
    (void)priv;
    return rdtsc_ordered();
}

/* The frequency KVM runs a vCPU at: hw_khz, or the host's for 0. Never
 * the VM-wide KVM_SET_TSC_KHZ without KVM_CAP_VM_TSC_CONTROL: some KVMs
 * take it then and give each new vCPU a frequency they cannot deliver. */
static int set_hw(struct hvi_kvm_vcpu *v, uint32_t hw_khz)
{
    if (v->tsc_hw_khz == hw_khz)
        return 0;
    struct hvi_kvm *k = v->vm->kvm;
    int r = hw_khz ? 0 : probed(k);
    if (r < 0)
        return r;
    uint32_t khz = hw_khz ? hw_khz : k->tsc.info.host_tsc_khz;
    if (ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0) {
        int e = errno;
        return hvi_error(-e, "KVM_SET_TSC_KHZ %u on vCPU %u: %s", khz, v->id,
                         hvc_strerror(-e));
    }
    v->tsc_hw_khz = hw_khz;
    return 0;
}

static int kvm_set_frequency(void *vm_priv, uint32_t khz, uint32_t flags)
{
    struct hvi_kvm_vm *vm = vm_priv;
    struct hvi_kvm *k = vm->kvm;
    int r = probed(k);
    if (r < 0)
        return r;
    uint32_t hw = (flags & HVC_BACKEND_TSC_SCALE) ? khz : 0;
    vm->tsc_khz = (flags & HVC_BACKEND_TSC_PINNED) ? khz : 0;
    vm->tsc_hw_khz = hw;
    if (hw != vm->vm_hw_khz && (k->tsc.info.flags & HVC_TSC_VM_FREQUENCY)) {
        uint32_t set = hw ? hw : k->tsc.info.host_tsc_khz;
        if (ioctl(vm->fd, KVM_SET_TSC_KHZ, (unsigned long)set) == 0)
            vm->vm_hw_khz = hw;
        else if (errno != EBUSY) /* vCPUs exist: each is set on its own */
            return hvi_kvm_fail("KVM_SET_TSC_KHZ (VM)", errno);
    }
    return 0;
}

int hvi_kvm_tsc_vcpu_init(struct hvi_kvm_vcpu *v)
{
    v->tsc_hw_khz = v->vm->vm_hw_khz;
    return set_hw(v, v->vm->tsc_hw_khz);
}

static int kvm_apply_frequency(void *vcpu_priv)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    int r = set_hw(v, v->vm->tsc_hw_khz);
    return r < 0 ? r : hvi_kvm_set_cpuid(v);
}

static struct kvm_cpuid_entry2 *leaf(struct kvm_cpuid2 *c, uint32_t function,
                                     bool add)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == function)
            return &c->entries[i];
    if (!add)
        return NULL;
    struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
    memset(e, 0, sizeof(*e));
    e->function = function;
    return e;
}

void hvi_kvm_tsc_cpuid(struct hvi_kvm_vcpu *v, struct kvm_cpuid2 *c)
{
    uint32_t khz = v->vm->tsc_khz;
    bool pinned = khz != 0;
    if (!pinned) {
        int r = ioctl(v->fd, KVM_GET_TSC_KHZ, 0); /* the host's, unscaled */
        khz = r > 0 ? (uint32_t)r : 0;
    }
    /* An unpinned frequency could change under the guest on a restore
     * elsewhere: no invariant-TSC promise then. */
    struct kvm_cpuid_entry2 *e = leaf(c, HVI_CPUID_POWER_LEAF, false);
    if (e && !pinned)
        e->edx &= ~INVARIANT_TSC;
    if (!khz)
        return;
    e = leaf(c, 0, false);
    if (e && e->eax < HVI_CPUID_FREQ_LEAF)
        e->eax = HVI_CPUID_FREQ_LEAF;
    e = leaf(c, HVI_CPUID_TSC_LEAF, true);
    hvi_tsc_leaf_15(khz, HVI_KVM_APIC_BUS_KHZ, &e->eax, &e->ebx, &e->ecx);
    e->edx = 0;
    e = leaf(c, HVI_CPUID_FREQ_LEAF, true);
    hvi_tsc_leaf_16(khz, HVI_KVM_APIC_BUS_KHZ, &e->eax, &e->ebx, &e->ecx);
    e->edx = 0;
    /* The hypervisor timing leaf lives in KVM's range; only with KVM's
     * signature there (never invent one). */
    e = leaf(c, HVI_CPUID_HV_SIGNATURE, false);
    if (!e)
        return;
    if (e->eax < HVI_CPUID_HV_TIMING_LEAF)
        e->eax = HVI_CPUID_HV_TIMING_LEAF;
    e = leaf(c, HVI_CPUID_HV_TIMING_LEAF, true);
    e->eax = khz;
    e->ebx = HVI_KVM_APIC_BUS_KHZ;
    e->ecx = e->edx = 0;
}

/* KVM_GET_CLOCK returns the host TSC and CLOCK_REALTIME of its kvmclock
 * sample only while its master clock is in use (and on Linux >= 5.16).
 * Otherwise: bracket the ioctl with host TSC and CLOCK_REALTIME reads, a
 * few times, and keep the narrowest bracket. */
static int kvm_get_clock(void *vm_priv, hvc_backend_clock *out)
{
    struct hvi_kvm_vm *vm = vm_priv;
    const uint32_t both = KVM_CLOCK_HOST_TSC | KVM_CLOCK_REALTIME;
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 5; i++) {
        struct kvm_clock_data d;
        memset(&d, 0, sizeof(d));
        uint64_t t0 = rdtsc_ordered(), r0 = realtime_ns();
        if (ioctl(vm->fd, KVM_GET_CLOCK, &d) < 0)
            return hvi_kvm_fail("KVM_GET_CLOCK", errno);
        uint64_t r1 = realtime_ns(), t1 = rdtsc_ordered();
        uint32_t stable =
            d.flags & KVM_CLOCK_TSC_STABLE ? HVC_BACKEND_CLOCK_STABLE : 0;
        if ((d.flags & both) == both) {
            out->clock_ns = d.clock;
            out->host_tsc = d.host_tsc;
            out->realtime_ns = d.realtime;
            out->flags = HVC_BACKEND_CLOCK_KERNEL | stable;
            out->error_ns = 0;
            return 0;
        }
        if (t1 - t0 >= best)
            continue;
        best = t1 - t0;
        out->clock_ns = d.clock;
        out->host_tsc = t0 + (t1 - t0) / 2;
        out->realtime_ns = r0 + (r1 - r0) / 2;
        out->flags = stable;
        out->error_ns = (uint32_t)((r1 - r0) / 2 + 1);
    }
    return 0;
}

static int kvm_set_clock(void *vm_priv, uint64_t clock_ns, uint64_t since)
{
    struct hvi_kvm_vm *vm = vm_priv;
    struct kvm_clock_data d;
    memset(&d, 0, sizeof(d));
    d.clock = clock_ns;
    if (since && (vm->kvm->tsc.adjust_clock & KVM_CLOCK_REALTIME)) {
        d.flags = KVM_CLOCK_REALTIME; /* the kernel adds what elapsed */
        d.realtime = since;
    } else if (since) {
        uint64_t now = realtime_ns(); /* as the kernel would, from here */
        if (now > since)
            d.clock += now - since;
    }
    if (ioctl(vm->fd, KVM_SET_CLOCK, &d) < 0)
        return hvi_kvm_fail("KVM_SET_CLOCK", errno);
    return 0;
}

static int offset_attr(struct hvi_kvm_vcpu *v, unsigned long req, uint64_t *ofs)
{
    struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL,
                                .attr = KVM_VCPU_TSC_OFFSET,
                                .addr = (uintptr_t)ofs};
    return ioctl(v->fd, req, &a) < 0 ? -errno : 0;
}

/* Without KVM_VCPU_TSC_OFFSET (Linux < 5.16) the offset is read back from
 * IA32_TSC and the host TSC around it, to within that bracket. */
static int kvm_get_offset(void *vcpu_priv, uint64_t *ofs)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    int r = offset_attr(v, KVM_GET_DEVICE_ATTR, ofs);
    if (r != -ENXIO)
        return r < 0 ? hvi_kvm_fail("KVM_VCPU_TSC_OFFSET", -r) : 0;
    /* A header and one entry; a union, not a struct with the header's
     * flexible array in the middle (a GNU extension). */
    union {
        struct kvm_msrs m;
        uint8_t raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } msr;
    memset(&msr, 0, sizeof(msr));
    msr.m.nmsrs = 1;
    msr.m.entries[0].index = MSR_IA32_TSC;
    uint64_t t0 = rdtsc_ordered();
    if (ioctl(v->fd, KVM_GET_MSRS, &msr) != 1)
        return hvi_kvm_fail("KVM_GET_MSRS (IA32_TSC)", errno ? errno : EIO);
    uint64_t mid = t0 + (rdtsc_ordered() - t0) / 2;
    if (v->tsc_hw_khz) {
        const hvc_tsc_info *in = &v->vm->kvm->tsc.info;
        uint64_t ratio;
        if (hvi_fixed_ratio(v->tsc_hw_khz, in->host_tsc_khz,
                            in->ratio_frac_bits, &ratio))
            mid = hvi_mul_shr(mid, ratio, in->ratio_frac_bits);
    }
    *ofs = msr.m.entries[0].data - mid;
    return 0;
}

static int kvm_set_offset(void *vcpu_priv, uint64_t ofs)
{
    int r = offset_attr(vcpu_priv, KVM_SET_DEVICE_ATTR, &ofs);
    if (r == -ENXIO)
        return 0; /* no offsetting here: HVC_TSC_OFFSET says so */
    return r < 0 ? hvi_kvm_fail("KVM_VCPU_TSC_OFFSET", -r) : 0;
}

static int reinject(struct hvi_kvm_vm *vm, int on)
{
    struct kvm_reinject_control rc;
    memset(&rc, 0, sizeof(rc));
    rc.pit_reinject = (uint8_t)on;
    if (ioctl(vm->fd, KVM_REINJECT_CONTROL, &rc) < 0)
        return hvi_kvm_fail("KVM_REINJECT_CONTROL", errno);
    vm->pit_reinject = on;
    return 0;
}

static int kvm_set_pit_catchup(void *vm_priv, int enable)
{
    struct hvi_kvm_vm *vm = vm_priv;
    if (!vm->has_pit || vm->pit_reinject == !!enable)
        return 0;
    return reinject(vm, !!enable);
}

/* KVM forgets the queued ticks when reinjection is switched back on. */
static int kvm_drop_pit_backlog(void *vm_priv)
{
    struct hvi_kvm_vm *vm = vm_priv;
    if (!vm->has_pit || !vm->pit_reinject)
        return 0;
    int r = reinject(vm, 0);
    return r < 0 ? r : reinject(vm, 1);
}

const hvc_backend_tsc_ops hvi_kvm_tsc_ops = {
    .version = HVC_BACKEND_TSC_OPS_VERSION,
    .get_info = kvm_tsc_info,
    .host_tsc = kvm_host_tsc,
    .vm_set_frequency = kvm_set_frequency,
    .vcpu_apply_frequency = kvm_apply_frequency,
    .vm_get_clock = kvm_get_clock,
    .vm_set_clock = kvm_set_clock,
    .vcpu_get_offset = kvm_get_offset,
    .vcpu_set_offset = kvm_set_offset,
    .vm_set_pit_catchup = kvm_set_pit_catchup,
    .vm_drop_pit_backlog = kvm_drop_pit_backlog,
};
