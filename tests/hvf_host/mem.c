/* tests/hvf_host: guest-physical ranges (hv_vm_map/unmap/protect). Each
 * range is one KVM memslot (none without read access), kept sorted by
 * address; unmap and protect split ranges, and neighbours that become
 * compatible again (contiguous in guest and host, same rights) are merged,
 * so protecting pages one by one and back does not exhaust memslots.
 * Replacing a memslot leaves a moment without one; no vCPU may be in the
 * guest then (a page walk or fetch there would fault): every vCPU is
 * kicked out of KVM_RUN and kept out (run_lock) meanwhile. Should an
 * access still reach run.c as MMIO on memory the ranges allow, it is done
 * there on the memory (hvfh_ram_access), unseen by the backend. All under
 * hvfh_vm_lock, then run_lock. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_RANGES 8192

static int slot_alloc(void)
{
    for (int i = 0; i < hvfh_vm.nr_slots; i++)
        if (!hvfh_vm.slot_used[i]) {
            hvfh_vm.slot_used[i] = 1;
            return i;
        }
    return -1;
}

static int free_slots(void)
{
    int n = 0;
    for (int i = 0; i < hvfh_vm.nr_slots; i++)
        n += !hvfh_vm.slot_used[i];
    return n;
}

/* Gives range r its KVM memslot (none when it has no read access). */
static int range_install(struct hvfh_range *r)
{
    r->slot = -1;
    if (!(r->flags & HV_MEMORY_READ))
        return 0;
    int s = slot_alloc();
    if (s < 0)
        return -ENOSPC;
    struct kvm_userspace_memory_region m = {
        .slot = (uint32_t)s,
        .flags = (r->flags & HV_MEMORY_WRITE) ? 0 : KVM_MEM_READONLY,
        .guest_phys_addr = r->gpa,
        .memory_size = r->size,
        .userspace_addr = r->uva};
    if (ioctl(hvfh_vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &m)) {
        hvfh_vm.slot_used[s] = 0;
        return -errno;
    }
    r->slot = s;
    return 0;
}

static void slot_remove(int slot)
{
    if (slot < 0)
        return;
    struct kvm_userspace_memory_region m = {.slot = (uint32_t)slot};
    ioctl(hvfh_vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &m);
    hvfh_vm.slot_used[slot] = 0;
}

static int aligned(uint64_t gpa, uint64_t size)
{
    return size && !(gpa % HVFH_PAGE) && !(size % HVFH_PAGE) &&
           gpa + size > gpa;
}

static int valid_flags(hv_memory_flags_t flags)
{
    return !(flags &
             ~(uint64_t)(HV_MEMORY_READ | HV_MEMORY_WRITE | HV_MEMORY_EXEC));
}

int hvfh_mem_init(void)
{
    int n = ioctl(hvfh_vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
    hvfh_vm.nr_slots = n > 0 && n < MAX_RANGES ? n : MAX_RANGES;
    hvfh_vm.slot_used = calloc((size_t)hvfh_vm.nr_slots, 1);
    hvfh_vm.ranges = NULL;
    hvfh_vm.n_ranges = 0;
    return hvfh_vm.slot_used ? 0 : -ENOMEM;
}

void hvfh_mem_fini(void)
{
    free(hvfh_vm.slot_used);
    free(hvfh_vm.ranges);
    hvfh_vm.slot_used = NULL;
    hvfh_vm.ranges = NULL;
    hvfh_vm.n_ranges = 0;
}

hv_return_t hv_vm_map(hv_uvaddr_t uva, hv_gpaddr_t gpa, size_t size,
                      hv_memory_flags_t flags)
{
    if (!aligned(gpa, size) || ((uintptr_t)uva % HVFH_PAGE) || !uva ||
        !valid_flags(flags))
        return HV_BAD_ARGUMENT;
    pthread_mutex_lock(&hvfh_vm_lock);
    hv_return_t ret = HV_SUCCESS;
    int at = 0;
    if (!hvfh_vm.created) {
        ret = HV_BAD_ARGUMENT;
        goto out;
    }
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[i];
        if (gpa < r->gpa + r->size && r->gpa < gpa + size) {
            ret = HV_ERROR; /* overlaps a mapped range */
            goto out;
        }
        if (r->gpa < gpa)
            at = i + 1;
    }
    struct hvfh_range *n =
        realloc(hvfh_vm.ranges, sizeof(*n) * (size_t)(hvfh_vm.n_ranges + 1));
    if (hvfh_vm.n_ranges >= MAX_RANGES || !n) {
        if (n)
            hvfh_vm.ranges = n;
        ret = HV_NO_RESOURCES;
        goto out;
    }
    hvfh_vm.ranges = n;
    struct hvfh_range r = {gpa, size, (uint64_t)(uintptr_t)uva, flags, -1};
    if (range_install(&r)) {
        ret = HV_NO_RESOURCES;
        goto out;
    }
    memmove(&n[at + 1], &n[at], sizeof(*n) * (size_t)(hvfh_vm.n_ranges - at));
    n[at] = r;
    hvfh_vm.n_ranges++;
out:
    pthread_mutex_unlock(&hvfh_vm_lock);
    return ret;
}

/* Applies `flags` (or removal, when unmap) to [gpa, gpa+size): every page
 * in it must be mapped. Checked in full before anything changes. */
static hv_return_t reshape(uint64_t gpa, uint64_t size, int unmap,
                           hv_memory_flags_t flags)
{
    if (!aligned(gpa, size))
        return HV_BAD_ARGUMENT;
    pthread_mutex_lock(&hvfh_vm_lock);
    hv_return_t ret = HV_SUCCESS;
    struct hvfh_range *nl = NULL;
    int *old = NULL;
    uint64_t covered = 0;
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[i];
        uint64_t lo = r->gpa > gpa ? r->gpa : gpa;
        uint64_t hi =
            r->gpa + r->size < gpa + size ? r->gpa + r->size : gpa + size;
        if (lo < hi)
            covered += hi - lo;
    }
    if (!hvfh_vm.created || covered != size) {
        ret = HV_BAD_ARGUMENT;
        goto out;
    }
    size_t cap = (size_t)hvfh_vm.n_ranges + 2;
    nl = malloc(sizeof(*nl) * cap);
    old = malloc(sizeof(*old) * cap);
    if (!nl || !old) {
        ret = HV_NO_RESOURCES;
        goto out;
    }
    int n = 0, n_old = 0;
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range r = hvfh_vm.ranges[i];
        if (!(gpa < r.gpa + r.size && r.gpa < gpa + size)) {
            nl[n++] = r;
            continue;
        }
        old[n_old++] = r.slot;
        uint64_t lo = r.gpa > gpa ? r.gpa : gpa;
        uint64_t hi = r.gpa + r.size < gpa + size ? r.gpa + r.size : gpa + size;
        if (r.gpa < lo)
            nl[n++] =
                (struct hvfh_range){r.gpa, lo - r.gpa, r.uva, r.flags, -1};
        if (!unmap)
            nl[n++] = (struct hvfh_range){lo, hi - lo, r.uva + (lo - r.gpa),
                                          flags, -1};
        if (hi < r.gpa + r.size)
            nl[n++] = (struct hvfh_range){hi, r.gpa + r.size - hi,
                                          r.uva + (hi - r.gpa), r.flags, -1};
    }
    /* merge neighbours that are one range again */
    int m = 0;
    for (int i = 0; i < n; i++) {
        struct hvfh_range *p = m ? &nl[m - 1] : NULL;
        if (p && p->gpa + p->size == nl[i].gpa &&
            p->uva + p->size == nl[i].uva && p->flags == nl[i].flags) {
            if (p->slot >= 0)
                old[n_old++] = p->slot;
            if (nl[i].slot >= 0)
                old[n_old++] = nl[i].slot;
            p->size += nl[i].size;
            p->slot = -1;
            continue;
        }
        nl[m++] = nl[i];
    }
    n = m;
    int need = 0, freed = 0;
    for (int i = 0; i < n; i++)
        need += nl[i].slot < 0 && (nl[i].flags & HV_MEMORY_READ);
    for (int i = 0; i < n_old; i++)
        freed += old[i] >= 0;
    if (n > MAX_RANGES || need > free_slots() + freed) {
        ret = HV_NO_RESOURCES; /* nothing changed */
        goto out;
    }
    /* no vCPU in the guest while memory that stays mapped has no slot:
     * kick them all out of KVM_RUN and keep them out */
    atomic_store(&hvfh_vm.memop, 1);
    for (int i = 0; i < HVFH_MAX_VCPUS; i++) {
        struct hvfh_vcpu *v = hvfh_vm.vcpus[i];
        if (!v)
            continue;
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_tgkill, getpid(), v->tid, hvfh_kick_signal());
    }
    pthread_rwlock_wrlock(&hvfh_vm.run_lock);
    for (int i = 0; i < n_old; i++)
        slot_remove(old[i]);
    for (int i = 0; i < n; i++)
        if (nl[i].slot < 0 && range_install(&nl[i]))
            ret = HV_ERROR; /* KVM refused a slot it had a moment ago */
    atomic_store(&hvfh_vm.memop, 0);
    pthread_rwlock_unlock(&hvfh_vm.run_lock);
    free(hvfh_vm.ranges);
    hvfh_vm.ranges = nl;
    hvfh_vm.n_ranges = n;
    nl = NULL;
out:
    free(nl);
    free(old);
    pthread_mutex_unlock(&hvfh_vm_lock);
    return ret;
}

hv_return_t hv_vm_unmap(hv_gpaddr_t gpa, size_t size)
{
    return reshape(gpa, size, 1, 0);
}

hv_return_t hv_vm_protect(hv_gpaddr_t gpa, size_t size, hv_memory_flags_t flags)
{
    if (!valid_flags(flags))
        return HV_BAD_ARGUMENT;
    return reshape(gpa, size, 0, flags);
}

/* The access rights of gpa's page as EPT bits 2:0 (0 when unmapped). */
unsigned hvfh_gpa_rights(uint64_t gpa)
{
    unsigned rights = 0;
    pthread_mutex_lock(&hvfh_vm_lock);
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[i];
        if (gpa >= r->gpa && gpa < r->gpa + r->size)
            rights = (unsigned)(r->flags & 7);
    }
    pthread_mutex_unlock(&hvfh_vm_lock);
    return rights;
}

/* Does an access KVM reported as MMIO on memory the ranges allow (a vCPU
 * that ran into the gap while memslots were replaced); 0 done, -1 when the
 * ranges do not allow it (a real EPT violation). */
int hvfh_ram_access(uint64_t gpa, void *buf, size_t len, int write)
{
    int done = -1;
    pthread_mutex_lock(&hvfh_vm_lock);
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[i];
        unsigned need = write ? HV_MEMORY_WRITE : HV_MEMORY_READ;
        if (gpa >= r->gpa && gpa + len <= r->gpa + r->size &&
            (r->flags & need) == need) {
            void *h = (void *)(uintptr_t)(r->uva + (gpa - r->gpa));
            if (write)
                memcpy(h, buf, len);
            else
                memcpy(buf, h, len);
            done = 0;
        }
    }
    pthread_mutex_unlock(&hvfh_vm_lock);
    return done;
}
