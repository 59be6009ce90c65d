/* Dirty-page tracking by write protection, as a Hypervisor.framework VMM
 * must do it (the framework has no dirty log): a tracked slot is mapped
 * without HV_MEMORY_WRITE (hv_vm_protect); the guest's first write to one
 * of its pages is an EPT violation, which sets the page's bit, gives the
 * page its write permission back and re-enters the guest to redo the
 * write. A fetch hands the bits over and takes the permission of those
 * pages away again. The backend's own writes to guest RAM (string I/O, the
 * emulator's RAM side) set the bits after the copy.
 *
 * Locks: vm->dirty_lock (hvf.h) orders a fault's "set the bit, then allow
 * writes" against a fetch's "take the bits, then forbid writes": without
 * it, a fault could allow writes to a page the fetch had just forbidden,
 * after the fetch took its bit, and the writes that follow would be lost
 * to the next fetch. A write that lands between a fetch taking a bit and
 * forbidding the page is not lost: the caller reads the page after the
 * fetch returns. */
#include "hvf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE 4096ull
#define RWX (HV_MEMORY_READ | HV_MEMORY_WRITE | HV_MEMORY_EXEC)
#define RX (HV_MEMORY_READ | HV_MEMORY_EXEC)

static int protect(uint64_t gpa, uint64_t len, hv_memory_flags_t flags)
{
    hv_return_t ret = hvi_hvf.hv_vm_protect(gpa, (size_t)len, flags);
    if (ret != HV_SUCCESS) {
        char what[96];
        snprintf(what, sizeof(what),
                 "hv_vm_protect(0x%" PRIx64 "+0x%" PRIx64 ", %s)", gpa, len,
                 flags & HV_MEMORY_WRITE ? "RWX" : "RX");
        return hvi_hvf_fail(what, ret);
    }
    return 0;
}

int hvi_hvf_dirty_start(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                        uint64_t length, void *host_addr, uint32_t map_flags,
                        uint32_t mode, uint32_t flags, uint32_t *used)
{
    struct hvi_hvf_vm *vm = vm_priv;
    (void)host_addr;
    (void)flags; /* nothing written before the start is reported anyway */
    if (mode != HVC_DIRTY_AUTO && mode != HVC_DIRTY_BITMAP)
        return hvi_error(-ENOTSUP,
                         "dirty mode 0x%x for slot %u: the hvf backend has "
                         "no dirty ring (HVC_VM_DIRTY_RING), only the "
                         "bitmap of write protection",
                         mode, slot);
    if (map_flags & HVC_BACKEND_MAP_READONLY)
        return hvi_error(-EINVAL, "slot %u is read-only: nothing to track",
                         slot);
    uint64_t words = (length / PAGE + 63) / 64;
    _Atomic uint64_t *bits = calloc(words ? words : 1, sizeof(*bits));
    if (!bits)
        return hvi_error(-ENOMEM, "out of memory tracking slot %u", slot);
    pthread_rwlock_wrlock(&vm->slot_lock);
    pthread_mutex_lock(&vm->dirty_lock);
    int r = 0;
    struct hvi_hvf_slot *s = slot < vm->nr_slots ? &vm->slots[slot] : NULL;
    if (!s || !s->used || s->gpa != guest_addr || s->len != length)
        r = hvi_error(-EINVAL,
                      "slot %u is not mapped at 0x%" PRIx64 "+0x%" PRIx64, slot,
                      guest_addr, length);
    else if (s->dirty)
        r = hvi_error(-EALREADY, "slot %u is tracked already", slot);
    if (r == 0) {
        s->dirty = bits; /* before the protection: a fault finds it */
        if ((r = protect(guest_addr, length, RX)) < 0) {
            s->dirty = NULL;
            (void)protect(guest_addr, length, RWX);
        }
    }
    pthread_mutex_unlock(&vm->dirty_lock);
    pthread_rwlock_unlock(&vm->slot_lock);
    if (r < 0) {
        free(bits);
        return r;
    }
    *used = HVC_DIRTY_BITMAP;
    return 0;
}

int hvi_hvf_dirty_fetch(void *vm_priv, uint32_t slot, uint64_t length,
                        uint64_t *bitmap)
{
    struct hvi_hvf_vm *vm = vm_priv;
    pthread_rwlock_rdlock(&vm->slot_lock);
    pthread_mutex_lock(&vm->dirty_lock);
    int r = 0;
    struct hvi_hvf_slot *s = slot < vm->nr_slots ? &vm->slots[slot] : NULL;
    if (!s || !s->used || !s->dirty) {
        r = hvi_error(-ENOENT, "slot %u is not dirty-logged", slot);
        goto out;
    }
    uint64_t npages = (length < s->len ? length : s->len) / PAGE;
    uint64_t words = (npages + 63) / 64;
    for (uint64_t i = 0; i < words; i++)
        bitmap[i] = atomic_exchange(&s->dirty[i], 0);
    /* Write protection back on the pages reported, a run at a time. */
    for (uint64_t p = 0; p < npages && r == 0;) {
        if (!(bitmap[p / 64] & (1ull << (p % 64)))) {
            p++;
            continue;
        }
        uint64_t q = p + 1;
        while (q < npages && (bitmap[q / 64] & (1ull << (q % 64))))
            q++;
        r = protect(s->gpa + p * PAGE, (q - p) * PAGE, RX);
        p = q;
    }
out:
    pthread_mutex_unlock(&vm->dirty_lock);
    pthread_rwlock_unlock(&vm->slot_lock);
    return r;
}

int hvi_hvf_dirty_stop(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                       uint64_t length, void *host_addr, uint32_t map_flags)
{
    struct hvi_hvf_vm *vm = vm_priv;
    (void)host_addr;
    (void)map_flags;
    pthread_rwlock_wrlock(&vm->slot_lock);
    pthread_mutex_lock(&vm->dirty_lock);
    struct hvi_hvf_slot *s = slot < vm->nr_slots ? &vm->slots[slot] : NULL;
    _Atomic uint64_t *bits = s ? s->dirty : NULL;
    int r = 0;
    if (bits) {
        s->dirty = NULL;
        if (s->used)
            r = protect(guest_addr, length, RWX);
    }
    pthread_mutex_unlock(&vm->dirty_lock);
    pthread_rwlock_unlock(&vm->slot_lock);
    free((void *)bits);
    return r;
}

int hvi_hvf_dirty_fault(struct hvi_hvf_vm *vm, uint64_t gpa)
{
    int r = 0;
    pthread_rwlock_rdlock(&vm->slot_lock);
    for (uint32_t i = 0; i < vm->nr_slots; i++) {
        struct hvi_hvf_slot *s = &vm->slots[i];
        if (!s->used || !s->dirty || gpa < s->gpa || gpa - s->gpa >= s->len)
            continue;
        uint64_t page = (gpa - s->gpa) / PAGE;
        pthread_mutex_lock(&vm->dirty_lock);
        atomic_fetch_or(&s->dirty[page / 64], 1ull << (page % 64));
        r = protect(s->gpa + page * PAGE, PAGE, RWX);
        pthread_mutex_unlock(&vm->dirty_lock);
        if (r == 0)
            r = 1;
        break;
    }
    pthread_rwlock_unlock(&vm->slot_lock);
    return r;
}

void hvi_hvf_dirty_mark(struct hvi_hvf_slot *s, uint64_t gpa, uint64_t len)
{
    if (!s->dirty || !len)
        return;
    for (uint64_t p = (gpa - s->gpa) / PAGE;
         p <= (gpa - s->gpa + len - 1) / PAGE; p++)
        atomic_fetch_or(&s->dirty[p / 64], 1ull << (p % 64));
}
