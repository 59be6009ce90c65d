/* virtio-blk throughput: random 4 KiB reads, then random 4 KiB writes, from
 * a guest driving the device (tests/virtio/vblk_bench.c) against a file on
 * tmpfs, and the same offsets done with pread(2)/pwrite(2) by this process
 * on the same file: the baseline (DESIGN.md section 7: a ratio against a
 * baseline measured in the same run).
 *
 * The guest sets the device up, stops on an unclaimed port, and only then
 * is the run that does the requests timed; it keeps --qd requests in
 * flight by polling the used ring, while the device serves them on its
 * worker thread (woken by the guest's doorbell). The host side is
 * synchronous (one request at a time) at every depth: it is the cost of
 * the I/O itself. Each round measures both ways, in alternating order; the
 * ratio guest/host of every round is kept and their median reported.
 *
 * Exit status: 0 after reporting (nothing is enforced), 2 for bad options,
 * 77 (skip) when /dev/kvm cannot be opened, 1 on any other failure.
 */
#define _GNU_SOURCE /* pread, pwrite, mkstemp, clock_gettime */
#include "../tests/virtio/proto.h"
#include "bench_util.h"

#include <hvcore.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "virtio_blk"
#define GUEST_PATH BENCH_GUEST_DIR "/vblk_bench.bin"
#define GUEST_LOAD 0x8000
#define GUEST_STACK 0x7000
#define GUEST_TABLES 0x100000
#define GUEST_MAX (VT_DATA_IN - GUEST_LOAD)
#define PORT_DONE 0xf4
#define PORT_STAGE 0x99
#define IO_SIZE 4096u
#define MAX_QD 64u

struct options {
    uint32_t count;
    uint32_t qd;   /* 0: 1 and 16 */
    uint32_t wait; /* bit 0: polling, bit 1: interrupts */
    uint32_t rounds;
    uint32_t size_mib;
    const char *dir;
};

struct guest {
    unsigned char code[GUEST_MAX];
    size_t len;
};

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

/* Runs until the guest stops on a port; returns which one, failing on
 * anything else. */
static uint16_t run_to_port(hvc_vcpu *vcpu)
{
    const hvc_exit *e;
    bench_check_hv(hvc_vcpu_run(vcpu, &e), "hvc_vcpu_run");
    if (e->reason != HVC_EXIT_PIO ||
        (e->u.io.port != PORT_DONE && e->u.io.port != PORT_STAGE)) {
        fprintf(stderr, PROG ": unexpected exit %u (port 0x%x)\n", e->reason,
                e->u.io.port);
        exit(1);
    }
    return e->u.io.port;
}

/* One guest run: a VM with the device on @fd, @count requests at depth
 * @qd. Returns requests per second. */
static double guest_iops(hvc_hypervisor *hv, const struct guest *g, int fd,
                         int write, uint32_t count, uint32_t qd, int irq,
                         uint64_t seed)
{
    hvc_vm *vm;
    bench_check_hv(hvc_vm_create(hv, NULL, &vm), "hvc_vm_create");
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = VT_RAM_END;
    bench_check_hv(hvc_vm_add_memory(vm, &m, NULL), "hvc_vm_add_memory");
    bench_check_hv(hvc_vm_write(vm, GUEST_LOAD, g->code, g->len),
                   "hvc_vm_write");
    hvc_virtio_blk_options b = HVC_VIRTIO_BLK_OPTIONS_INIT;
    b.mmio = (hvc_virtio_mmio){VT_BLK_BASE, VT_BLK_IRQ, 0};
    b.fd = fd;
    bench_check_hv(hvc_virtio_blk_create(vm, &b, NULL),
                   "hvc_virtio_blk_create");
    static struct vt_cmd cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.magic = VT_MAGIC;
    cmd.base = VT_BLK_BASE;
    cmd.irq = VT_BLK_IRQ;
    cmd.count = count;
    cmd.qd = qd;
    cmd.write = (uint32_t)write;
    cmd.flags = irq ? VT_IRQ : 0;
    cmd.seed = seed;
    bench_check_hv(hvc_vm_write(vm, VT_DATA_IN, &cmd, sizeof(cmd)),
                   "hvc_vm_write");
    hvc_vcpu *vcpu;
    bench_check_hv(hvc_vcpu_create(vm, 0, &vcpu), "hvc_vcpu_create");
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = HVC_X86_MODE_LONG64;
    o.entry = GUEST_LOAD;
    o.stack = GUEST_STACK;
    o.tables_addr = GUEST_TABLES;
    bench_check_hv(hvc_vcpu_set_mode(vcpu, &o), "hvc_vcpu_set_mode");

    uint16_t port = run_to_port(vcpu); /* set-up, untimed */
    double t0 = bench_now_s();
    if (port == PORT_STAGE)
        port = run_to_port(vcpu);
    double t1 = bench_now_s();
    struct vt_out out;
    bench_check_hv(hvc_vm_read(vm, VT_DATA_OUT, &out, sizeof(out)),
                   "hvc_vm_read");
    if (port != PORT_DONE || out.magic != VT_MAGIC || out.error != VT_OK) {
        fprintf(stderr,
                PROG ": the guest failed: error %u (detail %u); see "
                     "tests/virtio/proto.h\n",
                out.error, out.detail);
        exit(1);
    }
    bench_check_hv(hvc_vm_destroy(vm), "hvc_vm_destroy");
    return count / (t1 - t0);
}

/* The baseline: the same offsets, one pread/pwrite each. */
static double host_iops(int fd, int write, uint32_t count, uint64_t blocks,
                        uint64_t seed)
{
    static unsigned char buf[IO_SIZE] __attribute__((aligned(4096)));
    for (uint32_t i = 0; i < IO_SIZE; i++)
        buf[i] = (unsigned char)(i * 7);
    uint64_t rng = seed ? seed : 1;
    double t0 = bench_now_s();
    for (uint32_t i = 0; i < count; i++) {
        off_t off = (off_t)(vt_xorshift(&rng) % blocks * IO_SIZE);
        ssize_t r = write ? pwrite(fd, buf, IO_SIZE, off)
                          : pread(fd, buf, IO_SIZE, off);
        if (r != IO_SIZE)
            bench_die(write ? "pwrite" : "pread");
    }
    return count / (bench_now_s() - t0);
}

static double median(double *v, size_t n)
{
    return bench_summarise(v, n).median;
}

static void bench(const struct options *o, hvc_hypervisor *hv,
                  const struct guest *g, int fd, int write, uint32_t qd,
                  int irq)
{
    double gi[64], hi[64], ratio[64];
    uint64_t blocks = (uint64_t)o->size_mib * (1u << 20) / IO_SIZE;
    for (uint32_t r = 0; r < o->rounds; r++) {
        uint64_t seed = 0x9e3779b97f4a7c15ull + r;
        if (r % 2) {
            gi[r] = guest_iops(hv, g, fd, write, o->count, qd, irq, seed);
            hi[r] = host_iops(fd, write, o->count, blocks, seed);
        } else {
            hi[r] = host_iops(fd, write, o->count, blocks, seed);
            gi[r] = guest_iops(hv, g, fd, write, o->count, qd, irq, seed);
        }
        ratio[r] = gi[r] / hi[r];
    }
    double rm = median(ratio, o->rounds);
    printf("  random %-5s qd %-2u %-4s: guest %7.0f IOPS, host p%-5s %8.0f "
           "IOPS, ratio guest/host %.4f\n",
           write ? "write" : "read", qd, irq ? "irq" : "poll",
           median(gi, o->rounds), write ? "write" : "read",
           median(hi, o->rounds), rm);
    fflush(stdout);
}

/* A file of --size MiB in --dir, filled so that no request meets a hole
 * (tmpfs would allocate a page on the first write to it). */
static int make_file(const struct options *o, char *path, size_t cap)
{
    snprintf(path, cap, "%s/hvcore-bench-vblk-XXXXXX", o->dir);
    int fd = mkstemp(path);
    if (fd < 0)
        bench_die(path);
    unlink(path); /* gone when we exit, however we exit */
    static unsigned char chunk[1 << 20];
    memset(chunk, 0x5a, sizeof(chunk));
    for (uint32_t i = 0; i < o->size_mib; i++)
        if (pwrite(fd, chunk, sizeof(chunk), (off_t)i << 20) !=
            (ssize_t)sizeof(chunk))
            bench_die("filling the file");
    return fd;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [--count N] [--qd Q] [--wait poll|irq] "
            "[--rounds R] [--size MIB] [--dir DIR]\n"
            "\n"
            "Random 4 KiB reads, then writes, on a file in DIR: by a guest\n"
            "driving virtio-blk (hvc_virtio_blk_create) with Q requests in\n"
            "flight, and by pread/pwrite from this process on the same\n"
            "file and offsets. Prints IOPS of both and the median over R\n"
            "rounds of the ratio guest/host. The guest waits for its\n"
            "requests by polling the used ring (and asks for no\n"
            "interrupts), or by sleeping in HLT until the device's\n"
            "interrupt; polling occupies a host CPU that the device's\n"
            "threads may need.\n"
            "\n"
            "  --count N   requests per measurement (default 20000)\n"
            "  --qd Q      queue depth 1..%u (default: 1, then 16)\n"
            "  --wait W    poll or irq (default: both)\n"
            "  --rounds R  rounds, 1..64 (default 3)\n"
            "  --size MIB  file size in MiB, 1..4096 (default 64)\n"
            "  --dir DIR   where the file goes (default /dev/shm, tmpfs)\n"
            "  --help      show this help\n"
            "\n"
            "Exit status: 0 after reporting, 2 for bad options, 77 when\n"
            "/dev/kvm cannot be opened, 1 when a run fails.\n",
            MAX_QD);
}

/* Returns 0 to run, 1 after --help, -1 for a bad option (reported). */
static int parse_args(int argc, char **argv, struct options *o)
{
    const struct {
        const char *name;
        uint32_t min, max;
        uint32_t *dst;
    } flags[] = {
        {"--count", 1, UINT32_MAX, &o->count},
        {"--qd", 1, MAX_QD, &o->qd},
        {"--rounds", 1, 64, &o->rounds},
        {"--size", 1, 4096, &o->size_mib},
        {"--dir", 0, 0, NULL},
        {"--wait", 0, 0, NULL},
    };
    const size_t nflags = sizeof(flags) / sizeof(flags[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a), f = 0;
        while (f < nflags && (strlen(flags[f].name) != len ||
                              strncmp(a, flags[f].name, len) != 0))
            f++;
        if (f == nflags) {
            fprintf(stderr, PROG ": unknown option '%s' (try --help)\n", a);
            return -1;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val || !*val) {
            fprintf(stderr, PROG ": %s needs a value\n", flags[f].name);
            return -1;
        }
        if (!flags[f].dst && strcmp(flags[f].name, "--wait") == 0) {
            o->wait = strcmp(val, "poll") == 0  ? 1
                      : strcmp(val, "irq") == 0 ? 2
                                                : 0;
            if (!o->wait) {
                fprintf(stderr, PROG ": --wait: '%s' is not poll or irq\n",
                        val);
                return -1;
            }
            continue;
        }
        if (!flags[f].dst) {
            o->dir = val;
            continue;
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
    struct options o = {20000, 0, 3, 3, 64, "/dev/shm"};
    int r = parse_args(argc, argv, &o);
    if (r != 0)
        return r > 0 ? 0 : 2;
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        fprintf(stderr, PROG ": skipped: cannot open /dev/kvm: %s\n",
                strerror(errno));
        return 77;
    }
    close(kvm);
    hvc_hypervisor *hv;
    bench_check_hv(hvc_hypervisor_open("kvm", &hv), "hvc_hypervisor_open");
    static struct guest g;
    load_guest(&g);
    char path[4096];
    int fd = make_file(&o, path, sizeof(path));

    printf(PROG ": %u random 4 KiB requests per way on a %u MiB file in %s, "
                "median of %u rounds\n",
           o.count, o.size_mib, o.dir, o.rounds);
    fflush(stdout);
    const uint32_t depths[] = {1, 16};
    for (int write = 0; write <= 1; write++)
        for (size_t k = 0; k < 2; k++)
            for (int irq = 0; irq <= 1; irq++)
                if ((!o.qd ? 1 : k == 0) && (o.wait >> irq & 1))
                    bench(&o, hv, &g, fd, write, o.qd ? o.qd : depths[k], irq);
    close(fd);
    bench_check_hv(hvc_hypervisor_close(hv), "hvc_hypervisor_close");
    return 0;
}
