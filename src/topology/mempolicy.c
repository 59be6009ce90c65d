/* NUMA policy of a host memory range (mbind), for memory regions. */
#define _GNU_SOURCE
#include "topo.h"

#include "../core/memory_host.h"

#include <errno.h>
#include <inttypes.h>
#include <numa.h>
#include <numaif.h>
#include <stdlib.h>

#include "../os/lazy.h"

/* libnuma is loaded for the first region with a NUMA policy (src/os/lazy.h). */
#define NUMA_SYMS(X)                                                           \
    X(numa_available)                                                          \
    X(numa_max_node)                                                           \
    X(mbind)
HVI_LAZY_TABLE(numa, HVCORE_SONAME_NUMA, NUMA_SYMS)
#define numa_available HVI_LAZY_USE(numa, numa_available)
#define numa_max_node HVI_LAZY_USE(numa, numa_max_node)
#define mbind HVI_LAZY_USE(numa, mbind)

static int policy_check(const uint32_t *nodes, uint32_t n, const char *what)
{
    for (uint32_t i = 0; i < n; i++) {
        int r = hvi_host_node_exists(nodes[i], what);
        if (r < 0)
            return r;
    }
    return 0;
}

static int policy_bind(void *addr, uint64_t len, uint32_t policy,
                       const uint32_t *nodes, uint32_t n, bool move,
                       const char *what)
{
    int r = 0;
    if (policy == HVC_NUMA_DEFAULT)
        return 0;
    if ((r = hvi_lazy_numa()) < 0)
        return r;
    /* Without the policy system calls (a kernel without NUMA, or a seccomp
     * filter), a host with node 0 only still has every page where asked. */
    if (numa_available() < 0) {
        if (numa_max_node() == 0)
            return 0;
        return hvi_error(-ENOTSUP,
                         "%s: the kernel refuses NUMA policies here (a "
                         "seccomp filter? containers need CAP_SYS_NICE)",
                         what);
    }
    static const int modes[] = {
        [HVC_NUMA_BIND] = MPOL_BIND,
        [HVC_NUMA_PREFERRED] = MPOL_PREFERRED,
        [HVC_NUMA_INTERLEAVE] = MPOL_INTERLEAVE,
    };
    uint32_t top = 0;
    for (uint32_t i = 0; i < n; i++)
        top = nodes[i] > top ? nodes[i] : top;
    /* The kernel reads maxnode - 1 bits (as libnuma passes them), so one
     * more than the highest node. */
    unsigned long maxnode = (unsigned long)top + 2;
    size_t bits = 8 * sizeof(unsigned long);
    unsigned long *mask = calloc((maxnode + bits - 1) / bits, sizeof(*mask));
    if (!mask)
        return hvi_error(-ENOMEM, "%s: out of memory", what);
    for (uint32_t i = 0; i < n; i++)
        mask[nodes[i] / bits] |= 1ul << (nodes[i] % bits);
    /* Caller memory may have pages already: move them where the kernel
     * can. Library memory is untouched, so nothing is there to move. */
    if (mbind(addr, len, modes[policy], mask, maxnode,
              move ? MPOL_MF_MOVE : 0) < 0) {
        int e = -errno;
        r = hvi_error(e, "%s: setting its NUMA policy (mbind): %s", what,
                      hvc_strerror(e));
    }
    free(mask);
    return r;
}

const struct hvi_numa_hooks hvi_topology_numa = {policy_check, policy_bind};
