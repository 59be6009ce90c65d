/* Helpers of the virtio-net suites; see vnet_util.h. */
#include "vnet_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static char ns_name[64];
const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

void sh(const char *fmt, ...)
{
    char c[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c, sizeof(c), fmt, ap);
    va_end(ap);
    int r = system(c);
    cr_assert_eq(r, 0, "'%s' failed (%d)", c, r);
}

void netns_up(void)
{
    cr_assert_eq(geteuid(), 0, "the virtio-net suite needs root");
    snprintf(ns_name, sizeof(ns_name), "hvcvnet%d", (int)getpid());
    sh("ip netns add %s", ns_name);
    char path[128];
    snprintf(path, sizeof(path), "/var/run/netns/%s", ns_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(setns(fd, CLONE_NEWNET), 0, "setns: %s", strerror(errno));
    close(fd);
    sh("ip link set lo up");
    /* no IPv6 chatter on the tap: the tests count every packet */
    sh("ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
       "net.ipv6.conf.default.disable_ipv6=1",
       ns_name);
    sh("ip tuntap add dev " TAP " mode tap");
    sh("ip addr add " HOST_IP "/24 dev " TAP);
    sh("ip link set " TAP " up");
}

void netns_down(void)
{
    if (ns_name[0]) {
        char c[128];
        snprintf(c, sizeof(c), "ip netns del %s", ns_name);
        if (system(c) != 0)
            fprintf(stderr, "could not delete netns %s\n", ns_name);
        ns_name[0] = 0;
    }
}

/* --- the guest and its vCPU thread --- */

vnt g;

static void *runner(void *arg)
{
    vnt *n = arg;
    for (;;) {
        const hvc_exit *e;
        int r = hvc_vcpu_run(n->v.vcpu, &e);
        if (r < 0) {
            snprintf(n->why, sizeof(n->why), "hvc_vcpu_run: %d %s", r,
                     hvc_last_error());
            return NULL;
        }
        if (e->reason == HVC_EXIT_KICK && atomic_load(&n->quit))
            return NULL;
        if (e->reason == HVC_EXIT_KICK)
            continue;
        if (e->reason == HVC_EXIT_PIO && e->u.io.is_write &&
            e->u.io.port == PORT_DONE) {
            n->done = *(uint8_t *)e->u.io.data;
            return NULL;
        }
        snprintf(n->why, sizeof(n->why), "exit %u at rip 0x%llx", e->reason,
                 (unsigned long long)hvt_reg(n->v.vcpu, HVC_X86_RIP));
        return NULL;
    }
}

void start(vnt *n)
{
    n->done = -1;
    atomic_store(&n->quit, 0);
    cr_assert_eq(pthread_create(&n->th, NULL, runner, n), 0);
    n->running = 1;
}

/* Stops the vCPU thread without the guest's help. */
void halt_vcpu(vnt *n)
{
    atomic_store(&n->quit, 1);
    hvc_vcpu_kick(n->v.vcpu);
    pthread_join(n->th, NULL);
    n->running = 0;
}

void out(vnt *n, struct vn_out *o)
{
    HVT_OK(hvc_vm_read(n->v.t.vm, VT_DATA_OUT, o, sizeof(*o)));
}

/* Tells the guest to stop and waits for it. */
struct vn_out finish(vnt *n)
{
    uint32_t one = 1;
    HVT_OK(hvc_vm_write(n->v.t.vm, VT_DATA_IN + offsetof(struct vn_cmd, stop),
                        &one, 4));
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    int r = pthread_timedjoin_np(n->th, NULL, &dl);
    if (r != 0)
        halt_vcpu(n);
    n->running = 0;
    struct vn_out o;
    out(n, &o);
    cr_assert_eq(r, 0, "the guest did not stop; log: %.*s", (int)n->v.log_len,
                 n->v.log);
    cr_assert_eq(n->done, VT_OK, "guest ended with %d (%s); log: %.*s", n->done,
                 n->why, (int)n->v.log_len, n->v.log);
    return o;
}

uint64_t tsc_hz(void)
{
    struct timespec a, b, d = {0, 50000000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint64_t t0 = __rdtsc();
    nanosleep(&d, NULL);
    uint64_t t1 = __rdtsc();
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    return (uint64_t)((double)(t1 - t0) / s);
}

void add_net(vnt *n, uint32_t flags)
{
    hvc_virtio_net_options o = HVC_VIRTIO_NET_OPTIONS_INIT;
    o.flags = flags;
    o.mmio = (hvc_virtio_mmio){VN_BASE, VN_IRQ, 0};
    o.tap = TAP;
    memcpy(o.mac, guest_mac, 6);
    o.name = "net0";
    HVT_OK(hvc_virtio_net_create(n->v.t.vm, &o, &n->net));
}

/* A VM with the guest and the device; the command written, not started. */
void open_guest(vnt *n, uint32_t mode, uint64_t features, uint32_t udp_count,
                uint32_t interval_us, uint32_t pings)
{
    memset(n, 0, sizeof(*n));
    vt_open(&n->v, "vnet");
    add_net(n, 0);
    n->cmd.magic = VN_MAGIC;
    n->cmd.mode = mode;
    n->cmd.features = features;
    inet_pton(AF_INET, GUEST_IP, n->cmd.guest_ip);
    inet_pton(AF_INET, HOST_IP, n->cmd.host_ip);
    n->cmd.guest_port = GUEST_PORT;
    n->cmd.host_port = HOST_PORT;
    n->cmd.udp_count = udp_count;
    n->cmd.udp_interval = tsc_hz() / 1000000 * interval_us;
    n->cmd.pings = pings;
    HVT_OK(hvc_vm_write(n->v.t.vm, VT_DATA_IN, &n->cmd, sizeof(n->cmd)));
}

void vnt_fini(void)
{
    if (g.running)
        halt_vcpu(&g);
    if (g.v.t.vm)
        vt_close(&g.v);
    netns_down();
}

/* --- host sockets --- */

int udp_rx_sock(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(HOST_PORT)};
    inet_pton(AF_INET, HOST_IP, &a.sin_addr);
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s",
                 strerror(errno));
    int big = 1 << 22;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    return s;
}

void udp_drain(int s, struct udp_count *c)
{
    uint8_t b[2048];
    ssize_t k;
    while ((k = recv(s, b, sizeof(b), 0)) >= 4) {
        uint32_t seq = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                       (uint32_t)b[2] << 8 | b[3];
        if (seq != c->last + 1)
            c->gaps++;
        c->last = seq;
        if (seq > c->max)
            c->max = seq;
        c->n++;
    }
}

void udp_send(int s, uint32_t seq)
{
    udp_send_len(s, seq, 32);
}

void udp_send_len(int s, uint32_t seq, size_t len)
{
    uint8_t b[1472] = {(uint8_t)(seq >> 24), (uint8_t)(seq >> 16),
                       (uint8_t)(seq >> 8), (uint8_t)seq};
    for (size_t i = 4; i < sizeof(b); i++)
        b[i] = (uint8_t)(i * 7 + seq);
    if (len < 4 || len > sizeof(b))
        len = 32;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(GUEST_PORT)};
    inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
    for (int tries = 0; tries < 1000; tries++) {
        if (sendto(s, b, len, 0, (struct sockaddr *)&a, sizeof(a)) ==
            (ssize_t)len)
            return;
        usleep(1000); /* the neighbour entry is being resolved */
    }
    cr_assert_fail("cannot send to the guest: %s", strerror(errno));
}

uint16_t csum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1)
        s += (uint32_t)b[n - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/* Echo requests from the host; returns the replies that came back. */
int host_ping(int count, int timeout_ms)
{
    int s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    cr_assert_geq(s, 0, "raw socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
    int got = 0;
    for (int i = 1; i <= count; i++) {
        uint8_t req[24] = {8, 0, 0, 0, 0x12, 0x34, 0, (uint8_t)i};
        memcpy(req + 8, "hvc-ping", 8);
        uint16_t c = htons(csum(req, sizeof(req)));
        memcpy(req + 2, &c, 2);
        cr_assert_eq(
            sendto(s, req, sizeof(req), 0, (struct sockaddr *)&a, sizeof(a)),
            (ssize_t)sizeof(req));
        for (int waited = 0; waited < timeout_ms;) {
            struct pollfd p = {s, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) {
                waited += 50;
                continue;
            }
            uint8_t b[1500];
            ssize_t k = recv(s, b, sizeof(b), 0);
            if (k >= 28 && b[20] == 0 && b[24] == 0x12 && b[25] == 0x34 &&
                b[27] == i) {
                got++;
                break;
            }
        }
    }
    close(s);
    return got;
}

void stats(vnt *n, hvc_virtio_net_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->size = sizeof(*s);
    HVT_OK(hvc_virtio_net_get_stats(n->net, s));
}
