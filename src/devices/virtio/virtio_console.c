/* virtio-console (virtio 1.2 section 5.3) with one port: transmitq to a
 * descriptor or callback, receiveq from a descriptor. Input is read only
 * into buffers the guest has posted: with none posted the descriptor is not
 * watched, so bytes wait in it rather than being lost, and nothing spins. */
#define _GNU_SOURCE
#include "virtio_dev.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#define RXQ 0
#define TXQ 1

struct console {
    struct vdev *d;
    int out_fd;
    int in_fd;
    bool watching;
    bool input_done; /* end of file or error on in_fd */
    hvc_serial_output_fn out_fn;
    void *out_opaque;
};

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the reader went away: drop, as a line would */
        p += w;
        n -= (size_t)w;
    }
}

static void transmit(struct vdev *d, struct console *c)
{
    struct vq *q = &d->vq[TXQ];
    struct vq_elem *e = &d->elem;
    bool any = false;
    while (hvi_vq_pop(d, q, e) > 0) {
        for (unsigned s = 0; s < e->nr_out; s++) {
            if (!e->seg[s].hva)
                break; /* outside the device's grants */
            if (c->out_fd >= 0)
                write_all(c->out_fd, e->seg[s].hva, e->seg[s].len);
            if (c->out_fn)
                c->out_fn(c->out_opaque, e->seg[s].hva, e->seg[s].len);
        }
        hvi_vq_push(d, q, e->head, 0);
        any = true;
    }
    if (any)
        hvi_vq_interrupt(d, q);
}

static void on_input(void *opaque, int fd, uint32_t events);

/* Event thread, device lock held. Watches in_fd only while the guest has
 * receive buffers posted. */
static void update_watch(struct vdev *d, struct console *c, bool want)
{
    if (c->in_fd < 0 || c->input_done)
        want = false;
    if (want && !c->watching)
        c->watching =
            hvc_vm_watch_fd(d->vm, c->in_fd, HVC_FD_READABLE, on_input, c) == 0;
    else if (!want && c->watching) {
        hvc_vm_unwatch_fd(d->vm, c->in_fd);
        c->watching = false;
    }
}

static bool rx_posted(struct vdev *d)
{
    struct vq *q = &d->vq[RXQ];
    uint16_t idx;
    /* a ring page still to come (post-copy): not now; the queue is
     * notified again when it lands, and con_notify() looks again */
    if (!q->ready || hvi_vq_avail_idx(d, q, &idx) <= 0)
        return false;
    return idx != q->last_avail;
}

static void receive(struct vdev *d, struct console *c)
{
    struct vq *q = &d->vq[RXQ];
    struct vq_elem *e = &d->elem;
    bool any = false;
    /* The descriptor may be blocking (a terminal, a pipe): read only what
     * poll() says is there, never wait with the device lock held. */
    struct pollfd pfd = {.fd = c->in_fd, .events = POLLIN};
    while (!c->input_done && rx_posted(d) && poll(&pfd, 1, 0) == 1 &&
           hvi_vq_pop(d, q, e) > 0) {
        if (e->nr_in && !e->seg[e->nr_out].hva) {
            /* outside the device's grants: returned empty, nothing read */
            hvi_vq_push(d, q, e->head, 0);
            any = true;
            continue;
        }
        ssize_t n = e->nr_in ? read(c->in_fd, e->seg[e->nr_out].hva,
                                    e->seg[e->nr_out].len)
                             : 0;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            n = 0;
        else if (n <= 0 && e->nr_in)
            c->input_done = true;
        hvi_vq_push(d, q, e->head, n > 0 ? (uint32_t)n : 0);
        any = true;
        if (n <= 0)
            break; /* nothing more to read now */
    }
    if (any)
        hvi_vq_interrupt(d, q);
    update_watch(d, c, rx_posted(d));
}

static void on_input(void *opaque, int fd, uint32_t events)
{
    struct console *c = opaque;
    (void)fd, (void)events;
    pthread_mutex_lock(&c->d->lock);
    if ((c->d->status & VIRTIO_STATUS_DRIVER_OK) &&
        !(c->d->status & VIRTIO_STATUS_NEEDS_RESET))
        receive(c->d, c);
    else
        update_watch(c->d, c, false);
    pthread_mutex_unlock(&c->d->lock);
}

static void con_notify(struct vdev *d, uint32_t q)
{
    struct console *c = d->impl;
    if (q == TXQ)
        transmit(d, c);
    else
        update_watch(d, c, rx_posted(d)); /* buffers posted: read input */
}

static void con_reset(struct vdev *d)
{
    struct console *c = d->impl;
    /* called from the vCPU thread (status 0) or the caller: no fd
     * callbacks may be changed here; the next notify re-evaluates */
    (void)c;
}

static void con_config(struct vdev *d, uint32_t off, void *data, uint32_t size)
{
    (void)d, (void)off;
    for (uint32_t i = 0; i < size; i++)
        ((uint8_t *)data)[i] = 0; /* cols, rows, max_nr_ports: unused */
}

static void con_destroy(struct vdev *d)
{
    struct console *c = d->impl;
    if (c && c->watching)
        hvc_vm_unwatch_fd(d->vm, c->in_fd);
    free(c);
}

static const struct vdev_model console_model = {
    .type = "virtio-console",
    .device_id = 3,
    .nr_queues = 2,
    .config_size = 12,
    .config_read = con_config,
    .notify = con_notify,
    .reset = con_reset,
    .destroy = con_destroy,
};

int hvc_virtio_console_create(hvc_vm *vm,
                              const hvc_virtio_console_options *opts,
                              hvc_device **out)
{
    if (!vm || !opts)
        return hvi_error(-EINVAL, "hvc_virtio_console_create: NULL argument");
    hvc_virtio_console_options o = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
    int r = hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                             "hvc_virtio_console_options");
    if (r < 0)
        return r;
    if (o.flags)
        return hvi_error(-EINVAL, "virtio-console flags 0x%x are not 0",
                         o.flags);
    struct console *c = calloc(1, sizeof(*c));
    if (!c)
        return hvi_error(-ENOMEM, "out of memory creating virtio-console");
    c->out_fd = o.output_fd;
    c->in_fd = o.input_fd;
    c->out_fn = o.output_fn;
    c->out_opaque = o.output_opaque;
    struct vdev *d;
    r = hvi_vdev_create(vm, &console_model, c, &o.mmio, o.name, out, &d);
    if (r == 0)
        c->d = d;
    return r;
}
