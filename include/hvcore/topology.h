/**
 * @file hvcore/topology.h
 * @brief Host topology: NUMA nodes, PCI devices, placement, thread affinity.
 *
 * On a multi-socket host a guest is fast when its memory, its vCPU threads
 * and the devices it uses sit on one NUMA node. This header gives a VMM
 * what it needs to arrange that:
 *
 * - a ::hvc_topology: NUMA nodes with their CPUs, memory and distances, and
 *   PCI devices with their ids, names, class and node. hvc_topology_host()
 *   takes a snapshot of the host (libnuma and libpci); hvc_topology_create()
 *   and the hvc_topology_add_*() calls build a description by hand, to plan
 *   for another host or to test placement;
 * - hvc_topology_place(): the node and CPUs a VM using a given PCI device
 *   (a NIC, say) should run on, a pure function of a topology;
 * - hvc_thread_pin_cpus() and hvc_thread_pin_node(): vCPU thread affinity;
 * - the NUMA policy of a region's memory is a memory-region option
 *   (hvc_memory_options::numa_policy in hvcore/memory.h).
 *
 * Node ids and CPU ids are the host's (Linux's) numbers. Ids need not be
 * dense: a host may have nodes 0 and 2. CPU sets are arrays of CPU ids.
 * A snapshot lists online CPUs only, and a node's memory as the kernel
 * reports it (MemTotal and MemFree of /sys/devices/system/node/nodeN/meminfo),
 * so free memory is a moment's value that excludes reclaimable page cache.
 *
 * Thread rules: a topology is not locked. Several threads may read one
 * topology at once; adding to it must not race with any other call on it.
 * hvc_topology_host() and the pinning calls may be called from any thread.
 */
#ifndef HVCORE_TOPOLOGY_H
#define HVCORE_TOPOLOGY_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A description of a host's NUMA nodes and PCI devices. Opaque. */
typedef struct hvc_topology hvc_topology;

/**
 * One PCI function. Used both ways: hvc_topology_add_pci() reads one, and
 * hvc_topology_pci_device() fills one. Initialise with ::HVC_PCI_DEVICE_INIT;
 * fields are only ever appended, and the library reads or writes only the
 * fields that @c size covers.
 */
typedef struct hvc_pci_device {
    /** sizeof(hvc_pci_device) as the caller was compiled. */
    uint32_t size;
    /** PCI domain (segment); the address is domain:bus:device.function. */
    uint32_t domain;
    /** Bus number. */
    uint8_t bus;
    /** Device number, 0..31. */
    uint8_t device;
    /** Function number, 0..7. */
    uint8_t function;
    /** Always 0. */
    uint8_t reserved;
    /** Vendor id, e.g. 0x8086. */
    uint16_t vendor_id;
    /** Device id. */
    uint16_t device_id;
    /**
     * Class code as the kernel's sysfs "class" file shows it: base class,
     * subclass and programming interface, 0xBBSSPP (0x020000 is an
     * Ethernet controller).
     */
    uint32_t class_code;
    /** NUMA node the device is attached to; -1 when the host does not say
     * (single-node hosts usually do not). */
    int32_t numa_node;
    /** Vendor name from the PCI id database, or NULL when unknown. Owned by
     * the topology when filled by it. */
    const char *vendor_name;
    /** Device name from the PCI id database, or NULL when unknown. */
    const char *device_name;
    /** Class name ("Ethernet controller"), or NULL when unknown. */
    const char *class_name;
} hvc_pci_device;

/** Initialiser for ::hvc_pci_device: address 0000:00:00.0, node unknown. */
#define HVC_PCI_DEVICE_INIT                                                    \
    {                                                                          \
        sizeof(hvc_pci_device), 0, 0, 0, 0, 0, 0, 0, 0, -1, NULL, NULL, NULL   \
    }

/** Flags for hvc_placement::flags: how the node was chosen. */
typedef enum hvc_placement_flags {
    /**
     * The device's node has no CPUs (a memory-only or I/O node), so the
     * node is the nearest one, by distance, that has CPUs.
     */
    HVC_PLACEMENT_NEAREST = 1u << 0,
    /**
     * The device reports no NUMA node. With one node that has CPUs, that
     * node; otherwise the node with CPUs that has the most free memory (the
     * VM then at least has its memory and vCPUs together).
     */
    HVC_PLACEMENT_NO_AFFINITY = 1u << 1
} hvc_placement_flags;

/**
 * Result of hvc_topology_place(). Initialise with ::HVC_PLACEMENT_INIT; the
 * library writes only the fields that @c size covers.
 */
typedef struct hvc_placement {
    /** sizeof(hvc_placement) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_placement_flags; 0 when the VM goes on the
     * device's own node. */
    uint32_t flags;
    /** The node to put the VM's memory and vCPU threads on. */
    uint32_t node;
    /** The node the device reports, or -1. */
    int32_t device_node;
    /** Distance from @c node to @c device_node (10 when they are the same
     * node); 0 when the device reports no node. */
    uint32_t distance;
} hvc_placement;

/** Initialiser for ::hvc_placement. */
#define HVC_PLACEMENT_INIT                                                     \
    {                                                                          \
        sizeof(hvc_placement), 0, 0, -1, 0                                     \
    }

/** Distance of a node to itself, as ACPI's SLIT defines it. */
#define HVC_NUMA_DISTANCE_LOCAL 10
/** Distance between two nodes of a description that does not set it, as
 * Linux assumes when the firmware gives no SLIT. */
#define HVC_NUMA_DISTANCE_REMOTE 20

/**
 * Takes a snapshot of the host: its NUMA nodes (libnuma: CPUs, memory,
 * distances) and PCI devices (libpci: ids, names from the PCI id
 * database, class and node), sorted by node id and by PCI address.
 *
 * A kernel without NUMA support is described as one node 0 with every
 * online CPU and all memory.
 *
 * @param out receives the topology; free it with hvc_topology_destroy().
 * @return 0; -EINVAL for NULL; -ENOMEM; -EIO when the node information in
 *         /sys cannot be read; -ENODEV when libpci can reach no PCI bus
 *         (the message is libpci's).
 */
HVC_EXTERN int hvc_topology_host(hvc_topology **out);

/**
 * Creates an empty description, to fill with hvc_topology_add_node(),
 * hvc_topology_set_distance() and hvc_topology_add_pci().
 *
 * @return 0; -EINVAL for NULL; -ENOMEM.
 */
HVC_EXTERN int hvc_topology_create(hvc_topology **out);

/**
 * Frees a topology and the strings it owns (device names handed out by
 * hvc_topology_pci_device() become invalid).
 *
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_topology_destroy(hvc_topology *topo);

/**
 * Adds a node to a description. Its distance to every other node is
 * ::HVC_NUMA_DISTANCE_REMOTE until hvc_topology_set_distance() says
 * otherwise.
 *
 * @param node      the node id; at most INT32_MAX.
 * @param cpus      its CPU ids; may be NULL when @p nr_cpus is 0 (a node
 *                  with memory only). Copied.
 * @param mem_total its memory in bytes.
 * @param mem_free  how much of it is free; at most @p mem_total.
 * @return 0; -EINVAL (NULL, an id above INT32_MAX, a CPU listed twice,
 *         free above total); -EEXIST when the node, or one of the CPUs, is
 *         already in the description (the message names it); -ENOMEM.
 */
HVC_EXTERN int hvc_topology_add_node(hvc_topology *topo, uint32_t node,
                                     const uint32_t *cpus, size_t nr_cpus,
                                     uint64_t mem_total, uint64_t mem_free);

/**
 * Sets the distance from node @p from to node @p to (only that direction:
 * a SLIT may be asymmetric).
 *
 * @param distance ACPI SLIT units: 10 for a node to itself, 11..255 between
 *                 two nodes (255: unreachable).
 * @return 0; -EINVAL (NULL, a distance out of range, a distance other than
 *         10 from a node to itself); -ENOENT for an unknown node.
 */
HVC_EXTERN int hvc_topology_set_distance(hvc_topology *topo, uint32_t from,
                                         uint32_t to, uint32_t distance);

/**
 * Adds a PCI device to a description. The names are copied.
 *
 * @return 0; -EINVAL (NULL, unknown size, a device number above 31 or a
 *         function above 7, a node below -1); -ENOENT for a node the
 *         description does not have; -EEXIST when a device with that
 *         address is there; -ENOMEM.
 */
HVC_EXTERN int hvc_topology_add_pci(hvc_topology *topo,
                                    const hvc_pci_device *dev);

/**
 * Lists the node ids in ascending order.
 *
 * @param ids      receives up to @p capacity ids; may be NULL when
 *                 @p capacity is 0.
 * @param count    receives the number of nodes (which may exceed
 *                 @p capacity).
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_topology_list_nodes(const hvc_topology *topo, uint32_t *ids,
                                       size_t capacity, size_t *count);

/**
 * Lists the CPUs of a node in ascending order.
 *
 * @param cpus  receives up to @p capacity CPU ids; may be NULL when
 *              @p capacity is 0.
 * @param count receives the number of CPUs of the node (0 for a node with
 *              memory only).
 * @return 0; -EINVAL for NULL; -ENOENT for an unknown node.
 */
HVC_EXTERN int hvc_topology_node_cpus(const hvc_topology *topo, uint32_t node,
                                      uint32_t *cpus, size_t capacity,
                                      size_t *count);

/**
 * The memory of a node, in bytes.
 *
 * @param total receives the node's memory; may be NULL.
 * @param free_bytes receives how much of it was free; may be NULL.
 * @return 0; -EINVAL for a NULL topology; -ENOENT for an unknown node.
 */
HVC_EXTERN int hvc_topology_node_memory(const hvc_topology *topo, uint32_t node,
                                        uint64_t *total, uint64_t *free_bytes);

/**
 * The distance from node @p from to node @p to, in ACPI SLIT units
 * (::HVC_NUMA_DISTANCE_LOCAL for a node to itself).
 *
 * @return 0; -EINVAL for NULL; -ENOENT for an unknown node.
 */
HVC_EXTERN int hvc_topology_distance(const hvc_topology *topo, uint32_t from,
                                     uint32_t to, uint32_t *distance);

/** Number of PCI devices in @p topo (0 for NULL). */
HVC_EXTERN size_t hvc_topology_pci_count(const hvc_topology *topo);

/**
 * Reads PCI device @p index (0 .. hvc_topology_pci_count() - 1). Devices
 * are in ascending address order. The name strings stay owned by the
 * topology and valid until hvc_topology_destroy().
 *
 * @param out set its @c size first (::HVC_PCI_DEVICE_INIT); receives the
 *            fields its size covers.
 * @return 0; -EINVAL (NULL, unknown size); -ENOENT for an index past the
 *         end.
 */
HVC_EXTERN int hvc_topology_pci_device(const hvc_topology *topo, size_t index,
                                       hvc_pci_device *out);

/**
 * Finds a PCI device by address.
 *
 * @param address "DDDD:BB:DD.F" (domain, bus, device, function in hex, as
 *                lspci -D and /sys/bus/pci/devices show it), or "BB:DD.F"
 *                for domain 0.
 * @param index   receives its index for hvc_topology_pci_device().
 * @return 0; -EINVAL (NULL, an address that does not parse); -ENOENT when
 *         no device has that address.
 */
HVC_EXTERN int hvc_topology_find_pci(const hvc_topology *topo,
                                     const char *address, size_t *index);

/**
 * Decides where a VM that uses PCI device @p address should run: the node
 * for its memory (hvc_memory_options::numa_policy) and the CPUs for its vCPU
 * threads (hvc_thread_pin_cpus()).
 *
 * The device's own node when it has CPUs. When it has none, the nearest
 * node that has, by distance from the device's node (ties: more free
 * memory, then the lower id), with ::HVC_PLACEMENT_NEAREST. When the device
 * reports no node, see ::HVC_PLACEMENT_NO_AFFINITY. Whether the node has
 * room for the VM is left to the caller: free memory in a snapshot is a
 * moment's value and leaves out reclaimable page cache.
 *
 * A pure function of @p topo: it reads nothing from the host, so a
 * description built with hvc_topology_create() plans for any host.
 *
 * @param out      set its @c size first (::HVC_PLACEMENT_INIT); receives
 *                 the decision.
 * @param cpus     receives up to @p capacity CPU ids of the chosen node,
 *                 ascending; may be NULL when @p capacity is 0.
 * @param count    receives the number of CPUs of the chosen node; may be
 *                 NULL when @p capacity is 0.
 * @return 0; -EINVAL (NULL, unknown size, an address that does not parse);
 *         -ENOENT when no device has that address; -ENODEV when no node of
 *         the topology has CPUs.
 */
HVC_EXTERN int hvc_topology_place(const hvc_topology *topo, const char *address,
                                  hvc_placement *out, uint32_t *cpus,
                                  size_t capacity, size_t *count);

/**
 * Restricts the calling thread to a set of host CPUs (sched_setaffinity).
 * Threads it creates afterwards inherit the set. Call it on a vCPU's
 * thread before its first hvc_vcpu_run().
 *
 * @param cpus  CPU ids; every one must be online.
 * @param count number of ids; non-zero.
 * @return 0; -EINVAL (NULL or empty set, a CPU that is not online, a set
 *         that the process's cpuset does not allow; the message names the
 *         CPU); -ENOMEM.
 */
HVC_EXTERN int hvc_thread_pin_cpus(const uint32_t *cpus, size_t count);

/**
 * Restricts the calling thread to the online CPUs of a host NUMA node, as
 * hvc_thread_pin_cpus() does.
 *
 * @return 0; -ENOENT when the host has no such node; -EINVAL when the
 *         node has no online CPUs (the message names the node); -ENOMEM;
 *         -EIO when /sys cannot be read.
 */
HVC_EXTERN int hvc_thread_pin_node(uint32_t node);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_TOPOLOGY_H */
