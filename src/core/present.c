/* Whether guest pages a device is about to write are present. A device
 * that must never stall (virtio-net's receive path) asks before it copies
 * a packet into a guest buffer, and sets a buffer with a missing page
 * aside instead of touching it (a touch would block its thread until the
 * page arrives). The answer comes from the post-copy destination's
 * missing-page map (hvi_postcopy_want(), which also asks for the page),
 * and from a hook the tests install to invent missing pages. */
#include "internal.h"

int hvi_vm_gpa_present(hvc_vm *vm, uint64_t gpa, uint64_t len)
{
    pthread_rwlock_rdlock(&vm->mem_lock);
    int r = vm->present_fn ? vm->present_fn(vm->present_opaque, gpa, len) : 1;
    pthread_rwlock_unlock(&vm->mem_lock);
    /* An incoming post-copy: a missing page is asked for now, ahead of
     * the pushed ones, and the caller comes back later (never waits; a
     * lost page reads as missing for good). */
    if (r > 0)
        r = hvi_postcopy_want(vm, gpa, len) > 0;
    return r;
}

void hvi_vm_set_present_hook(hvc_vm *vm, hvi_present_fn fn, void *opaque)
{
    pthread_rwlock_wrlock(&vm->mem_lock);
    vm->present_fn = fn;
    vm->present_opaque = opaque;
    pthread_rwlock_unlock(&vm->mem_lock);
}
