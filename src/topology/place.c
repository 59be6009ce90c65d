/* Placement: where a VM that uses a given PCI device should run. A pure
 * function of the description, so that it can be planned for (and tested
 * on) topologies other than the host's. */
#include "topo.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* Is node a a better choice than node b (an index, or SIZE_MAX for none)?
 * By distance from the device's node when it is known (from != SIZE_MAX),
 * then by free memory, then by the lower id, so that the answer never
 * depends on anything but the description. */
static int better(const hvc_topology *t, size_t from, size_t a, size_t b)
{
    if (b == SIZE_MAX)
        return 1;
    if (from != SIZE_MAX) {
        uint32_t da = hvi_topo_distance(t, from, a);
        uint32_t db = hvi_topo_distance(t, from, b);
        if (da != db)
            return da < db;
    }
    const struct hvi_node *x = &t->nodes[a], *y = &t->nodes[b];
    if (x->mem_free != y->mem_free)
        return x->mem_free > y->mem_free;
    return x->id < y->id;
}

int hvc_topology_place(const hvc_topology *t, const char *address,
                       hvc_placement *out, uint32_t *cpus, size_t capacity,
                       size_t *count)
{
    if (!t || !address || !out || (capacity && (!cpus || !count)))
        return hvi_error(-EINVAL, "hvc_topology_place: NULL argument");
    size_t dev;
    int r = hvc_topology_find_pci(t, address, &dev);
    if (r < 0)
        return r;
    const hvc_pci_device *d = &t->pci[dev];

    /* A device the host puts on a node this description lacks is treated
     * as one without a node: there is no distance to go by. */
    size_t from = SIZE_MAX;
    if (d->numa_node >= 0)
        hvi_topo_node(t, (uint32_t)d->numa_node, &from);
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < t->nr_nodes; i++)
        if (t->nodes[i].nr_cpus && better(t, from, i, best))
            best = i;
    if (best == SIZE_MAX)
        return hvi_error(-ENODEV,
                         "placing a VM by PCI device %s: no node of the "
                         "topology has CPUs",
                         address);

    hvc_placement p = HVC_PLACEMENT_INIT;
    p.node = t->nodes[best].id;
    p.device_node = d->numa_node;
    if (from == SIZE_MAX) {
        p.flags = HVC_PLACEMENT_NO_AFFINITY;
    } else {
        p.distance = hvi_topo_distance(t, from, best);
        if (best != from)
            p.flags = HVC_PLACEMENT_NEAREST;
    }
    if ((r = hvi_copy_out(out, &p, sizeof(p), "hvc_placement")) < 0)
        return r;
    const struct hvi_node *n = &t->nodes[best];
    if (capacity)
        memcpy(cpus, n->cpus,
               (n->nr_cpus < capacity ? n->nr_cpus : capacity) * sizeof(*cpus));
    if (count)
        *count = n->nr_cpus;
    return 0;
}
