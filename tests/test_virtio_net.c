/* virtio-net over a tap, with the guest of tests/virtio/vnet.c: ARP and
 * ICMP echo both ways with the host side of the tap, numbered UDP streams
 * counted on both sides, checksum offload on and off, receive buffers
 * whose pages are missing (forced through the library's internal present
 * hook, as post-copy will report them), a malicious driver. Snapshot and
 * restore and the back end's detach and attach are in
 * test_virtio_net_state.c. Every test makes a network namespace of its own (ip
 * netns add), with a tap and 10.99.0.1/24 on it, and deletes it at the end:
 * root. */
#include "virtio_dev.h"
#include "vnet_util.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The library's internal hook (src/core/internal.h): whether guest pages
 * are present. Reachable because this suite links the static library. */
typedef int (*hvi_present_fn)(void *opaque, uint64_t gpa, uint64_t len);
void hvi_vm_set_present_hook(hvc_vm *vm, hvi_present_fn fn, void *opaque);

TestSuite(virtio_net, .init = netns_up, .fini = vnt_fini, .timeout = 240);

/* ARP and ping both ways, then @count datagrams each way at a steady
 * rate, counted on both sides: none lost, none out of order. */
static void traffic(uint64_t features, uint32_t count)
{
    int rx = udp_rx_sock();
    int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    open_guest(&g, VN_TRAFFIC, features, count, 3000, 3);
    start(&g);
    struct vn_out o;
    WAIT_GUEST(&g, o, 60000, o.arp_replies_got >= 1 && o.echo_replies_got >= 3);
    cr_assert_geq(o.arp_replies_got, 1,
                  "the guest never learned the host's MAC; log %.*s",
                  (int)g.v.log_len, g.v.log);
    cr_assert_eq(o.echo_replies_got, 3, "guest → host pings: %u replies",
                 o.echo_replies_got);
    /* the host learned the guest's MAC from its request: forget it, so
     * that the host asks too */
    sh("ip neigh flush dev " TAP);
    cr_assert_eq(host_ping(3, 10000), 3, "host → guest pings went unanswered");
    struct udp_count hc = {0};
    for (uint32_t i = 1; i <= count; i++) {
        udp_send(tx, i);
        udp_drain(rx, &hc);
        usleep(3000);
    }
    for (int w = 0; w < 60000 && (hc.n < count || o.udp_rx < count); w += 20) {
        udp_drain(rx, &hc);
        out(&g, &o);
        usleep(20000);
    }
    o = finish(&g);
    hvc_virtio_net_stats st;
    stats(&g, &st);
    cr_assert_eq(hc.n, count, "host got %u of %u datagrams (%u gaps)", hc.n,
                 count, hc.gaps);
    cr_assert_eq(hc.gaps, 0);
    cr_assert_eq(o.udp_sent, count);
    cr_assert_eq(o.udp_rx, count, "guest got %u of %u datagrams", o.udp_rx,
                 count);
    cr_assert_eq(o.udp_rx_gaps, 0);
    cr_assert_eq(o.csum_bad, 0, "%u datagrams with a bad checksum", o.csum_bad);
    cr_assert_geq(o.arp_replies_sent, 1, "the host never asked the guest");
    cr_assert_eq(memcmp(o.mac, guest_mac, 6), 0, "config MAC differs");
    cr_assert_eq(st.rx_dropped, 0);
    cr_assert_eq(st.tx_dropped, 0);
    cr_assert_geq(st.tx_packets, count + 3);
    cr_assert_geq(st.rx_packets, count + 3);
    if (features & VN_F_CSUM)
        cr_assert(o.drv_features & VN_F_CSUM, "CSUM was not negotiated");
    else
        cr_assert_eq(o.csum_partial, 0,
                     "partial checksums reached a guest without offload");
    close(rx);
    close(tx);
}

Test(virtio_net, traffic_plain)
{
    traffic(VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS, 200);
}

Test(virtio_net, traffic_checksum_offload)
{
    traffic(VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS | VN_F_CSUM |
                VN_F_GUEST_CSUM,
            200);
}

/* --- receive buffers whose pages are missing --- */

/* Buffers of the guest's receive area whose bit is set read as missing,
 * as post-copy will report pages that have not arrived. */
static atomic_uint missing_mask;
static atomic_uint missing_asks;

static int fault_hook(void *opaque, uint64_t gpa, uint64_t len)
{
    (void)opaque;
    (void)len;
    if (gpa < VN_RXBUF || gpa >= VN_RXBUF + VN_NRX * VN_BUFSZ)
        return 1;
    uint32_t id = (uint32_t)((gpa - VN_RXBUF) / VN_BUFSZ);
    if (atomic_load(&missing_mask) & (1u << id)) {
        atomic_fetch_add(&missing_asks, 1);
        return 0;
    }
    return 1;
}

/* A guest that answers pings and counts datagrams; returns once the host
 * and the guest know each other. */
static void warm_guest(int *tx)
{
    *tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    open_guest(&g, VN_TRAFFIC, VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS, 0, 3000,
               1);
    hvi_vm_set_present_hook(g.v.t.vm, fault_hook, NULL);
    start(&g);
    struct vn_out o;
    WAIT_GUEST(&g, o, 60000, o.echo_replies_got >= 1);
    cr_assert_eq(o.echo_replies_got, 1, "no echo reply; log %.*s",
                 (int)g.v.log_len, g.v.log);
    cr_assert_eq(host_ping(1, 10000), 1);
}

Test(virtio_net, faulty_buffers_set_aside)
{
    int tx;
    warm_guest(&tx);
    struct vn_out o;
    out(&g, &o);
    uint32_t base = o.udp_rx, loops0 = o.loops;
    /* a third of the buffers is missing: packets go to the others */
    atomic_store(&missing_mask, 0x0f0f0f00u);
    for (uint32_t i = 1; i <= 120; i++) {
        if (i == 60) {
            out(&g, &o);
            cr_assert_gt(o.loops, loops0, "the vCPU stalled");
            atomic_store(&missing_mask, 0); /* the pages arrived */
        }
        udp_send(tx, i);
        usleep(3000);
    }
    WAIT_GUEST(&g, o, 30000, o.udp_rx - base >= 120);
    hvc_virtio_net_stats st;
    stats(&g, &st);
    o = finish(&g);
    cr_assert_eq(o.udp_rx - base, 120, "guest got %u of 120", o.udp_rx - base);
    cr_assert_eq(o.udp_rx_gaps, 0, "datagrams out of order or lost");
    cr_assert_gt(st.faulty_events, 0, "no buffer was found missing");
    cr_assert_gt(atomic_load(&missing_asks), 0);
    cr_assert_eq(st.faulty_resolved, st.faulty_events,
                 "%llu set aside, %llu used again",
                 (unsigned long long)st.faulty_events,
                 (unsigned long long)st.faulty_resolved);
    cr_assert_gt(st.faulty_wait_ns_max, 0);
    cr_assert_eq(st.rx_dropped, 0);
    close(tx);
}

Test(virtio_net, faulty_every_buffer_then_bounded_queue)
{
    int tx;
    warm_guest(&tx);
    struct vn_out o;
    out(&g, &o);
    uint32_t base = o.udp_rx;
    /* every buffer missing: packets wait in the host queue */
    atomic_store(&missing_mask, 0xffffffffu);
    for (uint32_t i = 1; i <= 40; i++) {
        udp_send(tx, i);
        usleep(2000);
    }
    usleep(200000);
    out(&g, &o);
    cr_assert_eq(o.udp_rx, base, "a datagram reached a missing buffer");
    hvc_virtio_net_stats st;
    stats(&g, &st);
    cr_assert_geq(st.rx_queued, 40);
    cr_assert_geq(st.faulty_events, VN_NRX);
    atomic_store(&missing_mask, 0);
    WAIT_GUEST(&g, o, 30000, o.udp_rx - base >= 40);
    cr_assert_eq(o.udp_rx - base, 40,
                 "guest got %u of 40 after the pages "
                 "arrived",
                 o.udp_rx - base);
    cr_assert_eq(o.udp_rx_gaps, 0);
    stats(&g, &st);
    cr_assert_eq(st.rx_dropped, 0);
    cr_assert_geq(st.faulty_wait_ns_max, 200000000ull,
                  "resolution took %llu ns",
                  (unsigned long long)st.faulty_wait_ns_max);
    /* again, past the host queue's bound: the rest is dropped, counted */
    base = o.udp_rx;
    atomic_store(&missing_mask, 0xffffffffu);
    for (uint32_t i = 41; i <= 340; i++) {
        udp_send(tx, i);
        if (i % 4 == 0)
            usleep(2000);
    }
    usleep(300000);
    atomic_store(&missing_mask, 0);
    hvc_virtio_net_stats st2;
    for (int w = 0; w < 30000; w += 20) {
        out(&g, &o);
        stats(&g, &st2);
        if (o.udp_rx - base + st2.rx_dropped - st.rx_dropped >= 300)
            break;
        usleep(20000);
    }
    o = finish(&g);
    stats(&g, &st2);
    uint64_t dropped = st2.rx_dropped - st.rx_dropped;
    cr_assert_gt(dropped, 0, "nothing was dropped past the bound");
    /* every datagram was delivered or counted as dropped (a stray ARP
     * from the host may be among the drops) */
    cr_assert(o.udp_rx - base + dropped >= 300 &&
                  o.udp_rx - base + dropped <= 304,
              "%u delivered + %llu dropped, of 300", o.udp_rx - base,
              (unsigned long long)dropped);
    cr_assert_leq(o.udp_rx - base, 256, "more than the host queue's bound");
    close(tx);
}

/* Receive buffers of 256 bytes: each 1400-byte datagram spans six
 * (VIRTIO_NET_F_MRG_RXBUF, num_buffers), while a third of the buffers is
 * missing for the first half; the guest puts each one together and checks
 * its UDP checksum over all of it. */
Test(virtio_net, mergeable_buffers_with_faulty_ones)
{
    int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    open_guest(&g, VN_TRAFFIC, VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS, 0, 3000,
               1);
    g.cmd.rx_buf_len = 256;
    HVT_OK(hvc_vm_write(g.v.t.vm, VT_DATA_IN, &g.cmd, sizeof(g.cmd)));
    hvi_vm_set_present_hook(g.v.t.vm, fault_hook, NULL);
    start(&g);
    struct vn_out o;
    WAIT_GUEST(&g, o, 60000, o.echo_replies_got >= 1);
    cr_assert_eq(o.echo_replies_got, 1, "no echo reply; log %.*s",
                 (int)g.v.log_len, g.v.log);
    out(&g, &o);
    uint32_t base = o.udp_rx;
    atomic_store(&missing_mask, 0x49249249u); /* every third buffer */
    for (uint32_t i = 1; i <= 100; i++) {
        if (i == 50)
            atomic_store(&missing_mask, 0);
        udp_send_len(tx, i, 1400);
        usleep(4000);
    }
    WAIT_GUEST(&g, o, 30000, o.udp_rx - base >= 100);
    hvc_virtio_net_stats st;
    stats(&g, &st);
    o = finish(&g);
    cr_assert_eq(o.udp_rx - base, 100, "guest got %u of 100", o.udp_rx - base);
    cr_assert_eq(o.udp_rx_gaps, 0);
    cr_assert_eq(o.csum_bad, 0, "%u datagrams damaged", o.csum_bad);
    cr_assert_geq(o.rx_merged, 100, "only %u packets in several buffers",
                  o.rx_merged);
    cr_assert_gt(st.faulty_events, 0);
    cr_assert_eq(st.faulty_resolved, st.faulty_events);
    cr_assert_eq(st.rx_dropped, 0);
    close(tx);
}

/* --- a malicious driver --- */

static void malicious(uint32_t mode)
{
    int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    open_guest(&g, mode, VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS, 0, 3000, 1);
    start(&g);
    struct vn_out o;
    for (int w = 0; w < 30000; w += 50) {
        out(&g, &o);
        if (o.mal_status || o.echo_replies_got)
            break;
        if (mode == VN_MAL_TINY_RX)
            udp_send(tx, 1); /* something to receive */
        usleep(50000);
    }
    cr_assert(o.mal_status & NEEDS_RESET,
              "the device did not fail (status 0x%x); log %.*s", o.mal_status,
              (int)g.v.log_len, g.v.log);
    /* the guest reset the device and goes on: the VMM is intact */
    WAIT_GUEST(&g, o, 60000, o.echo_replies_got >= 1);
    cr_assert_eq(o.echo_replies_got, 1, "no traffic after the reset");
    cr_assert_eq(host_ping(2, 10000), 2);
    o = finish(&g);
    cr_assert_eq(o.status & NEEDS_RESET, 0);
    close(tx);
}

Test(virtio_net, malicious_descriptor_loop)
{
    malicious(VN_MAL_LOOP);
}

Test(virtio_net, malicious_buffer_outside_ram)
{
    malicious(VN_MAL_OUTSIDE);
}

Test(virtio_net, malicious_64k_chain)
{
    malicious(VN_MAL_BIG_TX);
}

Test(virtio_net, malicious_one_byte_rx_buffer)
{
    malicious(VN_MAL_TINY_RX);
}

/* The device's worker uses transmit buffers under the device lock and
 * signals them after dropping and taking it again; a reset in between
 * (the guest's, or hvc_vm_reset_devices()) left the reset device with
 * InterruptStatus set (and the ring's flags read at guest-physical 0),
 * so it saved another state than a new device (found by fuzz_vqueue).
 * The late signal, called directly: a queue that is not ready, on a
 * device whose driver is not running, raises nothing. */
Test(virtio_net, no_interrupt_on_a_reset_queue)
{
    vt_open(&g.v, "vnet");
    hvc_virtio_net_options o = HVC_VIRTIO_NET_OPTIONS_INIT;
    o.flags = HVC_VIRTIO_NET_DETACHED;
    o.mmio = (hvc_virtio_mmio){VN_BASE, VN_IRQ, 0};
    memcpy(o.mac, guest_mac, 6);
    HVT_OK(hvc_virtio_net_create(g.v.t.vm, &o, &g.net));
    HVT_OK(hvc_vm_reset_devices(g.v.t.vm));
    static uint8_t fresh[1 << 16], after[1 << 16];
    size_t flen, alen;
    HVT_OK(hvc_device_save_state(g.net, fresh, sizeof(fresh), &flen));
    struct vdev *d = hvi_vdev_of(g.net);
    cr_assert_not_null(d);
    pthread_mutex_lock(&d->lock);
    for (uint32_t q = 0; q < 3; q++)
        hvi_vq_interrupt(d, &d->vq[q]);
    uint32_t isr = d->isr;
    pthread_mutex_unlock(&d->lock);
    cr_assert_eq(isr, 0, "InterruptStatus 0x%x on a reset device", isr);
    HVT_OK(hvc_device_save_state(g.net, after, sizeof(after), &alen));
    cr_assert_eq(alen, flen);
    cr_assert_eq(memcmp(fresh, after, flen), 0,
                 "a late signal changed the reset device's state");
}
