/* Guest memory regions and the bounds-checked accessors. */
#define _GNU_SOURCE
#include "internal.h"
#include "memory_host.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_MASK ((uint64_t)HVC_PAGE_SIZE - 1)

/* Index of the first region whose end is above gpa (regions are sorted and
 * disjoint). Caller holds mem_lock. */
static size_t lower_bound(hvc_vm *vm, uint64_t gpa)
{
    size_t lo = 0, hi = vm->nr_regions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const hvc_memory_region *r = vm->regions[mid];
        if (r->gpa + r->len <= gpa)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The region holding [gpa, gpa+len) entirely, or NULL. Caller holds
 * mem_lock. */
static hvc_memory_region *lookup(hvc_vm *vm, uint64_t gpa, uint64_t len)
{
    size_t i = lower_bound(vm, gpa);
    if (i == vm->nr_regions)
        return NULL;
    hvc_memory_region *r = vm->regions[i];
    if (gpa < r->gpa || len > r->len || gpa - r->gpa > r->len - len)
        return NULL;
    return r;
}

static int check_options(hvc_vm *vm, const hvc_memory_options *o)
{
    const uint32_t known = HVC_MEMORY_READONLY | HVC_MEMORY_MERGEABLE |
                           HVC_MEMORY_PREFAULT | HVC_MEMORY_HUGETLB |
                           HVC_MEMORY_THP;
    if (o->flags & ~known)
        return hvi_error(-EINVAL, "memory region flags 0x%x have unknown bits",
                         o->flags);
    if (o->length == 0)
        return hvi_error(-EINVAL,
                         "memory region at 0x%" PRIx64 " has zero length",
                         o->guest_addr);
    if ((o->guest_addr | o->length) & PAGE_MASK)
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 "+0x%" PRIx64
                         " is not aligned to %u bytes",
                         o->guest_addr, o->length, HVC_PAGE_SIZE);
    if ((uintptr_t)o->host_addr & PAGE_MASK)
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 ": host address %p is not "
                         "page-aligned",
                         o->guest_addr, o->host_addr);
    if (o->guest_addr >= vm->max_gpa || o->length > vm->max_gpa - o->guest_addr)
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 "+0x%" PRIx64
                         " lies beyond the guest-physical limit 0x%" PRIx64,
                         o->guest_addr, o->length, vm->max_gpa);
    if ((uint64_t)(size_t)o->length != o->length)
        return hvi_error(-EINVAL,
                         "memory region length 0x%" PRIx64
                         " does not fit in host memory",
                         o->length);
    return hvi_memory_host_check(o);
}

static void release(hvc_memory_region *r)
{
    hvi_memory_host_release(r);
    free((void *)r->lib_dirty);
    free(r);
}

int hvc_vm_add_memory(hvc_vm *vm, const hvc_memory_options *opts,
                      hvc_memory_region **out)
{
    if (!vm || !opts)
        return hvi_error(-EINVAL, "hvc_vm_add_memory: NULL %s",
                         vm ? "options" : "VM");
    hvc_memory_options o = HVC_MEMORY_OPTIONS_INIT;
    /* Callers built before the NUMA fields were appended pass the shorter
     * size; they get the defaults. */
    int r = hvi_copy_options(&o, sizeof(o), opts,
                             offsetof(hvc_memory_options, numa_policy),
                             "hvc_memory_options");
    if (r < 0 || (r = check_options(vm, &o)) < 0)
        return r;

    hvc_memory_region *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return hvi_error(-ENOMEM, "out of memory adding a memory region");
    reg->vm = vm;
    reg->gpa = o.guest_addr;
    reg->len = o.length;
    reg->flags = o.flags;
    reg->fd = -1;
    reg->hva = o.host_addr;
    /* Outside the lock: prefaulting a large region takes a while, and the
     * accessors of running vCPUs must not wait for it. */
    if ((r = hvi_memory_host_setup(reg, &o)) < 0) {
        free(reg);
        return r;
    }

    pthread_rwlock_wrlock(&vm->mem_lock);
    size_t pos = lower_bound(vm, reg->gpa);
    if (pos < vm->nr_regions && vm->regions[pos]->gpa < reg->gpa + reg->len) {
        const hvc_memory_region *o2 = vm->regions[pos];
        r = hvi_error(-EEXIST,
                      "memory region 0x%" PRIx64 "+0x%" PRIx64
                      " overlaps region 0x%" PRIx64 "+0x%" PRIx64,
                      reg->gpa, reg->len, o2->gpa, o2->len);
        goto fail;
    }
    uint32_t slot = 0;
    while (slot < vm->max_slots && vm->slot_used[slot])
        slot++;
    if (slot == vm->max_slots) {
        r = hvi_error(-ENOSPC,
                      "memory region 0x%" PRIx64 "+0x%" PRIx64
                      ": all %u memory slots are in use",
                      reg->gpa, reg->len, vm->max_slots);
        goto fail;
    }
    reg->slot = slot;
    hvc_memory_region **grown =
        realloc(vm->regions, (vm->nr_regions + 1) * sizeof(*grown));
    if (!grown) {
        r = hvi_error(-ENOMEM, "out of memory adding a memory region");
        goto fail;
    }
    vm->regions = grown;
    r = vm->ops->vm_map_memory(
        vm->priv, slot, reg->gpa, reg->len, reg->hva,
        (reg->flags & HVC_MEMORY_READONLY) ? HVC_BACKEND_MAP_READONLY : 0);
    if (r < 0)
        goto fail;
    memmove(&vm->regions[pos + 1], &vm->regions[pos],
            (vm->nr_regions - pos) * sizeof(*vm->regions));
    vm->regions[pos] = reg;
    vm->nr_regions++;
    vm->slot_used[slot] = 1;
    pthread_rwlock_unlock(&vm->mem_lock);
    if (out)
        *out = reg;
    return 0;
fail:
    pthread_rwlock_unlock(&vm->mem_lock);
    release(reg);
    return r;
}

int hvc_vm_remove_memory(hvc_vm *vm, hvc_memory_region *region)
{
    if (!vm || !region)
        return hvi_error(-EINVAL, "hvc_vm_remove_memory: NULL %s",
                         vm ? "region" : "VM");
    /* Like a device not attached to this VM: not found here. */
    if (region->vm != vm)
        return hvi_error(-ENOENT,
                         "memory region 0x%" PRIx64 " belongs to another VM",
                         region->gpa);
    if (atomic_load(&vm->postcopy_active))
        return hvi_error(-EBUSY,
                         "memory region 0x%" PRIx64 " cannot be removed "
                         "while post-copy migration fills guest memory",
                         region->gpa);
    pthread_rwlock_wrlock(&vm->mem_lock);
    size_t pos = lower_bound(vm, region->gpa);
    if (pos == vm->nr_regions || vm->regions[pos] != region) {
        pthread_rwlock_unlock(&vm->mem_lock);
        return hvi_error(-ENOENT, "memory region %p is not in this VM",
                         (void *)region);
    }
    hvi_dirty_drop(region);
    int r = vm->ops->vm_unmap_memory(vm->priv, region->slot, region->gpa,
                                     region->len);
    if (r < 0) {
        pthread_rwlock_unlock(&vm->mem_lock);
        return r;
    }
    memmove(&vm->regions[pos], &vm->regions[pos + 1],
            (vm->nr_regions - pos - 1) * sizeof(*vm->regions));
    vm->nr_regions--;
    vm->slot_used[region->slot] = 0;
    pthread_rwlock_unlock(&vm->mem_lock);
    release(region);
    return 0;
}

void hvi_memory_free_all(hvc_vm *vm)
{
    /* The backend VM is destroyed right after, which drops its slots. */
    for (size_t i = 0; i < vm->nr_regions; i++)
        release(vm->regions[i]);
    free(vm->regions);
    vm->regions = NULL;
    vm->nr_regions = 0;
}

uint64_t hvi_memory_top(hvc_vm *vm)
{
    pthread_rwlock_rdlock(&vm->mem_lock);
    uint64_t top = 0;
    if (vm->nr_regions) {
        const hvc_memory_region *r = vm->regions[vm->nr_regions - 1];
        top = r->gpa + r->len;
    }
    pthread_rwlock_unlock(&vm->mem_lock);
    return top;
}

size_t hvi_memory_count(hvc_vm *vm)
{
    pthread_rwlock_rdlock(&vm->mem_lock);
    size_t n = vm->nr_regions;
    pthread_rwlock_unlock(&vm->mem_lock);
    return n;
}

int hvc_vm_find_memory(hvc_vm *vm, uint64_t guest_addr, hvc_memory_region **out)
{
    if (!vm || !out)
        return hvi_error(-EINVAL, "hvc_vm_find_memory: NULL argument");
    pthread_rwlock_rdlock(&vm->mem_lock);
    hvc_memory_region *r = lookup(vm, guest_addr, 1);
    pthread_rwlock_unlock(&vm->mem_lock);
    if (!r)
        return hvi_error(-ENOENT, "no memory region contains 0x%" PRIx64,
                         guest_addr);
    *out = r;
    return 0;
}

int hvi_memory_snapshot(hvc_vm *vm, hvc_memory_region ***out, size_t *count)
{
    pthread_rwlock_rdlock(&vm->mem_lock);
    size_t n = vm->nr_regions;
    hvc_memory_region **r = calloc(n ? n : 1, sizeof(*r));
    if (r && n)
        memcpy(r, vm->regions, n * sizeof(*r));
    pthread_rwlock_unlock(&vm->mem_lock);
    if (!r)
        return hvi_error(-ENOMEM, "out of memory listing memory regions");
    *out = r;
    *count = n;
    return 0;
}

int hvc_vm_list_memory(hvc_vm *vm, hvc_memory_region **out, size_t capacity,
                       size_t *count)
{
    if (!vm || !count || (capacity && !out))
        return hvi_error(-EINVAL, "hvc_vm_list_memory: NULL argument");
    pthread_rwlock_rdlock(&vm->mem_lock);
    for (size_t i = 0; i < vm->nr_regions && i < capacity; i++)
        out[i] = vm->regions[i];
    *count = vm->nr_regions;
    pthread_rwlock_unlock(&vm->mem_lock);
    return 0;
}

uint64_t hvc_memory_region_guest_addr(const hvc_memory_region *r)
{
    return r ? r->gpa : 0;
}

uint64_t hvc_memory_region_length(const hvc_memory_region *r)
{
    return r ? r->len : 0;
}

void *hvc_memory_region_hva(const hvc_memory_region *r)
{
    return r ? r->hva : NULL;
}

uint32_t hvc_memory_region_flags(const hvc_memory_region *r)
{
    return r ? r->flags : 0;
}

int hvc_memory_region_fd(const hvc_memory_region *r)
{
    return r ? r->fd : -1;
}

/* An access must lie inside one region: two adjacent regions may be backed
 * by unrelated host mappings, and a guest address that runs into a hole
 * must fail as a whole. Caller holds mem_lock. */
static hvc_memory_region *resolve(hvc_vm *vm, const char *what, uint64_t gpa,
                                  size_t len, uint8_t **hva)
{
    hvc_memory_region *r = lookup(vm, gpa, len);
    if (!r) {
        hvi_error(-EFAULT,
                  "%s of 0x%zx bytes at guest address 0x%" PRIx64
                  " is not inside one memory region",
                  what, len, gpa);
        return NULL;
    }
    *hva = r->hva + (gpa - r->gpa);
    return r;
}

int hvc_vm_read(hvc_vm *vm, uint64_t guest_addr, void *buf, size_t length)
{
    if (!vm || (!buf && length))
        return hvi_error(-EINVAL, "hvc_vm_read: NULL argument");
    if (length == 0)
        return 0;
    int pc = hvi_postcopy_fetch(vm, guest_addr, length);
    if (pc < 0)
        return pc;
    pthread_rwlock_rdlock(&vm->mem_lock);
    uint8_t *p = NULL;
    hvc_memory_region *reg = resolve(vm, "read", guest_addr, length, &p);
    if (reg)
        memcpy(buf, p, length);
    pthread_rwlock_unlock(&vm->mem_lock);
    return reg ? 0 : -EFAULT;
}

int hvc_vm_write(hvc_vm *vm, uint64_t guest_addr, const void *buf,
                 size_t length)
{
    if (!vm || (!buf && length))
        return hvi_error(-EINVAL, "hvc_vm_write: NULL argument");
    if (length == 0)
        return 0;
    int pc = hvi_postcopy_fetch(vm, guest_addr, length);
    if (pc < 0)
        return pc;
    pthread_rwlock_rdlock(&vm->mem_lock);
    uint8_t *p = NULL;
    hvc_memory_region *reg = resolve(vm, "write", guest_addr, length, &p);
    if (reg) {
        memcpy(p, buf, length);
        /* After the copy: a fetch that takes the mark copies the page
         * after it, so it sees these bytes. */
        hvi_dirty_mark(reg, guest_addr, length);
    }
    pthread_rwlock_unlock(&vm->mem_lock);
    return reg ? 0 : -EFAULT;
}

static int translate(hvc_vm *vm, uint64_t guest_addr, size_t length, void **out,
                     bool wait)
{
    if (!vm || !out)
        return hvi_error(-EINVAL, "hvc_vm_gpa_to_hva: NULL argument");
    if (length == 0)
        return hvi_error(-EINVAL,
                         "hvc_vm_gpa_to_hva(0x%" PRIx64 "): zero length",
                         guest_addr);
    int pc = wait ? hvi_postcopy_fetch(vm, guest_addr, length) : 0;
    if (pc < 0)
        return pc;
    pthread_rwlock_rdlock(&vm->mem_lock);
    uint8_t *p = NULL;
    hvc_memory_region *reg = resolve(vm, "translation", guest_addr, length, &p);
    pthread_rwlock_unlock(&vm->mem_lock);
    if (!reg)
        return -EFAULT;
    *out = p;
    return 0;
}

int hvc_vm_gpa_to_hva(hvc_vm *vm, uint64_t guest_addr, size_t length,
                      void **out)
{
    return translate(vm, guest_addr, length, out, true);
}

int hvi_vm_gpa_to_hva_nowait(hvc_vm *vm, uint64_t guest_addr, size_t length,
                             void **out)
{
    return translate(vm, guest_addr, length, out, false);
}

int hvc_vm_mark_dirty(hvc_vm *vm, uint64_t guest_addr, size_t length)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_mark_dirty: NULL VM");
    if (length == 0)
        return 0;
    pthread_rwlock_rdlock(&vm->mem_lock);
    uint8_t *p = NULL;
    hvc_memory_region *reg = resolve(vm, "dirty mark", guest_addr, length, &p);
    if (reg)
        hvi_dirty_mark(reg, guest_addr, length);
    pthread_rwlock_unlock(&vm->mem_lock);
    return reg ? 0 : -EFAULT;
}
