/* virtio-net's receive path: packets from the tap (or the host queue)
 * into the guest's receive buffers, on the device's worker thread.
 *
 * Faulty buffers. Before it writes a packet into a buffer the device asks
 * whether the buffer's pages are present (hvi_vm_gpa_present(): under
 * post-copy a page may not have arrived yet, and touching it would stall
 * this thread until it does). The walk of this queue does not wait for a
 * buffer's pages (the model's unfetched_queues, virtio_dev.h): only this
 * question looks at them. A buffer with a missing page is not waited
 * on: it goes on the list of spare buffers, marked faulty (its page is
 * requested by the question itself), and the packet goes to the next
 * buffer. Spare buffers come first for every later packet: a faulty one
 * whose page has arrived since takes that packet. The guest sees each
 * packet in the buffers the used ring names, in the used ring's order, so
 * its view stays consistent whatever order the buffers were offered in
 * (split rings without VIRTIO_F_IN_ORDER allow it).
 *
 * Bounds: at most NET_FAULTY_MAX faulty buffers; when every buffer is
 * faulty (or the list is full) packets wait in the host queue (rxq,
 * NET_RXQ_MAX packets), and beyond it they are dropped and counted. With
 * no faulty buffer and no buffer at all, the device stops reading the tap
 * (the kernel's queue holds the packets) until the driver adds buffers.
 * Nothing here ever blocks: set-aside buffers are looked at again with
 * the next packet, and every millisecond while packets wait in the host
 * queue. Their resolution time (the statistics) runs until a packet found
 * the page present.
 *
 * Spare buffers also hold the buffers a packet needing several (mergeable
 * receive buffers) took when there were not enough: they take the next
 * packet first. */
#include "net.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static bool chain_ok(struct net *n, const struct vq_elem *e)
{
    struct vdev *d = n->d;
    if (e->nr_out) {
        hvi_vdev_fail(d, "receive buffer %u has device-readable descriptors",
                      e->head);
        return false;
    }
    if (e->refused) {
        hvi_vdev_fail(d,
                      "receive buffer %u lies outside the device's memory "
                      "grants",
                      e->head);
        return false;
    }
    /* virtio 1.2 5.1.6.3.1: every buffer holds at least the header */
    if (e->in_len < NET_HDR) {
        hvi_vdev_fail(d,
                      "receive buffer %u has %" PRIu64 " bytes, fewer than "
                      "the %u-byte header",
                      e->head, e->in_len, NET_HDR);
        return false;
    }
    return true;
}

static bool present(struct net *n, const struct vq_elem *e)
{
    for (unsigned s = 0; s < e->nr_in; s++)
        if (hvi_vm_gpa_present(n->d->vm, e->seg[s].gpa, e->seg[s].len) <= 0)
            return false;
    return true;
}

static void spare_remove(struct net *n, uint32_t i)
{
    if (n->spares[i].faulty)
        n->nr_faulty--;
    memmove(&n->spares[i], &n->spares[i + 1],
            (n->nr_spares - i - 1) * sizeof(n->spares[0]));
    n->nr_spares--;
}

/* Puts buffers back at the front of the spare list, in their order. */
static void spares_unshift(struct net *n, const uint16_t *heads, uint32_t nr)
{
    memmove(&n->spares[nr], &n->spares[0], n->nr_spares * sizeof(n->spares[0]));
    for (uint32_t i = 0; i < nr; i++)
        n->spares[i] = (struct spare){heads[i], false, 0};
    n->nr_spares += nr;
}

static void set_faulty(struct net *n, struct spare *s)
{
    s->faulty = true;
    s->since_ns = hvi_net_now_ns();
    n->nr_faulty++;
    NET_STAT_ADD(n, faulty_events, 1);
}

static void resolved(struct net *n, const struct spare *s)
{
    uint64_t w = hvi_net_now_ns() - s->since_ns;
    NET_STAT_ADD(n, faulty_resolved, 1);
    NET_STAT_ADD(n, faulty_wait_ns_total, w);
    if (w > __atomic_load_n(&n->st.faulty_wait_ns_max, __ATOMIC_RELAXED))
        NET_STAT_SET(n, faulty_wait_ns_max, w);
}

/* The next usable buffer into *e: a spare one first, else one from the
 * ring; faulty ones are set aside on the way. 1, 0 (none usable now), -1
 * (the device failed). */
static int next_buffer(struct net *n, uint32_t *si, struct vq_elem *e)
{
    struct vdev *d = n->d;
    struct vq *q = &d->vq[NET_RXQ];
    while (*si < n->nr_spares) {
        struct spare *s = &n->spares[*si];
        if (hvi_vq_walk(d, q, s->head, e) < 0 || !chain_ok(n, e))
            return -1;
        if (!present(n, e)) {
            if (!s->faulty)
                set_faulty(n, s);
            (*si)++;
            continue;
        }
        if (s->faulty)
            resolved(n, s);
        spare_remove(n, *si);
        return 1;
    }
    for (;;) {
        if (n->nr_faulty >= NET_FAULTY_MAX || n->nr_spares >= VIRTIO_QUEUE_MAX)
            return 0; /* no room to set another one aside */
        int r = hvi_vq_pop(d, q, e);
        if (r <= 0)
            return r;
        if (!chain_ok(n, e))
            return -1;
        if (present(n, e))
            return 1;
        struct spare *s = &n->spares[n->nr_spares++];
        *s = (struct spare){e->head, false, 0};
        set_faulty(n, s);
        *si = n->nr_spares;
    }
}

static void mark_written(struct vdev *d, const struct vq_elem *e, uint32_t len)
{
    for (unsigned s = 0; s < e->nr_in && len; s++) {
        uint32_t k = e->seg[s].len < len ? e->seg[s].len : len;
        hvc_vm_mark_dirty(d->vm, e->seg[s].gpa, k);
        len -= k;
    }
}

int hvi_net_rx_deliver(struct net *n, uint8_t *pkt, uint32_t len, bool *pushed)
{
    struct vdev *d = n->d;
    struct vq *q = &d->vq[NET_RXQ];
    bool mrg = d->driver_features & NET_F_MRG_RXBUF;
    static __thread uint16_t heads[VIRTIO_QUEUE_MAX];
    static __thread uint32_t lens[VIRTIO_QUEUE_MAX];
    uint32_t nch = 0, off = 0, si = 0;
    while (off < len && nch < q->num) {
        struct vq_elem *e = nch == 0 ? &n->elem0 : &n->elem;
        int r = next_buffer(n, &si, e);
        if (r < 0)
            return NET_RX_FAILED;
        if (r == 0)
            break;
        if (!mrg && e->in_len < len) {
            /* one buffer per packet, and this one is too small: the
             * packet goes, the buffer stays for the next one */
            uint16_t h = e->head;
            spares_unshift(n, &h, 1);
            NET_STAT_ADD(n, rx_dropped, 1);
            return NET_RX_OK;
        }
        uint32_t take = e->in_len < len - off ? (uint32_t)e->in_len : len - off;
        hvi_vq_write_in(e, 0, pkt + off, take);
        mark_written(d, e, take);
        heads[nch] = e->head;
        lens[nch] = take;
        nch++;
        off += take;
    }
    if (off < len) {
        spares_unshift(n, heads, nch);
        if (nch < q->num)
            return NET_RX_NOBUF;
        /* every buffer of the ring together is too small */
        NET_STAT_ADD(n, rx_dropped, 1);
        return NET_RX_OK;
    }
    uint16_t nb = (uint16_t)nch;
    hvi_vq_write_in(&n->elem0, 10, &nb, sizeof(nb)); /* num_buffers */
    for (uint32_t i = 0; i < nch; i++)
        hvi_vq_push(d, q, heads[i], lens[i]);
    *pushed = true;
    NET_STAT_ADD(n, rx_packets, 1);
    NET_STAT_ADD(n, rx_bytes, len - NET_HDR);
    return NET_RX_OK;
}

bool hvi_net_rx_wants_tap(struct net *n)
{
    return n->tap_fd >= 0 && !n->tap_error &&
           (n->rxq.count == 0 || n->nr_faulty > 0);
}

void hvi_net_rx_reset(struct net *n)
{
    n->nr_spares = n->nr_faulty = 0;
}

/* Device lock held; false when the packet must wait. */
static bool deliver_front(struct net *n, bool *pushed)
{
    struct pkt *p = hvi_pktq_front(&n->rxq);
    int r = hvi_net_rx_deliver(n, p->data, p->len, pushed);
    if (r == NET_RX_NOBUF)
        return false;
    hvi_pktq_pop(&n->rxq);
    return true;
}

bool hvi_net_rx_pass(struct net *n)
{
    struct vdev *d = n->d;
    bool pushed = false;
    pthread_mutex_lock(&d->lock);
    for (unsigned budget = 64; budget; budget--) {
        if (atomic_load(&n->quiesce) || !hvi_net_live(d))
            break;
        while (n->rxq.count && deliver_front(n, &pushed))
            ;
        if (!hvi_net_live(d) || !hvi_net_rx_wants_tap(n))
            break;
        pthread_mutex_unlock(&d->lock); /* no lock across the syscall */
        long k = hvi_os_tap_read(n->tap_fd, n->rx_buf, NET_PKT_MAX);
        pthread_mutex_lock(&d->lock);
        if (k == -EAGAIN)
            break; /* nothing more now */
        if (k < 0) {
            /* e.g. the interface was deleted: waiting on the tap would
             * only wake the worker again and again */
            if (!n->tap_error)
                hvi_log(HVC_LOG_ERROR, "%s: reading tap \"%s\": %s",
                        hvc_device_name(d->dev), HVI_QUOTE(n->tap_name),
                        hvc_strerror((int)k));
            n->tap_error = true;
            break;
        }
        if (k < (long)NET_HDR + 14) {
            NET_STAT_ADD(n, rx_dropped, 1);
            continue;
        }
        int r = NET_RX_NOBUF;
        if (n->rxq.count == 0 && hvi_net_live(d))
            r = hvi_net_rx_deliver(n, n->rx_buf, (uint32_t)k, &pushed);
        if (r != NET_RX_NOBUF)
            continue;
        /* no buffer now: the host queue, or a drop when it is full */
        if (hvi_pktq_push(&n->rxq, n->rx_buf, (uint32_t)k))
            NET_STAT_ADD(n, rx_queued, 1);
        else
            NET_STAT_ADD(n, rx_dropped, 1);
    }
    if (pushed)
        hvi_vq_interrupt(d, &d->vq[NET_RXQ]);
    /* a device the driver has not started (or that failed) leaves the
     * tap's packets in the kernel's queue, and the worker sleeps */
    bool want = hvi_net_live(d) && hvi_net_rx_wants_tap(n);
    pthread_mutex_unlock(&d->lock);
    return want;
}
