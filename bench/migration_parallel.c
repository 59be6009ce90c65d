/* Live migration throughput over 1, 2 and 4 connections on loopback
 * (hvc_migrate_options::connections), plain TCP, with the stream's
 * AES-256-GCM, and under TLS, against one connection of the same kind:
 * a VM with MEM MiB of data (every page raw, no vCPU running, so the
 * first pass is nearly all of it) migrated to a forked receiver, the
 * kinds alternating, RUNS times each. Not a timed test. Certificates for
 * TLS are made with the openssl command in a fresh directory.
 *
 *   migration_parallel [MEM_MIB [RUNS [KIND]]]   (default 256 MiB, 3
 *   runs, every kind; KIND 0-6 runs that one alone) */
#define _GNU_SOURCE
#include "bench_util.h"

#include <hvcore.h>

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const uint8_t key[HVC_STREAM_KEY_SIZE] = {9, 8, 7, 6};
static char dir[] = "/tmp/hvbench-par-XXXXXX";
static char ca[96], srv[96], srv_key[96];

static void make_certs(void)
{
    if (!mkdtemp(dir))
        bench_die("mkdtemp");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "(cd %s && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes' && openssl req -x509 $K -keyout ca.key -out ca.pem "
             "-days 1 -subj /CN=bench-ca && printf "
             "'subjectAltName=IP:127.0.0.1\\n' > srv.ext && openssl req $K "
             "-keyout srv.key -out srv.csr -subj /CN=localhost && openssl "
             "x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out srv.pem -days 1 -extfile srv.ext) >/dev/null 2>&1",
             dir);
    if (system(cmd) != 0)
        bench_die("the openssl command");
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(srv, sizeof(srv), "%s/srv.pem", dir);
    snprintf(srv_key, sizeof(srv_key), "%s/srv.key", dir);
}

struct kind {
    const char *name;
    uint32_t connections;
    bool tls, key;
};

/* One migration of @vm's memory to a forked receiver: bytes per second
 * of the whole send. */
static double once(hvc_hypervisor *hv, hvc_vm *vm, const struct kind *k)
{
    int l = hvc_migrate_listen("tcp:127.0.0.1:0");
    bench_check_hv(l, "listen");
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    if (getsockname(l, (struct sockaddr *)&a, &al) < 0)
        bench_die("getsockname");
    char addr[64];
    snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(a.sin_port));
    hvc_migrate_tls dt = HVC_MIGRATE_TLS_INIT, st = HVC_MIGRATE_TLS_INIT;
    dt.cert = srv;
    dt.key = srv_key;
    st.ca = ca;
    st.server_name = "127.0.0.1";
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork");
    if (pid == 0) {
        int fd = accept(l, NULL, NULL);
        hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
        o.listen_fd = l;
        o.tls = k->tls ? &dt : NULL;
        o.key = k->key ? key : NULL;
        hvc_vm *got;
        int r = hvc_vm_migrate_receive(hv, fd, &o, &got);
        if (r < 0)
            fprintf(stderr, "receiver: %s\n", hvc_last_error());
        _exit(r < 0 ? 1 : 0);
    }
    close(l);
    int fd = hvc_migrate_connect(addr);
    bench_check_hv(fd, "connect");
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.connections = k->connections;
    o.address = addr;
    o.tls = k->tls ? &st : NULL;
    o.key = k->key ? key : NULL;
    o.max_downtime_ms = 100;
    hvc_migrate_stats s = HVC_MIGRATE_STATS_INIT;
    double t = bench_now_s();
    bench_check_hv(hvc_vm_migrate_send(vm, fd, &o, &s), k->name);
    t = bench_now_s() - t;
    if (getenv("BENCH_VERBOSE"))
        fprintf(stderr,
                "%s: %.3f s: setup %llu ms, %u rounds, downtime %llu us "
                "(ack wait %llu), bytes %llu+%llu+%llu\n",
                k->name, t, (unsigned long long)s.setup_ms, s.rounds,
                (unsigned long long)s.downtime_us,
                (unsigned long long)s.ack_wait_us,
                (unsigned long long)s.bytes_initial,
                (unsigned long long)s.bytes_precopy,
                (unsigned long long)s.bytes_final);
    close(fd);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status))
        bench_die("the receiver failed");
    /* the source is paused for good after a migration: a new one next */
    (void)hv;
    return (double)(s.bytes_initial + s.bytes_precopy + s.bytes_final) / t;
}

static hvc_vm *new_vm(hvc_hypervisor *hv, uint64_t mib)
{
    hvc_vm *vm;
    bench_check_hv(hvc_vm_create(hv, NULL, &vm), "vm");
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = mib << 20;
    hvc_memory_region *r;
    bench_check_hv(hvc_vm_add_memory(vm, &mo, &r), "memory");
    uint64_t *p = hvc_memory_region_hva(r), x = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < (mib << 20) / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = x | 1;
    }
    hvc_vcpu *v;
    bench_check_hv(hvc_vcpu_create(vm, 0, &v), "vcpu");
    return vm;
}

int main(int argc, char **argv)
{
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 256;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    int only = argc > 3 ? atoi(argv[3]) : -1;
    if (!mib || runs < 1 || runs > 50) {
        fprintf(stderr, "usage: %s [MEM_MIB [RUNS]]\n", argv[0]);
        return 2;
    }
    make_certs();
    hvc_hypervisor *hv;
    bench_check_hv(hvc_hypervisor_open("kvm", &hv), "open");
    static const struct kind kinds[] = {
        {"tcp, 1 connection", 1, false, false},
        {"tcp, 2 connections", 2, false, false},
        {"tcp, 4 connections", 4, false, false},
        {"tcp+key, 1 connection", 1, false, true},
        {"tcp+key, 4 connections", 4, false, true},
        {"tls, 1 connection", 1, true, false},
        {"tls, 4 connections", 4, true, false},
    };
    enum { K = sizeof(kinds) / sizeof(kinds[0]) };
    double v[K][50];
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < K; k++) {
            if (only >= 0 && k != only && k != 0) {
                v[k][r] = v[0][r];
                continue;
            }
            hvc_vm *vm = new_vm(hv, mib);
            v[k][r] = once(hv, vm, &kinds[k]);
            hvc_vm_destroy(vm);
        }
    printf("live migration of %llu MiB over loopback TCP, %d runs each "
           "(median, min-max), MiB/s:\n",
           (unsigned long long)mib, runs);
    double ratio[K]; /* paired by run, before the samples are sorted */
    for (int k = 0; k < K; k++) {
        int base = kinds[k].tls ? 5 : kinds[k].key ? 3 : 0;
        ratio[k] = bench_ratio_median(v[k], v[base], (size_t)runs);
    }
    for (int k = 0; k < K; k++) {
        struct bench_stats s = bench_summarise(v[k], (size_t)runs);
        printf("  %-24s %8.1f (%.1f-%.1f)  x%.2f of 1 connection\n",
               kinds[k].name, s.median / 1048576.0, s.min / 1048576.0,
               s.max / 1048576.0, ratio[k]);
    }
    hvc_hypervisor_close(hv);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
