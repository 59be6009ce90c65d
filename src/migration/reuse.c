/* Restoring into a VM that already exists, for the stream fuzzer
 * (tests/fuzz/fuzz_stream.c): creating a VM per input costs milliseconds,
 * the reader's work microseconds. The stream's CONFIG must describe exactly
 * one of the VMs offered, which then receives its memory, vCPU, interrupt
 * controller, TSC and device sections as a new VM would. Not a public
 * call: a failed restore leaves such a VM half-loaded, which only a
 * harness that resets it can accept. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Region flags a restore passes on (hvi_config_apply). */
#define KEPT_FLAGS                                                             \
    (HVC_MEMORY_READONLY | HVC_MEMORY_MERGEABLE | HVC_MEMORY_THP |             \
     HVC_MEMORY_HUGETLB)

/* @p a the stream's, @p b a VM's own. A hand-over's regions come with
 * its FDS section (a->no_regions): the VM offered must have none yet, and
 * its physical address width, which follows the regions, is not
 * compared. */
static bool same(const struct hvi_config *a, const struct hvi_config *b)
{
    if (a->no_regions)
        return b->nr_regions == 0 &&
               same(&(struct hvi_config){.vm_flags = a->vm_flags,
                                         .max_vcpus = a->max_vcpus,
                                         .nr_vcpus = a->nr_vcpus,
                                         .vcpu_ids = a->vcpu_ids,
                                         .fpu_size = a->fpu_size,
                                         .phys_bits = b->phys_bits,
                                         .tsc_pinned = a->tsc_pinned,
                                         .tsc_khz = a->tsc_khz,
                                         .nr_devices = a->nr_devices},
                    b);
    if (a->vm_flags != b->vm_flags || a->max_vcpus != b->max_vcpus ||
        a->nr_vcpus != b->nr_vcpus || a->nr_regions != b->nr_regions ||
        a->fpu_size != b->fpu_size || a->phys_bits != b->phys_bits ||
        a->tsc_pinned != b->tsc_pinned || a->nr_devices != b->nr_devices ||
        (a->tsc_pinned && a->tsc_khz != b->tsc_khz))
        return false;
    if (a->nr_vcpus &&
        memcmp(a->vcpu_ids, b->vcpu_ids, a->nr_vcpus * sizeof(*a->vcpu_ids)))
        return false;
    for (uint32_t i = 0; i < a->nr_regions; i++)
        if (a->regions[i].gpa != b->regions[i].gpa ||
            a->regions[i].len != b->regions[i].len ||
            ((a->regions[i].flags ^ b->regions[i].flags) & KEPT_FLAGS))
            return false;
    return true;
}

int hvi_config_pick(const struct hvi_sec *s, const struct hvi_config *c,
                    hvc_vm *const *vms, size_t n, hvc_vm **out)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = NULL;
        size_t len = 0;
        struct hvi_config own = {0};
        int r = hvi_config_encode(vms[i], &p, &len);
        if (r == 0)
            r = hvi_config_decode(s, p, len, &own);
        free(p);
        if (r < 0)
            return r;
        bool match = same(c, &own);
        hvi_config_free(&own);
        if (match) {
            *out = vms[i];
            return 0;
        }
    }
    return hvi_fail(s, -ENODEV, "no VM offered has this configuration");
}

int hvi_vm_restore_reuse(hvc_hypervisor *hv, const hvc_stream *stream,
                         const hvc_restore_options *opts, hvc_vm *const *vms,
                         size_t n, hvc_vm **out)
{
    if (!out)
        return hvi_error(-EINVAL, "hvi_vm_restore_reuse: NULL argument");
    *out = NULL;
    if (!hv || !stream || !stream->read || !opts || opts->setup || !vms)
        return hvi_error(-EINVAL, "hvi_vm_restore_reuse: bad argument");
    struct hvi_in in = {.fd = -1};
    int r = hvi_copy_options(&in.s, sizeof(in.s), stream, sizeof(in.s),
                             "hvc_stream");
    if (r < 0)
        return r;
    in.progress = opts->progress;
    in.opaque = opts->opaque;
    r = hvi_restore_reuse(hv, &in, opts, vms, n, out);
    hvi_crypt_free(in.crypt);
    return r;
}
