/* The host memory behind a region, in the order that keeps pages where
 * they belong: allocation (src/os), NUMA policy (through the hook that
 * src/topology provides), advice, then prefault. */
#include "memory_host.h"

#include "../os/os.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

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

int hvi_memory_host_setup(hvc_memory_region *r, const hvc_memory_options *o)
{
    char what[80];
    snprintf(what, sizeof(what), "memory region 0x%" PRIx64 "+0x%" PRIx64,
             r->gpa, r->len);
    const struct hvi_numa_hooks *numa = hvi_numa;
    int e = 0;
    if (o->numa_policy != HVC_NUMA_DEFAULT && !numa)
        e = hvi_error(-ENOTSUP,
                      "%s: this build of libhvcore has no NUMA support", what);
    if (e == 0 && numa)
        e = numa->check(o->numa_nodes, o->numa_node_count, what);
    if (e == 0 && !r->hva) {
        void *hva = NULL;
        e = hvi_os_memory_map(r->len, o->flags & HVC_MEMORY_HUGETLB,
                              o->flags & HVC_MEMORY_MERGEABLE, what, &hva,
                              &r->fd);
        if (e == 0) {
            r->hva = hva;
            r->owned = true;
        }
    }
    if (e == 0 && numa)
        e = numa->bind(r->hva, r->len, o->numa_policy, o->numa_nodes,
                       o->numa_node_count, !r->owned, what);
    if (e == 0)
        e = hvi_os_memory_advise(r->hva, r->len, o->flags & HVC_MEMORY_THP,
                                 o->flags & HVC_MEMORY_MERGEABLE, what);
    if (e == 0 && (o->flags & HVC_MEMORY_PREFAULT))
        e = hvi_os_memory_prefault(r->hva, r->len, what);
    if (e < 0)
        hvi_memory_host_release(r);
    return e;
}

void hvi_memory_host_release(hvc_memory_region *r)
{
    hvi_os_memory_unmap(r->owned ? r->hva : NULL, r->len, r->fd);
    r->owned = false;
    r->fd = -1;
}

int hvi_memory_walk_open(const hvc_memory_region *r,
                         struct hvi_os_memory_walk **out)
{
    return hvi_os_memory_walk_open(r->hva, r->len, r->fd, out);
}

int hvi_memory_next_data(struct hvi_os_memory_walk *w, uint64_t off,
                         uint64_t *start, uint64_t *end)
{
    return hvi_os_guest_memory_next_data(w, off, start, end);
}

void hvi_memory_walk_close(struct hvi_os_memory_walk *w)
{
    hvi_os_memory_walk_close(w);
}

int hvi_memory_discard(hvc_memory_region *r, uint64_t off, uint64_t len)
{
    /* Not anonymous memory: a restore maps file pieces over it, and
     * dropping a private copy would bring the file's page back. Not huge
     * pages: a hole is punched in whole huge pages only. */
    if (!r->owned || r->fd < 0 || (r->flags & HVC_MEMORY_HUGETLB) ||
        off > r->len || len > r->len - off)
        return -ENOTSUP;
    return hvi_os_memory_discard(r->hva, off, len, r->fd);
}
