/* tests/hvf_host: the entries of macOS's sysctlbyname(3) a VMM reads to
 * run a guest on Hypervisor.framework.
 * - machdep.tsc.frequency (Hz, a uint64_t). macOS answers with its kernel's
 *   TSC calibration; this layer answers with the Linux kernel's, which KVM
 *   reports as a vCPU's TSC rate, so that a backend on this layer and the
 *   KVM backend on the same host agree on the frequency to the kHz.
 * - The CPU feature entries, laid out as XNU lays them out
 *   (bsd/dev/i386/sysctl.c over osfmk/i386/cpuid.c's i386_cpu_info_t):
 *   machdep.cpu.feature_bits (uint64_t: CPUID.1 EDX low, ECX high),
 *   machdep.cpu.extfeature_bits (uint64_t: 0x80000001 EDX low, ECX high,
 *   with 0x80000007 EDX bit 8, invariant TSC, in bit 8),
 *   machdep.cpu.leaf7_feature_bits (uint64_t: leaf 7.0 EBX low, ECX high;
 *   ENOENT when EBX is 0) and machdep.cpu.leaf7_feature_bits_edx
 *   (uint32_t: leaf 7.0 EDX; ENOENT when 0). macOS answers with what its
 *   CPU has; this layer's guests run on KVM, so it answers with what both
 *   the CPU (the CPUID instruction) and KVM have: a VMM masking its guests'
 *   CPUID by these entries offers nothing KVM would refuse. What KVM has is
 *   KVM_GET_SUPPORTED_CPUID and what a vCPU given that list reports with
 *   KVM_GET_CPUID2: the same list on KVM; on KVM-on-PVM, whose guests'
 *   CPUID does not trap, also the host features those guests see (SSE3,
 *   AVX... which the supported list lacks there), as the KVM backend's
 *   restore also accepts.
 * Every other name is ENOENT, as macOS says for a name it does not have.
 * Read-only: a new value is EPERM. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;
static uint64_t tsc_hz;

static void read_tsc_khz(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        return;
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm >= 0) {
        int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
        if (vcpu >= 0) {
            int khz = ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
            if (khz > 0)
                tsc_hz = (uint64_t)khz * 1000;
            close(vcpu);
        }
        close(vm);
    }
    close(kvm);
}

/* The feature entries: read once; valid stays 0 where KVM did not answer
 * (then the names are ENOENT). */
static pthread_once_t feat_once = PTHREAD_ONCE_INIT;
static struct {
    int valid;
    uint64_t features, extfeatures, leaf7;
    uint32_t leaf7_edx;
} feat;

/* ORs the registers of @p leaf subleaf 0 in @p t (if any) into @p k. */
static void add(const struct kvm_cpuid2 *t, uint32_t leaf, uint32_t k[4])
{
    for (uint32_t i = 0; t && i < t->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &t->entries[i];
        if (e->function == leaf && e->index == 0) {
            k[0] |= e->eax;
            k[1] |= e->ebx;
            k[2] |= e->ecx;
            k[3] |= e->edx;
            break;
        }
    }
}

/* KVM's (@p sup, @p got) and the CPU's EAX..EDX of @p leaf subleaf 0,
 * ANDed, into @p o. */
static void both(const struct kvm_cpuid2 *sup, const struct kvm_cpuid2 *got,
                 uint32_t leaf, uint32_t o[4])
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    unsigned max = __get_cpuid_max(leaf & 0x80000000u, NULL);
    if (max >= leaf)
        __cpuid_count(leaf, 0, a, b, c, d);
    uint32_t k[4] = {0, 0, 0, 0};
    add(sup, leaf, k);
    add(got, leaf, k);
    o[0] = a & k[0];
    o[1] = b & k[1];
    o[2] = c & k[2];
    o[3] = d & k[3];
}

/* What a vCPU given @p sup reports with KVM_GET_CPUID2 (malloc'd), or
 * NULL. */
static struct kvm_cpuid2 *vcpu_cpuid(int kvm, const struct kvm_cpuid2 *sup)
{
    struct kvm_cpuid2 *got = NULL;
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        return NULL;
    int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (cpu >= 0 && ioctl(cpu, KVM_SET_CPUID2, sup) == 0) {
        size_t n = sup->nent + 64;
        got = calloc(1, sizeof(*got) + n * sizeof(got->entries[0]));
        if (got) {
            got->nent = (uint32_t)n;
            if (ioctl(cpu, KVM_GET_CPUID2, got)) {
                free(got);
                got = NULL;
            }
        }
    }
    if (cpu >= 0)
        close(cpu);
    close(vm);
    return got;
}

static void read_features(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        return;
    struct kvm_cpuid2 *sup = NULL;
    for (uint32_t n = 64; n <= 4096; n *= 2) {
        sup = calloc(1, sizeof(*sup) + n * sizeof(sup->entries[0]));
        if (!sup)
            break;
        sup->nent = n;
        if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, sup) == 0)
            break;
        int e = errno;
        free(sup);
        sup = NULL;
        if (e != E2BIG)
            break;
    }
    struct kvm_cpuid2 *got = sup ? vcpu_cpuid(kvm, sup) : NULL;
    close(kvm);
    if (!sup)
        return;
    uint32_t o[4];
    both(sup, got, 1, o);
    feat.features = (uint64_t)o[2] << 32 | o[3];
    both(sup, got, 0x80000001u, o);
    feat.extfeatures = (uint64_t)o[2] << 32 | o[3];
    both(sup, got, 0x80000007u, o);
    feat.extfeatures = (feat.extfeatures & ~(1ull << 8)) | (o[3] & (1u << 8));
    both(sup, got, 7, o);
    feat.leaf7 = (uint64_t)o[2] << 32 | o[1];
    feat.leaf7_edx = o[3];
    feat.valid = 1;
    free(got);
    free(sup);
}

/* The value of @p name into @p val / @p size, or an errno. */
static int lookup(const char *name, const void **val, size_t *size)
{
    if (strcmp(name, "machdep.tsc.frequency") == 0) {
        pthread_once(&tsc_once, read_tsc_khz);
        if (!tsc_hz)
            return ENOENT;
        *val = &tsc_hz;
        *size = sizeof(tsc_hz);
        return 0;
    }
    static const char *const names[] = {
        "machdep.cpu.feature_bits", "machdep.cpu.extfeature_bits",
        "machdep.cpu.leaf7_feature_bits", "machdep.cpu.leaf7_feature_bits_edx"};
    int i = 0;
    while (i < 4 && strcmp(name, names[i]) != 0)
        i++;
    if (i == 4)
        return ENOENT;
    pthread_once(&feat_once, read_features);
    if (!feat.valid)
        return ENOENT;
    switch (i) {
    case 0: *val = &feat.features; break;
    case 1: *val = &feat.extfeatures; break;
    case 2:
        if (!(uint32_t)feat.leaf7) /* XNU: ENOENT when EBX is 0 */
            return ENOENT;
        *val = &feat.leaf7;
        break;
    default:
        if (!feat.leaf7_edx)
            return ENOENT;
        *val = &feat.leaf7_edx;
        *size = sizeof(feat.leaf7_edx);
        return 0;
    }
    *size = sizeof(uint64_t);
    return 0;
}

__attribute__((visibility("default"))) int
sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp,
             size_t newlen)
{
    if (!name) {
        errno = EINVAL;
        return -1;
    }
    const void *val = NULL;
    size_t size = 0;
    int e = lookup(name, &val, &size);
    if (e) {
        errno = e;
        return -1;
    }
    if (newp || newlen) {
        errno = EPERM;
        return -1;
    }
    if (!oldlenp) {
        errno = EINVAL;
        return -1;
    }
    if (!oldp) { /* asks for the size */
        *oldlenp = size;
        return 0;
    }
    if (*oldlenp < size) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(oldp, val, size);
    *oldlenp = size;
    return 0;
}
