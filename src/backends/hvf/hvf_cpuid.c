/* The CPUID the guest sees: every CPUID exits under Hypervisor.framework,
 * and the answer is the host's leaves filtered the way the KVM backend's
 * are (KVM_GET_SUPPORTED_CPUID filters them in the kernel): no VMX/SMX, no
 * monitor/mwait, no thermal, power or performance-monitoring leaves, no
 * features the VMCS controls did not enable, no x2APIC or TSC deadline or
 * local APIC without an interrupt controller model; with this vCPU's APIC
 * id, the hypervisor bit and signature, and OSXSAVE/OSPKE following the
 * guest's CR4, as the hardware does. */
#include "hvf.h"

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
    uint64_t cr4 = hvi_hvf_guest_cr4(v);
    bool apic = false; /* no userspace LAPIC connected yet */
    switch (leaf) {
    case 1:
        o[1] = (o[1] & 0x00ffffffu) | (v->id << 24);
        /* DTES64, MONITOR, DS-CPL, VMX, SMX, EST, TM2, xTPR, PDCM, x2APIC,
         * TSC-deadline, OSXSAVE (set below from CR4). */
        o[2] &= ~((1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) |
                  (1u << 7) | (1u << 8) | (1u << 14) | (1u << 15) |
                  (1u << 21) | (1u << 24) | (1u << 27));
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
            o[2] &= ~((1u << 4) | (1u << 5)); /* OSPKE below, WAITPKG */
            if (cr4 & HVI_CR4_PKE)
                o[2] |= 1u << 4;
            /* Speculation-control MSRs are not offered; nor AMX. */
            o[3] &= ~((0x3fu << 26) | (1u << 22) | (1u << 24) | (1u << 25));
        }
        break;
    case 0xb:
    case 0x1f: o[3] = v->id; break;
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
