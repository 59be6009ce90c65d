/* virtio-net throughput: hvrun --net against QEMU 7.2's virtio-net-device
 * on -M microvm (-accel kvm, a tap with vhost off, virtio-mmio version 2),
 * both booting the same PVH guest (bench/guests/vnet_bench.c) on the same
 * tap, in a network namespace of the bench's own (root), alternating
 * rounds. The guest instructions are emulated on some hosts (slow), so the
 * result that carries is the ratio hvrun/QEMU, not the absolute rates.
 *
 * Measured from the host side of the tap, for 64- and 1400-byte UDP
 * payloads:
 *   guest -> host  the guest sends --count datagrams as fast as its ring
 *                  allows; packets/s and Mbit/s between the first and the
 *                  last the host receives (and how many were lost);
 *   host -> guest  the host sends as fast as it can for --blast-ms; the
 *                  guest counts what reached it; packets/s and Mbit/s.
 *
 * Exit status: 0 after reporting, 2 for bad options, 77 (skip) without
 * root or /dev/kvm, 1 on any other failure. */
#define _GNU_SOURCE
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "virtio_net"
#define ELF BENCH_GUEST_DIR "/vnet_bench.elf"
#define TAP "vnb0"
#define MAC "52:54:00:00:be:01"
#define MAX_ROUNDS 16

struct options {
    uint32_t rounds, count, blast_ms;
    const char *qemu;
    bool no_qemu;
};

enum { TX64, TX1400, RX64, RX1400, NR_METRICS };
static const char *const metric_name[NR_METRICS] = {
    "guest->host  64 B", "guest->host 1400 B", "host->guest  64 B",
    "host->guest 1400 B"};
static const uint32_t metric_size[NR_METRICS] = {64, 1400, 64, 1400};

/* packets/s per round, per VMM (0 hvrun, 1 QEMU) */
static double pps[2][NR_METRICS][MAX_ROUNDS];
static uint32_t lost[2][NR_METRICS];
static char ns[64];
static pid_t child = -1;

static void cleanup(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    if (ns[0]) {
        char c[128];
        snprintf(c, sizeof(c), "ip netns del %s", ns);
        if (system(c) != 0)
            fprintf(stderr, PROG ": could not delete netns %s\n", ns);
        ns[0] = 0;
    }
}

static void sh(const char *c)
{
    if (system(c) != 0) {
        fprintf(stderr, PROG ": '%s' failed\n", c);
        exit(1);
    }
}

static void netns_up(void)
{
    char c[256];
    snprintf(ns, sizeof(ns), "hvcbench%d", (int)getpid());
    snprintf(c, sizeof(c), "ip netns add %s", ns);
    sh(c);
    atexit(cleanup);
    snprintf(c, sizeof(c), "/var/run/netns/%s", ns);
    int fd = open(c, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
        bench_die("setns");
    close(fd);
    sh("ip link set lo up");
    sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
       "net.ipv6.conf.default.disable_ipv6=1");
    sh("ip tuntap add dev " TAP " mode tap");
    sh("ip addr add 10.98.0.1/24 dev " TAP);
    sh("ip link set " TAP " up");
    sh("ip neigh replace 10.98.0.2 lladdr " MAC " dev " TAP);
}

static pid_t spawn(const struct options *o, int vmm)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork");
    if (pid > 0)
        return pid;
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (vmm == 0)
        execl(HVRUN, HVRUN, "--kernel", ELF, "--mem", "64", "--serial", "none",
              "--net", "tap=" TAP ",mac=" MAC, "--cmdline", "scan=0xd0000000,1",
              (char *)NULL);
    else
        execlp(o->qemu, o->qemu, "-M", "microvm", "-accel", "kvm", "-m", "64M",
               "-smp", "1", "-nodefaults", "-no-user-config", "-display",
               "none", "-kernel", ELF, "-append", "scan=0xfeb00000,24",
               "-global", "virtio-mmio.force-legacy=false", "-netdev",
               "tap,id=n0,ifname=" TAP ",script=no,downscript=no,vhost=off",
               "-device", "virtio-net-device,netdev=n0,mac=" MAC, "-device",
               "isa-debug-exit,iobase=0xf4,iosize=1", (char *)NULL);
    _exit(127);
}

static int sock_rx, sock_tx;
static struct sockaddr_in guest = {.sin_family = AF_INET};

static void send_cmd(const uint8_t *b, size_t n)
{
    if (sendto(sock_tx, b, n, 0, (struct sockaddr *)&guest, sizeof(guest)) <
            0 &&
        errno != ENOBUFS && errno != EAGAIN)
        bench_die("sendto");
}

/* Asks the guest for its blast count; -1 when it does not answer within
 * @ms. */
static long query(int ms)
{
    uint8_t q = 'Q', b[2048];
    send_cmd(&q, 1);
    double end = bench_now_s() + ms / 1e3;
    while (bench_now_s() < end) {
        struct pollfd p = {sock_rx, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = recv(sock_rx, b, sizeof(b), 0);
        if (k >= 5 && b[0] == 'R')
            return (long)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 |
                          (uint32_t)b[3] << 8 | b[4]);
    }
    return -1;
}

static void drain(void)
{
    uint8_t b[2048];
    while (recv(sock_rx, b, sizeof(b), MSG_DONTWAIT) > 0)
        ;
}

/* guest -> host: packets/s between the first and the last datagram. */
static double measure_tx(uint32_t count, uint32_t size, uint32_t *lost_out)
{
    drain();
    uint8_t t[7] = {'T',
                    (uint8_t)(count >> 24),
                    (uint8_t)(count >> 16),
                    (uint8_t)(count >> 8),
                    (uint8_t)count,
                    (uint8_t)(size >> 8),
                    (uint8_t)size};
    send_cmd(t, sizeof(t));
    uint32_t n = 0;
    double first = 0, last = 0;
    uint8_t b[2048];
    for (;;) {
        struct pollfd p = {sock_rx, POLLIN, 0};
        if (poll(&p, 1, n ? 1000 : 10000) <= 0)
            break;
        ssize_t k = recv(sock_rx, b, sizeof(b), 0);
        if (k <= 0 || b[0] != 'S')
            continue;
        double now = bench_now_s();
        if (!n)
            first = now;
        last = now;
        if (++n == count)
            break;
    }
    *lost_out += count - n;
    return n > 1 ? (n - 1) / (last - first) : 0;
}

/* host -> guest: what reached the guest during a blast of @ms. */
static double measure_rx(uint32_t ms, uint32_t size)
{
    uint8_t b[1472];
    memset(b, 0, sizeof(b));
    b[0] = 'B';
    query(2000); /* resets the guest's count */
    double t0 = bench_now_s(), end = t0 + ms / 1e3;
    while (bench_now_s() < end)
        for (int i = 0; i < 16; i++)
            send_cmd(b, size);
    double t = bench_now_s() - t0;
    usleep(200000); /* what is queued reaches the guest */
    long got = query(5000);
    return got > 0 ? got / t : 0;
}

static void run_round(const struct options *o, int vmm, uint32_t round)
{
    child = spawn(o, vmm);
    long r = -1;
    for (int i = 0; i < 150 && r < 0; i++) {
        int st;
        if (waitpid(child, &st, WNOHANG) == child) {
            fprintf(stderr, PROG ": %s exited early (status 0x%x)\n",
                    vmm ? o->qemu : "hvrun", st);
            child = -1;
            exit(1);
        }
        r = query(400);
    }
    if (r < 0) {
        fprintf(stderr, PROG ": the guest under %s never answered\n",
                vmm ? "QEMU" : "hvrun");
        exit(1);
    }
    pps[vmm][TX64][round] = measure_tx(o->count, 64, &lost[vmm][TX64]);
    pps[vmm][TX1400][round] = measure_tx(o->count, 1400, &lost[vmm][TX1400]);
    pps[vmm][RX64][round] = measure_rx(o->blast_ms, 64);
    pps[vmm][RX1400][round] = measure_rx(o->blast_ms, 1400);
    uint8_t x = 'X';
    send_cmd(&x, 1);
    for (int i = 0; i < 50; i++) {
        if (waitpid(child, NULL, WNOHANG) == child) {
            child = -1;
            return;
        }
        usleep(100000);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = -1;
}

static void usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: " PROG " [--rounds N] [--count N] [--blast-ms N]\n"
            "          [--qemu PATH] [--no-qemu]\n"
            "  --rounds    rounds per VMM, alternating (default 3, max %d)\n"
            "  --count     datagrams per guest->host run (default 2000)\n"
            "  --blast-ms  length of a host->guest run (default 2000)\n"
            "  --qemu      the QEMU binary (default qemu-system-x86_64)\n"
            "  --no-qemu   hvrun only\n",
            MAX_ROUNDS);
    exit(status);
}

static uint32_t arg_num(const char *flag, const char *v, uint32_t lo,
                        uint32_t hi)
{
    char *end;
    unsigned long n = v ? strtoul(v, &end, 10) : 0;
    if (!v || *end || n < lo || n > hi) {
        fprintf(stderr, PROG ": %s needs a number in %u..%u\n", flag, lo, hi);
        exit(2);
    }
    return (uint32_t)n;
}

int main(int argc, char **argv)
{
    struct options o = {3, 2000, 2000, "qemu-system-x86_64", false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help"))
            usage(0);
        else if (!strcmp(a, "--rounds"))
            o.rounds = arg_num(a, v, 1, MAX_ROUNDS), i++;
        else if (!strcmp(a, "--count"))
            o.count = arg_num(a, v, 2, 1000000), i++;
        else if (!strcmp(a, "--blast-ms"))
            o.blast_ms = arg_num(a, v, 100, 60000), i++;
        else if (!strcmp(a, "--qemu") && v)
            o.qemu = v, i++;
        else if (!strcmp(a, "--no-qemu"))
            o.no_qemu = true;
        else
            usage(2);
    }
    if (geteuid() != 0 || access("/dev/kvm", R_OK | W_OK) != 0) {
        fprintf(stderr, PROG ": needs root and /dev/kvm; skipped\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    netns_up();
    sock_rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sock_tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(6000)};
    inet_pton(AF_INET, "10.98.0.1", &me.sin_addr);
    inet_pton(AF_INET, "10.98.0.2", &guest.sin_addr);
    guest.sin_port = htons(6001);
    int big = 1 << 23;
    setsockopt(sock_rx, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (sock_rx < 0 || sock_tx < 0 ||
        bind(sock_rx, (struct sockaddr *)&me, sizeof(me)) < 0)
        bench_die("socket");
    int vmms = o.no_qemu ? 1 : 2;
    for (uint32_t r = 0; r < o.rounds; r++)
        for (int k = 0; k < vmms; k++)
            run_round(&o, (int)((r + (uint32_t)k) % (uint32_t)vmms), r);
    printf("virtio-net, %u rounds (median packets/s; Mbit/s of payload)\n",
           o.rounds);
    printf("%-20s %12s %9s %12s %9s %8s\n", "", "hvrun pps", "Mbit/s",
           "QEMU pps", "Mbit/s", "ratio");
    for (int m = 0; m < NR_METRICS; m++) {
        double h = bench_summarise(pps[0][m], o.rounds).median;
        double q = vmms > 1 ? bench_summarise(pps[1][m], o.rounds).median : 0;
        printf("%-20s %12.0f %9.2f %12.0f %9.2f %8.2f\n", metric_name[m], h,
               h * metric_size[m] * 8 / 1e6, q, q * metric_size[m] * 8 / 1e6,
               q > 0 ? h / q : 0);
    }
    printf("lost guest->host datagrams: hvrun %u/%u, QEMU %u/%u\n",
           lost[0][TX64] + lost[0][TX1400], 2 * o.count * o.rounds,
           lost[1][TX64] + lost[1][TX1400],
           vmms > 1 ? 2 * o.count * o.rounds : 0);
    return 0;
}
