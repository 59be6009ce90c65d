/* The KVM backend: opening /dev/kvm and answering capability queries. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVM_DEVICE "/dev/kvm"

int hvi_kvm_fail(const char *what, int err)
{
    return hvi_error(-err, "%s: %s", what, hvc_strerror(-err));
}

static int open_device(void)
{
    int fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return hvi_error(
            -e, "cannot open " KVM_DEVICE ": %s%s", hvc_strerror(-e),
            e == EACCES   ? " (is this user in the kvm group?)"
            : e == ENOENT ? " (is the kvm module loaded, or is this a VM "
                            "without nested virtualisation?)"
                          : "");
    }
    int version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        close(fd);
        return hvi_error(-ENOTSUP, KVM_DEVICE " speaks API version %d, not %d",
                         version, KVM_API_VERSION);
    }
    return fd;
}

static int kvm_probe(void)
{
    int fd = open_device();
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static struct kvm_cpuid2 *supported_cpuid(int fd)
{
    for (uint32_t n = 64; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c =
            calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
        if (!c)
            return NULL;
        c->nent = n;
        if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            return c;
        free(c);
        if (errno != E2BIG)
            return NULL;
    }
    return NULL;
}

static uint64_t check(int fd, long ext)
{
    int r = ioctl(fd, KVM_CHECK_EXTENSION, ext);
    return r > 0 ? (uint64_t)r : 0;
}

static uint64_t phys_bits(const struct kvm_cpuid2 *c)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == 0x80000008)
            return c->entries[i].eax & 0xff;
    return 36;
}

static int kvm_open(void **priv)
{
    int fd = open_device();
    if (fd < 0)
        return fd;
    struct hvi_kvm *k = calloc(1, sizeof(*k));
    if (!k) {
        close(fd);
        return hvi_error(-ENOMEM, "out of memory opening KVM");
    }
    k->fd = fd;
    k->run_size = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (k->run_size < (int)sizeof(struct kvm_run)) {
        int r = hvi_kvm_fail("KVM_GET_VCPU_MMAP_SIZE", errno ? errno : EIO);
        close(fd);
        free(k);
        return r;
    }
    if (!check(fd, KVM_CAP_IMMEDIATE_EXIT) || !check(fd, KVM_CAP_USER_MEMORY)) {
        close(fd);
        free(k);
        return hvi_error(-ENOTSUP,
                         "this KVM lacks KVM_CAP_IMMEDIATE_EXIT or "
                         "KVM_CAP_USER_MEMORY (Linux >= 4.11 needed)");
    }
    k->cpuid = supported_cpuid(fd);
    if (!k->cpuid) {
        int r = hvi_kvm_fail("KVM_GET_SUPPORTED_CPUID", errno ? errno : ENOMEM);
        close(fd);
        free(k);
        return r;
    }

    uint64_t *c = k->caps;
    c[HVC_CAP_MAX_VCPUS] = check(fd, KVM_CAP_MAX_VCPUS);
    c[HVC_CAP_NR_VCPUS] = check(fd, KVM_CAP_NR_VCPUS);
    if (!c[HVC_CAP_NR_VCPUS])
        c[HVC_CAP_NR_VCPUS] = 4;
    if (!c[HVC_CAP_MAX_VCPUS])
        c[HVC_CAP_MAX_VCPUS] = c[HVC_CAP_NR_VCPUS];
    c[HVC_CAP_MAX_MEMORY_REGIONS] = check(fd, KVM_CAP_NR_MEMSLOTS);
    if (!c[HVC_CAP_MAX_MEMORY_REGIONS])
        c[HVC_CAP_MAX_MEMORY_REGIONS] = 32;
    c[HVC_CAP_READONLY_MEMORY] = check(fd, KVM_CAP_READONLY_MEM) != 0;
    hvi_kvm_dirty_open(k);
    c[HVC_CAP_DIRTY_TRACKING] = hvi_kvm_dirty_cap(k);
    c[HVC_CAP_TSC_SCALING] = check(fd, KVM_CAP_TSC_CONTROL) != 0;
    c[HVC_CAP_IRQCHIP] = check(fd, KVM_CAP_IRQCHIP) != 0;
    c[HVC_CAP_MSI] = check(fd, KVM_CAP_SIGNAL_MSI) != 0;
    uint64_t xs = check(fd, KVM_CAP_XSAVE2);
    c[HVC_CAP_FPU_STATE_SIZE] = xs ? xs
                                : check(fd, KVM_CAP_XSAVE)
                                    ? sizeof(struct kvm_xsave)
                                    : sizeof(struct kvm_fpu);
    c[HVC_CAP_IRQFD] = check(fd, KVM_CAP_IRQFD) != 0;
    c[HVC_CAP_IOEVENTFD] = check(fd, KVM_CAP_IOEVENTFD) != 0;
    c[HVC_CAP_PHYS_ADDR_BITS] = phys_bits(k->cpuid);
    c[HVC_CAP_IRQ_LINES] = HVI_KVM_NR_GSIS;
    hvi_kvm_tsc_open(k);
    hvi_kvm_state_open(k);
    *priv = k;
    return 0;
}

static void kvm_close(void *priv)
{
    struct hvi_kvm *k = priv;
    hvi_kvm_state_close(k);
    hvi_kvm_tsc_close(k);
    close(k->fd);
    free(k->cpuid);
    free(k);
}

static int kvm_get_cap(void *priv, int cap, uint64_t *value)
{
    struct hvi_kvm *k = priv;
    /* core17: KVM sets no VM limit of its own (memory and descriptors
     * do); its page granule is HVC_PAGE_SIZE, as the core checks. */
    if (cap == HVC_CAP_MAX_VMS) {
        *value = 0;
        return 0;
    }
    if (cap == HVC_CAP_PAGE_SIZE) {
        *value = HVC_PAGE_SIZE;
        return 0;
    }
    if (cap < 1 || cap > HVC_CAP_IRQ_LINES)
        return hvi_error(-EINVAL, "unknown capability %d", cap);
    /* Probed once, on a throw-away vCPU, when first asked (kvm_tsc.c). */
    if (cap == HVC_CAP_TSC_OFFSET) {
        *value = hvi_kvm_tsc_offset_cap(k);
        return 0;
    }
    *value = k->caps[cap];
    return 0;
}

const hvc_backend_ops hvi_kvm_backend = {
    .version = HVC_BACKEND_OPS_VERSION,
    .name = "kvm",
    .probe = kvm_probe,
    .open = kvm_open,
    .close = kvm_close,
    .get_cap = kvm_get_cap,
    .vm_create = hvi_kvm_vm_create,
    .vm_destroy = hvi_kvm_vm_destroy,
    .vm_map_memory = hvi_kvm_map_memory,
    .vm_unmap_memory = hvi_kvm_unmap_memory,
    .vm_set_irq = hvi_kvm_set_irq,
    .vm_send_msi = hvi_kvm_send_msi,
    .vcpu_create = hvi_kvm_vcpu_create,
    .vcpu_destroy = hvi_kvm_vcpu_destroy,
    .vcpu_run_prepare = hvi_kvm_vcpu_run_prepare,
    .vcpu_run = hvi_kvm_vcpu_run,
    .vcpu_kick = hvi_kvm_vcpu_kick,
    .vcpu_get_regs = hvi_kvm_get_regs,
    .vcpu_set_regs = hvi_kvm_set_regs,
    .vcpu_get_segment = hvi_kvm_get_segment,
    .vcpu_set_segment = hvi_kvm_set_segment,
    .vcpu_fpu_size = hvi_kvm_fpu_size,
    .vcpu_get_fpu = hvi_kvm_get_fpu,
    .vcpu_set_fpu = hvi_kvm_set_fpu,
    .vcpu_set_runnable = hvi_kvm_set_runnable,
    .tsc = &hvi_kvm_tsc_ops,
    .vm_irqfd = hvi_kvm_irqfd,
    .vm_ioeventfd = hvi_kvm_ioeventfd,
    .vcpu_flush = hvi_kvm_vcpu_flush,
    .vcpu_state_size = hvi_kvm_vcpu_state_size,
    .vcpu_get_state = hvi_kvm_vcpu_get_state,
    .vcpu_set_state = hvi_kvm_vcpu_set_state,
    .vm_state_size = hvi_kvm_vm_state_size,
    .vm_get_state = hvi_kvm_vm_get_state,
    .vm_set_state = hvi_kvm_vm_set_state,
    .vm_dirty_start = hvi_kvm_dirty_start,
    .vm_dirty_fetch = hvi_kvm_dirty_fetch,
    .vm_dirty_stop = hvi_kvm_dirty_stop,
    .flags = 0, /* HVCORE_KVM_STRICT_THREADS: kvm_strict.c */
};
