/* The model backend of tests/tsc_model.c (tsc_model.h). */
#include "tsc_model.h"

#include <stdio.h>
#include <stdlib.h>

static void mlog(struct mhost *h, const char *fmt, unsigned a,
                 unsigned long long b)
{
    if (h->nlog < 128)
        snprintf(h->log[h->nlog++], sizeof(h->log[0]), fmt, a, b);
}

void advance(struct mhost *h, uint64_t ns)
{
    h->tsc += hvi_mul_div(ns, h->khz, 1000000);
    h->realtime_ns += ns;
}

static uint64_t host_ns(const struct mhost *h)
{
    return hvi_mul_div(h->tsc, 1000000, h->khz);
}

static uint64_t scaled(const struct mvcpu *v, uint64_t tsc)
{
    uint64_t r;
    if (!v->hw_khz)
        return tsc;
    cr_assert_eq(hvc_tsc_ratio(v->hw_khz, v->vm->h->khz, v->vm->h->frac, &r),
                 0);
    return hvi_mul_shr(tsc, r, v->vm->h->frac);
}

uint64_t guest_tsc(const struct mvcpu *v)
{
    return scaled(v, v->vm->h->tsc) + v->offset;
}

uint64_t kvmclock(const struct mvm *vm)
{
    return host_ns(vm->h) + (uint64_t)vm->clock_offset;
}

static int m_probe(void)
{
    return 0;
}
static int m_open(void **priv)
{
    (void)priv;
    return -ENOTSUP;
}
static void m_close(void *priv)
{
    (void)priv;
}

static int m_get_cap(void *priv, int cap, uint64_t *value)
{
    struct mhost *h = priv;
    switch (cap) {
    case HVC_CAP_MAX_VCPUS:
    case HVC_CAP_NR_VCPUS:
    case HVC_CAP_MAX_MEMORY_REGIONS: *value = 8; return 0;
    case HVC_CAP_PHYS_ADDR_BITS: *value = 40; return 0;
    case HVC_CAP_IRQ_LINES: *value = 24; return 0;
    case HVC_CAP_TSC_OFFSET: *value = !!(h->flags & HVC_TSC_OFFSET); return 0;
    default: *value = 0; return 0;
    }
}

static int m_vm_create(void *priv, const hvc_vm_options *o, void **out)
{
    (void)o;
    struct mvm *vm = calloc(1, sizeof(*vm));
    vm->h = priv;
    vm->pit_reinject = 1;
    *out = vm;
    return 0;
}
static void m_vm_destroy(void *vm)
{
    free(vm);
}
static int m_map(void *vm, uint32_t slot, uint64_t gpa, uint64_t len, void *hva,
                 uint32_t flags)
{
    (void)vm, (void)slot, (void)gpa, (void)len, (void)hva, (void)flags;
    return 0;
}
static int m_unmap(void *vm, uint32_t slot, uint64_t gpa, uint64_t len)
{
    (void)vm, (void)slot, (void)gpa, (void)len;
    return 0;
}

/* As KVM: a new vCPU's TSC starts at 0, on a host that can offset it;
 * without offsetting it is the host's. */
static int m_vcpu_create(void *vm_priv, uint32_t id, void **out)
{
    struct mvm *vm = vm_priv;
    struct mvcpu *v = calloc(1, sizeof(*v));
    v->vm = vm;
    v->id = id;
    v->hw_khz = vm->hw_khz;
    if (vm->h->flags & HVC_TSC_OFFSET)
        v->offset = 0 - scaled(v, vm->h->tsc);
    *out = v;
    return 0;
}
static void m_vcpu_destroy(void *v)
{
    free(v);
}
static int m_run_prepare(void *v)
{
    (void)v;
    return 0;
}
static int m_run(void *v, hvc_exit *exit)
{
    (void)v;
    exit->reason = HVC_EXIT_HLT;
    return 0;
}
static void m_kick(void *v)
{
    (void)v;
}

static int m_get_regs(void *priv, const hvc_reg *ids, uint64_t *values,
                      size_t n)
{
    struct mvcpu *v = priv;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == HVC_X86_MSR(MSR_TSC))
            values[i] = guest_tsc(v);
        else if (ids[i] == HVC_X86_MSR(MSR_ADJUST))
            values[i] = v->adjust;
        else if (ids[i] == HVC_X86_MSR(MSR_DEADLINE))
            values[i] = v->deadline;
        else
            values[i] = 0;
    }
    return 0;
}

static int m_set_regs(void *priv, const hvc_reg *ids, const uint64_t *values,
                      size_t n)
{
    struct mvcpu *v = priv;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == HVC_X86_MSR(MSR_ADJUST)) {
            v->adjust = values[i];
            mlog(v->vm->h, "adjust%u=%llu", v->id, values[i]);
        } else if (ids[i] == HVC_X86_MSR(MSR_DEADLINE)) {
            v->deadline = values[i];
            mlog(v->vm->h, "deadline%u=%llu", v->id, values[i]);
        }
    }
    return 0;
}

static int m_get_seg(void *v, hvc_reg id, hvc_x86_segment *s)
{
    (void)v, (void)id;
    memset(s, 0, sizeof(*s));
    return 0;
}
static int m_set_seg(void *v, hvc_reg id, const hvc_x86_segment *s)
{
    (void)v, (void)id, (void)s;
    return 0;
}
static int m_fpu_size(void *v, size_t *size)
{
    (void)v;
    *size = 512;
    return 0;
}
static int m_get_fpu(void *v, void *buf, size_t len)
{
    (void)v;
    memset(buf, 0, len);
    return 0;
}
static int m_set_fpu(void *v, const void *buf, size_t len)
{
    (void)v, (void)buf, (void)len;
    return 0;
}
static int m_runnable(void *v)
{
    (void)v;
    return 0;
}

static int t_info(void *priv, hvc_tsc_info *in, uint8_t boot[16])
{
    struct mhost *h = priv;
    memset(in, 0, sizeof(*in));
    in->size = sizeof(*in);
    in->flags = h->flags;
    in->host_tsc_khz = h->khz;
    in->backend_tolerance_ppm = 250;
    in->apic_bus_khz = 1000000;
    in->max_guest_tsc_khz = h->khz;
    if (h->flags & HVC_TSC_SCALING) {
        in->ratio_frac_bits = h->frac;
        in->ratio_max = h->frac == 48 ? UINT64_MAX - 1 : (1ull << 40) - 2;
        in->max_guest_tsc_khz = h->khz * (h->frac == 48 ? 1000u : 200u);
    }
    memcpy(boot, h->boot, 16);
    return 0;
}
static uint64_t t_host_tsc(void *priv)
{
    return ((struct mhost *)priv)->tsc;
}
static int t_set_frequency(void *priv, uint32_t khz, uint32_t flags)
{
    struct mvm *vm = priv;
    vm->khz = flags & HVC_BACKEND_TSC_PINNED ? khz : 0;
    vm->hw_khz = flags & HVC_BACKEND_TSC_SCALE ? khz : 0;
    mlog(vm->h, "frequency%u=%llu", 0, khz);
    return 0;
}
static int t_apply(void *priv)
{
    struct mvcpu *v = priv;
    v->hw_khz = v->vm->hw_khz;
    mlog(v->vm->h, "apply%u%llu", v->id, 0);
    return 0;
}
static int t_get_clock(void *priv, hvc_backend_clock *c)
{
    struct mvm *vm = priv;
    c->clock_ns = kvmclock(vm);
    c->host_tsc = vm->h->tsc;
    c->realtime_ns = vm->h->realtime_ns;
    c->flags = HVC_BACKEND_CLOCK_KERNEL | HVC_BACKEND_CLOCK_STABLE;
    c->error_ns = 0;
    return 0;
}
static int t_set_clock(void *priv, uint64_t clock, uint64_t since)
{
    struct mvm *vm = priv;
    if (since && vm->h->realtime_ns > since)
        clock += vm->h->realtime_ns - since;
    vm->clock_offset = (int64_t)(clock - host_ns(vm->h));
    mlog(vm->h, "clock%u=%llu", 0, clock);
    return 0;
}
static int t_get_offset(void *priv, uint64_t *ofs)
{
    *ofs = ((struct mvcpu *)priv)->offset;
    return 0;
}
static int t_set_offset(void *priv, uint64_t ofs)
{
    struct mvcpu *v = priv;
    struct mhost *h = v->vm->h;
    if (!(h->flags & HVC_TSC_OFFSET))
        return 0; /* accepted and dropped, as under PVM */
    if (++h->offset_writes == h->fail_offset_write)
        return hvi_error(-EIO, "model: offset write %d fails",
                         h->offset_writes);
    v->offset = ofs;
    mlog(h, "offset%u=%llu", v->id, ofs);
    return 0;
}
static int t_pit_catchup(void *priv, int on)
{
    ((struct mvm *)priv)->pit_reinject = on;
    return 0;
}
static int t_pit_drop(void *priv)
{
    ((struct mvm *)priv)->pit_drops++;
    return 0;
}

static const hvc_backend_tsc_ops model_tsc = {
    .version = HVC_BACKEND_TSC_OPS_VERSION,
    .get_info = t_info,
    .host_tsc = t_host_tsc,
    .vm_set_frequency = t_set_frequency,
    .vcpu_apply_frequency = t_apply,
    .vm_get_clock = t_get_clock,
    .vm_set_clock = t_set_clock,
    .vcpu_get_offset = t_get_offset,
    .vcpu_set_offset = t_set_offset,
    .vm_set_pit_catchup = t_pit_catchup,
    .vm_drop_pit_backlog = t_pit_drop,
};

static const hvc_backend_ops model_ops = {
    .version = HVC_BACKEND_OPS_VERSION,
    .name = "model",
    .probe = m_probe,
    .open = m_open,
    .close = m_close,
    .get_cap = m_get_cap,
    .vm_create = m_vm_create,
    .vm_destroy = m_vm_destroy,
    .vm_map_memory = m_map,
    .vm_unmap_memory = m_unmap,
    .vcpu_create = m_vcpu_create,
    .vcpu_destroy = m_vcpu_destroy,
    .vcpu_run_prepare = m_run_prepare,
    .vcpu_run = m_run,
    .vcpu_kick = m_kick,
    .vcpu_get_regs = m_get_regs,
    .vcpu_set_regs = m_set_regs,
    .vcpu_get_segment = m_get_seg,
    .vcpu_set_segment = m_set_seg,
    .vcpu_fpu_size = m_fpu_size,
    .vcpu_get_fpu = m_get_fpu,
    .vcpu_set_fpu = m_set_fpu,
    .vcpu_set_runnable = m_runnable,
    .tsc = &model_tsc,
};

/* A host: 2 GHz, offsets that work, invariant, at some point in time. */
void host_init(struct mhost *h, uint32_t khz, uint32_t flags, uint8_t boot)
{
    memset(h, 0, sizeof(*h));
    h->khz = khz;
    h->flags = flags | HVC_TSC_HOST_INVARIANT | HVC_TSC_PIT_CATCHUP;
    h->tsc = 123456789000ull;
    h->realtime_ns = 1700000000000000000ull;
    memset(h->boot, boot, sizeof(h->boot));
}

static hvc_hypervisor *model_hv(struct mhost *h)
{
    hvc_hypervisor *hv = calloc(1, sizeof(*hv));
    hv->ops = &model_ops;
    hv->priv = h;
    atomic_init(&hv->nr_vms, 0);
    return hv;
}

void mv_open(struct mv *m, struct mhost *h, uint32_t n)
{
    m->hv = model_hv(h);
    m->n = n;
    OK(hvc_vm_create(m->hv, NULL, &m->vm));
    for (uint32_t i = 0; i < n; i++)
        OK(hvc_vcpu_create(m->vm, i, &m->v[i]));
}

void mv_close(struct mv *m)
{
    OK(hvc_vm_destroy(m->vm));
    OK(hvc_hypervisor_close(m->hv));
}

struct mvcpu *mcpu(const struct mv *m, uint32_t i)
{
    return m->v[i]->priv;
}

struct mvm *mvm(const struct mv *m)
{
    return m->vm->priv;
}

void policy(hvc_vm *vm, uint32_t pause, uint32_t max_ms)
{
    hvc_tsc_policy p = HVC_TSC_POLICY_INIT;
    p.pause = pause;
    p.catchup_max_ms = max_ms;
    OK(hvc_vm_set_tsc_policy(vm, &p));
}

void pin(hvc_vm *vm, uint32_t khz)
{
    hvc_tsc_frequency_options f = HVC_TSC_FREQUENCY_OPTIONS_INIT;
    f.tsc_khz = khz;
    OK(hvc_vm_set_tsc_frequency(vm, &f));
}

/* Index of the first log entry starting with @p prefix; -1 if none. */
int first(const struct mhost *h, const char *prefix, int from)
{
    for (int i = from; i < h->nlog; i++)
        if (strncmp(h->log[i], prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

int last(const struct mhost *h, const char *prefix)
{
    for (int i = h->nlog - 1; i >= 0; i--)
        if (strncmp(h->log[i], prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

size_t save(struct mv *m, uint8_t *buf, size_t size)
{
    size_t len;
    OK(hvc_vm_save_tsc(m->vm, buf, size, &len));
    return len;
}

int restore(struct mv *m, const uint8_t *buf, size_t len, uint32_t pause)
{
    hvc_tsc_restore_options o = HVC_TSC_RESTORE_OPTIONS_INIT;
    o.pause = pause;
    return hvc_vm_restore_tsc(m->vm, buf, len, &o);
}
