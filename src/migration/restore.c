/* Restoring a stream into a new VM that nobody else sees until the end
 * section has been read and every check has passed. */
#include "par.h"
#include "postcopy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where each section may come (docs/MIGRATION.md): never before an earlier
 * phase's section. */
#define PHASE_END 11
#define PHASE_MEMORY 4 /* the first that needs the devices attached */
static int phase(uint16_t id)
{
    switch (id) {
    case HVI_CONFIG: return 0;
    case HVI_USER: return 1;
    case HVI_FDS: return 2;
    case HVI_PARALLEL: return 3;
    case HVI_MEMORY:
    case HVI_MEMORY_ROUND: return PHASE_MEMORY;
    case HVI_PARALLEL_END: return 5;
    case HVI_POSTCOPY: return 6;
    case HVI_VCPU: return 7;
    case HVI_IRQCHIP: return 8;
    case HVI_TSC: return 9;
    case HVI_DEVICE: return 10;
    case HVI_END: return PHASE_END;
    default: return -1;
    }
}

struct restore {
    struct hvi_in *in;
    const hvc_restore_options *opts;
    hvc_vm *vm;
    struct hvi_config cfg;
    struct hvi_mem_state *mem;
    bool mapped;
    int phase;
    bool setup_done;
    uint8_t *user;
    size_t user_len;
    uint8_t *vcpu_seen; /* by vCPU id */
    hvc_device **devs;
    size_t nr_devs;
    uint8_t *dev_seen; /* by attachment index */
    bool irqchip_seen, tsc_seen;
    /* Totals the END section must match. */
    uint64_t sections, raw_pages, zero_pages, payload_bytes;
};

/* Runs the caller's setup callback before the first section that needs
 * the VM built (s is that section). Its errors are the callback's, not the
 * section's, so they name the callback and say what it failed to do. */
static int do_setup(struct restore *st, const struct hvi_sec *s)
{
    (void)s;
    st->setup_done = true;
    if (st->opts->setup) {
        /* An empty message afterwards means the callback set none. */
        hvi_error(0, "%s", "");
        int r =
            st->opts->setup(st->opts->opaque, st->vm, st->user, st->user_len);
        if (r < 0) {
            char why[384];
            snprintf(why, sizeof(why), "%s", hvc_last_error());
            if (r < -4095)
                r = -EINVAL; /* not an errno */
            return hvi_error(r, "restore: the setup callback failed (%s): %s",
                             hvc_strerror(r),
                             why[0] ? why : "it left no message");
        }
    }
    int r = hvi_devices_snapshot(st->vm, &st->devs, &st->nr_devs);
    if (r < 0)
        return r;
    if (st->nr_devs != st->cfg.nr_devices) {
        /* Name what was attached, so the caller sees what is missing. */
        char names[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < st->nr_devs && used < sizeof(names); i++) {
            int n = snprintf(names + used, sizeof(names) - used, "%s\"%s\"",
                             i ? ", " : "", hvc_device_name(st->devs[i]));
            if (n < 0)
                break;
            used += (size_t)n;
        }
        return hvi_error(-ENOENT,
                         "restore: the stream holds %llu device records; the "
                         "setup callback attached %zu devices%s%s%s",
                         (unsigned long long)st->cfg.nr_devices, st->nr_devs,
                         st->nr_devs ? " (" : "", names,
                         st->nr_devs ? ")" : "");
    }
    st->dev_seen = calloc(st->nr_devs + 1, 1);
    return st->dev_seen ? 0 : hvi_error(-ENOMEM, "out of memory");
}

static int on_vcpu(struct restore *st, const struct hvi_sec *s)
{
    uint32_t id = s->instance;
    hvc_vcpu *v = id < st->cfg.max_vcpus ? hvi_vm_vcpu(st->vm, id) : NULL;
    if (!v)
        return hvi_fail(s, -EBADMSG, "the configuration has no vCPU %u", id);
    if (st->vcpu_seen[id])
        return hvi_fail(s, -EBADMSG, "a second section for vCPU %u", id);
    st->vcpu_seen[id] = 1;
    uint8_t *p = NULL;
    size_t len;
    int r = hvi_read_payload(st->in, s, &p, &len);
    if (r == 0)
        r = hvi_vcpu_apply(s, v, p, len);
    free(p);
    return r;
}

static int on_device(struct restore *st, const struct hvi_sec *s)
{
    uint8_t *p = NULL;
    size_t len;
    int r = hvi_read_payload(st->in, s, &p, &len);
    if (r < 0)
        return r;
    uint16_t nl = len >= 2 ? hvi_get16(p) : 0;
    char name[64];
    if (len < 2 || nl == 0 || nl >= sizeof(name) || (size_t)nl + 2 > len ||
        memchr(p + 2, 0, nl)) {
        free(p);
        return hvi_fail(s, -EBADMSG, "malformed device name (length %u)", nl);
    }
    memcpy(name, p + 2, nl);
    name[nl] = 0;
    size_t i = 0;
    while (i < st->nr_devs && strcmp(hvc_device_name(st->devs[i]), name) != 0)
        i++;
    if (i == st->nr_devs)
        r = hvi_fail(s, -ENOENT,
                     "the stream has state for device \"%s\", which the "
                     "setup callback did not attach",
                     HVI_QUOTE(name));
    else if (st->dev_seen[i])
        r = hvi_fail(s, -EBADMSG, "a second record for device \"%s\"",
                     HVI_QUOTE(name));
    else if ((r = hvc_device_load_state(st->devs[i], p + 2 + nl,
                                        len - 2 - nl)) < 0)
        r = hvi_fail(s, r, "%s", hvc_last_error());
    else
        st->dev_seen[i] = 1;
    free(p);
    return r;
}

static int on_end(struct restore *st, const struct hvi_sec *s)
{
    uint8_t *p = NULL;
    size_t len;
    int r = hvi_read_payload(st->in, s, &p, &len);
    if (r < 0)
        return r;
    uint64_t t[4] = {0};
    if (len == 32)
        for (int i = 0; i < 4; i++)
            t[i] = hvi_get64(p + 8 * i);
    free(p);
    if (len != 32)
        return hvi_fail(s, -EBADMSG, "totals of %zu bytes, not 32", len);
    if (t[0] != st->sections || t[1] != st->raw_pages ||
        t[2] != st->zero_pages || t[3] != st->payload_bytes)
        return hvi_fail(s, -EBADMSG,
                        "totals %llu sections, %llu raw and %llu zero pages, "
                        "%llu payload bytes; the stream had %llu, %llu, "
                        "%llu, %llu",
                        (unsigned long long)t[0], (unsigned long long)t[1],
                        (unsigned long long)t[2], (unsigned long long)t[3],
                        (unsigned long long)st->sections,
                        (unsigned long long)st->raw_pages,
                        (unsigned long long)st->zero_pages,
                        (unsigned long long)st->payload_bytes);
    for (uint32_t i = 0; i < st->cfg.nr_vcpus; i++)
        if (!st->vcpu_seen[st->cfg.vcpu_ids[i]])
            return hvi_fail(s, -EBADMSG, "vCPU %u has no state in the stream",
                            st->cfg.vcpu_ids[i]);
    for (size_t i = 0; i < st->nr_devs; i++)
        if (!st->dev_seen[i])
            return hvi_fail(s, -ENOENT,
                            "device \"%s\" has no state in the stream",
                            hvc_device_name(st->devs[i]));
    if (st->cfg.nr_vcpus && !st->tsc_seen)
        return hvi_fail(s, -EBADMSG, "the stream has no TSC section");
    if (!(st->cfg.vm_flags & HVC_VM_NO_IRQCHIP) && !st->irqchip_seen)
        return hvi_fail(s, -EBADMSG, "the stream has no IRQCHIP section");
    return 0;
}

static int on_section(struct restore *st, const struct hvi_sec *s)
{
    int ph = phase(s->id);
    if (s->id == HVI_PAD || (ph < 0 && !(s->flags & HVI_F_REQUIRED)))
        return hvi_skip_payload(st->in, s);
    if (ph < 0)
        return hvi_fail(s, -EPROTO,
                        "a required section this library does not know");
    if (s->version == 0 || s->version > HVI_VERSION)
        return hvi_fail(s, -EPROTO,
                        "section version %u; this library reads up to %u",
                        s->version, HVI_VERSION);
    if (!(s->flags & HVI_F_REQUIRED) && s->id != HVI_USER)
        return hvi_fail(s, -EBADMSG, "a required section is marked optional");
    bool repeats = s->id == HVI_MEMORY || s->id == HVI_MEMORY_ROUND ||
                   s->id == HVI_VCPU || s->id == HVI_DEVICE;
    if (ph < st->phase || (ph == st->phase && !repeats))
        return hvi_fail(s, -EBADMSG, "out of order or repeated");
    if (s->id != HVI_CONFIG && !st->vm)
        return hvi_fail(s, -EBADMSG, "the stream does not start with CONFIG");
    if (s->id == HVI_FDS && !st->in->ho)
        return hvi_fail(s, -EBADMSG,
                        "descriptors in a stream that is not a "
                        "hand-over");
    if (st->in->ho && ph > 2 && !st->in->ho->seen)
        return hvi_fail(s, -EBADMSG,
                        "a hand-over stream without its FDS "
                        "section");
    if (st->in->ho && ph > 2)
        hvi_ho_state_arrived(st->in->ho);
    if (st->in->ho && s->id == HVI_MEMORY)
        return hvi_fail(s, -EBADMSG, "guest pages in a hand-over stream");
    /* With parallel connections every page is round-tagged, and the
     * connections' ends come before anything of the switchover. */
    if (s->id == HVI_MEMORY && st->in->par)
        return hvi_fail(s, -EBADMSG,
                        "an untagged memory run in a stream "
                        "with parallel connections");
    if (ph > 5 && st->in->par && st->phase < 5)
        return hvi_fail(s, -EBADMSG,
                        "parallel connections without "
                        "PARALLEL_END");
    st->phase = ph;
    if (ph >= 3 && !st->setup_done) {
        int r = do_setup(st, s);
        if (r < 0)
            return r;
    }
    switch (s->id) {
    case HVI_CONFIG: {
        uint8_t *p = NULL;
        size_t len;
        int r = hvi_read_payload(st->in, s, &p, &len);
        if (r < 0)
            return r;
        r = hvi_config_decode(s, p, len, &st->cfg);
        free(p);
        if (r < 0)
            return r;
        st->vcpu_seen = calloc(st->cfg.max_vcpus, 1);
        if (!st->vcpu_seen)
            return hvi_error(-ENOMEM, "out of memory");
        return 0; /* the VM is created by the caller of on_section */
    }
    case HVI_USER: return hvi_read_payload(st->in, s, &st->user, &st->user_len);
    case HVI_FDS: {
        uint8_t *p = NULL;
        size_t len;
        int r = hvi_read_payload(st->in, s, &p, &len);
        if (r == 0)
            r = hvi_ho_apply(st->in->ho, s, p, len, &st->cfg, st->vm);
        free(p);
        /* The devices now, so that everything that takes time is done
         * before the sender pauses the guest. */
        if (r == 0)
            r = do_setup(st, s);
        if (r == 0)
            r = hvi_ho_ready(st->in->ho);
        return r;
    }
    case HVI_MEMORY:
        return hvi_read_memory(st->in, s, st->mem, &st->raw_pages,
                               &st->zero_pages);
    case HVI_PARALLEL: return hvi_par_in_begin(st->in, s, st->vm);
    case HVI_MEMORY_ROUND: return hvi_par_in_record(st->in, s);
    case HVI_PARALLEL_END: return hvi_par_in_end(st->in, s);
    case HVI_POSTCOPY:
        if (!st->in->live)
            return hvi_fail(s, -EBADMSG,
                            "a post-copy page list in a stream that is not "
                            "a live migration");
    {
        int r = hvi_pc_read_plan(st->in, s, st->vm, &st->in->plan);
        /* The plan's pages are still the first round's here, and go back
         * only once the stream is in (hvi_pc_prepare): the devices, whose
         * state comes next, stay quiescent until then, so that none reads
         * a ring or buffer from before the switchover or writes into a
         * page about to be taken back. live.c lets them go. */
        if (r == 0 && st->in->plan && st->vm)
            hvi_devices_hold(st->vm, true);
        return r;
    }
    case HVI_VCPU: return on_vcpu(st, s);
    case HVI_IRQCHIP: {
        uint8_t *p = NULL;
        size_t len;
        int r = hvi_read_payload(st->in, s, &p, &len);
        if (r == 0 && (st->cfg.vm_flags & HVC_VM_NO_IRQCHIP))
            r = hvi_fail(s, -EBADMSG, "the VM has no interrupt controller");
        if (r == 0)
            r = hvi_irqchip_apply(s, st->vm, p, len);
        free(p);
        st->irqchip_seen = true;
        return r;
    }
    case HVI_TSC: {
        uint8_t *p = NULL;
        size_t len;
        int r = hvi_read_payload(st->in, s, &p, &len);
        if (r == 0 && (r = hvc_vm_restore_tsc(st->vm, p, len, NULL)) < 0)
            r = hvi_fail(s, r, "%s", hvc_last_error());
        free(p);
        st->tsc_seen = true;
        return r;
    }
    case HVI_DEVICE: return on_device(st, s);
    case HVI_END: return on_end(st, s);
    }
    return hvi_fail(s, -EBADMSG, "unexpected section");
}

static bool needs_hugetlb(const struct hvi_config *c)
{
    for (uint32_t i = 0; i < c->nr_regions; i++)
        if (c->regions[i].flags & HVC_MEMORY_HUGETLB)
            return true;
    return false;
}

/* @p reuse NULL: the stream's CONFIG creates the VM. Otherwise the VM is
 * the one of @p reuse whose configuration is the stream's (reuse.c), and it
 * is not destroyed on failure. */
static int restore_stream(hvc_hypervisor *hv, struct hvi_in *in,
                          const hvc_restore_options *opts, bool mapped,
                          hvc_vm *const *reuse, size_t nr_reuse, hvc_vm **out)
{
    struct restore st = {.in = in, .opts = opts, .mapped = mapped, .phase = -1};
    int r = hvi_read_header(in, hvc_hypervisor_backend(hv), opts->key,
                            opts->passphrase);
    while (r == 0 && st.phase != PHASE_END) {
        struct hvi_sec s;
        if ((r = hvi_next_section(in, &s)) < 0)
            break;
        st.sections++;
        st.payload_bytes += s.length;
        if ((r = on_section(&st, &s)) < 0)
            break;
        if (s.id == HVI_CONFIG) {
            st.cfg.no_regions = in->ho != NULL;
            if (mapped && needs_hugetlb(&st.cfg)) {
                /* A private mapping of the snapshot file is page-cache
                 * memory, never hugetlbfs: read the pages into huge pages
                 * instead of dropping the region's flag. */
                hvi_log(HVC_LOG_WARN,
                        "restore: a memory region uses hugetlb pages, which "
                        "a mapping of the snapshot file cannot give; reading "
                        "guest memory instead of mapping it");
                mapped = false;
                st.mapped = false;
            }
            if (reuse && (r = hvi_config_check(hv, &s, &st.cfg)) < 0)
                break;
            r = reuse ? hvi_config_pick(&s, &st.cfg, reuse, nr_reuse, &st.vm)
                      : hvi_config_apply(hv, &s, &st.cfg, opts->kick_signal,
                                         mapped, &st.vm);
            if (r == 0)
                r = hvi_mem_state_new(st.vm, mapped, &st.mem);
        }
    }
    if (r == 0 && !st.setup_done)
        r = hvi_fail(NULL, -EBADMSG, "the stream has no sections");
    if (r == 0 && in->progress) {
        in->next_report = 0;
        r = hvi_in_progress(in);
    }
    hvi_mem_state_free(st.mem);
    hvi_config_free(&st.cfg);
    free(st.user);
    free(st.vcpu_seen);
    free(st.devs);
    free(st.dev_seen);
    if (r < 0) {
        /* no thread may place a page once the VM goes */
        r = hvi_par_in_stop(in, r);
        if (reuse)
            *out = st.vm; /* the VM that may be half-loaded, or NULL */
        if (st.vm && !reuse) {
            /* Keep the reason: destroying the VM may record messages. */
            char why[512];
            strncpy(why, hvc_last_error(), sizeof(why) - 1);
            why[sizeof(why) - 1] = 0;
            hvc_vm_destroy(st.vm);
            hvi_error(r, "%s", why);
        }
        return r;
    }
    *out = st.vm;
    return 0;
}

int hvi_restore(hvc_hypervisor *hv, struct hvi_in *in,
                const hvc_restore_options *opts, bool mapped, hvc_vm **out)
{
    return restore_stream(hv, in, opts, mapped, NULL, 0, out);
}

int hvi_restore_reuse(hvc_hypervisor *hv, struct hvi_in *in,
                      const hvc_restore_options *opts, hvc_vm *const *vms,
                      size_t n, hvc_vm **out)
{
    return restore_stream(hv, in, opts, false, vms, n, out);
}
