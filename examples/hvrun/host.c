/* hvrun --list-host: the host's NUMA nodes and PCI devices, as a table for
 * people or JSON for scripts; and the check behind --numa-node. */
#include "hvrun.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define MIB ((uint64_t)1 << 20)

struct host {
    hvc_topology *topo;
    uint32_t *nodes;
    size_t nr_nodes;
};

static int open_host(struct host *h)
{
    if (hvc_topology_host(&h->topo) < 0 ||
        hvc_topology_list_nodes(h->topo, NULL, 0, &h->nr_nodes) < 0)
        return -1;
    h->nodes = calloc(h->nr_nodes ? h->nr_nodes : 1, sizeof(*h->nodes));
    if (!h->nodes)
        return -1;
    return hvc_topology_list_nodes(h->topo, h->nodes, h->nr_nodes,
                                   &h->nr_nodes);
}

static void close_host(struct host *h)
{
    free(h->nodes);
    if (h->topo)
        hvc_topology_destroy(h->topo);
}

/* A node's CPUs, malloc'ed; NULL on failure. */
static uint32_t *node_cpus(const struct host *h, uint32_t node, size_t *n)
{
    if (hvc_topology_node_cpus(h->topo, node, NULL, 0, n) < 0)
        return NULL;
    uint32_t *cpus = calloc(*n ? *n : 1, sizeof(*cpus));
    if (cpus && hvc_topology_node_cpus(h->topo, node, cpus, *n, n) < 0) {
        free(cpus);
        return NULL;
    }
    return cpus;
}

void hvrun_check_numa_node(uint32_t node)
{
    struct host h = {0};
    if (open_host(&h) < 0) {
        fprintf(stderr,
                "hvrun: --numa-node: cannot read the host's "
                "topology: %s\n",
                hvrun_esc(hvc_last_error()));
        exit(HVRUN_EXIT_USAGE);
    }
    size_t n = 0;
    uint32_t *cpus = node_cpus(&h, node, &n);
    if (!cpus || n == 0) {
        fprintf(stderr, "hvrun: --numa-node: node %" PRIu32 " %s (nodes:", node,
                cpus ? "has no CPUs" : "does not exist on this host");
        for (size_t i = 0; i < h.nr_nodes; i++)
            fprintf(stderr, " %" PRIu32, h.nodes[i]);
        fprintf(stderr, ") (try --list-host)\n");
        exit(HVRUN_EXIT_USAGE);
    }
    free(cpus);
    close_host(&h);
}

/* "0-3,8,10-11", as the kernel writes CPU lists. */
static void print_cpulist(const uint32_t *cpus, size_t n)
{
    if (n == 0)
        fputs("-", stdout);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && cpus[j + 1] == cpus[j] + 1)
            j++;
        printf(i ? ",%" PRIu32 : "%" PRIu32, cpus[i]);
        if (j > i)
            printf("-%" PRIu32, cpus[j]);
        i = j + 1;
    }
}

static void print_table(const struct host *h)
{
    printf("%-4s %5s %10s %10s  %s\n", "NODE", "CPUS", "MEM MiB", "FREE MiB",
           "CPU LIST");
    for (size_t i = 0; i < h->nr_nodes; i++) {
        size_t n = 0;
        uint64_t total = 0, avail = 0;
        uint32_t *cpus = node_cpus(h, h->nodes[i], &n);
        hvc_topology_node_memory(h->topo, h->nodes[i], &total, &avail);
        printf("%-4" PRIu32 " %5zu %10" PRIu64 " %10" PRIu64 "  ", h->nodes[i],
               n, total / MIB, avail / MIB);
        print_cpulist(cpus, cpus ? n : 0);
        putchar('\n');
        free(cpus);
    }
    printf("\nDISTANCES");
    for (size_t j = 0; j < h->nr_nodes; j++)
        printf(" %4" PRIu32, h->nodes[j]);
    for (size_t i = 0; i < h->nr_nodes; i++) {
        printf("\n%-9" PRIu32, h->nodes[i]);
        for (size_t j = 0; j < h->nr_nodes; j++) {
            uint32_t d = 0;
            hvc_topology_distance(h->topo, h->nodes[i], h->nodes[j], &d);
            printf(" %4" PRIu32, d);
        }
    }
    size_t count = hvc_topology_pci_count(h->topo);
    printf("\n\n%-12s %-9s %-6s %-4s %s\n", "PCI ADDRESS", "IDS", "CLASS",
           "NODE", "DESCRIPTION");
    for (size_t i = 0; i < count; i++) {
        hvc_pci_device d = HVC_PCI_DEVICE_INIT;
        if (hvc_topology_pci_device(h->topo, i, &d) < 0)
            continue;
        char node[16] = "-";
        if (d.numa_node >= 0)
            snprintf(node, sizeof(node), "%" PRId32, d.numa_node);
        printf("%04" PRIx32 ":%02x:%02x.%x %04x:%04x %06" PRIx32 " %-4s ",
               d.domain, d.bus, d.device, d.function, d.vendor_id, d.device_id,
               d.class_code, node);
        if (d.class_name)
            printf("%s: ", d.class_name);
        else
            printf("Class %04" PRIx32 ": ", d.class_code >> 8);
        if (d.vendor_name)
            printf("%s ", d.vendor_name);
        else
            printf("Vendor %04x ", d.vendor_id);
        if (d.device_name)
            printf("%s\n", d.device_name);
        else
            printf("Device %04x\n", d.device_id);
    }
}

/* A JSON string, or null for NULL. */
static void json_string(const char *s)
{
    if (!s) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(const struct host *h)
{
    printf("{\n  \"nodes\": [");
    for (size_t i = 0; i < h->nr_nodes; i++) {
        size_t n = 0;
        uint64_t total = 0, avail = 0;
        uint32_t *cpus = node_cpus(h, h->nodes[i], &n);
        hvc_topology_node_memory(h->topo, h->nodes[i], &total, &avail);
        printf("%s\n    {\"id\": %" PRIu32 ", \"cpus\": [", i ? "," : "",
               h->nodes[i]);
        for (size_t k = 0; cpus && k < n; k++)
            printf(k ? ", %" PRIu32 : "%" PRIu32, cpus[k]);
        printf("], \"memory_bytes\": %" PRIu64 ", \"free_bytes\": %" PRIu64
               ", \"distances\": {",
               total, avail);
        for (size_t j = 0; j < h->nr_nodes; j++) {
            uint32_t d = 0;
            hvc_topology_distance(h->topo, h->nodes[i], h->nodes[j], &d);
            printf("%s\"%" PRIu32 "\": %" PRIu32, j ? ", " : "", h->nodes[j],
                   d);
        }
        printf("}}");
        free(cpus);
    }
    printf("\n  ],\n  \"pci_devices\": [");
    size_t count = hvc_topology_pci_count(h->topo);
    for (size_t i = 0; i < count; i++) {
        hvc_pci_device d = HVC_PCI_DEVICE_INIT;
        if (hvc_topology_pci_device(h->topo, i, &d) < 0)
            continue;
        printf("%s\n    {\"address\": \"%04" PRIx32 ":%02x:%02x.%x\", "
               "\"vendor_id\": \"%04x\", \"device_id\": \"%04x\", "
               "\"class\": \"%06" PRIx32 "\", \"numa_node\": ",
               i ? "," : "", d.domain, d.bus, d.device, d.function, d.vendor_id,
               d.device_id, d.class_code);
        if (d.numa_node >= 0)
            printf("%" PRId32, d.numa_node);
        else
            fputs("null", stdout);
        fputs(", \"vendor\": ", stdout);
        json_string(d.vendor_name);
        fputs(", \"device\": ", stdout);
        json_string(d.device_name);
        fputs(", \"class_name\": ", stdout);
        json_string(d.class_name);
        putchar('}');
    }
    printf("\n  ]\n}\n");
}

int hvrun_list_host(bool json)
{
    struct host h = {0};
    if (open_host(&h) < 0) {
        fprintf(stderr, "hvrun: cannot read the host's topology: %s\n",
                hvrun_esc(hvc_last_error()));
        close_host(&h);
        return HVRUN_EXIT_INTERNAL;
    }
    if (json)
        print_json(&h);
    else
        print_table(&h);
    close_host(&h);
    return fflush(stdout) == 0 ? 0 : HVRUN_EXIT_INTERNAL;
}
