/* Live migration on one host: hvrun against QEMU 7.2 on the same guest,
 * in the same run, alternating (DESIGN.md section 7).
 *
 * The guest (bench/guests/stamp_pvh.c, a PVH ELF both boot) dirties its
 * RAM at --rate MiB/s and reads the TSC in a loop; every 50 ms it prints
 * the largest gap between two reads. The gap that spans the switchover is
 * the downtime as the guest saw it. On PVM the guest's TSC is the host's
 * (TSC offset writes are dropped), so a gap is host time under either
 * VMM; the benchmark checks that the two clocks agree before it trusts
 * them.
 *
 * Each round, for each VMM (the order alternates):
 *   - hvrun: a destination `hvrun --incoming unix:SOCK`, and a source
 *     `hvrun --kernel stamp_pvh.elf --migrate-to unix:SOCK
 *     --migrate-after-ms A --max-downtime-ms D`; VMM-reported downtime,
 *     total time and bytes come from the source's "migrated" line;
 *   - QEMU: the same two roles (`-M microvm -accel kvm`, the destination
 *     with -incoming unix:SOCK), migrate-set-parameters downtime-limit D
 *     and max-bandwidth 1 TiB/s (its default, 128 MiB/s, would hold it
 *     back where hvrun has no limit),
 *     migrate over QMP once the guest ran A ms, and query-migrate's
 *     downtime, total-time and ram.transferred;
 *   - guest-observed downtime: the largest gap in the destination's first
 *     two reports (the period that spans the switchover, and the next);
 *     the guest's gap floor: the median of the source's reports before.
 * Medians over the rounds are printed, and the medians of the per-round
 * ratios hvrun / QEMU.
 *
 * Exit status: 0 after reporting, 2 for bad options, 77 (skip) when
 * /dev/kvm cannot be opened, 1 on any other failure. */
#define _GNU_SOURCE
#include "bench_util.h"
#include "qemu_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "migration"
#define MAX_ROUNDS 32u

struct options {
    uint32_t mem_mib, rate_mib, rounds, after_ms, downtime_ms;
    const char *qemu, *hvrun;
    bool no_qemu;
};

/* One VMM's samples, by round. */
struct samples {
    double guest_ms[MAX_ROUNDS], vmm_ms[MAX_ROUNDS], total_ms[MAX_ROUNDS],
        mib[MAX_ROUNDS], floor_ms[MAX_ROUNDS];
};

static double tsc_per_ms;
static double worst_skew_ms; /* host TSC minus the guest's, at its reports */
static char dir[64], sock[128], src_out[128], src_err[128], dst_out[128],
    dst_err[128], qmp_src[128], qmp_dst[128];
static pid_t kids[2] = {-1, -1};

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static void reap(int i, int sig)
{
    if (kids[i] > 0) {
        kill(kids[i], sig);
        waitpid(kids[i], NULL, 0);
        kids[i] = -1;
    }
}

static void cleanup(void)
{
    reap(0, SIGKILL);
    reap(1, SIGKILL);
    const char *files[] = {sock,    src_out, src_err, dst_out,
                           dst_err, qmp_src, qmp_dst};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
}

/* Starts @p argv with stdout and stderr to files, stdin from /dev/null. */
static pid_t spawn(char *const *argv, const char *out, const char *err)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork");
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || o < 0 || e < 0)
            _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* The guest's reports ("S seq gap now", hex) in @p path: the largest gap
 * of the first @p first reports (in ms) into *first_ms, and the median
 * gap of the others, the first (boot) left out, into *floor_ms; returns
 * how many reports there were. */
static int reports(const char *path, int first, double *first_ms,
                   double *floor_ms)
{
    size_t len;
    char *text = (char *)bench_read_file(path, &len);
    double gaps[4096];
    int n = 0;
    unsigned long long last = 0;
    *first_ms = 0;
    for (char *l = text; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = 0;
        unsigned long long seq, gap, now;
        if (sscanf(l, "S %llx %llx %llx", &seq, &gap, &now) == 3 &&
            n < (int)(sizeof(gaps) / sizeof(gaps[0]))) {
            double ms = (double)gap / tsc_per_ms;
            if (n < first && ms > *first_ms)
                *first_ms = ms;
            gaps[n++] = ms;
            last = now;
        }
        l = nl ? nl + 1 : NULL;
    }
    free(text);
    /* the last report was written less than a few seconds ago, on the
     * host's clock, if the guest's TSC is the host's */
    if (n > 0) {
        double skew = (double)(int64_t)(rdtsc() - last) / tsc_per_ms;
        if (skew < 0 || skew > 5000) {
            fprintf(stderr,
                    "%s: the guest's TSC is %.0f ms away from the host's: "
                    "its gaps are not host time here, so guest-observed "
                    "downtime cannot be measured this way\n",
                    PROG, skew);
            exit(1);
        }
        if (skew > worst_skew_ms)
            worst_skew_ms = skew;
    }
    *floor_ms = n > 1 ? bench_summarise(gaps + 1, (size_t)n - 1).median : 0;
    return n;
}

static void cmdline(char *buf, size_t len, const struct options *o)
{
    double tpp = o->rate_mib ? tsc_per_ms * 1000.0 / (o->rate_mib * 256.0) : 0;
    snprintf(buf, len, "tpp=%.0f period=%.0f", tpp, tsc_per_ms * 50);
}

/* ---- hvrun ---- */

static bool run_hvrun(const struct options *o, const char *elf,
                      struct samples *s, uint32_t r)
{
    unlink(sock);
    char in[160], to[160], mem[16], after[16], down[16], cmd[128];
    snprintf(in, sizeof(in), "unix:%s", sock);
    snprintf(to, sizeof(to), "unix:%s", sock);
    snprintf(mem, sizeof(mem), "%u", o->mem_mib);
    snprintf(after, sizeof(after), "%u", o->after_ms);
    snprintf(down, sizeof(down), "%u", o->downtime_ms);
    cmdline(cmd, sizeof(cmd), o);
    char *dst[] = {(char *)o->hvrun, "--incoming", in, NULL};
    kids[1] = spawn(dst, dst_out, dst_err);
    if (!bench_wait_for("hvrun --incoming's socket", bench_path_exists, sock,
                        10, &kids[1]))
        return false;
    char *src[] = {(char *)o->hvrun,
                   "--kernel",
                   (char *)elf,
                   "--mem",
                   mem,
                   "--cmdline",
                   cmd,
                   "--migrate-to",
                   to,
                   "--migrate-after-ms",
                   after,
                   "--max-downtime-ms",
                   down,
                   NULL};
    kids[0] = spawn(src, src_out, src_err);
    int st;
    double end = bench_now_s() + 120;
    while (waitpid(kids[0], &st, WNOHANG) == 0) {
        if (bench_now_s() > end) {
            fprintf(stderr, "%s: hvrun's migration took over 120 s\n", PROG);
            return false;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    kids[0] = -1;
    /* the destination's next reports */
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    reap(1, SIGTERM);
    size_t len;
    char *err = (char *)bench_read_file(src_err, &len);
    const char *m = strstr(err, "migrated to ");
    double down_ms = 0;
    unsigned long long total = 0, pages = 0, bytes = 0;
    unsigned rounds = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !m ||
        !(m = strstr(m, "downtime ")) ||
        sscanf(m, "downtime %lf ms, total %llu ms, %u rounds, %llu pages, "
                  "%llu bytes",
               &down_ms, &total, &rounds, &pages, &bytes) != 5) {
        fprintf(stderr, "%s: hvrun's migration failed (status 0x%x): %s\n",
                PROG, st, err);
        free(err);
        return false;
    }
    free(err);
    double floor_ms, ignored;
    reports(src_out, 0, &ignored, &floor_ms);
    if (reports(dst_out, 2, &s->guest_ms[r], &ignored) < 1) {
        fprintf(stderr, "%s: the guest said nothing on the destination\n",
                PROG);
        return false;
    }
    s->vmm_ms[r] = down_ms;
    s->total_ms[r] = (double)total;
    s->mib[r] = (double)bytes / (1 << 20);
    s->floor_ms[r] = floor_ms;
    return true;
}

/* ---- QEMU ---- */

static pid_t start_qemu(const struct options *o, const char *elf,
                        const char *serial_file, const char *qmp_sock,
                        const char *incoming, const char *err)
{
    char mem[16], serial[160], qmp[160], cmd[128];
    snprintf(mem, sizeof(mem), "%uM", o->mem_mib);
    snprintf(serial, sizeof(serial), "file:%s", serial_file);
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", qmp_sock);
    cmdline(cmd, sizeof(cmd), o);
    unlink(qmp_sock);
    unlink(serial_file);
    char *argv[] = {(char *)o->qemu, "-M",      "microvm", "-accel", "kvm",
                    "-m",            mem,       "-smp",    "1",      "-nodefaults",
                    "-no-user-config",          "-display", "none",  "-serial",
                    serial,          "-qmp",    qmp,       "-kernel", (char *)elf,
                    "-append",       cmd,       NULL,      NULL,     NULL};
    if (incoming) {
        argv[21] = "-incoming";
        argv[22] = (char *)incoming;
    }
    return spawn(argv, "/dev/null", err);
}

static bool run_qemu(const struct options *o, const char *elf,
                     struct samples *s, uint32_t r)
{
    unlink(sock);
    char in[160];
    snprintf(in, sizeof(in), "unix:%s", sock);
    kids[1] = start_qemu(o, elf, dst_out, qmp_dst, in, dst_err);
    kids[0] = start_qemu(o, elf, src_out, qmp_src, NULL, src_err);
    static struct qmp q;
    if (!bench_wait_for("QEMU's QMP socket", bench_path_exists, qmp_src, 10,
                        &kids[0]) ||
        !bench_wait_for("the destination QEMU", bench_path_exists, sock, 10,
                        &kids[1]) ||
        !qmp_open(&q, qmp_src) ||
        !bench_wait_for("the guest", bench_file_nonempty, src_out, 10,
                        &kids[0]))
        return false;
    double t0 = bench_now_s();
    while (bench_now_s() < t0 + o->after_ms / 1000.0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    char c[256];
    snprintf(c, sizeof(c),
             "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
             "{\"downtime-limit\":%u,\"max-bandwidth\":%llu}}\n",
             o->downtime_ms, 1ull << 40);
    qmp_cmd(&q, c);
    snprintf(c, sizeof(c),
             "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:%s\"}}\n",
             sock);
    qmp_cmd(&q, c);
    double end = bench_now_s() + 120;
    for (;;) {
        char *l = qmp_cmd(&q, "{\"execute\":\"query-migrate\"}\n");
        if (strstr(l, "\"completed\"")) {
            s->vmm_ms[r] = qmp_number(l, "downtime", -1);
            s->total_ms[r] = qmp_number(l, "total-time", -1);
            s->mib[r] = qmp_number(l, "transferred", 0) / (1 << 20);
            break;
        }
        if (strstr(l, "\"failed\"") || bench_now_s() > end) {
            fprintf(stderr, "%s: QEMU's migration failed: %s\n", PROG, l);
            return false;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    qmp_cmd(&q, "{\"execute\":\"quit\"}\n");
    close(q.fd);
    waitpid(kids[0], NULL, 0);
    kids[0] = -1;
    reap(1, SIGTERM);
    double floor_ms, ignored;
    reports(src_out, 0, &ignored, &floor_ms);
    if (reports(dst_out, 2, &s->guest_ms[r], &ignored) < 1) {
        fprintf(stderr, "%s: the guest said nothing on QEMU's destination\n",
                PROG);
        return false;
    }
    s->floor_ms[r] = floor_ms;
    return true;
}

/* ---- driver ---- */

/* The TSC's ticks per millisecond, against CLOCK_MONOTONIC over 200 ms. */
static double measure_tsc(void)
{
    double t0 = bench_now_s();
    uint64_t c0 = rdtsc();
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    double t1 = bench_now_s();
    return (double)(rdtsc() - c0) / ((t1 - t0) * 1e3);
}

static void print_vmm(const char *name, const struct samples *s, size_t n)
{
    printf("  %-6s guest-observed downtime %8.2f ms, VMM-reported %8.2f ms, "
           "total %7.0f ms, %7.1f MiB sent, guest gap floor %.3f ms\n",
           name, bench_median(s->guest_ms, n), bench_median(s->vmm_ms, n),
           bench_median(s->total_ms, n), bench_median(s->mib, n), bench_median(s->floor_ms, n));
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--mem MIB] [--rate MIB] [--rounds N] [--after-ms N]\n"
            "          [--max-downtime-ms N] [--qemu PATH] [--no-qemu] "
            "[--hvrun PATH]\n"
            "Migrates a guest that dirties memory and stamps a clock, with "
            "hvrun and with\nQEMU, over a unix socket on this host, "
            "alternating; prints medians and ratios.\n"
            "  --mem              guest RAM in MiB (default 512, 64..16384)\n"
            "  --rate             MiB/s the guest dirties (default 32, "
            "0..4096)\n"
            "  --rounds           rounds, at most %u (default 5)\n"
            "  --after-ms         the guest runs this long before the "
            "migration (default 1500)\n"
            "  --max-downtime-ms  both VMMs' downtime limit (default 10)\n"
            "  --qemu             the QEMU binary (default "
            "qemu-system-x86_64)\n"
            "  --no-qemu          hvrun only\n"
            "  --hvrun            the hvrun binary (default: this build's)\n",
            PROG, MAX_ROUNDS);
}

static int number(const char *s, unsigned long lo, unsigned long hi,
                  uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){.mem_mib = 512,
                          .rate_mib = 32,
                          .rounds = 5,
                          .after_ms = 1500,
                          .downtime_ms = 10,
                          .qemu = "qemu-system-x86_64",
                          .hvrun = HVRUN};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int e = 0;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--no-qemu")) {
            o->no_qemu = true;
            continue;
        } else if (!v) {
            return -1;
        } else if (!strcmp(a, "--mem")) {
            e = number(v, 64, 16384, &o->mem_mib);
        } else if (!strcmp(a, "--rate")) {
            e = number(v, 0, 4096, &o->rate_mib);
        } else if (!strcmp(a, "--rounds")) {
            e = number(v, 1, MAX_ROUNDS, &o->rounds);
        } else if (!strcmp(a, "--after-ms")) {
            e = number(v, 100, 600000, &o->after_ms);
        } else if (!strcmp(a, "--max-downtime-ms")) {
            e = number(v, 1, 10000, &o->downtime_ms);
        } else if (!strcmp(a, "--qemu")) {
            o->qemu = v;
        } else if (!strcmp(a, "--hvrun")) {
            o->hvrun = v;
        } else {
            return -1;
        }
        if (e < 0)
            return -1;
        i++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    if (access("/dev/kvm", R_OK | W_OK) < 0) {
        fprintf(stderr, "%s: skipped: /dev/kvm: %s\n", PROG, strerror(errno));
        return 77;
    }
    const char *elf = BENCH_GUEST_DIR "/stamp_pvh.elf";
    snprintf(dir, sizeof(dir), "/tmp/hvmig-XXXXXX");
    if (!mkdtemp(dir))
        bench_die("mkdtemp");
    snprintf(sock, sizeof(sock), "%s/mig.sock", dir);
    snprintf(src_out, sizeof(src_out), "%s/src.out", dir);
    snprintf(src_err, sizeof(src_err), "%s/src.err", dir);
    snprintf(dst_out, sizeof(dst_out), "%s/dst.out", dir);
    snprintf(dst_err, sizeof(dst_err), "%s/dst.err", dir);
    snprintf(qmp_src, sizeof(qmp_src), "%s/src.qmp", dir);
    snprintf(qmp_dst, sizeof(qmp_dst), "%s/dst.qmp", dir);
    atexit(cleanup);
    signal(SIGPIPE, SIG_IGN);
    tsc_per_ms = measure_tsc();
    static struct samples h, q;
    bool qemu = !o.no_qemu;
    uint32_t n = 0;
    for (uint32_t r = 0; r < o.rounds; r++, n++) {
        if (qemu && r % 2 && !run_qemu(&o, elf, &q, r))
            qemu = false;
        if (!run_hvrun(&o, elf, &h, r))
            return 1;
        if (qemu && r % 2 == 0 && !run_qemu(&o, elf, &q, r))
            qemu = false;
        reap(0, SIGKILL);
        reap(1, SIGKILL);
    }
    printf("%u MiB guest dirtying %u MiB/s, downtime limit %u ms, migrated "
           "after %u ms (medians of %u rounds; TSC %.0f kHz):\n",
           o.mem_mib, o.rate_mib, o.downtime_ms, o.after_ms, n, tsc_per_ms);
    print_vmm("hvrun", &h, n);
    if (!qemu) {
        if (!o.no_qemu)
            printf("(QEMU could not be run: the comparison with it is left "
                   "out)\n");
        return 0;
    }
    print_vmm("QEMU", &q, n);
    printf("  ratio hvrun / QEMU: guest-observed downtime %.3f, "
           "VMM-reported %.3f, total %.3f, bytes %.3f\n",
           bench_ratio_median(h.guest_ms, q.guest_ms, n),
           bench_ratio_median(h.vmm_ms, q.vmm_ms, n),
           bench_ratio_median(h.total_ms, q.total_ms, n),
           bench_ratio_median(h.mib, q.mib, n));
    return 0;
}
