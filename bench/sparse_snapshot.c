/* Saving a sparse guest: libhvcore against QEMU on the same guest, in the
 * same run (DESIGN.md section 7).
 *
 * The guest (bench/guests/sparse_pvh.c, a PVH ELF) writes 1 MiB spread
 * over its RAM and halts; --sizes MiB of RAM each (default 256 and 1024).
 * For each size, every round, in an order that alternates:
 *   - libhvcore: the guest boots in a VM of library memory (memfd), is
 *     paused, and saved with hvc_vm_save_fd() to a file in --dir (no fsync);
 *     the time of the call and the growth of this process's RSS.
 *   - the walk it replaces: every page of the same guest read once through
 *     its host mapping (what a save that finds zero pages by reading them
 *     must do at the least), its time and RSS growth, on the VM just saved;
 *     then the saved file restored (hvc_vm_restore_fd(), read), its time
 *     and RSS growth.
 *   - QEMU (qemu-system-x86_64 -M microvm -accel kvm, the default CPU): the
 *     same ELF boots, is stopped, and migrated with
 *     migrate "exec:cat > FILE" over QMP; the time from the command until
 *     query-migrate says completed (QEMU's own total-time is printed too),
 *     and the growth of QEMU's RSS. Skipped with --no-qemu or when QEMU
 *     cannot be started.
 * Medians over the rounds are printed, and the median of the per-round
 * ratios.
 *
 * Exit status: 0 after reporting, 2 for bad options, 77 (skip) when
 * /dev/kvm cannot be opened, 1 on any other failure.
 */
#define _GNU_SOURCE
#include "bench_util.h"
#include "qemu_util.h"

#include <hvcore.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "sparse_snapshot"
#define MIB (1ull << 20)
#define PAGE 4096u
#define MAX_ROUNDS 64u
#define MAX_SIZES 8u
#define COM1 0x3f8

struct options {
    uint32_t sizes[MAX_SIZES];
    uint32_t nsizes;
    uint32_t rounds;
    const char *dir;
    const char *qemu;
    bool no_qemu;
};

/* One size's samples, paired by round. */
struct samples {
    double hvc_ms[MAX_ROUNDS], hvc_rss[MAX_ROUNDS], hvc_bytes[MAX_ROUNDS];
    double walk_ms[MAX_ROUNDS], walk_rss[MAX_ROUNDS];
    double restore_ms[MAX_ROUNDS], restore_rss[MAX_ROUNDS];
    double qemu_ms[MAX_ROUNDS], qemu_own_ms[MAX_ROUNDS], qemu_rss[MAX_ROUNDS],
        qemu_bytes[MAX_ROUNDS];
};

static char save_path[4096], qemu_path[4096], serial_path[64], qmp_path[64];
static pid_t qemu_pid = -1;

static void cleanup(void)
{
    if (qemu_pid > 0) {
        kill(qemu_pid, SIGKILL);
        waitpid(qemu_pid, NULL, 0);
    }
    unlink(save_path);
    unlink(qemu_path);
    unlink(serial_path);
    unlink(qmp_path);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        bench_die(path);
    return (uint64_t)st.st_size;
}

/* ---- libhvcore ---- */

static const uint8_t *guest_elf;
static size_t guest_len;

/* Boots the guest in a VM of @p mib MiB and runs it until it says it is
 * done; returns the paused VM and its RAM. */
static hvc_vm *boot(hvc_hypervisor *hv, uint32_t mib, uint8_t **ram)
{
    hvc_vm *vm;
    bench_check_hv(hvc_vm_create(hv, NULL, &vm), "hvc_vm_create");
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = (uint64_t)mib * MIB;
    hvc_memory_region *reg;
    bench_check_hv(hvc_vm_add_memory(vm, &m, &reg), "hvc_vm_add_memory");
    *ram = hvc_memory_region_hva(reg);
    hvc_boot_options bo = HVC_BOOT_OPTIONS_INIT;
    bo.kernel = guest_elf;
    bo.kernel_size = guest_len;
    hvc_boot_info info;
    bench_check_hv(hvc_vm_load_kernel(vm, &bo, &info), "hvc_vm_load_kernel");
    hvc_vcpu *v;
    bench_check_hv(hvc_vcpu_create(vm, 0, &v), "hvc_vcpu_create");
    bench_check_hv(hvc_vcpu_boot(v, &info), "hvc_vcpu_boot");
    const hvc_exit *e;
    bench_check_hv(hvc_vcpu_run(v, &e), "hvc_vcpu_run");
    if (e->reason != HVC_EXIT_PIO || e->u.io.port != COM1) {
        fprintf(stderr, "%s: the guest stopped with exit %u\n", PROG,
                e->reason);
        exit(1);
    }
    bench_check_hv(hvc_vm_pause(vm), "hvc_vm_pause");
    return vm;
}

static volatile uint64_t sink;

static void run_hvc(hvc_hypervisor *hv, uint32_t mib, struct samples *s,
                    uint32_t round)
{
    uint8_t *ram;
    hvc_vm *vm = boot(hv, mib, &ram);
    int fd = open(save_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        bench_die(save_path);
    long rss0 = bench_rss_kib("self");
    double t0 = bench_now_s();
    bench_check_hv(hvc_vm_save_fd(vm, fd, NULL), "hvc_vm_save_fd");
    s->hvc_ms[round] = (bench_now_s() - t0) * 1e3;
    s->hvc_rss[round] = (double)(bench_rss_kib("self") - rss0) / 1024.0;
    close(fd);
    s->hvc_bytes[round] = (double)file_size(save_path);

    /* The floor of the walk that read every page to find the zero ones. */
    rss0 = bench_rss_kib("self");
    t0 = bench_now_s();
    uint64_t acc = 0;
    for (uint64_t off = 0; off < (uint64_t)mib * MIB; off += PAGE)
        for (uint32_t i = 0; i < PAGE; i += 64)
            acc |= *(const volatile uint64_t *)(ram + off + i);
    sink = acc;
    s->walk_ms[round] = (bench_now_s() - t0) * 1e3;
    s->walk_rss[round] = (double)(bench_rss_kib("self") - rss0) / 1024.0;
    hvc_vm_destroy(vm);

    /* The restore of what was saved, into a new VM of library memory. */
    fd = open(save_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bench_die(save_path);
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    rss0 = bench_rss_kib("self");
    t0 = bench_now_s();
    bench_check_hv(hvc_vm_restore_fd(hv, fd, &ro, &vm), "hvc_vm_restore_fd");
    s->restore_ms[round] = (bench_now_s() - t0) * 1e3;
    s->restore_rss[round] = (double)(bench_rss_kib("self") - rss0) / 1024.0;
    close(fd);
    hvc_vm_destroy(vm);
}

/* ---- QEMU over QMP ---- */

static pid_t start_qemu(const struct options *o, const char *elf, uint32_t mib)
{
    unlink(serial_path);
    unlink(qmp_path);
    char mem[32], serial[4200], qmp[4200];
    snprintf(mem, sizeof(mem), "%uM", mib);
    snprintf(serial, sizeof(serial), "file:%s", serial_path);
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", qmp_path);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork");
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2); /* its CPUID warnings; a failure shows as an exit */
        execlp(o->qemu, o->qemu, "-M", "microvm", "-accel", "kvm", "-m", mem,
               "-smp", "1", "-nodefaults", "-no-user-config", "-display",
               "none", "-serial", serial, "-qmp", qmp, "-kernel", elf,
               (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Boots the guest under QEMU, stops it, migrates it to a file; false when
 * QEMU could not be run (the caller stops asking). */
static bool run_qemu(const struct options *o, const char *elf, uint32_t mib,
                     struct samples *s, uint32_t round)
{
    qemu_pid = start_qemu(o, elf, mib);
    if (!bench_wait_for("the QMP socket", bench_path_exists, qmp_path, 10,
                        &qemu_pid))
        return false;
    static struct qmp q;
    if (!qmp_open(&q, qmp_path))
        return false;
    if (!bench_wait_for("the guest", bench_file_nonempty, serial_path, 10,
                        &qemu_pid))
        return false;
    qmp_cmd(&q, "{\"execute\":\"stop\"}\n");
    char pid[16], cmd[4600];
    snprintf(pid, sizeof(pid), "%d", (int)qemu_pid);
    unlink(qemu_path);
    snprintf(cmd, sizeof(cmd),
             "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > "
             "%s\"}}\n",
             qemu_path);
    long rss0 = bench_rss_kib(pid);
    double t0 = bench_now_s();
    qmp_cmd(&q, cmd);
    long own = -1;
    for (;;) {
        char *l = qmp_cmd(&q, "{\"execute\":\"query-migrate\"}\n");
        if (strstr(l, "\"completed\"")) {
            const char *tt = strstr(l, "\"total-time\":");
            if (tt)
                own = atol(tt + 13);
            break;
        }
        if (strstr(l, "\"failed\"")) {
            fprintf(stderr, "%s: QEMU's migration failed: %s\n", PROG, l);
            exit(1);
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    s->qemu_ms[round] = (bench_now_s() - t0) * 1e3;
    s->qemu_own_ms[round] = (double)own;
    s->qemu_rss[round] = (double)(bench_rss_kib(pid) - rss0) / 1024.0;
    qmp_cmd(&q, "{\"execute\":\"quit\"}\n");
    close(q.fd);
    waitpid(qemu_pid, NULL, 0);
    qemu_pid = -1;
    s->qemu_bytes[round] = (double)file_size(qemu_path);
    return true;
}

/* ---- driver ---- */

static void report(const struct options *o, uint32_t mib,
                   const struct samples *s, bool qemu)
{
    size_t n = o->rounds;
    printf("%u MiB guest, 1 MiB written (medians of %zu rounds):\n", mib, n);
    printf("  libhvcore save        : %8.2f ms, RSS +%.2f MiB, %.0f KiB "
           "stream\n",
           bench_median(s->hvc_ms, n), bench_median(s->hvc_rss, n),
           bench_median(s->hvc_bytes, n) / 1024);
    printf("  libhvcore restore     : %8.2f ms, RSS +%.2f MiB\n",
           bench_median(s->restore_ms, n), bench_median(s->restore_rss, n));
    printf("  read-every-page walk  : %8.2f ms, RSS +%.2f MiB\n",
           bench_median(s->walk_ms, n), bench_median(s->walk_rss, n));
    printf("  ratio libhvcore / walk: %8.3f (time)\n",
           bench_ratio_median(s->hvc_ms, s->walk_ms, n));
    if (!qemu)
        return;
    printf("  QEMU migrate to file  : %8.2f ms (QEMU's total-time %.0f ms), "
           "RSS +%.2f MiB, %.0f KiB stream\n",
           bench_median(s->qemu_ms, n), bench_median(s->qemu_own_ms, n),
           bench_median(s->qemu_rss, n), bench_median(s->qemu_bytes, n) / 1024);
    printf("  ratio libhvcore / QEMU: %8.3f (time)\n",
           bench_ratio_median(s->hvc_ms, s->qemu_ms, n));
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--sizes MIB[,MIB...]] [--rounds N] [--dir DIR]\n"
            "          [--qemu PATH] [--no-qemu]\n"
            "Saves a guest that wrote 1 MiB of its RAM, with libhvcore and "
            "with QEMU\n(migrate to a file), alternating; prints medians and "
            "ratios.\n"
            "  --sizes   guest RAM sizes in MiB (default 256,1024)\n"
            "  --rounds  rounds per size, at most %u (default 5)\n"
            "  --dir     where the saved files go (default /tmp)\n"
            "  --qemu    the QEMU binary (default qemu-system-x86_64)\n"
            "  --no-qemu libhvcore and the read-every-page walk only\n",
            PROG, MAX_ROUNDS);
}

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){.sizes = {256, 1024},
                          .nsizes = 2,
                          .rounds = 5,
                          .dir = "/tmp",
                          .qemu = "qemu-system-x86_64"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--no-qemu")) {
            o->no_qemu = true;
        } else if (v && !strcmp(a, "--sizes")) {
            o->nsizes = 0;
            for (char *p = argv[++i]; *p && o->nsizes < MAX_SIZES;) {
                char *end;
                unsigned long m = strtoul(p, &end, 10);
                if (end == p || m < 16 || m > 3072)
                    return -1;
                o->sizes[o->nsizes++] = (uint32_t)m;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',')
                    return -1;
            }
        } else if (v && !strcmp(a, "--rounds")) {
            o->rounds = (uint32_t)strtoul(argv[++i], NULL, 10);
            if (!o->rounds || o->rounds > MAX_ROUNDS)
                return -1;
        } else if (v && !strcmp(a, "--dir")) {
            o->dir = argv[++i];
        } else if (v && !strcmp(a, "--qemu")) {
            o->qemu = argv[++i];
        } else {
            return -1;
        }
    }
    return o->nsizes ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    hvc_hypervisor *hv;
    if (hvc_hypervisor_open("kvm", &hv) < 0) {
        fprintf(stderr, "%s: skipped: %s\n", PROG, hvc_last_error());
        return 77;
    }
    const char *elf = BENCH_GUEST_DIR "/sparse_pvh.elf";
    guest_elf = bench_read_file(elf, &guest_len);
    snprintf(save_path, sizeof(save_path), "%s/hvsparse-%d.hvc", o.dir,
             (int)getpid());
    snprintf(qemu_path, sizeof(qemu_path), "%s/hvsparse-%d.qemu", o.dir,
             (int)getpid());
    snprintf(serial_path, sizeof(serial_path), "/tmp/hvsparse-%d.serial",
             (int)getpid());
    snprintf(qmp_path, sizeof(qmp_path), "/tmp/hvsparse-%d.qmp", (int)getpid());
    atexit(cleanup);
    bool qemu = !o.no_qemu;
    static struct samples s[MAX_SIZES];
    for (uint32_t r = 0; r < o.rounds; r++) {
        for (uint32_t z = 0; z < o.nsizes; z++) {
            if (qemu && r % 2 && !run_qemu(&o, elf, o.sizes[z], &s[z], r))
                qemu = false;
            run_hvc(hv, o.sizes[z], &s[z], r);
            if (qemu && r % 2 == 0 && !run_qemu(&o, elf, o.sizes[z], &s[z], r))
                qemu = false;
        }
    }
    if (!o.no_qemu && !qemu)
        printf("(QEMU could not be run: the comparison with it is left "
               "out)\n");
    for (uint32_t z = 0; z < o.nsizes; z++)
        report(&o, o.sizes[z], &s[z], qemu);
    hvc_hypervisor_close(hv);
    return 0;
}
