/* The cost of virtio-net's faulty-buffer path, per event: the device's
 * worker thread's CPU time (from /proc/self/task/<tid>/schedstat) per
 * received datagram, with every receive buffer reported missing at its
 * first look (the library's internal present hook, as post-copy will
 * answer; hence the static library) against the same stream with every
 * buffer present, divided by the events. The guest is the test driver of
 * tests/virtio/vnet.c, on a tap in a network namespace of the bench's own
 * (root); the host sends numbered UDP datagrams at a steady pace.
 *
 * Exit status: 0 after reporting, 2 for bad options, 77 (skip) without
 * root or /dev/kvm, 1 on any other failure. */
#define _GNU_SOURCE
#include "../tests/virtio/vnet_proto.h"
#include "bench_util.h"

#include <hvcore.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROG "virtio_net_faulty"
#define GUEST BENCH_GUEST_DIR "/vnet_faulty.bin"
#define TAP "vnf0"

/* src/core/internal.h's hook, reached through the static library. */
typedef int (*hvi_present_fn)(void *opaque, uint64_t gpa, uint64_t len);
void hvi_vm_set_present_hook(hvc_vm *vm, hvi_present_fn fn, void *opaque);

static char ns[64];
static atomic_uint armed; /* buffers that read as missing at their next look */

static void cleanup(void)
{
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

/* Missing once: the question asks for the page, and it is there at the
 * next look. */
static int hook(void *opaque, uint64_t gpa, uint64_t len)
{
    (void)opaque, (void)len;
    if (gpa < VN_RXBUF || gpa >= VN_RXBUF + VN_NRX * VN_BUFSZ)
        return 1;
    unsigned bit = 1u << ((gpa - VN_RXBUF) / VN_BUFSZ);
    return (atomic_fetch_and(&armed, ~bit) & bit) ? 0 : 1;
}

/* CPU time (ns) of the threads named hvc-net. */
static uint64_t worker_ns(void)
{
    uint64_t total = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[320], comm[32] = {0};
        snprintf(p, sizeof(p), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        int ok = fgets(comm, sizeof(comm), f) && !strncmp(comm, "hvc-net", 7);
        fclose(f);
        snprintf(p, sizeof(p), "/proc/self/task/%s/schedstat", e->d_name);
        unsigned long long ns_run = 0;
        if (ok && (f = fopen(p, "r"))) {
            if (fscanf(f, "%llu", &ns_run) == 1)
                total += ns_run;
            fclose(f);
        }
    }
    if (d)
        closedir(d);
    return total;
}

static void *run_vcpu(void *arg)
{
    const hvc_exit *e;
    while (hvc_vcpu_run(arg, &e) == 0 &&
           !(e->reason == HVC_EXIT_PIO && e->u.io.port == 0xf4))
        ;
    return NULL;
}

static struct vn_out guest_out(hvc_vm *vm)
{
    struct vn_out o;
    bench_check_hv(hvc_vm_read(vm, VT_DATA_OUT, &o, sizeof(o)), "read");
    return o;
}

int main(int argc, char **argv)
{
    uint32_t count = 3000;
    if (argc == 3 && !strcmp(argv[1], "--count")) {
        count = (uint32_t)strtoul(argv[2], NULL, 10);
        if (count < 100 || count > 1000000) {
            fprintf(stderr, PROG ": --count needs 100..1000000\n");
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: " PROG " [--count N]\n");
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    if (geteuid() != 0 || access("/dev/kvm", R_OK | W_OK) != 0) {
        fprintf(stderr, PROG ": needs root and /dev/kvm; skipped\n");
        return 77;
    }
    char c[256];
    snprintf(ns, sizeof(ns), "hvcfaulty%d", (int)getpid());
    snprintf(c, sizeof(c), "ip netns add %s", ns);
    sh(c);
    atexit(cleanup);
    snprintf(c, sizeof(c), "/var/run/netns/%s", ns);
    int nsfd = open(c, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
        bench_die("setns");
    close(nsfd);
    sh("ip link set lo up");
    sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1");
    sh("ip tuntap add dev " TAP " mode tap");
    sh("ip addr add 10.97.0.1/24 dev " TAP);
    sh("ip link set " TAP " up");
    sh("ip neigh replace 10.97.0.2 lladdr 52:54:00:00:fa:01 dev " TAP);

    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_memory_region *ram;
    bench_check_hv(hvc_hypervisor_open("kvm", &hv), "hypervisor");
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    bench_check_hv(hvc_vm_create(hv, &vo, &vm), "vm");
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = 4u << 20;
    bench_check_hv(hvc_vm_add_memory(vm, &mo, &ram), "memory");
    static uint8_t code[VT_DATA_IN - 0x8000];
    FILE *f = fopen(GUEST, "rb");
    if (!f)
        bench_die(GUEST);
    size_t n = fread(code, 1, sizeof(code), f);
    fclose(f);
    bench_check_hv(hvc_vm_write(vm, 0x8000, code, n), "load");
    struct vn_cmd cmd = {.magic = VN_MAGIC,
                         .features = VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS,
                         .guest_ip = {10, 97, 0, 2},
                         .host_ip = {10, 97, 0, 1},
                         .guest_port = 5001,
                         .host_port = 5000,
                         .udp_interval = 1000000};
    bench_check_hv(hvc_vm_write(vm, VT_DATA_IN, &cmd, sizeof(cmd)), "cmd");
    hvc_virtio_net_options no = HVC_VIRTIO_NET_OPTIONS_INIT;
    no.mmio = (hvc_virtio_mmio){VN_BASE, VN_IRQ, 0};
    no.tap = TAP;
    memcpy(no.mac, (uint8_t[]){0x52, 0x54, 0x00, 0x00, 0xfa, 0x01}, 6);
    hvc_device *dev;
    bench_check_hv(hvc_virtio_net_create(vm, &no, &dev), "virtio-net");
    hvi_vm_set_present_hook(vm, hook, NULL);
    hvc_vcpu *vcpu;
    bench_check_hv(hvc_vcpu_create(vm, 0, &vcpu), "vcpu");
    hvc_vcpu_mode_options m = HVC_VCPU_MODE_OPTIONS_INIT;
    m.mode = HVC_X86_MODE_LONG64;
    m.entry = 0x8000;
    m.stack = 0x7000;
    m.tables_addr = 0x100000;
    bench_check_hv(hvc_vcpu_set_mode(vcpu, &m), "mode");
    pthread_t th;
    pthread_create(&th, NULL, run_vcpu, vcpu);

    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(5001)};
    inet_pton(AF_INET, "10.97.0.2", &to.sin_addr);
    /* warm up: the guest is running and has its buffers out */
    double ready = bench_now_s() + 30;
    uint32_t seq = 0;
    while (guest_out(vm).udp_rx == 0 && bench_now_s() < ready) {
        uint8_t b[32] = {0, 0, 0, (uint8_t)++seq};
        if (sendto(s, b, sizeof(b), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
            bench_die("sendto");
        usleep(20000);
    }
    if (guest_out(vm).udp_rx == 0) {
        fprintf(stderr, PROG ": the guest never received a datagram\n");
        return 1;
    }
    usleep(100000);
    double per_pkt[2] = {0, 0};
    uint64_t events = 0;
    for (int faulty = 0; faulty < 2; faulty++) {
        hvc_virtio_net_stats st0 = {.size = sizeof(st0)}, st1 = st0;
        bench_check_hv(hvc_virtio_net_get_stats(dev, &st0), "stats");
        uint32_t rx0 = guest_out(vm).udp_rx;
        uint64_t t0 = worker_ns();
        for (uint32_t i = 0; i < count; i++) {
            if (faulty)
                atomic_store(&armed, 0xffffffffu);
            uint8_t b[32] = {(uint8_t)(++seq >> 24), (uint8_t)(seq >> 16),
                             (uint8_t)(seq >> 8), (uint8_t)seq};
            if (sendto(s, b, sizeof(b), 0, (struct sockaddr *)&to, sizeof(to)) <
                0)
                bench_die("sendto");
            usleep(300);
        }
        double end = bench_now_s() + 10;
        while (guest_out(vm).udp_rx - rx0 < count && bench_now_s() < end)
            usleep(10000);
        uint64_t t1 = worker_ns();
        atomic_store(&armed, 0);
        bench_check_hv(hvc_virtio_net_get_stats(dev, &st1), "stats");
        uint32_t got = guest_out(vm).udp_rx - rx0;
        per_pkt[faulty] = (double)(t1 - t0) / (got ? got : 1);
        if (faulty)
            events = st1.faulty_events - st0.faulty_events;
        printf("%-22s %u/%u datagrams, worker %.1f us/datagram, %llu "
               "faulty events, wait max %.1f us\n",
               faulty ? "every buffer missing:" : "every buffer present:", got,
               count, per_pkt[faulty] / 1e3,
               (unsigned long long)(st1.faulty_events - st0.faulty_events),
               (double)st1.faulty_wait_ns_max / 1e3);
    }
    printf("faulty-buffer path: %.2f us of worker CPU per event (%.2fx the "
           "datagram's cost without)\n",
           events ? (per_pkt[1] - per_pkt[0]) * count / events / 1e3 : 0.0,
           per_pkt[0] > 0 ? per_pkt[1] / per_pkt[0] : 0.0);
    uint32_t one = 1;
    hvc_vm_write(vm, VT_DATA_IN + offsetof(struct vn_cmd, stop), &one, 4);
    pthread_join(th, NULL);
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    return 0;
}
