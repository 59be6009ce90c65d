/* The CONFIG section: what a VM is made of, and the facts that decide
 * whether this host can run it. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, mkostemp */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define REGION_BYTES 24

static uint32_t address_bits(uint64_t end)
{
    uint32_t bits = 0;
    while (bits < 64 && (end - 1) >> bits)
        bits++;
    return bits;
}

int hvi_config_encode(hvc_vm *vm, uint8_t **out, size_t *len)
{
    hvc_memory_region **regs = NULL;
    size_t nregs = 0;
    int r = hvi_memory_snapshot(vm, &regs, &nregs);
    if (r < 0)
        return r;
    uint32_t maxv = hvi_vm_max_vcpus(vm);
    uint32_t ids[maxv ? maxv : 1];
    uint32_t nids = hvi_vm_vcpu_ids(vm, ids, maxv);

    uint8_t *rb = calloc(nregs ? nregs : 1, REGION_BYTES);
    if (!rb) {
        free(regs);
        return hvi_error(-ENOMEM, "out of memory saving the VM configuration");
    }
    uint64_t top = 1;
    for (size_t i = 0; i < nregs; i++) {
        hvi_put64(rb + i * REGION_BYTES, regs[i]->gpa);
        hvi_put64(rb + i * REGION_BYTES + 8, regs[i]->len);
        hvi_put32(rb + i * REGION_BYTES + 16, regs[i]->flags);
        if (regs[i]->gpa + regs[i]->len > top)
            top = regs[i]->gpa + regs[i]->len;
    }
    free(regs);
    size_t fpu = 0;
    hvc_vcpu *first = nids ? hvi_vm_vcpu(vm, ids[0]) : NULL;
    if (first)
        hvi_vcpu_state_size(first, HVI_STATE_FPU, &fpu);
    hvc_tsc_config tsc = HVC_TSC_CONFIG_INIT;
    if (hvc_vm_get_tsc_config(vm, &tsc) < 0)
        tsc.tsc_khz = 0;
    size_t ndev = 0;
    hvc_device **devs = NULL;
    if ((r = hvi_devices_snapshot(vm, &devs, &ndev)) < 0) {
        free(rb);
        return r;
    }
    free(devs);

    struct hvi_rec_writer w = {0};
    for (int pass = 0; pass < 2; pass++) {
        /* HVC_VM_DIRTY_RING is how this host tracks pages, not guest
         * state: the restoring side chooses its own. */
        hvi_rec_u64(&w, HVI_CFG_VM_FLAGS,
                    hvi_vm_flags(vm) & ~(uint32_t)HVC_VM_DIRTY_RING);
        hvi_rec_u64(&w, HVI_CFG_MAX_VCPUS, maxv);
        uint8_t idb[4 * (sizeof(ids) / sizeof(ids[0]))];
        for (uint32_t i = 0; i < nids; i++)
            hvi_put32(idb + 4 * i, ids[i]);
        hvi_rec_bytes(&w, HVI_CFG_VCPU_IDS, idb, 4 * nids);
        hvi_rec_bytes(&w, HVI_CFG_REGIONS, rb,
                      (uint32_t)(nregs * REGION_BYTES));
        hvi_rec_u64(&w, HVI_CFG_FPU_SIZE, fpu);
        hvi_rec_u64(&w, HVI_CFG_PHYS_BITS, address_bits(top));
        hvi_rec_u64(&w, HVI_CFG_TSC_KHZ, tsc.tsc_khz);
        hvi_rec_u64(&w, HVI_CFG_TSC_PINNED, !!(tsc.flags & HVC_TSC_PINNED));
        hvi_rec_u64(&w, HVI_CFG_NR_DEVICES, ndev);
        if (pass == 0) {
            size_t need = w.len;
            memset(&w, 0, sizeof(w));
            w.buf = malloc(need);
            w.cap = need;
            if (!w.buf) {
                free(rb);
                return hvi_error(-ENOMEM, "out of memory saving the VM "
                                          "configuration");
            }
        }
    }
    free(rb);
    *out = w.buf;
    *len = w.len;
    return 0;
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            r = hvi_fail(s, -EBADMSG, __VA_ARGS__);                            \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

int hvi_config_decode(const struct hvi_sec *s, const uint8_t *p, size_t len,
                      struct hvi_config *c)
{
    memset(c, 0, sizeof(*c));
    struct hvi_rec_reader rd = {p, len, "VM configuration"};
    uint64_t flags, maxv;
    const void *ids, *regs;
    uint32_t nids, nregs;
    int r;
    if ((r = hvi_rec_get_u64(&rd, HVI_CFG_VM_FLAGS, &flags)) < 0 ||
        (r = hvi_rec_get_u64(&rd, HVI_CFG_MAX_VCPUS, &maxv)) < 0 ||
        (r = hvi_rec_get_bytes(&rd, HVI_CFG_VCPU_IDS, &ids, &nids)) < 0 ||
        (r = hvi_rec_get_bytes(&rd, HVI_CFG_REGIONS, &regs, &nregs)) < 0 ||
        (r = hvi_rec_get_u64(&rd, HVI_CFG_FPU_SIZE, &c->fpu_size)) < 0 ||
        (r = hvi_rec_get_u64(&rd, HVI_CFG_PHYS_BITS, &c->phys_bits)) < 0 ||
        (r = hvi_rec_get_u64(&rd, HVI_CFG_TSC_KHZ, &c->tsc_khz)) < 0 ||
        (r = hvi_rec_get_u64(&rd, HVI_CFG_TSC_PINNED, &c->tsc_pinned)) < 0 ||
        (r = hvi_rec_get_u64(&rd, HVI_CFG_NR_DEVICES, &c->nr_devices)) < 0)
        return hvi_fail(s, r, "%s", hvc_last_error());
    CHECK(flags <= HVC_VM_NO_IRQCHIP, "unknown VM flags 0x%" PRIx64, flags);
    CHECK(maxv >= 1 && maxv <= 4096, "max_vcpus %" PRIu64 " is out of range",
          maxv);
    CHECK(nids % 4 == 0 && nids / 4 <= maxv,
          "vCPU id list of %u bytes for max_vcpus %" PRIu64, nids, maxv);
    CHECK(nregs % REGION_BYTES == 0 && nregs / REGION_BYTES <= 512,
          "region list of %u bytes", nregs);
    CHECK(c->fpu_size <= (1u << 20), "XSAVE size %" PRIu64 " is implausible",
          c->fpu_size);
    CHECK(c->tsc_khz <= UINT32_MAX && c->tsc_pinned <= 1,
          "TSC %" PRIu64 " kHz, pinned %" PRIu64, c->tsc_khz, c->tsc_pinned);
    CHECK(c->nr_devices <= 4096, "%" PRIu64 " devices", c->nr_devices);
    c->vm_flags = (uint32_t)flags;
    c->max_vcpus = (uint32_t)maxv;
    c->nr_vcpus = nids / 4;
    c->nr_regions = nregs / REGION_BYTES;
    c->vcpu_ids = calloc(c->nr_vcpus + 1, sizeof(uint32_t));
    c->regions = calloc(c->nr_regions + 1, sizeof(*c->regions));
    if (!c->vcpu_ids || !c->regions) {
        r = hvi_fail(s, -ENOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < c->nr_vcpus; i++) {
        c->vcpu_ids[i] = hvi_get32((const uint8_t *)ids + 4 * i);
        CHECK(c->vcpu_ids[i] < c->max_vcpus &&
                  (i == 0 || c->vcpu_ids[i] > c->vcpu_ids[i - 1]),
              "vCPU id %u (entry %u) is out of range or out of order",
              c->vcpu_ids[i], i);
    }
    for (uint32_t i = 0; i < c->nr_regions; i++) {
        const uint8_t *e = (const uint8_t *)regs + i * REGION_BYTES;
        struct hvi_region *g = &c->regions[i];
        g->gpa = hvi_get64(e);
        g->len = hvi_get64(e + 8);
        g->flags = hvi_get32(e + 16);
        CHECK(g->gpa % HVI_PAGE == 0 && g->len % HVI_PAGE == 0 && g->len &&
                  g->gpa + g->len > g->gpa && hvi_get32(e + 20) == 0,
              "region %u (0x%" PRIx64 "+0x%" PRIx64 ") is malformed", i, g->gpa,
              g->len);
        CHECK(i == 0 || g->gpa >= c->regions[i - 1].gpa + c->regions[i - 1].len,
              "region %u (0x%" PRIx64 ") overlaps or precedes region %u", i,
              g->gpa, i - 1);
    }
    return 0;
fail:
    hvi_config_free(c);
    return r;
}

void hvi_config_free(struct hvi_config *c)
{
    free(c->vcpu_ids);
    free(c->regions);
    c->vcpu_ids = NULL;
    c->regions = NULL;
}

/* Memory a restore maps file pieces over: anonymous and private, so pages
 * no run covers read as zero and cost nothing. */
static int add_mapped(hvc_vm *vm, const struct hvi_sec *s,
                      hvc_memory_options *o)
{
    void *p = mmap(NULL, o->length, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return hvi_fail(s, -errno, "mapping 0x%" PRIx64 " bytes: %s", o->length,
                        hvc_strerror(-errno));
    o->host_addr = p;
    hvc_memory_region *reg;
    int r = hvc_vm_add_memory(vm, o, &reg);
    if (r < 0) {
        munmap(p, o->length);
        return r;
    }
    reg->owned = true; /* unmapped with the region */
    return 0;
}

int hvi_config_check(hvc_hypervisor *hv, const struct hvi_sec *s,
                     const struct hvi_config *c)
{
    /* The regions, not the stream's claim, decide what the VM needs. */
    uint64_t top = 1, total = 0;
    for (uint32_t i = 0; i < c->nr_regions; i++) {
        total += c->regions[i].len;
        if (c->regions[i].gpa + c->regions[i].len > top)
            top = c->regions[i].gpa + c->regions[i].len;
    }
    uint64_t need = address_bits(top);
    if (need != c->phys_bits)
        return hvi_fail(s, -EBADMSG,
                        "the regions need %" PRIu64
                        " address bits, the stream says %" PRIu64,
                        need, c->phys_bits);
    /* A VM larger than this host's RAM cannot be meant for it; refusing it
     * early also keeps a forged stream from making the kernel build the
     * tables of a huge memory slot. */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    /* -ENOTSUP, not -ENOMEM: the stream asks for what this host lacks, as
     * with address bits; a caller must not take it for its own shortage. */
    if (pages > 0 && psz > 0 && total > (uint64_t)pages * (uint64_t)psz)
        return hvi_fail(s, -ENOTSUP,
                        "the VM has 0x%" PRIx64
                        " bytes of memory, more than this host's 0x%" PRIx64,
                        total, (uint64_t)pages * (uint64_t)psz);
    uint64_t bits = 0;
    hvc_hypervisor_get_cap(hv, HVC_CAP_PHYS_ADDR_BITS, &bits);
    if (bits && c->phys_bits > bits)
        return hvi_fail(s, -ENOTSUP,
                        "the VM's memory needs %" PRIu64
                        " address bits; this host has %" PRIu64,
                        c->phys_bits, bits);
    return 0;
}

int hvi_config_apply(hvc_hypervisor *hv, const struct hvi_sec *s,
                     const struct hvi_config *c, int32_t kick_signal,
                     bool mapped, hvc_vm **out)
{
    int r = hvi_config_check(hv, s, c);
    if (r < 0)
        return r;
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    vo.flags = c->vm_flags;
    vo.max_vcpus = c->max_vcpus;
    vo.kick_signal = kick_signal;
    hvc_vm *vm;
    r = hvc_vm_create(hv, &vo, &vm);
    if (r < 0)
        return hvi_fail(s, r, "creating the VM: %s", hvc_last_error());
    /* A hand-over maps the regions from its descriptors (FDS). */
    for (uint32_t i = 0; i < c->nr_regions && r == 0 && !c->no_regions; i++) {
        hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
        mo.guest_addr = c->regions[i].gpa;
        mo.length = c->regions[i].len;
        /* Placement (NUMA, prefaulting) is the destination's business.
         * A hugetlb region is never mapped from the file: hvi_restore()
         * reads the whole stream when there is one. */
        mo.flags =
            c->regions[i].flags & (HVC_MEMORY_READONLY | HVC_MEMORY_MERGEABLE |
                                   HVC_MEMORY_THP | HVC_MEMORY_HUGETLB);
        r = mapped ? add_mapped(vm, s, &mo) : hvc_vm_add_memory(vm, &mo, NULL);
        /* Huge pages are reserved when the region is created: a pool too
         * small for the stream's hugetlb regions is this host lacking what
         * the VM needs (the operator sizes the pool), not a failing
         * allocation. */
        if (r == -ENOMEM && (mo.flags & HVC_MEMORY_HUGETLB))
            r = -ENOTSUP;
        if (r < 0)
            r = hvi_fail(s, r, "region %u: %s", i, hvc_last_error());
    }
    if (r == 0 && c->tsc_pinned) {
        hvc_tsc_frequency_options fo = HVC_TSC_FREQUENCY_OPTIONS_INIT;
        fo.tsc_khz = (uint32_t)c->tsc_khz;
        if ((r = hvc_vm_set_tsc_frequency(vm, &fo)) < 0)
            r = hvi_fail(s, r, "TSC frequency: %s", hvc_last_error());
    }
    for (uint32_t i = 0; i < c->nr_vcpus && r == 0; i++) {
        hvc_vcpu *v;
        if ((r = hvc_vcpu_create(vm, c->vcpu_ids[i], &v)) < 0)
            r = hvi_fail(s, r, "vCPU %u: %s", c->vcpu_ids[i], hvc_last_error());
        /* The XSAVE area may differ in size from the saving backend's
         * (format 2): the XSAVE state itself says whether it fits. */
    }
    if (r < 0) {
        hvc_vm_destroy(vm);
        return r;
    }
    *out = vm;
    return 0;
}
