/* hvc_virtio_cmdline(): the virtio_mmio.device=<size>@<base>:<irq> words
 * Linux's virtio-mmio driver takes from its command line. */
#include "virtio_dev.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hvc_virtio_cmdline(hvc_vm *vm, char *buf, size_t capacity, size_t *length)
{
    if (!vm || !length || (capacity && !buf))
        return hvi_error(-EINVAL, "hvc_virtio_cmdline: NULL argument");
    hvc_device **devs;
    size_t n;
    int r = hvi_devices_snapshot(vm, &devs, &n);
    if (r < 0)
        return r;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        struct vdev *d = hvi_vdev_of(devs[i]);
        if (!d)
            continue;
        char word[96];
        int w = snprintf(
            word, sizeof(word), "%svirtio_mmio.device=%u@0x%" PRIx64 ":%u",
            len ? " " : "", HVC_VIRTIO_MMIO_SIZE, d->mmio.base, d->mmio.irq);
        if (len + (size_t)w < capacity)
            memcpy(buf + len, word, (size_t)w);
        len += (size_t)w;
    }
    free(devs);
    *length = len;
    if (capacity == 0)
        return 0; /* a size query */
    if (len >= capacity)
        return hvi_error(-ENOSPC,
                         "virtio command line needs %zu bytes, the "
                         "buffer has %zu",
                         len + 1, capacity);
    buf[len] = 0;
    return 0;
}
