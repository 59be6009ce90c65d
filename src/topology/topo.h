/* Topology internals: the description object shared by the builder, the
 * host probes (libnuma, libpci), placement and thread pinning. */
#ifndef HVCORE_TOPOLOGY_INTERNAL_H
#define HVCORE_TOPOLOGY_INTERNAL_H

#include "../core/internal.h"

#include <hvcore/topology.h>

struct hvi_node {
    uint32_t id;
    uint32_t *cpus; /* ascending, no duplicates */
    size_t nr_cpus;
    uint64_t mem_total;
    uint64_t mem_free;
};

struct hvc_topology {
    struct hvi_node *nodes; /* ascending id */
    size_t nr_nodes;
    /* nr_nodes x nr_nodes, row = index of the "from" node: kept by index
     * so that a lookup is one multiplication once the node is found. */
    uint32_t *distance;
    hvc_pci_device *pci; /* ascending address; the names are owned */
    size_t nr_pci;
};

/* topology.c */
const struct hvi_node *hvi_topo_node(const hvc_topology *t, uint32_t id,
                                     size_t *index);
uint32_t hvi_topo_distance(const hvc_topology *t, size_t from, size_t to);
/* Adds a device without checking that its node is in the description: the
 * host's word is taken as it is. */
int hvi_topo_add_pci(hvc_topology *t, const hvc_pci_device *dev);
/* Fills an out-struct whose caller set its uint32_t size first: rejects a
 * size this library does not know. */
int hvi_copy_out(void *dst, const void *src, size_t size, const char *what);
/* Parses "DDDD:BB:DD.F" or "BB:DD.F". */
int hvi_parse_pci_address(const char *s, hvc_pci_device *dev);

/* sysfs.c: small readers for /sys files. */
/* Parses a kernel CPU list ("0-3,8,10-11") into a sorted, malloc'ed
 * array. */
int hvi_parse_cpulist(const char *s, uint32_t **cpus, size_t *n);
/* The online CPUs (/sys/devices/system/cpu/online). */
int hvi_online_cpus(uint32_t **cpus, size_t *n);
/* qsort/bsearch order of uint32_t. */
int hvi_cmp_u32(const void *a, const void *b);
/* Non-zero when @cpu is in the sorted array. */
int hvi_cpu_in(const uint32_t *cpus, size_t n, uint32_t cpu);

/* host.c: the host's NUMA nodes through libnuma. */
int hvi_host_nodes(hvc_topology *t);
/* Checks that the host has @node; the message lists the nodes it has. */
int hvi_host_node_exists(uint32_t node, const char *what);
/* The online CPUs of a host node. */
int hvi_host_node_cpus(uint32_t node, uint32_t **cpus, size_t *n);

/* pci.c: the host's PCI devices through libpci. */
int hvi_host_pci(hvc_topology *t);

#endif
