/* Post-copy fault service time: a guest (tests/guests/touchrand64.S) that
 * rewrites 32 MiB without pause is migrated with post-copy right after the
 * first pass to a forked destination, which at once visits its pages in a
 * random order; every visit of a page that has not arrived faults, and
 * the destination measures from the fault to the page in place, while
 * the source pushes the rest. Printed: the median, p99 and largest of
 * each run, against the baseline of a bare round trip between two
 * processes over a unix socket pair (a 24-byte request, a 4 KiB answer),
 * the floor no fault service can beat.
 *
 *   ./build/bench/postcopy [--runs N]  */
#define _GNU_SOURCE
#include "bench_util.h"

#include <hvcore.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DATA_IN 0x20000
#define DATA_OUT 0x30000
#define GUEST_LOAD 0x8000
#define MEM (64u << 20)

struct result {
    int32_t r;
    hvc_postcopy_stats st;
};

static void write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            bench_die("write");
        p = (const uint8_t *)p + w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            bench_die("read");
        p = (uint8_t *)p + r;
        n -= (size_t)r;
    }
}

static hvc_vm *source(hvc_hypervisor *hv, hvc_vcpu **v)
{
    hvc_vm *vm;
    bench_check_hv(hvc_vm_create(hv, NULL, &vm), "creating the VM");
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = MEM;
    bench_check_hv(hvc_vm_add_memory(vm, &mo, NULL), "adding memory");
    static uint8_t guest[65536];
    FILE *f = fopen(BENCH_GUEST_DIR "/touchrand.bin", "rb");
    if (!f)
        bench_die(BENCH_GUEST_DIR "/touchrand.bin");
    size_t len = fread(guest, 1, sizeof(guest), f);
    fclose(f);
    bench_check_hv(hvc_vm_write(vm, GUEST_LOAD, guest, len),
                   "loading the guest");
    bench_check_hv(hvc_vcpu_create(vm, 0, v), "creating the vCPU");
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = HVC_X86_MODE_LONG64;
    o.entry = GUEST_LOAD;
    o.stack = 0x7000;
    o.tables_addr = 0x100000;
    bench_check_hv(hvc_vcpu_set_mode(*v, &o), "setting long mode");
    return vm;
}

static atomic_int stop_run;

static void *run(void *arg)
{
    const hvc_exit *e;
    while (!atomic_load(&stop_run) && hvc_vcpu_run(arg, &e) == 0 &&
           e->reason == HVC_EXIT_KICK)
        ;
    return NULL;
}

static void destination(int sock, int report)
{
    struct result res = {0};
    res.st.size = sizeof(res.st);
    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_vcpu *v;
    if (hvc_hypervisor_open("kvm", &hv) < 0 ||
        (res.r = hvc_vm_migrate_receive(hv, sock, NULL, &vm)) < 0) {
        write_all(report, &res, sizeof(res));
        _exit(1);
    }
    uint64_t in[2] = {1, (uint64_t)getpid()};
    const hvc_exit *e;
    if ((res.r = hvc_vm_get_vcpu(vm, 0, &v)) == 0 &&
        (res.r = hvc_vm_write(vm, DATA_IN, in, sizeof(in))) == 0 &&
        (res.r = hvc_vcpu_run(v, &e)) == 0)
        res.r = hvc_vm_postcopy_wait(vm, 60000);
    hvc_vm_postcopy_stats(vm, &res.st);
    write_all(report, &res, sizeof(res));
    _exit(0);
}

/* One migration; the destination's statistics. */
static hvc_postcopy_stats migrate_once(hvc_hypervisor *hv)
{
    int sv[2], rp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(rp) < 0)
        bench_die("socketpair");
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork");
    if (pid == 0) {
        close(sv[0]);
        close(rp[0]);
        destination(sv[1], rp[1]);
    }
    close(sv[1]);
    close(rp[1]);
    hvc_vcpu *v;
    hvc_vm *vm = source(hv, &v);
    pthread_t t;
    if (pthread_create(&t, NULL, run, v))
        bench_die("pthread_create");
    for (uint64_t passes = 0; passes < 2;) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        hvc_vm_read(vm, DATA_OUT, &passes, 8);
    }
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.flags = HVC_MIGRATE_POSTCOPY;
    o.postcopy_after_rounds = 1;
    bench_check_hv(hvc_vm_migrate_send(vm, sv[0], &o, NULL), "migrating");
    struct result res;
    read_all(rp[0], &res, sizeof(res));
    waitpid(pid, NULL, 0);
    if (res.r < 0) {
        fprintf(stderr, "postcopy: the destination failed: %s\n",
                strerror(-res.r));
        exit(1);
    }
    atomic_store(&stop_run, 1);
    hvc_vcpu_kick(v);
    pthread_join(t, NULL);
    atomic_store(&stop_run, 0);
    hvc_vm_destroy(vm);
    close(sv[0]);
    close(rp[0]);
    return res.st;
}

/* The floor: a request and a page between two processes. */
static double round_trip_us(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        bench_die("socketpair");
    pid_t pid = fork();
    if (pid == 0) {
        static uint8_t page[4096];
        uint8_t req[24];
        close(sv[0]);
        for (;;) {
            ssize_t n = read(sv[1], req, sizeof(req));
            if (n <= 0)
                _exit(0);
            write_all(sv[1], page, sizeof(page));
        }
    }
    close(sv[1]);
    enum { N = 2000 };
    static double v[N];
    static uint8_t page[4096];
    uint8_t req[24] = {1};
    for (int i = 0; i < N; i++) {
        double t = bench_now_s();
        write_all(sv[0], req, sizeof(req));
        read_all(sv[0], page, sizeof(page));
        v[i] = (bench_now_s() - t) * 1e6;
    }
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return bench_summarise(v, N).median;
}

int main(int argc, char **argv)
{
    int runs = 5;
    if (argc == 3 && strcmp(argv[1], "--runs") == 0)
        runs = atoi(argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: %s [--runs N]\n", argv[0]);
        return 2;
    }
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "postcopy: --runs %d: 1 to 1000\n", runs);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    hvc_hypervisor *hv;
    bench_check_hv(hvc_hypervisor_open("kvm", &hv), "opening KVM");
    double floor_us = round_trip_us();
    double *med = calloc((size_t)runs, sizeof(*med));
    if (!med)
        bench_die("calloc");
    printf("bare round trip (24 B request, 4 KiB answer): median %.1f us\n",
           floor_us);
    for (int i = 0; i < runs; i++) {
        hvc_postcopy_stats st = migrate_once(hv);
        med[i] = (double)st.fault_median_us;
        printf("run %d: %llu pages after the switchover, %llu faults asked "
               "the source, fault service median %llu us, p99 %llu us, max "
               "%llu us (%.1fx the round trip)\n",
               i + 1, (unsigned long long)st.pages,
               (unsigned long long)st.faults,
               (unsigned long long)st.fault_median_us,
               (unsigned long long)st.fault_p99_us,
               (unsigned long long)st.fault_max_us,
               floor_us > 0 ? (double)st.fault_median_us / floor_us : 0.0);
    }
    struct bench_stats s = bench_summarise(med, (size_t)runs);
    printf("fault service median over %d runs: %.0f us (min %.0f, max %.0f), "
           "%.1fx the bare round trip\n",
           runs, s.median, s.min, s.max,
           floor_us > 0 ? s.median / floor_us : 0.0);
    free(med);
    hvc_hypervisor_close(hv);
    return 0;
}
