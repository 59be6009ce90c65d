/* Host topology (NUMA nodes and PCI devices against /sys), placement over
 * built topologies, vCPU thread pinning, and the host side of memory
 * regions: NUMA policy checked page by page after a guest touched them,
 * KSM, huge pages, prefault. */
#include "hvtest.h"

#include <dirent.h>
#include <errno.h>
#include <linux/mempolicy.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MIB (1ull << 20)
#define NUMA_GPA 0x10000000ull /* above the test RAM, identity-mapped */
#define NUMA_LEN (8 * MIB)

/* ---- reading /sys and /proc the plain way, to compare against ---- */

static int read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return 0;
}

static unsigned long long read_hex(const char *dir, const char *name)
{
    char path[512], buf[64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(read_text(path, buf, sizeof(buf)), 0, "cannot read %s", path);
    return strtoull(buf, NULL, 16);
}

/* "0-3,8" -> 0 1 2 3 8; returns the count. */
static size_t parse_cpus(const char *s, uint32_t *out, size_t cap)
{
    size_t n = 0;
    while (*s && *s != '\n') {
        char *end;
        unsigned long lo = strtoul(s, &end, 10), hi = lo;
        if (*end == '-')
            hi = strtoul(end + 1, &end, 10);
        for (unsigned long c = lo; c <= hi && n < cap; c++)
            out[n++] = (uint32_t)c;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* The VmFlags line of the mapping that holds addr, from /proc/self/smaps. */
static void vm_flags(const void *addr, char *flags, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    int in = 0;
    flags[0] = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, cap, "%s", line + 8);
            break;
        }
    }
    fclose(f);
    cr_assert_neq(flags[0], 0, "no mapping holds %p", addr);
}

static int has_flag(const char *flags, const char *flag)
{
    char padded[544], want[8];
    snprintf(padded, sizeof(padded), " %.510s ", flags);
    padded[strcspn(padded, "\n")] = ' ';
    snprintf(want, sizeof(want), " %s ", flag);
    return strstr(padded, want) != NULL;
}

/* Where each page of [p, p+len) is: a node, or -ENOENT while not yet
 * allocated (move_pages in query mode). */
static void page_nodes(void *p, size_t len, int *status)
{
    size_t n = len / 4096;
    void **pages = calloc(n, sizeof(*pages));
    cr_assert_not_null(pages);
    for (size_t i = 0; i < n; i++)
        pages[i] = (char *)p + i * 4096;
    cr_assert_eq(syscall(SYS_move_pages, 0, n, pages, NULL, status, 0), 0,
                 "move_pages: %s", strerror(errno));
    free(pages);
}

/* A node id the host does not have. */
static uint32_t missing_node(const hvc_topology *t)
{
    uint32_t cpus;
    size_t n;
    uint32_t node = 7;
    while (hvc_topology_node_cpus(t, node, &cpus, 0, &n) == 0)
        node++;
    return node;
}

/* ---- the host snapshot against /sys ---- */

Test(topology, host_nodes_match_sys)
{
    hvc_topology *t;
    HVT_OK(hvc_topology_host(&t));
    uint32_t ids[64];
    size_t count;
    HVT_OK(hvc_topology_list_nodes(t, ids, 64, &count));
    size_t in_sys = 0;
    DIR *d = opendir("/sys/devices/system/node");
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, "node", 4) == 0 && e->d_name[4] >= '0' &&
            e->d_name[4] <= '9')
            in_sys++;
    closedir(d);
    cr_assert_eq(count, in_sys, "%zu nodes listed, /sys has %zu", count,
                 in_sys);
    cr_assert_eq(ids[0], 0, "node 0 is listed first");

    char buf[4096];
    uint32_t want[1024], got[1024];
    cr_assert_eq(
        read_text("/sys/devices/system/node/node0/cpulist", buf, sizeof(buf)),
        0);
    size_t nwant = parse_cpus(buf, want, 1024), ngot;
    HVT_OK(hvc_topology_node_cpus(t, 0, got, 1024, &ngot));
    cr_assert_eq(ngot, nwant, "node 0: %zu CPUs, /sys says %zu", ngot, nwant);
    cr_assert_arr_eq(got, want, nwant * sizeof(*got));
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (count == 1)
        cr_assert_eq((long)ngot, online, "the only node has every CPU");

    cr_assert_eq(
        read_text("/sys/devices/system/node/node0/meminfo", buf, sizeof(buf)),
        0);
    unsigned long long total_kb = 0, free_kb = 0;
    char *p = strstr(buf, "MemTotal:");
    cr_assert(p && sscanf(p, "MemTotal: %llu kB", &total_kb) == 1);
    p = strstr(buf, "MemFree:");
    cr_assert(p && sscanf(p, "MemFree: %llu kB", &free_kb) == 1);
    uint64_t total, avail;
    HVT_OK(hvc_topology_node_memory(t, 0, &total, &avail));
    cr_assert_eq(total, total_kb * 1024);
    cr_assert(avail > 0 && avail <= total);
    /* free memory moves; within a quarter of what /sys said a moment ago */
    cr_assert(avail / 4 < free_kb * 1024 && free_kb * 1024 / 4 < avail,
              "free %llu vs /sys %llu", (unsigned long long)avail,
              free_kb * 1024);
    uint32_t dist;
    HVT_OK(hvc_topology_distance(t, 0, 0, &dist));
    cr_assert_eq(dist, 10);
    HVT_ERR(hvc_topology_node_cpus(t, missing_node(t), got, 4, &ngot), -ENOENT);
    HVT_OK(hvc_topology_destroy(t));
}

Test(topology, host_pci_matches_sys)
{
    hvc_topology *t;
    HVT_OK(hvc_topology_host(&t));
    DIR *d = opendir("/sys/bus/pci/devices");
    cr_assert_not_null(d, "no /sys/bus/pci on this host");
    size_t in_sys = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        in_sys++;
        char dir[512];
        snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", e->d_name);
        size_t i;
        HVT_OK(hvc_topology_find_pci(t, e->d_name, &i));
        hvc_pci_device dev = HVC_PCI_DEVICE_INIT;
        HVT_OK(hvc_topology_pci_device(t, i, &dev));
        char addr[32];
        snprintf(addr, sizeof(addr), "%04x:%02x:%02x.%x", dev.domain, dev.bus,
                 dev.device, dev.function);
        cr_assert_str_eq(addr, e->d_name);
        cr_assert_eq(dev.vendor_id, read_hex(dir, "vendor"), "%s", addr);
        cr_assert_eq(dev.device_id, read_hex(dir, "device"), "%s", addr);
        cr_assert_eq(dev.class_code, read_hex(dir, "class"), "%s", addr);
        char path[600], buf[32];
        snprintf(path, sizeof(path), "%s/numa_node", dir);
        long node = -1;
        if (read_text(path, buf, sizeof(buf)) == 0)
            node = strtol(buf, NULL, 10);
        cr_assert_eq(dev.numa_node, node, "%s: node %d, /sys says %ld", addr,
                     dev.numa_node, node);
    }
    closedir(d);
    cr_assert_eq(hvc_topology_pci_count(t), in_sys);
    /* sorted by address, names filled where pci.ids knows the vendor */
    uint64_t prev = 0;
    for (size_t i = 0; i < hvc_topology_pci_count(t); i++) {
        hvc_pci_device a = HVC_PCI_DEVICE_INIT;
        HVT_OK(hvc_topology_pci_device(t, i, &a));
        uint64_t key = (uint64_t)a.domain << 16 | (uint64_t)a.bus << 8 |
                       (uint64_t)a.device << 3 | a.function;
        cr_assert(i == 0 || key > prev, "device %zu out of order", i);
        prev = key;
    }
    hvc_pci_device dev = HVC_PCI_DEVICE_INIT;
    HVT_ERR(hvc_topology_pci_device(t, in_sys, &dev), -ENOENT);
    dev.size = 8;
    HVT_ERR(hvc_topology_pci_device(t, 0, &dev), -EINVAL);
    HVT_OK(hvc_topology_destroy(t));
}

Test(topology, host_placement_by_a_nic)
{
    hvc_topology *t;
    HVT_OK(hvc_topology_host(&t));
    cr_assert_gt(hvc_topology_pci_count(t), 0);
    hvc_pci_device dev = HVC_PCI_DEVICE_INIT;
    HVT_OK(hvc_topology_pci_device(t, 0, &dev));
    char addr[32];
    snprintf(addr, sizeof(addr), "%04x:%02x:%02x.%x", dev.domain, dev.bus,
             dev.device, dev.function);
    hvc_placement p = HVC_PLACEMENT_INIT;
    uint32_t cpus[1024], node_cpus[1024];
    size_t n, nn;
    HVT_OK(hvc_topology_place(t, addr, &p, cpus, 1024, &n));
    HVT_OK(hvc_topology_node_cpus(t, p.node, node_cpus, 1024, &nn));
    cr_assert_eq(n, nn);
    cr_assert_arr_eq(cpus, node_cpus, n * sizeof(*cpus));
    cr_assert_eq(p.device_node, dev.numa_node);
    if (dev.numa_node < 0)
        cr_assert_eq(p.flags, HVC_PLACEMENT_NO_AFFINITY);
    HVT_OK(hvc_topology_destroy(t));
}

/* ---- vCPU thread affinity ---- */

static size_t affinity(uint32_t *cpus, size_t cap)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    size_t n = 0;
    for (uint32_t c = 0; c < CPU_SETSIZE && n < cap; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n;
}

Test(topology, pin_threads)
{
    hvc_topology *t;
    HVT_OK(hvc_topology_host(&t));
    uint32_t node_cpus[1024], now[1024];
    size_t n;
    HVT_OK(hvc_topology_node_cpus(t, 0, node_cpus, 1024, &n));
    cr_assert_gt(n, 0);
    uint32_t last = node_cpus[n - 1];
    HVT_OK(hvc_thread_pin_cpus(&last, 1));
    cr_assert_eq(affinity(now, 1024), 1);
    cr_assert_eq(now[0], last);
    HVT_OK(hvc_thread_pin_node(0));
    cr_assert_eq(affinity(now, 1024), n);
    cr_assert_arr_eq(now, node_cpus, n * sizeof(*now));

    uint32_t offline[] = {node_cpus[0], 100000};
    HVT_ERR(hvc_thread_pin_cpus(offline, 2), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "CPU 100000:") &&
                  strstr(hvc_last_error(), "not online"),
              "%s", hvc_last_error());
    HVT_ERR(hvc_thread_pin_cpus(node_cpus, 0), -EINVAL);
    HVT_ERR(hvc_thread_pin_cpus(NULL, 1), -EINVAL);
    uint32_t missing = missing_node(t);
    HVT_ERR(hvc_thread_pin_node(missing), -ENOENT);
    char want[64];
    snprintf(want, sizeof(want), "NUMA node %u does not exist", missing);
    cr_assert(strstr(hvc_last_error(), want), "%s", hvc_last_error());
    cr_assert_eq(affinity(now, 1024), n, "failures change nothing");
    HVT_OK(hvc_topology_destroy(t));
}

/* ---- the host side of memory regions ---- */

static hvc_memory_options numa_region(uint32_t policy, const uint32_t *nodes,
                                      uint32_t count)
{
    hvc_memory_options o = HVC_MEMORY_OPTIONS_INIT;
    o.guest_addr = NUMA_GPA;
    o.length = NUMA_LEN;
    o.numa_policy = policy;
    o.numa_nodes = nodes;
    o.numa_node_count = count;
    return o;
}

/* The policy of the mapping at p (get_mempolicy by address). */
static int policy_at(void *p, unsigned long *mask)
{
    int mode = -1;
    *mask = 0;
    cr_assert_eq(syscall(SYS_get_mempolicy, &mode, mask, 64, p, MPOL_F_ADDR), 0,
                 "get_mempolicy: %s", strerror(errno));
    return mode;
}

Test(topology, region_bound_to_node0_after_guest_touch)
{
    hvt t;
    hvt_open(&t, 0);
    uint32_t node0 = 0;
    hvc_memory_options o = numa_region(HVC_NUMA_BIND, &node0, 1);
    hvc_memory_region *r;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    uint8_t *hva = hvc_memory_region_hva(r);
    unsigned long mask;
    cr_assert_eq(policy_at(hva, &mask), MPOL_BIND);
    cr_assert_eq(mask, 1ul, "bound to node 0 only");

    /* set before the first touch: no page exists yet */
    size_t pages = NUMA_LEN / 4096;
    int *status = calloc(pages, sizeof(*status));
    cr_assert_not_null(status);
    page_nodes(hva, NUMA_LEN, status);
    for (size_t i = 0; i < pages; i++)
        cr_assert_eq(status[i], -ENOENT, "page %zu exists before the guest", i);

    hvt_load(t.vm, "touch64");
    uint64_t range[2] = {NUMA_GPA, NUMA_LEN};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, range, sizeof(range)));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x7c);

    page_nodes(hva, NUMA_LEN, status);
    for (size_t i = 0; i < pages; i++) {
        cr_assert_eq(status[i], 0, "page %zu is on %d, not node 0", i,
                     status[i]);
        cr_assert_eq(*(uint64_t *)(hva + i * 4096), NUMA_GPA + i * 4096,
                     "the guest wrote page %zu", i);
    }
    free(status);
    hvt_close(&t);
}

Test(topology, region_policies_and_prefault)
{
    hvt t;
    hvt_open(&t, 0);
    uint32_t node0 = 0;
    hvc_memory_options o = numa_region(HVC_NUMA_PREFERRED, &node0, 1);
    o.flags = HVC_MEMORY_PREFAULT;
    hvc_memory_region *r;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    unsigned long mask;
    void *hva = hvc_memory_region_hva(r);
    cr_assert_eq(policy_at(hva, &mask), MPOL_PREFERRED);
    cr_assert_eq(mask, 1ul);
    size_t pages = NUMA_LEN / 4096;
    int *status = calloc(pages, sizeof(*status));
    page_nodes(hva, NUMA_LEN, status);
    for (size_t i = 0; i < pages; i++)
        cr_assert_eq(status[i], 0, "prefaulted page %zu: %d", i, status[i]);
    free(status);
    HVT_OK(hvc_vm_remove_memory(t.vm, r));

    o = numa_region(HVC_NUMA_INTERLEAVE, &node0, 1);
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    cr_assert_eq(policy_at(hvc_memory_region_hva(r), &mask), MPOL_INTERLEAVE);
    HVT_OK(hvc_vm_remove_memory(t.vm, r));

    /* caller memory gets the policy too */
    void *mem = mmap(NULL, NUMA_LEN, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(mem, MAP_FAILED);
    memset(mem, 1, 4096); /* a page the caller touched already */
    o = numa_region(HVC_NUMA_BIND, &node0, 1);
    o.host_addr = mem;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    cr_assert_eq(policy_at(mem, &mask), MPOL_BIND);
    cr_assert_eq(*(uint8_t *)mem, 1, "the caller's data stays");
    hvt_close(&t);
    munmap(mem, NUMA_LEN);
}

Test(topology, region_on_missing_node_fails_clearly)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_topology *topo;
    HVT_OK(hvc_topology_host(&topo));
    uint32_t nodes[2] = {0, missing_node(topo)};
    HVT_OK(hvc_topology_destroy(topo));
    char want[64];
    snprintf(want, sizeof(want), "NUMA node %u does not exist on this host",
             nodes[1]);
    static const uint32_t policies[] = {HVC_NUMA_BIND, HVC_NUMA_PREFERRED,
                                        HVC_NUMA_INTERLEAVE};
    for (size_t i = 0; i < 3; i++) {
        hvc_memory_options o = numa_region(policies[i], &nodes[1], 1);
        HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -ENOENT);
        cr_assert(strstr(hvc_last_error(), want), "%s", hvc_last_error());
        cr_assert(strstr(hvc_last_error(), "0x10000000"), "%s",
                  hvc_last_error());
    }
    hvc_memory_options o = numa_region(HVC_NUMA_BIND, nodes, 2);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -ENOENT);
    cr_assert(strstr(hvc_last_error(), want), "%s", hvc_last_error());
    /* policies that do not hold together */
    o = numa_region(HVC_NUMA_BIND, NULL, 0);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = numa_region(HVC_NUMA_DEFAULT, nodes, 1);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = numa_region(HVC_NUMA_PREFERRED, nodes, 2);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = numa_region(9, nodes, 1);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = numa_region(HVC_NUMA_BIND, NULL, 1);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    /* nothing was added */
    hvc_memory_region *f;
    HVT_ERR(hvc_vm_find_memory(t.vm, NUMA_GPA, &f), -ENOENT);
    /* a caller built before the NUMA fields existed still adds memory */
    o = numa_region(HVC_NUMA_BIND, &nodes[1], 1);
    o.size = offsetof(hvc_memory_options, numa_policy);
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &f));
    hvt_close(&t);
}

Test(topology, ksm_off_unless_opted_in)
{
    hvt t;
    hvt_open(&t, 0);
    char flags[512];
    /* library memory */
    hvc_memory_options o = numa_region(HVC_NUMA_DEFAULT, NULL, 0);
    hvc_memory_region *r;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    vm_flags(hvc_memory_region_hva(r), flags, sizeof(flags));
    cr_assert(!has_flag(flags, "mg"), "library memory mergeable: %s", flags);
    vm_flags(hvc_memory_region_hva(t.ram), flags, sizeof(flags));
    cr_assert(!has_flag(flags, "mg"), "test RAM mergeable: %s", flags);
    HVT_OK(hvc_vm_remove_memory(t.vm, r));

    /* caller memory that was mergeable is made unmergeable */
    void *mem = mmap(NULL, NUMA_LEN, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(mem, MAP_FAILED);
    cr_assert_eq(madvise(mem, NUMA_LEN, MADV_MERGEABLE), 0,
                 "the kernel has no KSM: %s", strerror(errno));
    vm_flags(mem, flags, sizeof(flags));
    cr_assert(has_flag(flags, "mg"), "%s", flags);
    o.host_addr = mem;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    vm_flags(mem, flags, sizeof(flags));
    cr_assert(!has_flag(flags, "mg"), "caller memory mergeable: %s", flags);
    HVT_OK(hvc_vm_remove_memory(t.vm, r));

    /* opted in: caller memory and library memory (anonymous, no memfd) */
    o.flags = HVC_MEMORY_MERGEABLE;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    vm_flags(mem, flags, sizeof(flags));
    cr_assert(has_flag(flags, "mg"), "%s", flags);
    HVT_OK(hvc_vm_remove_memory(t.vm, r));
    o.host_addr = NULL;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    vm_flags(hvc_memory_region_hva(r), flags, sizeof(flags));
    cr_assert(has_flag(flags, "mg"), "%s", flags);
    cr_assert_eq(hvc_memory_region_fd(r), -1);
    cr_assert_eq(hvc_memory_region_flags(r), HVC_MEMORY_MERGEABLE);
    /* and a guest runs on it */
    hvt_load(t.vm, "touch64");
    uint64_t range[2] = {NUMA_GPA, NUMA_LEN};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, range, sizeof(range)));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x7c);
    cr_assert_eq(*(uint64_t *)hvc_memory_region_hva(r), NUMA_GPA);
    hvt_close(&t);
    munmap(mem, NUMA_LEN);
}

static long hugepages(const char *name)
{
    char path[128], buf[32];
    snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-2048kB/%s",
             name);
    return read_text(path, buf, sizeof(buf)) == 0 ? strtol(buf, NULL, 10) : -1;
}

Test(topology, huge_pages)
{
    hvt t;
    hvt_open(&t, 0);
    char flags[512];
    hvc_memory_options o = numa_region(HVC_NUMA_DEFAULT, NULL, 0);
    o.flags = HVC_MEMORY_HUGETLB;
    hvc_memory_region *r;
    long free_pages = hugepages("free_hugepages");
    int rc = hvc_vm_add_memory(t.vm, &o, &r);
    if (free_pages >= (long)(NUMA_LEN >> 21)) {
        HVT_OK(rc);
        vm_flags(hvc_memory_region_hva(r), flags, sizeof(flags));
        cr_assert(has_flag(flags, "ht"), "%s", flags);
        HVT_OK(hvc_vm_remove_memory(t.vm, r));
    } else {
        /* this machine's pool is too small: the message says so, and how
         * to grow it */
        cr_assert_eq(rc, -ENOMEM, "%d: %s", rc, hvc_last_error());
        cr_assert(strstr(hvc_last_error(), "0x10000000") &&
                      strstr(hvc_last_error(), "huge pages") &&
                      strstr(hvc_last_error(), "nr_hugepages"),
                  "%s", hvc_last_error());
    }
    o.length = NUMA_LEN + 4096;
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "huge page size"), "%s",
              hvc_last_error());
    o.length = NUMA_LEN;
    o.flags = HVC_MEMORY_HUGETLB | HVC_MEMORY_MERGEABLE;
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o.flags = HVC_MEMORY_HUGETLB;
    o.host_addr = hvc_memory_region_hva(t.ram);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);

    /* transparent huge pages are advice, visible as the mapping's flag */
    o = numa_region(HVC_NUMA_DEFAULT, NULL, 0);
    o.flags = HVC_MEMORY_THP;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    vm_flags(hvc_memory_region_hva(r), flags, sizeof(flags));
    cr_assert(has_flag(flags, "hg"), "%s", flags);
    hvt_close(&t);
}
