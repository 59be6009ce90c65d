/* virtio-net under a moving VM, with the guest of tests/virtio/vnet.c on
 * a tap in a network namespace of the test's own (vnet_util.h): snapshot
 * and restore with traffic flowing, after which a gratuitous ARP for the
 * guest is seen on the tap; and the back end detached and attached again
 * with the guest sending, its packets held meanwhile and delivered after. */
#include "migtest.h"
#include "vnet_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hvcore/migration.h>

TestSuite(virtio_net_state, .init = netns_up, .fini = vnt_fini, .timeout = 240);

struct membuf {
    uint8_t *p;
    size_t len, cap, at;
};

static int64_t mem_write(void *opaque, const void *buf, size_t length)
{
    struct membuf *b = opaque;
    if (b->len + length > b->cap) {
        size_t cap = (b->len + length) * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, buf, length);
    b->len += length;
    return (int64_t)length;
}

static int64_t mem_read(void *opaque, void *buf, size_t length)
{
    struct membuf *b = opaque;
    size_t n = b->len - b->at < length ? b->len - b->at : length;
    memcpy(buf, b->p + b->at, n);
    b->at += n;
    return (int64_t)n;
}

static int debug_port(void *opaque, hvc_vcpu *vcpu, uint64_t offset, void *data,
                      uint32_t size, int is_write)
{
    vt *v = opaque;
    (void)vcpu, (void)offset, (void)size;
    if (is_write && v->log_len + 1 < sizeof(v->log))
        v->log[v->log_len++] = *(char *)data;
    return 0;
}

/* The restored VM's devices: the debug port and the same virtio-net on
 * the same tap, opened again by name. */
static int setup(void *opaque, hvc_vm *vm, const void *user, size_t length)
{
    vnt *n = opaque;
    (void)user, (void)length;
    int r = hvc_vm_add_io_handler(vm, HVC_IO_PIO, 0xe9, 1, debug_port, &n->v);
    if (r < 0)
        return r;
    hvc_virtio_net_options o = HVC_VIRTIO_NET_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){VN_BASE, VN_IRQ, 0};
    o.tap = TAP;
    o.name = "net0";
    return hvc_virtio_net_create(vm, &o, &n->net);
}

/* A raw socket seeing every ARP frame on the tap. */
static int arp_capture(void)
{
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
    cr_assert_geq(s, 0, "AF_PACKET: %s", strerror(errno));
    struct sockaddr_ll a = {.sll_family = AF_PACKET,
                            .sll_protocol = htons(ETH_P_ARP),
                            .sll_ifindex = (int)if_nametoindex(TAP)};
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    return s;
}

/* Waits for a gratuitous ARP for the guest (sender and target its
 * address, sender hardware its MAC). */
static int seen_garp(int s, int timeout_ms)
{
    uint8_t ip[4];
    inet_pton(AF_INET, GUEST_IP, ip);
    for (int waited = 0; waited < timeout_ms;) {
        struct pollfd p = {s, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
            waited += 50;
            continue;
        }
        uint8_t f[128];
        ssize_t k = recv(s, f, sizeof(f), 0);
        const uint8_t *a = f + 14;
        if (k >= 42 && memcmp(a + 8, guest_mac, 6) == 0 &&
            memcmp(a + 14, ip, 4) == 0 && memcmp(a + 24, ip, 4) == 0)
            return 1;
    }
    return 0;
}

Test(virtio_net_state, snapshot_restore_with_traffic)
{
    int rx = udp_rx_sock();
    int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    open_guest(&g, VN_TRAFFIC,
               VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS | VN_F_CTRL_VQ |
                   VN_F_GUEST_ANNOUNCE,
               100000, 4000, 0);
    start(&g);
    struct vn_out o;
    WAIT_GUEST(&g, o, 60000, o.arp_replies_got >= 1);
    cr_assert_eq(o.arp_replies_got, 1);
    struct udp_count hc = {0};
    uint32_t seq = 0;
    for (int i = 0; i < 100; i++) { /* traffic both ways */
        udp_send(tx, ++seq);
        udp_drain(rx, &hc);
        usleep(4000);
    }
    cr_assert_gt(hc.n, 0, "no datagram from the guest before the snapshot");
    /* stop the vCPU, save with the device quiesced, drop the VM (its tap
     * is free again), restore into a new one */
    halt_vcpu(&g);
    out(&g, &o);
    uint32_t rx_before = o.udp_rx;
    struct membuf b = {0};
    hvc_stream st = HVC_STREAM_INIT;
    st.write = mem_write;
    st.opaque = &b;
    HVT_OK(hvc_vm_pause(g.v.t.vm));
    HVT_OK(hvc_vm_save(g.v.t.vm, &st, NULL));
    HVT_OK(hvc_vm_destroy(g.v.t.vm));
    g.v.t.vm = NULL;
    int cap = arp_capture();
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = setup;
    ro.opaque = &g;
    st = (hvc_stream)HVC_STREAM_INIT;
    st.read = mem_read;
    st.opaque = &b;
    HVT_OK(hvc_vm_restore(g.v.t.hv, &st, &ro, &g.v.t.vm));
    free(b.p);
    HVT_OK(hvc_vm_get_vcpu(g.v.t.vm, 0, &g.v.vcpu));
    start(&g);
    cr_assert(seen_garp(cap, 10000),
              "no gratuitous ARP for the guest on the tap after the restore");
    close(cap);
    uint32_t host_before = hc.max;
    for (int i = 0; i < 100; i++) {
        udp_send(tx, ++seq);
        udp_drain(rx, &hc);
        usleep(4000);
    }
    WAIT_GUEST(&g, o, 30000, o.udp_rx >= rx_before + 50);
    for (int w = 0; w < 3000 && hc.max < host_before + 20; w += 20) {
        udp_drain(rx, &hc);
        usleep(20000);
    }
    hvc_virtio_net_stats s;
    stats(&g, &s);
    o = finish(&g);
    cr_assert_geq(o.udp_rx, rx_before + 50,
                  "the guest got %u datagrams after the restore",
                  o.udp_rx - rx_before);
    cr_assert_geq(hc.max, host_before + 20,
                  "the host got nothing new after the restore");
    cr_assert_geq(s.announces, 1);
    cr_assert_geq(o.announces, 1, "the guest was not asked to announce");
    cr_assert_eq(o.csum_bad, 0);
    close(rx);
    close(tx);
}

Test(virtio_net_state, detach_attach_holds_packets)
{
    int rx = udp_rx_sock();
    const uint32_t count = 150;
    open_guest(&g, VN_TRAFFIC, VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS, count,
               4000, 0);
    start(&g);
    struct vn_out o;
    WAIT_GUEST(&g, o, 60000, o.udp_sent >= 20);
    cr_assert_geq(o.udp_sent, 20);
    HVT_OK(hvc_virtio_net_detach_backend(g.net));
    HVT_ERR(hvc_virtio_net_detach_backend(g.net), -EALREADY);
    uint32_t sent0 = o.udp_sent;
    WAIT_GUEST(&g, o, 30000, o.udp_sent >= sent0 + 40);
    cr_assert_geq(o.udp_sent, sent0 + 40, "the guest stalled while detached");
    hvc_virtio_net_stats s;
    stats(&g, &s);
    cr_assert_eq(s.attached, 0);
    cr_assert_gt(s.tx_holding, 0, "nothing held while detached");
    HVT_OK(hvc_virtio_net_attach_backend(g.net, NULL, -1));
    HVT_ERR(hvc_virtio_net_attach_backend(g.net, NULL, -1), -EISCONN);
    struct udp_count hc = {0};
    WAIT_GUEST(&g, o, 60000, o.udp_sent >= count);
    for (int w = 0; w < 10000 && hc.n < count; w += 20) {
        udp_drain(rx, &hc);
        usleep(20000);
    }
    stats(&g, &s);
    o = finish(&g);
    cr_assert_eq(hc.n, count, "host got %u of %u datagrams", hc.n, count);
    cr_assert_eq(hc.gaps, 0, "held datagrams left out of order");
    cr_assert_gt(s.tx_held, 0);
    cr_assert_eq(s.tx_delivered_held, s.tx_held);
    cr_assert_eq(s.tx_holding, 0);
    cr_assert_eq(s.tx_dropped, 0);
    cr_assert_eq(s.attached, 1);
    close(rx);
}

/* Packets held while detached are part of the saved state: saved with
 * the back end detached, restored on a device with the tap, they leave
 * first, and the host sees every datagram in order. The link status the
 * guest reads follows hvc_virtio_net_set_link(). */
Test(virtio_net_state, held_packets_survive_a_snapshot)
{
    int rx = udp_rx_sock();
    open_guest(&g, VN_TRAFFIC, VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS, 100000,
               4000, 0);
    start(&g);
    struct vn_out o;
    WAIT_GUEST(&g, o, 60000, o.udp_sent >= 10 && (o.net_status & 1));
    cr_assert_eq(o.net_status & 1, 1, "link down at start");
    HVT_OK(hvc_virtio_net_set_link(g.net, 0));
    WAIT_GUEST(&g, o, 30000, !(o.net_status & 1));
    cr_assert_eq(o.net_status & 1, 0, "the guest still sees the link up");
    HVT_OK(hvc_virtio_net_set_link(g.net, 1));
    HVT_OK(hvc_virtio_net_detach_backend(g.net));
    hvc_virtio_net_stats s;
    for (int w = 0; w < 30000; w += 20) {
        stats(&g, &s);
        if (s.tx_holding >= 20)
            break;
        usleep(20000);
    }
    cr_assert_geq(s.tx_holding, 20, "only %llu held",
                  (unsigned long long)s.tx_holding);
    halt_vcpu(&g);
    out(&g, &o);
    uint32_t sent = o.udp_sent;
    struct membuf b = {0};
    hvc_stream st = HVC_STREAM_INIT;
    st.write = mem_write;
    st.opaque = &b;
    HVT_OK(hvc_vm_pause(g.v.t.vm));
    HVT_OK(hvc_vm_save(g.v.t.vm, &st, NULL));
    HVT_OK(hvc_vm_destroy(g.v.t.vm));
    g.v.t.vm = NULL;
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = setup;
    ro.opaque = &g;
    st = (hvc_stream)HVC_STREAM_INIT;
    st.read = mem_read;
    st.opaque = &b;
    HVT_OK(hvc_vm_restore(g.v.t.hv, &st, &ro, &g.v.t.vm));
    free(b.p);
    HVT_OK(hvc_vm_get_vcpu(g.v.t.vm, 0, &g.v.vcpu));
    start(&g);
    struct udp_count hc = {0};
    for (int w = 0; w < 30000 && hc.max < sent + 10; w += 20) {
        udp_drain(rx, &hc);
        usleep(20000);
    }
    stats(&g, &s);
    o = finish(&g);
    udp_drain(rx, &hc);
    cr_assert_geq(hc.max, sent + 10, "the host got up to %u (saved at %u)",
                  hc.max, sent);
    cr_assert_eq(hc.gaps, 0, "%u gaps: held datagrams lost", hc.gaps);
    cr_assert_eq(hc.n, hc.max);
    cr_assert_gt(s.tx_delivered_held, 0, "the restored device sent none");
    cr_assert_eq(s.tx_holding, 0);
    close(rx);
}

/* The payload's field @tag (u16 tag, u16 kind, u32 length, data, padded
 * to 8): its data, or NULL. */
static uint8_t *field(uint8_t *rec, size_t len, uint16_t tag, uint32_t *n)
{
    for (size_t at = 48; at + 8 <= len;) {
        uint16_t t;
        uint32_t k;
        memcpy(&t, rec + at, 2);
        memcpy(&k, rec + at + 4, 4);
        if (t == tag) {
            *n = k;
            return rec + at + 8;
        }
        at += 8 + ((k + 7) & ~7u);
    }
    return NULL;
}

static void reseal(uint8_t *rec, size_t len)
{
    uint32_t crc = migt_crc32c(0, rec + 48, len - 48);
    memcpy(rec + 44, &crc, 4);
}

/* A record with a multicast MAC, an impossible status, or a malformed
 * holding queue is refused with a message, and the device keeps its
 * state. */
Test(virtio_net_state, hostile_state_is_refused)
{
    vt_open(&g.v, "vnet");
    add_net(&g, 0);
    static uint8_t rec[1 << 16], before[1 << 16], after[1 << 16];
    size_t len, blen, alen;
    HVT_OK(hvc_device_save_state(g.net, rec, sizeof(rec), &len));
    memcpy(before, rec, len);
    blen = len;
    uint32_t n;
    uint8_t *mac = field(rec, len, 200, &n);
    cr_assert(mac && n == 6, "no MAC field in the record");
    mac[0] |= 1;
    reseal(rec, len);
    HVT_ERR(hvc_device_load_state(g.net, rec, len), -EBADMSG);
    cr_assert(strstr(hvc_last_error(), "MAC"), "%s", hvc_last_error());
    memcpy(rec, before, len);
    uint8_t *status = field(rec, len, 201, &n);
    cr_assert(status && n == 8);
    status[0] = 0xff;
    reseal(rec, len);
    HVT_ERR(hvc_device_load_state(g.net, rec, len), -EBADMSG);
    cr_assert(strstr(hvc_last_error(), "status"), "%s", hvc_last_error());
    /* a holding queue field that claims more than it holds */
    memcpy(rec, before, len);
    uint8_t *hold = field(rec, len, 204, &n);
    cr_assert(hold && n == 0, "the holding queue is not empty");
    /* grow the empty field by 8 bytes: a packet of 1000 bytes in 4 */
    size_t at = (size_t)(hold - rec);
    memmove(rec + at + 8, rec + at, len - at);
    uint32_t claim = 1000, eight = 8;
    memcpy(rec + at, &claim, 4);
    memset(rec + at + 4, 0, 4);
    memcpy(rec + at - 4, &eight, 4);
    len += 8;
    uint32_t payload = (uint32_t)(len - 48);
    memcpy(rec + 40, &payload, 4);
    reseal(rec, len);
    HVT_ERR(hvc_device_load_state(g.net, rec, len), -EBADMSG);
    cr_assert(strstr(hvc_last_error(), "holding queue"), "%s",
              hvc_last_error());
    HVT_OK(hvc_device_save_state(g.net, after, sizeof(after), &alen));
    cr_assert_eq(alen, blen);
    cr_assert_eq(memcmp(before, after, blen), 0,
                 "a refused load changed "
                 "the device");
    HVT_OK(hvc_device_load_state(g.net, before, blen));
}

Test(virtio_net_state, bad_backends)
{
    vt_open(&g.v, "vnet");
    hvc_virtio_net_options o = HVC_VIRTIO_NET_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){VN_BASE, VN_IRQ, 0};
    o.tap = "nosuchtap0";
    HVT_ERR(hvc_virtio_net_create(g.v.t.vm, &o, &g.net), -ENODEV);
    cr_assert(strstr(hvc_last_error(), "nosuchtap0"), "%s", hvc_last_error());
    o.tap = "lo";
    cr_assert_lt(hvc_virtio_net_create(g.v.t.vm, &o, &g.net), 0);
    o.tap = TAP;
    o.queues = 4;
    HVT_ERR(hvc_virtio_net_create(g.v.t.vm, &o, &g.net), -EINVAL);
    o.queues = 1;
    o.mac[0] = 1; /* multicast */
    HVT_ERR(hvc_virtio_net_create(g.v.t.vm, &o, &g.net), -EINVAL);
    o.mac[0] = 0x52;
    HVT_OK(hvc_virtio_net_create(g.v.t.vm, &o, &g.net));
    /* the tap is taken now */
    hvc_device *other;
    o.mmio.base += HVC_VIRTIO_MMIO_SIZE;
    o.mmio.irq++;
    HVT_ERR(hvc_virtio_net_create(g.v.t.vm, &o, &other), -EBUSY);
    cr_assert(strstr(hvc_last_error(), TAP), "%s", hvc_last_error());
    o.tap = NULL;
    o.fd = 0; /* stdin is no tap */
    HVT_ERR(hvc_virtio_net_create(g.v.t.vm, &o, &other), -EINVAL);
    hvc_virtio_net_stats s = {0};
    HVT_ERR(hvc_virtio_net_get_stats(g.net, &s), -EINVAL); /* size 0 */
    HVT_ERR(hvc_virtio_net_announce(NULL), -EINVAL);
    /* created detached: the tap is remembered, opened on attach */
    HVT_OK(hvc_vm_remove_device(g.v.t.vm, g.net));
    o.fd = -1;
    o.tap = TAP;
    o.flags = HVC_VIRTIO_NET_DETACHED;
    HVT_OK(hvc_virtio_net_create(g.v.t.vm, &o, &g.net));
    s.size = sizeof(s);
    HVT_OK(hvc_virtio_net_get_stats(g.net, &s));
    cr_assert_eq(s.attached, 0);
    HVT_OK(hvc_virtio_net_attach_backend(g.net, NULL, -1));
    HVT_OK(hvc_virtio_net_get_stats(g.net, &s));
    cr_assert_eq(s.attached, 1);
    /* detached with no tap named: an attach must name one */
    o.tap = NULL;
    o.mmio.base += HVC_VIRTIO_MMIO_SIZE;
    o.mmio.irq++;
    HVT_OK(hvc_virtio_net_create(g.v.t.vm, &o, &other));
    HVT_ERR(hvc_virtio_net_attach_backend(other, NULL, -1), -EINVAL);
    HVT_ERR(hvc_virtio_net_attach_backend(other, TAP, -1), -EBUSY);
}

/* CPU time (clock ticks) of this process's threads named @name. */
static long thread_ticks(const char *name)
{
    long total = 0;
    DIR *dir = opendir("/proc/self/task");
    cr_assert_not_null(dir);
    struct dirent *de;
    while ((de = readdir(dir))) {
        int tid = atoi(de->d_name);
        if (tid <= 0)
            continue;
        char p[64], comm[32] = {0};
        snprintf(p, sizeof(p), "/proc/self/task/%d/comm", tid);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        int ok = fgets(comm, sizeof(comm), f) != NULL;
        fclose(f);
        if (!ok || strncmp(comm, name, strlen(name)) != 0)
            continue;
        snprintf(p, sizeof(p), "/proc/self/task/%d/stat", tid);
        f = fopen(p, "r");
        cr_assert_not_null(f);
        char line[1024];
        ok = fgets(line, sizeof(line), f) != NULL;
        fclose(f);
        char *r = ok ? strrchr(line, ')') : NULL;
        long ut = 0, st = 0;
        cr_assert(r && sscanf(r + 2,
                              "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
                              "%*u %*u %ld %ld",
                              &ut, &st) == 2);
        total += ut + st;
    }
    closedir(dir);
    return total;
}

/* Packets on the tap for a device whose driver never started: they stay
 * in the kernel's queue, and the worker sleeps instead of spinning. */
Test(virtio_net_state, idle_device_sleeps)
{
    vt_open(&g.v, "vnet");
    add_net(&g, 0);
    HVT_OK(hvc_virtio_net_announce(g.net)); /* a pass of the worker */
    sh("ip neigh replace " GUEST_IP " lladdr 52:54:00:12:34:56 dev " TAP);
    int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    long t0 = thread_ticks("hvc-net");
    for (uint32_t i = 1; i <= 200; i++) {
        udp_send(tx, i);
        usleep(2500);
    }
    long used = thread_ticks("hvc-net") - t0;
    cr_assert_lt(used, 10, "the worker used %ld ticks in 0.5 s", used);
    close(tx);
}

/* The tap deleted under a running device: its reads fail for good, the
 * worker stops waiting on it instead of spinning, and the guest runs on;
 * what it sends is dropped and counted. */
Test(virtio_net_state, deleted_tap_does_not_spin)
{
    open_guest(&g, VN_TRAFFIC, VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS, 100000,
               5000, 0);
    start(&g);
    struct vn_out o;
    WAIT_GUEST(&g, o, 60000, o.udp_sent >= 5);
    cr_assert_geq(o.udp_sent, 5);
    sh("ip link del " TAP);
    usleep(100000);
    long t0 = thread_ticks("hvc-net");
    uint32_t sent0 = o.udp_sent;
    usleep(500000);
    long used = thread_ticks("hvc-net") - t0;
    out(&g, &o);
    cr_assert_gt(o.udp_sent, sent0, "the guest stalled");
    cr_assert_lt(used, 10, "the worker used %ld ticks in 0.5 s", used);
    hvc_virtio_net_stats s;
    stats(&g, &s);
    o = finish(&g);
    cr_assert_gt(s.tx_dropped, 0, "packets to a deleted tap are not counted");
}

/* A device reset (hvc_vm_reset_devices(), as the guest's status write of
 * 0) returns what the old driver's traffic left in the device to its
 * state at creation: packets held while detached are dropped and counted,
 * the learned guest address forgotten; the device then saves exactly the
 * record it saved when new. */
Test(virtio_net_state, reset_drops_held_packets)
{
    vt_open(&g.v, "vnet");
    hvc_virtio_net_options o = HVC_VIRTIO_NET_OPTIONS_INIT;
    o.flags = HVC_VIRTIO_NET_DETACHED;
    o.mmio = (hvc_virtio_mmio){VN_BASE, VN_IRQ, 0};
    memcpy(o.mac, guest_mac, 6);
    HVT_OK(hvc_virtio_net_create(g.v.t.vm, &o, &g.net));
    static uint8_t fresh[1 << 16], rec[1 << 16], after[1 << 16];
    size_t flen, len, alen;
    HVT_OK(hvc_device_save_state(g.net, fresh, sizeof(fresh), &flen));
    memcpy(rec, fresh, flen);
    len = flen;
    /* a learned address, and two packets in the holding queue */
    uint32_t n;
    uint8_t *ip = field(rec, len, 202, &n);
    cr_assert(ip && n == 8, "no guest address field in the record");
    const uint8_t addr[4] = {10, 0, 2, 15};
    memcpy(ip, addr, 4);
    uint8_t *hold = field(rec, len, 204, &n);
    cr_assert(hold && n == 0, "the holding queue is not empty");
    uint8_t q[2 * (4 + 64)] = {0};
    for (int i = 0; i < 2; i++) {
        uint32_t k = 64;
        memcpy(q + i * 68, &k, 4);
        memset(q + i * 68 + 4 + 12, 0xff, 6); /* broadcast */
        memcpy(q + i * 68 + 4 + 18, guest_mac, 6);
    }
    size_t at = (size_t)(hold - rec), grow = sizeof(q); /* 136: 8-aligned */
    memmove(rec + at + grow, rec + at, len - at);
    memcpy(rec + at, q, sizeof(q));
    uint32_t flen32 = (uint32_t)sizeof(q);
    memcpy(rec + at - 4, &flen32, 4);
    len += grow;
    uint32_t payload = (uint32_t)(len - 48);
    memcpy(rec + 40, &payload, 4);
    reseal(rec, len);
    HVT_OK(hvc_device_load_state(g.net, rec, len));
    hvc_virtio_net_stats s = {.size = sizeof(s)};
    HVT_OK(hvc_virtio_net_get_stats(g.net, &s));
    cr_assert_eq(s.tx_holding, 2, "%llu packets held after the load",
                 (unsigned long long)s.tx_holding);
    HVT_OK(hvc_device_save_state(g.net, after, sizeof(after), &alen));
    cr_assert_eq(alen, len, "the loaded record does not save back");
    uint64_t dropped0 = s.tx_dropped;

    HVT_OK(hvc_vm_reset_devices(g.v.t.vm));
    HVT_OK(hvc_virtio_net_get_stats(g.net, &s));
    cr_assert_eq(s.tx_holding, 0, "%llu packets still held after a reset",
                 (unsigned long long)s.tx_holding);
    cr_assert_eq(s.tx_dropped, dropped0 + 2,
                 "the dropped packets were not "
                 "counted");
    HVT_OK(hvc_device_save_state(g.net, after, sizeof(after), &alen));
    cr_assert_eq(alen, flen, "a reset device saves %zu bytes, a new one %zu",
                 alen, flen);
    uint8_t *aip = field(after, alen, 202, &n);
    cr_assert(aip && n == 8);
    cr_assert_eq(memcmp(aip, "\0\0\0\0\0\0\0", 8), 0,
                 "the learned address survived a reset");
    cr_assert_eq(memcmp(after, fresh, flen), 0,
                 "a reset device saves another record than a new one");
}
