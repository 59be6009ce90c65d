/* The host's NUMA nodes, through libnuma, and the host snapshot. */
#define _GNU_SOURCE
#include "topo.h"

#include <errno.h>
#include <inttypes.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../os/lazy.h"

/* libnuma is loaded the first time the host's nodes are asked for; a host where
 * it cannot be is one node (src/os/lazy.h). */
#define NUMA_SYMS(X)                                                           \
    X(numa_nodes_ptr)                                                          \
    X(numa_bitmask_weight)                                                     \
    X(numa_max_node)                                                           \
    X(numa_bitmask_isbitset)                                                   \
    X(numa_num_possible_cpus)                                                  \
    X(numa_node_to_cpus)                                                       \
    X(numa_node_size64)                                                        \
    X(numa_distance)
HVI_LAZY_TABLE(numa, HVCORE_SONAME_NUMA, NUMA_SYMS)
#define numa_nodes_ptr HVI_LAZY_USE(numa, numa_nodes_ptr)
#define numa_bitmask_weight HVI_LAZY_USE(numa, numa_bitmask_weight)
#define numa_max_node HVI_LAZY_USE(numa, numa_max_node)
#define numa_bitmask_isbitset HVI_LAZY_USE(numa, numa_bitmask_isbitset)
#define numa_num_possible_cpus HVI_LAZY_USE(numa, numa_num_possible_cpus)
#define numa_node_to_cpus HVI_LAZY_USE(numa, numa_node_to_cpus)
#define numa_node_size64 HVI_LAZY_USE(numa, numa_node_size64)
#define numa_distance HVI_LAZY_USE(numa, numa_distance)

/* The nodes are what /sys/devices/system/node lists, which libnuma reads
 * when it loads: that works even where the policy system calls are
 * refused (numa_available() < 0 under a container's seccomp filter). A
 * kernel without NUMA has no such directory, and is one node 0. */
static int have_numa(void)
{
    if (hvi_lazy_numa() < 0)
        return 0;
    return numa_nodes_ptr && numa_bitmask_weight(numa_nodes_ptr) > 0;
}

static int host_has_node(uint32_t node)
{
    if (!have_numa())
        return node == 0;
    return node <= (uint32_t)numa_max_node() &&
           numa_bitmask_isbitset(numa_nodes_ptr, node);
}

/* "0, 1, 3": the ids for a message. */
static void node_list(char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    int max = have_numa() ? numa_max_node() : 0;
    for (int n = 0; n <= max && len + 16 < cap; n++)
        if (host_has_node((uint32_t)n))
            len += (size_t)snprintf(buf + len, cap - len, "%s%d",
                                    len ? ", " : "", n);
}

int hvi_host_node_exists(uint32_t node, const char *what)
{
    if (host_has_node(node))
        return 0;
    char list[256];
    node_list(list, sizeof(list));
    return hvi_error(-ENOENT,
                     "%s: NUMA node %" PRIu32 " does not exist on this host "
                     "(its nodes: %s)",
                     what, node, list);
}

/* Keeps only the online CPUs of a node's mask. The mask is a struct
 * bitmask of our own: libnuma's allocators exit the process on failure. */
static int mask_to_online(const struct bitmask *bm, uint32_t **cpus, size_t *n)
{
    uint32_t *online;
    size_t nr_online, k = 0;
    int r = hvi_online_cpus(&online, &nr_online);
    if (r < 0)
        return r;
    for (size_t i = 0; i < nr_online; i++)
        if (online[i] < bm->size && numa_bitmask_isbitset(bm, online[i]))
            online[k++] = online[i];
    *cpus = online;
    *n = k;
    return 0;
}

int hvi_host_node_cpus(uint32_t node, uint32_t **cpus, size_t *n)
{
    if (!have_numa())
        return hvi_online_cpus(cpus, n);
    int bits = numa_num_possible_cpus();
    size_t words = ((size_t)(bits > 0 ? bits : 1) + 63) / 64;
    struct bitmask bm = {words * 64, calloc(words, sizeof(unsigned long))};
    if (!bm.maskp)
        return hvi_error(-ENOMEM, "out of memory reading node %" PRIu32, node);
    int r = 0;
    if (numa_node_to_cpus((int)node, &bm) < 0)
        r = hvi_error(-EIO,
                      "cannot read the CPUs of NUMA node %" PRIu32
                      " from /sys/devices/system/node",
                      node);
    else
        r = mask_to_online(&bm, cpus, n);
    free(bm.maskp);
    return r;
}

/* A kernel without NUMA: one node with every online CPU and all memory. */
static int flat_host(hvc_topology *t)
{
    uint32_t *cpus;
    size_t n;
    int r = hvi_online_cpus(&cpus, &n);
    if (r < 0)
        return r;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t total = (uint64_t)sysconf(_SC_PHYS_PAGES) * page;
    uint64_t avail = (uint64_t)sysconf(_SC_AVPHYS_PAGES) * page;
    r = hvc_topology_add_node(t, 0, cpus, n, total,
                              avail < total ? avail : total);
    free(cpus);
    return r;
}

int hvi_host_nodes(hvc_topology *t)
{
    if (!have_numa())
        return flat_host(t);
    int max = numa_max_node();
    for (int node = 0; node <= max; node++) {
        if (!numa_bitmask_isbitset(numa_nodes_ptr, (unsigned)node))
            continue;
        uint32_t *cpus;
        size_t n;
        int r = hvi_host_node_cpus((uint32_t)node, &cpus, &n);
        if (r < 0)
            return r;
        long long avail = 0;
        long long total = numa_node_size64(node, &avail);
        if (total < 0) {
            free(cpus);
            return hvi_error(-EIO,
                             "cannot read /sys/devices/system/node/node%d/"
                             "meminfo",
                             node);
        }
        if (avail < 0 || avail > total)
            avail = total < 0 ? 0 : total;
        r = hvc_topology_add_node(t, (uint32_t)node, cpus, n, (uint64_t)total,
                                  (uint64_t)avail);
        free(cpus);
        if (r < 0)
            return r;
    }
    /* The firmware's SLIT as the kernel read it; 0 means it gave none for
     * the pair, and the description's default stays. */
    for (size_t i = 0; i < t->nr_nodes; i++)
        for (size_t j = 0; j < t->nr_nodes; j++) {
            int d = numa_distance((int)t->nodes[i].id, (int)t->nodes[j].id);
            int valid = i == j ? d == HVC_NUMA_DISTANCE_LOCAL
                               : d > HVC_NUMA_DISTANCE_LOCAL && d <= 255;
            if (valid)
                t->distance[i * t->nr_nodes + j] = (uint32_t)d;
        }
    return 0;
}

int hvc_topology_host(hvc_topology **out)
{
    if (!out)
        return hvi_error(-EINVAL, "hvc_topology_host: NULL argument");
    hvc_topology *t;
    int r = hvc_topology_create(&t);
    if (r < 0)
        return r;
    if ((r = hvi_host_nodes(t)) < 0 || (r = hvi_host_pci(t)) < 0) {
        hvc_topology_destroy(t);
        return r;
    }
    *out = t;
    return 0;
}
