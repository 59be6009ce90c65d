/* The Hypervisor.framework backend: probing, opening, capabilities and the
 * ops table. */
#include "hvf.h"

#include "../../arch/x86/irqchip.h"

#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>

static int hvf_probe(void)
{
    int r = hvi_hvf_load();
    if (r < 0)
        return r;
    uint64_t max = 0;
    hv_return_t h = hvi_hvf.hv_capability(HV_CAP_VCPUMAX, &max);
    if (h != HV_SUCCESS)
        return hvi_hvf_fail("hv_capability(HV_CAP_VCPUMAX)", h);
    return 0;
}

static uint64_t host_phys_bits(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000008 &&
        __get_cpuid(0x80000008, &a, &b, &c, &d))
        return a & 0xff;
    return 36;
}

static int read_vmx_caps(struct hvi_hvf *h)
{
    static const struct {
        hv_vmx_capability_t cap;
        size_t off;
        const char *name;
    } caps[] = {
        {HV_VMX_CAP_PINBASED, offsetof(struct hvi_hvf, cap_pin), "PINBASED"},
        {HV_VMX_CAP_PROCBASED, offsetof(struct hvi_hvf, cap_cpu), "PROCBASED"},
        {HV_VMX_CAP_PROCBASED2, offsetof(struct hvi_hvf, cap_cpu2),
         "PROCBASED2"},
        {HV_VMX_CAP_ENTRY, offsetof(struct hvi_hvf, cap_entry), "ENTRY"},
        {HV_VMX_CAP_EXIT, offsetof(struct hvi_hvf, cap_exit), "EXIT"},
    };
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        uint64_t *dst = (uint64_t *)((char *)h + caps[i].off);
        hv_return_t r = hvi_hvf.hv_vmx_read_capability(caps[i].cap, dst);
        if (r != HV_SUCCESS)
            return hvi_error(-ENOTSUP,
                             "hv_vmx_read_capability(HV_VMX_CAP_%s): %s",
                             caps[i].name, hvi_hvf_ret_name(r));
    }
    return 0;
}

static int hvf_open(void **priv)
{
    int r = hvf_probe();
    if (r < 0)
        return r;
    struct hvi_hvf *h = calloc(1, sizeof(*h));
    if (!h)
        return hvi_error(-ENOMEM, "out of memory opening Hypervisor.framework");
    if ((r = read_vmx_caps(h)) < 0) {
        free(h);
        return r;
    }
    uint64_t max = 0;
    hvi_hvf.hv_capability(HV_CAP_VCPUMAX, &max);
    uint64_t *c = h->caps;
    c[HVC_CAP_MAX_VCPUS] = max ? max : 1;
    c[HVC_CAP_NR_VCPUS] = c[HVC_CAP_MAX_VCPUS];
    /* The framework maps by range; the slots are the backend's own table. */
    c[HVC_CAP_MAX_MEMORY_REGIONS] = 64;
    c[HVC_CAP_READONLY_MEMORY] = 1; /* mapped without HV_MEMORY_WRITE */
    c[HVC_CAP_DIRTY_TRACKING] = HVC_DIRTY_BITMAP; /* hvf_dirty.c */
    c[HVC_CAP_FPU_STATE_SIZE] = hvi_hvf_xsave_size(hvi_hvf_xcr0_mask());
    c[HVC_CAP_PHYS_ADDR_BITS] = host_phys_bits();
    c[HVC_CAP_IRQ_LINES] = HVI_IRQCHIP_PINS; /* the userspace IOAPIC */
    c[HVC_CAP_MAX_VMS] = 1;
    c[HVC_CAP_PAGE_SIZE] = 4096;
    c[HVC_CAP_TSC_OFFSET] = hvi_hvf_tsc_offset_works();
    h->tsc_khz = hvi_hvf_host_khz();
    *priv = h;
    return 0;
}

static void hvf_close(void *priv)
{
    free(priv);
}

static int hvf_get_cap(void *priv, int cap, uint64_t *value)
{
    struct hvi_hvf *h = priv;
    if (cap < 1 || cap > HVC_CAP_IRQCHIP_PIT)
        return hvi_error(-EINVAL, "unknown capability %d", cap);
    *value = h->caps[cap];
    return 0;
}

const hvc_backend_ops hvi_hvf_backend = {
    .version = HVC_BACKEND_OPS_VERSION,
    .name = "hvf",
    .probe = hvf_probe,
    .open = hvf_open,
    .close = hvf_close,
    .get_cap = hvf_get_cap,
    .vm_create = hvi_hvf_vm_create,
    .vm_destroy = hvi_hvf_vm_destroy,
    .vm_map_memory = hvi_hvf_map_memory,
    .vm_unmap_memory = hvi_hvf_unmap_memory,
    .vm_set_irq = hvi_hvf_set_irq,
    .vm_send_msi = hvi_hvf_send_msi,
    .vcpu_create = hvi_hvf_vcpu_create,
    .vcpu_destroy = hvi_hvf_vcpu_destroy,
    .vcpu_run_prepare = hvi_hvf_vcpu_run_prepare,
    .vcpu_run = hvi_hvf_vcpu_run,
    .vcpu_kick = hvi_hvf_vcpu_kick,
    .vcpu_get_regs = hvi_hvf_get_regs,
    .vcpu_set_regs = hvi_hvf_set_regs,
    .vcpu_get_segment = hvi_hvf_get_segment,
    .vcpu_set_segment = hvi_hvf_set_segment,
    .vcpu_fpu_size = hvi_hvf_fpu_size,
    .vcpu_get_fpu = hvi_hvf_get_fpu,
    .vcpu_set_fpu = hvi_hvf_set_fpu,
    .vcpu_set_runnable = hvi_hvf_set_runnable,
    .tsc = &hvi_hvf_tsc_ops,
    .vm_irqfd = NULL, /* no eventfds: the core's fallback */
    .vm_ioeventfd = NULL,
    .vcpu_flush = hvi_hvf_vcpu_flush,
#ifdef HVCORE_HVF_ARCH_STATE /* until arch_state.c (state17) is merged */
    .vcpu_state_size = hvi_hvf_vcpu_state_size,
    .vcpu_get_state = hvi_hvf_vcpu_get_state,
    .vcpu_set_state = hvi_hvf_vcpu_set_state,
    .vm_state_size = hvi_hvf_vm_state_size,
    .vm_get_state = hvi_hvf_vm_get_state,
    .vm_set_state = hvi_hvf_vm_set_state,
#endif
    .vm_dirty_start = hvi_hvf_dirty_start, /* write protection */
    .vm_dirty_fetch = hvi_hvf_dirty_fetch,
    .vm_dirty_stop = hvi_hvf_dirty_stop,
    /* Every hv_vcpu_* call must come from the vCPU's creating thread. */
    .flags = HVC_BACKEND_VCPU_THREAD_BOUND,
    /* No in-kernel chips (get_cap 17-20 answer 0): the library's. */
    .vcpu_inject = hvi_hvf_vcpu_inject,
    .vcpu_irq_window = hvi_hvf_vcpu_irq_window,
    .vcpu_complete_msr = hvi_hvf_vcpu_complete_msr,
};
