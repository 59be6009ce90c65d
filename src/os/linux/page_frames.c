/* Which physical frames this process's pages sit on, and who else maps
 * them: /proc/self/pagemap gives each page's frame (PFN), /proc/kpagecount
 * how many page tables map a frame and /proc/kpageflags whether it is a
 * KSM page or the zero page (Documentation/admin-guide/mm/pagemap.rst).
 * Frame numbers read as 0 without CAP_SYS_ADMIN, and the two /proc/kpage*
 * files are root's only. */
#define _GNU_SOURCE
#include "os_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PM_PFN_MASK ((1ull << 55) - 1)
#define PM_SWAPPED (1ull << 62)
#define PM_PRESENT (1ull << 63)
#define KPF_KSM 21
#define KPF_ZERO_PAGE 24
#define NO_PFN UINT64_MAX
/* Pages per pagemap read, and so the longest run of frames read at once. */
#define BATCH 512

struct hvi_os_frames {
    int pagemap;
    int kpagecount; /* -1 when scanning residency only */
    int kpageflags;
    uint64_t zero_pfn; /* NO_PFN when the host maps no zero page */
};

static const char *const PAGEMAP = "/proc/self/pagemap";

/* Reads n 64-bit entries of an array file starting at entry idx; entries
 * past the end of the file read as 0. */
static int read_entries(int fd, const char *name, uint64_t idx, uint64_t *v,
                        size_t n)
{
    size_t got = 0, want = n * sizeof(*v);
    while (got < want) {
        ssize_t k = pread(fd, (char *)v + got, want - got,
                          (off_t)(idx * sizeof(*v) + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return hvi_error(-errno, "auditing memory sharing: reading %s: %s",
                             name, hvc_strerror(-errno));
        if (k == 0)
            break;
        got += (size_t)k;
    }
    for (size_t i = got / sizeof(*v); i < n; i++)
        v[i] = 0;
    return 0;
}

/* The pagemap entry of the page at p. */
static int entry_of(int pagemap, const void *p, uint64_t *e)
{
    return read_entries(pagemap, PAGEMAP, (uintptr_t)p / HVC_PAGE_SIZE, e, 1);
}

/* Probes with two private pages: one written, whose frame number reads as
 * 0 without CAP_SYS_ADMIN, and one only read, which the kernel maps to its
 * zero page. */
static int probe(int pagemap, bool *have_pfns, uint64_t *zero_pfn)
{
    uint8_t *p = mmap(NULL, 2 * HVC_PAGE_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return hvi_error(-errno, "auditing memory sharing: mmap: %s",
                         hvc_strerror(-errno));
    p[0] = 1;
    (void)*(volatile uint8_t *)(p + HVC_PAGE_SIZE);
    uint64_t written, read;
    int r = entry_of(pagemap, p, &written);
    if (r == 0)
        r = entry_of(pagemap, p + HVC_PAGE_SIZE, &read);
    munmap(p, 2 * HVC_PAGE_SIZE);
    if (r < 0)
        return r;
    *have_pfns = (written & PM_PRESENT) && (written & PM_PFN_MASK);
    *zero_pfn = (read & PM_PRESENT) && (read & PM_PFN_MASK) ? read & PM_PFN_MASK
                                                            : NO_PFN;
    return 0;
}

static int open_proc(const char *name, int *fd)
{
    *fd = open(name, O_RDONLY | O_CLOEXEC);
    if (*fd >= 0)
        return 0;
    int e = -errno;
    if ((e == -EACCES || e == -EPERM) && name == PAGEMAP)
        return hvi_error(-EPERM,
                         "auditing memory sharing: %s: %s (a process that "
                         "changed its user ids is not dumpable, which makes "
                         "its /proc files root's: prctl PR_SET_DUMPABLE)",
                         name, hvc_strerror(e));
    if (e == -EACCES || e == -EPERM)
        return hvi_error(-EPERM,
                         "auditing memory sharing needs root: %s: %s (it "
                         "is readable by root only)",
                         name, hvc_strerror(e));
    if (e == -ENOENT)
        return hvi_error(-ENOTSUP,
                         "auditing memory sharing: this kernel has no %s "
                         "(CONFIG_PROC_PAGE_MONITOR)",
                         name);
    return hvi_error(e, "auditing memory sharing: opening %s: %s", name,
                     hvc_strerror(e));
}

void hvi_os_frames_close(hvi_os_frames *f)
{
    if (!f)
        return;
    if (f->pagemap >= 0)
        close(f->pagemap);
    if (f->kpagecount >= 0)
        close(f->kpagecount);
    if (f->kpageflags >= 0)
        close(f->kpageflags);
    free(f);
}

int hvi_os_frames_open(bool residency_only, hvi_os_frames **out,
                       bool *no_frames)
{
    if (sysconf(_SC_PAGESIZE) != HVC_PAGE_SIZE)
        return hvi_error(-ENOTSUP, "auditing memory sharing: the host's "
                                   "page size is not 4 KiB");
    hvi_os_frames *f = calloc(1, sizeof(*f));
    if (!f)
        return hvi_error(-ENOMEM, "out of memory auditing memory sharing");
    f->pagemap = f->kpagecount = f->kpageflags = -1;
    bool have_pfns = false;
    int r = open_proc(PAGEMAP, &f->pagemap);
    if (r == 0)
        r = probe(f->pagemap, &have_pfns, &f->zero_pfn);
    if (r == 0 && !have_pfns)
        r = hvi_error(-EPERM,
                      "auditing memory sharing needs CAP_SYS_ADMIN (and "
                      "root, to read /proc/kpagecount and /proc/kpageflags): "
                      "without it %s shows every page frame number as 0",
                      PAGEMAP);
    if (r == 0)
        r = open_proc("/proc/kpagecount", &f->kpagecount);
    if (r == 0)
        r = open_proc("/proc/kpageflags", &f->kpageflags);
    *no_frames = false;
    if (r == -EPERM && residency_only && f->pagemap >= 0) {
        /* Residency comes from the pagemap alone, which anyone may read. */
        if (f->kpagecount >= 0)
            close(f->kpagecount);
        f->kpagecount = -1;
        *no_frames = true;
        r = 0;
    }
    if (r < 0) {
        hvi_os_frames_close(f);
        return r;
    }
    *out = f;
    return 0;
}

/* Classifies n resident pages on the consecutive frames from pfn on. */
static int classify_run(hvi_os_frames *f, uint64_t pfn, size_t n,
                        struct hvi_os_sharing *acc)
{
    uint64_t flags[BATCH], count[BATCH];
    int r = read_entries(f->kpageflags, "/proc/kpageflags", pfn, flags, n);
    if (r == 0)
        r = read_entries(f->kpagecount, "/proc/kpagecount", pfn, count, n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (flags[i] & (1ull << KPF_ZERO_PAGE))
            acc->zero++;
        else if (flags[i] & (1ull << KPF_KSM))
            acc->ksm++;
        else if (count[i] > 1)
            acc->mapped++;
    }
    return 0;
}

int hvi_os_frames_scan(hvi_os_frames *f, const void *hva, uint64_t len,
                       struct hvi_os_sharing *acc)
{
    uint64_t first = (uintptr_t)hva / HVC_PAGE_SIZE;
    uint64_t total = len / HVC_PAGE_SIZE;
    uint64_t e[BATCH];
    for (uint64_t done = 0; done < total;) {
        size_t n = total - done < BATCH ? (size_t)(total - done) : BATCH;
        int r = read_entries(f->pagemap, PAGEMAP, first + done, e, n);
        if (r < 0)
            return r;
        done += n;
        acc->pages += n;
        /* A run of resident pages on consecutive frames is classified with
         * one read of each /proc/kpage* file. */
        uint64_t run_pfn = 0;
        size_t run = 0;
        for (size_t i = 0; i <= n; i++) {
            uint64_t pfn = NO_PFN;
            if (i < n) {
                if (e[i] & PM_PRESENT) {
                    acc->resident++;
                    pfn = e[i] & PM_PFN_MASK;
                } else if (e[i] & PM_SWAPPED) {
                    acc->swapped++;
                } else {
                    acc->not_resident++;
                }
                if (f->kpagecount < 0)
                    continue;
                /* Most zero pages of a guest need no read at all. */
                if (pfn != NO_PFN && pfn == f->zero_pfn) {
                    acc->zero++;
                    pfn = NO_PFN;
                }
            }
            if (run && pfn == run_pfn + run) {
                run++;
                continue;
            }
            if (run && (r = classify_run(f, run_pfn, run, acc)) < 0)
                return r;
            run = pfn != NO_PFN;
            run_pfn = pfn;
        }
    }
    return 0;
}
