/* Host memory behind guest regions: memfd (shareable with another process,
 * mappable from a snapshot), hugetlbfs memfd, or private anonymous memory
 * for same-page merging; advice and prefaulting. */
#define _GNU_SOURCE
#include "os_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Reads a number from the huge page pool's sysfs directory; -1 if none. */
static long pool_value(uint64_t page, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path),
             "/sys/kernel/mm/hugepages/hugepages-%" PRIu64 "kB/%s", page >> 10,
             name);
    FILE *f = fopen(path, "re");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static int huge_shortage(uint64_t len, uint64_t page, const char *what)
{
    return hvi_error(-ENOMEM,
                     "%s: not enough free %" PRIu64 " KiB huge pages (it "
                     "needs %" PRIu64 "; the pool has %ld free of %ld; "
                     "/proc/sys/vm/nr_hugepages sizes it)",
                     what, page >> 10, len / page,
                     pool_value(page, "free_hugepages"),
                     pool_value(page, "nr_hugepages"));
}

static int map_memfd(uint64_t len, bool huge, const char *what, void **hva,
                     int *fdp)
{
    int fd =
        memfd_create("hvcore-guest", MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
    if (fd < 0) {
        int e = -errno;
        if (huge && (e == -EINVAL || e == -ENOENT || e == -ENODEV))
            return hvi_error(-ENOTSUP,
                             "%s: this kernel has no huge pages (hugetlbfs)",
                             what);
        return hvi_error(e, "%s: memfd_create: %s", what, hvc_strerror(e));
    }
    struct stat st;
    int e = 0;
    /* A hugetlbfs file's block size is its huge page size. */
    uint64_t page =
        huge && fstat(fd, &st) == 0 ? (uint64_t)st.st_blksize : HVC_PAGE_SIZE;
    if (len % page)
        e = hvi_error(-EINVAL,
                      "%s: the length is not a multiple of the %" PRIu64
                      " KiB huge page size",
                      what, page >> 10);
    else if (ftruncate(fd, (off_t)len) < 0)
        e = hvi_error(-errno, "%s: sizing its memfd: %s", what,
                      hvc_strerror(-errno));
    /* Huge pages are reserved here (no MAP_NORESERVE), so a short pool
     * fails now with a message rather than as a SIGBUS in the guest. */
    void *p = MAP_FAILED;
    if (e == 0 && (p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_SHARED | (huge ? 0 : MAP_NORESERVE), fd, 0)) ==
                      MAP_FAILED)
        e = huge && errno == ENOMEM
                ? huge_shortage(len, page, what)
                : hvi_error(-errno, "%s: mapping its memfd: %s", what,
                            hvc_strerror(-errno));
    if (e < 0) {
        close(fd);
        return e;
    }
    *fdp = fd;
    *hva = p;
    return 0;
}

int hvi_os_memory_map(uint64_t len, bool huge, bool mergeable, const char *what,
                      void **hva, int *fd)
{
    *fd = -1;
    if (!mergeable)
        return map_memfd(len, huge, what, hva, fd);
    /* KSM merges private anonymous pages only. */
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return hvi_error(-errno, "%s: mmap: %s", what, hvc_strerror(-errno));
    *hva = p;
    return 0;
}

void hvi_os_memory_unmap(void *hva, uint64_t len, int fd)
{
    if (hva)
        munmap(hva, len);
    if (fd >= 0)
        close(fd);
}

int hvi_os_memory_advise(void *hva, uint64_t len, bool thp, bool merge,
                         const char *what)
{
    if (thp && madvise(hva, len, MADV_HUGEPAGE)) {
        int e = -errno;
        return e == -EINVAL ? hvi_error(-ENOTSUP,
                                        "%s: this kernel has no transparent "
                                        "huge pages",
                                        what)
                            : hvi_error(e, "%s: madvise(MADV_HUGEPAGE): %s",
                                        what, hvc_strerror(e));
    }
    if (madvise(hva, len, merge ? MADV_MERGEABLE : MADV_UNMERGEABLE)) {
        int e = -errno;
        /* Without KSM in the kernel nothing merges: unmergeable holds. */
        if (e == -EINVAL && !merge)
            return 0;
        return e == -EINVAL
                   ? hvi_error(-ENOTSUP,
                               "%s: this kernel has no KSM "
                               "(same-page merging)",
                               what)
                   : hvi_error(e, "%s: madvise(%s): %s", what,
                               merge ? "MADV_MERGEABLE" : "MADV_UNMERGEABLE",
                               hvc_strerror(e));
    }
    return 0;
}

int hvi_os_memory_prefault(void *hva, uint64_t len, const char *what)
{
    if (madvise(hva, len, MADV_POPULATE_WRITE) == 0)
        return 0;
    int e = -errno;
    if (e != -EINVAL)
        return hvi_error(e, "%s: prefaulting: %s%s", what, hvc_strerror(e),
                         e == -ENOMEM ? " (on the nodes its NUMA policy "
                                        "allows)"
                                      : "");
    /* Kernels before 5.14: touch a byte of every page, keeping its value
     * (caller memory may hold data already). */
    for (uint64_t off = 0; off < len; off += HVC_PAGE_SIZE) {
        volatile uint8_t *p = (uint8_t *)hva + off;
        *p = *p;
    }
    return 0;
}
