/* The CPUID the guest sees: every CPUID exits under Hypervisor.framework,
 * and the answer is the host's leaves filtered the way the KVM backend's
 * are (KVM_GET_SUPPORTED_CPUID filters them in the kernel): no VMX/SMX, no
 * monitor/mwait, no thermal, power or performance-monitoring leaves, no
 * features the VMCS controls did not enable, no x2APIC or TSC deadline or
 * local APIC without an interrupt controller model; with this vCPU's APIC
 * id, the hypervisor bit and signature, and OSXSAVE/OSPKE following the
 * guest's CR4, as the hardware does.
 *
 * The feature leaves are also masked by what the platform says it
 * supports, as macOS VMMs mask the host's CPUID: XNU's sysctl entries
 * (verified in apple-oss-distributions/xnu, xnu-11417.101.15:
 * bsd/dev/i386/sysctl.c declares them over i386_cpu_info_t, and
 * osfmk/i386/cpuid.c fills the fields with quad(hi, lo) = hi << 32 | lo):
 * - machdep.cpu.feature_bits, CTLTYPE_QUAD, 8 bytes: cpuid_features =
 *   quad(CPUID.1 ECX, CPUID.1 EDX), EDX in bits 0-31, ECX in 32-63;
 * - machdep.cpu.extfeature_bits, CTLTYPE_QUAD, 8 bytes: cpuid_extfeatures =
 *   quad(0x80000001 ECX, 0x80000001 EDX), with 0x80000007 EDX bit 8
 *   (invariant TSC, CPUID_EXTFEATURE_TSCI = _Bit(8)) ORed into bit 8,
 *   where Intel's 0x80000001 EDX has a reserved bit;
 * - machdep.cpu.leaf7_feature_bits, 8 bytes (declared CTLTYPE_INT but
 *   sized uint64_t): cpuid_leaf7_features = quad(leaf 7.0 ECX, EBX), EBX
 *   in bits 0-31; ENOENT when the low 32 bits (EBX) are 0
 *   (i386_cpu_info_nonzero);
 * - machdep.cpu.leaf7_feature_bits_edx, 4 bytes: cpuid_leaf7_extfeatures
 *   = leaf 7.0 EDX; ENOENT when 0.
 * A register whose entry the platform does not give (no sysctlbyname, no
 * such name, another size) keeps the host's bits. */
#include "hvf.h"

#include "../../arch/x86/arch_state.h"
#include "../../arch/x86/cpuid.h"
#include "hvf_vmx.h"

#include <cpuid.h>
#include <pthread.h>
#include <string.h>

#define HV_SIGNATURE "HVCoreHVFHVF" /* 12 bytes: EBX, ECX, EDX */

static void host(uint32_t leaf, uint32_t sub, uint32_t o[4])
{
    unsigned a, b, c, d;
    __cpuid_count(leaf, sub, a, b, c, d);
    o[0] = a;
    o[1] = b;
    o[2] = c;
    o[3] = d;
}

/* The host's XSAVE layout, read once: under a hypervisor every CPUID is
 * an exit of its own, and a guest's CPUID of leaf 0xd asks for sizes. */
static struct {
    pthread_once_t once;
    uint64_t mask;
    uint32_t end[64]; /* offset + size of component i (0 when absent) */
    uint32_t max_basic, max_ext; /* the highest leaves */
} xs = {.once = PTHREAD_ONCE_INIT};

/* Components offered: x87, SSE, AVX, MPX, AVX-512, PKRU as the host has
 * them; not AMX (the process would need permission first, and the
 * framework's 4 KiB fpstate could not hold it) nor later ones. */
static void xs_read(void)
{
    uint32_t o[4];
    host(0, 0, o);
    xs.max_basic = o[0];
    host(0x80000000u, 0, o);
    xs.max_ext = o[0];
    host(0xd, 0, o);
    xs.mask = (((uint64_t)o[3] << 32) | o[0]) & 0x2ffull;
    for (unsigned i = 2; i < 64; i++) {
        if (!(xs.mask & (1ull << i)))
            continue;
        host(0xd, i, o);
        xs.end[i] = o[1] + o[0];
    }
}

/* The platform's masks, read once: for leaves 1, 7.0 and 0x80000001 the
 * bits of EAX..EDX it allows (all ones where it does not say), and
 * 0x80000007 EDX's invariant-TSC bit. */
static struct {
    pthread_once_t once;
    uint32_t l1[4], l7[4], e1[4];
    uint32_t e7_edx;
} pm = {.once = PTHREAD_ONCE_INIT};

static void pm_read(void)
{
    for (int r = 0; r < 4; r++)
        pm.l1[r] = pm.l7[r] = pm.e1[r] = UINT32_MAX;
    pm.e7_edx = UINT32_MAX;
    uint64_t q;
    uint32_t d;
    if (hvi_hvf_platform_sysctl("machdep.cpu.feature_bits", &q, 8) == 0) {
        pm.l1[3] = (uint32_t)q;
        pm.l1[2] = (uint32_t)(q >> 32);
    }
    if (hvi_hvf_platform_sysctl("machdep.cpu.extfeature_bits", &q, 8) == 0) {
        /* bit 8 is 0x80000007's invariant TSC, not 0x80000001 EDX's */
        pm.e1[3] = (uint32_t)q | (1u << 8);
        pm.e1[2] = (uint32_t)(q >> 32);
        if (!(q & (1u << 8)))
            pm.e7_edx = ~(1u << 8);
    }
    if (hvi_hvf_platform_sysctl("machdep.cpu.leaf7_feature_bits", &q, 8) == 0) {
        pm.l7[1] = (uint32_t)q;
        pm.l7[2] = (uint32_t)(q >> 32);
    }
    if (hvi_hvf_platform_sysctl("machdep.cpu.leaf7_feature_bits_edx", &d, 4) ==
        0)
        pm.l7[3] = d;
}

static void pm_mask(uint32_t o[4], const uint32_t m[4])
{
    for (int r = 0; r < 4; r++)
        o[r] &= m[r];
}

uint64_t hvi_hvf_xcr0_mask(void)
{
    pthread_once(&xs.once, xs_read);
    return xs.mask;
}

/* Bytes of the standard-format area for the components in @p xcr0. */
uint32_t hvi_hvf_xsave_size(uint64_t xcr0)
{
    pthread_once(&xs.once, xs_read);
    uint32_t size = 576;
    for (unsigned i = 2; i < 64; i++)
        if ((xcr0 & xs.mask & (1ull << i)) && xs.end[i] > size)
            size = xs.end[i];
    return size;
}

void hvi_hvf_cpuid(struct hvi_hvf_vcpu *v, uint32_t leaf, uint32_t sub,
                   uint32_t o[4])
{
    memset(o, 0, 4 * sizeof(o[0]));
    if (leaf >= 0x40000000u && leaf < 0x80000000u) {
        if (leaf == 0x40000000u) {
            o[0] = 0x40000000u;
            memcpy(&o[1], HV_SIGNATURE, 4);
            memcpy(&o[2], HV_SIGNATURE + 4, 4);
            memcpy(&o[3], HV_SIGNATURE + 8, 4);
        }
        return;
    }
    pthread_once(&xs.once, xs_read);
    if (leaf > (leaf & 0x80000000u ? xs.max_ext : xs.max_basic))
        return; /* Intel returns the highest basic leaf; zeros suffice */
    host(leaf, sub, o);
    pthread_once(&pm.once, pm_read);
    if (leaf == 1)
        pm_mask(o, pm.l1);
    else if (leaf == 7 && sub == 0)
        pm_mask(o, pm.l7);
    else if (leaf == 0x80000001u)
        pm_mask(o, pm.e1);
    else if (leaf == 0x80000007u)
        o[3] &= pm.e7_edx;
    uint64_t cr4 = hvi_hvf_guest_cr4(v);
    /* The library's LAPIC (xAPIC, x2APIC, TSC deadline) in a VM on its
     * chips; none with HVC_VM_NO_IRQCHIP. */
    bool apic = (v->vm->flags & HVC_VM_USER_IRQCHIP) != 0;
    switch (leaf) {
    case 1:
        o[1] = (o[1] & 0x00ffffffu) | (v->id << 24);
        /* DTES64, MONITOR, DS-CPL, VMX, SMX, EST, TM2, xTPR, PDCM, PCID
         * (the framework's guests run without it), x2APIC, TSC-deadline,
         * OSXSAVE (set below from CR4). */
        o[2] &= ~((1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) |
                  (1u << 7) | (1u << 8) | (1u << 14) | (1u << 15) | (1u << 17) |
                  (1u << 27));
        if (apic)
            o[2] |= (1u << 21) | (1u << 24);
        else
            o[2] &= ~((1u << 21) | (1u << 24));
        if (cr4 & HVI_CR4_OSXSAVE)
            o[2] |= 1u << 27;
        o[2] |= 1u << 31; /* running under a hypervisor */
        /* DS, ACPI, TM, PBE; APIC without one. */
        o[3] &= ~((1u << 21) | (1u << 22) | (1u << 29) | (1u << 31));
        if (!apic)
            o[3] &= ~(1u << 9);
        break;
    case 5:
    case 6:
    case 0xa: memset(o, 0, 4 * sizeof(o[0])); break;
    case 7:
        if (sub == 0) {
            o[1] &= ~(1u << 1); /* TSC_ADJUST: not kept */
            if (!v->invpcid)
                o[1] &= ~(1u << 10);
            /* OSPKE (below), WAITPKG; RDPID, which the RDTSCP control
             * also governs. */
            o[2] &= ~((1u << 4) | (1u << 5));
            if (!v->rdtscp)
                o[2] &= ~(1u << 22);
            if (cr4 & HVI_CR4_PKE)
                o[2] |= 1u << 4;
            /* Speculation-control MSRs are not offered; nor AMX. */
            o[3] &= ~((0x3fu << 26) | (1u << 22) | (1u << 24) | (1u << 25));
        }
        break;
    case 0xb:
    case 0x1f: o[3] = v->id; break;
    case 0x15:
    case 0x16: {
        /* The guest TSC rate against the userspace LAPIC's 1 GHz bus. */
        uint32_t khz = v->vm->tsc_khz ? v->vm->tsc_khz : v->vm->hvf->tsc_khz;
        uint32_t bus_khz = 1000000;
        memset(o, 0, 4 * sizeof(o[0]));
        if (leaf == 0x15)
            hvi_tsc_leaf_15(khz, bus_khz, &o[0], &o[1], &o[2]);
        else
            hvi_tsc_leaf_16(khz, bus_khz, &o[0], &o[1], &o[2]);
        break;
    }
    case 0x80000007:
        /* An unpinned frequency is the host's of the moment, which a
         * restore elsewhere changes: no invariant-TSC promise then. */
        if (!v->vm->tsc_khz)
            o[3] &= ~(1u << 8);
        break;
    case 0xd: {
        uint64_t mask = hvi_hvf_xcr0_mask();
        if (sub == 0) {
            o[0] = (uint32_t)mask;
            o[3] = (uint32_t)(mask >> 32);
            o[2] = hvi_hvf_xsave_size(mask);
            o[1] = hvi_hvf_xsave_size(v->msrs.xcr0 & mask);
        } else if (sub == 1) {
            o[0] &= ~(1u << 3); /* XSAVES: not enabled */
        } else if (sub < 64 && !(mask & (1ull << sub))) {
            memset(o, 0, 4 * sizeof(o[0]));
        }
        break;
    }
    case 0x80000001u:
        o[2] &= ~(1u << 2); /* SVM */
        if (!v->rdtscp)
            o[3] &= ~(1u << 27);
        break;
    }
}

static bool indexed(uint32_t leaf)
{
    return leaf == 4 || leaf == 7 || leaf == 0xb || leaf == 0xd ||
           leaf == 0xf || leaf == 0x10 || leaf == 0x12 || leaf == 0x14 ||
           leaf == 0x17 || leaf == 0x18 || leaf == 0x1d || leaf == 0x1f ||
           leaf == 0x8000001d;
}

/* Subleaves worth listing: 4 and 0x8000001d until the type is null, 0xb
 * and 0x1f until the level type is, 7 up to its own maximum, 0xd the
 * offered components; others subleaf 0. */
static uint32_t nr_subleaves(struct hvi_hvf_vcpu *v, uint32_t leaf)
{
    uint32_t o[4];
    if (leaf == 7) {
        hvi_hvf_cpuid(v, 7, 0, o);
        return o[0] < 8 ? o[0] + 1 : 8;
    }
    if (leaf == 0xd)
        return 64;
    if (leaf == 4 || leaf == 0xb || leaf == 0x1f || leaf == 0x8000001d) {
        uint32_t n = 0;
        for (; n < 16; n++) {
            hvi_hvf_cpuid(v, leaf, n, o);
            if (leaf == 0xb || leaf == 0x1f ? !((o[2] >> 8) & 0xff)
                                            : !(o[0] & 0x1f))
                break;
        }
        return n + 1; /* the terminating one too */
    }
    return 1;
}

size_t hvi_hvf_cpuid_table(struct hvi_hvf_vcpu *v,
                           struct hvi_x86_cpuid_entry *out, size_t cap)
{
    pthread_once(&xs.once, xs_read);
    size_t n = 0;
    const uint32_t ranges[3][2] = {{0, xs.max_basic},
                                   {0x40000000u, 0x40000000u},
                                   {0x80000000u, xs.max_ext}};
    for (int r = 0; r < 3; r++) {
        for (uint32_t leaf = ranges[r][0]; leaf <= ranges[r][1]; leaf++) {
            uint32_t subs = indexed(leaf) ? nr_subleaves(v, leaf) : 1;
            for (uint32_t sub = 0; sub < subs; sub++) {
                uint32_t o[4];
                hvi_hvf_cpuid(v, leaf, sub, o);
                if (leaf == 0xd && sub > 1 && !o[0])
                    continue; /* a component not offered */
                if (n < cap)
                    out[n] = (struct hvi_x86_cpuid_entry){
                        .function = leaf,
                        .index = indexed(leaf) ? sub : 0,
                        .flags = indexed(leaf) ? HVI_X86_CPUID_INDEXED : 0,
                        .eax = o[0],
                        .ebx = o[1],
                        .ecx = o[2],
                        .edx = o[3]};
                n++;
            }
            if (leaf == UINT32_MAX)
                break;
        }
    }
    return n;
}
