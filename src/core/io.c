/* Port-I/O and MMIO range handlers, and their dispatch from the run loop. */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const space_name[] = {"port", "MMIO"};

/* First range whose end is above addr. */
static size_t lower_bound(const struct hvi_io_table *t, uint64_t addr)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int hvc_vm_add_io_handler(hvc_vm *vm, int space, uint64_t base, uint64_t length,
                          hvc_io_fn fn, void *opaque)
{
    if (!vm || !fn)
        return hvi_error(-EINVAL, "hvc_vm_add_io_handler: NULL %s",
                         vm ? "handler" : "VM");
    if (space != HVC_IO_PIO && space != HVC_IO_MMIO)
        return hvi_error(-EINVAL, "hvc_vm_add_io_handler: unknown space %d",
                         space);
    if (length == 0 || base + length < base)
        return hvi_error(
            -EINVAL, "%s range 0x%" PRIx64 "+0x%" PRIx64 " is empty or wraps",
            space_name[space], base, length);
    if (space == HVC_IO_PIO && (base > 0xffff || length > 0x10000 - base))
        return hvi_error(-EINVAL,
                         "port range 0x%" PRIx64 "+0x%" PRIx64
                         " goes past port 0xffff",
                         base, length);
    if (hvi_handler_vm == vm)
        return hvi_error(-EDEADLK, "I/O handlers cannot be added from an I/O "
                                   "handler of the same VM");

    pthread_rwlock_wrlock(&vm->io_lock);
    struct hvi_io_table *t = &vm->io[space];
    size_t pos = lower_bound(t, base);
    int r = 0;
    if (pos < t->n && t->v[pos].base < base + length) {
        r = hvi_error(-EEXIST,
                      "%s range 0x%" PRIx64 "+0x%" PRIx64
                      " overlaps registered range 0x%" PRIx64 "+0x%" PRIx64,
                      space_name[space], base, length, t->v[pos].base,
                      t->v[pos].end - t->v[pos].base);
        goto out;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct hvi_io_range *v = realloc(t->v, cap * sizeof(*v));
        if (!v) {
            r = hvi_error(-ENOMEM, "out of memory adding an I/O handler");
            goto out;
        }
        t->v = v;
        t->cap = cap;
    }
    memmove(&t->v[pos + 1], &t->v[pos], (t->n - pos) * sizeof(*t->v));
    t->v[pos] = (struct hvi_io_range){base, base + length, fn, opaque};
    t->n++;
out:
    pthread_rwlock_unlock(&vm->io_lock);
    return r;
}

int hvc_vm_remove_io_handler(hvc_vm *vm, int space, uint64_t base)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_remove_io_handler: VM is NULL");
    if (space != HVC_IO_PIO && space != HVC_IO_MMIO)
        return hvi_error(-EINVAL, "hvc_vm_remove_io_handler: unknown space %d",
                         space);
    if (hvi_handler_vm == vm)
        return hvi_error(-EDEADLK, "I/O handlers cannot be removed from an "
                                   "I/O handler of the same VM");
    pthread_rwlock_wrlock(&vm->io_lock);
    struct hvi_io_table *t = &vm->io[space];
    size_t pos = lower_bound(t, base);
    int r = 0;
    if (pos == t->n || t->v[pos].base != base) {
        r = hvi_error(-ENOENT, "no %s handler registered at 0x%" PRIx64,
                      space_name[space], base);
    } else {
        memmove(&t->v[pos], &t->v[pos + 1], (t->n - pos - 1) * sizeof(*t->v));
        t->n--;
    }
    pthread_rwlock_unlock(&vm->io_lock);
    return r;
}

void hvi_io_free(hvc_vm *vm)
{
    for (int s = 0; s < 2; s++) {
        free(vm->io[s].v);
        vm->io[s] = (struct hvi_io_table){0};
    }
}

static int call(hvc_vcpu *vcpu, const struct hvi_io_range *range, uint64_t addr,
                uint8_t *data, uint32_t size, uint32_t count, int is_write)
{
    hvc_vm *vm = vcpu->vm;
    hvc_vm *outer = hvi_handler_vm;
    hvi_handler_vm = vm;
    int r = 0;
    for (uint32_t i = 0; i < count && r == 0; i++)
        r = range->fn(range->opaque, vcpu, addr - range->base,
                      data + (size_t)i * size, size, is_write);
    hvi_handler_vm = outer;
    return r;
}

int hvi_io_dispatch(hvc_vcpu *vcpu, hvc_exit *exit, bool *claimed)
{
    hvc_vm *vm = vcpu->vm;
    int space;
    uint64_t addr;
    uint32_t size, count;
    int is_write;
    uint8_t *data;
    if (exit->reason == HVC_EXIT_PIO) {
        space = HVC_IO_PIO;
        addr = exit->u.io.port;
        size = exit->u.io.size;
        count = exit->u.io.count;
        is_write = exit->u.io.is_write;
        data = exit->u.io.data;
    } else {
        space = HVC_IO_MMIO;
        addr = exit->u.mmio.addr;
        size = exit->u.mmio.size;
        count = 1;
        is_write = (int)exit->u.mmio.is_write;
        data = exit->u.mmio.data;
    }

    /* Doorbells the core emulates come first, as the backend's would. */
    if (is_write && count == 1 && hvi_doorbell_match(vm, space, addr, size, data)) {
        *claimed = true;
        return 0;
    }
    pthread_rwlock_rdlock(&vm->io_lock);
    const struct hvi_io_table *t = &vm->io[space];
    size_t pos = lower_bound(t, addr);
    /* The whole access must fall in one range; one that straddles a
     * boundary is returned to the caller. */
    if (pos == t->n || addr < t->v[pos].base || t->v[pos].end - addr < size) {
        pthread_rwlock_unlock(&vm->io_lock);
        *claimed = false;
        return 0;
    }
    *claimed = true;
    uint64_t base = t->v[pos].base;
    int r = call(vcpu, &t->v[pos], addr, data, size, count, is_write);
    pthread_rwlock_unlock(&vm->io_lock);
    if (r < 0)
        return hvi_error(r,
                         "%s handler at 0x%" PRIx64 " failed on a %u-byte "
                         "%s of 0x%" PRIx64 ": %s",
                         space_name[space], base, size,
                         is_write ? "write" : "read", addr, hvc_strerror(r));
    return r;
}
