/* tests/hvf_host: RDMSR/WRMSR exit for every MSR but those enabled with
 * hv_vcpu_enable_native_msr(): KVM_CAP_X86_USER_SPACE_MSR (filter, unknown
 * and invalid MSRs exit to userspace) and a default-deny
 * KVM_X86_SET_MSR_FILTER allowing the native ones. KVM's filter is per VM:
 * an MSR one vCPU enabled is native on all of them. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static int cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The filter is applied before the next KVM_RUN of any vCPU, not at each
 * hv_vcpu_enable_native_msr(): KVM_X86_SET_MSR_FILTER waits for an SRCU
 * grace period (~3 ms here), and a new vCPU enables a dozen MSRs, most of
 * them native already (the filter is the union). Guest accesses are the
 * only ones it filters, so applying it at the entry changes nothing a
 * guest sees. Under hvfh_vm_lock; hvfh_vm.msr_filter_set (0 for a new VM)
 * says `applied` is this VM's. */
static uint32_t want[HVFH_MAX_VCPUS * HVFH_NATIVE_MAX];
static uint32_t applied[HVFH_MAX_VCPUS * HVFH_NATIVE_MAX];
static size_t n_want, n_applied;
static atomic_int dirty;

/* KVM's filter for the sorted @p all; -1 when it needs too many ranges. */
static int build(const uint32_t *all, size_t n, struct kvm_msr_filter *f,
                 uint64_t *bitmaps)
{
    memset(f, 0, sizeof(*f));
    memset(bitmaps, 0, KVM_MSR_FILTER_MAX_RANGES * sizeof(*bitmaps));
    f->flags = KVM_MSR_FILTER_DEFAULT_DENY;
    unsigned nr = 0;
    for (size_t i = 0; i < n; i++) {
        struct kvm_msr_filter_range *r = nr ? &f->ranges[nr - 1] : NULL;
        if (r && all[i] - r->base < 64) {
            bitmaps[nr - 1] |= 1ull << (all[i] - r->base);
            r->nmsrs = all[i] - r->base + 1;
            continue;
        }
        if (nr == KVM_MSR_FILTER_MAX_RANGES)
            return -1;
        r = &f->ranges[nr];
        r->flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
        r->base = all[i];
        r->nmsrs = 1;
        bitmaps[nr] = 1;
        r->bitmap = (uint8_t *)&bitmaps[nr];
        nr++;
    }
    if (!nr) { /* KVM wants a range with a default-deny filter */
        f->ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
        f->ranges[0].base = 0;
        f->ranges[0].nmsrs = 1;
        bitmaps[0] = 0;
        f->ranges[0].bitmap = (uint8_t *)&bitmaps[0];
    }
    return 0;
}

int hvfh_msr_filter(struct hvfh_vcpu *unused)
{
    (void)unused;
    uint32_t all[HVFH_MAX_VCPUS * HVFH_NATIVE_MAX];
    size_t n = 0;
    pthread_mutex_lock(&hvfh_vm_lock);
    if (!hvfh_vm.user_msr) {
        pthread_mutex_unlock(&hvfh_vm_lock);
        return -1;
    }
    for (int i = 0; i < HVFH_MAX_VCPUS; i++) {
        struct hvfh_vcpu *v = hvfh_vm.vcpus[i];
        for (int k = 0; v && k < v->n_native; k++)
            all[n++] = v->native_msrs[k];
    }
    qsort(all, n, sizeof(all[0]), cmp);
    struct kvm_msr_filter f;
    uint64_t bitmaps[KVM_MSR_FILTER_MAX_RANGES];
    int ret = build(all, n, &f, bitmaps); /* refused now, as before */
    if (!ret) {
        memcpy(want, all, n * sizeof(all[0]));
        n_want = n;
        if (!hvfh_vm.msr_filter_set || n_want != n_applied ||
            memcmp(want, applied, n * sizeof(all[0])))
            atomic_store(&dirty, 1);
    }
    pthread_mutex_unlock(&hvfh_vm_lock);
    return ret;
}

int hvfh_msr_filter_apply(void)
{
    if (!atomic_load(&dirty))
        return 0;
    int ret = 0;
    pthread_mutex_lock(&hvfh_vm_lock);
    if (atomic_load(&dirty)) {
        struct kvm_msr_filter f;
        static uint64_t bitmaps[KVM_MSR_FILTER_MAX_RANGES];
        ret = build(want, n_want, &f, bitmaps);
        if (!ret && ioctl(hvfh_vm.vm_fd, KVM_X86_SET_MSR_FILTER, &f))
            ret = -1;
        if (!ret) {
            memcpy(applied, want, n_want * sizeof(want[0]));
            n_applied = n_want;
            hvfh_vm.msr_filter_set = 1;
            atomic_store(&dirty, 0);
        }
    }
    pthread_mutex_unlock(&hvfh_vm_lock);
    return ret;
}
