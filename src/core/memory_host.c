/* The host memory behind a region: how it is allocated (memfd, hugetlbfs
 * memfd, or anonymous for KSM), where its pages may live (NUMA policy),
 * what the kernel may do with them (KSM, THP), and whether they exist
 * before the guest runs (prefault). */
#define _GNU_SOURCE
#include "memory_host.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

int hvi_memory_host_check(const hvc_memory_options *o)
{
    uint64_t gpa = o->guest_addr;
    uint32_t f = o->flags;
    if ((f & HVC_MEMORY_HUGETLB) &&
        (f & (HVC_MEMORY_MERGEABLE | HVC_MEMORY_THP)))
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 ": HVC_MEMORY_HUGETLB "
                         "does not go with HVC_MEMORY_MERGEABLE or "
                         "HVC_MEMORY_THP",
                         gpa);
    if ((f & HVC_MEMORY_HUGETLB) && o->host_addr)
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 ": HVC_MEMORY_HUGETLB is "
                         "for library-allocated memory, not the caller's",
                         gpa);
    if (o->numa_policy > HVC_NUMA_INTERLEAVE)
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 ": NUMA policy %" PRIu32
                         " is not one this library knows",
                         gpa, o->numa_policy);
    if (o->numa_policy == HVC_NUMA_DEFAULT && o->numa_node_count)
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 " lists NUMA nodes but "
                         "its policy is HVC_NUMA_DEFAULT",
                         gpa);
    if (o->numa_policy != HVC_NUMA_DEFAULT &&
        (!o->numa_node_count || !o->numa_nodes))
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 ": its NUMA policy names "
                         "no node",
                         gpa);
    if (o->numa_policy == HVC_NUMA_PREFERRED && o->numa_node_count != 1)
        return hvi_error(-EINVAL,
                         "memory region 0x%" PRIx64 ": HVC_NUMA_PREFERRED "
                         "takes one node, not %" PRIu32,
                         gpa, o->numa_node_count);
    return 0;
}

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

static int huge_shortage(hvc_memory_region *r, uint64_t page, const char *what)
{
    return hvi_error(-ENOMEM,
                     "%s: not enough free %" PRIu64 " KiB huge pages (it "
                     "needs %" PRIu64 "; the pool has %ld free of %ld; "
                     "/proc/sys/vm/nr_hugepages sizes it)",
                     what, page >> 10, r->len / page,
                     pool_value(page, "free_hugepages"),
                     pool_value(page, "nr_hugepages"));
}

static int map_memfd(hvc_memory_region *r, bool huge, const char *what)
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
    if (r->len % page)
        e = hvi_error(-EINVAL,
                      "%s: the length is not a multiple of the %" PRIu64
                      " KiB huge page size",
                      what, page >> 10);
    else if (ftruncate(fd, (off_t)r->len) < 0)
        e = hvi_error(-errno, "%s: sizing its memfd: %s", what,
                      hvc_strerror(-errno));
    /* Huge pages are reserved here (no MAP_NORESERVE), so a short pool
     * fails now with a message rather than as a SIGBUS in the guest. */
    void *p = MAP_FAILED;
    if (e == 0 && (p = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
                            MAP_SHARED | (huge ? 0 : MAP_NORESERVE), fd, 0)) ==
                      MAP_FAILED)
        e = huge && errno == ENOMEM
                ? huge_shortage(r, page, what)
                : hvi_error(-errno, "%s: mapping its memfd: %s", what,
                            hvc_strerror(-errno));
    if (e < 0) {
        close(fd);
        return e;
    }
    r->fd = fd;
    r->hva = p;
    r->owned = true;
    return 0;
}

static int allocate(hvc_memory_region *r, uint32_t flags, const char *what)
{
    if (!(flags & HVC_MEMORY_MERGEABLE))
        return map_memfd(r, flags & HVC_MEMORY_HUGETLB, what);
    /* KSM merges private anonymous pages only. */
    void *p = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return hvi_error(-errno, "%s: mmap: %s", what, hvc_strerror(-errno));
    r->hva = p;
    r->owned = true;
    return 0;
}

static int advise(hvc_memory_region *r, uint32_t flags, const char *what)
{
    if ((flags & HVC_MEMORY_THP) && madvise(r->hva, r->len, MADV_HUGEPAGE)) {
        int e = -errno;
        return e == -EINVAL ? hvi_error(-ENOTSUP,
                                        "%s: this kernel has no transparent "
                                        "huge pages",
                                        what)
                            : hvi_error(e, "%s: madvise(MADV_HUGEPAGE): %s",
                                        what, hvc_strerror(e));
    }
    bool merge = flags & HVC_MEMORY_MERGEABLE;
    if (madvise(r->hva, r->len, merge ? MADV_MERGEABLE : MADV_UNMERGEABLE)) {
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

static int prefault(hvc_memory_region *r, const char *what)
{
    if (madvise(r->hva, r->len, MADV_POPULATE_WRITE) == 0)
        return 0;
    int e = -errno;
    if (e != -EINVAL)
        return hvi_error(e, "%s: prefaulting: %s%s", what, hvc_strerror(e),
                         e == -ENOMEM ? " (on the nodes its NUMA policy "
                                        "allows)"
                                      : "");
    /* Kernels before 5.14: touch a byte of every page, keeping its value
     * (caller memory may hold data already). */
    for (uint64_t off = 0; off < r->len; off += HVC_PAGE_SIZE) {
        volatile uint8_t *p = r->hva + off;
        *p = *p;
    }
    return 0;
}

int hvi_memory_host_setup(hvc_memory_region *r, const hvc_memory_options *o)
{
    char what[80];
    snprintf(what, sizeof(what), "memory region 0x%" PRIx64 "+0x%" PRIx64,
             r->gpa, r->len);
    int e = hvi_numa_check(o->numa_nodes, o->numa_node_count, what);
    if (e == 0 && !r->hva)
        e = allocate(r, o->flags, what);
    if (e == 0)
        e = hvi_numa_bind(r->hva, r->len, o->numa_policy, o->numa_nodes,
                          o->numa_node_count, !r->owned, what);
    if (e == 0)
        e = advise(r, o->flags, what);
    if (e == 0 && (o->flags & HVC_MEMORY_PREFAULT))
        e = prefault(r, what);
    if (e < 0)
        hvi_memory_host_release(r);
    return e;
}

void hvi_memory_host_release(hvc_memory_region *r)
{
    if (r->owned)
        munmap(r->hva, r->len);
    if (r->fd >= 0)
        close(r->fd);
    r->owned = false;
    r->fd = -1;
}
