/* virtio-blk (virtio 1.2 section 5.2) on a file or block device: read,
 * write, flush, get-id, discard and write-zeroes. A host I/O error reaches
 * the guest as VIRTIO_BLK_S_IOERR.
 *
 * Requests run on a worker thread of the device's own, so that a slow disk
 * stalls neither the VM's event thread (every other device's notifies and
 * fd callbacks) nor the vCPUs that touch this device's registers. Where the
 * backend has doorbells the worker waits on the queue's doorbell itself, so
 * a guest notify wakes it directly, as it woke the event thread before;
 * a notify that does come through the event thread (the register path, a
 * state load) only marks the queue kicked and wakes the worker.
 * The worker pops a request under the device lock, does the I/O with no
 * lock held, then pushes the used entry under the lock again; it raises
 * the interrupt when the ring is empty. Lock order and waiting rules are
 * in virtio_dev.h.
 *
 * Quiescing (a VM pause, a state save or load, a reset, destroy) waits for
 * the request in flight to finish and keeps the worker from starting
 * another: a saved state never holds a request popped and not completed.
 * A reset also bumps a generation, so a request the worker was serving
 * when the driver reset the device is dropped, not pushed into the new
 * rings. */
#define _GNU_SOURCE
#include "virtio_dev.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define BLK_F_SEG_MAX (1ull << 2)
#define BLK_F_RO (1ull << 5)
#define BLK_F_BLK_SIZE (1ull << 6)
#define BLK_F_FLUSH (1ull << 9)
#define BLK_F_DISCARD (1ull << 13)
#define BLK_F_WRITE_ZEROES (1ull << 14)

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13

#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2

#define SECTOR 512u
#define ID_BYTES 20
#define MAX_SECTORS 0x3fffffu /* per discard or write-zeroes segment */

struct blk {
    int fd;
    bool own_fd;
    bool readonly;
    uint64_t sectors;
    char serial[ID_BYTES];
    struct vdev *d;

    /* The worker and what the other threads hand it, under lock. */
    pthread_mutex_t lock;
    int wake_fd;         /* eventfd to the worker: kicked, quiesce back to
                          * 0, stop */
    int doorbell_fd;     /* our dup of the queue's doorbell, or -1 */
    pthread_cond_t idle; /* from the worker: busy went false */
    pthread_t worker;
    bool started;
    bool kicked;         /* a notify came since the worker last looked */
    bool busy;           /* the worker is serving the queue */
    bool stop;           /* destroy: the worker exits */
    atomic_uint quiesce; /* nested quiesce requests; the worker reads it
                          * between requests without the lock */
    uint64_t gen;        /* under the device lock: bumped by resets */
    struct vq_elem elem; /* the worker's request */
    struct iovec iov[VIRTIO_QUEUE_MAX];
};

struct req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct seg_range {
    uint64_t sector;
    uint32_t num;
    uint32_t flags;
};

static void blk_config(struct vdev *d, uint32_t off, void *data, uint32_t size)
{
    struct blk *b = d->impl;
    uint8_t cfg[60] = {0};
    uint32_t seg_max = VIRTIO_QUEUE_MAX - 2, blk_size = SECTOR, one = 1,
             max = MAX_SECTORS;
    uint16_t queues = 1;
    memcpy(cfg + 0, &b->sectors, 8);
    memcpy(cfg + 12, &seg_max, 4);
    memcpy(cfg + 20, &blk_size, 4);
    memcpy(cfg + 34, &queues, 2);
    memcpy(cfg + 36, &max, 4); /* max_discard_sectors */
    memcpy(cfg + 40, &one, 4); /* max_discard_seg */
    memcpy(cfg + 44, &one, 4); /* discard_sector_alignment */
    memcpy(cfg + 48, &max, 4); /* max_write_zeroes_sectors */
    memcpy(cfg + 52, &one, 4); /* max_write_zeroes_seg */
    cfg[56] = 1;               /* write_zeroes_may_unmap */
    memcpy(data, cfg + off, size);
}

/* The data segments of a request as iovecs: the writable part less its
 * last byte (the status) for reads, the readable part after the header for
 * writes. */
static int data_iov(struct blk *b, const struct vq_elem *e, bool in,
                    uint64_t *bytes)
{
    uint64_t skip = in ? 0 : sizeof(struct req_hdr);
    uint64_t want = in ? e->in_len - 1 : e->out_len - sizeof(struct req_hdr);
    unsigned first = in ? e->nr_out : 0,
             end = in ? e->nr_out + e->nr_in : e->nr_out;
    int n = 0;
    *bytes = want;
    for (unsigned s = first; s < end && want; s++) {
        uint64_t len = e->seg[s].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        uint64_t take = len - skip < want ? len - skip : want;
        b->iov[n++] = (struct iovec){e->seg[s].hva + skip, take};
        want -= take;
        skip = 0;
    }
    return n;
}

static int full_io(int fd, struct iovec *iov, int n, uint64_t off, bool write)
{
    while (n > 0) {
        ssize_t r = write ? pwritev(fd, iov, n, (off_t)off)
                          : preadv(fd, iov, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1; /* an error, or a read past the end of the file */
        off += (uint64_t)r;
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

static bool in_range(const struct blk *b, uint64_t sector, uint64_t bytes)
{
    uint64_t n = (bytes + SECTOR - 1) / SECTOR;
    return sector <= b->sectors && n <= b->sectors - sector;
}

static uint8_t do_ranges(struct blk *b, const struct vq_elem *e, uint32_t t)
{
    if (b->readonly)
        return S_IOERR;
    uint64_t n = e->out_len - sizeof(struct req_hdr);
    /* one segment, as max_discard_seg and max_write_zeroes_seg say: a
     * request of millions would keep the worker, and every pause, save
     * or reset that waits for it, busy for minutes */
    if (n != sizeof(struct seg_range))
        return S_UNSUPP;
    for (uint64_t off = 0; off < n; off += sizeof(struct seg_range)) {
        struct seg_range r;
        hvi_vq_read_out(e, sizeof(struct req_hdr) + off, &r, sizeof(r));
        /* bit 0 is "unmap": allowed for write-zeroes, not for discard
         * (virtio 1.2 5.2.6.2); any other bit is unknown */
        if ((r.flags & ~1u) || (t == T_DISCARD && (r.flags & 1)))
            return S_UNSUPP;
        if (r.num > MAX_SECTORS ||
            !in_range(b, r.sector, (uint64_t)r.num * SECTOR))
            return S_IOERR;
        int mode = t == T_DISCARD ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                                  : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
        if (fallocate(b->fd, mode, (off_t)(r.sector * SECTOR),
                      (off_t)r.num * SECTOR) == 0)
            continue;
        if (t == T_DISCARD)
            continue; /* discarding is advice: not doing it is no error */
        /* no ZERO_RANGE on this file system: write the zeroes */
        static const uint8_t zero[64 * 1024];
        for (uint64_t left = (uint64_t)r.num * SECTOR, at = r.sector * SECTOR;
             left;) {
            size_t k = left < sizeof(zero) ? left : sizeof(zero);
            ssize_t w = pwrite(b->fd, zero, k, (off_t)at);
            if (w <= 0)
                return S_IOERR;
            left -= (uint64_t)w;
            at += (uint64_t)w;
        }
    }
    return S_OK;
}

/* Serves one request; returns the bytes written into the guest's buffers
 * (the status byte included). */
static uint32_t serve(struct vdev *d, struct blk *b, const struct vq_elem *e)
{
    struct req_hdr h;
    hvi_vq_read_out(e, 0, &h, sizeof(h));
    uint8_t status = S_OK;
    uint64_t bytes = 0;
    uint32_t written = 0;
    int n;
    switch (h.type) {
    case T_IN:
        n = data_iov(b, e, true, &bytes);
        if (!in_range(b, h.sector, bytes) ||
            full_io(b->fd, b->iov, n, h.sector * SECTOR, false) < 0)
            status = S_IOERR;
        else
            written = (uint32_t)bytes;
        break;
    case T_OUT:
        n = data_iov(b, e, false, &bytes);
        if (b->readonly || !in_range(b, h.sector, bytes) ||
            full_io(b->fd, b->iov, n, h.sector * SECTOR, true) < 0)
            status = S_IOERR;
        break;
    case T_FLUSH:
        if (fdatasync(b->fd) < 0 && errno != EINVAL)
            status = S_IOERR;
        break;
    case T_GET_ID:
        written = (uint32_t)hvi_vq_write_in(
            e, 0, b->serial,
            e->in_len - 1 < ID_BYTES ? e->in_len - 1 : ID_BYTES);
        break;
    case T_DISCARD:
    case T_WRITE_ZEROES:
        /* only what the driver accepted: a driver that did not negotiate
         * a command must not get it served (virtio 1.2 5.2.6.1) */
        if (!(d->driver_features &
              (h.type == T_DISCARD ? BLK_F_DISCARD : BLK_F_WRITE_ZEROES)))
            status = S_UNSUPP;
        else
            status = do_ranges(b, e, h.type);
        break;
    default: status = S_UNSUPP; break;
    }
    hvi_vq_write_in(e, e->in_len - 1, &status, 1);
    return written + 1;
}

/* The worker's pass over the queue: pops and serves requests until the
 * ring is empty, the device is not live, or a quiesce is asked (then it
 * returns true: the queue may hold more). */
static bool serve_queue(struct blk *b)
{
    struct vdev *d = b->d;
    struct vq *q = &d->vq[0];
    struct vq_elem *e = &b->elem;
    bool any = false, held = false;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        if (atomic_load(&b->quiesce)) {
            held = true;
            break;
        }
        if (!(d->status & VIRTIO_STATUS_DRIVER_OK) ||
            (d->status & VIRTIO_STATUS_NEEDS_RESET) || hvi_vq_pop(d, q, e) <= 0)
            break;
        if (e->out_len < sizeof(struct req_hdr) || e->in_len < 1) {
            hvi_vdev_fail(d,
                          "request at descriptor %u has %" PRIu64
                          " readable and %" PRIu64 " writable bytes",
                          e->head, e->out_len, e->in_len);
            break;
        }
        if (e->refused) {
            /* A buffer outside the device's grants: nothing reaches the
             * disk, and the driver gets an error status if the status
             * byte at least is granted. */
            const struct vq_seg *st = &e->seg[e->nr_out + e->nr_in - 1];
            if (!st->hva) {
                hvi_vdev_fail(d,
                              "request at descriptor %u: its status byte "
                              "is outside the device's grants",
                              e->head);
                break;
            }
            st->hva[st->len - 1] = S_IOERR;
            hvc_vm_mark_dirty(d->vm, st->gpa + st->len - 1, 1);
            hvi_vq_push(d, q, e->head, 1);
            any = true;
            continue;
        }
        uint64_t gen = b->gen;
        pthread_mutex_unlock(&d->lock);
        uint32_t len = serve(d, b, e); /* no lock held: may take long */
        pthread_mutex_lock(&d->lock);
        if (gen != b->gen) {
            /* the driver reset the device meanwhile: the rings this
             * request came from are gone */
            any = false;
            continue;
        }
        /* hvi_vq_push() marks the transport's scratch element dirty, and
         * this request is the worker's own: its writable buffers must be
         * reported here, before the used element publishes them */
        for (unsigned s = e->nr_out; s < e->nr_out + e->nr_in; s++)
            hvc_vm_mark_dirty(d->vm, e->seg[s].gpa, e->seg[s].len);
        hvi_vq_push(d, q, e->head, len);
        any = true;
    }
    if (any)
        hvi_vq_interrupt(d, q);
    pthread_mutex_unlock(&d->lock);
    return held;
}

/* Caller holds b->lock (or is the creator, before the worker runs). */
static void wake_worker(struct blk *b)
{
    uint64_t one = 1;
    ssize_t n = write(b->wake_fd, &one, sizeof(one));
    (void)n; /* a full counter still wakes it */
}

static void *worker(void *arg)
{
    struct blk *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        if (b->kicked && !atomic_load(&b->quiesce)) {
            b->kicked = false;
            b->busy = true;
            pthread_mutex_unlock(&b->lock);
            bool held = serve_queue(b);
            pthread_mutex_lock(&b->lock);
            if (held)
                b->kicked = true; /* look again when the quiesce ends */
            b->busy = false;
            pthread_cond_broadcast(&b->idle);
            continue;
        }
        /* Sleep until the guest rings or another thread wakes us. Both are
         * counters, so nothing signalled before poll() is lost. */
        pthread_mutex_unlock(&b->lock);
        struct pollfd p[2] = {{b->wake_fd, POLLIN, 0},
                              {b->doorbell_fd, POLLIN, 0}};
        uint64_t n;
        bool rang = false;
        if (poll(p, b->doorbell_fd >= 0 ? 2 : 1, -1) > 0) {
            if ((p[0].revents & POLLIN) && read(b->wake_fd, &n, sizeof(n)) < 0)
                n = 0; /* the flags it stands for are read below */
            if (b->doorbell_fd >= 0 && (p[1].revents & POLLIN))
                rang = read(b->doorbell_fd, &n, sizeof(n)) == sizeof(n);
        }
        pthread_mutex_lock(&b->lock);
        if (rang)
            b->kicked = true;
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* On the event thread, device lock held: hand the queue to the worker. */
static void blk_notify(struct vdev *d, uint32_t qi)
{
    struct blk *b = d->impl;
    (void)qi;
    pthread_mutex_lock(&b->lock);
    b->kicked = true;
    if (!b->busy)
        wake_worker(b);
    pthread_mutex_unlock(&b->lock);
}

/* While the device is created: the queue's doorbell wakes the worker. */
static void blk_doorbell(struct vdev *d, uint32_t qi, int fd)
{
    struct blk *b = d->impl;
    (void)qi;
    if (b->doorbell_fd < 0)
        b->doorbell_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* Device lock held (the transport's reset): whatever the worker is serving
 * now belongs to rings that no longer exist. The transport then drains it
 * through blk_quiesce(), outside the lock. */
static void blk_reset(struct vdev *d)
{
    struct blk *b = d->impl;
    b->gen++;
}

static void blk_quiesce(struct vdev *d, bool on)
{
    struct blk *b = d->impl;
    pthread_mutex_lock(&b->lock);
    if (on) {
        atomic_fetch_add(&b->quiesce, 1);
        while (b->busy)
            pthread_cond_wait(&b->idle, &b->lock);
    } else if (atomic_load(&b->quiesce) > 0 &&
               atomic_fetch_sub(&b->quiesce, 1) == 1) {
        wake_worker(b);
    }
    pthread_mutex_unlock(&b->lock);
}

static void blk_destroy(struct vdev *d)
{
    struct blk *b = d->impl;
    if (!b)
        return;
    if (b->started) {
        /* the notify paths are gone by now; finish the request in flight */
        blk_quiesce(d, true);
        pthread_mutex_lock(&b->lock);
        b->stop = true;
        wake_worker(b);
        pthread_mutex_unlock(&b->lock);
        pthread_join(b->worker, NULL);
    }
    if (b->doorbell_fd >= 0)
        close(b->doorbell_fd);
    close(b->wake_fd);
    pthread_cond_destroy(&b->idle);
    pthread_mutex_destroy(&b->lock);
    if (b->own_fd)
        close(b->fd);
    free(b);
}

/* The worker takes no signal: the VMM's handlers and the vCPU kick signal
 * belong to other threads. */
static int start_worker(struct blk *b)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&b->worker, NULL, worker, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r)
        return hvi_error(-r, "virtio-blk: starting its worker thread: %s",
                         hvc_strerror(-r));
    pthread_setname_np(b->worker, "hvc-blk");
    b->started = true;
    return 0;
}

/* One slot: the disk image (or block device). */
static int blk_handover_fds(struct vdev *d, int *fds, size_t capacity,
                            size_t *count)
{
    struct blk *b = d->impl;
    *count = 1;
    if (capacity)
        fds[0] = b->fd;
    return 0;
}

static const struct vdev_model blk_model = {
    .type = "virtio-blk",
    .device_id = 2,
    .nr_queues = 1,
    .features = BLK_F_SEG_MAX | BLK_F_BLK_SIZE | BLK_F_FLUSH | BLK_F_DISCARD |
                BLK_F_WRITE_ZEROES,
    .config_size = 60,
    .config_read = blk_config,
    .notify = blk_notify,
    .defer_missing = true,
    .reset = blk_reset,
    .destroy = blk_destroy,
    .quiesce = blk_quiesce,
    .doorbell = blk_doorbell,
    .handover_fds = blk_handover_fds,
};

static const struct vdev_model blk_model_ro = {
    .type = "virtio-blk",
    .device_id = 2,
    .nr_queues = 1,
    .features = BLK_F_SEG_MAX | BLK_F_BLK_SIZE | BLK_F_FLUSH | BLK_F_RO,
    .config_size = 60,
    .config_read = blk_config,
    .notify = blk_notify,
    .defer_missing = true,
    .reset = blk_reset,
    .destroy = blk_destroy,
    .quiesce = blk_quiesce,
    .doorbell = blk_doorbell,
    .handover_fds = blk_handover_fds,
};

static int size_of(int fd, uint64_t *bytes)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISBLK(st.st_mode))
        return ioctl(fd, BLKGETSIZE64, bytes) < 0 ? -errno : 0;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    *bytes = (uint64_t)st.st_size;
    return 0;
}

int hvc_virtio_blk_create(hvc_vm *vm, const hvc_virtio_blk_options *opts,
                          hvc_device **out)
{
    if (!vm || !opts)
        return hvi_error(-EINVAL, "hvc_virtio_blk_create: NULL argument");
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    int r = hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                             "hvc_virtio_blk_options");
    if (r < 0)
        return r;
    if (o.flags & ~(uint32_t)HVC_VIRTIO_BLK_READONLY)
        return hvi_error(-EINVAL, "virtio-blk flags 0x%x have unknown bits",
                         o.flags);
    if (!o.path && o.fd < 0)
        return hvi_error(-EINVAL, "virtio-blk needs a path or a descriptor");
    struct blk *b = calloc(1, sizeof(*b));
    if (!b)
        return hvi_error(-ENOMEM, "out of memory creating virtio-blk");
    b->readonly = o.flags & HVC_VIRTIO_BLK_READONLY;
    b->fd = o.fd;
    if (o.path) {
        b->fd = open(o.path, (b->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (b->fd < 0) {
            r = hvi_error(-errno, "virtio-blk: cannot open '%s': %s", o.path,
                          hvc_strerror(-errno));
            free(b);
            return r;
        }
        b->own_fd = true;
    }
    uint64_t bytes = 0;
    if ((r = size_of(b->fd, &bytes)) < 0) {
        r = hvi_error(r,
                      "virtio-blk: '%s' is not a file or block device "
                      "of known size",
                      o.path ? o.path : "(descriptor)");
        if (b->own_fd)
            close(b->fd);
        free(b);
        return r;
    }
    b->sectors = bytes / SECTOR;
    if (o.serial)
        memcpy(b->serial, o.serial, strnlen(o.serial, ID_BYTES));
    else
        snprintf(b->serial, ID_BYTES, "hvcore-%s", o.name ? o.name : "blk");
    b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->wake_fd < 0) {
        r = hvi_error(-errno, "virtio-blk: eventfd: %s", hvc_strerror(-errno));
        if (b->own_fd)
            close(b->fd);
        free(b);
        return r;
    }
    b->doorbell_fd = -1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->idle, NULL);
    atomic_init(&b->quiesce, 0);
    hvc_device *dev;
    /* from here on the device owns b, and blk_destroy() frees it */
    r = hvi_vdev_create(vm, b->readonly ? &blk_model_ro : &blk_model, b,
                        &o.mmio, o.name, &dev, &b->d);
    if (r < 0)
        return r;
    if ((r = start_worker(b)) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        hvc_vm_remove_device(vm, dev);
        return hvi_error(r, "%s", why);
    }
    if (out)
        *out = dev;
    return 0;
}
