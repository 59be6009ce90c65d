/* The topology description: building it and reading it back. */
#define _GNU_SOURCE
#include "topo.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int hvc_topology_create(hvc_topology **out)
{
    if (!out)
        return hvi_error(-EINVAL, "hvc_topology_create: NULL argument");
    hvc_topology *t = calloc(1, sizeof(*t));
    if (!t)
        return hvi_error(-ENOMEM, "out of memory creating a topology");
    *out = t;
    return 0;
}

int hvc_topology_destroy(hvc_topology *t)
{
    if (!t)
        return hvi_error(-EINVAL, "hvc_topology_destroy: NULL topology");
    for (size_t i = 0; i < t->nr_nodes; i++)
        free(t->nodes[i].cpus);
    for (size_t i = 0; i < t->nr_pci; i++) {
        free((char *)t->pci[i].vendor_name);
        free((char *)t->pci[i].device_name);
        free((char *)t->pci[i].class_name);
    }
    free(t->nodes);
    free(t->distance);
    free(t->pci);
    free(t);
    return 0;
}

/* Index of the first node whose id is >= id. */
static size_t node_pos(const hvc_topology *t, uint32_t id)
{
    size_t lo = 0, hi = t->nr_nodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->nodes[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct hvi_node *hvi_topo_node(const hvc_topology *t, uint32_t id,
                                     size_t *index)
{
    size_t i = node_pos(t, id);
    if (i == t->nr_nodes || t->nodes[i].id != id)
        return NULL;
    if (index)
        *index = i;
    return &t->nodes[i];
}

uint32_t hvi_topo_distance(const hvc_topology *t, size_t from, size_t to)
{
    return t->distance[from * t->nr_nodes + to];
}

/* Every CPU belongs to one node; the message names the first clash. */
static int check_cpus(const hvc_topology *t, uint32_t node, const uint32_t *v,
                      size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (v[i] == v[i - 1])
            return hvi_error(-EINVAL,
                             "node %" PRIu32 " lists CPU %" PRIu32 " twice",
                             node, v[i]);
    for (size_t k = 0; k < t->nr_nodes; k++)
        for (size_t i = 0; i < n; i++)
            if (hvi_cpu_in(t->nodes[k].cpus, t->nodes[k].nr_cpus, v[i]))
                return hvi_error(-EEXIST,
                                 "CPU %" PRIu32 " of node %" PRIu32
                                 " is already in node %" PRIu32,
                                 v[i], node, t->nodes[k].id);
    return 0;
}

/* Makes room for a node at position pos: the node array and the distance
 * matrix, whose new row and column get the defaults. */
static int insert_node(hvc_topology *t, size_t pos)
{
    size_t n = t->nr_nodes + 1;
    struct hvi_node *nodes = realloc(t->nodes, n * sizeof(*nodes));
    if (!nodes)
        return -ENOMEM;
    t->nodes = nodes;
    uint32_t *d = malloc(n * n * sizeof(*d));
    if (!d)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            uint32_t v =
                i == j ? HVC_NUMA_DISTANCE_LOCAL : HVC_NUMA_DISTANCE_REMOTE;
            if (i != pos && j != pos)
                v = hvi_topo_distance(t, i - (i > pos), j - (j > pos));
            d[i * n + j] = v;
        }
    free(t->distance);
    t->distance = d;
    memmove(&t->nodes[pos + 1], &t->nodes[pos],
            (t->nr_nodes - pos) * sizeof(*t->nodes));
    t->nr_nodes = n;
    return 0;
}

int hvc_topology_add_node(hvc_topology *t, uint32_t node, const uint32_t *cpus,
                          size_t nr_cpus, uint64_t mem_total, uint64_t mem_free)
{
    if (!t || (nr_cpus && !cpus))
        return hvi_error(-EINVAL, "hvc_topology_add_node: NULL argument");
    if (node > INT32_MAX)
        return hvi_error(-EINVAL, "node id %" PRIu32 " is above %d", node,
                         INT32_MAX);
    if (mem_free > mem_total)
        return hvi_error(-EINVAL,
                         "node %" PRIu32 ": free memory 0x%" PRIx64
                         " exceeds its total 0x%" PRIx64,
                         node, mem_free, mem_total);
    if (hvi_topo_node(t, node, NULL))
        return hvi_error(-EEXIST, "node %" PRIu32 " is already there", node);
    uint32_t *v = NULL;
    if (nr_cpus) {
        if (nr_cpus > SIZE_MAX / sizeof(*v) ||
            !(v = malloc(nr_cpus * sizeof(*v))))
            return hvi_error(-ENOMEM, "out of memory adding node %" PRIu32,
                             node);
        memcpy(v, cpus, nr_cpus * sizeof(*v));
        qsort(v, nr_cpus, sizeof(*v), hvi_cmp_u32);
    }
    int r = check_cpus(t, node, v, nr_cpus);
    size_t pos = node_pos(t, node);
    if (r == 0 && insert_node(t, pos) < 0)
        r = hvi_error(-ENOMEM, "out of memory adding node %" PRIu32, node);
    if (r < 0) {
        free(v);
        return r;
    }
    t->nodes[pos] = (struct hvi_node){node, v, nr_cpus, mem_total, mem_free};
    return 0;
}

int hvc_topology_set_distance(hvc_topology *t, uint32_t from, uint32_t to,
                              uint32_t distance)
{
    if (!t)
        return hvi_error(-EINVAL, "hvc_topology_set_distance: NULL topology");
    size_t i, j;
    if (!hvi_topo_node(t, from, &i) || !hvi_topo_node(t, to, &j))
        return hvi_error(-ENOENT, "no node %" PRIu32 " in the topology",
                         hvi_topo_node(t, from, NULL) ? to : from);
    if (i == j ? distance != HVC_NUMA_DISTANCE_LOCAL
               : distance <= HVC_NUMA_DISTANCE_LOCAL || distance > 255)
        return hvi_error(-EINVAL,
                         "distance %" PRIu32 " from node %" PRIu32
                         " to node %" PRIu32 " is not %s",
                         distance, from, to, i == j ? "10" : "in 11..255");
    t->distance[i * t->nr_nodes + j] = distance;
    return 0;
}

static int cmp_pci(const hvc_pci_device *a, const hvc_pci_device *b)
{
    uint64_t x = (uint64_t)a->domain << 16 | (uint32_t)a->bus << 8 |
                 (uint32_t)a->device << 3 | a->function;
    uint64_t y = (uint64_t)b->domain << 16 | (uint32_t)b->bus << 8 |
                 (uint32_t)b->device << 3 | b->function;
    return (x > y) - (x < y);
}

static size_t pci_pos(const hvc_topology *t, const hvc_pci_device *d)
{
    size_t lo = 0, hi = t->nr_pci;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_pci(&t->pci[mid], d) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Copies the caller's names; on failure nothing is left allocated. */
static int dup_names(hvc_pci_device *d, const hvc_pci_device *src)
{
    d->vendor_name = src->vendor_name ? strdup(src->vendor_name) : NULL;
    d->device_name = src->device_name ? strdup(src->device_name) : NULL;
    d->class_name = src->class_name ? strdup(src->class_name) : NULL;
    if ((src->vendor_name && !d->vendor_name) ||
        (src->device_name && !d->device_name) ||
        (src->class_name && !d->class_name)) {
        free((char *)d->vendor_name);
        free((char *)d->device_name);
        free((char *)d->class_name);
        return -ENOMEM;
    }
    return 0;
}

int hvi_topo_add_pci(hvc_topology *t, const hvc_pci_device *dev)
{
    if (dev->device > 31 || dev->function > 7 || dev->numa_node < -1)
        return hvi_error(-EINVAL,
                         "PCI device %04" PRIx32 ":%02x:%02x.%x: device, "
                         "function or node %" PRId32 " out of range",
                         dev->domain, dev->bus, dev->device, dev->function,
                         dev->numa_node);
    size_t pos = pci_pos(t, dev);
    if (pos < t->nr_pci && cmp_pci(&t->pci[pos], dev) == 0)
        return hvi_error(-EEXIST,
                         "PCI device %04" PRIx32 ":%02x:%02x.%x is already "
                         "there",
                         dev->domain, dev->bus, dev->device, dev->function);
    hvc_pci_device d = *dev;
    d.size = sizeof(d);
    d.reserved = 0;
    hvc_pci_device *grown = realloc(t->pci, (t->nr_pci + 1) * sizeof(*grown));
    if (grown)
        t->pci = grown;
    if (!grown || dup_names(&d, dev) < 0)
        return hvi_error(-ENOMEM, "out of memory adding a PCI device");
    memmove(&t->pci[pos + 1], &t->pci[pos],
            (t->nr_pci - pos) * sizeof(*t->pci));
    t->pci[pos] = d;
    t->nr_pci++;
    return 0;
}

int hvc_topology_add_pci(hvc_topology *t, const hvc_pci_device *dev)
{
    if (!t || !dev)
        return hvi_error(-EINVAL, "hvc_topology_add_pci: NULL argument");
    hvc_pci_device d = HVC_PCI_DEVICE_INIT;
    int r = hvi_copy_options(&d, sizeof(d), dev, sizeof(d), "hvc_pci_device");
    if (r < 0)
        return r;
    if (d.numa_node >= 0 && !hvi_topo_node(t, (uint32_t)d.numa_node, NULL))
        return hvi_error(-ENOENT,
                         "PCI device %04" PRIx32 ":%02x:%02x.%x is on node "
                         "%" PRId32 ", which the topology does not have",
                         d.domain, d.bus, d.device, d.function, d.numa_node);
    return hvi_topo_add_pci(t, &d);
}

int hvc_topology_list_nodes(const hvc_topology *t, uint32_t *ids,
                            size_t capacity, size_t *count)
{
    if (!t || !count || (capacity && !ids))
        return hvi_error(-EINVAL, "hvc_topology_list_nodes: NULL argument");
    for (size_t i = 0; i < t->nr_nodes && i < capacity; i++)
        ids[i] = t->nodes[i].id;
    *count = t->nr_nodes;
    return 0;
}

static int no_node(uint32_t node)
{
    return hvi_error(-ENOENT, "no node %" PRIu32 " in the topology", node);
}

int hvc_topology_node_cpus(const hvc_topology *t, uint32_t node, uint32_t *cpus,
                           size_t capacity, size_t *count)
{
    if (!t || !count || (capacity && !cpus))
        return hvi_error(-EINVAL, "hvc_topology_node_cpus: NULL argument");
    const struct hvi_node *n = hvi_topo_node(t, node, NULL);
    if (!n)
        return no_node(node);
    size_t k = n->nr_cpus < capacity ? n->nr_cpus : capacity;
    if (k)
        memcpy(cpus, n->cpus, k * sizeof(*cpus));
    *count = n->nr_cpus;
    return 0;
}

int hvc_topology_node_memory(const hvc_topology *t, uint32_t node,
                             uint64_t *total, uint64_t *free_bytes)
{
    if (!t)
        return hvi_error(-EINVAL, "hvc_topology_node_memory: NULL topology");
    const struct hvi_node *n = hvi_topo_node(t, node, NULL);
    if (!n)
        return no_node(node);
    if (total)
        *total = n->mem_total;
    if (free_bytes)
        *free_bytes = n->mem_free;
    return 0;
}

int hvc_topology_distance(const hvc_topology *t, uint32_t from, uint32_t to,
                          uint32_t *distance)
{
    if (!t || !distance)
        return hvi_error(-EINVAL, "hvc_topology_distance: NULL argument");
    size_t i, j;
    if (!hvi_topo_node(t, from, &i))
        return no_node(from);
    if (!hvi_topo_node(t, to, &j))
        return no_node(to);
    *distance = hvi_topo_distance(t, i, j);
    return 0;
}

size_t hvc_topology_pci_count(const hvc_topology *t)
{
    return t ? t->nr_pci : 0;
}

int hvi_copy_out(void *dst, const void *src, size_t size, const char *what)
{
    uint32_t want;
    memcpy(&want, dst, sizeof(want));
    if (want != size)
        return hvi_error(-EINVAL,
                         "%s size %" PRIu32 " is not one this library knows "
                         "(%zu)",
                         what, want, size);
    memcpy(dst, src, size);
    return 0;
}

int hvc_topology_pci_device(const hvc_topology *t, size_t index,
                            hvc_pci_device *out)
{
    if (!t || !out)
        return hvi_error(-EINVAL, "hvc_topology_pci_device: NULL argument");
    if (index >= t->nr_pci)
        return hvi_error(-ENOENT, "PCI device index %zu is past the last (%zu)",
                         index, t->nr_pci);
    return hvi_copy_out(out, &t->pci[index], sizeof(*out), "hvc_pci_device");
}

/* Up to max_digits hex digits; returns how many were read, 0 for none or
 * too many. */
static int hex(const char **s, unsigned max_digits, uint32_t *out)
{
    uint32_t v = 0;
    unsigned n = 0;
    for (;; n++) {
        char c = (*s)[n];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        if (n == max_digits)
            return 0;
        v = v << 4 | (uint32_t)d;
    }
    *s += n;
    *out = v;
    return (int)n;
}

int hvi_parse_pci_address(const char *s, hvc_pci_device *d)
{
    /* "DDDD:BB:DD.F" or "BB:DD.F": a first field followed by two colons
     * is the domain. */
    const char *p = s;
    uint32_t a, b, fn, dom = 0;
    int ok = hex(&p, 8, &a) && *p++ == ':' && hex(&p, 2, &b);
    if (ok && *p == ':') {
        p++;
        dom = a;
        a = b;
        ok = hex(&p, 2, &b);
    }
    ok = ok && a <= 0xff && b <= 31 && *p++ == '.' && hex(&p, 1, &fn) &&
         fn <= 7 && !*p;
    if (!ok)
        return hvi_error(-EINVAL,
                         "'%.32s' is not a PCI address (DDDD:BB:DD.F or "
                         "BB:DD.F)",
                         s);
    d->domain = dom;
    d->bus = (uint8_t)a;
    d->device = (uint8_t)b;
    d->function = (uint8_t)fn;
    return 0;
}

int hvc_topology_find_pci(const hvc_topology *t, const char *address,
                          size_t *index)
{
    if (!t || !address || !index)
        return hvi_error(-EINVAL, "hvc_topology_find_pci: NULL argument");
    hvc_pci_device d = HVC_PCI_DEVICE_INIT;
    int r = hvi_parse_pci_address(address, &d);
    if (r < 0)
        return r;
    size_t pos = pci_pos(t, &d);
    if (pos == t->nr_pci || cmp_pci(&t->pci[pos], &d) != 0)
        return hvi_error(-ENOENT,
                         "no PCI device %04x:%02x:%02x.%x in the "
                         "topology",
                         d.domain, d.bus, d.device, d.function);
    *index = pos;
    return 0;
}
