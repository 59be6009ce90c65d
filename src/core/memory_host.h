/* The host memory behind a guest memory region (memory_host.c), and the
 * the hook through which topology/mempolicy.c places its pages. */
#ifndef HVCORE_MEMORY_HOST_H
#define HVCORE_MEMORY_HOST_H

#include "internal.h"

/* Checks the host-memory options of a region: flags that go together, a
 * well-formed NUMA policy. The nodes are checked against the host later. */
int hvi_memory_host_check(const hvc_memory_options *o);

/* Allocates the region's memory unless the caller gave it, then sets its
 * NUMA policy and advice and prefaults it, in that order, so that no page
 * is touched before the policy is in place. On failure nothing is left
 * allocated. */
int hvi_memory_host_setup(hvc_memory_region *r, const hvc_memory_options *o);

/* Frees what hvi_memory_host_setup() allocated. */
void hvi_memory_host_release(hvc_memory_region *r);

/* NUMA placement of a region's pages, provided by src/topology (libnuma)
 * and wired in by the registry (registry.c), so the core never calls
 * topology. NULL in a build without it. */
struct hvi_numa_hooks {
    /* Fails, naming it, for a node the host does not have. */
    int (*check)(const uint32_t *nodes, uint32_t n, const char *what);
    /* Applies an ::hvc_numa_policy to [addr, addr+len) on nodes that
     * check() accepted; move: also move the pages already there. */
    int (*bind)(void *addr, uint64_t len, uint32_t policy,
                const uint32_t *nodes, uint32_t n, bool move, const char *what);
};
extern const struct hvi_numa_hooks *const hvi_numa;

#endif
