/**
 * @file hvcore/memory.h
 * @brief Guest memory: regions and bounds-checked accessors.
 *
 * A region maps a page-aligned guest-physical range to host memory. By
 * default the library allocates it as a memfd mapped shared, so it can be
 * handed to another process (hvc_memory_region_fd()); a caller may instead
 * supply its own page-aligned host mapping, which stays the caller's.
 *
 * Where the host memory lives is a property of the region too: a NUMA
 * policy (::hvc_numa_policy), huge pages, prefaulting, and whether the
 * kernel may merge its pages with others (it may not, unless asked:
 * ::HVC_MEMORY_MERGEABLE). hvcore/topology.h lists the host's nodes.
 *
 * Device models and loaders reach guest memory only through hvc_vm_read(),
 * hvc_vm_write() and hvc_vm_gpa_to_hva(), which check that the whole access
 * lies inside one region, so a guest-supplied address never reaches outside.
 *
 * Thread rules: all calls may be made from any thread. A pointer from
 * hvc_vm_gpa_to_hva() or hvc_memory_region_hva() is valid until the region is
 * removed; removing a region that another thread is using is the caller's
 * bug.
 */
#ifndef HVCORE_MEMORY_H
#define HVCORE_MEMORY_H

#include "common.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Granularity of guest memory: addresses and sizes are multiples. */
#define HVC_PAGE_SIZE 4096u

/** A guest memory region. Opaque; owned by its VM. */
typedef struct hvc_memory_region hvc_memory_region;

/** Flags for hvc_memory_options::flags. */
typedef enum hvc_memory_flags {
    /** Guest writes are not stored; they exit as MMIO writes instead. */
    HVC_MEMORY_READONLY = 1u << 0,
    /**
     * Lets the kernel's same-page merging (KSM) share this region's pages
     * with identical pages elsewhere (madvise MADV_MERGEABLE). Without it
     * every region, library-allocated or the caller's, is made unmergeable
     * (MADV_UNMERGEABLE, which also splits pages already merged): merged
     * pages let one guest learn, from write timings, what another holds.
     * KSM merges only private anonymous memory, so library-allocated memory
     * with this flag is anonymous rather than a memfd, and
     * hvc_memory_region_fd() returns -1 for it.
     */
    HVC_MEMORY_MERGEABLE = 1u << 1,
    /**
     * Allocates every page when the region is added, after the NUMA policy
     * is set (madvise MADV_POPULATE_WRITE), so the guest never waits for a
     * page fault and a shortage of memory shows here rather than later.
     */
    HVC_MEMORY_PREFAULT = 1u << 2,
    /**
     * Library-allocated memory from the default-size huge page pool
     * (hugetlbfs: memfd MFD_HUGETLB). The length must be a multiple of the
     * huge page size, and the pages are reserved when the region is added:
     * -ENOMEM, with the pool's state in the message, when there are not
     * enough (/proc/sys/vm/nr_hugepages sets the pool); -ENOTSUP when the
     * kernel has no huge pages. Not with caller memory, nor with
     * ::HVC_MEMORY_MERGEABLE or ::HVC_MEMORY_THP.
     */
    HVC_MEMORY_HUGETLB = 1u << 3,
    /**
     * Advises transparent huge pages for the region (madvise
     * MADV_HUGEPAGE). Advice only: the kernel uses them when
     * /sys/kernel/mm/transparent_hugepage/enabled (for anonymous memory)
     * or .../shmem_enabled (for the library's memfd) allows "advise".
     */
    HVC_MEMORY_THP = 1u << 4
} hvc_memory_flags;

/**
 * NUMA policy of a region's host memory, for hvc_memory_options::numa_policy.
 * The policy is set (mbind) before the first page is touched, so it decides
 * where every page of library-allocated memory goes. For caller memory,
 * pages the caller already touched are moved where the kernel can
 * (MPOL_MF_MOVE); later ones follow the policy.
 */
typedef enum hvc_numa_policy {
    /** The kernel's default: a page goes to the node of the thread that
     * first touches it. hvc_memory_options::numa_node_count must be 0. */
    HVC_NUMA_DEFAULT = 0,
    /** Pages only on the listed nodes; the guest's allocation fails rather
     * than spill elsewhere (MPOL_BIND). */
    HVC_NUMA_BIND = 1,
    /** Pages on the one listed node while it has free memory, elsewhere
     * after that (MPOL_PREFERRED). Exactly one node. */
    HVC_NUMA_PREFERRED = 2,
    /** Pages spread round-robin over the listed nodes (MPOL_INTERLEAVE). */
    HVC_NUMA_INTERLEAVE = 3
} hvc_numa_policy;

/**
 * Region options. Initialise with ::HVC_MEMORY_OPTIONS_INIT; fields are only
 * ever appended, and the library reads only those that @c size covers.
 */
typedef struct hvc_memory_options {
    /** sizeof(hvc_memory_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_memory_flags. */
    uint32_t flags;
    /** First guest-physical address; a multiple of ::HVC_PAGE_SIZE. */
    uint64_t guest_addr;
    /** Length in bytes; non-zero, a multiple of ::HVC_PAGE_SIZE. */
    uint64_t length;
    /**
     * Caller-owned host memory of @c length bytes, page-aligned, to map
     * instead of library-allocated memory; NULL lets the library allocate
     * (memfd, zero-filled). The caller keeps ownership and must keep it
     * mapped until the region is removed. The library sets the mapping's
     * NUMA policy and KSM advice as for its own memory (see
     * ::hvc_numa_policy and ::HVC_MEMORY_MERGEABLE); they stay on the
     * mapping after the region is removed, or when adding it fails.
     */
    void *host_addr;
    /**
     * ::hvc_numa_policy for the region's host memory. The nodes must exist
     * on the host (hvc_topology_host() lists them; -ENOENT names a node that
     * does not).
     */
    uint32_t numa_policy;
    /** Number of node ids at @c numa_nodes. */
    uint32_t numa_node_count;
    /** The node ids the policy names; read during hvc_vm_add_memory()
     * only. */
    const uint32_t *numa_nodes;
} hvc_memory_options;

/** Initialiser for ::hvc_memory_options. */
#define HVC_MEMORY_OPTIONS_INIT                                                \
    {                                                                          \
        sizeof(hvc_memory_options), 0, 0, 0, NULL, HVC_NUMA_DEFAULT, 0, NULL   \
    }

/**
 * Adds a guest memory region.
 *
 * @param out receives the region; may be NULL when the caller does not need
 *            the handle (hvc_vm_find_memory() finds it again).
 * @return 0; -EINVAL (NULL vm or opts, unknown size or flags, unaligned
 *         address, length or host pointer, zero length, a range past the
 *         backend's physical address width, a NUMA policy with no node,
 *         flags that do not go together); -ENOENT when a NUMA node of the
 *         policy does not exist on the host (the message names it);
 *         -EEXIST when it overlaps a region (the message names both) or
 *         pages the backend keeps for itself (KVM: 0xfffbc000..0xfffbffff,
 *         its real-mode TSS and identity map);
 *         -ENOSPC when the VM has no memory slot left; -ENOMEM (also: too
 *         few huge pages, or prefaulting ran out of memory); -ENOTSUP when
 *         the kernel lacks what a flag or the policy needs (huge pages,
 *         KSM, THP, NUMA policies); a backend error.
 */
HVC_EXTERN int hvc_vm_add_memory(hvc_vm *vm, const hvc_memory_options *opts,
                                 hvc_memory_region **out);

/**
 * Removes a region and frees what the library allocated for it.
 *
 * @return 0; -EINVAL for NULL; -ENOENT when @p region is not in @p vm
 *         (it belongs to another VM).
 */
HVC_EXTERN int hvc_vm_remove_memory(hvc_vm *vm, hvc_memory_region *region);

/**
 * Finds the region containing @p guest_addr.
 *
 * @return 0; -EINVAL for NULL; -ENOENT when no region contains it.
 */
HVC_EXTERN int hvc_vm_find_memory(hvc_vm *vm, uint64_t guest_addr,
                                  hvc_memory_region **out);

/**
 * Lists the VM's memory regions in ascending guest-physical order.
 *
 * @param out   receives up to @p capacity handles; may be NULL when
 *              @p capacity is 0.
 * @param count receives the number of regions (which may exceed
 *              @p capacity).
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_vm_list_memory(hvc_vm *vm, hvc_memory_region **out,
                                  size_t capacity, size_t *count);

/** First guest-physical address of @p region (0 for NULL). */
HVC_EXTERN uint64_t
hvc_memory_region_guest_addr(const hvc_memory_region *region);
/** Length in bytes of @p region (0 for NULL). */
HVC_EXTERN uint64_t hvc_memory_region_length(const hvc_memory_region *region);
/** Host address of the first byte of @p region (NULL for NULL). */
HVC_EXTERN void *hvc_memory_region_hva(const hvc_memory_region *region);
/** ::hvc_memory_flags of @p region (0 for NULL). */
HVC_EXTERN uint32_t hvc_memory_region_flags(const hvc_memory_region *region);
/**
 * The memfd behind a library-allocated region, to share it with another
 * process; -1 for a caller-supplied region, a ::HVC_MEMORY_MERGEABLE one
 * (anonymous memory) or NULL. The descriptor stays owned by the library
 * (dup() it to keep it).
 */
HVC_EXTERN int hvc_memory_region_fd(const hvc_memory_region *region);

/**
 * Copies @p length bytes of guest memory at @p guest_addr to @p buf.
 *
 * @return 0; -EINVAL for NULL arguments; -EFAULT when any byte of the range
 *         is outside guest memory (nothing is copied then); on a
 *         post-copy destination (hvc_vm_migrate_receive()), -EIO when a
 *         page of the range was lost with the link, and -EAGAIN when a
 *         page has not arrived yet and the caller is a callback on the
 *         VM's event thread, which never waits on the link (the page is
 *         asked for; try again later; elsewhere the call waits for it).
 */
HVC_EXTERN int hvc_vm_read(hvc_vm *vm, uint64_t guest_addr, void *buf,
                           size_t length);

/**
 * Copies @p length bytes from @p buf to guest memory at @p guest_addr.
 * Read-only regions can be written this way (it is how ROMs are loaded).
 *
 * @return 0; -EINVAL for NULL arguments; -EFAULT when any byte of the range
 *         is outside guest memory (nothing is written then); on a
 *         post-copy destination (hvc_vm_migrate_receive()), -EIO when a
 *         page of the range was lost with the link, and -EAGAIN when a
 *         page has not arrived yet and the caller is a callback on the
 *         VM's event thread, which never waits on the link (the page is
 *         asked for; try again later; elsewhere the call waits for it).
 */
HVC_EXTERN int hvc_vm_write(hvc_vm *vm, uint64_t guest_addr, const void *buf,
                            size_t length);

/**
 * Translates a guest-physical range to a host pointer, checking that all
 * @p length bytes lie in one region.
 *
 * @param out receives the host address of @p guest_addr.
 * @return 0; -EINVAL for NULL arguments or a zero length; -EFAULT when the
 *         range is not wholly inside one region; during post-copy, -EIO
 *         and (on the VM's event thread) -EAGAIN as for hvc_vm_read().
 */
HVC_EXTERN int hvc_vm_gpa_to_hva(hvc_vm *vm, uint64_t guest_addr, size_t length,
                                 void **out);

/**
 * @name Dirty-page tracking
 *
 * Tracking is a property of a region: started, fetched and stopped per
 * region. A fetch hands the caller the pages written since the previous
 * fetch (or since the start) and re-arms them, so that a VMM can copy
 * what changed while the guest keeps running: the rounds of a live
 * migration, or an incremental backup.
 *
 * What is tracked: every guest write (logged by the accelerator), and
 * every write the library makes through hvc_vm_write() and the devices,
 * loaders and migration code built on it. Writes the caller makes
 * through a pointer from hvc_vm_gpa_to_hva() or hvc_memory_region_hva()
 * bypass the library; the caller reports them with hvc_vm_mark_dirty()
 * after writing.
 *
 * What the first fetch reports: by default every page of the region, in
 * every mode, since a copy that starts with tracking must copy everything
 * once. With the bitmap and ::HVC_DIRTY_INITIALLY_SET in
 * hvc_memory_dirty_mode() this costs nothing at the start (KVM marks all
 * pages dirty without write-protecting them); otherwise the library marks
 * them itself. ::HVC_DIRTY_START_CLEAN asks for the pages written after
 * the start only (the incremental backup's need); with the bitmap the
 * start then write-protects the whole region at once.
 *
 * Thread rules: any thread. Start and stop wait for the memory accessors
 * of other threads to finish; fetches of one VM are serialised; vCPUs
 * keep running throughout.
 * @{
 */

/** Flags for hvc_dirty_options::flags. */
typedef enum hvc_dirty_flags {
    /** The first fetch reports only the pages written after the start,
     * not every page. */
    HVC_DIRTY_START_CLEAN = 1u << 0
} hvc_dirty_flags;

/**
 * Options of hvc_memory_dirty_start(). Initialise with
 * ::HVC_DIRTY_OPTIONS_INIT; fields are only ever appended.
 */
typedef struct hvc_dirty_options {
    /** sizeof(hvc_dirty_options) as the caller was compiled. */
    uint32_t size;
    /**
     * ::HVC_DIRTY_AUTO (the library's choice: the ring in a VM created
     * with ::HVC_VM_DIRTY_RING, else the bitmap), ::HVC_DIRTY_BITMAP or
     * ::HVC_DIRTY_RING.
     */
    uint32_t mode;
    /** Bit mask of ::hvc_dirty_flags. */
    uint32_t flags;
} hvc_dirty_options;

/** Initialiser for ::hvc_dirty_options: automatic mode, no flags. */
#define HVC_DIRTY_OPTIONS_INIT                                                 \
    {                                                                          \
        sizeof(hvc_dirty_options), HVC_DIRTY_AUTO, 0                           \
    }

/**
 * Starts tracking the pages of @p region that are written.
 *
 * @param opts options, or NULL for ::HVC_DIRTY_OPTIONS_INIT.
 * @return 0; -EINVAL (NULL region, unknown options size, mode or flags;
 *         a read-only region, which the guest cannot write);
 *         -EALREADY when the region is tracked already; -ENOTSUP when the
 *         backend cannot track in the mode asked for (the ring in a VM
 *         created without ::HVC_VM_DIRTY_RING, the bitmap in one created
 *         with it, or a backend with no tracking; the message says which);
 *         -ENOMEM; a backend error.
 */
HVC_EXTERN int hvc_memory_dirty_start(hvc_memory_region *region,
                                      const hvc_dirty_options *opts);

/**
 * Fetches the pages of @p region written since the previous fetch (see
 * the group's text for the first one) and clears them, so that the next
 * fetch reports only pages written after this one.
 *
 * A page written while the fetch runs is reported by this fetch or the
 * next, never lost: copy a page after the fetch that reports it.
 *
 * @param bitmap       receives one bit per page of the region: bit i (bit
 *                     i % 64 of word i / 64) set when page i was written.
 *                     The first hvc_memory_dirty_bitmap_size() bytes are
 *                     overwritten, bits past the last page cleared; the
 *                     caller owns it.
 * @param bitmap_bytes size of @p bitmap in bytes; at least
 *                     hvc_memory_dirty_bitmap_size().
 * @param dirty_count  receives the number of bits set; may be NULL.
 * @return 0; -EINVAL for a NULL region or bitmap, or a bitmap too small
 *         (the message gives the size needed); -ENOENT when the region is
 *         not tracked; a backend error (the pages of this fetch are then
 *         reported by the next one).
 */
HVC_EXTERN int hvc_memory_dirty_fetch(hvc_memory_region *region,
                                      uint64_t *bitmap, size_t bitmap_bytes,
                                      uint64_t *dirty_count);

/**
 * Stops tracking @p region; pages written since the last fetch are
 * forgotten. Removing a region or destroying its VM stops it too.
 *
 * @return 0; -EINVAL for NULL; -ENOENT when the region is not tracked; a
 *         backend error (the region is then still tracked).
 */
HVC_EXTERN int hvc_memory_dirty_stop(hvc_memory_region *region);

/**
 * How @p region is tracked: ::HVC_DIRTY_BITMAP or ::HVC_DIRTY_RING, with
 * the property bits (::HVC_DIRTY_INITIALLY_SET, ::HVC_DIRTY_MANUAL_CLEAR)
 * that apply; 0 when it is not tracked, or for NULL.
 */
HVC_EXTERN uint32_t hvc_memory_dirty_mode(const hvc_memory_region *region);

/**
 * Bytes of the bitmap hvc_memory_dirty_fetch() fills for @p region: one
 * bit per page, rounded up to whole 64-bit words (0 for NULL).
 */
HVC_EXTERN size_t hvc_memory_dirty_bitmap_size(const hvc_memory_region *region);

/**
 * Reports that the caller wrote guest memory at [@p guest_addr,
 * @p guest_addr + @p length) through a host pointer, so that tracked
 * regions report those pages. Call it after the write. A no-op for
 * untracked memory.
 *
 * @return 0; -EINVAL for NULL; -EFAULT when the range is not wholly
 *         inside one region.
 */
HVC_EXTERN int hvc_vm_mark_dirty(hvc_vm *vm, uint64_t guest_addr,
                                 size_t length);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_MEMORY_H */
