/* VN_TCP of the virtio-net test guest (vnet.c, included there: it uses
 * its frame helpers): a TCP client just big enough to move a stream each
 * way with the host. It sends its tcp_len bytes in frames of up to
 * tcp_frame payload bytes, as many as the host's window lets it, each
 * with a GSO header (TCPv4, gso_size tcp_mss, the checksum left to the
 * host) when VIRTIO_NET_F_HOST_TSO4 was accepted, so the host side does
 * the segmentation; and it takes the host's bytes in order, counting the
 * frames that came with a GSO header (VIRTIO_NET_F_GUEST_TSO4: the host
 * did not segment them). No options but MSS, no window scaling, no
 * reordering: a segment that is not the next expected one is dropped and
 * acknowledged as what is expected; after tcp_rto without progress the
 * guest sends again from its first unacknowledged byte. */

#define TCP_GUEST_PORT 5003u
#define TCP_ISS 0x10000000u
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

static uint32_t snd_una, snd_nxt, snd_wnd, rcv_nxt;
/* tso_busy and TSO_SLOT (the transmit slot of the large buffer) are
 * vnet.c's */
static uint64_t tcp_progress; /* TSC of the last progress or (re)send */
static int tcp_need_ack;

static void put32(volatile uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static uint32_t be32(const volatile uint8_t *p)
{
    return (uint32_t)be16(p) << 16 | be16(p + 2);
}

static uint32_t tcp_mss(void)
{
    return cmd->tcp_mss ? cmd->tcp_mss : 1448u;
}

static uint32_t tcp_end(void)
{
    return TCP_ISS + 1 + cmd->tcp_len;
}

/* The TCP header at @t (ports, numbers, flags, window) for @dlen payload
 * bytes after @hlen header bytes; the checksum left 0. */
static void tcp_header(volatile uint8_t *t, uint32_t seq, uint8_t flags,
                       uint32_t hlen)
{
    put16(t, TCP_GUEST_PORT);
    put16(t + 2, cmd->tcp_port);
    put32(t + 4, seq);
    put32(t + 8, flags & TCP_ACK ? rcv_nxt : 0);
    t[12] = (uint8_t)(hlen / 4 << 4);
    t[13] = flags;
    put16(t + 14, cmd->tcp_window ? cmd->tcp_window : 30000);
    put16(t + 16, 0);
    put16(t + 18, 0);
}

/* A segment without payload (SYN with the MSS option, or ACK), its
 * checksum computed here. */
static void tcp_ctl(uint8_t flags, uint32_t seq)
{
    uint16_t s;
    volatile uint8_t *f = tx_get(&s);
    if (!f)
        return;
    eth(f, host_mac, 0x0800);
    uint32_t hlen = flags & TCP_SYN ? 24 : 20;
    volatile uint8_t *ip = f + ETH, *t = ip + 20;
    ip_header(ip, 6, 20 + hlen);
    tcp_header(t, seq, flags, hlen);
    if (flags & TCP_SYN) {
        t[20] = 2; /* MSS */
        t[21] = 4;
        put16(t + 22, 1460);
    }
    uint32_t pseudo = sum16(0, ip + 12, 8) + 6 + hlen;
    put16(t + 16, (uint16_t)~fold(sum16(pseudo, t, hlen)));
    tx_send(s, ETH + 20 + hlen);
}

/* The next frame of the stream from snd_nxt, as large as the window and
 * tcp_frame allow; 0 when nothing may go now. */
static int tcp_send_data(void)
{
    uint32_t end = tcp_end(), inflight = snd_nxt - snd_una;
    if (tso_busy || snd_nxt >= end || inflight >= snd_wnd)
        return 0;
    uint32_t len = end - snd_nxt, max = cmd->tcp_frame ? cmd->tcp_frame : 61440;
    if (len > snd_wnd - inflight)
        len = snd_wnd - inflight;
    if (max > 61440) /* VN_TSOTX's 64 KiB, and an IPv4 length */
        max = 61440;
    if (len > max)
        len = max;
    /* one descriptor: header, Ethernet, IPv4, TCP, payload */
    volatile uint8_t *h = (volatile uint8_t *)(uint64_t)VN_TSOTX;
    volatile uint8_t *f = h + HDR, *ip = f + ETH, *t = ip + 20, *pl = t + 20;
    for (uint32_t i = 0; i < HDR; i++)
        h[i] = 0;
    eth(f, host_mac, 0x0800);
    ip_header(ip, 6, 40 + len);
    tcp_header(t, snd_nxt, TCP_ACK | TCP_PSH, 20);
    uint32_t off = snd_nxt - TCP_ISS - 1;
    for (uint32_t i = 0; i < len; i++)
        pl[i] = vn_tcp_byte(off + i, 0x11);
    uint32_t pseudo = sum16(0, ip + 12, 8) + 6 + 20 + len;
    if (dev.drv_features & VN_F_CSUM) {
        /* VIRTIO_NET_HDR_F_NEEDS_CSUM from the TCP header on, the
         * pseudo-header sum (over the whole length) in place */
        h[0] = 1;
        put16(t + 16, fold(pseudo));
        h[6] = ETH + 20; /* csum_start */
        h[8] = 16;       /* csum_offset */
        if ((dev.drv_features & VN_F_HOST_TSO4) && len > tcp_mss()) {
            h[1] = 1;        /* VIRTIO_NET_HDR_GSO_TCPV4 */
            h[2] = ETH + 40; /* hdr_len */
            h[4] = (uint8_t)tcp_mss();
            h[5] = (uint8_t)(tcp_mss() >> 8);
            out->tso_frames++;
        }
    } else {
        put16(t + 16, (uint16_t)~fold(sum16(pseudo, t, 20 + len)));
    }
    struct vd_buf b = {VN_TSOTX, HDR + ETH + 40 + len, 0};
    vd_add_chain(&txq, TSO_SLOT, &b, 1);
    vd_publish(&txq);
    vd_notify(&dev, &txq);
    tso_busy = 1; /* until the device gives the slot back (reclaim_tx) */
    out->tx_packets++;
    if (len > out->tso_max)
        out->tso_max = len;
    snd_nxt += len;
    return 1;
}

/* A segment of the connection (iplen: its IPv4 length). */
static void on_tcp(const volatile uint8_t *h, const volatile uint8_t *ip,
                   uint32_t iplen)
{
    const volatile uint8_t *t = ip + 20;
    if (iplen < 40 || be16(t) != cmd->tcp_port || be16(t + 2) != TCP_GUEST_PORT)
        return;
    uint32_t doff = (uint32_t)(t[12] >> 4) * 4;
    if (doff < 20 || doff > iplen - 20)
        return;
    out->tcp_segs_rx++;
    uint8_t flags = t[13];
    uint32_t seq = be32(t + 4), ack = be32(t + 8), dlen = iplen - 20 - doff;
    if (h[1])
        out->gso_rx_frames++;
    if (dlen > out->gso_rx_max)
        out->gso_rx_max = dlen;
    if (flags & TCP_RST) {
        out->error = VT_E_CMD;
        out->detail = 0x7c9; /* reset by the host */
        return;
    }
    if (out->tcp_state == VN_TCP_SYN_SENT) {
        if ((flags & (TCP_SYN | TCP_ACK)) != (TCP_SYN | TCP_ACK) ||
            ack != TCP_ISS + 1)
            return;
        rcv_nxt = seq + 1;
        snd_una = snd_nxt = TCP_ISS + 1;
        snd_wnd = be16(t + 14);
        out->tcp_state = VN_TCP_OPEN;
        tcp_progress = vd_rdtsc();
        tcp_need_ack = 1;
        return;
    }
    if (out->tcp_state < VN_TCP_OPEN)
        return;
    if ((flags & TCP_ACK) && ack - snd_una <= snd_nxt - snd_una) {
        if (ack != snd_una)
            tcp_progress = vd_rdtsc();
        snd_una = ack;
        snd_wnd = be16(t + 14);
        out->tcp_acked = snd_una - TCP_ISS - 1;
    }
    if (dlen || (flags & TCP_FIN))
        tcp_need_ack = 1;
    if (!dlen)
        return;
    if (seq != rcv_nxt) {
        out->tcp_rx_ooo++;
        return;
    }
    const volatile uint8_t *pl = t + doff;
    uint32_t off = out->tcp_rx_bytes;
    for (uint32_t i = 0; i < dlen; i++)
        if (pl[i] != vn_tcp_byte(off + i, 0x5a))
            out->tcp_rx_bad++;
    rcv_nxt += dlen;
    out->tcp_rx_bytes += dlen;
}

/* One step of the connection, from the main loop. */
static void tcp_poll(void)
{
    if (!host_known || out->error)
        return;
    uint64_t now = vd_rdtsc();
    if (out->tcp_state == VN_TCP_NONE || (out->tcp_state == VN_TCP_SYN_SENT &&
                                          now - tcp_progress > cmd->tcp_rto)) {
        tcp_ctl(TCP_SYN, TCP_ISS);
        out->tcp_state = VN_TCP_SYN_SENT;
        tcp_progress = now;
        return;
    }
    if (out->tcp_state < VN_TCP_OPEN)
        return;
    if (snd_una != snd_nxt && now - tcp_progress > cmd->tcp_rto) {
        snd_nxt = snd_una; /* go back */
        out->tcp_retx++;
        tcp_progress = now;
    }
    if (tcp_send_data())
        tcp_need_ack = 0; /* it carried the acknowledgement */
    if (tcp_need_ack) {
        tcp_ctl(TCP_ACK, snd_nxt);
        tcp_need_ack = 0;
    }
    if (snd_una == tcp_end())
        out->tcp_state = VN_TCP_SENT;
}
