/* TCP segmentation offload end to end (issue 16), through the tap, with a
 * TCP connection between the guest (tests/virtio/vnet_tcp.h) and a host
 * socket in the test's namespace:
 *
 *  - guest to host: with VIRTIO_NET_F_HOST_TSO4 (and CSUM) accepted, the
 *    guest sends its stream in frames of up to 60 KiB, each with a GSO
 *    header (TCPv4, gso_size 1448, the checksum left to the host). The
 *    host's socket gets every byte intact and in order, and its stack took
 *    them as segments of 1448 bytes (TCP_INFO's receive MSS), not as
 *    single frames of 60 KiB;
 *  - host to guest: with VIRTIO_NET_F_GUEST_TSO4 (and GUEST_CSUM,
 *    MRG_RXBUF) accepted, the tap carries the host's stream unsegmented:
 *    the guest takes frames with a GSO header, larger than one segment,
 *    spread over several receive buffers, and every byte in order. */
#include "vnet_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(virtio_net_tso, .init = netns_up, .fini = vnt_fini, .timeout = 240);

#define TCP_PORT 5002
#define MSS 1448u
#define G2H (512u << 10) /* bytes from the guest */
#define H2G (512u << 10) /* bytes from the host */

static int listener(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(TCP_PORT)};
    inet_pton(AF_INET, HOST_IP, &a.sin_addr);
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

Test(virtio_net_tso, tcp_stream_both_ways_in_large_frames)
{
    int ls = listener();
    open_guest(&g, VN_TCP,
               VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS | VN_F_CSUM |
                   VN_F_GUEST_CSUM | VN_F_HOST_TSO4 | VN_F_GUEST_TSO4,
               0, 1000, 0);
    g.cmd.tcp_len = G2H;
    g.cmd.tcp_rx_len = H2G;
    g.cmd.tcp_port = TCP_PORT;
    g.cmd.tcp_window = 30000;
    g.cmd.tcp_mss = MSS;
    g.cmd.tcp_frame = 60u << 10;
    g.cmd.tcp_rto = tsc_hz() / 5; /* 200 ms */
    HVT_OK(hvc_vm_write(g.v.t.vm, VT_DATA_IN, &g.cmd, sizeof(g.cmd)));
    start(&g);

    struct vn_out o;
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
    out(&g, &o);
    cr_assert_eq(got, G2H,
                 "the host read %zu of %u bytes (guest: state %u, acked %u, "
                 "%u TSO frames, %u retransmits, error %u/0x%x)",
                 got, G2H, o.tcp_state, o.tcp_acked, o.tso_frames, o.tcp_retx,
                 o.error, o.detail);
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < G2H; i++)
        if (buf[i] != vn_tcp_byte((uint32_t)i, 0x11) && !bad++)
            first_bad = i;
    cr_assert_eq(bad, 0, "%zu bytes differ, the first at offset %zu", bad,
                 first_bad);
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    cr_assert_eq(getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);

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
    WAIT_GUEST(&g, o, 60000, o.tcp_rx_bytes >= H2G || o.error);
    hvc_virtio_net_stats s;
    stats(&g, &s);
    o = finish(&g);
    fprintf(stderr,
            "TSO: guest to host %u bytes in %u frames with a GSO header (the "
            "largest %u bytes), %u retransmits; host receive MSS %u; host to "
            "guest %u bytes, %u frames with a GSO header (the largest TCP "
            "payload %u bytes), %u merged, %u out of order; device tx %llu "
            "packets %llu bytes, rx %llu packets %llu bytes\n",
            o.tcp_acked, o.tso_frames, o.tso_max, o.tcp_retx,
            ti.tcpi_rcv_mss, o.tcp_rx_bytes, o.gso_rx_frames, o.gso_rx_max,
            o.rx_merged, o.tcp_rx_ooo, (unsigned long long)s.tx_packets,
            (unsigned long long)s.tx_bytes, (unsigned long long)s.rx_packets,
            (unsigned long long)s.rx_bytes);
    cr_assert_eq(o.error, 0, "the guest failed (0x%x)", o.detail);
    cr_assert(o.drv_features & VN_F_HOST_TSO4, "HOST_TSO4 not accepted");
    cr_assert(o.drv_features & VN_F_GUEST_TSO4, "GUEST_TSO4 not accepted");

    /* guest to host: large frames left the guest, and the host's stack
     * saw segments of MSS bytes (it measures its receive MSS from the
     * segment size: gso_size for a GSO packet, the length otherwise) */
    cr_assert_gt(o.tso_frames, 0);
    cr_assert_gt(o.tso_max, 8 * MSS, "the largest frame held %u bytes",
                 o.tso_max);
    cr_assert_eq(o.tcp_acked, G2H);
    cr_assert_eq(ti.tcpi_rcv_mss, MSS, "the host's receive MSS is %u",
                 ti.tcpi_rcv_mss);
    cr_assert_lt(s.tx_packets, G2H / MSS,
                 "the device sent %llu packets for %u bytes: not TSO",
                 (unsigned long long)s.tx_packets, G2H);

    /* host to guest: unsegmented frames, every byte */
    cr_assert_eq(o.tcp_rx_bytes, H2G);
    cr_assert_eq(o.tcp_rx_bad, 0);
    cr_assert_gt(o.gso_rx_frames, 0, "no frame came with a GSO header");
    cr_assert_gt(o.gso_rx_max, MSS, "the largest frame held %u bytes",
                 o.gso_rx_max);
    cr_assert_gt(o.rx_merged, 0);
    close(c);
    close(ls);
}
