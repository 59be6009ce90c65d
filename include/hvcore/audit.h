/**
 * @file hvcore/audit.h
 * @brief Memory-sharing audit: which guest RAM pages share a physical frame.
 *
 * A guest page whose physical frame is also mapped somewhere else is a side
 * channel: whoever maps the frame can read it, or learn from copy-on-write
 * timings what the guest holds. hvc_vm_audit_sharing() walks a VM's guest
 * RAM and counts, page by page:
 *
 * - pages merged by the kernel's same-page merging (KSM), which another
 *   guest or process with an identical page shares;
 * - pages whose frame is mapped more than once: by another process that
 *   mapped the region's memfd (hvc_memory_region_fd()) or the caller's own
 *   file, by a second mapping in this process, or, for private memory, by
 *   a child forked since that still shares the page copy-on-write;
 * - pages that map the host's shared zero page (read but never written);
 * - pages resident in RAM, in swap, and neither.
 *
 * On Linux it reads /proc/self/pagemap for the frame of each page and
 * /proc/kpagecount and /proc/kpageflags for the frame's map count and KSM
 * and zero-page flags. That needs root: reading those files, and
 * CAP_SYS_ADMIN, without which the kernel reports every frame number as 0.
 * Without the privilege the call fails with -EPERM and says so, unless the
 * caller accepts a residency-only report (::HVC_AUDIT_RESIDENCY_ONLY).
 * For a page of a huge page or transparent huge page the kernel may give
 * the huge page's average map count rather than the page's own.
 *
 * Two responses: ::HVC_AUDIT_UNMERGE breaks KSM sharing of the VM's RAM
 * after counting, and hvc_vm_set_sharing_guard() makes hvc_vm_resume()
 * refuse to let a paused guest run while its RAM shares frames.
 *
 * Thread rules: both calls may be made from any thread, also while vCPUs
 * run. The audit is then a snapshot: a guest write may split a merged
 * page, and KSM or another process may share one, right after it was
 * counted. Adding or removing a region waits for an audit in progress.
 */
#ifndef HVCORE_AUDIT_H
#define HVCORE_AUDIT_H

#include "common.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Flags for hvc_audit_options::flags. */
typedef enum hvc_audit_flags {
    /**
     * After counting, withdraws the KSM advice from every region of the VM
     * (madvise MADV_UNMERGEABLE), which gives each merged page its own
     * frame again and keeps KSM from merging the region's pages from then
     * on (also for a region added with ::HVC_MEMORY_MERGEABLE, whose
     * hvc_memory_region_flags() still say so). The counts are those found
     * before unmerging; hvc_sharing_report::unmerged_regions says how many
     * regions had merged pages. Unmerging needs a free frame per merged
     * page: -ENOMEM when the host has none (some regions may be unmerged
     * by then). Needs no privilege, but counting does: see
     * ::HVC_AUDIT_RESIDENCY_ONLY to unmerge without it.
     */
    HVC_AUDIT_UNMERGE = 1u << 0,
    /**
     * Without the privilege to read frame numbers, returns 0 with
     * ::HVC_SHARING_NO_FRAMES in hvc_sharing_report::flags and only the
     * residency counts filled (the sharing counts are 0), instead of
     * failing with -EPERM. ::HVC_AUDIT_UNMERGE then unmerges every region.
     */
    HVC_AUDIT_RESIDENCY_ONLY = 1u << 1
} hvc_audit_flags;

/**
 * Audit options. Initialise with ::HVC_AUDIT_OPTIONS_INIT; fields are only
 * ever appended, and the library reads only those that @c size covers.
 */
typedef struct hvc_audit_options {
    /** sizeof(hvc_audit_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_audit_flags. */
    uint32_t flags;
} hvc_audit_options;

/** Initialiser for ::hvc_audit_options. */
#define HVC_AUDIT_OPTIONS_INIT                                                 \
    {                                                                          \
        sizeof(hvc_audit_options), 0                                           \
    }

/** Flags for hvc_sharing_report::flags. */
typedef enum hvc_sharing_flags {
    /** Frame numbers could not be read (no root or no CAP_SYS_ADMIN): only
     * the residency counts are meaningful. Set only with
     * ::HVC_AUDIT_RESIDENCY_ONLY. */
    HVC_SHARING_NO_FRAMES = 1u << 0,
    /** ::HVC_AUDIT_UNMERGE was applied to the VM's regions. */
    HVC_SHARING_UNMERGED = 1u << 1
} hvc_sharing_flags;

/**
 * Categories of shared pages, for hvc_vm_set_sharing_guard(). The bits
 * name the counts of ::hvc_sharing_report.
 */
typedef enum hvc_sharing_kind {
    /** hvc_sharing_report::ksm */
    HVC_SHARING_KSM = 1u << 0,
    /** hvc_sharing_report::mapped_elsewhere */
    HVC_SHARING_MAPPED = 1u << 1,
    /** hvc_sharing_report::zero */
    HVC_SHARING_ZERO = 1u << 2
} hvc_sharing_kind;

/**
 * What an audit found, in pages of ::HVC_PAGE_SIZE bytes (a huge page
 * counts as many pages). Set @c size to sizeof(hvc_sharing_report) before
 * the call; the library fills only the fields @c size covers (fields are
 * only appended) and zeroes those it has nothing for.
 *
 * Every page of guest RAM is in exactly one of @c resident, @c swapped and
 * @c not_resident. The sharing counts are among the resident pages, and
 * exclusive: a page is counted in the first of @c zero, @c ksm and
 * @c mapped_elsewhere that applies.
 */
typedef struct hvc_sharing_report {
    /** sizeof(hvc_sharing_report) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_sharing_flags. */
    uint32_t flags;
    /** Memory regions examined. */
    uint64_t regions;
    /** Pages of guest RAM examined (all regions). */
    uint64_t pages;
    /** Pages present in host RAM. */
    uint64_t resident;
    /** Pages in swap. */
    uint64_t swapped;
    /** Pages neither resident nor swapped: never touched by this process
     * (a memfd page another process touched is resident only there). */
    uint64_t not_resident;
    /** Pages on a KSM-merged frame, shared with an identical page of
     * another guest or process (or one of this guest's own). */
    uint64_t ksm;
    /** Pages, not KSM-merged, whose frame is mapped more than once: by
     * another process or another mapping of this one. */
    uint64_t mapped_elsewhere;
    /** Pages mapping the host's shared zero page (also what KSM merges
     * zero-filled pages into when /sys/kernel/mm/ksm/use_zero_pages is
     * 1). Harmless to read, but every other zero page is the same frame. */
    uint64_t zero;
    /** With ::HVC_AUDIT_UNMERGE: regions that had KSM-merged pages, now
     * unmerged. */
    uint64_t unmerged_regions;
} hvc_sharing_report;

/**
 * Audits which pages of the VM's guest RAM share a physical frame.
 *
 * @param opts options, or NULL for the defaults; read during the call
 *             only.
 * @param out  caller-owned report; @c out->size must be set (see
 *             ::hvc_sharing_report). Filled on success only.
 * @return 0; -EINVAL for NULL @p vm or @p out, an options or report size
 *         this library does not know, unknown flags; -EPERM when the
 *         process may not read frame numbers and their counts (not root,
 *         or no CAP_SYS_ADMIN; the message says which) and
 *         ::HVC_AUDIT_RESIDENCY_ONLY is not set; -ENOTSUP on a host
 *         without these files; -ENOMEM when unmerging ran out of memory;
 *         another negative errno when reading them fails (the message
 *         names the file).
 */
HVC_EXTERN int hvc_vm_audit_sharing(hvc_vm *vm, const hvc_audit_options *opts,
                                    hvc_sharing_report *out);

/**
 * Makes hvc_vm_resume() refuse while guest RAM shares frames.
 *
 * With a non-zero @p kinds, every hvc_vm_resume() that would let the
 * vCPUs run again (the outermost one) first audits the VM's RAM, and
 * fails with -EBUSY, the VM staying paused, when it finds a page of a
 * kind in @p kinds; the message gives the counts. The caller can then
 * unmerge (::HVC_AUDIT_UNMERGE), stop the other process, and resume
 * again. A resume whose audit fails (for instance because the privilege
 * was dropped since) refuses with that audit's error. Nested resumes, and
 * vCPUs that were never paused, are not checked. The check costs a walk
 * over the page tables of all guest RAM at each such resume.
 *
 * @param kinds bit mask of ::hvc_sharing_kind; 0 turns the guard off.
 * @return 0; -EINVAL for NULL or unknown bits; -EPERM when the process
 *         cannot audit (the guard is then left as it was).
 */
HVC_EXTERN int hvc_vm_set_sharing_guard(hvc_vm *vm, uint32_t kinds);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_AUDIT_H */
