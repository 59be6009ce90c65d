/* vCPU thread affinity: pinning the calling thread to CPUs or a node. */
#define _GNU_SOURCE
#include "topo.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>

/* Offline CPUs are refused by name rather than left to the kernel, which
 * would silently pin to the online rest of the set. */
static int check_online(const uint32_t *cpus, size_t count)
{
    uint32_t *online;
    size_t n;
    int r = hvi_online_cpus(&online, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < count && r == 0; i++)
        if (!hvi_cpu_in(online, n, cpus[i]))
            r = hvi_error(-EINVAL,
                          "cannot pin a thread to CPU %" PRIu32
                          ": it is not online",
                          cpus[i]);
    free(online);
    return r;
}

int hvc_thread_pin_cpus(const uint32_t *cpus, size_t count)
{
    if (!cpus || !count)
        return hvi_error(-EINVAL, "hvc_thread_pin_cpus: %s",
                         cpus ? "empty CPU set" : "NULL CPU set");
    int r = check_online(cpus, count);
    if (r < 0)
        return r;
    uint32_t top = 0;
    for (size_t i = 0; i < count; i++)
        top = cpus[i] > top ? cpus[i] : top;
    cpu_set_t *set = CPU_ALLOC((int)top + 1);
    if (!set)
        return hvi_error(-ENOMEM, "out of memory pinning a thread");
    size_t size = CPU_ALLOC_SIZE((int)top + 1);
    CPU_ZERO_S(size, set);
    for (size_t i = 0; i < count; i++)
        CPU_SET_S(cpus[i], size, set);
    if (sched_setaffinity(0, size, set) < 0) {
        int e = -errno;
        r = e == -EINVAL
                ? hvi_error(e,
                            "cannot pin a thread to CPUs %" PRIu32
                            "...: none of them is allowed to "
                            "this process (its cpuset)",
                            cpus[0])
                : hvi_error(e, "sched_setaffinity: %s", hvc_strerror(e));
    }
    CPU_FREE(set);
    return r;
}

int hvc_thread_pin_node(uint32_t node)
{
    int r = hvi_host_node_exists(node, "pinning a thread");
    if (r < 0)
        return r;
    uint32_t *cpus;
    size_t n;
    if ((r = hvi_host_node_cpus(node, &cpus, &n)) < 0)
        return r;
    if (n == 0)
        r = hvi_error(-EINVAL,
                      "cannot pin a thread to NUMA node %" PRIu32
                      ": it has no online CPUs",
                      node);
    else
        r = hvc_thread_pin_cpus(cpus, n);
    free(cpus);
    return r;
}
