/* virtio-net's own part of the device's saved state (the transport saves
 * status, features and queues: virtio_state.c): MAC, link and announce
 * status, the guest address the announces name, the receive buffers the
 * device took and has not used (set aside), the packets in the transmit
 * holding queue and in the host receive queue. The worker is quiesced and
 * the device lock held on both sides. A load checks every field before it
 * changes anything, and asks for an announce: after a restore, migration
 * or hand-over, peers learn where the guest is now. */
#include "net.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum {
    T_MAC = 200,
    T_NSTATUS,
    T_GUEST_IP,
    T_SPARES,
    T_HOLD,
    T_RXQ,
};

/* A packet queue as [u32 length][bytes]... */
static void save_queue(struct hvi_rec_writer *w, uint16_t tag,
                       const struct pktq *q)
{
    size_t total = 0;
    for (uint32_t i = 0; i < q->count; i++)
        total += 4 + q->p[(q->head + i) % q->cap].len;
    static uint8_t none;
    uint8_t *buf = total ? malloc(total) : &none;
    if (!buf) {
        w->overflow = true; /* the caller reports -ENOSPC; retried */
        return;
    }
    size_t at = 0;
    for (uint32_t i = 0; i < q->count; i++) {
        const struct pkt *p = &q->p[(q->head + i) % q->cap];
        memcpy(buf + at, &p->len, 4);
        memcpy(buf + at + 4, p->data, p->len);
        at += 4 + p->len;
    }
    hvi_rec_bytes(w, tag, buf, (uint32_t)total);
    if (total)
        free(buf);
}

int hvi_net_save(struct vdev *d, struct hvi_rec_writer *w)
{
    struct net *n = d->impl;
    hvi_rec_bytes(w, T_MAC, n->mac, 6);
    hvi_rec_u64(w, T_NSTATUS, n->status);
    hvi_rec_u64(w, T_GUEST_IP, atomic_load(&n->guest_ip));
    uint8_t heads[2 * VIRTIO_QUEUE_MAX];
    for (uint32_t i = 0; i < n->nr_spares; i++)
        memcpy(heads + 2 * i, &n->spares[i].head, 2);
    hvi_rec_bytes(w, T_SPARES, heads, 2 * n->nr_spares);
    save_queue(w, T_HOLD, &n->hold);
    save_queue(w, T_RXQ, &n->rxq);
    return 0;
}

static int load_queue(const struct hvi_rec_reader *r, uint16_t tag,
                      struct pktq *q, uint32_t cap, uint64_t max_bytes,
                      const char *what)
{
    const void *p;
    uint32_t len;
    int e = hvi_rec_get_bytes(r, tag, &p, &len);
    if (e < 0)
        return e;
    if (!hvi_pktq_init(q, cap, max_bytes))
        return hvi_error(-ENOMEM, "%s state: out of memory", r->what);
    const uint8_t *b = p;
    for (uint32_t at = 0; at < len;) {
        uint32_t k;
        if (len - at < 4)
            goto bad;
        memcpy(&k, b + at, 4);
        at += 4;
        if (k < NET_HDR || k > NET_PKT_MAX || k > len - at ||
            !hvi_pktq_push(q, b + at, k))
            goto bad;
        at += k;
    }
    return 0;
bad:
    hvi_pktq_free(q);
    return hvi_error(-EBADMSG,
                     "%s state: the %s is malformed or holds more than "
                     "%u packets or %" PRIu64 " bytes",
                     r->what, what, cap, max_bytes);
}

int hvi_net_load(struct vdev *d, const struct hvi_rec_reader *r)
{
    struct net *n = d->impl;
    const void *mac, *spares;
    uint32_t mac_len, sp_len;
    uint64_t status, ip;
    int e;
    if ((e = hvi_rec_get_bytes(r, T_MAC, &mac, &mac_len)) < 0 ||
        (e = hvi_rec_get_u64(r, T_NSTATUS, &status)) < 0 ||
        (e = hvi_rec_get_u64(r, T_GUEST_IP, &ip)) < 0 ||
        (e = hvi_rec_get_bytes(r, T_SPARES, &spares, &sp_len)) < 0)
        return e;
    if (mac_len != 6 || (((const uint8_t *)mac)[0] & 1))
        return hvi_error(-EBADMSG, "%s state: the MAC is no unicast address",
                         r->what);
    if (status > (NET_S_LINK_UP | NET_S_ANNOUNCE) || ip > UINT32_MAX)
        return hvi_error(-EBADMSG,
                         "%s state: status 0x%" PRIx64 " or address 0x%" PRIx64
                         " is impossible",
                         r->what, status, ip);
    if (sp_len % 2 || sp_len / 2 > VIRTIO_QUEUE_MAX)
        return hvi_error(-EBADMSG, "%s state: %u bytes of set-aside buffers",
                         r->what, sp_len);
    const uint8_t *sp = spares;
    for (uint32_t i = 0; i < sp_len / 2; i++) {
        uint16_t h;
        memcpy(&h, sp + 2 * i, 2);
        if (h >= VIRTIO_QUEUE_MAX)
            return hvi_error(-EBADMSG,
                             "%s state: set-aside buffer %u names "
                             "descriptor %u",
                             r->what, i, h);
    }
    struct pktq hold, rxq;
    if ((e = load_queue(r, T_HOLD, &hold, NET_HOLD_MAX, NET_HOLD_BYTES,
                        "holding queue")) < 0)
        return e;
    if ((e = load_queue(r, T_RXQ, &rxq, NET_RXQ_MAX, NET_RXQ_BYTES,
                        "receive queue")) < 0) {
        hvi_pktq_free(&hold);
        return e;
    }
    /* all good: apply */
    memcpy(n->mac, mac, 6);
    n->status = (uint16_t)status;
    atomic_store(&n->guest_ip, (uint32_t)ip);
    n->nr_spares = sp_len / 2;
    n->nr_faulty = 0;
    for (uint32_t i = 0; i < n->nr_spares; i++) {
        memcpy(&n->spares[i].head, sp + 2 * i, 2);
        n->spares[i].faulty = false;
    }
    hvi_pktq_free(&n->hold);
    hvi_pktq_free(&n->rxq);
    n->hold = hold;
    n->rxq = rxq;
    NET_STAT_SET(n, tx_holding, n->hold.count);
    n->offload_set = -1;
    atomic_store(&n->announce, true);
    return 0;
}
