/* TCP segmentation offload end to end (issue 16), through the tap, with a
 * TCP connection between the guest (tests/virtio/vnet_tcp.h) and a host
 * socket:
 *
 *  - guest to host: with VIRTIO_NET_F_HOST_TSO4 (and CSUM) accepted, the
 *    guest sends its stream in frames of up to 60 KiB, each with a GSO
 *    header (TCPv4, gso_size 1448, the checksum left to the host). The
 *    host's socket gets every byte intact and in order, and its stack took
 *    them as segments of 1448 bytes (TCP_INFO's receive MSS, which it
 *    measures from gso_size), not as single frames of 60 KiB;
 *  - host to guest: with VIRTIO_NET_F_GUEST_TSO4 (and GUEST_CSUM,
 *    MRG_RXBUF) accepted, the tap carries the host's stream unsegmented:
 *    the guest takes frames with a GSO header, larger than one segment,
 *    spread over several receive buffers, and every byte in order.
 *
 * The first case delivers to a socket on the tap's own address, where the
 * kernel takes a GSO packet whole. The second routes the connection
 * through a veth pair, without segmentation or checksum offload on its
 * near end, to a server in a second namespace: the kernel cuts the
 * guest's frames into real segments there, and a packet socket sees each
 * one leave — every one at most 1448 bytes, with correct IPv4 and TCP
 * checksums, carrying the stream's bytes at its sequence number, all of
 * them together the whole stream. */
#include "vnet_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void fini(void);
TestSuite(virtio_net_tso, .init = netns_up, .fini = fini, .timeout = 240);

#define TCP_PORT 5002
#define MSS 1448u
#define G2H (512u << 10) /* bytes from the guest */
#define H2G (512u << 10) /* bytes from the host */
#define SRV_IP "10.99.1.1"
#define FWD_IP "10.99.1.2"

static char srv_ns[64];

static void fini(void)
{
    vnt_fini();
    if (srv_ns[0]) {
        char c[128];
        snprintf(c, sizeof(c), "ip netns del %s", srv_ns);
        if (system(c) != 0)
            fprintf(stderr, "could not delete netns %s\n", srv_ns);
        srv_ns[0] = 0;
    }
}

static int listener(const char *ip)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(TCP_PORT)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s",
                 strerror(errno));
    cr_assert_eq(listen(s, 1), 0);
    return s;
}

/* Waits up to @ms for @fd to have @events. */
static bool ready(int fd, short events, int ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    return poll(&p, 1, ms) == 1;
}

struct result {
    struct vn_out o;
    struct tcp_info ti;
    hvc_virtio_net_stats s;
};

/* The guest connects to @ip (its "host" address) where @ls listens, sends
 * G2H bytes, takes H2G back; asserts both streams arrived intact. */
static struct result stream(const char *ip, int ls)
{
    struct result r;
    open_guest(&g, VN_TCP,
               VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS | VN_F_CSUM |
                   VN_F_GUEST_CSUM | VN_F_HOST_TSO4 | VN_F_GUEST_TSO4,
               0, 1000, 0);
    inet_pton(AF_INET, ip, g.cmd.host_ip);
    g.cmd.tcp_len = G2H;
    g.cmd.tcp_rx_len = H2G;
    g.cmd.tcp_port = TCP_PORT;
    g.cmd.tcp_window = 30000;
    g.cmd.tcp_mss = MSS;
    g.cmd.tcp_frame = 60u << 10;
    g.cmd.tcp_rto = tsc_hz() / 5; /* 200 ms */
    HVT_OK(hvc_vm_write(g.v.t.vm, VT_DATA_IN, &g.cmd, sizeof(g.cmd)));
    start(&g);

    cr_assert(ready(ls, POLLIN, 30000), "the guest did not connect");
    int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(c, 0, "accept: %s", strerror(errno));

    /* guest to host: every byte, in order */
    static uint8_t buf[G2H > H2G ? G2H : H2G];
    size_t got = 0;
    while (got < G2H && ready(c, POLLIN, 30000)) {
        ssize_t k = read(c, buf + got, G2H - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    out(&g, &r.o);
    cr_assert_eq(got, G2H,
                 "the host read %zu of %u bytes (guest: state %u, acked %u, "
                 "%u TSO frames, %u retransmits, error %u/0x%x)",
                 got, G2H, r.o.tcp_state, r.o.tcp_acked, r.o.tso_frames,
                 r.o.tcp_retx, r.o.error, r.o.detail);
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < G2H; i++)
        if (buf[i] != vn_tcp_byte((uint32_t)i, 0x11) && !bad++)
            first_bad = i;
    cr_assert_eq(bad, 0, "%zu bytes differ, the first at offset %zu", bad,
                 first_bad);
    socklen_t tl = sizeof(r.ti);
    cr_assert_eq(getsockopt(c, IPPROTO_TCP, TCP_INFO, &r.ti, &tl), 0);

    /* host to guest */
    for (uint32_t i = 0; i < H2G; i++)
        buf[i] = vn_tcp_byte(i, 0x5a);
    size_t sent = 0;
    while (sent < H2G && ready(c, POLLOUT, 30000)) {
        ssize_t k = write(c, buf + sent, H2G - sent);
        if (k <= 0)
            break;
        sent += (size_t)k;
    }
    cr_assert_eq(sent, H2G, "the host wrote %zu of %u bytes", sent, H2G);
    struct vn_out o;
    WAIT_GUEST(&g, o, 60000, o.tcp_rx_bytes >= H2G || o.error);
    stats(&g, &r.s);
    r.o = finish(&g);
    close(c);
    fprintf(
        stderr,
        "TSO to %s: guest to host %u bytes in %u frames with a GSO "
        "header (the largest %u bytes), %u retransmits; host receive "
        "MSS %u; host to guest %u bytes, %u frames with a GSO header "
        "(the largest TCP payload %u bytes), %u merged, %u out of "
        "order; device tx %llu packets %llu bytes, rx %llu packets "
        "%llu bytes\n",
        ip, r.o.tcp_acked, r.o.tso_frames, r.o.tso_max, r.o.tcp_retx,
        r.ti.tcpi_rcv_mss, r.o.tcp_rx_bytes, r.o.gso_rx_frames, r.o.gso_rx_max,
        r.o.rx_merged, r.o.tcp_rx_ooo, (unsigned long long)r.s.tx_packets,
        (unsigned long long)r.s.tx_bytes, (unsigned long long)r.s.rx_packets,
        (unsigned long long)r.s.rx_bytes);

    const struct vn_out *v = &r.o;
    cr_assert_eq(v->error, 0, "the guest failed (0x%x)", v->detail);
    cr_assert(v->drv_features & VN_F_HOST_TSO4, "HOST_TSO4 not accepted");
    cr_assert(v->drv_features & VN_F_GUEST_TSO4, "GUEST_TSO4 not accepted");
    /* guest to host: large frames left the guest, few packets crossed
     * the device, and the host's stack saw segments of MSS bytes */
    cr_assert_gt(v->tso_frames, 0);
    cr_assert_gt(v->tso_max, 8 * MSS, "the largest frame held %u bytes",
                 v->tso_max);
    cr_assert_eq(v->tcp_acked, G2H);
    cr_assert_eq(r.ti.tcpi_rcv_mss, MSS, "the host's receive MSS is %u",
                 r.ti.tcpi_rcv_mss);
    cr_assert_lt(r.s.tx_packets, G2H / MSS,
                 "the device sent %llu packets for %u bytes: not TSO",
                 (unsigned long long)r.s.tx_packets, G2H);
    /* host to guest: unsegmented frames, every byte */
    cr_assert_eq(v->tcp_rx_bytes, H2G);
    cr_assert_eq(v->tcp_rx_bad, 0);
    cr_assert_gt(v->gso_rx_frames, 0, "no frame came with a GSO header");
    cr_assert_gt(v->gso_rx_max, MSS, "the largest frame held %u bytes",
                 v->gso_rx_max);
    cr_assert_gt(v->rx_merged, 0);
    return r;
}

Test(virtio_net_tso, tcp_stream_both_ways_to_the_tap_address)
{
    int ls = listener(HOST_IP);
    stream(HOST_IP, ls);
    close(ls);
}

/* --- the routed case --- */

static void feature(int s, const char *dev, uint32_t cmd, uint32_t on)
{
    struct ethtool_value v = {.cmd = cmd, .data = on};
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
    ifr.ifr_data = (char *)&v;
    cr_assert_eq(ioctl(s, SIOCETHTOOL, &ifr), 0, "%s: ethtool 0x%x: %s", dev,
                 cmd, strerror(errno));
}

/* A server namespace behind veth vA (here, 10.99.1.2) - vB (there,
 * 10.99.1.1); vA without segmentation or checksum offload; this
 * namespace forwards, and answers the guest's ARP for SRV_IP (proxy ARP
 * on the tap). Returns the listening socket, made in the server's
 * namespace. */
static int server_ns(void)
{
    snprintf(srv_ns, sizeof(srv_ns), "hvcvsrv%d", (int)getpid());
    sh("ip netns add %s", srv_ns);
    sh("ip link add vA type veth peer name vB netns %s", srv_ns);
    sh("ip addr add " FWD_IP "/24 dev vA");
    sh("ip link set vA up");
    sh("ip netns exec %s ip link set lo up", srv_ns);
    sh("ip netns exec %s ip addr add " SRV_IP "/24 dev vB", srv_ns);
    sh("ip netns exec %s ip link set vB up", srv_ns);
    sh("ip netns exec %s ip route add 10.99.0.0/24 via " FWD_IP, srv_ns);
    sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf." TAP
       ".proxy_arp=1 net.ipv4.neigh." TAP ".proxy_delay=0");
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    feature(s, "vA", ETHTOOL_STSO, 0);
    feature(s, "vA", ETHTOOL_SGSO, 0);
    feature(s, "vA", ETHTOOL_STXCSUM, 0);
    close(s);

    int here = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    char path[128];
    snprintf(path, sizeof(path), "/var/run/netns/%s", srv_ns);
    int there = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert(here >= 0 && there >= 0);
    cr_assert_eq(setns(there, CLONE_NEWNET), 0, "setns: %s", strerror(errno));
    int ls = listener(SRV_IP);
    cr_assert_eq(setns(here, CLONE_NEWNET), 0, "setns: %s", strerror(errno));
    close(here);
    close(there);
    return ls;
}

/* A packet socket on what vA sends (outgoing packets reach ETH_P_ALL
 * sockets only). */
static int capture(void)
{
    int p = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
                   htons(ETH_P_ALL));
    cr_assert_geq(p, 0, "packet socket: %s", strerror(errno));
    int big = 32 << 20;
    cr_assert_eq(setsockopt(p, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)),
                 0);
    struct sockaddr_ll a = {.sll_family = AF_PACKET,
                            .sll_protocol = htons(ETH_P_ALL),
                            .sll_ifindex = (int)if_nametoindex("vA")};
    cr_assert_gt(a.sll_ifindex, 0);
    cr_assert_eq(bind(p, (struct sockaddr *)&a, sizeof(a)), 0);
    return p;
}

static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)p[i] << 8 | p[i + 1];
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

struct segs {
    uint32_t n, max_payload, bad_csum, bad_data, big, syn_seq;
    bool have_syn;
    uint8_t seen[G2H / 8]; /* stream bytes some segment carried */
    uint32_t covered;
};

/* One IPv4 packet vA sent: the guest's segments to the server. */
static void segment(struct segs *sg, const uint8_t *ip, size_t len)
{
    if (len < 40 || (ip[0] & 0xf) != 5 || ip[9] != 6)
        return;
    size_t iplen = (size_t)ip[2] << 8 | ip[3];
    const uint8_t *t = ip + 20;
    if (iplen > len || iplen < 40 || (t[2] << 8 | t[3]) != TCP_PORT)
        return;
    size_t doff = (size_t)(t[12] >> 4) * 4, dlen = iplen - 20 - doff;
    uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 |
                   (uint32_t)t[6] << 8 | t[7];
    if (t[13] & 0x02) {
        sg->syn_seq = seq;
        sg->have_syn = true;
        return;
    }
    if (!dlen || !sg->have_syn)
        return;
    sg->n++;
    if (dlen > sg->max_payload)
        sg->max_payload = (uint32_t)dlen;
    if (dlen > MSS)
        sg->big++;
    uint32_t pseudo = sum16(0, ip + 12, 8) + 6 + (uint32_t)(iplen - 20);
    if (fold(sum16(0, ip, 20)) != 0xffff ||
        fold(sum16(pseudo, t, iplen - 20)) != 0xffff)
        sg->bad_csum++;
    uint32_t off = seq - sg->syn_seq - 1;
    for (size_t i = 0; i < dlen; i++) {
        uint32_t k = off + (uint32_t)i;
        if (k >= G2H || t[doff + i] != vn_tcp_byte(k, 0x11)) {
            sg->bad_data++;
            return;
        }
    }
    for (size_t i = 0; i < dlen; i++) {
        uint32_t k = off + (uint32_t)i;
        if (!(sg->seen[k / 8] >> (k % 8) & 1)) {
            sg->seen[k / 8] |= (uint8_t)(1u << (k % 8));
            sg->covered++;
        }
    }
}

Test(virtio_net_tso, tcp_stream_routed_and_segmented_by_the_host)
{
    int ls = server_ns();
    int p = capture();
    stream(SRV_IP, ls);
    static struct segs sg;
    memset(&sg, 0, sizeof(sg));
    static uint8_t pkt[70000];
    struct sockaddr_ll from;
    for (;;) {
        socklen_t fl = sizeof(from);
        ssize_t k =
            recvfrom(p, pkt, sizeof(pkt), 0, (struct sockaddr *)&from, &fl);
        if (k < 0)
            break;
        if (from.sll_pkttype == PACKET_OUTGOING && k > 14 && pkt[12] == 0x08 &&
            pkt[13] == 0x00)
            segment(&sg, pkt + 14, (size_t)k - 14);
    }
    struct tpacket_stats ps;
    socklen_t pl = sizeof(ps);
    cr_assert_eq(getsockopt(p, SOL_PACKET, PACKET_STATISTICS, &ps, &pl), 0);
    fprintf(stderr,
            "segmented on the way: %u segments (%u above %u bytes), the "
            "largest %u bytes, %u bad checksums, %u with wrong bytes, %u of "
            "%u stream bytes seen; capture dropped %u\n",
            sg.n, sg.big, MSS, sg.max_payload, sg.bad_csum, sg.bad_data,
            sg.covered, G2H, ps.tp_drops);
    cr_assert(sg.have_syn, "the capture saw no SYN");
    cr_assert_eq(ps.tp_drops, 0, "the capture dropped packets");
    cr_assert_eq(sg.big, 0, "%u segments above %u bytes left vA", sg.big, MSS);
    cr_assert_eq(sg.max_payload, MSS);
    cr_assert_geq(sg.n, G2H / MSS);
    cr_assert_eq(sg.bad_csum, 0);
    cr_assert_eq(sg.bad_data, 0);
    cr_assert_eq(sg.covered, G2H);
    close(p);
    close(ls);
}
