/**
 * @file hvcore/memory.h
 * @brief Guest memory: regions and bounds-checked accessors.
 *
 * A region maps a page-aligned guest-physical range to host memory. By
 * default the library allocates it as a memfd mapped shared, so it can be
 * handed to another process (hv_memory_region_fd()); a caller may instead
 * supply its own page-aligned host mapping, which stays the caller's.
 *
 * Device models and loaders reach guest memory only through hv_vm_read(),
 * hv_vm_write() and hv_vm_gpa_to_hva(), which check that the whole access
 * lies inside one region, so a guest-supplied address never reaches outside.
 *
 * Thread rules: all calls may be made from any thread. A pointer from
 * hv_vm_gpa_to_hva() or hv_memory_region_hva() is valid until the region is
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
#define HV_PAGE_SIZE 4096u

/** A guest memory region. Opaque; owned by its VM. */
typedef struct hv_memory_region hv_memory_region;

/** Flags for hv_memory_options::flags. */
typedef enum hv_memory_flags {
    /** Guest writes are not stored; they exit as MMIO writes instead. */
    HV_MEMORY_READONLY = 1u << 0
} hv_memory_flags;

/**
 * Region options. Initialise with ::HV_MEMORY_OPTIONS_INIT; fields are only
 * ever appended, and the library reads only those that @c size covers.
 */
typedef struct hv_memory_options {
    /** sizeof(hv_memory_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hv_memory_flags. */
    uint32_t flags;
    /** First guest-physical address; a multiple of ::HV_PAGE_SIZE. */
    uint64_t guest_addr;
    /** Length in bytes; non-zero, a multiple of ::HV_PAGE_SIZE. */
    uint64_t length;
    /**
     * Caller-owned host memory of @c length bytes, page-aligned, to map
     * instead of library-allocated memory; NULL lets the library allocate
     * (memfd, zero-filled). The caller keeps ownership and must keep it
     * mapped until the region is removed.
     */
    void *host_addr;
} hv_memory_options;

/** Initialiser for ::hv_memory_options. */
#define HV_MEMORY_OPTIONS_INIT                                                 \
    {                                                                          \
        sizeof(hv_memory_options), 0, 0, 0, NULL                               \
    }

/**
 * Adds a guest memory region.
 *
 * @param out receives the region; may be NULL when the caller does not need
 *            the handle (hv_vm_find_memory() finds it again).
 * @return 0; -EINVAL (NULL vm or opts, unknown size or flags, unaligned
 *         address, length or host pointer, zero length, a range past the
 *         backend's physical address width); -EEXIST when it overlaps a
 *         region (the message names both); -ENOSPC when the VM has no
 *         memory slot left; -ENOMEM; a backend error.
 */
HV_EXTERN int hv_vm_add_memory(hv_vm *vm, const hv_memory_options *opts,
                               hv_memory_region **out);

/**
 * Removes a region and frees what the library allocated for it.
 *
 * @return 0; -EINVAL for NULL or a region of another VM.
 */
HV_EXTERN int hv_vm_remove_memory(hv_vm *vm, hv_memory_region *region);

/**
 * Finds the region containing @p guest_addr.
 *
 * @return 0; -EINVAL for NULL; -ENOENT when no region contains it.
 */
HV_EXTERN int hv_vm_find_memory(hv_vm *vm, uint64_t guest_addr,
                                hv_memory_region **out);

/**
 * Lists the VM's memory regions in ascending guest-physical order.
 *
 * @param out   receives up to @p capacity handles; may be NULL when
 *              @p capacity is 0.
 * @param count receives the number of regions (which may exceed
 *              @p capacity).
 * @return 0; -EINVAL for NULL.
 */
HV_EXTERN int hv_vm_list_memory(hv_vm *vm, hv_memory_region **out,
                                size_t capacity, size_t *count);

/** First guest-physical address of @p region (0 for NULL). */
HV_EXTERN uint64_t hv_memory_region_guest_addr(const hv_memory_region *region);
/** Length in bytes of @p region (0 for NULL). */
HV_EXTERN uint64_t hv_memory_region_length(const hv_memory_region *region);
/** Host address of the first byte of @p region (NULL for NULL). */
HV_EXTERN void *hv_memory_region_hva(const hv_memory_region *region);
/** ::hv_memory_flags of @p region (0 for NULL). */
HV_EXTERN uint32_t hv_memory_region_flags(const hv_memory_region *region);
/**
 * The memfd behind a library-allocated region, to share it with another
 * process; -1 for a caller-supplied region or NULL. The descriptor stays
 * owned by the library (dup() it to keep it).
 */
HV_EXTERN int hv_memory_region_fd(const hv_memory_region *region);

/**
 * Copies @p length bytes of guest memory at @p guest_addr to @p buf.
 *
 * @return 0; -EINVAL for NULL arguments; -EFAULT when any byte of the range
 *         is outside guest memory (nothing is copied then).
 */
HV_EXTERN int hv_vm_read(hv_vm *vm, uint64_t guest_addr, void *buf,
                         size_t length);

/**
 * Copies @p length bytes from @p buf to guest memory at @p guest_addr.
 * Read-only regions can be written this way (it is how ROMs are loaded).
 *
 * @return 0; -EINVAL for NULL arguments; -EFAULT when any byte of the range
 *         is outside guest memory (nothing is written then).
 */
HV_EXTERN int hv_vm_write(hv_vm *vm, uint64_t guest_addr, const void *buf,
                          size_t length);

/**
 * Translates a guest-physical range to a host pointer, checking that all
 * @p length bytes lie in one region.
 *
 * @param out receives the host address of @p guest_addr.
 * @return 0; -EINVAL for NULL arguments or a zero length; -EFAULT when the
 *         range is not wholly inside one region.
 */
HV_EXTERN int hv_vm_gpa_to_hva(hv_vm *vm, uint64_t guest_addr, size_t length,
                               void **out);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_MEMORY_H */
