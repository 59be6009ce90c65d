/* TSC virtualization, backend-agnostic: host facts, the guest frequency,
 * the policy, and the helpers the other tsc_*.c files share. */
#include "tsc_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const hvc_backend_tsc_ops *hvi_tsc_ops(const hvc_vm *vm)
{
    return vm->ops->version >= 2 ? vm->ops->tsc : NULL;
}

int hvi_tsc_need_ops(const hvc_vm *vm, const char *what)
{
    if (hvi_tsc_ops(vm))
        return 0;
    return hvi_error(-ENOTSUP, "%s: the %s backend has no TSC virtualization",
                     what, vm->ops->name);
}

int hvi_tsc_info(const hvc_vm *vm, hvc_tsc_info *info, uint8_t boot_id[16])
{
    uint8_t scratch[16];
    memset(info, 0, sizeof(*info));
    info->size = sizeof(*info);
    return hvi_tsc_ops(vm)->get_info(vm->hv->priv, info,
                                     boot_id ? boot_id : scratch);
}

uint32_t hvi_tsc_told_khz(const hvc_vm *vm, const hvc_tsc_info *info)
{
    return vm->tsc->pinned ? vm->tsc->khz : info->host_tsc_khz;
}

uint32_t hvi_tsc_rate_khz(const hvc_vm *vm, const hvc_tsc_info *info)
{
    return vm->tsc->scaled ? vm->tsc->khz : info->host_tsc_khz;
}

uint64_t hvi_tsc_scaled(const hvc_vm *vm, uint64_t host_tsc)
{
    const struct hvi_tsc *t = vm->tsc;
    return t->scaled ? hvi_mul_shr(host_tsc, t->ratio, t->frac_bits) : host_tsc;
}

bool hvi_tsc_all_stopped(hvc_vm *vm)
{
    if (vm->tsc->paused)
        return true; /* the pause point is taken once no vCPU is active */
    for (uint32_t i = 0; i < vm->opts.max_vcpus; i++)
        if (vm->vcpus[i] && atomic_load(&vm->vcpus[i]->state) != HVI_VCPU_IDLE)
            return false;
    return true;
}

bool hvi_tsc_has_irqchip(const hvc_vm *vm)
{
    return !(vm->opts.flags & HVC_VM_NO_IRQCHIP);
}

bool hvi_tsc_msr_get(hvc_vcpu *vcpu, uint32_t msr, uint64_t *value)
{
    hvc_reg id = HVC_X86_MSR(msr);
    return hvi_bk_get_regs(vcpu, &id, value, 1) == 0;
}

int hvi_tsc_msr_set(hvc_vcpu *vcpu, uint32_t msr, uint64_t value)
{
    hvc_reg id = HVC_X86_MSR(msr);
    return hvi_bk_set_regs(vcpu, &id, &value, 1);
}

int hvi_tsc_init(hvc_vm *vm)
{
    struct hvi_tsc *t = calloc(1, sizeof(*t));
    uint64_t *deadline = calloc(vm->opts.max_vcpus, sizeof(*deadline));
    if (!t || !deadline) {
        free(t);
        free(deadline);
        return hvi_error(-ENOMEM, "out of memory creating a VM");
    }
    hvc_tsc_policy p = HVC_TSC_POLICY_INIT;
    atomic_init(&t->ran, false);
    t->ratio = 1;
    t->tolerance_ppm = HVC_TSC_DEFAULT_TOLERANCE_PPM;
    t->policy = p;
    t->deadline = deadline;
    vm->tsc = t;
    return 0;
}

void hvi_tsc_free(hvc_vm *vm)
{
    if (!vm->tsc)
        return;
    free(vm->tsc->deadline);
    free(vm->tsc);
    vm->tsc = NULL;
}

void hvi_tsc_vcpu_running(hvc_vm *vm)
{
    if (!atomic_load_explicit(&vm->tsc->ran, memory_order_relaxed))
        atomic_store(&vm->tsc->ran, true);
}

/* Copies a filled output struct to the caller's, whose first field is the
 * size it was compiled with. All of these structs are new in this release,
 * so only their full size is known. */
static int copy_out(void *dst, const void *src, size_t full, const char *what)
{
    uint32_t size;
    memcpy(&size, dst, sizeof(size));
    if (size != full)
        return hvi_error(-EINVAL,
                         "%s size %u is not one this library knows (%zu)", what,
                         size, full);
    memcpy(dst, src, full);
    return 0;
}

int hvc_tsc_get_info(hvc_hypervisor *hv, hvc_tsc_info *info)
{
    if (!hv || !info)
        return hvi_error(-EINVAL, "hvc_tsc_get_info: NULL argument");
    const hvc_backend_tsc_ops *ops =
        hv->ops->version >= 2 ? hv->ops->tsc : NULL;
    if (!ops)
        return hvi_error(-ENOTSUP,
                         "hvc_tsc_get_info: the %s backend has no TSC "
                         "virtualization",
                         hv->ops->name);
    hvc_tsc_info full;
    uint8_t boot_id[16];
    memset(&full, 0, sizeof(full));
    full.size = sizeof(full);
    int r = ops->get_info(hv->priv, &full, boot_id);
    if (r < 0)
        return r;
    return copy_out(info, &full, sizeof(full), "hvc_tsc_info");
}

static uint64_t ppm_off(uint32_t khz, uint32_t host)
{
    uint64_t diff = khz > host ? (uint64_t)khz - host : (uint64_t)host - khz;
    return hvi_mul_div(diff, 1000000, host);
}

/* Puts the frequency into the backend and every existing vCPU; on a
 * failure the previous set-up is put back. */
static int program(hvc_vm *vm, uint32_t khz, uint32_t flags)
{
    const hvc_backend_tsc_ops *ops = hvi_tsc_ops(vm);
    int r = ops->vm_set_frequency(vm->priv, khz, flags);
    for (uint32_t i = 0; r == 0 && i < vm->opts.max_vcpus; i++)
        if (vm->vcpus[i])
            r = hvi_bk_apply_frequency(vm->vcpus[i]);
    return r;
}

int hvi_tsc_set_frequency_locked(hvc_vm *vm, uint32_t khz, uint32_t tol_ppm)
{
    struct hvi_tsc *t = vm->tsc;
    if (atomic_load(&t->ran))
        return hvi_error(-EBUSY,
                         "the guest TSC frequency cannot change once a vCPU "
                         "has run (the guest has read its CPUID, and KVM "
                         "refuses a new one after the first KVM_RUN); set it "
                         "before running the vCPUs");
    hvc_tsc_info info;
    int r = hvi_tsc_info(vm, &info, NULL);
    if (r < 0)
        return r;
    uint32_t host = info.host_tsc_khz;
    bool scale = !hvi_within_ppm(khz, host, tol_ppm);
    uint64_t ratio = 1;
    uint32_t frac = 0;
    if (scale) {
        if (!(info.flags & HVC_TSC_SCALING))
            return hvi_error(-ENOTSUP,
                             "guest TSC frequency %u kHz is %" PRIu64
                             " ppm from the host's %u kHz, beyond the "
                             "tolerance of %u ppm, and this host cannot "
                             "scale the TSC (no KVM_CAP_TSC_CONTROL): the "
                             "guest would run at the wrong frequency",
                             khz, ppm_off(khz, host), host, tol_ppm);
        if (khz > info.max_guest_tsc_khz)
            return hvi_error(-ERANGE,
                             "guest TSC frequency %u kHz is above the "
                             "highest this host can scale to (%u kHz)",
                             khz, info.max_guest_tsc_khz);
        frac = info.ratio_frac_bits;
        if ((r = hvc_tsc_ratio(khz, host, frac, &ratio)) < 0)
            return r;
        if (ratio > info.ratio_max)
            return hvi_error(-ERANGE,
                             "TSC ratio 0x%" PRIx64 " for %u/%u kHz is above "
                             "the backend's limit 0x%" PRIx64,
                             ratio, khz, host, info.ratio_max);
    }
    r = program(vm, khz,
                HVC_BACKEND_TSC_PINNED | (scale ? HVC_BACKEND_TSC_SCALE : 0));
    if (r < 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", hvc_last_error());
        uint32_t old = t->pinned ? HVC_BACKEND_TSC_PINNED : 0;
        if (t->scaled)
            old |= HVC_BACKEND_TSC_SCALE;
        program(vm, t->pinned ? t->khz : 0, old);
        return hvi_error(r, "setting the guest TSC frequency to %u kHz: %s",
                         khz, msg);
    }
    t->pinned = true;
    t->khz = khz;
    t->scaled = scale;
    t->ratio = ratio;
    t->frac_bits = frac;
    t->tolerance_ppm = tol_ppm;
    return 0;
}

int hvc_vm_set_tsc_frequency(hvc_vm *vm, const hvc_tsc_frequency_options *opts)
{
    if (!vm || !opts)
        return hvi_error(-EINVAL, "hvc_vm_set_tsc_frequency: NULL argument");
    hvc_tsc_frequency_options o = HVC_TSC_FREQUENCY_OPTIONS_INIT;
    int r = hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                             "hvc_tsc_frequency_options");
    if (r < 0)
        return r;
    if (o.tsc_khz == 0)
        return hvi_error(-EINVAL, "hvc_vm_set_tsc_frequency: tsc_khz is 0");
    if (o.tolerance_ppm > HVC_TSC_MAX_TOLERANCE_PPM)
        return hvi_error(-EINVAL,
                         "hvc_vm_set_tsc_frequency: tolerance %u ppm is above "
                         "the limit of %u ppm",
                         o.tolerance_ppm, HVC_TSC_MAX_TOLERANCE_PPM);
    if ((r = hvi_tsc_need_ops(vm, "hvc_vm_set_tsc_frequency")) < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    r = hvi_tsc_set_frequency_locked(vm, o.tsc_khz, o.tolerance_ppm);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int hvc_vm_get_tsc_config(hvc_vm *vm, hvc_tsc_config *out)
{
    if (!vm || !out)
        return hvi_error(-EINVAL, "hvc_vm_get_tsc_config: NULL argument");
    int r = hvi_tsc_need_ops(vm, "hvc_vm_get_tsc_config");
    if (r < 0)
        return r;
    hvc_tsc_info info;
    hvc_tsc_config c = HVC_TSC_CONFIG_INIT;
    pthread_mutex_lock(&vm->lock);
    const struct hvi_tsc *t = vm->tsc;
    if ((r = hvi_tsc_info(vm, &info, NULL)) == 0) {
        c.flags =
            (t->pinned ? HVC_TSC_PINNED : 0) | (t->scaled ? HVC_TSC_SCALED : 0);
        c.tsc_khz = hvi_tsc_told_khz(vm, &info);
        c.effective_khz = hvi_tsc_rate_khz(vm, &info);
        c.ratio = t->ratio;
        c.ratio_frac_bits = t->frac_bits;
        c.tolerance_ppm = t->tolerance_ppm;
    }
    pthread_mutex_unlock(&vm->lock);
    return r < 0 ? r : copy_out(out, &c, sizeof(c), "hvc_tsc_config");
}

int hvc_vm_set_tsc_policy(hvc_vm *vm, const hvc_tsc_policy *policy)
{
    if (!vm || !policy)
        return hvi_error(-EINVAL, "hvc_vm_set_tsc_policy: NULL argument");
    hvc_tsc_policy p = HVC_TSC_POLICY_INIT;
    int r =
        hvi_copy_options(&p, sizeof(p), policy, sizeof(p), "hvc_tsc_policy");
    if (r < 0)
        return r;
    if (p.pause != HVC_TSC_PAUSE_ADVANCE && p.pause != HVC_TSC_PAUSE_FREEZE)
        return hvi_error(-EINVAL, "hvc_tsc_policy.pause %u is not a policy",
                         p.pause);
    if (p.catchup & ~(uint32_t)(HVC_TSC_CATCHUP_PIT | HVC_TSC_CATCHUP_LAPIC))
        return hvi_error(-EINVAL,
                         "hvc_tsc_policy.catchup 0x%x has unknown "
                         "bits",
                         p.catchup);
    if ((r = hvi_tsc_need_ops(vm, "hvc_vm_set_tsc_policy")) < 0)
        return r;
    hvc_tsc_info info;
    pthread_mutex_lock(&vm->lock);
    struct hvi_tsc *t = vm->tsc;
    if ((r = hvi_tsc_info(vm, &info, NULL)) < 0)
        goto out;
    if (p.pause == HVC_TSC_PAUSE_FREEZE && !(info.flags & HVC_TSC_OFFSET)) {
        r = hvi_error(-ENOTSUP,
                      "the freeze pause policy needs a settable guest TSC "
                      "offset, and this host has none (its KVM accepts "
                      "KVM_VCPU_TSC_OFFSET and ignores it, as under PVM): "
                      "the guest's RDTSC would still see the pause");
        goto out;
    }
    if ((p.catchup & HVC_TSC_CATCHUP_LAPIC) &&
        !(info.flags & HVC_TSC_LAPIC_CATCHUP)) {
        r = hvi_error(-ENOTSUP,
                      "the %s backend cannot catch up local APIC timer "
                      "ticks (KVM reinjects missed ticks of the PIT only)",
                      vm->ops->name);
        goto out;
    }
    bool pit = p.catchup & HVC_TSC_CATCHUP_PIT;
    if (pit != !!(t->policy.catchup & HVC_TSC_CATCHUP_PIT) &&
        hvi_tsc_has_irqchip(vm)) {
        if (!(info.flags & HVC_TSC_PIT_CATCHUP)) {
            r = hvi_error(-ENOTSUP,
                          "the %s backend cannot switch PIT tick "
                          "reinjection",
                          vm->ops->name);
            goto out;
        }
        if ((r = hvi_tsc_ops(vm)->vm_set_pit_catchup(vm->priv, pit)) < 0)
            goto out;
    }
    t->policy = p;
out:
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int hvc_vm_get_tsc_policy(hvc_vm *vm, hvc_tsc_policy *out)
{
    if (!vm || !out)
        return hvi_error(-EINVAL, "hvc_vm_get_tsc_policy: NULL argument");
    pthread_mutex_lock(&vm->lock);
    hvc_tsc_policy p = vm->tsc->policy;
    pthread_mutex_unlock(&vm->lock);
    return copy_out(out, &p, sizeof(p), "hvc_tsc_policy");
}
