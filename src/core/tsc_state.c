/* The TSC state record (hvcore/tsc.h, docs/TSC.md): capture at one pause
 * point, validation of every field, and the restore procedure of the
 * kernel's Documentation/virt/kvm/devices/vcpu.rst. */
#include "tsc_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEADER_SIZE 128u
#define VCPU_SIZE 48u
/* Largest sizes a reader accepts for a newer, compatible record: a bound
 * on what a hostile record can make the reader skip, far above any real
 * growth. */
#define MAX_HEADER_SIZE 4096u
#define MAX_VCPU_SIZE 1024u
#define MIN_KHZ 1000u /* 1 MHz: no x86 TSC ticks slower */
#define MAX_KHZ 0x7fffffffu
#define KNOWN_FLAGS                                                            \
    (HVC_TSC_STATE_PINNED | HVC_TSC_STATE_SCALED |                             \
     HVC_TSC_STATE_KERNEL_SAMPLE | HVC_TSC_STATE_CLOCK_STABLE)
#define KNOWN_VCPU_FLAGS (HVC_TSC_VCPU_ADJUST | HVC_TSC_VCPU_DEADLINE)
#define DEFAULT_MAX_ERROR_US 1000u

_Static_assert(sizeof(hvc_tsc_state) == HEADER_SIZE, "hvc_tsc_state layout");
_Static_assert(sizeof(hvc_tsc_vcpu_state) == VCPU_SIZE,
               "hvc_tsc_vcpu_state layout");

int hvc_vm_tsc_state_size(hvc_vm *vm, size_t *size)
{
    if (!vm || !size)
        return hvi_error(-EINVAL, "hvc_vm_tsc_state_size: NULL argument");
    pthread_mutex_lock(&vm->lock);
    *size = HEADER_SIZE + (size_t)vm->nr_vcpus * VCPU_SIZE;
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

static int save_locked(hvc_vm *vm, void *buf, size_t length, size_t *written)
{
    struct hvi_tsc *t = vm->tsc;
    const hvc_backend_tsc_ops *ops = hvi_tsc_ops(vm);
    if (vm->nr_vcpus == 0)
        return hvi_error(-EINVAL, "hvc_vm_save_tsc: the VM has no vCPUs");
    if (!hvi_tsc_all_stopped(vm))
        return hvi_error(-EBUSY, "hvc_vm_save_tsc: a vCPU is running; pause "
                                 "the VM first");
    size_t need = HEADER_SIZE + (size_t)vm->nr_vcpus * VCPU_SIZE;
    if (length < need)
        return hvi_error(-ENOSPC,
                         "hvc_vm_save_tsc: the record takes %zu bytes, the "
                         "buffer has %zu",
                         need, length);
    hvc_tsc_info info;
    hvc_tsc_state h;
    memset(&h, 0, sizeof(h));
    int r = hvi_tsc_info(vm, &info, h.host_boot_id);
    hvc_backend_clock c = t->point;
    if (r == 0 && !t->paused)
        r = ops->vm_get_clock(vm->priv, &c);
    if (r < 0)
        return r;
    h.magic = HVC_TSC_STATE_MAGIC;
    h.version = HVC_TSC_STATE_VERSION;
    h.header_size = HEADER_SIZE;
    h.vcpu_size = VCPU_SIZE;
    h.nr_vcpus = vm->nr_vcpus;
    h.flags =
        (t->pinned ? HVC_TSC_STATE_PINNED : 0) |
        (t->scaled ? HVC_TSC_STATE_SCALED : 0) |
        (c.flags & HVC_BACKEND_CLOCK_KERNEL ? HVC_TSC_STATE_KERNEL_SAMPLE : 0) |
        (c.flags & HVC_BACKEND_CLOCK_STABLE ? HVC_TSC_STATE_CLOCK_STABLE : 0);
    h.tsc_khz = hvi_tsc_told_khz(vm, &info);
    h.host_tsc_khz = info.host_tsc_khz;
    h.ratio_frac_bits = t->frac_bits;
    h.ratio = t->ratio;
    h.host_tsc = c.host_tsc;
    h.kvmclock_ns = c.clock_ns;
    h.realtime_ns = c.realtime_ns;
    h.sample_error_ns = c.flags & HVC_BACKEND_CLOCK_KERNEL ? 0 : c.error_ns;
    uint8_t *out = buf;
    memcpy(out, &h, sizeof(h));
    size_t at = HEADER_SIZE;
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++) {
        hvc_vcpu *v = vm->vcpus[i];
        if (!v)
            continue;
        hvc_tsc_vcpu_state e;
        memset(&e, 0, sizeof(e));
        e.id = i;
        if ((r = hvi_bk_get_offset(v, &e.offset)) < 0)
            return r;
        e.guest_tsc = hvi_tsc_scaled(vm, c.host_tsc) + e.offset;
        if (hvi_tsc_msr_get(v, HVI_MSR_TSC_ADJUST, &e.tsc_adjust))
            e.flags |= HVC_TSC_VCPU_ADJUST;
        if (t->frozen) {
            e.tsc_deadline = t->deadline[i]; /* taken off at the pause */
            e.flags |= HVC_TSC_VCPU_DEADLINE;
        } else if (hvi_tsc_has_irqchip(vm) &&
                   hvi_tsc_msr_get(v, HVI_MSR_TSC_DEADLINE, &e.tsc_deadline)) {
            e.flags |= HVC_TSC_VCPU_DEADLINE;
        }
        memcpy(out + at, &e, sizeof(e));
        at += VCPU_SIZE;
    }
    if (written)
        *written = need;
    return 0;
}

int hvc_vm_save_tsc(hvc_vm *vm, void *buf, size_t length, size_t *written)
{
    if (!vm || !buf)
        return hvi_error(-EINVAL, "hvc_vm_save_tsc: NULL argument");
    int r = hvi_tsc_need_ops(vm, "hvc_vm_save_tsc");
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    r = save_locked(vm, buf, length, written);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

#define BAD(...) hvi_error(-EINVAL, "TSC record: " __VA_ARGS__)

static int check_header(const hvc_tsc_state *h, size_t length,
                        uint32_t max_vcpus)
{
    if (h->magic != HVC_TSC_STATE_MAGIC)
        return BAD("magic 0x%08x is not \"HVTS\" (0x%08x)", h->magic,
                   HVC_TSC_STATE_MAGIC);
    if (h->version != HVC_TSC_STATE_VERSION)
        return BAD("version %u; this library reads version %u", h->version,
                   HVC_TSC_STATE_VERSION);
    if (h->header_size < HEADER_SIZE || h->header_size > MAX_HEADER_SIZE)
        return BAD("header size %u is outside %u..%u", h->header_size,
                   HEADER_SIZE, MAX_HEADER_SIZE);
    if (h->vcpu_size < VCPU_SIZE || h->vcpu_size > MAX_VCPU_SIZE)
        return BAD("vCPU entry size %u is outside %u..%u", h->vcpu_size,
                   VCPU_SIZE, MAX_VCPU_SIZE);
    if (h->nr_vcpus == 0 || h->nr_vcpus > max_vcpus)
        return BAD("%u vCPUs; the VM allows 1..%u", h->nr_vcpus, max_vcpus);
    uint64_t total = h->header_size + (uint64_t)h->nr_vcpus * h->vcpu_size;
    if (total != length)
        return BAD("%u vCPUs make %" PRIu64 " bytes, the record has %zu",
                   h->nr_vcpus, total, length);
    bool reserved = h->reserved0 || h->reserved1;
    for (size_t i = 0; i < sizeof(h->reserved) / sizeof(h->reserved[0]); i++)
        reserved |= h->reserved[i] != 0;
    if (reserved)
        return BAD("a reserved header field is not zero");
    if (h->flags & ~(uint32_t)KNOWN_FLAGS)
        return BAD("unknown flags 0x%x", h->flags & ~(uint32_t)KNOWN_FLAGS);
    if (h->tsc_khz < MIN_KHZ || h->tsc_khz > MAX_KHZ ||
        h->host_tsc_khz < MIN_KHZ || h->host_tsc_khz > MAX_KHZ)
        return BAD("frequency %u kHz (host %u kHz) is outside %u..%u kHz",
                   h->tsc_khz, h->host_tsc_khz, MIN_KHZ, MAX_KHZ);
    if (h->flags & HVC_TSC_STATE_SCALED) {
        uint64_t ratio;
        if (h->ratio_frac_bits != HVC_TSC_FRAC_BITS_VMX &&
            h->ratio_frac_bits != HVC_TSC_FRAC_BITS_SVM)
            return BAD("%u fractional bits is not a hardware format",
                       h->ratio_frac_bits);
        if (hvc_tsc_ratio(h->tsc_khz, h->host_tsc_khz, h->ratio_frac_bits,
                          &ratio) < 0 ||
            ratio != h->ratio)
            return BAD("ratio 0x%" PRIx64 " does not scale %u kHz to %u kHz",
                       h->ratio, h->host_tsc_khz, h->tsc_khz);
    } else {
        if (h->ratio_frac_bits != 0 || h->ratio != 1)
            return BAD("unscaled, yet ratio 0x%" PRIx64 " with %u fractional "
                       "bits (expected 1 and 0)",
                       h->ratio, h->ratio_frac_bits);
        if (!hvi_within_ppm(h->tsc_khz, h->host_tsc_khz,
                            HVC_TSC_MAX_TOLERANCE_PPM))
            return BAD("unscaled, yet %u kHz is far from the host's %u kHz",
                       h->tsc_khz, h->host_tsc_khz);
    }
    if ((h->flags & HVC_TSC_STATE_KERNEL_SAMPLE) && h->sample_error_ns)
        return BAD("a kernel sample with a sampling error of %u ns",
                   h->sample_error_ns);
    if (h->sample_error_ns > 1000000000u)
        return BAD("sampling error %u ns is above 1 s", h->sample_error_ns);
    /* kvmclock may hold any value: the VM carries it on and saves it
     * again, so any bound here would one day refuse the VM's own records;
     * all arithmetic on it is modular (as KVM's own offset is). The
     * realtime is a host clock's, read again at every save. */
    if (h->realtime_ns >= (1ull << 62) || h->realtime_ns == 0)
        return BAD("CLOCK_REALTIME %" PRIu64 " ns is impossible",
                   h->realtime_ns);
    return 0;
}

/* Reads and checks the entries into @p e (h->nr_vcpus of them). */
static int check_vcpus(hvc_vm *vm, const hvc_tsc_state *h, const uint8_t *buf,
                       hvc_tsc_vcpu_state *e, uint8_t *seen)
{
    for (uint32_t i = 0; i < h->nr_vcpus; i++) {
        memcpy(&e[i], buf + h->header_size + (size_t)i * h->vcpu_size,
               sizeof(e[i]));
        const hvc_tsc_vcpu_state *v = &e[i];
        if (v->id >= vm->opts.max_vcpus)
            return BAD("vCPU id %u is out of range (the VM allows ids below "
                       "%u)",
                       v->id, vm->opts.max_vcpus);
        if (seen[v->id]++)
            return BAD("vCPU %u appears twice", v->id);
        if (v->flags & ~(uint32_t)KNOWN_VCPU_FLAGS)
            return BAD("vCPU %u has unknown flags 0x%x", v->id, v->flags);
        if (v->reserved)
            return BAD("vCPU %u: a reserved field is not zero", v->id);
        uint64_t want =
            hvi_mul_shr(h->host_tsc, h->ratio, h->ratio_frac_bits) + v->offset;
        if (v->guest_tsc != want)
            return BAD("vCPU %u: guest TSC 0x%" PRIx64 " is not the host TSC "
                       "scaled plus the offset (0x%" PRIx64 ")",
                       v->id, v->guest_tsc, want);
        if (!vm->vcpus[v->id])
            return BAD("vCPU %u is in the record but not in the VM", v->id);
    }
    if (h->nr_vcpus != vm->nr_vcpus)
        for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
            if (vm->vcpus[i] && !seen[i])
                return BAD("the VM's vCPU %u is not in the record", i);
    return 0;
}

#undef BAD

/* The record's frequency becomes the VM's, if it is not already. */
static int match_frequency(hvc_vm *vm, const hvc_tsc_state *h)
{
    struct hvi_tsc *t = vm->tsc;
    hvc_tsc_info info;
    int r = hvi_tsc_info(vm, &info, NULL);
    if (r < 0)
        return r;
    uint32_t told = hvi_tsc_told_khz(vm, &info);
    bool pin = (h->flags & HVC_TSC_STATE_PINNED) && !t->pinned;
    if (h->tsc_khz == told && (!pin || atomic_load(&t->ran)))
        return 0;
    if (atomic_load(&t->ran))
        return hvi_error(-EBUSY,
                         "the TSC record's guest frequency is %u kHz, the "
                         "VM's %u kHz, and its vCPUs have run (the frequency "
                         "is set before a VM first runs)",
                         h->tsc_khz, told);
    return hvi_tsc_set_frequency_locked(
        vm, h->tsc_khz,
        t->pinned ? t->tolerance_ppm : HVC_TSC_DEFAULT_TOLERANCE_PPM);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int hvc_vm_restore_tsc(hvc_vm *vm, const void *buf, size_t length,
                       const hvc_tsc_restore_options *opts)
{
    if (!vm || !buf)
        return hvi_error(-EINVAL, "hvc_vm_restore_tsc: NULL argument");
    int r = hvi_tsc_need_ops(vm, "hvc_vm_restore_tsc");
    if (r < 0)
        return r;
    hvc_tsc_restore_options o = HVC_TSC_RESTORE_OPTIONS_INIT;
    if (opts && (r = hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                                      "hvc_tsc_restore_options")) < 0)
        return r;
    if (opts && o.pause != HVC_TSC_PAUSE_ADVANCE &&
        o.pause != HVC_TSC_PAUSE_FREEZE)
        return hvi_error(-EINVAL,
                         "hvc_tsc_restore_options.pause %u is not a policy",
                         o.pause);
    if (length < HEADER_SIZE)
        return hvi_error(-EINVAL,
                         "TSC record: %zu bytes, shorter than its %u-byte "
                         "header",
                         length, HEADER_SIZE);
    hvc_tsc_state h;
    memcpy(&h, buf, sizeof(h));
    hvc_tsc_vcpu_state *e = NULL;
    uint8_t *seen = NULL;
    pthread_mutex_lock(&vm->lock);
    struct hvi_tsc *t = vm->tsc;
    if (!opts)
        o.pause = t->policy.pause;
    if (!o.max_error_us)
        o.max_error_us = DEFAULT_MAX_ERROR_US;
    if ((r = check_header(&h, length, vm->opts.max_vcpus)) < 0)
        goto out;
    e = calloc(h.nr_vcpus, sizeof(*e));
    seen = calloc(vm->opts.max_vcpus, 1);
    if (!e || !seen) {
        r = hvi_error(-ENOMEM, "out of memory restoring a TSC record");
        goto out;
    }
    if ((r = check_vcpus(vm, &h, buf, e, seen)) < 0)
        goto out;
    if (!hvi_tsc_all_stopped(vm)) {
        r = hvi_error(-EBUSY, "hvc_vm_restore_tsc: a vCPU is running; pause "
                              "the VM first");
        goto out;
    }
    if ((r = match_frequency(vm, &h)) < 0)
        goto out;
    bool defer = t->paused && t->policy.pause == HVC_TSC_PAUSE_FREEZE;
    r = hvi_tsc_apply(vm, &h, e, h.nr_vcpus, o.pause, o.max_error_us,
                      defer ? HVI_APPLY_DEFER_DEADLINES : 0);
    /* A paused VM's clocks are now defined as of this restore: its own
     * policy covers the time from here to hvc_vm_resume(). */
    if (r == 0 && t->paused &&
        (r = hvi_tsc_ops(vm)->vm_get_clock(vm->priv, &t->point)) == 0)
        t->point_mono_ns = mono_ns();
out:
    pthread_mutex_unlock(&vm->lock);
    free(e);
    free(seen);
    return r;
}
