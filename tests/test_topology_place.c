/* Placement over topologies built by hand (two and four nodes, sparse
 * ids, CPU-less nodes, asymmetric distances), and the builder's checks: a
 * pure function, so no NUMA host and no KVM are needed. */
#include "hvtest.h"

#include <errno.h>
#include <string.h>

/* Node n with cpus_per_node CPUs numbered on from n * cpus_per_node, or
 * none; memory in GiB. */
static void add_node(hvc_topology *t, uint32_t n, uint32_t nr_cpus,
                     uint64_t total_gib, uint64_t free_gib)
{
    uint32_t cpus[64];
    for (uint32_t i = 0; i < nr_cpus; i++)
        cpus[i] = n * 8 + i;
    HVT_OK(hvc_topology_add_node(t, n, nr_cpus ? cpus : NULL, nr_cpus,
                                 total_gib << 30, free_gib << 30));
}

static void add_dev(hvc_topology *t, uint8_t bus, int32_t node)
{
    hvc_pci_device d = HVC_PCI_DEVICE_INIT;
    d.bus = bus;
    d.vendor_id = 0x8086;
    d.device_id = 0x1592; /* an E810 NIC */
    d.class_code = 0x020000;
    d.numa_node = node;
    d.vendor_name = "Intel Corporation";
    HVT_OK(hvc_topology_add_pci(t, &d));
}

static hvc_placement place(hvc_topology *t, const char *addr, uint32_t *cpus,
                           size_t *n)
{
    hvc_placement p = HVC_PLACEMENT_INIT;
    HVT_OK(hvc_topology_place(t, addr, &p, cpus, 64, n));
    return p;
}

Test(topology, placement_two_nodes)
{
    hvc_topology *t;
    HVT_OK(hvc_topology_create(&t));
    add_node(t, 1, 4, 64, 60); /* added out of order on purpose */
    add_node(t, 0, 4, 64, 10);
    HVT_OK(hvc_topology_set_distance(t, 0, 1, 21));
    HVT_OK(hvc_topology_set_distance(t, 1, 0, 21));
    add_dev(t, 0x18, 0);
    add_dev(t, 0xaf, 1);
    uint32_t ids[4], cpus[64];
    size_t n;
    HVT_OK(hvc_topology_list_nodes(t, ids, 4, &n));
    cr_assert_eq(n, 2);
    cr_assert(ids[0] == 0 && ids[1] == 1, "ascending ids");

    /* a NIC on each socket: the VM goes beside it, even on the node with
     * less free memory */
    hvc_placement p = place(t, "0000:18:00.0", cpus, &n);
    cr_assert_eq(p.node, 0);
    cr_assert_eq(p.flags, 0);
    cr_assert_eq(p.device_node, 0);
    cr_assert_eq(p.distance, 10);
    cr_assert_eq(n, 4);
    cr_assert(cpus[0] == 0 && cpus[3] == 3);
    p = place(t, "af:00.0", cpus, &n);
    cr_assert_eq(p.node, 1);
    cr_assert(n == 4 && cpus[0] == 8 && cpus[3] == 11, "node 1's CPUs");

    /* a device with no node: the node with the most free memory */
    add_dev(t, 0x3b, -1);
    p = place(t, "0000:3b:00.0", cpus, &n);
    cr_assert_eq(p.node, 1);
    cr_assert_eq(p.flags, HVC_PLACEMENT_NO_AFFINITY);
    cr_assert_eq(p.device_node, -1);
    cr_assert_eq(p.distance, 0);

    /* the CPU list is cut at the capacity, the count is whole; no list */
    uint32_t one;
    hvc_placement q = HVC_PLACEMENT_INIT;
    HVT_OK(hvc_topology_place(t, "0000:18:00.0", &q, &one, 1, &n));
    cr_assert(one == 0 && n == 4);
    HVT_OK(hvc_topology_place(t, "0000:18:00.0", &q, NULL, 0, NULL));
    cr_assert_eq(q.node, 0);

    HVT_ERR(hvc_topology_place(t, "0000:19:00.0", &q, NULL, 0, NULL), -ENOENT);
    cr_assert(strstr(hvc_last_error(), "0000:19:00.0"), "%s", hvc_last_error());
    HVT_ERR(hvc_topology_place(t, "eth0", &q, NULL, 0, NULL), -EINVAL);
    q.size = 4;
    HVT_ERR(hvc_topology_place(t, "0000:18:00.0", &q, NULL, 0, NULL), -EINVAL);
    HVT_ERR(hvc_topology_place(NULL, "0000:18:00.0", &q, NULL, 0, NULL),
            -EINVAL);
    HVT_OK(hvc_topology_destroy(t));
}

/* Two sockets split in two (sub-NUMA clustering), one half of socket 1
 * without CPUs (memory and I/O only), sparse ids, asymmetric distances. */
Test(topology, placement_four_nodes)
{
    static const uint32_t ids[4] = {0, 1, 2, 4};
    static const uint32_t dist[4][4] = {
        {10, 12, 21, 21}, {12, 10, 21, 23}, {21, 21, 10, 12}, {22, 21, 12, 10}};
    hvc_topology *t;
    HVT_OK(hvc_topology_create(&t));
    add_node(t, 0, 4, 32, 30);
    add_node(t, 1, 4, 32, 30);
    add_node(t, 2, 0, 32, 30); /* no CPUs */
    add_node(t, 4, 4, 32, 8);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            if (i != j)
                HVT_OK(
                    hvc_topology_set_distance(t, ids[i], ids[j], dist[i][j]));
    add_dev(t, 0x17, 1);
    add_dev(t, 0x5d, 2); /* behind the CPU-less node */
    add_dev(t, 0x85, 4);
    uint32_t cpus[64];
    size_t n;

    hvc_placement p = place(t, "0000:17:00.0", cpus, &n);
    cr_assert(p.node == 1 && p.flags == 0 && cpus[0] == 8);

    /* node 2 has no CPUs: its nearest with CPUs is node 4 (12), though
     * node 4 has less free memory than 0 and 1 (21 away) */
    p = place(t, "0000:5d:00.0", cpus, &n);
    cr_assert_eq(p.node, 4);
    cr_assert_eq(p.flags, HVC_PLACEMENT_NEAREST);
    cr_assert_eq(p.device_node, 2);
    cr_assert_eq(p.distance, 12);
    cr_assert(n == 4 && cpus[0] == 32 && cpus[3] == 35);

    /* equally near (node 0 and node 1 at 21 after a change): more free
     * memory wins, then the lower id */
    HVT_OK(hvc_topology_set_distance(t, 2, 4, 21));
    p = place(t, "0000:5d:00.0", cpus, &n);
    cr_assert_eq(p.node, 0, "tie on distance and memory: lower id");
    cr_assert_eq(p.distance, 21);
    hvc_topology *u;
    HVT_OK(hvc_topology_create(&u));
    add_node(u, 0, 2, 32, 5);
    add_node(u, 1, 2, 32, 25);
    add_node(u, 2, 0, 32, 30);
    add_dev(u, 0x5d, 2);
    p = place(u, "5d:00.0", cpus, &n);
    cr_assert_eq(p.node, 1, "tie on distance: more free memory");
    cr_assert_eq(p.distance, 20, "the default remote distance");
    HVT_OK(hvc_topology_destroy(u));

    /* the distance is read from the device's node, not towards it */
    uint32_t d;
    HVT_OK(hvc_topology_distance(t, 4, 0, &d));
    cr_assert_eq(d, 22);
    HVT_OK(hvc_topology_distance(t, 0, 4, &d));
    cr_assert_eq(d, 21);

    /* no node with CPUs: nothing to place on */
    HVT_OK(hvc_topology_create(&u));
    add_node(u, 3, 0, 16, 16);
    add_dev(u, 1, 3);
    hvc_placement q = HVC_PLACEMENT_INIT;
    HVT_ERR(hvc_topology_place(u, "01:00.0", &q, NULL, 0, NULL), -ENODEV);
    HVT_OK(hvc_topology_destroy(u));
    HVT_OK(hvc_topology_destroy(t));
}

Test(topology, building_rejects_bad_descriptions)
{
    hvc_topology *t;
    HVT_OK(hvc_topology_create(&t));
    uint32_t cpus[] = {3, 1, 2};
    HVT_OK(hvc_topology_add_node(t, 0, cpus, 3, 1 << 30, 1 << 29));
    uint32_t back[3];
    size_t n;
    HVT_OK(hvc_topology_node_cpus(t, 0, back, 3, &n));
    cr_assert(n == 3 && back[0] == 1 && back[2] == 3, "sorted");
    HVT_ERR(hvc_topology_add_node(t, 0, NULL, 0, 0, 0), -EEXIST);
    uint32_t clash[] = {4, 2};
    HVT_ERR(hvc_topology_add_node(t, 1, clash, 2, 0, 0), -EEXIST);
    cr_assert(strstr(hvc_last_error(), "CPU 2"), "%s", hvc_last_error());
    uint32_t twice[] = {5, 5};
    HVT_ERR(hvc_topology_add_node(t, 1, twice, 2, 0, 0), -EINVAL);
    HVT_ERR(hvc_topology_add_node(t, 1, NULL, 0, 1, 2), -EINVAL);
    HVT_ERR(hvc_topology_add_node(t, 1u << 31, NULL, 0, 0, 0), -EINVAL);
    HVT_ERR(hvc_topology_add_node(t, 1, NULL, 2, 0, 0), -EINVAL);
    HVT_OK(hvc_topology_add_node(t, 1, NULL, 0, 0, 0));
    HVT_ERR(hvc_topology_set_distance(t, 0, 1, 10), -EINVAL);
    HVT_ERR(hvc_topology_set_distance(t, 0, 1, 256), -EINVAL);
    HVT_ERR(hvc_topology_set_distance(t, 1, 1, 20), -EINVAL);
    HVT_ERR(hvc_topology_set_distance(t, 0, 9, 20), -ENOENT);
    cr_assert(strstr(hvc_last_error(), "node 9"), "%s", hvc_last_error());
    uint32_t d;
    HVT_OK(hvc_topology_distance(t, 1, 0, &d));
    cr_assert_eq(d, HVC_NUMA_DISTANCE_REMOTE);

    hvc_pci_device dev = HVC_PCI_DEVICE_INIT;
    dev.bus = 0x3b;
    dev.numa_node = 6;
    HVT_ERR(hvc_topology_add_pci(t, &dev), -ENOENT);
    cr_assert(strstr(hvc_last_error(), "node 6"), "%s", hvc_last_error());
    dev.numa_node = 1;
    dev.device_name = "copied";
    HVT_OK(hvc_topology_add_pci(t, &dev));
    HVT_ERR(hvc_topology_add_pci(t, &dev), -EEXIST);
    dev.device = 32;
    HVT_ERR(hvc_topology_add_pci(t, &dev), -EINVAL);
    dev.device = 0;
    dev.size = 12;
    HVT_ERR(hvc_topology_add_pci(t, &dev), -EINVAL);
    hvc_pci_device got = HVC_PCI_DEVICE_INIT;
    HVT_OK(hvc_topology_pci_device(t, 0, &got));
    cr_assert_str_eq(got.device_name, "copied");
    cr_assert_neq(got.device_name, dev.device_name, "the topology's copy");
    cr_assert_null(got.vendor_name);

    /* addresses as lspci and /sys write them, and what is not one */
    size_t i;
    HVT_OK(hvc_topology_find_pci(t, "0000:3b:00.0", &i));
    HVT_OK(hvc_topology_find_pci(t, "3B:00.0", &i));
    HVT_ERR(hvc_topology_find_pci(t, "0001:3b:00.0", &i), -ENOENT);
    static const char *const bad[] = {"",         "3b:00",       "3b:20.0",
                                      "3b:00.8",  " 3b:00.0",    "3b:00.0 ",
                                      "x3b:00.0", "0:0:3b:00.0", "100:00.0",
                                      "3b::00.0", "-1:00.0",     "3b:0x1.0"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++)
        HVT_ERR(hvc_topology_find_pci(t, bad[k], &i), -EINVAL);
    HVT_ERR(hvc_topology_list_nodes(t, NULL, 1, &n), -EINVAL);
    HVT_ERR(hvc_topology_node_memory(t, 5, NULL, NULL), -ENOENT);
    cr_assert_eq(hvc_topology_pci_count(NULL), 0);
    HVT_ERR(hvc_topology_destroy(NULL), -EINVAL);
    HVT_ERR(hvc_topology_create(NULL), -EINVAL);
    HVT_ERR(hvc_topology_host(NULL), -EINVAL);
    HVT_OK(hvc_topology_destroy(t));
}
