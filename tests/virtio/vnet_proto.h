/* What the virtio-net test guest (tests/virtio/vnet.c) and its host side
 * (tests/test_virtio_net.c) agree on: where the device sits, the command
 * at DATA_IN (vt's, proto.h: DATA_IN and DATA_OUT), and the counters the
 * guest keeps at DATA_OUT while it runs. */
#ifndef VN_PROTO_H
#define VN_PROTO_H

#include "proto.h"

#define VN_BASE 0xd0000600u
#define VN_IRQ 8
#define VN_RXBUF 0x280000u /* VN_NRX buffers of VN_BUFSZ */
#define VN_TXBUF 0x290000u /* VN_NTX buffers of VN_BUFSZ */
#define VN_CTRL 0x2a0000u
#define VN_MAL 0x2b0000u   /* the malicious driver's scratch */
#define VN_TSOTX 0x300000u /* VN_TCP: one large transmit frame (64 KiB) */
#define VN_BIGRX 0x320000u /* a packet of several buffers, put together */
#define VN_BIGRX_LEN 0x10000u
#define VN_NRX 32u
#define VN_NTX 32u
#define VN_BUFSZ 2048u
#define VN_MAGIC 0x766e6574u /* "vnet" */

/* Feature bits (virtio 1.2 5.1.3). */
#define VN_F_CSUM (1ull << 0)
#define VN_F_GUEST_CSUM (1ull << 1)
#define VN_F_GUEST_TSO4 (1ull << 7)
#define VN_F_HOST_TSO4 (1ull << 11)
#define VN_F_MAC (1ull << 5)
#define VN_F_MRG_RXBUF (1ull << 15)
#define VN_F_STATUS (1ull << 16)
#define VN_F_CTRL_VQ (1ull << 17)
#define VN_F_GUEST_ANNOUNCE (1ull << 21)

enum {
    VN_TRAFFIC = 0, /* ARP, ICMP echo and UDP both ways until told to stop */
    VN_MAL_LOOP,    /* first a transmit chain that loops */
    VN_MAL_OUTSIDE, /* first a transmit buffer outside RAM */
    VN_MAL_TINY_RX, /* first a 1-byte receive buffer */
    VN_MAL_BIG_TX,  /* first a transmit chain of 64 KiB + 4 KiB */
    VN_TCP,         /* a TCP connection to the host (vnet_tcp.h): sends tcp_len
                     * bytes in large frames (TSO when HOST_TSO4 was accepted),
                     * takes tcp_rx_len bytes back, besides ARP and ICMP */
};

struct vn_cmd {
    uint32_t magic;
    uint32_t mode;
    uint64_t features; /* accepted if offered, besides VERSION_1 */
    uint8_t guest_ip[4];
    uint8_t host_ip[4];
    uint16_t guest_port;   /* UDP: where the guest listens */
    uint16_t host_port;    /* UDP: where the guest sends */
    uint32_t udp_count;    /* datagrams to send */
    uint64_t udp_interval; /* TSC ticks between them */
    uint32_t pings;        /* echo requests to send to the host */
    uint32_t stop;         /* the host writes 1: report and stop */
    uint32_t rx_buf_len;   /* bytes per receive buffer; 0: VN_BUFSZ */
    uint32_t rx_base;      /* where the receive buffers are; 0: VN_RXBUF */
    uint32_t gap_epoch;    /* the host changes it: the guest starts its
                            * loop-gap measure (vn_out::gap_max) over */
    /* VN_TCP: the stream bytes at offset k are vn_tcp_byte(k, seed), 0x11
     * from the guest, 0x5a from the host */
    uint32_t tcp_len;    /* bytes the guest sends */
    uint32_t tcp_rx_len; /* bytes it expects from the host */
    uint16_t tcp_port;   /* the host's listening port */
    uint16_t tcp_window; /* the window the guest advertises; 0: 30000 */
    uint16_t tcp_mss;    /* segment size of its TSO frames; 0: 1448 */
    uint16_t tcp_pad;
    uint32_t tcp_frame; /* payload bytes per frame at most; 0: 61440 */
    uint64_t tcp_rto;   /* TSC ticks without an acknowledgement before
                         * the guest sends again from the first unacked
                         * byte */
};

struct vn_out {
    uint32_t magic;
    uint32_t error; /* VT_E_* */
    uint32_t detail;
    uint32_t status; /* device Status at the end */
    uint64_t dev_features, drv_features;
    uint8_t mac[6];
    uint16_t net_status;
    uint32_t mal_status; /* Status after the malicious request */
    uint32_t arp_replies_sent, arp_replies_got;
    uint32_t echo_replies_sent, echo_replies_got;
    uint32_t udp_sent, udp_rx, udp_rx_gaps, udp_rx_max;
    uint32_t csum_bad, csum_partial;
    uint32_t announces;
    uint32_t rx_packets, tx_packets;
    uint32_t loops;
    uint32_t rx_merged;    /* packets that came in several buffers */
    uint32_t gap_epoch;    /* the vn_cmd::gap_epoch the measure below is of */
    uint64_t gap_max;      /* the largest TSC difference between two passes
                            * of the main loop since that epoch began */
    uint32_t gap_loops;    /* passes of the loop since that epoch began */
    uint32_t gap_max_loop; /* the pass (of those) that ended gap_max */
    /* VN_TCP */
    uint32_t tcp_state;     /* VN_TCP_* */
    uint32_t tcp_acked;     /* bytes of ours the host acknowledged */
    uint32_t tso_frames;    /* frames sent with a GSO header */
    uint32_t tso_max;       /* the largest payload in one frame sent */
    uint32_t tcp_retx;      /* times it went back to the first unacked */
    uint32_t tcp_rx_bytes;  /* bytes taken in order from the host */
    uint32_t tcp_rx_bad;    /* of them, not the pattern */
    uint32_t tcp_rx_ooo;    /* segments not at the next expected byte */
    uint32_t gso_rx_frames; /* frames received with a GSO header */
    uint32_t gso_rx_max;    /* the largest TCP payload in one frame */
    uint32_t tcp_segs_rx;   /* TCP segments of the connection received */
};

enum { VN_TCP_NONE, VN_TCP_SYN_SENT, VN_TCP_OPEN, VN_TCP_SENT };

/* The stream's byte at offset @k. */
static inline uint8_t vn_tcp_byte(uint32_t k, uint8_t seed)
{
    return (uint8_t)(k * 31u + (k >> 8) + seed);
}

#endif
