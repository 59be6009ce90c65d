/* Whether guest pages a device is about to write are present. A device
 * that must never stall (virtio-net's receive path) asks before it copies
 * a packet into a guest buffer, and sets a buffer with a missing page
 * aside instead of touching it (a touch would block its thread until the
 * page arrives). The answer comes from a hook: the post-copy destination
 * installs one that looks at its missing-page map and asks for the page;
 * the tests install one that invents missing pages. Without a hook every
 * page is present. */
#include "internal.h"

int hvi_vm_gpa_present(hvc_vm *vm, uint64_t gpa, uint64_t len)
{
    pthread_rwlock_rdlock(&vm->mem_lock);
    int r = vm->present_fn ? vm->present_fn(vm->present_opaque, gpa, len) : 1;
    pthread_rwlock_unlock(&vm->mem_lock);
    return r;
}

void hvi_vm_set_present_hook(hvc_vm *vm, hvi_present_fn fn, void *opaque)
{
    pthread_rwlock_wrlock(&vm->mem_lock);
    vm->present_fn = fn;
    vm->present_opaque = opaque;
    pthread_rwlock_unlock(&vm->mem_lock);
}
