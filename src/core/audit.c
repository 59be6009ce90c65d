/* The memory-sharing audit (hvcore/audit.h): counts over every region of a
 * VM, the unmerge response and the resume guard. The pages themselves are
 * read by the OS layer (src/os: hvi_os_frames_*). */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define AUDIT_FLAGS (HVC_AUDIT_UNMERGE | HVC_AUDIT_RESIDENCY_ONLY)
#define SHARING_KINDS (HVC_SHARING_KSM | HVC_SHARING_MAPPED | HVC_SHARING_ZERO)

/* Walks the regions under the read-held mem_lock, so none is removed
 * while its page tables are read; accessors of running vCPUs read-hold it
 * too and are not held up. */
static int audit(hvc_vm *vm, uint32_t flags, hvc_sharing_report *rep)
{
    hvi_os_frames *f;
    bool no_frames;
    int r =
        hvi_os_frames_open(flags & HVC_AUDIT_RESIDENCY_ONLY, &f, &no_frames);
    if (r < 0)
        return r;
    memset(rep, 0, sizeof(*rep));
    rep->size = sizeof(*rep);
    if (no_frames)
        rep->flags |= HVC_SHARING_NO_FRAMES;
    pthread_rwlock_rdlock(&vm->mem_lock);
    for (size_t i = 0; i < vm->nr_regions && r == 0; i++) {
        const hvc_memory_region *reg = vm->regions[i];
        struct hvi_os_sharing s = {0};
        r = hvi_os_frames_scan(f, reg->hva, reg->len, &s);
        if (r < 0)
            break;
        rep->regions++;
        rep->pages += s.pages;
        rep->resident += s.resident;
        rep->swapped += s.swapped;
        rep->not_resident += s.not_resident;
        rep->ksm += s.ksm;
        rep->mapped_elsewhere += s.mapped;
        rep->zero += s.zero;
        if (!(flags & HVC_AUDIT_UNMERGE))
            continue;
        char what[80];
        snprintf(what, sizeof(what),
                 "unmerging memory region 0x%" PRIx64 "+0x%" PRIx64, reg->gpa,
                 reg->len);
        r = hvi_os_memory_advise(reg->hva, reg->len, false, false, what);
        if (r == 0 && (s.ksm || no_frames))
            rep->unmerged_regions++;
    }
    pthread_rwlock_unlock(&vm->mem_lock);
    hvi_os_frames_close(f);
    if (r == 0 && (flags & HVC_AUDIT_UNMERGE))
        rep->flags |= HVC_SHARING_UNMERGED;
    return r;
}

int hvc_vm_audit_sharing(hvc_vm *vm, const hvc_audit_options *opts,
                         hvc_sharing_report *out)
{
    if (!vm || !out)
        return hvi_error(-EINVAL, "hvc_vm_audit_sharing: NULL %s",
                         vm ? "report" : "VM");
    hvc_audit_options o = HVC_AUDIT_OPTIONS_INIT;
    int r = opts ? hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                                    "hvc_audit_options")
                 : 0;
    if (r < 0)
        return r;
    if (o.flags & ~(uint32_t)AUDIT_FLAGS)
        return hvi_error(-EINVAL,
                         "hvc_vm_audit_sharing: flags 0x%" PRIx32
                         " have unknown bits",
                         o.flags);
    /* The first layout is the only one so far; a later one is longer. */
    if (out->size != sizeof(*out))
        return hvi_error(-EINVAL,
                         "hvc_vm_audit_sharing: report size %" PRIu32
                         " is not one this library knows (%zu)",
                         out->size, sizeof(*out));
    hvc_sharing_report rep;
    if ((r = audit(vm, o.flags, &rep)) < 0)
        return r;
    *out = rep;
    return 0;
}

int hvc_vm_set_sharing_guard(hvc_vm *vm, uint32_t kinds)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_set_sharing_guard: VM is NULL");
    if (kinds & ~(uint32_t)SHARING_KINDS)
        return hvi_error(-EINVAL,
                         "hvc_vm_set_sharing_guard: kinds 0x%" PRIx32
                         " have unknown bits",
                         kinds);
    if (kinds) {
        /* Refused now rather than at every resume. */
        hvi_os_frames *f;
        bool no_frames;
        int r = hvi_os_frames_open(false, &f, &no_frames);
        if (r < 0)
            return r;
        hvi_os_frames_close(f);
    }
    atomic_store(&vm->sharing_guard, kinds);
    return 0;
}

int hvi_audit_resume_check(hvc_vm *vm)
{
    uint32_t kinds = atomic_load(&vm->sharing_guard);
    if (!kinds)
        return 0;
    hvc_sharing_report rep;
    int r = audit(vm, 0, &rep);
    if (r < 0) {
        char why[400];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        return hvi_error(r,
                         "hvc_vm_resume: the sharing guard could not audit "
                         "guest RAM, so the VM stays paused: %s",
                         why);
    }
    uint64_t found = ((kinds & HVC_SHARING_KSM) ? rep.ksm : 0) +
                     ((kinds & HVC_SHARING_MAPPED) ? rep.mapped_elsewhere : 0) +
                     ((kinds & HVC_SHARING_ZERO) ? rep.zero : 0);
    if (!found)
        return 0;
    return hvi_error(-EBUSY,
                     "hvc_vm_resume: guest RAM shares frames (%" PRIu64
                     " KSM-merged, %" PRIu64 " mapped elsewhere, %" PRIu64
                     " zero pages), so the sharing guard keeps the VM paused",
                     rep.ksm, rep.mapped_elsewhere, rep.zero);
}
