/* Hand-over pause (hvcore/handover.h) against a same-host live migration
 * and a cold snapshot + restore of the same guest, for guests of 256 MiB,
 * 1 GiB and 8 GiB (DESIGN.md section 7: ratios against baselines
 * measured in the same run).
 *
 * The guest is tests/guests/tsc64.S: one vCPU reading its TSC in a loop
 * and keeping the largest step between two readings (MAXD). Under the
 * default TSC policy (advance) a restored guest's TSC moves on by the real
 * time that passed, so that step, reset before each move and read after
 * it, is the pause as the guest saw it: from its last instruction on the
 * old VM to its first on the new one. Besides the guest's own code, the
 * host writes --fill MiB of non-zero data into guest RAM (the rest is
 * never touched: memfd RAM is allocated lazily, which is what lets an
 * 8 GiB guest fit), so that the copying methods have data to copy.
 *
 * Per round and size, each method moves a freshly booted guest from one
 * VM to a new one in the same process (the receiver on its own thread,
 * which then runs the new vCPU):
 *   handover  hvc_vm_handover_send/receive over a socket pair; the
 *             library's figure is hvc_handover_stats::pause_us;
 *   live      hvc_vm_migrate_send/receive over a socket pair; the
 *             library's figure is hvc_migrate_stats::downtime_us;
 *   snapshot  pause, hvc_snapshot_save() to --dir, hvc_snapshot_restore()
 *             (read); the figure is the time from the pause to the end of
 *             the restore.
 * Medians over the rounds are printed, then the ratios.
 *
 * Exit status: 0 after reporting (targets are reported, not enforced), 2
 * for bad options, 77 (skip) when /dev/kvm cannot be opened, 1 on any
 * other failure. */
#define _GNU_SOURCE
#include "bench_util.h"

#include <hvcore.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG "handover"
#define GUEST_PATH BENCH_GUEST_DIR "/tscloop.bin"
/* tests/guests/guest.h and tsc64.S */
#define GUEST_LOAD 0x8000
#define GUEST_STACK 0x7000
#define GUEST_TABLES 0x100000
#define MAXD 0x30118
#define FILL_AT (16ull << 20)
#define MIB (1ull << 20)
#define LOW_TOP (3ull << 30)

enum method { HANDOVER, LIVE, SNAPSHOT, NMETHODS };
static const char *const names[] = {"handover", "live", "snapshot"};

static uint8_t guest[4096];
static size_t guest_len;
static uint32_t khz;
static hvc_hypervisor *hv;
static uint64_t fill_mib = 64;
static const char *dir = "/tmp";

struct vmx {
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    pthread_t th;
    atomic_int stop;
    int rc;
};

static void *run(void *arg)
{
    struct vmx *x = arg;
    while (!atomic_load(&x->stop)) {
        const hvc_exit *e;
        if ((x->rc = hvc_vcpu_run(x->vcpu, &e)) < 0)
            break;
    }
    return NULL;
}

static void start(struct vmx *x)
{
    if (pthread_create(&x->th, NULL, run, x) != 0)
        bench_die("pthread_create");
}

/* Ends the vCPU thread (of a paused VM too: the kick takes a parked vCPU
 * out of hvc_vcpu_run()) and destroys the VM. */
static void finish(struct vmx *x)
{
    atomic_store(&x->stop, 1);
    bench_check_hv(hvc_vcpu_kick(x->vcpu), "hvc_vcpu_kick");
    pthread_join(x->th, NULL);
    bench_check_hv(x->rc, "hvc_vcpu_run");
    hvc_vm_destroy(x->vm);
}

static void create(struct vmx *x, uint64_t size)
{
    memset(x, 0, sizeof(*x));
    bench_check_hv(hvc_vm_create(hv, NULL, &x->vm), "hvc_vm_create");
    /* RAM above 3 GiB continues at 4 GiB (KVM keeps pages below 4 GiB
     * for itself), as in hvrun. */
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = size < LOW_TOP ? size : LOW_TOP;
    hvc_memory_region *reg;
    bench_check_hv(hvc_vm_add_memory(x->vm, &m, &reg), "hvc_vm_add_memory");
    if (size > LOW_TOP) {
        m.guest_addr = 4ull << 30;
        m.length = size - LOW_TOP;
        bench_check_hv(hvc_vm_add_memory(x->vm, &m, NULL), "hvc_vm_add_memory");
    }
    bench_check_hv(hvc_vm_write(x->vm, GUEST_LOAD, guest, guest_len),
                   "hvc_vm_write");
    uint64_t fill = fill_mib * MIB;
    if (fill > size / 2)
        fill = size / 2;
    uint8_t *p = (uint8_t *)hvc_memory_region_hva(reg) + FILL_AT;
    for (uint64_t i = 0; i < fill; i += 8)
        *(uint64_t *)(p + i) = i * 0x9e3779b97f4a7c15ull | 1;
    bench_check_hv(hvc_vcpu_create(x->vm, 0, &x->vcpu), "hvc_vcpu_create");
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = HVC_X86_MODE_LONG64;
    o.entry = GUEST_LOAD;
    o.stack = GUEST_STACK;
    o.tables_addr = GUEST_TABLES;
    bench_check_hv(hvc_vcpu_set_mode(x->vcpu, &o), "hvc_vcpu_set_mode");
}

static void sleep_ms(unsigned ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The receiving side: receives, then becomes the new vCPU's thread. */
struct receiver {
    enum method how;
    int fd;
    struct vmx *x;
    int r;
    pthread_t th;
};

static void *receive(void *arg)
{
    struct receiver *rc = arg;
    hvc_vm *vm = NULL;
    rc->r = rc->how == HANDOVER ? hvc_vm_handover_receive(hv, rc->fd, NULL, &vm)
                                : hvc_vm_migrate_receive(hv, rc->fd, NULL, &vm);
    if (rc->r < 0) {
        fprintf(stderr, PROG ": receive: %s\n", hvc_last_error());
        return NULL;
    }
    struct vmx *x = rc->x;
    x->vm = vm;
    bench_check_hv(hvc_vm_get_vcpu(vm, 0, &x->vcpu), "hvc_vm_get_vcpu");
    return run(x);
}

/* One move of a fresh guest of @p size; the library's figure and the gap
 * the guest saw, microseconds. */
static void move(enum method how, uint64_t size, double *lib, double *gap)
{
    struct vmx a, b;
    create(&a, size);
    start(&a);
    sleep_ms(30);
    uint64_t zero = 0;
    bench_check_hv(hvc_vm_write(a.vm, MAXD, &zero, 8), "hvc_vm_write");
    sleep_ms(5);
    memset(&b, 0, sizeof(b));
    if (how == SNAPSHOT) {
        char path[512];
        snprintf(path, sizeof(path), "%s/bench-handover.snap", dir);
        double t0 = bench_now_s();
        bench_check_hv(hvc_vm_pause(a.vm), "hvc_vm_pause");
        bench_check_hv(hvc_snapshot_save(a.vm, path, NULL), "snapshot save");
        bench_check_hv(hvc_snapshot_restore(hv, path, NULL, &b.vm),
                       "snapshot restore");
        *lib = (bench_now_s() - t0) * 1e6;
        bench_check_hv(hvc_vm_get_vcpu(b.vm, 0, &b.vcpu), "hvc_vm_get_vcpu");
        start(&b);
        unlink(path);
    } else {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            bench_die("socketpair");
        struct receiver rc = {how, sv[1], &b, 0, 0};
        pthread_t th;
        if (pthread_create(&th, NULL, receive, &rc) != 0)
            bench_die("pthread_create");
        if (how == HANDOVER) {
            hvc_handover_stats st = HVC_HANDOVER_STATS_INIT;
            bench_check_hv(hvc_vm_handover_send(a.vm, sv[0], NULL, &st),
                           "hvc_vm_handover_send");
            *lib = (double)st.pause_us;
        } else {
            hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
            bench_check_hv(hvc_vm_migrate_send(a.vm, sv[0], NULL, &st),
                           "hvc_vm_migrate_send");
            *lib = (double)st.downtime_us;
        }
        /* The receiver thread runs the new vCPU until finish(). */
        while (!b.vcpu && rc.r == 0)
            sleep_ms(1);
        if (rc.r < 0)
            exit(1);
        b.th = th;
        close(sv[0]);
        close(sv[1]);
    }
    sleep_ms(30);
    uint64_t cycles;
    bench_check_hv(hvc_vm_read(b.vm, MAXD, &cycles, 8), "hvc_vm_read");
    *gap = (double)cycles * 1000.0 / khz;
    finish(&a);
    finish(&b);
}

static void usage(const char *argv0, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s [--rounds N] [--fill MIB] [--sizes MIB,MIB,...] "
            "[--dir DIR]\n"
            "  --rounds N   moves per method and size (default 7)\n"
            "  --fill MIB   non-zero data written into each guest (default "
            "64, at most half its RAM)\n"
            "  --sizes      guest RAM sizes (default 256,1024,8192)\n"
            "  --dir DIR    where the snapshot goes (default /tmp)\n",
            argv0);
    exit(status);
}

int main(int argc, char **argv)
{
    int rounds = 7;
    uint64_t sizes[8] = {256, 1024, 8192};
    int nsizes = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0)
            usage(argv[0], 0);
        if (i + 1 >= argc)
            usage(argv[0], 2);
        const char *v = argv[++i];
        if (strcmp(argv[i - 1], "--rounds") == 0 && atoi(v) > 0) {
            rounds = atoi(v);
        } else if (strcmp(argv[i - 1], "--fill") == 0) {
            fill_mib = strtoull(v, NULL, 0);
        } else if (strcmp(argv[i - 1], "--dir") == 0) {
            dir = v;
        } else if (strcmp(argv[i - 1], "--sizes") == 0) {
            nsizes = 0;
            for (char *p = (char *)v; *p && nsizes < 8;) {
                char *end;
                uint64_t s = strtoull(p, &end, 0);
                if (s < 4 || (*end && *end != ','))
                    usage(argv[0], 2);
                sizes[nsizes++] = s;
                p = *end ? end + 1 : end;
            }
        } else {
            usage(argv[0], 2);
        }
    }
    FILE *f = fopen(GUEST_PATH, "rb");
    if (!f)
        bench_die(GUEST_PATH);
    guest_len = fread(guest, 1, sizeof(guest), f);
    fclose(f);
    if (hvc_hypervisor_open("kvm", &hv) < 0) {
        fprintf(stderr, PROG ": skipped: %s\n", hvc_last_error());
        return 77;
    }
    hvc_tsc_info in = HVC_TSC_INFO_INIT;
    bench_check_hv(hvc_tsc_get_info(hv, &in), "hvc_tsc_get_info");
    khz = in.host_tsc_khz;
    printf("bench/handover: the guest's pause moving it to a new VM, "
           "medians of %d rounds, %llu MiB written per guest\n\n",
           rounds, (unsigned long long)fill_mib);
    printf("%9s  %-9s %12s %12s %12s %12s\n", "RAM", "method", "library us",
           "guest us", "guest min", "guest max");
    double med[8][NMETHODS];
    for (int s = 0; s < nsizes; s++) {
        double lib[NMETHODS][64], gap[NMETHODS][64];
        int n = rounds < 64 ? rounds : 64;
        for (int r = 0; r < n; r++)
            for (int k = 0; k < NMETHODS; k++) {
                enum method m = (enum method)((k + r) % NMETHODS);
                move(m, sizes[s] * MIB, &lib[m][r], &gap[m][r]);
            }
        for (int m = 0; m < NMETHODS; m++) {
            struct bench_stats l = bench_summarise(lib[m], (size_t)n);
            struct bench_stats g = bench_summarise(gap[m], (size_t)n);
            med[s][m] = g.median;
            printf("%6llu MiB  %-9s %12.0f %12.0f %12.0f %12.0f\n",
                   (unsigned long long)sizes[s], names[m], l.median, g.median,
                   g.min, g.max);
        }
        printf("%9s  handover is %.1fx shorter than live migration, %.1fx "
               "than snapshot + restore (guest-observed)\n",
               "", med[s][LIVE] / med[s][HANDOVER],
               med[s][SNAPSHOT] / med[s][HANDOVER]);
        fflush(stdout);
    }
    printf("\ntargets: guest-observed hand-over pause <= 5000 us:");
    for (int s = 0; s < nsizes; s++)
        printf(" %llu MiB %s", (unsigned long long)sizes[s],
               med[s][HANDOVER] <= 5000 ? "met" : "MISSED");
    if (nsizes > 1)
        printf("; largest/smallest guest %.2fx (target <= 1.2x)",
               med[nsizes - 1][HANDOVER] / med[0][HANDOVER]);
    printf("\n");
    hvc_hypervisor_close(hv);
    return 0;
}
