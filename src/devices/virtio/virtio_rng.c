/* virtio-rng (virtio 1.2 section 5.4): every writable buffer filled from
 * getrandom(2). */
#include "virtio_dev.h"

#include <errno.h>
#include <sys/random.h>

static void rng_notify(struct vdev *d, uint32_t qi)
{
    struct vq *q = &d->vq[qi];
    struct vq_elem *e = &d->elem;
    bool any = false;
    while (hvi_vq_pop(d, q, e) > 0) {
        uint32_t done = 0;
        for (unsigned s = e->nr_out; s < e->nr_out + e->nr_in; s++) {
            if (!e->seg[s].hva)
                break; /* outside the device's grants */
            uint32_t got = 0;
            while (got < e->seg[s].len) {
                ssize_t n =
                    getrandom(e->seg[s].hva + got, e->seg[s].len - got, 0);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    break;
                got += (uint32_t)n;
            }
            done += got;
            if (got < e->seg[s].len)
                break;
        }
        hvi_vq_push(d, q, e->head, done);
        any = true;
    }
    if (any)
        hvi_vq_interrupt(d, q);
}

static const struct vdev_model rng_model = {
    .type = "virtio-rng",
    .device_id = 4,
    .nr_queues = 1,
    .notify = rng_notify,
};

int hvc_virtio_rng_create(hvc_vm *vm, const hvc_virtio_mmio *mmio,
                          const char *name, hvc_device **out)
{
    return hvi_vdev_create(vm, &rng_model, NULL, mmio, name, out, NULL);
}
