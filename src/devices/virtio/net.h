/* virtio-net internals shared by its files: the device and its worker
 * (virtio_net.c), the receive path with set-aside buffers (net_rx.c), the
 * transmit path, holding queue, control queue and announces (net_tx.c),
 * and saved state (net_state.c). */
#ifndef HVCORE_VIRTIO_NET_H
#define HVCORE_VIRTIO_NET_H

#include "../../os/os.h"
#include "virtio_dev.h"

/* Feature bits, virtio 1.2 section 5.1.3. */
#define NET_F_CSUM (1ull << 0)
#define NET_F_GUEST_CSUM (1ull << 1)
#define NET_F_MAC (1ull << 5)
#define NET_F_GUEST_TSO4 (1ull << 7)
#define NET_F_GUEST_TSO6 (1ull << 8)
#define NET_F_GUEST_ECN (1ull << 9)
#define NET_F_HOST_TSO4 (1ull << 11)
#define NET_F_HOST_TSO6 (1ull << 12)
#define NET_F_HOST_ECN (1ull << 13)
#define NET_F_MRG_RXBUF (1ull << 15)
#define NET_F_STATUS (1ull << 16)
#define NET_F_CTRL_VQ (1ull << 17)
#define NET_F_GUEST_ANNOUNCE (1ull << 21)

#define NET_S_LINK_UP 1u
#define NET_S_ANNOUNCE 2u

#define NET_RXQ 0
#define NET_TXQ 1
#define NET_CTRLQ 2

#define NET_HDR 12u /* struct virtio_net_hdr_v1 */
#define NET_FRAME_MAX                                                          \
    (65536u + 14u) /* a GSO frame with its Ethernet header                     \
                    */
#define NET_PKT_MAX (NET_HDR + NET_FRAME_MAX)

/* Bounds. Set-aside buffers: at most NET_FAULTY_MAX with a missing page
 * (the rest of the list are buffers taken and not used yet, at most a
 * queue's worth). Host receive queue and transmit holding queue: packets
 * and bytes. */
#define NET_FAULTY_MAX 64u
#define NET_RXQ_MAX 256u
#define NET_RXQ_BYTES (2u << 20)
#define NET_HOLD_MAX 256u
#define NET_HOLD_BYTES (2u << 20)

/* A queue of whole packets (virtio-net header first), each malloc'd. */
struct pkt {
    uint8_t *data;
    uint32_t len;
};
struct pktq {
    struct pkt *p; /* ring of cap entries */
    uint32_t cap, head, count;
    uint64_t bytes, max_bytes;
};

/* A receive buffer the device took off the available ring and has not
 * used yet: its page was missing (faulty), or a packet needing several
 * buffers did not find enough. */
struct spare {
    uint16_t head;
    bool faulty;
    uint64_t since_ns; /* when it was found faulty */
};

struct net {
    struct vdev *d;
    const struct vdev_model *model;
    uint8_t mac[6];
    uint16_t status;      /* NET_S_*, under the device lock */
    bool offloads;        /* offered to the guest */
    atomic_uint guest_ip; /* learned from its traffic, network order; 0 */

    /* The back end: changed only with the worker quiesced, and with
     * backend_lock held (detach and attach against each other; taken
     * before quiescing, never by the worker or under another lock; also
     * taken alone by handover_fds to read tap_fd). */
    pthread_mutex_t backend_lock;
    int tap_fd; /* -1 while detached */
    bool own_fd;
    char tap_name[HVI_OS_TAP_NAME_MAX];
    int offload_set; /* HVI_OS_TAP_* bits applied to the tap, or -1 */
    bool tap_error;  /* a read failed for good (the interface is gone):
                      * the tap is not waited on until the next attach */

    /* The worker and what other threads hand it, under lock (below the
     * device lock: virtio_dev.h). */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    pthread_t worker;
    bool started, busy, stop, kicked;
    atomic_bool announce;  /* an announce waits to go out */
    atomic_bool drop_hold; /* a reset asked the holding queue emptied:
                            * done by the next quiescer or worker pass */
    atomic_uint quiesce;
    int wake_fd;
    int doorbell_fd[3];
    /* What the worker waits for between passes, decided at the end of
     * each (the worker's own). */
    bool poll_in, poll_out, poll_timer;

    /* Receive state, the worker's (or a quiescer's): spare buffers under
     * the device lock, the rest with the worker quiesced or on it. */
    struct spare spares[VIRTIO_QUEUE_MAX];
    uint32_t nr_spares, nr_faulty;
    struct pktq rxq;  /* host receive queue */
    struct pktq hold; /* transmit holding queue */
    uint8_t *rx_buf;  /* NET_PKT_MAX bytes: one read from the tap */
    uint8_t *tx_buf;  /* NET_PKT_MAX bytes: one packet from the guest */
    struct vq_elem elem, elem0; /* scratch; elem0: a packet's first buffer */

    hvc_virtio_net_stats st; /* counters: written by the worker (relaxed
                              * atomics), read by anyone */
};

#define NET_STAT_ADD(n, field, v)                                              \
    __atomic_fetch_add(&(n)->st.field, (uint64_t)(v), __ATOMIC_RELAXED)
#define NET_STAT_SET(n, field, v)                                              \
    __atomic_store_n(&(n)->st.field, (uint64_t)(v), __ATOMIC_RELAXED)

uint64_t hvi_net_now_ns(void);

/* Packet queues (net_tx.c). push copies; false when full. */
bool hvi_pktq_init(struct pktq *q, uint32_t cap, uint64_t max_bytes);
void hvi_pktq_free(struct pktq *q);
void hvi_pktq_clear(struct pktq *q);
bool hvi_pktq_push(struct pktq *q, const void *data, uint32_t len);
struct pkt *hvi_pktq_front(struct pktq *q);
void hvi_pktq_pop(struct pktq *q);

/* net_rx.c. Delivers one packet (header first) into the guest's receive
 * buffers; device lock held. NET_RX_OK (used, or dropped as too big and
 * counted), NET_RX_NOBUF (keep it; no usable buffer now), NET_RX_FAILED
 * (the device failed; drop it). */
enum { NET_RX_OK, NET_RX_NOBUF, NET_RX_FAILED };
int hvi_net_rx_deliver(struct net *n, uint8_t *pkt, uint32_t len, bool *pushed);
/* The receive pass of the worker: the host queue, then the tap. Returns
 * whether the worker should wait for the tap to be readable. */
bool hvi_net_rx_pass(struct net *n);
/* Whether the worker should wait for the tap to be readable. */
bool hvi_net_rx_wants_tap(struct net *n);
/* Device reset: spare buffers belong to rings that are gone. */
void hvi_net_rx_reset(struct net *n);

/* net_tx.c. The transmit and control passes, and announces. tx_pass
 * returns true when it stopped with work left (its budget ran out). */
bool hvi_net_tx_pass(struct net *n);
void hvi_net_ctrl_pass(struct net *n);
void hvi_net_send_announce(struct net *n);
/* Caller: the worker, or a thread with the worker quiesced. */
void hvi_net_flush_hold(struct net *n);
/* Empties the holding queue (counted as drops) when a reset asked it;
 * same callers. */
void hvi_net_reset_hold(struct net *n);

/* net_state.c: the model's save and load callbacks. */
int hvi_net_save(struct vdev *d, struct hvi_rec_writer *w);
int hvi_net_load(struct vdev *d, const struct hvi_rec_reader *r);

/* virtio_net.c */
bool hvi_net_live(const struct vdev *d);
void hvi_net_wake(struct net *n);

#endif
