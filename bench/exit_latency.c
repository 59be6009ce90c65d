/* Exit latency and VM lifecycle: libhvcore against raw KVM ioctls, measured
 * in the same process (DESIGN.md section 7: a ratio against a baseline).
 *
 * 1. Exit latency. The guest bench/guests/outloop.S does N port writes to
 *    0x10, then one to 0xf4. The baseline is a KVM_RUN loop (raw_kvm.c);
 *    libhvcore runs the same guest with hvc_vcpu_run() and a handler on port
 *    0x10, the run returning at 0xf4. Only the run loops are timed. Each
 *    round runs N writes each way, the two ways taking turns every S
 *    writes (round_exits() says why).
 * 2. Lifecycle. Create a VM, add 64 MiB, create a vCPU, put it in real
 *    mode, run to the first exit, destroy; raw ioctls against libhvcore,
 *    alternating likewise. /dev/kvm and the hvc_hypervisor stay open.
 *
 * Exit status: 0 after reporting (ratios are reported, not enforced), 2 for
 * bad options, 77 (skip) when /dev/kvm cannot be opened, 1 on any other
 * failure.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "raw_kvm.h"

#include <hvcore.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG BENCH_PROG
#define GUEST_PATH BENCH_GUEST_DIR "/outloop.bin"
#define WARMUP_EXITS 10000u

struct options {
    uint32_t exits;
    uint32_t rounds;
    uint32_t slice;
    uint32_t cycles;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int count_out(void *opaque, hvc_vcpu *vcpu, uint64_t offset, void *data,
                     uint32_t size, int is_write)
{
    (void)vcpu;
    (void)offset;
    (void)data;
    (void)size;
    (void)is_write;
    ++*(uint64_t *)opaque;
    return 0;
}

/* The libhvcore counterpart of raw_vm_create() and raw_start(0): fresh
 * memory holds a count of 0. */
static hvc_vcpu *hvc_setup(hvc_hypervisor *hv, const struct guest *g,
                           hvc_vm **vm)
{
    bench_check_hv(hvc_vm_create(hv, NULL, vm), "hvc_vm_create");
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = RAM_SIZE;
    bench_check_hv(hvc_vm_add_memory(*vm, &m, NULL), "hvc_vm_add_memory");
    bench_check_hv(hvc_vm_write(*vm, GUEST_LOAD, g->code, g->len),
                   "hvc_vm_write");
    hvc_vcpu *vcpu;
    bench_check_hv(hvc_vcpu_create(*vm, 0, &vcpu), "hvc_vcpu_create");
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = HVC_X86_MODE_REAL;
    o.entry = GUEST_LOAD;
    o.stack = GUEST_STACK;
    bench_check_hv(hvc_vcpu_set_mode(vcpu, &o), "hvc_vcpu_set_mode");
    return vcpu;
}

static void hvc_start(hvc_vm *vm, hvc_vcpu *vcpu, uint32_t exits)
{
    bench_check_hv(hvc_vm_write(vm, COUNT_ADDR, &exits, sizeof(exits)),
                   "hvc_vm_write");
    const hvc_reg ids[] = {HVC_X86_RIP, HVC_X86_RSP, HVC_X86_RFLAGS};
    const uint64_t vals[] = {GUEST_LOAD, GUEST_STACK, 0x2};
    bench_check_hv(hvc_vcpu_set_regs(vcpu, ids, vals, 3), "hvc_vcpu_set_regs");
}

static void hvc_run_done(hvc_vcpu *vcpu)
{
    const hvc_exit *e;
    bench_check_hv(hvc_vcpu_run(vcpu, &e), "hvc_vcpu_run");
    if (e->reason != HVC_EXIT_PIO || e->u.io.port != PORT_DONE) {
        fprintf(stderr, PROG ": hvc_vcpu_run: unexpected exit %u (port 0x%x)\n",
                e->reason, e->u.io.port);
        exit(1);
    }
}

static void check_count(const char *way, uint64_t got, uint32_t want)
{
    if (got != want) {
        fprintf(stderr, PROG ": %s saw %llu port writes, not %u\n", way,
                (unsigned long long)got, want);
        exit(1);
    }
}

/* Both run the guest for @exits port writes and return the time of the run
 * loop in ns; the write to PORT_DONE that ends it is one more exit. */
static uint64_t time_raw(struct raw_vm *v, uint32_t exits)
{
    raw_start(v, exits);
    uint64_t t0 = now_ns();
    uint64_t outs = raw_run(v);
    uint64_t t1 = now_ns();
    check_count("the raw KVM_RUN loop", outs, exits);
    return t1 - t0;
}

struct hvc_side {
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    uint64_t outs; /* counted by count_out() */
};

static uint64_t time_hv(struct hvc_side *h, uint32_t exits)
{
    hvc_start(h->vm, h->vcpu, exits);
    h->outs = 0;
    uint64_t t0 = now_ns();
    hvc_run_done(h->vcpu);
    uint64_t t1 = now_ns();
    check_count("hvc_vcpu_run", h->outs, exits);
    return t1 - t0;
}

/* One round: @exits port writes each way, run in slices of @slice that
 * alternate between the ways, swapping which goes first, so both see the
 * same drift on the host. (On a nested host, back-to-back runs of a second
 * or more differ by up to 10%, which would swamp a 1% difference.) Stores
 * ns per exit of each way. */
static void round_exits(struct raw_vm *raw, struct hvc_side *h, uint32_t exits,
                        uint32_t slice, uint32_t round, double *raw_ns,
                        double *hvc_ns)
{
    uint64_t raw_t = 0, hvc_t = 0, total = 0;
    for (uint32_t done = 0, s = 0; done < exits; s++) {
        uint32_t n = exits - done < slice ? exits - done : slice;
        if ((round + s) % 2 == 0) {
            raw_t += time_raw(raw, n);
            hvc_t += time_hv(h, n);
        } else {
            hvc_t += time_hv(h, n);
            raw_t += time_raw(raw, n);
        }
        done += n;
        total += (uint64_t)n + 1;
    }
    *raw_ns = (double)raw_t / (double)total;
    *hvc_ns = (double)hvc_t / (double)total;
}

static void bench_exits(const struct options *o, const struct raw_kvm *k,
                        hvc_hypervisor *hv, const struct guest *g,
                        double *raw_ns, double *hvc_ns)
{
    struct raw_vm raw;
    raw_vm_create(k, &raw, g);
    struct hvc_side h = {0};
    h.vcpu = hvc_setup(hv, g, &h.vm);
    bench_check_hv(hvc_vm_add_io_handler(h.vm, HVC_IO_PIO, PORT_LOOP, 1,
                                         count_out, &h.outs),
                   "hvc_vm_add_io_handler");

    /* Untimed: fault in guest pages and warm caches for both. */
    double ignored[2];
    uint32_t warm = o->exits < WARMUP_EXITS ? o->exits : WARMUP_EXITS;
    round_exits(&raw, &h, warm, o->slice, 0, &ignored[0], &ignored[1]);
    for (uint32_t r = 0; r < o->rounds; r++)
        round_exits(&raw, &h, o->exits, o->slice, r, &raw_ns[r], &hvc_ns[r]);
    bench_check_hv(hvc_vm_destroy(h.vm), "hvc_vm_destroy");
    raw_vm_destroy(&raw);
}

/* One lifecycle each way, in microseconds. */
static double cycle_raw(const struct raw_kvm *k, const struct guest *g)
{
    struct raw_vm v;
    uint64_t t0 = now_ns();
    raw_vm_create(k, &v, g);
    raw_start(&v, 0);
    uint64_t outs = raw_run(&v);
    raw_vm_destroy(&v);
    uint64_t t1 = now_ns();
    check_count("the raw lifecycle", outs, 0);
    return (double)(t1 - t0) / 1e3;
}

static double cycle_hv(hvc_hypervisor *hv, const struct guest *g)
{
    hvc_vm *vm;
    uint64_t t0 = now_ns();
    hvc_vcpu *vcpu = hvc_setup(hv, g, &vm);
    hvc_run_done(vcpu);
    bench_check_hv(hvc_vm_destroy(vm), "hvc_vm_destroy");
    uint64_t t1 = now_ns();
    return (double)(t1 - t0) / 1e3;
}

static void bench_lifecycle(const struct options *o, const struct raw_kvm *k,
                            hvc_hypervisor *hv, const struct guest *g,
                            double *raw_us, double *hvc_us)
{
    cycle_raw(k, g); /* untimed warm-up of both */
    cycle_hv(hv, g);
    for (uint32_t i = 0; i < o->cycles; i++) {
        if (i % 2 == 0) {
            raw_us[i] = cycle_raw(k, g);
            hvc_us[i] = cycle_hv(hv, g);
        } else {
            hvc_us[i] = cycle_hv(hv, g);
            raw_us[i] = cycle_raw(k, g);
        }
    }
}

static void report(const char *label, const char *unit,
                   const struct bench_stats *s)
{
    printf("  %-21s: %.1f %s (min %.1f, max %.1f)\n", label, s->median, unit,
           s->min, s->max);
}

/* Prints the medians of both ways and the ratio hvcore/raw. The ratio is
 * the median of the per-round (per-cycle) ratios: the two samples of a pair
 * ran side by side, so drift on the host cancels out of their ratio. */
static void compare(const char *raw_label, const char *hvc_label,
                    const char *unit, double target, double *raw, double *hv,
                    double *tmp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tmp[i] = hv[i] / raw[i];
    struct bench_stats ratio = bench_summarise(tmp, n);
    struct bench_stats sr = bench_summarise(raw, n),
                       sh = bench_summarise(hv, n);
    report(raw_label, unit, &sr);
    report(hvc_label, unit, &sh);
    printf("  %-21s: %.3f (target <= %g)\n", "ratio hvcore/raw", ratio.median,
           target);
}

static void load_guest(struct guest *g)
{
    FILE *f = fopen(GUEST_PATH, "rb");
    if (!f)
        bench_die(GUEST_PATH);
    g->len = fread(g->code, 1, sizeof(g->code), f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (g->len == 0 || more) {
        fprintf(stderr, PROG ": %s: empty or larger than %d bytes\n",
                GUEST_PATH, GUEST_MAX);
        exit(1);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " [--exits N] [--rounds R] [--slice S] "
               "[--cycles C]\n"
               "\n"
               "Compares libhvcore with raw KVM ioctls in one process:\n"
               "  exit latency: a real-mode guest makes N port writes, each a\n"
               "    VM exit, run by a raw KVM_RUN loop and by hvc_vcpu_run()\n"
               "    with a port handler; R rounds of N each way, where the\n"
               "    ways take turns every S writes\n"
               "  lifecycle: create a VM with 64 MiB and a vCPU, run to the\n"
               "    first exit, destroy; C cycles each way, alternating\n"
               "Medians are reported, and the median of the ratios\n"
               "hvcore/raw of the rounds (cycles).\n"
               "\n"
               "  --exits N   port writes per round (default 200000)\n"
               "  --rounds R  rounds, 1..1000 (default 7)\n"
               "  --slice S   port writes per turn (default 1000); S >= N\n"
               "              runs each round in one go per way\n"
               "  --cycles C  lifecycles of each way, 0 skips (default 50)\n"
               "  --help      show this help\n"
               "\n"
               "Exit status: 0 after reporting, 2 for bad options, 77 when\n"
               "/dev/kvm cannot be opened, 1 when a run fails.\n");
}

/* Returns 0 to run, 1 after --help, -1 for a bad option (reported). */
static int parse_args(int argc, char **argv, struct options *o)
{
    const struct {
        const char *name;
        uint32_t min, max;
        uint32_t *dst;
    } flags[] = {
        {"--exits", 1, UINT32_MAX, &o->exits},
        {"--rounds", 1, 1000, &o->rounds},
        {"--slice", 1, UINT32_MAX, &o->slice},
        {"--cycles", 0, 100000, &o->cycles},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        size_t f = 0, nflags = sizeof(flags) / sizeof(flags[0]);
        while (f < nflags && (strlen(flags[f].name) != len ||
                              strncmp(a, flags[f].name, len) != 0))
            f++;
        if (f == nflags) {
            fprintf(stderr, PROG ": unknown option '%s' (try --help)\n", a);
            return -1;
        }
        const char *val = eq ? eq + 1 : argv[++i];
        if (!val) {
            fprintf(stderr, PROG ": %s needs a value\n", flags[f].name);
            return -1;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        if (!isdigit((unsigned char)*val) || *end || errno ||
            v < flags[f].min || v > flags[f].max) {
            fprintf(stderr, PROG ": %s: '%s' is not a number in %u..%u\n",
                    flags[f].name, val, flags[f].min, flags[f].max);
            return -1;
        }
        *flags[f].dst = (uint32_t)v;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {200000, 7, 1000, 50};
    int r = parse_args(argc, argv, &o);
    if (r != 0)
        return r > 0 ? 0 : 2;

    struct raw_kvm k;
    if ((r = raw_open(&k)) < 0) {
        fprintf(stderr, PROG ": skipped: cannot open /dev/kvm: %s\n",
                strerror(-r));
        return 77;
    }
    struct guest g;
    load_guest(&g);
    hvc_hypervisor *hv;
    /* $HVCORE_BENCH_BACKEND: libhvcore's side on another backend, e.g.
     * "hvf" (on tests/hvf_host, with HVCORE_HVF_HOST_LIBRARY set): its
     * ratio against raw KVM shows what that backend and its layer add. */
    const char *backend = getenv("HVCORE_BENCH_BACKEND");
    if (!backend || !*backend)
        backend = "kvm";
    bench_check_hv(hvc_hypervisor_open(backend, &hv), "hvc_hypervisor_open");
    printf("exit_latency: libhvcore on the %s backend\n", backend);
    size_t n = o.rounds > o.cycles ? o.rounds : o.cycles;
    double *raw = calloc(n, sizeof(double)), *lib = calloc(n, sizeof(double));
    double *tmp = calloc(n, sizeof(double));
    if (!raw || !lib || !tmp)
        bench_die("calloc");

    printf("exit_latency: %u exits x %u rounds (median), ways alternating "
           "every %u exits\n",
           o.exits, o.rounds, o.slice < o.exits ? o.slice : o.exits);
    fflush(stdout);
    bench_exits(&o, &k, hv, &g, raw, lib);
    compare("raw KVM_RUN loop", "hvc_vcpu_run+handler", "ns/exit", 1.03, raw,
            lib, tmp, o.rounds);
    if (o.cycles > 0) {
        printf("lifecycle: %u cycles (median)\n", o.cycles);
        fflush(stdout);
        bench_lifecycle(&o, &k, hv, &g, raw, lib);
        compare("raw ioctls", "libhvcore", "us", 1.2, raw, lib, tmp, o.cycles);
    }

    free(tmp);
    free(raw);
    free(lib);
    bench_check_hv(hvc_hypervisor_close(hv), "hvc_hypervisor_close");
    raw_close(&k);
    return 0;
}
