/* --audit-sharing: the memory-sharing audit of the guest's RAM
 * (hvcore/audit.h, docs/SHARING.md) as one line on stderr, at exit and,
 * with --keep-running, on each SIGUSR1. stdout is the guest's console, so
 * the report stays out of it. */
#include "hvrun.h"

#include <errno.h>
#include <stdio.h>

static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

void hvrun_audit_report(hvc_vm *vm, const char *when)
{
    hvc_audit_options ao = HVC_AUDIT_OPTIONS_INIT;
    hvc_sharing_report rep = {.size = sizeof(rep)};
    int r = hvc_vm_audit_sharing(vm, &ao, &rep);
    char why[512] = "";
    if (r == -EPERM) {
        /* Not root: residency still says something; keep the reason. */
        snprintf(why, sizeof(why), "%s", hvrun_esc(hvc_last_error()));
        ao.flags = HVC_AUDIT_RESIDENCY_ONLY;
        r = hvc_vm_audit_sharing(vm, &ao, &rep);
    }
    if (r < 0) {
        fprintf(stderr, "hvrun: sharing audit %s failed: %s\n", when,
                hvrun_esc(hvc_last_error()));
        return;
    }
    char shared[640];
    if (rep.flags & HVC_SHARING_NO_FRAMES)
        snprintf(shared, sizeof(shared), "sharing not counted (%s)",
                 why[0] ? why : "no frame numbers");
    else
        snprintf(shared, sizeof(shared),
                 "shared: %llu KSM-merged, %llu mapped elsewhere, %llu on "
                 "the zero page",
                 (unsigned long long)rep.ksm,
                 (unsigned long long)rep.mapped_elsewhere,
                 (unsigned long long)rep.zero);
    /* One fprintf: a line is never split by another thread's message. */
    fprintf(stderr,
            "hvrun: sharing audit %s: %llu pages in %llu region%s: %llu "
            "resident, %llu swapped, %llu not resident; %s\n",
            when, (unsigned long long)rep.pages,
            (unsigned long long)rep.regions, plural(rep.regions),
            (unsigned long long)rep.resident, (unsigned long long)rep.swapped,
            (unsigned long long)rep.not_resident, shared);
}
