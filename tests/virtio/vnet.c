/* A freestanding virtio-net driver for the virtio-net tests
 * (tests/test_virtio_net.c), beside the virtio-blk one: it answers ARP and
 * ICMP echo for its address, pings the host, sends a stream of numbered
 * UDP datagrams at a steady rate and counts the ones it receives, with or
 * without checksum offload; it announces itself when the device asks
 * (VIRTIO_NET_F_GUEST_ANNOUNCE). Malicious modes first give the device a
 * bad chain, check that it fails with DEVICE_NEEDS_RESET, then reset it
 * and carry on. Polls; counters at DATA_OUT are live for the host. */
#include "vdrv.h"
#include "vnet_proto.h"

#define HDR 12u
#define ETH 14u

static struct vd_dev dev;
static struct vd_queue rxq, txq, ctlq;
static volatile struct vn_cmd *cmd = (volatile struct vn_cmd *)VT_DATA_IN;
static volatile struct vn_out *out = (volatile struct vn_out *)VT_DATA_OUT;
static uint8_t mac[6], host_mac[6];
static int host_known;
static uint16_t tx_free[VN_NTX];
static uint32_t nr_tx_free;
static uint32_t last_seq;
/* VN_TCP: the last transmit slot is the large frame's (VN_TSOTX), never
 * a small buffer's; busy while the device has it */
#define TSO_SLOT (VN_NTX - 1)
static int tso_busy;
static uint16_t ip_id;

/* Where the receive buffers are: cmd->rx_base, or VN_RXBUF. */
static uint64_t rx_base(void)
{
    return cmd->rx_base ? cmd->rx_base : VN_RXBUF;
}

static uint16_t be16(const volatile uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(volatile uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void copy(volatile uint8_t *d, const volatile uint8_t *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        d[i] = s[i];
}

static int same(const volatile uint8_t *a, const volatile uint8_t *b,
                uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* One's complement sum of big-endian 16-bit words. */
static uint32_t sum16(uint32_t s, const volatile uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i + 1 < n; i += 2)
        s += be16(p + i);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

static void reclaim_tx(void)
{
    uint32_t id, len;
    while (vd_get_used(&txq, &id, &len)) {
        if (cmd->mode == VN_TCP && id == TSO_SLOT)
            tso_busy = 0;
        else if (id < VN_NTX)
            tx_free[nr_tx_free++] = (uint16_t)id;
    }
}

/* A transmit buffer to fill: its frame part (after the header); waits for
 * one to come back when all are out. */
static volatile uint8_t *tx_get(uint16_t *slot)
{
    uint64_t t0 = vd_rdtsc();
    while (!nr_tx_free) {
        reclaim_tx();
        if (vd_rdtsc() - t0 > VD_SPIN_TICKS)
            return 0;
    }
    *slot = tx_free[--nr_tx_free];
    volatile uint8_t *b =
        (volatile uint8_t *)(uint64_t)(VN_TXBUF + *slot * VN_BUFSZ);
    for (uint32_t i = 0; i < HDR; i++)
        b[i] = 0;
    return b + HDR;
}

static void tx_send(uint16_t slot, uint32_t frame_len)
{
    struct vd_buf b = {VN_TXBUF + slot * VN_BUFSZ, HDR + frame_len, 0};
    vd_add_chain(&txq, slot, &b, 1);
    vd_publish(&txq);
    vd_notify(&dev, &txq);
    out->tx_packets++;
}

static void post_rx(uint16_t id)
{
    uint32_t len = cmd->rx_buf_len ? cmd->rx_buf_len : VN_BUFSZ;
    struct vd_buf b = {rx_base() + id * VN_BUFSZ, len, 1};
    vd_add_chain(&rxq, id, &b, 1);
}

static void eth(volatile uint8_t *f, const uint8_t *dst, uint16_t type)
{
    copy(f, dst, 6);
    copy(f + 6, mac, 6);
    put16(f + 12, type);
}

static void arp(uint16_t op, const uint8_t *dst_mac, const uint8_t *tha,
                const volatile uint8_t *tpa, const volatile uint8_t *spa)
{
    uint16_t s;
    volatile uint8_t *f = tx_get(&s);
    if (!f)
        return;
    eth(f, dst_mac, 0x0806);
    volatile uint8_t *a = f + ETH;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    copy(a + 8, mac, 6);
    copy(a + 14, spa, 4);
    copy(a + 18, tha, 6);
    copy(a + 24, tpa, 4);
    tx_send(s, ETH + 28 + 18); /* padded to 60 bytes */
}

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t zero6[6];

static void ip_header(volatile uint8_t *ip, uint8_t proto, uint32_t len)
{
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (uint16_t)len);
    put16(ip + 4, ip_id++);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = proto;
    put16(ip + 10, 0);
    copy(ip + 12, cmd->guest_ip, 4);
    copy(ip + 16, cmd->host_ip, 4);
    put16(ip + 10, (uint16_t)~fold(sum16(0, ip, 20)));
}

static void send_udp(uint32_t seq)
{
    uint16_t s;
    volatile uint8_t *f = tx_get(&s);
    if (!f)
        return;
    eth(f, host_mac, 0x0800);
    uint32_t plen = 32, ulen = 8 + plen;
    volatile uint8_t *ip = f + ETH, *u = ip + 20;
    ip_header(ip, 17, 20 + ulen);
    put16(u, cmd->guest_port);
    put16(u + 2, cmd->host_port);
    put16(u + 4, (uint16_t)ulen);
    put16(u + 6, 0);
    for (uint32_t i = 0; i < plen; i++)
        u[8 + i] = (uint8_t)(i < 4 ? seq >> (24 - 8 * i) : i);
    uint32_t pseudo = sum16(0, ip + 12, 8) + 17 + ulen;
    if (dev.drv_features & VN_F_CSUM) {
        /* the host finishes it: VIRTIO_NET_HDR_F_NEEDS_CSUM from the
         * UDP header on, the pseudo-header sum in place */
        volatile uint8_t *h = f - HDR;
        h[0] = 1;
        h[6] = ETH + 20; /* csum_start */
        h[8] = 6;        /* csum_offset */
        put16(u + 6, fold(pseudo));
    } else {
        uint16_t c = (uint16_t)~fold(sum16(pseudo, u, ulen));
        put16(u + 6, c ? c : 0xffff);
    }
    tx_send(s, ETH + 20 + ulen);
    out->udp_sent++;
}

static void send_ping(uint16_t seq)
{
    uint16_t s;
    volatile uint8_t *f = tx_get(&s);
    if (!f)
        return;
    eth(f, host_mac, 0x0800);
    volatile uint8_t *ip = f + ETH, *ic = ip + 20;
    ip_header(ip, 1, 20 + 16);
    ic[0] = 8;
    ic[1] = 0;
    put16(ic + 2, 0);
    put16(ic + 4, 0x4856);
    put16(ic + 6, seq);
    for (int i = 8; i < 16; i++)
        ic[i] = (uint8_t)i;
    put16(ic + 2, (uint16_t)~fold(sum16(0, ic, 16)));
    tx_send(s, ETH + 20 + 16);
}

static void on_arp(const volatile uint8_t *a)
{
    uint16_t op = be16(a + 6);
    if (op == 1 && same(a + 24, cmd->guest_ip, 4)) {
        uint8_t sha[6];
        for (int i = 0; i < 6; i++)
            sha[i] = a[8 + i];
        arp(2, sha, sha, a + 14, cmd->guest_ip);
        out->arp_replies_sent++;
    } else if (op == 2 && same(a + 14, cmd->host_ip, 4)) {
        for (int i = 0; i < 6; i++)
            host_mac[i] = a[8 + i];
        if (!host_known)
            out->arp_replies_got++;
        host_known = 1;
    }
}

static void on_icmp(const volatile uint8_t *f, const volatile uint8_t *ip,
                    uint32_t iplen)
{
    const volatile uint8_t *ic = ip + 20;
    if (ic[0] == 0) {
        out->echo_replies_got++;
        return;
    }
    if (ic[0] != 8 || iplen < 28 || iplen > 1400)
        return;
    uint16_t s;
    volatile uint8_t *r = tx_get(&s);
    if (!r)
        return;
    uint8_t src[6];
    for (int i = 0; i < 6; i++)
        src[i] = f[6 + i];
    eth(r, src, 0x0800);
    volatile uint8_t *rip = r + ETH, *ric = rip + 20;
    ip_header(rip, 1, iplen);
    copy(ric, ic, iplen - 20);
    ric[0] = 0;
    put16(ric + 2, 0);
    put16(ric + 2, (uint16_t)~fold(sum16(0, ric, iplen - 20)));
    tx_send(s, ETH + iplen);
    out->echo_replies_sent++;
}

static void on_udp(const volatile uint8_t *h, const volatile uint8_t *ip,
                   uint32_t iplen)
{
    const volatile uint8_t *u = ip + 20;
    uint32_t ulen = be16(u + 4);
    if (be16(u + 2) != cmd->guest_port || ulen < 12 || ulen > iplen - 20)
        return;
    if (h[0] & 1) {
        out->csum_partial++; /* the host left it to us: trusted */
    } else if (be16(u + 6) != 0) {
        uint32_t pseudo = sum16(0, ip + 12, 8) + 17 + ulen;
        if (fold(sum16(pseudo, u, ulen)) != 0xffff)
            out->csum_bad++;
    }
    uint32_t seq = (uint32_t)u[8] << 24 | (uint32_t)u[9] << 16 |
                   (uint32_t)u[10] << 8 | u[11];
    if (seq != last_seq + 1)
        out->udp_rx_gaps++;
    last_seq = seq;
    if (seq > out->udp_rx_max)
        out->udp_rx_max = seq;
    out->udp_rx++;
}

#include "vnet_tcp.h"

static void on_frame(const volatile uint8_t *h, uint32_t len)
{
    const volatile uint8_t *f = h + HDR;
    if (len < HDR + ETH)
        return;
    len -= HDR;
    out->rx_packets++;
    uint16_t type = be16(f + 12);
    if (type == 0x0806 && len >= ETH + 28) {
        on_arp(f + ETH);
        return;
    }
    if (type != 0x0800 || len < ETH + 20)
        return;
    const volatile uint8_t *ip = f + ETH;
    uint32_t iplen = be16(ip + 2);
    if ((ip[0] & 0xf) != 5 || iplen > len - ETH || iplen < 28 ||
        !same(ip + 16, cmd->guest_ip, 4))
        return;
    if (ip[9] == 1)
        on_icmp(f, ip, iplen);
    else if (ip[9] == 17)
        on_udp(h, ip, iplen);
    else if (ip[9] == 6 && cmd->mode == VN_TCP)
        on_tcp(h, ip, iplen);
}

/* A packet in several buffers (VIRTIO_NET_F_MRG_RXBUF: num_buffers in
 * the first one's header) is put together here. */
static volatile uint8_t *const frame = (volatile uint8_t *)(uint64_t)VN_BIGRX;

static volatile uint8_t *rx_buf(uint32_t id)
{
    return (volatile uint8_t *)(uint64_t)(rx_base() + id * VN_BUFSZ);
}

static void poll_rx(void)
{
    uint32_t id, len, n = 0;
    while (vd_get_used(&rxq, &id, &len)) {
        n++;
        if (id >= VN_NRX)
            continue;
        volatile uint8_t *b = rx_buf(id);
        uint16_t nb = (dev.drv_features & VN_F_MRG_RXBUF)
                          ? (uint16_t)(b[10] | b[11] << 8)
                          : 1;
        if (nb <= 1) {
            on_frame(b, len);
            post_rx((uint16_t)id);
            continue;
        }
        uint32_t total = 0;
        for (uint16_t k = 0; k < nb; k++) {
            if (k && (vd_wait_used(&dev, &rxq) < 0 ||
                      !vd_get_used(&rxq, &id, &len) || id >= VN_NRX))
                return;
            b = rx_buf(id);
            for (uint32_t i = 0; i < len && total < VN_BIGRX_LEN; i++)
                frame[total++] = b[i];
            post_rx((uint16_t)id);
            n++;
        }
        out->rx_merged++;
        on_frame(frame, total);
    }
    if (n) {
        vd_publish(&rxq);
        vd_notify(&dev, &rxq);
    }
}

/* The device asked to be announced: a gratuitous ARP, then ANNOUNCE_ACK
 * on the control queue (virtio 1.2 5.1.6.5.4). */
static void announce(void)
{
    arp(1, bcast, zero6, cmd->guest_ip, cmd->guest_ip);
    volatile uint8_t *c = (volatile uint8_t *)(uint64_t)VN_CTRL;
    c[0] = 3;
    c[1] = 0;
    c[16] = 0xff;
    struct vd_buf b[2] = {{VN_CTRL, 2, 0}, {VN_CTRL + 16, 1, 1}};
    vd_add_chain(&ctlq, 0, b, 2);
    vd_publish(&ctlq);
    vd_notify(&dev, &ctlq);
    if (vd_wait_used(&dev, &ctlq) == 0) {
        uint32_t id, len;
        vd_get_used(&ctlq, &id, &len);
    }
    out->announces++;
}

static int setup(void)
{
    int r = vd_probe(&dev, VN_BASE, 1);
    if (r)
        return r;
    if ((r = vd_init(&dev, cmd->features)))
        return r;
    out->dev_features = dev.dev_features;
    out->drv_features = dev.drv_features;
    if ((r = vd_queue_setup(&dev, &rxq, 0, VT_QUEUES, VN_NRX)) ||
        (r = vd_queue_setup(&dev, &txq, 1, VT_QUEUES + VT_QUEUE_AREA, VN_NTX)))
        return r;
    if ((dev.drv_features & VN_F_CTRL_VQ) &&
        (r = vd_queue_setup(&dev, &ctlq, 2, VT_QUEUES + 2 * VT_QUEUE_AREA, 4)))
        return r;
    vd_driver_ok(&dev);
    for (uint32_t i = 0; i < 6; i++)
        mac[i] = vd_config8(&dev, i);
    copy(out->mac, mac, 6);
    nr_tx_free = 0;
    for (uint32_t i = VN_NTX; i-- > 0;)
        if (cmd->mode != VN_TCP || i != TSO_SLOT)
            tx_free[nr_tx_free++] = (uint16_t)i;
    for (uint16_t i = 0; i < VN_NRX; i++)
        post_rx(i);
    vd_publish(&rxq);
    vd_notify(&dev, &rxq);
    return 0;
}

/* A bad request of @mode; returns 0 when the device failed as it must. */
static int malicious(uint32_t mode)
{
    volatile struct vd_desc *d = txq.desc;
    struct vd_queue *q = &txq;
    if (mode == VN_MAL_LOOP) {
        struct vd_buf b[2] = {{VN_MAL, 64, 0}, {VN_MAL + 64, 64, 0}};
        vd_add_chain(q, 0, b, 2);
        d[1].flags = VD_DESC_F_NEXT;
        d[1].next = 0; /* back to the head */
    } else if (mode == VN_MAL_OUTSIDE) {
        struct vd_buf b = {0x40000000ull, 128, 0};
        vd_add_chain(q, 0, &b, 1);
    } else if (mode == VN_MAL_BIG_TX) {
        struct vd_buf b[17];
        for (int i = 0; i < 17; i++)
            b[i] = (struct vd_buf){VN_MAL, 4096, 0}; /* 68 KiB in all */
        vd_add_chain(q, 0, b, 17);
    } else {
        /* a 1-byte receive buffer; the host sends to us */
        q = &rxq;
        struct vd_buf b = {VN_MAL, 1, 1};
        vd_add_chain(q, 0, &b, 1);
    }
    vd_publish(q);
    vd_notify(&dev, q);
    int r = vd_wait_status(&dev, VD_S_NEEDS_RESET);
    out->mal_status = vd_r32(&dev, VD_STATUS);
    return r;
}

#ifdef VN_BUILTIN_CMD
/* Under hvrun nobody writes the command (vnet_hvrun.c): traffic with the
 * addresses of tests/vnet_util.h, a datagram about every 2 ms (at a TSC
 * of 2-3 GHz) for as long as it runs. */
static void builtin_cmd(void)
{
    static const uint8_t gip[4] = {10, 99, 0, 2}, hip[4] = {10, 99, 0, 1};
    cmd->mode = VN_TRAFFIC;
    cmd->features = VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS;
    copy(cmd->guest_ip, gip, 4);
    copy(cmd->host_ip, hip, 4);
    cmd->guest_port = 5001;
    cmd->host_port = 5000;
    cmd->udp_count = 0xffffffffu;
    cmd->udp_interval = 5000000;
    cmd->pings = 0;
    cmd->stop = 0;
    cmd->rx_buf_len = 0;
    cmd->rx_base = 0;
    cmd->gap_epoch = 0;
    cmd->magic = VN_MAGIC;
}
#endif

VD_GUEST_ENTRY
{
#ifdef VN_BUILTIN_CMD
    builtin_cmd();
#endif
    out->magic = VN_MAGIC;
    if (cmd->magic != VN_MAGIC)
        return VT_E_CMD;
    int r;
    if (cmd->mode != VN_TRAFFIC && cmd->mode != VN_TCP) {
        /* set up the queues without buffers, then the bad request */
        if ((r = vd_probe(&dev, VN_BASE, 1)) || (r = vd_init(&dev, 0)))
            return r;
        if ((r = vd_queue_setup(&dev, &rxq, 0, VT_QUEUES, VN_NRX)) ||
            (r = vd_queue_setup(&dev, &txq, 1, VT_QUEUES + VT_QUEUE_AREA,
                                VN_NTX)))
            return r;
        vd_driver_ok(&dev);
        if (malicious(cmd->mode) < 0) {
            out->error = VT_E_NEEDS_RESET;
            return VT_E_NEEDS_RESET;
        }
    }
    if ((r = setup())) {
        out->error = (uint32_t)r;
        return r;
    }
    uint64_t next_udp = vd_rdtsc(), next_arp = 0, prev = 0;
    uint32_t pings = 0, loops = 0;
    while (!cmd->stop) {
        out->loops = ++loops;
        /* The loop gap: how long this vCPU went without a pass (it never
         * halts, so a vCPU held up anywhere shows here), since the host's
         * last epoch (a migration's downtime is not measured). */
        uint64_t t = vd_rdtsc();
        if (cmd->gap_epoch != out->gap_epoch) {
            out->gap_epoch = cmd->gap_epoch;
            out->gap_max = 0;
            out->gap_loops = out->gap_max_loop = 0;
            prev = t;
        }
        if (prev && t - prev > out->gap_max) {
            out->gap_max = t - prev;
            out->gap_max_loop = out->gap_loops;
        }
        out->gap_loops++;
        prev = t;
        poll_rx();
        reclaim_tx();
        uint64_t now = vd_rdtsc();
        if (!host_known && now >= next_arp) {
            arp(1, bcast, zero6, cmd->host_ip, cmd->guest_ip);
            next_arp = now + cmd->udp_interval * 50 + 1000000;
        }
        if (cmd->mode == VN_TCP)
            tcp_poll();
        if (host_known && pings < cmd->pings)
            send_ping((uint16_t)++pings);
        if (host_known && out->udp_sent < cmd->udp_count && now >= next_udp) {
            send_udp(out->udp_sent + 1);
            next_udp += cmd->udp_interval;
            if (next_udp < now) /* fell behind: keep the rate, not a burst */
                next_udp = now + cmd->udp_interval;
        }
        if ((loops & 63) == 0 && (dev.drv_features & VN_F_STATUS)) {
            uint16_t st =
                (uint16_t)(vd_config8(&dev, 6) | vd_config8(&dev, 7) << 8);
            out->net_status = st;
            if ((st & 2) && (dev.drv_features & VN_F_GUEST_ANNOUNCE))
                announce();
        }
    }
    out->status = vd_r32(&dev, VD_STATUS);
    return VT_OK;
}
