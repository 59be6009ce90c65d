/* Snapshot save and restore: libhvcore against plain file I/O on the same
 * bytes, measured in the same process (DESIGN.md section 7: a ratio against
 * a baseline measured in the same run).
 *
 * 1. Save throughput. A paused VM (--vcpus, no devices) with --size MiB of
 *    RAM, every page non-zero, is saved with hvc_snapshot_save() to a file in
 *    --dir; the baseline write()s the same guest memory (through its host
 *    mapping) to a file in the same directory. Both are durable the same
 *    way: temporary file, fsync, rename over the target, fsync of the
 *    directory. Then hvc_vm_save_fd() to a file against write(), neither
 *    fsynced (the page cache). Before every timed save the target is
 *    removed and the file system synced (syncfs), untimed, so neither side
 *    pays for the other's write-back or for freeing an old file.
 * 2. Restore latency, 128 MiB and --size MiB guests, from a snapshot file
 *    in the page cache (warm: the caches are not dropped): the time of the
 *    call, hvc_snapshot_restore() reading the file, mapping it
 *    (HVC_RESTORE_MMAP) and mapping it with the page CRCs checked
 *    (HVC_RESTORE_VERIFY_MEMORY), against a read() of the whole file into a
 *    fresh anonymous buffer, an mmap() of the file, and the creation of an
 *    empty VM of the same shape (what any restore must do). After each,
 *    every guest page is touched once through its host address, first by a load
 *    and then by a store, and timed: a mapped restore moves the cost of
 *    bringing memory in to the first touch (page-cache faults, then
 *    copy-on-write), it does not remove it.
 * 3. Bytes written when half the RAM is zero: alternating zero and
 *    non-zero pages, and alternating 2 MiB blocks; for the stream layout
 *    (hvc_vm_save() to a counting stream) and the snapshot file layout
 *    (hvc_snapshot_save(), whose raw runs are page-aligned and swallow short
 *    zero gaps). Printed as bytes / guest RAM.
 *
 * Every measurement of a round is taken in turn, the order rotating from
 * round to round; medians over the rounds are reported, and the median of
 * the per-round ratios.
 *
 * Exit status: 0 after reporting (ratios are reported, not enforced), 2 for
 * bad options, 77 (skip) when /dev/kvm cannot be opened, 1 on any other
 * failure.
 */
#define _GNU_SOURCE /* syncfs, MAP_ANONYMOUS, clock_gettime */
#include "bench_util.h"

#include <hvcore.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define PROG "snapshot"
#define MIB (1ull << 20)
#define PAGE 4096u
#define MAX_ROUNDS 64u
#define RESTORE_SMALL_MIB 128u
/* The baseline writes in 16 MiB calls: the size of the library's raw runs
 * (4096 pages), and past the point where a larger call helps. */
#define WRITE_CHUNK (16u << 20)
#define READ_CHUNK (1u << 30)

#define PART_SAVE 1u
#define PART_RESTORE 2u
#define PART_ZERO 4u

struct options {
    uint32_t size_mib;
    uint32_t rounds;
    uint32_t vcpus;
    uint32_t parts;
    const char *dir;
};

/* Files this process creates, removed at exit however the run ends
 * (short of a signal). */
static char snap_path[4096], plain_path[4096], plain_tmp[4096];

static void cleanup(void)
{
    unlink(snap_path);
    unlink(plain_path);
    unlink(plain_tmp);
}

/* ---- statistics ---- */

/* Sorts a copy: the caller's samples stay paired by round. */
static struct bench_stats summarise(const double *v, size_t n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, n * sizeof(*v));
    return bench_summarise(s, n);
}

static void report(const char *label, const char *unit, const double *v,
                   size_t n)
{
    struct bench_stats s = summarise(v, n);
    int prec = s.median < 10 ? 3 : 1;
    printf("  %-30s: %9.*f %s (min %.*f, max %.*f)\n", label, prec, s.median,
           unit, prec, s.min, prec, s.max);
}

/* The median of the per-round ratios a[i] / b[i]: the two samples of a
 * round ran side by side, so drift on the host cancels out of their
 * ratio. */
static double ratio_median(const double *a, const double *b, size_t n)
{
    double r[MAX_ROUNDS];
    for (size_t i = 0; i < n; i++)
        r[i] = a[i] / b[i];
    return summarise(r, n).median;
}

/* ---- guest memory ---- */

enum fill { FILL_NONE, FILL_ALL, FILL_ALT_PAGES, FILL_ALT_2M };

/* Every word of a non-zero page is non-zero and differs from page to page;
 * the zero pages of a pattern are all zero. */
static void fill(uint8_t *p, uint64_t len, enum fill f)
{
    if (f == FILL_NONE)
        return;
    for (uint64_t pg = 0; pg < len / PAGE; pg++) {
        uint64_t *w = (uint64_t *)(void *)(p + pg * PAGE);
        bool zero = (f == FILL_ALT_PAGES && pg % 2) ||
                    (f == FILL_ALT_2M && (pg / 512) % 2);
        for (uint64_t i = 0; i < PAGE / 8; i++)
            w[i] = zero ? 0 : ((pg << 9 | i) * 0x9e3779b97f4a7c15ull) | 1;
    }
}

struct guest {
    hvc_vm *vm;
    uint8_t *hva;
    uint64_t len;
};

/* A paused VM with @vcpus vCPUs and @len bytes of RAM at 0, filled with
 * @f. */
static void guest_new(hvc_hypervisor *hv, uint32_t vcpus, uint64_t len,
                      enum fill f, struct guest *g)
{
    bench_check_hv(hvc_vm_create(hv, NULL, &g->vm), "hvc_vm_create");
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = len;
    hvc_memory_region *reg;
    bench_check_hv(hvc_vm_add_memory(g->vm, &m, &reg), "hvc_vm_add_memory");
    g->hva = hvc_memory_region_hva(reg);
    g->len = len;
    for (uint32_t i = 0; i < vcpus; i++) {
        hvc_vcpu *vcpu;
        bench_check_hv(hvc_vcpu_create(g->vm, i, &vcpu), "hvc_vcpu_create");
    }
    fill(g->hva, len, f);
    bench_check_hv(hvc_vm_pause(g->vm), "hvc_vm_pause");
}

/* ---- files ---- */

static void write_all(int fd, const uint8_t *p, uint64_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len > WRITE_CHUNK ? WRITE_CHUNK : len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            bench_die("write");
        p += n;
        len -= (uint64_t)n;
    }
}

static void fsync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        bench_die(dir);
    close(dfd);
}

/* Untimed, before each timed save: no old file to free, no dirty pages of
 * an earlier measurement left to write back. */
static void settle(const char *dir, const char *path)
{
    if (unlink(path) < 0 && errno != ENOENT)
        bench_die(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || syncfs(dfd) < 0)
        bench_die(dir);
    close(dfd);
}

/* Seconds for a plain save of @g's memory: durable as hvc_snapshot_save()
 * is (temporary file, fsync, rename, directory fsync), or not at all. */
static double plain_save(const struct options *o, const struct guest *g,
                         bool durable)
{
    settle(o->dir, plain_path);
    double t0 = bench_now_s();
    int fd = open(durable ? plain_tmp : plain_path,
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        bench_die(plain_path);
    write_all(fd, g->hva, g->len);
    if (durable && fsync(fd) < 0)
        bench_die("fsync");
    if (close(fd) < 0)
        bench_die("close");
    if (durable) {
        if (rename(plain_tmp, plain_path) < 0)
            bench_die("rename");
        fsync_dir(o->dir);
    }
    return bench_now_s() - t0;
}

static double hvc_save(const struct options *o, const struct guest *g,
                       bool durable)
{
    settle(o->dir, snap_path);
    double t0 = bench_now_s();
    if (durable) {
        bench_check_hv(hvc_snapshot_save(g->vm, snap_path, NULL),
                       "hvc_snapshot_save");
    } else {
        int fd =
            open(snap_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            bench_die(snap_path);
        bench_check_hv(hvc_vm_save_fd(g->vm, fd, NULL), "hvc_vm_save_fd");
        if (close(fd) < 0)
            bench_die("close");
    }
    return bench_now_s() - t0;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        bench_die(path);
    return (uint64_t)st.st_size;
}

/* ---- 1. save throughput ---- */

static int64_t count_write(void *opaque, const void *buf, size_t length)
{
    (void)buf;
    *(uint64_t *)opaque += length;
    return (int64_t)length;
}

/* Seconds for hvc_vm_save() to a stream that only counts: the library's own
 * CPU work (zero-page scan, CRC32C, framing) without any I/O. */
static double null_save(const struct guest *g)
{
    uint64_t bytes = 0;
    hvc_stream st = HVC_STREAM_INIT;
    st.write = count_write;
    st.opaque = &bytes;
    double t0 = bench_now_s();
    bench_check_hv(hvc_vm_save(g->vm, &st, NULL), "hvc_vm_save");
    return bench_now_s() - t0;
}

static void bench_save(const struct options *o, hvc_hypervisor *hv)
{
    struct guest g;
    guest_new(hv, o->vcpus, (uint64_t)o->size_mib * MIB, FILL_ALL, &g);
    const double mb = (double)g.len / 1e6;
    for (int durable = 1; durable >= 0; durable--) {
        double lib[MAX_ROUNDS], plain[MAX_ROUNDS];
        /* Untimed warm-up of both: first writes to a new file system
         * area, the library's CRC table. */
        plain_save(o, &g, durable);
        hvc_save(o, &g, durable);
        for (uint32_t r = 0; r < o->rounds; r++) {
            if (r % 2 == 0) {
                plain[r] = mb / plain_save(o, &g, durable);
                lib[r] = mb / hvc_save(o, &g, durable);
            } else {
                lib[r] = mb / hvc_save(o, &g, durable);
                plain[r] = mb / plain_save(o, &g, durable);
            }
        }
        if (durable)
            printf("save, durable (temporary file, fsync, rename, fsync of "
                   "the directory):\n");
        else
            printf("save to a file, no fsync (page cache):\n");
        report(durable ? "write()+fsync" : "write()", "MB/s", plain, o->rounds);
        report(durable ? "hvc_snapshot_save" : "hvc_vm_save_fd", "MB/s", lib,
               o->rounds);
        printf("  %-30s: %9.3f (target >= 0.8)\n", "ratio hvcore/plain",
               ratio_median(lib, plain, o->rounds));
        printf("  %-30s: %llu bytes for %llu of RAM\n", "file size",
               (unsigned long long)file_size(snap_path),
               (unsigned long long)g.len);
        fflush(stdout);
    }
    double cpu[MAX_ROUNDS];
    null_save(&g);
    for (uint32_t r = 0; r < o->rounds; r++)
        cpu[r] = mb / null_save(&g);
    printf("save to a stream that discards (the library's CPU work alone: "
           "zero-page scan, CRC32C):\n");
    report("hvc_vm_save, no I/O", "MB/s", cpu, o->rounds);
    fflush(stdout);
    bench_check_hv(hvc_vm_destroy(g.vm), "hvc_vm_destroy");
    unlink(snap_path);
    unlink(plain_path);
}

/* ---- 2. restore latency ---- */

enum way {
    WAY_CREATE,         /* hvc_vm_create, add the memory, the vCPUs */
    WAY_READ,           /* read() into an anonymous buffer */
    WAY_MMAP,           /* mmap() of the file, MAP_PRIVATE */
    WAY_RESTORE,        /* hvc_snapshot_restore(), flags 0 */
    WAY_RESTORE_MMAP,   /* HVC_RESTORE_MMAP */
    WAY_RESTORE_VERIFY, /* HVC_RESTORE_MMAP | HVC_RESTORE_VERIFY_MEMORY */
    NR_WAYS
};

static const char *const way_name[NR_WAYS] = {
    "VM creation alone",           "read() into anon buffer",
    "mmap() of the file",          "hvc_snapshot_restore (read)",
    "hvc_snapshot_restore (mmap)", "hvc_snapshot_restore (mmap+vrfy)"};

/* For the touch lines, which add " load" or " store". */
static const char *const way_short[NR_WAYS] = {
    "VM creation",  "read()",       "mmap()",
    "restore read", "restore mmap", "restore mmap+verify"};

struct sample {
    double call, touch_load, touch_store; /* seconds */
};

/* Where touch() leaves the sum of its loads. */
static volatile uint64_t touch_sink;

/* One load, then one store, per page; returns their times. */
static void touch(uint8_t *p, uint64_t len, struct sample *s)
{
    volatile uint8_t *v = p;
    uint64_t sum = 0;
    double t0 = bench_now_s();
    for (uint64_t off = 0; off < len; off += PAGE)
        sum += v[off];
    double t1 = bench_now_s();
    for (uint64_t off = 0; off < len; off += PAGE)
        v[off] = (uint8_t)(v[off] + 1);
    double t2 = bench_now_s();
    touch_sink = sum;
    s->touch_load = t1 - t0;
    s->touch_store = t2 - t1;
}

static void read_whole(int fd, uint8_t *buf, uint64_t len)
{
    for (uint64_t done = 0; done < len;) {
        uint64_t want = len - done > READ_CHUNK ? READ_CHUNK : len - done;
        ssize_t n = read(fd, buf + done, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            bench_die("read");
        done += (uint64_t)n;
    }
}

static void run_way(const struct options *o, hvc_hypervisor *hv, enum way w,
                    uint64_t file_len, uint64_t ram, struct sample *s)
{
    if (w == WAY_CREATE) {
        struct guest g;
        double t0 = bench_now_s();
        guest_new(hv, o->vcpus, ram, FILL_NONE, &g);
        s->call = bench_now_s() - t0;
        touch(g.hva, ram, s);
        bench_check_hv(hvc_vm_destroy(g.vm), "hvc_vm_destroy");
        return;
    }
    if (w == WAY_READ || w == WAY_MMAP) {
        double t0 = bench_now_s();
        int fd = open(snap_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            bench_die(snap_path);
        uint8_t *p;
        if (w == WAY_READ) {
            p = mmap(NULL, file_len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED)
                bench_die("mmap of the buffer");
            read_whole(fd, p, file_len);
        } else {
            p = mmap(NULL, file_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd,
                     0);
            if (p == MAP_FAILED)
                bench_die("mmap of the file");
        }
        close(fd);
        s->call = bench_now_s() - t0;
        touch(p, file_len, s);
        munmap(p, file_len);
        return;
    }
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.flags = w == WAY_RESTORE ? 0
               : w == WAY_RESTORE_MMAP
                   ? HVC_RESTORE_MMAP
                   : HVC_RESTORE_MMAP | HVC_RESTORE_VERIFY_MEMORY;
    hvc_vm *vm;
    double t0 = bench_now_s();
    bench_check_hv(hvc_snapshot_restore(hv, snap_path, &ro, &vm),
                   "hvc_snapshot_restore");
    s->call = bench_now_s() - t0;
    void *hva;
    bench_check_hv(hvc_vm_gpa_to_hva(vm, 0, ram, &hva), "hvc_vm_gpa_to_hva");
    touch(hva, ram, s);
    bench_check_hv(hvc_vm_destroy(vm), "hvc_vm_destroy");
}

static void bench_restore_size(const struct options *o, hvc_hypervisor *hv,
                               uint32_t mib)
{
    struct guest g;
    guest_new(hv, o->vcpus, (uint64_t)mib * MIB, FILL_ALL, &g);
    settle(o->dir, snap_path);
    bench_check_hv(hvc_snapshot_save(g.vm, snap_path, NULL),
                   "hvc_snapshot_save");
    bench_check_hv(hvc_vm_destroy(g.vm), "hvc_vm_destroy");
    uint64_t file_len = file_size(snap_path);

    static struct sample s[NR_WAYS][MAX_ROUNDS];
    struct sample ignored;
    for (int w = 0; w < NR_WAYS; w++) /* untimed: the file is cached */
        run_way(o, hv, (enum way)w, file_len, g.len, &ignored);
    for (uint32_t r = 0; r < o->rounds; r++)
        for (int k = 0; k < NR_WAYS; k++) {
            int w = (int)((r + (uint32_t)k) % NR_WAYS);
            run_way(o, hv, (enum way)w, file_len, g.len, &s[w][r]);
        }

    double call[NR_WAYS][MAX_ROUNDS], load[NR_WAYS][MAX_ROUNDS];
    double store[NR_WAYS][MAX_ROUNDS], total[NR_WAYS][MAX_ROUNDS];
    for (int w = 0; w < NR_WAYS; w++)
        for (uint32_t r = 0; r < o->rounds; r++) {
            call[w][r] = s[w][r].call * 1e3;
            load[w][r] = s[w][r].touch_load * 1e3;
            store[w][r] = s[w][r].touch_store * 1e3;
            total[w][r] = call[w][r] + load[w][r] + store[w][r];
        }
    printf("restore, %u MiB guest (a %llu-byte snapshot file, warm page "
           "cache: caches not dropped):\n",
           mib, (unsigned long long)file_len);
    printf(" time of the call:\n");
    for (int w = 0; w < NR_WAYS; w++)
        report(way_name[w], "ms", call[w], o->rounds);
    printf("  %-30s: %9.3f\n", "ratio restore(read)/read()",
           ratio_median(call[WAY_RESTORE], call[WAY_READ], o->rounds));
    printf("  %-30s: %9.3f\n", "ratio restore(mmap)/creation",
           ratio_median(call[WAY_RESTORE_MMAP], call[WAY_CREATE], o->rounds));
    printf("  %-30s: %9.3f\n", "ratio restore(mmap)/mmap()",
           ratio_median(call[WAY_RESTORE_MMAP], call[WAY_MMAP], o->rounds));
    printf("  %-30s: %9.3f\n", "ratio restore(mmap)/read()",
           ratio_median(call[WAY_RESTORE_MMAP], call[WAY_READ], o->rounds));
    printf("  %-30s: %9.3f\n", "ratio restore(vrfy)/read()",
           ratio_median(call[WAY_RESTORE_VERIFY], call[WAY_READ], o->rounds));
    printf("  %-30s: %9.3f ms (target < 5 ms for 1 GiB)\n",
           "restore(mmap) median",
           summarise(call[WAY_RESTORE_MMAP], o->rounds).median);
    printf(" first touch of every page after the call (one load per page, "
           "then one store):\n");
    for (int w = 0; w < NR_WAYS; w++) {
        char label[64];
        snprintf(label, sizeof(label), "%s load", way_short[w]);
        report(label, "ms", load[w], o->rounds);
        snprintf(label, sizeof(label), "%s store", way_short[w]);
        report(label, "ms", store[w], o->rounds);
    }
    printf(" call + both touches (time until every page was used once):\n");
    for (int w = 0; w < NR_WAYS; w++)
        report(way_name[w], "ms", total[w], o->rounds);
    printf(
        "  %-30s: %9.3f\n", "ratio restore(mmap)/restore(rd)",
        ratio_median(total[WAY_RESTORE_MMAP], total[WAY_RESTORE], o->rounds));
    printf("  %-30s: %9.3f\n", "ratio restore(read)/read()",
           ratio_median(total[WAY_RESTORE], total[WAY_READ], o->rounds));
    fflush(stdout);
    unlink(snap_path);
}

static void bench_restore(const struct options *o, hvc_hypervisor *hv)
{
    if (o->size_mib > RESTORE_SMALL_MIB)
        bench_restore_size(o, hv, RESTORE_SMALL_MIB);
    bench_restore_size(o, hv, o->size_mib);
}

/* ---- 3. bytes written with half the RAM zero ---- */

static void bench_zero(const struct options *o, hvc_hypervisor *hv)
{
    static const struct {
        enum fill f;
        const char *name;
    } patterns[] = {
        {FILL_ALL, "no zero page (reference)"},
        {FILL_ALT_PAGES, "alternate 4 KiB pages zero"},
        {FILL_ALT_2M, "alternate 2 MiB blocks zero"},
    };
    printf("bytes written / guest RAM (%u MiB):\n", o->size_mib);
    printf("  %-30s: %9s %9s %9s\n", "pattern", "stream", "snapshot",
           "allocated");
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        struct guest g;
        guest_new(hv, o->vcpus, (uint64_t)o->size_mib * MIB, patterns[i].f, &g);
        uint64_t stream_bytes = 0;
        hvc_stream st = HVC_STREAM_INIT;
        st.write = count_write;
        st.opaque = &stream_bytes;
        bench_check_hv(hvc_vm_save(g.vm, &st, NULL), "hvc_vm_save");
        settle(o->dir, snap_path);
        bench_check_hv(hvc_snapshot_save(g.vm, snap_path, NULL),
                       "hvc_snapshot_save");
        struct stat sb;
        if (stat(snap_path, &sb) < 0)
            bench_die(snap_path);
        double ram = (double)g.len;
        printf("  %-30s: %9.4f %9.4f %9.4f\n", patterns[i].name,
               (double)stream_bytes / ram, (double)sb.st_size / ram,
               (double)sb.st_blocks * 512 / ram);
        fflush(stdout);
        bench_check_hv(hvc_vm_destroy(g.vm), "hvc_vm_destroy");
        unlink(snap_path);
    }
}

/* ---- set-up ---- */

static const char *fs_name(long type)
{
    switch (type) {
    case EXT4_SUPER_MAGIC: return "ext2/3/4";
    case XFS_SUPER_MAGIC: return "xfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case TMPFS_MAGIC: return "tmpfs (RAM: fsync writes nothing)";
    case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
    case NFS_SUPER_MAGIC: return "nfs";
    default: return "unknown";
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [--size MIB] [--rounds R] [--vcpus V] "
            "[--dir DIR]\n"
            "                [--only save|restore|zero]\n"
            "\n"
            "Snapshot save and restore against plain file I/O on the same\n"
            "bytes, in one process, on a paused VM with V vCPUs and no\n"
            "devices whose RAM is filled with non-zero data:\n"
            "  save: hvc_snapshot_save against write()+fsync (both through\n"
            "    a temporary file, renamed, directory fsynced), and\n"
            "    hvc_vm_save_fd against write() without fsync, in MB/s\n"
            "  restore: hvc_snapshot_restore by read, by mmap and by\n"
            "    mmap with page CRCs checked, against read() of the file\n"
            "    and mmap() of it, at 128 MiB and MIB; the file is in the\n"
            "    page cache (caches are not dropped); then the time of a\n"
            "    first load and store on every page\n"
            "  zero: bytes written / RAM with half the pages zero\n"
            "Medians of R rounds, and the median of per-round ratios.\n"
            "\n"
            "  --size MIB  guest RAM, 1..65536 (default 1024)\n"
            "  --rounds R  rounds, 1..%u (default 5)\n"
            "  --vcpus V   vCPUs of the VM, 0..64 (default 1)\n"
            "  --dir DIR   where the files go (default /tmp); its file\n"
            "              system type is printed\n"
            "  --only P    run only part P (default: all three)\n"
            "  --help      show this help\n"
            "\n"
            "Exit status: 0 after reporting, 2 for bad options, 77 when\n"
            "/dev/kvm cannot be opened, 1 when a run fails.\n",
            MAX_ROUNDS);
}

static int parse_part(const char *val, uint32_t *parts)
{
    static const char *const names[] = {"save", "restore", "zero"};
    for (uint32_t i = 0; i < 3; i++)
        if (strcmp(val, names[i]) == 0) {
            *parts = 1u << i;
            return 0;
        }
    fprintf(stderr, PROG ": --only: '%s' is not save, restore or zero\n", val);
    return -1;
}

/* Returns 0 to run, 1 after --help, -1 for a bad option (reported). */
static int parse_args(int argc, char **argv, struct options *o)
{
    const struct {
        const char *name;
        uint32_t min, max;
        uint32_t *dst;
    } flags[] = {
        {"--size", 1, 65536, &o->size_mib},
        {"--rounds", 1, MAX_ROUNDS, &o->rounds},
        {"--vcpus", 0, 64, &o->vcpus},
        {"--dir", 0, 0, NULL},
        {"--only", 0, 0, NULL},
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
        if (!flags[f].dst) {
            if (strcmp(flags[f].name, "--dir") == 0)
                o->dir = val;
            else if (parse_part(val, &o->parts) < 0)
                return -1;
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
    struct options o = {1024, 5, 1, PART_SAVE | PART_RESTORE | PART_ZERO,
                        "/tmp"};
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
    struct statfs sfs;
    if (statfs(o.dir, &sfs) < 0)
        bench_die(o.dir);
    long pid = (long)getpid();
    snprintf(snap_path, sizeof(snap_path), "%s/hvcore-bench-%ld.snap", o.dir,
             pid);
    snprintf(plain_path, sizeof(plain_path), "%s/hvcore-bench-%ld.plain", o.dir,
             pid);
    snprintf(plain_tmp, sizeof(plain_tmp), "%s/hvcore-bench-%ld.plain.tmp",
             o.dir, pid);
    atexit(cleanup);
    hvc_hypervisor *hv;
    bench_check_hv(hvc_hypervisor_open("kvm", &hv), "hvc_hypervisor_open");

    printf(PROG ": %u MiB guest, %u vCPU(s), %u rounds (median), files in "
                "%s: %s (statfs type 0x%lx)\n",
           o.size_mib, o.vcpus, o.rounds, o.dir, fs_name((long)sfs.f_type),
           (unsigned long)sfs.f_type);
    fflush(stdout);
    if (o.parts & PART_SAVE)
        bench_save(&o, hv);
    if (o.parts & PART_RESTORE)
        bench_restore(&o, hv);
    if (o.parts & PART_ZERO)
        bench_zero(&o, hv);
    bench_check_hv(hvc_hypervisor_close(hv), "hvc_hypervisor_close");
    return 0;
}
