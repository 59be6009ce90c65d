/* Dirty-page tracking of memory regions: the public calls, the library's
 * own writes, and the first fetch's promise (every page unless asked
 * otherwise), over the backend's vm_dirty_* ops. */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static size_t region_words(const hvc_memory_region *r)
{
    uint64_t pages = r->len / HVC_PAGE_SIZE;
    return (size_t)((pages + 63) / 64);
}

size_t hvc_memory_dirty_bitmap_size(const hvc_memory_region *r)
{
    return r ? region_words(r) * sizeof(uint64_t) : 0;
}

uint32_t hvc_memory_dirty_mode(const hvc_memory_region *r)
{
    if (!r)
        return 0;
    pthread_rwlock_rdlock(&r->vm->mem_lock);
    uint32_t m = r->dirty_mode;
    pthread_rwlock_unlock(&r->vm->mem_lock);
    return m;
}

/* Sets the bits of pages first..last (inclusive). */
static void set_pages(_Atomic uint64_t *bits, uint64_t first, uint64_t last)
{
    for (uint64_t p = first; p <= last;) {
        uint64_t w = p / 64, bit = p % 64;
        uint64_t n = 64 - bit;
        if (n > last - p + 1)
            n = last - p + 1;
        uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
        if ((atomic_load_explicit(&bits[w], memory_order_relaxed) & mask) !=
            mask)
            atomic_fetch_or_explicit(&bits[w], mask, memory_order_release);
        p += n;
    }
}

void hvi_dirty_mark(hvc_memory_region *r, uint64_t gpa, uint64_t len)
{
    _Atomic uint64_t *bits = r->lib_dirty;
    if (!bits || len == 0)
        return;
    set_pages(bits, (gpa - r->gpa) / HVC_PAGE_SIZE,
              (gpa - r->gpa + len - 1) / HVC_PAGE_SIZE);
}

/* Finds @p r in its VM's map. Caller holds mem_lock. */
static bool present(hvc_vm *vm, const hvc_memory_region *r)
{
    for (size_t i = 0; i < vm->nr_regions; i++)
        if (vm->regions[i] == r)
            return true;
    return false;
}

static uint32_t map_flags(const hvc_memory_region *r)
{
    return (r->flags & HVC_MEMORY_READONLY) ? HVC_BACKEND_MAP_READONLY : 0;
}

int hvc_memory_dirty_start(hvc_memory_region *r, const hvc_dirty_options *opts)
{
    if (!r)
        return hvi_error(-EINVAL, "hvc_memory_dirty_start: NULL region");
    hvc_dirty_options o = HVC_DIRTY_OPTIONS_INIT;
    if (opts) {
        int e = hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                                 "hvc_dirty_options");
        if (e < 0)
            return e;
    }
    if (o.mode != HVC_DIRTY_AUTO && o.mode != HVC_DIRTY_BITMAP &&
        o.mode != HVC_DIRTY_RING)
        return hvi_error(-EINVAL,
                         "hvc_dirty_options.mode %u is not AUTO (0), "
                         "BITMAP (1) or RING (2)",
                         o.mode);
    if (o.flags & ~(uint32_t)HVC_DIRTY_START_CLEAN)
        return hvi_error(-EINVAL,
                         "hvc_dirty_options.flags 0x%x has unknown "
                         "bits",
                         o.flags);
    if (r->flags & HVC_MEMORY_READONLY)
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 " is read-only: the guest "
                         "cannot dirty it",
                         r->gpa);
    hvc_vm *vm = r->vm;
    if (!vm->ops->vm_dirty_start)
        return hvi_error(-ENOTSUP, "backend %s cannot track dirty pages",
                         vm->ops->name);

    size_t words = region_words(r);
    _Atomic uint64_t *bits = calloc(words, sizeof(*bits));
    if (!bits)
        return hvi_error(-ENOMEM,
                         "out of memory for the dirty bitmap of "
                         "memory region 0x%" PRIx64,
                         r->gpa);

    pthread_rwlock_wrlock(&vm->mem_lock);
    int e = 0;
    if (!present(vm, r)) {
        e = hvi_error(-EINVAL, "memory region %p is not in its VM", (void *)r);
        goto out;
    }
    if (r->dirty_mode) {
        e = hvi_error(-EALREADY,
                      "memory region 0x%" PRIx64 "+0x%" PRIx64
                      " is tracked already (mode 0x%x)",
                      r->gpa, r->len, r->dirty_mode);
        goto out;
    }
    uint32_t used = 0;
    uint32_t bflags =
        (o.flags & HVC_DIRTY_START_CLEAN) ? HVC_BACKEND_DIRTY_CLEAN : 0;
    e = vm->ops->vm_dirty_start(vm->priv, r->slot, r->gpa, r->len, r->hva,
                                map_flags(r), o.mode, bflags, &used);
    if (e < 0)
        goto out;
    /* Every page in the first fetch, whatever the backend does: a copy
     * that begins with tracking has to copy everything once. */
    if (!(o.flags & HVC_DIRTY_START_CLEAN) && !(used & HVC_DIRTY_INITIALLY_SET))
        set_pages(bits, 0, r->len / HVC_PAGE_SIZE - 1);
    r->lib_dirty = bits;
    r->dirty_mode = used;
    bits = NULL;
out:
    pthread_rwlock_unlock(&vm->mem_lock);
    free((void *)bits);
    return e;
}

int hvc_memory_dirty_fetch(hvc_memory_region *r, uint64_t *bitmap,
                           size_t bitmap_bytes, uint64_t *dirty_count)
{
    if (!r || !bitmap)
        return hvi_error(-EINVAL, "hvc_memory_dirty_fetch: NULL %s",
                         r ? "bitmap" : "region");
    size_t words = region_words(r);
    if (bitmap_bytes < words * sizeof(uint64_t))
        return hvi_error(-EINVAL,
                         "dirty bitmap of %zu bytes is too small for memory "
                         "region 0x%" PRIx64 "+0x%" PRIx64
                         ": it needs %zu (one bit per page, whole 64-bit "
                         "words)",
                         bitmap_bytes, r->gpa, r->len,
                         words * sizeof(uint64_t));
    hvc_vm *vm = r->vm;
    pthread_rwlock_rdlock(&vm->mem_lock);
    pthread_mutex_lock(&vm->dirty_lock);
    int e = 0;
    if (!r->dirty_mode) {
        e = hvi_error(-ENOENT,
                      "memory region 0x%" PRIx64 "+0x%" PRIx64
                      " is not tracked (hvc_memory_dirty_start first)",
                      r->gpa, r->len);
        goto out;
    }
    memset(bitmap, 0, words * sizeof(uint64_t));
    e = vm->ops->vm_dirty_fetch(vm->priv, r->slot, r->len, bitmap);
    if (e < 0) {
        /* The backend may have re-armed some of them: report them next
         * time. */
        for (size_t i = 0; i < words; i++)
            if (bitmap[i])
                atomic_fetch_or(&r->lib_dirty[i], bitmap[i]);
        goto out;
    }
    /* The backend cleared what it reported; the library's marks are
     * taken now, so a write marked after this point is in the next fetch.
     */
    uint64_t count = 0;
    for (size_t i = 0; i < words; i++) {
        if (atomic_load_explicit(&r->lib_dirty[i], memory_order_relaxed))
            bitmap[i] |= atomic_exchange_explicit(&r->lib_dirty[i], 0,
                                                  memory_order_acquire);
    }
    uint64_t pages = r->len / HVC_PAGE_SIZE;
    if (pages % 64)
        bitmap[words - 1] &= (1ull << (pages % 64)) - 1;
    for (size_t i = 0; i < words; i++)
        count += (uint64_t)__builtin_popcountll(bitmap[i]);
    if (dirty_count)
        *dirty_count = count;
out:
    pthread_mutex_unlock(&vm->dirty_lock);
    pthread_rwlock_unlock(&vm->mem_lock);
    return e;
}

/* Caller holds mem_lock for writing. */
static int stop_locked(hvc_memory_region *r)
{
    hvc_vm *vm = r->vm;
    int e = vm->ops->vm_dirty_stop(vm->priv, r->slot, r->gpa, r->len, r->hva,
                                   map_flags(r));
    if (e < 0)
        return e;
    free((void *)r->lib_dirty);
    r->lib_dirty = NULL;
    r->dirty_mode = 0;
    return 0;
}

int hvc_memory_dirty_stop(hvc_memory_region *r)
{
    if (!r)
        return hvi_error(-EINVAL, "hvc_memory_dirty_stop: NULL region");
    hvc_vm *vm = r->vm;
    pthread_rwlock_wrlock(&vm->mem_lock);
    int e = 0;
    if (!r->dirty_mode)
        e = hvi_error(
            -ENOENT, "memory region 0x%" PRIx64 "+0x%" PRIx64 " is not tracked",
            r->gpa, r->len);
    else
        e = stop_locked(r);
    pthread_rwlock_unlock(&vm->mem_lock);
    return e;
}

void hvi_dirty_drop(hvc_memory_region *r)
{
    /* The slot goes next, and with it the backend's log; a failure to stop
     * first changes nothing the caller could act on. */
    if (r->dirty_mode && stop_locked(r) < 0) {
        free((void *)r->lib_dirty);
        r->lib_dirty = NULL;
        r->dirty_mode = 0;
    }
}
