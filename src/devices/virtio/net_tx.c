/* virtio-net's transmit side, on the device's worker thread: packets from
 * the guest to the tap, the holding queue that keeps them while the back
 * end is detached (or the tap cannot take more), the control queue, and
 * announces (a gratuitous ARP or RARP for the guest on the tap).
 *
 * A transmit buffer is copied out and returned to the guest at once; the
 * copy then goes to the tap, or, when the tap is detached or full, into
 * the holding queue (NET_HOLD_MAX packets, NET_HOLD_BYTES bytes). Held
 * packets leave first, in order, when the tap takes packets again. While
 * detached, a packet that finds the queue full is dropped and counted (so
 * the guest never stalls); while attached to a full tap the device stops
 * taking buffers instead, and the guest's queue holds them. */
#include "net.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

bool hvi_pktq_init(struct pktq *q, uint32_t cap, uint64_t max_bytes)
{
    memset(q, 0, sizeof(*q));
    q->p = calloc(cap, sizeof(*q->p));
    q->cap = cap;
    q->max_bytes = max_bytes;
    return q->p != NULL;
}

void hvi_pktq_clear(struct pktq *q)
{
    while (q->count)
        hvi_pktq_pop(q);
}

void hvi_pktq_free(struct pktq *q)
{
    if (q->p)
        hvi_pktq_clear(q);
    free(q->p);
    q->p = NULL;
}

bool hvi_pktq_push(struct pktq *q, const void *data, uint32_t len)
{
    if (q->count == q->cap || q->bytes + len > q->max_bytes)
        return false;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return false;
    memcpy(copy, data, len);
    q->p[(q->head + q->count) % q->cap] = (struct pkt){copy, len};
    q->count++;
    q->bytes += len;
    return true;
}

struct pkt *hvi_pktq_front(struct pktq *q)
{
    return q->count ? &q->p[q->head] : NULL;
}

void hvi_pktq_pop(struct pktq *q)
{
    struct pkt *p = &q->p[q->head];
    q->bytes -= p->len;
    free(p->data);
    p->data = NULL;
    q->head = (q->head + 1) % q->cap;
    q->count--;
}

/* The guest's IPv4 address, from the ARP and IPv4 packets it sends with
 * its own MAC: what a gratuitous ARP after a move announces. */
static void snoop(struct net *n, const uint8_t *f, uint32_t len)
{
    if (len < 14 || memcmp(f + 6, n->mac, 6) != 0)
        return;
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    uint32_t ip;
    if (type == 0x0806 && len >= 14 + 28 && f[14 + 4] == 6 && f[14 + 5] == 4)
        memcpy(&ip, f + 14 + 14, 4); /* sender protocol address */
    else if (type == 0x0800 && len >= 14 + 20 && (f[14] >> 4) == 4)
        memcpy(&ip, f + 14 + 12, 4); /* source address */
    else
        return;
    if (ip != 0 && ip != 0xffffffffu)
        atomic_store(&n->guest_ip, ip);
}

/* One packet to the tap: true when it went (or the tap refused it for
 * good, counted as a drop), false when the tap is full now. */
static bool send_one(struct net *n, const uint8_t *pkt, uint32_t len)
{
    long r = hvi_os_tap_write(n->tap_fd, pkt, len);
    if (r == -EAGAIN)
        return false;
    if (r < 0) {
        NET_STAT_ADD(n, tx_dropped, 1); /* e.g. the interface is down */
        return true;
    }
    NET_STAT_ADD(n, tx_packets, 1);
    NET_STAT_ADD(n, tx_bytes, len - NET_HDR);
    return true;
}

void hvi_net_flush_hold(struct net *n)
{
    struct pkt *p;
    while (n->tap_fd >= 0 && (p = hvi_pktq_front(&n->hold))) {
        if (!send_one(n, p->data, p->len))
            break;
        NET_STAT_ADD(n, tx_delivered_held, 1);
        hvi_pktq_pop(&n->hold);
    }
    NET_STAT_SET(n, tx_holding, n->hold.count);
}

void hvi_net_reset_hold(struct net *n)
{
    if (!atomic_exchange(&n->drop_hold, false))
        return;
    NET_STAT_ADD(n, tx_dropped, n->hold.count);
    hvi_pktq_clear(&n->hold);
    NET_STAT_SET(n, tx_holding, 0);
}

static void hold(struct net *n, const uint8_t *pkt, uint32_t len)
{
    if (hvi_pktq_push(&n->hold, pkt, len))
        NET_STAT_ADD(n, tx_held, 1);
    else
        NET_STAT_ADD(n, tx_dropped, 1);
    NET_STAT_SET(n, tx_holding, n->hold.count);
}

/* Takes one packet from the transmit ring into tx_buf; device lock held.
 * Its length, 0 when the ring is empty, or -1 (the device failed or the
 * packet was refused and returned). */
static long take_packet(struct net *n)
{
    struct vdev *d = n->d;
    struct vq *q = &d->vq[NET_TXQ];
    struct vq_elem *e = &n->elem;
    int r = hvi_vq_pop(d, q, e);
    if (r <= 0)
        return r;
    if (e->nr_in || e->out_len < NET_HDR || e->out_len > NET_PKT_MAX) {
        hvi_vdev_fail(d,
                      "transmit buffer %u has %" PRIu64 " readable and %" PRIu64
                      " writable bytes (a packet is %u..%u readable ones)",
                      e->head, e->out_len, e->in_len, NET_HDR, NET_PKT_MAX);
        return -1;
    }
    long len = (long)hvi_vq_read_out(e, 0, n->tx_buf, e->out_len);
    hvi_vq_push(d, q, e->head, 0);
    if (e->refused) {
        /* outside the device's grants: nothing of it leaves */
        NET_STAT_ADD(n, tx_dropped, 1);
        return -2;
    }
    return len;
}

bool hvi_net_tx_pass(struct net *n)
{
    struct vdev *d = n->d;
    bool pushed = false, more = true;
    hvi_net_flush_hold(n);
    for (unsigned budget = 64; budget; budget--) {
        bool attached = n->tap_fd >= 0;
        /* a full tap: the guest's ring holds the rest until it drains
         * (the worker waits for it to be writable) */
        if (attached && n->hold.count) {
            more = false;
            break;
        }
        pthread_mutex_lock(&d->lock);
        long len = -1;
        if (!atomic_load(&n->quiesce) && hvi_net_live(d))
            len = take_packet(n);
        if (len != -1 && len != 0)
            pushed = true;
        if (len <= 0 && len != -2) {
            if (pushed)
                hvi_vq_interrupt(d, &d->vq[NET_TXQ]);
            pthread_mutex_unlock(&d->lock);
            return false;
        }
        pthread_mutex_unlock(&d->lock);
        if (len < 0)
            continue;
        snoop(n, n->tx_buf + NET_HDR, (uint32_t)len - NET_HDR);
        if (!attached || !send_one(n, n->tx_buf, (uint32_t)len))
            hold(n, n->tx_buf, (uint32_t)len);
    }
    if (pushed) {
        pthread_mutex_lock(&d->lock);
        hvi_vq_interrupt(d, &d->vq[NET_TXQ]);
        pthread_mutex_unlock(&d->lock);
    }
    return more; /* the budget ran out: the worker looks again */
}

/* Control queue (virtio 1.2 5.1.6.5): announce acknowledgements; every
 * other command is refused (its feature is not offered). */
void hvi_net_ctrl_pass(struct net *n)
{
    struct vdev *d = n->d;
    struct vq *q = &d->vq[NET_CTRLQ];
    struct vq_elem *e = &n->elem;
    bool pushed = false;
    pthread_mutex_lock(&d->lock);
    while (!atomic_load(&n->quiesce) && hvi_net_live(d) &&
           (d->driver_features & NET_F_CTRL_VQ) && hvi_vq_pop(d, q, e) > 0) {
        uint8_t cmd[2] = {0xff, 0xff}, ack = 1; /* VIRTIO_NET_ERR */
        if (e->out_len < 2 || e->in_len < 1) {
            hvi_vdev_fail(d,
                          "control request %u has %" PRIu64
                          " readable and %" PRIu64 " writable bytes",
                          e->head, e->out_len, e->in_len);
            break;
        }
        hvi_vq_read_out(e, 0, cmd, 2);
        if (cmd[0] == 3 && cmd[1] == 0 &&
            (d->driver_features & NET_F_GUEST_ANNOUNCE)) {
            n->status &= (uint16_t)~NET_S_ANNOUNCE; /* ANNOUNCE_ACK */
            ack = 0;
        }
        hvi_vq_write_in(e, e->in_len - 1, &ack, 1);
        const struct vq_seg *last = &e->seg[e->nr_out + e->nr_in - 1];
        hvc_vm_mark_dirty(d->vm, last->gpa + last->len - 1, 1);
        hvi_vq_push(d, q, e->head, 1);
        pushed = true;
    }
    if (pushed)
        hvi_vq_interrupt(d, q);
    pthread_mutex_unlock(&d->lock);
}

/* A gratuitous ARP request for the guest's address, or, with none known,
 * a RARP naming its MAC (what peers and switches relearn the port from). */
void hvi_net_send_announce(struct net *n)
{
    uint8_t p[NET_HDR + 60] = {0};
    uint8_t *f = p + NET_HDR;
    uint32_t ip = atomic_load(&n->guest_ip);
    memset(f, 0xff, 6);
    memcpy(f + 6, n->mac, 6);
    f[12] = ip ? 0x08 : 0x80;
    f[13] = ip ? 0x06 : 0x35;
    uint8_t *a = f + 14;
    a[1] = 1;    /* Ethernet */
    a[2] = 0x08; /* IPv4 */
    a[4] = 6;
    a[5] = 4;
    a[7] = ip ? 1 : 3; /* request; RARP: reverse request */
    memcpy(a + 8, n->mac, 6);
    memcpy(a + 14, &ip, 4);
    if (!ip)
        memcpy(a + 18, n->mac, 6);
    memcpy(a + 24, &ip, 4);
    if (n->tap_fd >= 0 && hvi_os_tap_write(n->tap_fd, p, sizeof(p)) > 0)
        NET_STAT_ADD(n, announces, 1);
}
