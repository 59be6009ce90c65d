/* virtio-net (virtio 1.2 section 5.1) on a tap interface: MAC, link
 * status, mergeable receive buffers, checksum and TSO offloads passed
 * through the tap's virtio-net header, a control queue for
 * VIRTIO_NET_F_GUEST_ANNOUNCE, a back end that can be detached and
 * attached again, and a receive path that never waits for a guest page
 * (net_rx.c).
 *
 * Packets move on a worker thread of the device's own, as virtio-blk's
 * requests do: it waits on the queues' doorbells, the tap, and a wake-up
 * eventfd; the event thread and the vCPUs only wake it. The worker takes
 * the device lock around ring work and copies, never across a tap read
 * or write. Lock order: the device lock, then net.lock (virtio_dev.h's
 * place of blk.lock), then mem_lock.
 *
 * Quiescing (a pause, a state save or load, a reset, a detach or attach,
 * destroy) waits for the worker's pass to end and keeps it from starting
 * another; the back end and the queues change only then. */
#define _GNU_SOURCE
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define NET_FEATURES_BASE                                                      \
    (NET_F_MAC | NET_F_MRG_RXBUF | NET_F_STATUS | NET_F_CTRL_VQ |              \
     NET_F_GUEST_ANNOUNCE)
#define NET_FEATURES_OFFLOAD                                                   \
    (NET_F_CSUM | NET_F_GUEST_CSUM | NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6 |     \
     NET_F_GUEST_ECN | NET_F_HOST_TSO4 | NET_F_HOST_TSO6 | NET_F_HOST_ECN)

uint64_t hvi_net_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool hvi_net_live(const struct vdev *d)
{
    return (d->status & VIRTIO_STATUS_DRIVER_OK) &&
           !(d->status & VIRTIO_STATUS_NEEDS_RESET);
}

void hvi_net_wake(struct net *n)
{
    uint64_t one = 1;
    ssize_t r = write(n->wake_fd, &one, sizeof(one));
    (void)r; /* a full counter still wakes it */
}

static void net_config(struct vdev *d, uint32_t off, void *data, uint32_t size)
{
    struct net *n = d->impl;
    uint8_t cfg[10] = {0};
    uint16_t pairs = 1;
    memcpy(cfg, n->mac, 6);
    memcpy(cfg + 6, &n->status, 2);
    memcpy(cfg + 8, &pairs, 2);
    memcpy(data, cfg + off, size);
}

/* The tap's offloads follow what the driver accepted: the tap may hand us
 * only packets the guest can take. Worker (or quiesced), no lock. */
static void apply_offloads(struct net *n, uint64_t f)
{
    unsigned bits = 0;
    if (f & NET_F_GUEST_CSUM) {
        bits |= HVI_OS_TAP_CSUM;
        if (f & NET_F_GUEST_TSO4)
            bits |= HVI_OS_TAP_TSO4;
        if (f & NET_F_GUEST_TSO6)
            bits |= HVI_OS_TAP_TSO6;
        if ((f & NET_F_GUEST_ECN) &&
            (bits & (HVI_OS_TAP_TSO4 | HVI_OS_TAP_TSO6)))
            bits |= HVI_OS_TAP_TSO_ECN;
    }
    if (n->tap_fd >= 0 && (int)bits != n->offload_set &&
        hvi_os_tap_set_offload(n->tap_fd, bits) == 0)
        n->offload_set = (int)bits;
}

/* One pass of the worker over everything it serves; decides what the
 * worker waits for next. Returns true when work is left. */
static bool pass(struct net *n)
{
    struct vdev *d = n->d;
    hvi_net_reset_hold(n);
    pthread_mutex_lock(&d->lock);
    bool live = hvi_net_live(d);
    uint64_t f = d->driver_features;
    pthread_mutex_unlock(&d->lock);
    if (live)
        apply_offloads(n, f);
    if (n->tap_fd >= 0 && atomic_exchange(&n->announce, false)) {
        hvi_net_send_announce(n);
        pthread_mutex_lock(&d->lock);
        if (hvi_net_live(d) && (d->driver_features & NET_F_GUEST_ANNOUNCE)) {
            n->status |= NET_S_ANNOUNCE;
            d->config_generation++;
            hvi_vdev_interrupt(d, VIRTIO_INT_CONFIG);
        }
        pthread_mutex_unlock(&d->lock);
    }
    hvi_net_ctrl_pass(n);
    bool more = hvi_net_tx_pass(n);
    n->poll_in = hvi_net_rx_pass(n);
    n->poll_out = n->tap_fd >= 0 && !n->tap_error && n->hold.count;
    /* packets wait for set-aside buffers: look again each millisecond */
    n->poll_timer = n->nr_faulty > 0 && n->rxq.count > 0;
    return more;
}

static void *worker(void *arg)
{
    struct net *n = arg;
    pthread_mutex_lock(&n->lock);
    while (!n->stop) {
        if (n->kicked && !atomic_load(&n->quiesce)) {
            n->kicked = false;
            n->busy = true;
            pthread_mutex_unlock(&n->lock);
            bool more = pass(n);
            pthread_mutex_lock(&n->lock);
            n->kicked |= more;
            n->busy = false;
            pthread_cond_broadcast(&n->idle);
            continue;
        }
        /* What to wait for is decided here, with the back end fixed: it
         * changes only while quiesced, and then the tap is not watched. */
        bool q = atomic_load(&n->quiesce);
        struct pollfd p[5];
        int np = 0;
        p[np++] = (struct pollfd){n->wake_fd, POLLIN, 0};
        for (int i = 0; i < 3; i++)
            if (n->doorbell_fd[i] >= 0)
                p[np++] = (struct pollfd){n->doorbell_fd[i], POLLIN, 0};
        int tap_at = -1;
        if (!q && n->tap_fd >= 0) {
            short ev = 0;
            if (n->poll_in)
                ev |= POLLIN;
            if (n->poll_out)
                ev |= POLLOUT;
            if (ev) {
                tap_at = np;
                p[np++] = (struct pollfd){n->tap_fd, ev, 0};
            }
        }
        /* set-aside buffers with packets waiting: again in 1 ms */
        int timeout = !q && n->poll_timer ? 1 : -1;
        pthread_mutex_unlock(&n->lock);
        int r = poll(p, (nfds_t)np, timeout);
        bool work = r == 0; /* the faulty list's timer */
        for (int i = 0; r > 0 && i < np; i++) {
            if (!p[i].revents)
                continue;
            if (i != tap_at) {
                uint64_t v;
                ssize_t k = read(p[i].fd, &v, sizeof(v));
                (void)k;
            }
            work = true;
        }
        pthread_mutex_lock(&n->lock);
        if (work)
            n->kicked = true;
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

/* On the event thread, device lock held. */
static void net_notify(struct vdev *d, uint32_t qi)
{
    struct net *n = d->impl;
    (void)qi;
    pthread_mutex_lock(&n->lock);
    n->kicked = true;
    hvi_net_wake(n);
    pthread_mutex_unlock(&n->lock);
}

static void net_doorbell(struct vdev *d, uint32_t qi, int fd)
{
    struct net *n = d->impl;
    if (qi < 3 && n->doorbell_fd[qi] < 0)
        n->doorbell_fd[qi] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* Device lock held. A reset (the guest's, or hvc_vm_reset_devices())
 * returns everything the guest's traffic put in the device to its state
 * at creation; what the VMM set (MAC, link, the back end and whether it
 * is attached) stays:
 *  - packets the tap gave for the old driver (its offloads may differ
 *    from the next one's); the worker touches rxq under this lock only;
 *  - packets the old driver sent that wait in the holding queue: a reset
 *    ends that driver (a reboot, a driver reload), and its packets,
 *    carrying the old instance's connections and addresses, would reach
 *    the network after the guest has started again; Ethernet may drop
 *    them, and they are counted as drops. The worker owns the queue, so
 *    the reset only asks: the quiesce that follows every reset (drain()
 *    in virtio_mmio.c), or the worker's next pass, empties it before
 *    anything else looks;
 *  - the address the guest's traffic taught the announces: the next
 *    driver may use another (until it sends, an announce is a RARP). */
static void net_reset(struct vdev *d)
{
    struct net *n = d->impl;
    n->status &= (uint16_t)~NET_S_ANNOUNCE;
    hvi_net_rx_reset(n);
    hvi_pktq_clear(&n->rxq);
    atomic_store(&n->drop_hold, true);
    atomic_store(&n->guest_ip, 0);
}

static void net_quiesce(struct vdev *d, bool on)
{
    struct net *n = d->impl;
    pthread_mutex_lock(&n->lock);
    if (on) {
        atomic_fetch_add(&n->quiesce, 1);
        while (n->busy)
            pthread_cond_wait(&n->idle, &n->lock);
        hvi_net_reset_hold(n); /* what a reset asked (net_reset()) */
    } else if (atomic_load(&n->quiesce) > 0 &&
               atomic_fetch_sub(&n->quiesce, 1) == 1) {
        n->kicked = true;
        hvi_net_wake(n);
    }
    pthread_mutex_unlock(&n->lock);
}

static void net_free(struct net *n)
{
    for (int i = 0; i < 3; i++)
        if (n->doorbell_fd[i] >= 0)
            close(n->doorbell_fd[i]);
    if (n->wake_fd >= 0)
        close(n->wake_fd);
    if (n->own_fd && n->tap_fd >= 0)
        close(n->tap_fd);
    hvi_pktq_free(&n->rxq);
    hvi_pktq_free(&n->hold);
    free(n->rx_buf);
    free(n->tx_buf);
    pthread_cond_destroy(&n->idle);
    pthread_mutex_destroy(&n->backend_lock);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

static void net_destroy(struct vdev *d)
{
    struct net *n = d->impl;
    if (!n)
        return;
    if (n->started) {
        net_quiesce(d, true);
        pthread_mutex_lock(&n->lock);
        n->stop = true;
        hvi_net_wake(n);
        pthread_mutex_unlock(&n->lock);
        pthread_join(n->worker, NULL);
    }
    net_free(n);
}

/* A hand-over passes the tap itself (one slot; -1 while detached). Read
 * under backend_lock, so that a detach or attach racing the hand-over
 * does not leave a descriptor it is closing in the slot. */
static int net_handover_fds(struct vdev *d, int *fds, size_t capacity,
                            size_t *count)
{
    struct net *n = d->impl;
    *count = 1;
    if (capacity) {
        pthread_mutex_lock(&n->backend_lock);
        fds[0] = n->tap_fd;
        pthread_mutex_unlock(&n->backend_lock);
    }
    return 0;
}

static const struct vdev_model net_model = {
    .type = "virtio-net",
    .device_id = 1,
    .nr_queues = 3,
    .features = NET_FEATURES_BASE | NET_FEATURES_OFFLOAD,
    .config_size = 10,
    .config_read = net_config,
    .notify = net_notify,
    .reset = net_reset,
    .destroy = net_destroy,
    .quiesce = net_quiesce,
    .doorbell = net_doorbell,
    .save = hvi_net_save,
    .load = hvi_net_load,
    .handover_fds = net_handover_fds,
    .unfetched_queues = 1u << NET_RXQ,
};

static const struct vdev_model net_model_plain = {
    .type = "virtio-net",
    .device_id = 1,
    .nr_queues = 3,
    .features = NET_FEATURES_BASE,
    .config_size = 10,
    .config_read = net_config,
    .notify = net_notify,
    .reset = net_reset,
    .destroy = net_destroy,
    .quiesce = net_quiesce,
    .doorbell = net_doorbell,
    .save = hvi_net_save,
    .load = hvi_net_load,
    .handover_fds = net_handover_fds,
    .unfetched_queues = 1u << NET_RXQ,
};

static struct net *net_of(hvc_device *dev, const char *fn)
{
    struct vdev *d = dev ? hvi_vdev_of(dev) : NULL;
    if (!d || (d->model != &net_model && d->model != &net_model_plain)) {
        hvi_error(-EINVAL, "%s: not a virtio-net device", fn);
        return NULL;
    }
    return d->impl;
}

/* Opens the back end the options or arguments name into *fd, *own and
 * name. */
static int open_backend(const char *tap, int fd, int *out, bool *own,
                        char name[HVI_OS_TAP_NAME_MAX])
{
    int r;
    if (tap) {
        if ((r = hvi_os_tap_open(tap, out)) < 0)
            return r;
        snprintf(name, HVI_OS_TAP_NAME_MAX, "%s", tap);
        *own = true;
        return 0;
    }
    if (fd < 0)
        return hvi_error(-EINVAL, "virtio-net needs a tap name or descriptor");
    if ((r = hvi_os_tap_adopt(fd, name)) < 0)
        return r;
    *out = fd;
    *own = false;
    return 0;
}

static int start_worker(struct net *n)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&n->worker, NULL, worker, n);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r)
        return hvi_error(-r, "virtio-net: starting its worker thread: %s",
                         hvc_strerror(-r));
    pthread_setname_np(n->worker, "hvc-net");
    n->started = true;
    return 0;
}

static void random_mac(uint8_t mac[6])
{
    uint64_t t = hvi_net_now_ns() ^ ((uint64_t)getpid() << 32);
    t ^= t >> 29;
    t *= 0xbf58476d1ce4e5b9ull;
    t ^= t >> 32;
    mac[0] = 0x52; /* locally administered, unicast */
    mac[1] = 0x54;
    for (int i = 2; i < 6; i++)
        mac[i] = (uint8_t)(t >> (8 * i));
}

int hvc_virtio_net_create(hvc_vm *vm, const hvc_virtio_net_options *opts,
                          hvc_device **out)
{
    if (!vm || !opts)
        return hvi_error(-EINVAL, "hvc_virtio_net_create: NULL argument");
    hvc_virtio_net_options o = HVC_VIRTIO_NET_OPTIONS_INIT;
    int r = hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                             "hvc_virtio_net_options");
    if (r < 0)
        return r;
    if (o.flags &
        ~(uint32_t)(HVC_VIRTIO_NET_NO_OFFLOADS | HVC_VIRTIO_NET_DETACHED))
        return hvi_error(-EINVAL, "virtio-net flags 0x%x have unknown bits",
                         o.flags);
    if (o.queues > 1)
        return hvi_error(-EINVAL,
                         "virtio-net: %u queue pairs; only 1 is supported",
                         o.queues);
    if (o.mac[0] & 1)
        return hvi_error(-EINVAL,
                         "virtio-net: MAC %02x:%02x:%02x:%02x:%02x:%02x is "
                         "multicast",
                         o.mac[0], o.mac[1], o.mac[2], o.mac[3], o.mac[4],
                         o.mac[5]);
    if (o.reserved)
        return hvi_error(-EINVAL, "virtio-net: reserved is %u, not 0",
                         o.reserved);
    struct net *n = calloc(1, sizeof(*n));
    if (!n)
        return hvi_error(-ENOMEM, "out of memory creating virtio-net");
    pthread_mutex_init(&n->lock, NULL);
    pthread_mutex_init(&n->backend_lock, NULL);
    pthread_cond_init(&n->idle, NULL);
    n->wake_fd = -1;
    n->tap_fd = -1;
    n->offload_set = -1;
    for (int i = 0; i < 3; i++)
        n->doorbell_fd[i] = -1;
    atomic_init(&n->quiesce, 0);
    atomic_init(&n->announce, false);
    atomic_init(&n->drop_hold, false);
    atomic_init(&n->guest_ip, 0);
    n->st.size = sizeof(n->st);
    n->status = NET_S_LINK_UP;
    n->offloads = !(o.flags & HVC_VIRTIO_NET_NO_OFFLOADS);
    n->model = n->offloads ? &net_model : &net_model_plain;
    static const uint8_t zero[6];
    if (memcmp(o.mac, zero, 6) == 0)
        random_mac(n->mac);
    else
        memcpy(n->mac, o.mac, 6);
    n->rx_buf = malloc(NET_PKT_MAX);
    n->tx_buf = malloc(NET_PKT_MAX);
    if (!n->rx_buf || !n->tx_buf ||
        !hvi_pktq_init(&n->rxq, NET_RXQ_MAX, NET_RXQ_BYTES) ||
        !hvi_pktq_init(&n->hold, NET_HOLD_MAX, NET_HOLD_BYTES)) {
        net_free(n);
        return hvi_error(-ENOMEM, "out of memory creating virtio-net");
    }
    n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (n->wake_fd < 0) {
        r = hvi_error(-errno, "virtio-net: eventfd: %s", hvc_strerror(-errno));
        net_free(n);
        return r;
    }
    if (o.flags & HVC_VIRTIO_NET_DETACHED) {
        if (o.tap && (!*o.tap || strlen(o.tap) >= HVI_OS_TAP_NAME_MAX)) {
            r = hvi_error(-EINVAL, "tap name \"%s\" is empty or longer than %d",
                          HVI_QUOTE(o.tap), HVI_OS_TAP_NAME_MAX - 1);
            net_free(n);
            return r;
        }
        if (o.tap)
            snprintf(n->tap_name, sizeof(n->tap_name), "%s", o.tap);
    } else if ((r = open_backend(o.tap, o.fd, &n->tap_fd, &n->own_fd,
                                 n->tap_name)) < 0) {
        net_free(n);
        return r;
    }
    hvc_device *dev;
    /* from here on the device owns n, and net_destroy() frees it */
    r = hvi_vdev_create(vm, n->model, n, &o.mmio, o.name, &dev, &n->d);
    if (r < 0)
        return r;
    if ((r = start_worker(n)) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        hvc_vm_remove_device(vm, dev);
        return hvi_error(r, "%s", why);
    }
    if (out)
        *out = dev;
    return 0;
}

int hvc_virtio_net_detach_backend(hvc_device *dev)
{
    struct net *n = net_of(dev, "hvc_virtio_net_detach_backend");
    if (!n)
        return -EINVAL;
    pthread_mutex_lock(&n->backend_lock);
    net_quiesce(n->d, true);
    int r = 0;
    if (n->tap_fd < 0) {
        r = hvi_error(-EALREADY, "%s: the back end is detached already",
                      hvc_device_name(dev));
    } else {
        if (n->own_fd)
            close(n->tap_fd);
        n->tap_fd = -1;
        n->offload_set = -1;
    }
    net_quiesce(n->d, false);
    pthread_mutex_unlock(&n->backend_lock);
    return r;
}

int hvc_virtio_net_attach_backend(hvc_device *dev, const char *tap, int fd)
{
    struct net *n = net_of(dev, "hvc_virtio_net_attach_backend");
    if (!n)
        return -EINVAL;
    pthread_mutex_lock(&n->backend_lock);
    net_quiesce(n->d, true);
    int r = 0;
    if (n->tap_fd >= 0) {
        r = hvi_error(-EISCONN, "%s: a back end is attached already",
                      hvc_device_name(dev));
    } else {
        char name[HVI_OS_TAP_NAME_MAX];
        int nfd;
        bool own;
        if (!tap && fd < 0 && !n->tap_name[0])
            r = hvi_error(-EINVAL, "%s: no tap to attach: name one",
                          hvc_device_name(dev));
        else
            r = open_backend(tap || fd >= 0 ? tap : n->tap_name, fd, &nfd, &own,
                             name);
        if (r == 0) {
            n->tap_fd = nfd;
            n->own_fd = own;
            memcpy(n->tap_name, name, sizeof(name));
            n->offload_set = -1;
            n->tap_error = false;
            hvi_net_flush_hold(n);
            atomic_store(&n->announce, true);
        }
    }
    net_quiesce(n->d, false);
    pthread_mutex_unlock(&n->backend_lock);
    return r;
}

int hvc_virtio_net_announce(hvc_device *dev)
{
    struct net *n = net_of(dev, "hvc_virtio_net_announce");
    if (!n)
        return -EINVAL;
    atomic_store(&n->announce, true);
    pthread_mutex_lock(&n->lock);
    n->kicked = true;
    hvi_net_wake(n);
    pthread_mutex_unlock(&n->lock);
    return 0;
}

int hvc_virtio_net_set_link(hvc_device *dev, int up)
{
    struct net *n = net_of(dev, "hvc_virtio_net_set_link");
    if (!n)
        return -EINVAL;
    struct vdev *d = n->d;
    pthread_mutex_lock(&d->lock);
    uint16_t s = up ? (uint16_t)(n->status | NET_S_LINK_UP)
                    : (uint16_t)(n->status & ~NET_S_LINK_UP);
    if (s != n->status) {
        n->status = s;
        d->config_generation++;
        if (d->status & VIRTIO_STATUS_DRIVER_OK)
            hvi_vdev_interrupt(d, VIRTIO_INT_CONFIG);
    }
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int hvc_virtio_net_get_stats(hvc_device *dev, hvc_virtio_net_stats *out)
{
    if (!out || out->size < offsetof(hvc_virtio_net_stats, rx_packets))
        return hvi_error(-EINVAL, "hvc_virtio_net_get_stats: NULL or a size "
                                  "too small");
    struct net *n = net_of(dev, "hvc_virtio_net_get_stats");
    if (!n)
        return -EINVAL;
    hvc_virtio_net_stats s;
    for (size_t off = offsetof(hvc_virtio_net_stats, rx_packets);
         off + 8 <= sizeof(s); off += 8) {
        uint64_t v = __atomic_load_n((uint64_t *)((char *)&n->st + off),
                                     __ATOMIC_RELAXED);
        memcpy((char *)&s + off, &v, 8);
    }
    s.attached = n->tap_fd >= 0;
    uint32_t size = out->size < sizeof(s) ? out->size : (uint32_t)sizeof(s);
    s.size = size;
    memcpy(out, &s, size);
    return 0;
}
