/* Dirty logging by write protection, as Apple's API allows: the framework
 * has no dirty log, so a logged slot is mapped without HV_MEMORY_WRITE
 * (hv_vm_protect); a guest write to it is an EPT violation, which marks
 * the page in the slot's bitmap and makes that page writable again, and
 * the guest retries the write. A fetch takes the bitmap and protects the
 * pages it held again. Writes the backend makes itself (the MMIO
 * emulator's RAM side, INS) mark their pages too.
 *
 * Ordering: marking (a fault, or the backend's write) and a fetch hold
 * dirty_lock, so a page's bit and its protection change together. A write
 * the guest makes to a page still writable while the fetch protects it
 * lands before the protection (and the caller copies the page after the
 * fetch that reports it) or faults after it (and is in the next fetch).
 *
 * Only the bitmap mode (HVC_DIRTY_BITMAP): pages written before the start
 * are not reported (the core marks them itself). */
#include "hvf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096ull

static hv_memory_flags_t rights(const struct hvi_hvf_slot *s, bool writable)
{
    hv_memory_flags_t f = HV_MEMORY_READ | HV_MEMORY_EXEC;
    return writable && !s->readonly ? f | HV_MEMORY_WRITE : f;
}

static int protect(uint64_t gpa, uint64_t len, hv_memory_flags_t f)
{
    hv_return_t r = hvi_hvf.hv_vm_protect(gpa, (size_t)len, f);
    return r == HV_SUCCESS ? 0 : hvi_hvf_fail("hv_vm_protect", r);
}

/* The logged slot holding @p gpa; slot_lock held. */
static struct hvi_hvf_slot *logged(struct hvi_hvf_vm *vm, uint64_t gpa)
{
    for (uint32_t i = 0; i < vm->nr_slots; i++) {
        struct hvi_hvf_slot *s = &vm->slots[i];
        if (s->used && s->dirty && gpa >= s->gpa && gpa - s->gpa < s->len)
            return s;
    }
    return NULL;
}

void hvi_hvf_dirty_mark_locked(struct hvi_hvf_vm *vm, uint64_t gpa)
{
    pthread_mutex_lock(&vm->dirty_lock);
    struct hvi_hvf_slot *s = logged(vm, gpa);
    if (s) {
        uint64_t pg = (gpa - s->gpa) / PAGE;
        s->dirty[pg / 64] |= 1ull << (pg % 64);
    }
    pthread_mutex_unlock(&vm->dirty_lock);
}

int hvi_hvf_dirty_fault(struct hvi_hvf_vcpu *v, uint64_t gpa)
{
    struct hvi_hvf_vm *vm = v->vm;
    int r = 0;
    pthread_rwlock_rdlock(&vm->slot_lock);
    pthread_mutex_lock(&vm->dirty_lock);
    struct hvi_hvf_slot *s = logged(vm, gpa);
    if (s && !s->readonly) {
        uint64_t pg = (gpa - s->gpa) / PAGE;
        s->dirty[pg / 64] |= 1ull << (pg % 64);
        r = protect(s->gpa + pg * PAGE, PAGE, rights(s, true));
        r = r < 0 ? r : 1;
    }
    pthread_mutex_unlock(&vm->dirty_lock);
    pthread_rwlock_unlock(&vm->slot_lock);
    return r;
}

int hvi_hvf_dirty_start(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                        uint64_t length, void *host_addr, uint32_t map_flags,
                        uint32_t mode, uint32_t flags, uint32_t *used)
{
    struct hvi_hvf_vm *vm = vm_priv;
    (void)host_addr, (void)map_flags, (void)flags;
    if (mode != HVC_DIRTY_AUTO && mode != HVC_DIRTY_BITMAP)
        return hvi_error(-ENOTSUP,
                         "dirty tracking mode 0x%x asked for slot %u: the "
                         "hvf backend has no dirty ring (HVC_VM_DIRTY_RING), "
                         "only the bitmap",
                         mode, slot);
    size_t words = (size_t)((length / PAGE + 63) / 64);
    uint64_t *bits = calloc(words ? words : 1, sizeof(*bits));
    if (!bits)
        return hvi_error(-ENOMEM, "out of memory tracking slot %u", slot);
    int r = 0;
    pthread_rwlock_wrlock(&vm->slot_lock);
    pthread_mutex_lock(&vm->dirty_lock);
    struct hvi_hvf_slot *s = slot < vm->nr_slots ? &vm->slots[slot] : NULL;
    if (!s || !s->used || s->gpa != guest_addr || s->len != length)
        r = hvi_error(-EINVAL, "dirty tracking of slot %u: not mapped here",
                      slot);
    else if (s->dirty)
        r = hvi_error(-EBUSY, "slot %u is tracked already", slot);
    else if ((r = protect(guest_addr, length, rights(s, false))) == 0) {
        s->dirty = bits;
        bits = NULL;
    }
    pthread_mutex_unlock(&vm->dirty_lock);
    pthread_rwlock_unlock(&vm->slot_lock);
    free(bits);
    if (r == 0)
        *used = HVC_DIRTY_BITMAP;
    return r;
}

int hvi_hvf_dirty_fetch(void *vm_priv, uint32_t slot, uint64_t length,
                        uint64_t *bitmap)
{
    struct hvi_hvf_vm *vm = vm_priv;
    int r = 0;
    pthread_rwlock_rdlock(&vm->slot_lock);
    pthread_mutex_lock(&vm->dirty_lock);
    struct hvi_hvf_slot *s = slot < vm->nr_slots ? &vm->slots[slot] : NULL;
    if (!s || !s->used || !s->dirty) {
        r = hvi_error(-EINVAL, "slot %u is not tracked", slot);
        goto out;
    }
    uint64_t npages = (length < s->len ? length : s->len) / PAGE;
    for (uint64_t w = 0; w < (npages + 63) / 64; w++) {
        uint64_t bits = s->dirty[w];
        /* each run of written pages protected again in one call */
        for (uint64_t b = 0; b < 64 && bits;) {
            if (!(bits >> b & 1)) {
                b++;
                continue;
            }
            uint64_t e = b;
            while (e < 64 && (bits >> e & 1))
                e++;
            r = protect(s->gpa + (w * 64 + b) * PAGE, (e - b) * PAGE,
                        rights(s, false));
            if (r < 0)
                goto out; /* those re-armed stay reported below: none */
            bitmap[w] |= ((e - b) == 64 ? ~0ull : ((1ull << (e - b)) - 1))
                         << b;
            s->dirty[w] &= ~(((e - b) == 64 ? ~0ull
                                            : ((1ull << (e - b)) - 1))
                             << b);
            b = e;
        }
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
    (void)host_addr, (void)map_flags;
    int r = 0;
    pthread_rwlock_wrlock(&vm->slot_lock);
    pthread_mutex_lock(&vm->dirty_lock);
    struct hvi_hvf_slot *s = slot < vm->nr_slots ? &vm->slots[slot] : NULL;
    if (s && s->used && s->dirty) {
        r = protect(guest_addr, length, rights(s, true));
        free(s->dirty);
        s->dirty = NULL;
    }
    pthread_mutex_unlock(&vm->dirty_lock);
    pthread_rwlock_unlock(&vm->slot_lock);
    return r;
}
