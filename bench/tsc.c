/* Guest-visible TSC discontinuity across save -> new VM -> restore, for
 * each pause policy (hvcore/tsc.h), against baselines measured in the same
 * run (DESIGN.md section 7).
 *
 * The guest is tests/guests/tsc64.S: one vCPU reading its TSC in a loop
 * and storing each reading. A cycle pauses the VM, saves its TSC record,
 * copies its RAM and registers into a new VM, restores the record there
 * and runs the new VM. Per cycle, in microseconds:
 *
 *   discontinuity  how far the guest's TSC moved across the cycle beyond
 *                  what the policy promises (advance: the real time that
 *                  passed; freeze: nothing), from guest readings paired
 *                  with host CLOCK_MONOTONIC_RAW before and after (kick and
 *                  wake-up latencies cancel out);
 *   gap            the largest step between two consecutive readings the
 *                  guest saw (its raw view: the time it could not run,
 *                  under advance; scheduling latency, under freeze);
 *   kvmclock       the same as the discontinuity, for kvmclock, from the
 *                  two VMs' records.
 *
 * Baselines: pause/resume of one VM (no save/restore: the floor of what
 * can be measured), reported as a ratio; and a naive restore that copies
 * RAM and registers but no TSC state, to show what the record is for.
 *
 * Exit status: 0 after reporting, 2 for bad options, 77 (skip) when
 * /dev/kvm cannot be opened, 1 on any other failure.
 */
#define _GNU_SOURCE
#include <hvcore.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "tsc"
#define GUEST_PATH BENCH_GUEST_DIR "/tscloop.bin"
/* tests/guests/guest.h and tsc64.S */
#define GUEST_LOAD 0x8000
#define GUEST_STACK 0x7000
#define GUEST_TABLES 0x100000
#define SAMPLE 0x20008
#define PORT_SAMPLE 0x10
#define LAST 0x30100
#define MAXD 0x30118
#define RAM (2u << 20)

static const hvc_reg gprs[] = {
    HVC_X86_RAX, HVC_X86_RBX, HVC_X86_RCX,   HVC_X86_RDX, HVC_X86_RSI,
    HVC_X86_RDI, HVC_X86_RSP, HVC_X86_RBP,   HVC_X86_R8,  HVC_X86_R9,
    HVC_X86_R10, HVC_X86_R11, HVC_X86_R12,   HVC_X86_R13, HVC_X86_R14,
    HVC_X86_R15, HVC_X86_RIP, HVC_X86_RFLAGS};
#define NGPRS (sizeof(gprs) / sizeof(gprs[0]))

static uint8_t ram[RAM];
static uint8_t guest[4096];
static size_t guest_len;
static uint32_t khz;

static void check(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, PROG ": %s: %s\n", what, hvc_last_error());
        exit(1);
    }
}

static uint64_t raw_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t cyc_ns(uint64_t cycles)
{
    return (int64_t)((unsigned __int128)cycles * 1000000 / khz);
}

static uint64_t q(hvc_vm *vm, uint64_t gpa)
{
    uint64_t v;
    check(hvc_vm_read(vm, gpa, &v, 8), "hvc_vm_read");
    return v;
}

/* Guest readings paired with the host clock on the vCPU's own thread:
 * while SAMPLE is set, tsc64.S follows each reading with an OUT to
 * PORT_SAMPLE (as in tests/tsc_guest.h). */
#define NSAMPLES 32

struct vmx {
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    pthread_t th;
    int rc;
    atomic_uint n, want;
    uint64_t h[NSAMPLES], g[NSAMPLES];
};

static int sample(void *opaque, hvc_vcpu *vcpu, uint64_t off, void *data,
                  uint32_t size, int is_write)
{
    struct vmx *x = opaque;
    uint64_t t = raw_ns(), g;
    (void)vcpu, (void)off, (void)data, (void)size, (void)is_write;
    unsigned n = atomic_load(&x->n);
    if (n >= atomic_load(&x->want) || hvc_vm_read(x->vm, LAST, &g, 8) < 0)
        return 0;
    x->h[n] = t;
    x->g[n] = g;
    atomic_store(&x->n, n + 1);
    return 0;
}

static void *run(void *arg)
{
    struct vmx *x = arg;
    const hvc_exit *e;
    x->rc = hvc_vcpu_run(x->vcpu, &e);
    return NULL;
}

static void start(struct vmx *x)
{
    if (pthread_create(&x->th, NULL, run, x) != 0) {
        fprintf(stderr, PROG ": pthread_create failed\n");
        exit(1);
    }
}

/* Ends the run of a paused VM. */
static void stop(struct vmx *x)
{
    check(hvc_vcpu_kick(x->vcpu), "hvc_vcpu_kick");
    pthread_join(x->th, NULL);
    check(x->rc, "hvc_vcpu_run");
}

/* A new VM with @p image (the guest, or a whole RAM copy) at @p at, one
 * vCPU at the guest's entry, and @p regs when given. */
static void create(hvc_hypervisor *hv, struct vmx *x, const void *image,
                   size_t len, uint64_t at, const uint64_t *regs)
{
    memset(x, 0, sizeof(*x));
    check(hvc_vm_create(hv, NULL, &x->vm), "hvc_vm_create");
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = RAM;
    check(hvc_vm_add_memory(x->vm, &m, NULL), "hvc_vm_add_memory");
    check(hvc_vm_write(x->vm, at, image, len), "hvc_vm_write");
    check(hvc_vm_add_io_handler(x->vm, HVC_IO_PIO, PORT_SAMPLE, 4, sample, x),
          "hvc_vm_add_io_handler");
    check(hvc_vcpu_create(x->vm, 0, &x->vcpu), "hvc_vcpu_create");
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = HVC_X86_MODE_LONG64;
    o.entry = GUEST_LOAD;
    o.stack = GUEST_STACK;
    o.tables_addr = GUEST_TABLES;
    check(hvc_vcpu_set_mode(x->vcpu, &o), "hvc_vcpu_set_mode");
    if (regs)
        check(hvc_vcpu_set_regs(x->vcpu, gprs, regs, NGPRS), "set_regs");
}

/* A guest reading and the host time it was taken: of NSAMPLES pairs,
 * the one the next pair follows most exactly on both clocks (a pair is
 * late when the vCPU left the guest between its RDTSC and its OUT). */
static void fresh(struct vmx *x, uint64_t *host, uint64_t *guest_tsc)
{
    uint64_t best = UINT64_MAX;
    for (int round = 0; round < 50 && best > 3000; round++) {
        atomic_store(&x->want, 0);
        atomic_store(&x->n, 0);
        atomic_store(&x->want, NSAMPLES);
        check(hvc_vm_write(x->vm, SAMPLE, &(uint64_t){1}, 8), "hvc_vm_write");
        uint64_t end = raw_ns() + 2000000000ull;
        while (atomic_load(&x->n) < NSAMPLES && raw_ns() < end)
            usleep(100);
        check(hvc_vm_write(x->vm, SAMPLE, &(uint64_t){0}, 8), "hvc_vm_write");
        atomic_store(&x->want, 0);
        unsigned n = atomic_load(&x->n);
        for (unsigned i = 1; i < n; i++) {
            uint64_t dh = x->h[i] - x->h[i - 1];
            if (x->g[i] <= x->g[i - 1] || dh > 1000000)
                continue;
            int64_t miss = cyc_ns(x->g[i] - x->g[i - 1]) - (int64_t)dh;
            uint64_t err = (uint64_t)(miss < 0 ? -miss : miss);
            if (err < best) {
                best = err;
                *host = x->h[i - 1];
                *guest_tsc = x->g[i - 1];
            }
        }
    }
    if (best > 200000) {
        fprintf(stderr, PROG ": no fresh guest TSC reading (host too busy)\n");
        exit(1);
    }
}

struct sample {
    int64_t disc_ns; /* |TSC moved - promised| */
    int64_t gap_ns;
    int64_t kv_ns; /* |kvmclock moved - promised|; -1: not measured */
};

static int64_t absv(int64_t v)
{
    return v < 0 ? -v : v;
}

static int64_t disc(uint64_t h0, uint64_t g0, uint64_t h1, uint64_t g1,
                    uint64_t w, uint32_t pause)
{
    int64_t moved = cyc_ns(g1 - g0) - ((int64_t)(h1 - h0) - (int64_t)w);
    return absv(moved - (pause == HVC_TSC_PAUSE_ADVANCE ? (int64_t)w : 0));
}

static hvc_tsc_state header(const uint8_t *rec)
{
    hvc_tsc_state h;
    memcpy(&h, rec, sizeof(h));
    return h;
}

/* One save -> new VM -> restore cycle of *cur (running), which becomes
 * the new VM. @p naive: no TSC state restored. */
static struct sample cycle(hvc_hypervisor *hv, struct vmx **cur,
                           struct vmx **spare, uint32_t pause, bool naive)
{
    struct vmx *a = *cur, *b = *spare;
    uint64_t h0 = 0, g0 = 0, h1 = 0, g1 = 0, regs[NGPRS];
    uint8_t rec_a[sizeof(hvc_tsc_state) + sizeof(hvc_tsc_vcpu_state)];
    uint8_t rec_b[sizeof(rec_a)];
    usleep(2000);
    fresh(a, &h0, &g0);
    check(hvc_vm_pause(a->vm), "hvc_vm_pause");
    uint64_t paused = raw_ns();
    check(hvc_vm_save_tsc(a->vm, rec_a, sizeof(rec_a), NULL), "save");
    stop(a);
    check(hvc_vcpu_get_regs(a->vcpu, gprs, regs, NGPRS), "get_regs");
    check(hvc_vm_read(a->vm, 0, ram, RAM), "hvc_vm_read");
    memset(ram + MAXD, 0, 8);
    create(hv, b, ram, RAM, 0, regs);
    if (!naive) {
        hvc_tsc_restore_options o = HVC_TSC_RESTORE_OPTIONS_INIT;
        o.pause = pause;
        check(hvc_vm_restore_tsc(b->vm, rec_a, sizeof(rec_a), &o),
              "hvc_vm_restore_tsc");
    }
    uint64_t restored = raw_ns();
    check(hvc_vm_save_tsc(b->vm, rec_b, sizeof(rec_b), NULL), "save");
    start(b);
    fresh(b, &h1, &g1);
    check(hvc_vm_destroy(a->vm), "hvc_vm_destroy");
    *cur = b;
    *spare = a;
    hvc_tsc_state ha = header(rec_a), hb = header(rec_b);
    int64_t kv = (int64_t)(hb.kvmclock_ns - ha.kvmclock_ns);
    if (pause == HVC_TSC_PAUSE_ADVANCE)
        kv -= (int64_t)(hb.realtime_ns - ha.realtime_ns);
    struct sample s = {disc(h0, g0, h1, g1, restored - paused, pause),
                       cyc_ns(q(b->vm, MAXD)), absv(kv)};
    return s;
}

/* The baseline: pause and resume one VM. */
static struct sample pause_resume(struct vmx *x, uint32_t pause)
{
    uint64_t h0 = 0, g0 = 0, h1 = 0, g1 = 0;
    usleep(2000);
    fresh(x, &h0, &g0);
    check(hvc_vm_pause(x->vm), "hvc_vm_pause");
    uint64_t paused = raw_ns();
    check(hvc_vm_write(x->vm, MAXD, &(uint64_t){0}, 8), "hvc_vm_write");
    usleep(1000);
    uint64_t resumed = raw_ns();
    check(hvc_vm_resume(x->vm), "hvc_vm_resume");
    fresh(x, &h1, &g1);
    struct sample s = {disc(h0, g0, h1, g1, resumed - paused, pause),
                       cyc_ns(q(x->vm, MAXD)), -1};
    return s;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

struct summary {
    double median_us, max_us;
};

static struct summary stats(const struct sample *s, int n, size_t field)
{
    int64_t *v = malloc(sizeof(*v) * (size_t)n);
    for (int i = 0; i < n; i++)
        memcpy(&v[i], (const char *)&s[i] + field, sizeof(int64_t));
    qsort(v, (size_t)n, sizeof(*v), cmp);
    struct summary r = {v[n / 2] / 1000.0, v[n - 1] / 1000.0};
    free(v);
    return r;
}

static void row(const char *what, const struct sample *s, int n)
{
    struct summary d = stats(s, n, offsetof(struct sample, disc_ns));
    struct summary g = stats(s, n, offsetof(struct sample, gap_ns));
    printf("  %-24s %10.1f %10.1f %10.1f %10.1f", what, d.median_us, d.max_us,
           g.median_us, g.max_us);
    if (s[0].kv_ns >= 0) {
        struct summary k = stats(s, n, offsetof(struct sample, kv_ns));
        printf(" %10.1f %10.1f", k.median_us, k.max_us);
    }
    printf("\n");
}

static void policy(hvc_hypervisor *hv, uint32_t pause, int n)
{
    struct vmx x[2], *cur = &x[0], *spare = &x[1];
    struct sample *sr = calloc((size_t)n, sizeof(*sr));
    struct sample *pr = calloc((size_t)n, sizeof(*pr));
    struct sample nv[10];
    create(hv, cur, guest, guest_len, GUEST_LOAD, NULL);
    hvc_tsc_policy p = HVC_TSC_POLICY_INIT;
    p.pause = pause;
    const char *name = pause == HVC_TSC_PAUSE_ADVANCE ? "advance" : "freeze";
    if (hvc_vm_set_tsc_policy(cur->vm, &p) < 0) {
        printf("%s: not supported on this host: %s\n\n", name,
               hvc_last_error());
        check(hvc_vm_destroy(cur->vm), "hvc_vm_destroy");
        free(sr);
        free(pr);
        return;
    }
    start(cur);
    /* Interleaved, so that both ways see the same host load. */
    for (int i = 0; i < n; i++) {
        pr[i] = pause_resume(cur, pause);
        sr[i] = cycle(hv, &cur, &spare, pause, false);
        check(hvc_vm_set_tsc_policy(cur->vm, &p), "hvc_vm_set_tsc_policy");
    }
    for (int i = 0; i < 10; i++)
        nv[i] = cycle(hv, &cur, &spare, pause, true);
    check(hvc_vm_pause(cur->vm), "hvc_vm_pause");
    stop(cur);
    check(hvc_vm_destroy(cur->vm), "hvc_vm_destroy");

    printf("%s (%d cycles)                discontinuity us          gap "
           "seen us        kvmclock us\n",
           name, n);
    printf("  %-24s %10s %10s %10s %10s %10s %10s\n", "", "median", "max",
           "median", "max", "median", "max");
    row("save/restore", sr, n);
    row("pause/resume (baseline)", pr, n);
    row("naive restore (10)", nv, 10);
    struct summary a = stats(sr, n, offsetof(struct sample, disc_ns));
    struct summary b = stats(pr, n, offsetof(struct sample, disc_ns));
    if (b.median_us > 0)
        printf("  save/restore / pause/resume discontinuity, medians: "
               "%.2f\n\n",
               a.median_us / b.median_us);
    else
        printf("  save/restore / pause/resume discontinuity, medians: "
               "%.1f us / %.1f us (below the clock's resolution)\n\n",
               a.median_us, b.median_us);
    free(sr);
    free(pr);
}

int main(int argc, char **argv)
{
    int n = 100;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cycles") == 0 && i + 1 < argc &&
            atoi(argv[i + 1]) > 0) {
            n = atoi(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: %s [--cycles N]   (default 100 per policy)\n",
                    argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    FILE *f = fopen(GUEST_PATH, "rb");
    if (!f) {
        fprintf(stderr, PROG ": cannot open %s\n", GUEST_PATH);
        return 1;
    }
    guest_len = fread(guest, 1, sizeof(guest), f);
    fclose(f);
    hvc_hypervisor *hv;
    if (hvc_hypervisor_open("kvm", &hv) < 0) {
        fprintf(stderr, PROG ": skipped: %s\n", hvc_last_error());
        return 77;
    }
    hvc_tsc_info in = HVC_TSC_INFO_INIT;
    check(hvc_tsc_get_info(hv, &in), "hvc_tsc_get_info");
    khz = in.host_tsc_khz;
    printf("bench/tsc: guest TSC discontinuity across save -> new VM -> "
           "restore\n");
    printf("host TSC %u kHz; offsetting %s, scaling %s, kernel clock "
           "samples %s\n\n",
           khz, in.flags & HVC_TSC_OFFSET ? "yes" : "no",
           in.flags & HVC_TSC_SCALING ? "yes" : "no",
           in.flags & HVC_TSC_CLOCK_HOST_TSC ? "yes" : "no");
    policy(hv, HVC_TSC_PAUSE_ADVANCE, n);
    policy(hv, HVC_TSC_PAUSE_FREEZE, n);
    check(hvc_hypervisor_close(hv), "hvc_hypervisor_close");
    return 0;
}
