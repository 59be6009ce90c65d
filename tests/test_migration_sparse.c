/* Sparse saves (issue 13, "memory walks that never allocate"): a 2 GiB
 * guest that wrote about 1 MiB is saved and restored. Saving must not read
 * the memory it never wrote (reading a memfd page allocates it), so the
 * saver's RSS grows by a few MiB at most and the save takes time in
 * proportion to the written memory; the restore gives back the same
 * contents without allocating the rest either. Through the public API,
 * on /dev/kvm, for library memory (memfd) and caller memory (private
 * anonymous). */
#include "hvtest.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

TestSuite(migration_sparse, .init = hvt_require_kvm, .timeout = 120);

#define GIB (1ull << 30)
#define MIB (1ull << 20)
#define GUEST_RAM (2 * GIB)
/* The guest writes 16 ranges of 64 KiB spread over its RAM, the host one
 * more with a pattern in every byte: 1088 KiB in all. */
#define NRANGES 16
#define RANGE (64 * 1024)
#define RANGE_GPA(i) (64 * MIB + (uint64_t)(i)*120 * MIB)
#define HOST_GPA (1900 * MIB)
/* The bounds: generous against this host's few milliseconds, far below
 * what walking 2 GiB costs (seconds, and 2 GiB of RSS). */
#define MAX_RSS_GROWTH_KIB (8 * 1024)
#define MAX_SECONDS 1.0

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    cr_assert_not_null(f);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    cr_assert_geq(kib, 0, "no VmRSS in /proc/self/status");
    return kib;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* FNV-1a over what the guest and the host wrote, read back through the
 * VM (hvc_vm_read), and whether a few never-written pages read as zero. */
static uint64_t written_hash(hvc_vm *vm)
{
    static uint8_t buf[RANGE];
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i <= NRANGES; i++) {
        uint64_t gpa = i < NRANGES ? RANGE_GPA(i) : HOST_GPA;
        HVT_OK(hvc_vm_read(vm, gpa, buf, sizeof(buf)));
        for (size_t k = 0; k < sizeof(buf); k++)
            h = (h ^ buf[k]) * 0x100000001b3ull;
    }
    return h;
}

static void assert_unwritten_zero(hvc_vm *vm)
{
    const uint64_t probes[] = {RANGE_GPA(0) - 4096, RANGE_GPA(3) + RANGE,
                               1000 * MIB, GUEST_RAM - 8};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        uint64_t v = ~0ull;
        HVT_OK(hvc_vm_read(vm, probes[i], &v, sizeof(v)));
        cr_assert_eq(v, 0, "never-written 0x%llx reads 0x%llx",
                     (unsigned long long)probes[i], (unsigned long long)v);
    }
}

struct guest {
    hvc_hypervisor *hv;
    hvc_vm *vm;
    void *caller_mem; /* caller-supplied RAM, or NULL for a memfd */
};

/* A paused 2 GiB guest whose code (tests/guests/touch64.S) wrote the
 * ranges; @p caller: its RAM is the caller's private anonymous memory. */
static void guest_open(struct guest *g, bool caller)
{
    memset(g, 0, sizeof(*g));
    HVT_OK(hvc_hypervisor_open("kvm", &g->hv));
    HVT_OK(hvc_vm_create(g->hv, NULL, &g->vm));
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = GUEST_RAM;
    if (caller) {
        g->caller_mem =
            mmap(NULL, GUEST_RAM, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        cr_assert_neq(g->caller_mem, MAP_FAILED);
        mo.host_addr = g->caller_mem;
    }
    HVT_OK(hvc_vm_add_memory(g->vm, &mo, NULL));
    hvt_load(g->vm, "touch64");
    hvc_vcpu *v = hvt_vcpu(g->vm, 0, HVC_X86_MODE_LONG64, 0);
    for (int i = 0; i < NRANGES; i++) {
        uint64_t range[2] = {RANGE_GPA(i), RANGE};
        HVT_OK(hvc_vm_write(g->vm, DATA_IN, range, sizeof(range)));
        HVT_OK(hvc_vcpu_set_reg(v, HVC_X86_RIP, GUEST_LOAD));
        cr_assert_eq(hvt_run_done(v), 0x7c);
    }
    static uint8_t pattern[RANGE];
    for (size_t k = 0; k < sizeof(pattern); k++)
        pattern[k] = (uint8_t)(k * 131 + 7);
    HVT_OK(hvc_vm_write(g->vm, HOST_GPA, pattern, sizeof(pattern)));
    HVT_OK(hvc_vm_pause(g->vm));
}

static void guest_close(struct guest *g)
{
    if (g->vm)
        hvc_vm_destroy(g->vm);
    if (g->caller_mem)
        munmap(g->caller_mem, GUEST_RAM);
    if (g->hv)
        hvc_hypervisor_close(g->hv);
}

/* Runs @p what, asserting the RSS growth and time bounds. */
#define BOUNDED(label, what)                                                   \
    do {                                                                       \
        long rss0_ = rss_kib();                                                \
        double t0_ = now();                                                    \
        what;                                                                  \
        double dt_ = now() - t0_;                                              \
        long grew_ = rss_kib() - rss0_;                                        \
        cr_log_info("%s: %.1f ms, RSS +%ld KiB", label, dt_ * 1e3, grew_);     \
        cr_assert_leq(grew_, MAX_RSS_GROWTH_KIB, "%s grew RSS by %ld KiB",     \
                      label, grew_);                                           \
        cr_assert_lt(dt_, MAX_SECONDS, "%s took %.3f s", label, dt_);          \
    } while (0)

struct progress {
    uint64_t done, total, calls;
};

static int record_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct progress *p = opaque;
    p->done = done;
    p->total = total;
    p->calls++;
    return 0;
}

/* Saves @p g as a stream and as a snapshot file, then restores each into
 * a fresh VM (read, and for the file also mapped), all within bounds and
 * with the written memory intact. */
static void save_and_restore(struct guest *g)
{
    uint64_t want = written_hash(g->vm);
    char stream[64], snap[64];
    snprintf(stream, sizeof(stream), "/tmp/hvsparse-%d.stream", getpid());
    snprintf(snap, sizeof(snap), "/tmp/hvsparse-%d.snap", getpid());
    int fd = open(stream, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    struct progress p = {0};
    hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
    so.progress = record_progress;
    so.opaque = &p;
    BOUNDED("stream save", HVT_OK(hvc_vm_save_fd(g->vm, fd, &so)));
    /* The estimate counts what may hold data, not 2 GiB. */
    cr_assert(p.calls > 0 && p.total > 0 && p.total < 8 * MIB &&
                  p.done <= p.total,
              "progress: %llu of %llu bytes", (unsigned long long)p.done,
              (unsigned long long)p.total);
    BOUNDED("snapshot save", HVT_OK(hvc_snapshot_save(g->vm, snap, NULL)));
    off_t size = lseek(fd, 0, SEEK_END);
    cr_assert_lt((unsigned long long)size, 4 * MIB, "a stream of %lld bytes", (long long)size);
    guest_close(g);

    const uint32_t flags[] = {0, HVC_RESTORE_MMAP};
    for (int k = 0; k < 3; k++) {
        hvc_hypervisor *hv;
        hvc_vm *vm = NULL;
        HVT_OK(hvc_hypervisor_open("kvm", &hv));
        hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
        if (k == 0) {
            cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
            BOUNDED("stream restore",
                    HVT_OK(hvc_vm_restore_fd(hv, fd, &o, &vm)));
        } else {
            o.flags = flags[k - 1];
            BOUNDED(k == 1 ? "snapshot restore" : "mapped snapshot restore",
                    HVT_OK(hvc_snapshot_restore(hv, snap, &o, &vm)));
        }
        cr_assert_eq(written_hash(vm), want, "restore %d: memory differs", k);
        assert_unwritten_zero(vm);
        hvc_vm_destroy(vm);
        hvc_hypervisor_close(hv);
    }
    close(fd);
    unlink(stream);
    unlink(snap);
}

Test(migration_sparse, memfd_guest_saves_and_restores_what_it_wrote)
{
    struct guest g;
    guest_open(&g, false);
    save_and_restore(&g);
}

Test(migration_sparse, caller_memory_saves_and_restores_what_it_wrote)
{
    struct guest g;
    guest_open(&g, true);
    save_and_restore(&g);
}

/* Caller memory that is not private anonymous may hold data in pages the
 * VM's mapping never touched: here a memfd written through a second
 * mapping only. Nothing of it may be skipped. */
Test(migration_sparse, shared_caller_memory_is_read_whole)
{
    const uint64_t len = 16 * MIB;
    int mfd = memfd_create("hvsparse", MFD_CLOEXEC);
    cr_assert_geq(mfd, 0);
    cr_assert_eq(ftruncate(mfd, (off_t)len), 0);
    uint8_t *vm_view =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    uint8_t *other =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    cr_assert(vm_view != MAP_FAILED && other != MAP_FAILED);
    hvc_hypervisor *hv;
    hvc_vm *vm;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    HVT_OK(hvc_vm_create(hv, NULL, &vm));
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = len;
    mo.host_addr = vm_view;
    HVT_OK(hvc_vm_add_memory(vm, &mo, NULL));
    for (uint64_t off = 3 * MIB; off < len; off += 2 * MIB + 4096)
        memset(other + off, 0x5a, 4096);
    HVT_OK(hvc_vm_pause(vm));
    char path[64];
    snprintf(path, sizeof(path), "/tmp/hvsparse-shared-%d.snap", getpid());
    HVT_OK(hvc_snapshot_save(vm, path, NULL));
    hvc_vm_destroy(vm);

    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    HVT_OK(hvc_snapshot_restore(hv, path, &o, &vm));
    for (uint64_t off = 3 * MIB; off < len; off += 2 * MIB + 4096) {
        uint8_t page[4096];
        HVT_OK(hvc_vm_read(vm, off, page, sizeof(page)));
        for (size_t k = 0; k < sizeof(page); k++)
            cr_assert_eq(page[k], 0x5a, "byte 0x%llx lost",
                         (unsigned long long)(off + k));
    }
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    munmap(vm_view, len);
    munmap(other, len);
    close(mfd);
    unlink(path);
}

/* A snapshot file writes zero gaps shorter than 16 pages raw (its
 * page-aligned layout); a restore that reads it must not keep them
 * allocated: here 4 MiB of data alternates with 4 MiB of zero pages the
 * guest's memory holds (written as zeros), 8 pages each. */
Test(migration_sparse, zero_gaps_in_a_snapshot_file_are_not_allocated)
{
    const uint64_t len = 64 * MIB, base = 16 * MIB, span = 8 * MIB;
    hvc_hypervisor *hv;
    hvc_vm *vm;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    HVT_OK(hvc_vm_create(hv, NULL, &vm));
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = len;
    HVT_OK(hvc_vm_add_memory(vm, &mo, NULL));
    static uint8_t block[8 * 4096];
    for (uint64_t off = 0; off < span; off += sizeof(block)) {
        bool data = (off / sizeof(block)) % 2 == 0;
        memset(block, data ? (int)(off >> 15 | 1) : 0, sizeof(block));
        HVT_OK(hvc_vm_write(vm, base + off, block, sizeof(block)));
    }
    HVT_OK(hvc_vm_pause(vm));
    char path[64];
    snprintf(path, sizeof(path), "/tmp/hvsparse-gaps-%d.snap", getpid());
    HVT_OK(hvc_snapshot_save(vm, path, NULL));
    hvc_vm_destroy(vm);

    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    long rss0 = rss_kib();
    HVT_OK(hvc_snapshot_restore(hv, path, &o, &vm));
    long grew = rss_kib() - rss0;
    cr_log_info("restore of 4 MiB data + 4 MiB zero gaps: RSS +%ld KiB", grew);
    cr_assert_lt(grew, 6 * 1024, "the restore allocated %ld KiB", grew);
    for (uint64_t off = 0; off < span; off += sizeof(block)) {
        bool data = (off / sizeof(block)) % 2 == 0;
        HVT_OK(hvc_vm_read(vm, base + off, block, sizeof(block)));
        for (size_t k = 0; k < sizeof(block); k++)
            cr_assert_eq(block[k], data ? (uint8_t)(off >> 15 | 1) : 0,
                         "byte 0x%llx", (unsigned long long)(base + off + k));
    }
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    unlink(path);
}
