/* tests/hvf_host: guest state, events and threads through the KVM-hosted
 * Hypervisor.framework API: injection, entry checks, the vCPU's thread,
 * hv_vcpu_interrupt, XSAVE state, the TSC and the platform's sysctl entries
 * (the interrupt window: test_hvf_host_window.c). */
#define _GNU_SOURCE
#include "hvfh_test.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

TestSuite(hvf_state, .init = vm_setup, .timeout = 60);

static void *other_thread(void *arg)
{
    (void)arg;
    uint64_t v;
    long bad = 0;
    bad += hv_vcpu_read_register(vcpu, HV_X86_RIP, &v) != HV_BAD_ARGUMENT;
    bad += hv_vcpu_write_register(vcpu, HV_X86_RAX, 1) != HV_BAD_ARGUMENT;
    bad += hv_vmx_vcpu_read_vmcs(vcpu, VMCS_GUEST_RIP, &v) != HV_BAD_ARGUMENT;
    bad += hv_vmx_vcpu_write_vmcs(vcpu, VMCS_GUEST_RIP, 0) != HV_BAD_ARGUMENT;
    bad += hv_vcpu_run(vcpu) != HV_BAD_ARGUMENT;
    bad += hv_vcpu_read_msr(vcpu, 0x174, &v) != HV_BAD_ARGUMENT;
    bad += hv_vcpu_destroy(vcpu) != HV_BAD_ARGUMENT;
    bad += hv_vm_create(HV_VM_DEFAULT) != HV_BUSY;
    return (void *)bad;
}

Test(hvf_state, vcpu_calls_from_another_thread_fail)
{
    pthread_t t;
    void *bad = (void *)1;
    cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
    pthread_join(t, &bad);
    cr_assert_eq((long)bad, 0, "%ld calls were not refused", (long)bad);
    cr_assert_eq(hv_vm_create(HV_VM_DEFAULT), HV_BUSY);
    uint8_t page[4096] __attribute__((aligned(4096)));
    cr_assert_eq(hv_vm_map(page, 0x1000, 4096, HV_MEMORY_READ), HV_ERROR,
                 "overlapping map");
    cr_assert_eq(hv_vm_map(page, 0x100000000ull + 1, 4096, HV_MEMORY_READ),
                 HV_BAD_ARGUMENT, "unaligned map");
    uint64_t v;
    cr_assert_eq(hv_vmx_vcpu_read_vmcs(vcpu, 0x1234, &v), HV_BAD_ARGUMENT);
    cr_assert_eq(hv_vmx_vcpu_write_vmcs(vcpu, VMCS_RO_EXIT_REASON, 1),
                 HV_BAD_ARGUMENT, "read-only field");
    cr_assert_eq(hv_vcpu_read_register(vcpu, HV_X86_RIP, &v), HV_SUCCESS);
}

static void *kicker(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    hv_vcpu_interrupt(&vcpu, 1);
    return NULL;
}

Test(hvf_state, interrupt_from_another_thread_ends_the_run)
{
    uint64_t spin = EMIT(0xeb, 0xfe); /* jmp . */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, kicker, NULL), 0);
    uint32_t why = run();
    pthread_join(t, NULL);
    cr_assert_eq(why, VMX_REASON_IRQ);
    cr_assert_eq(rreg(HV_X86_RIP), spin);
    /* not running: the next run returns at once */
    cr_assert_eq(hv_vcpu_interrupt(&vcpu, 1), HV_SUCCESS);
    cr_assert_eq(run(), VMX_REASON_IRQ);
}

Test(hvf_state, entry_checks_ia32e_control)
{
    EMIT(0xf4);
    wvmcs(VMCS_CTRL_VMENTRY_CONTROLS,
          rvmcs(VMCS_CTRL_VMENTRY_CONTROLS) | VMENTRY_LOAD_EFER);
    wvmcs(VMCS_GUEST_IA32_EFER, 0x100); /* LME without LMA */
    cr_assert_eq(run(), 0x80000000u | VMX_REASON_VMENTRY_GUEST);
    wvmcs(VMCS_GUEST_IA32_EFER, 0x500);
    wvmcs(VMCS_CTRL_VMENTRY_CONTROLS,
          rvmcs(VMCS_CTRL_VMENTRY_CONTROLS) & ~(uint64_t)VMENTRY_GUEST_IA32E);
    cr_assert_eq(run(), 0x80000000u | VMX_REASON_VMENTRY_GUEST);
    wvmcs(VMCS_CTRL_VMENTRY_CONTROLS,
          rvmcs(VMCS_CTRL_VMENTRY_CONTROLS) | VMENTRY_GUEST_IA32E);
    /* VMX's fixed bits: CR0.NE and CR4.VMXE */
    wvmcs(VMCS_GUEST_CR4, 0x220);
    cr_assert_eq(run(), 0x80000000u | VMX_REASON_VMENTRY_GUEST);
    wvmcs(VMCS_GUEST_CR4, 0x2220);
    cr_assert_eq(rvmcs(VMCS_GUEST_CR4), 0x2220);
    wvmcs(VMCS_GUEST_CR0, 0x80000011);
    cr_assert_eq(run(), 0x80000000u | VMX_REASON_VMENTRY_GUEST);
    wvmcs(VMCS_GUEST_CR0, 0x80000031);
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert(rvmcs(VMCS_CTRL_VMENTRY_CONTROLS) & VMENTRY_GUEST_IA32E);
    cr_assert_eq(rvmcs(VMCS_GUEST_CR4), 0x2220, "VMXE stays");
}

Test(hvf_state, exception_with_error_code_and_nmi_injected)
{
    /* #GP handler: stores the error code it finds on the stack */
    pc = 0x1800;
    uint64_t gp = EMIT(0x58);         /* pop rax */
    EMIT(0x89, 0x04, 0x25, B4(DATA)); /* mov [DATA], eax */
    EMIT(0x48, 0xcf);                 /* iretq */
    uint64_t nmi = EMIT(0xc6, 0x04, 0x25, B4(DATA + 4), 0x22); /* mov byte */
    EMIT(0x48, 0xcf);                                          /* iretq */
    idt_gate(13, gp);
    idt_gate(2, nmi);
    pc = CODE;
    uint64_t o1 = EMIT(0xe6, 0x10); /* out 0x10, al */
    uint64_t o2 = EMIT(0xe6, 0x11); /* out 0x11, al */
    EMIT(0xf4);
    wvmcs(VMCS_CTRL_VMENTRY_IRQ_INFO,
          IRQ_INFO_VALID | IRQ_INFO_HARD_EXC | IRQ_INFO_ERROR_VALID | 13);
    wvmcs(VMCS_CTRL_VMENTRY_EXC_ERROR, 0x1238);
    cr_assert_eq(run(), VMX_REASON_IO);
    cr_assert_eq(rreg(HV_X86_RIP), o1);
    uint32_t err;
    memcpy(&err, ram + DATA, 4);
    cr_assert_eq(err, 0x1238, "error code 0x%x", err);
    skip_insn();
    wvmcs(VMCS_CTRL_VMENTRY_IRQ_INFO, IRQ_INFO_VALID | IRQ_INFO_NMI | 2);
    cr_assert_eq(run(), VMX_REASON_IO);
    cr_assert_eq(rreg(HV_X86_RIP), o2);
    cr_assert_eq(ram[DATA + 4], 0x22, "the NMI handler ran");
}

Test(hvf_state, triple_fault)
{
    wvmcs(VMCS_GUEST_IDTR_LIMIT, 0); /* every exception escalates */
    EMIT(0x0f, 0x0b);                /* ud2 */
    cr_assert_eq(run(), VMX_REASON_TRIPLE_FAULT);
}

Test(hvf_state, fpstate_is_the_xsave_image)
{
    uint8_t x[4096] __attribute__((aligned(64)));
    memset(x, 0, sizeof(x));
    cr_assert_eq(hv_vcpu_read_fpstate(vcpu, x, sizeof(x)), HV_SUCCESS);
    uint32_t mxcsr;
    memcpy(&mxcsr, x + 24, 4);
    cr_assert_eq(mxcsr & 0xffff, 0x1f80, "MXCSR at its XSAVE offset");
    /* a buffer larger than the image: zeros past it, writable back */
    uint8_t big[16384];
    memset(big, 0xee, sizeof(big));
    cr_assert_eq(hv_vcpu_read_fpstate(vcpu, big, sizeof(big)), HV_SUCCESS);
    cr_assert_eq(memcmp(big, x, 512), 0);
    cr_assert_eq(big[sizeof(big) - 1], 0);
    cr_assert_eq(hv_vcpu_write_fpstate(vcpu, big, sizeof(big)), HV_SUCCESS);
    cr_assert_eq(hv_vcpu_read_fpstate(vcpu, x, 100), HV_BAD_ARGUMENT);
    memset(x + 160, 0xab, 16); /* XMM0 */
    x[512] |= 2;               /* XSTATE_BV: SSE state present */
    cr_assert_eq(hv_vcpu_write_fpstate(vcpu, x, sizeof(x)), HV_SUCCESS);
    EMIT(0xf3, 0x0f, 0x7f, 0x04, 0x25, B4(DATA)); /* movdqu [DATA], xmm0 */
    EMIT(0xf4);
    cr_assert_eq(run(), VMX_REASON_HLT);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(ram[DATA + i], 0xab);
}

/* Whether this host's KVM applies a TSC offset (the test's own look). */
static int host_offsets_tsc(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    uint64_t v0 = 0, v1, v2 = 0;
    struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL,
                                .attr = KVM_VCPU_TSC_OFFSET,
                                .addr = (uint64_t)(uintptr_t)&v0};
    int ok = !ioctl(cpu, KVM_GET_DEVICE_ATTR, &a);
    v1 = v0 + (1ull << 40);
    a.addr = (uint64_t)(uintptr_t)&v1;
    ok = ok && !ioctl(cpu, KVM_SET_DEVICE_ATTR, &a);
    a.addr = (uint64_t)(uintptr_t)&v2;
    ok = ok && !ioctl(cpu, KVM_GET_DEVICE_ATTR, &a) && v2 == v1;
    close(cpu);
    close(vm);
    close(kvm);
    return ok;
}

/* machdep.tsc.frequency is KVM's TSC rate to the kHz; other names and
 * writes are refused as macOS refuses them. */
int sysctlbyname(const char *, void *, size_t *, void *, size_t);

Test(hvf_state, sysctl_tsc_frequency_is_kvms)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    int khz = ioctl(cpu, KVM_GET_TSC_KHZ, 0);
    close(cpu);
    close(vm);
    close(kvm);
    cr_assert_gt(khz, 0);
    uint64_t hz = 0;
    size_t len = sizeof(hz);
    cr_assert_eq(sysctlbyname("machdep.tsc.frequency", &hz, &len, NULL, 0), 0);
    cr_assert_eq(len, sizeof(hz));
    cr_assert_eq(hz, (uint64_t)khz * 1000);
    len = 0;
    cr_assert_eq(sysctlbyname("machdep.tsc.frequency", NULL, &len, NULL, 0), 0);
    cr_assert_eq(len, sizeof(hz));
    uint32_t small;
    len = sizeof(small);
    errno = 0;
    cr_assert_eq(sysctlbyname("machdep.tsc.frequency", &small, &len, NULL, 0),
                 -1);
    cr_assert_eq(errno, ENOMEM);
    len = sizeof(hz);
    errno = 0;
    cr_assert_eq(sysctlbyname("kern.ostype", &hz, &len, NULL, 0), -1);
    cr_assert_eq(errno, ENOENT);
    errno = 0;
    cr_assert_eq(
        sysctlbyname("machdep.tsc.frequency", NULL, NULL, &hz, sizeof(hz)), -1);
    cr_assert_eq(errno, EPERM);
}

/* The CPU feature entries are what both the CPU and KVM have (KVM's
 * supported list, and what a vCPU given it reports: more on KVM-on-PVM), in
 * XNU's layout (low half EDX or EBX, high half ECX); too small a buffer is
 * ENOMEM, a new value EPERM, a leaf-7 entry whose value would be 0 ENOENT
 * as XNU's i386_cpu_info_nonzero says. */
struct cpuid_list {
    struct kvm_cpuid2 h;
    struct kvm_cpuid_entry2 e[512];
};
static struct cpuid_list sup, got;

static uint32_t kvm_and_cpu(uint32_t leaf, int reg)
{
    uint32_t k = 0, o[4] = {0, 0, 0, 0};
    const struct cpuid_list *lists[2] = {&sup, &got};
    for (int l = 0; l < 2; l++)
        for (uint32_t i = 0; i < lists[l]->h.nent; i++) {
            const struct kvm_cpuid_entry2 *e = &lists[l]->e[i];
            if (e->function == leaf && e->index == 0) {
                uint32_t r[4] = {e->eax, e->ebx, e->ecx, e->edx};
                k |= r[reg];
                break;
            }
        }
    __asm__ volatile("cpuid"
                     : "=a"(o[0]), "=b"(o[1]), "=c"(o[2]), "=d"(o[3])
                     : "a"(leaf), "c"(0));
    return k & o[reg];
}

static void expect_quad(const char *name, uint64_t want)
{
    uint64_t q = ~want;
    size_t len = sizeof(q);
    int r = sysctlbyname(name, &q, &len, NULL, 0);
    cr_assert_eq(r, 0, "%s: errno %d", name, errno);
    cr_assert_eq(len, 8, "%s: %zu bytes", name, len);
    cr_assert_eq(q, want, "%s: 0x%016llx, want 0x%016llx", name,
                 (unsigned long long)q, (unsigned long long)want);
}

Test(hvf_state, sysctl_cpu_features_are_kvms_and_the_cpus)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    cr_assert_geq(kvm, 0);
    sup.h.nent = 512;
    cr_assert_eq(ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &sup), 0);
    int kvm_vm = ioctl(kvm, KVM_CREATE_VM, 0);
    cr_assert_geq(kvm_vm, 0);
    int kvm_cpu = ioctl(kvm_vm, KVM_CREATE_VCPU, 0);
    cr_assert_geq(kvm_cpu, 0);
    cr_assert_eq(ioctl(kvm_cpu, KVM_SET_CPUID2, &sup), 0);
    got.h.nent = 512;
    cr_assert_eq(ioctl(kvm_cpu, KVM_GET_CPUID2, &got), 0);
    close(kvm_cpu);
    close(kvm_vm);
    close(kvm);
    enum { A, B, C, D };
    uint64_t f1 = (uint64_t)kvm_and_cpu(1, C) << 32 | kvm_and_cpu(1, D);
    uint64_t e1 = (uint64_t)kvm_and_cpu(0x80000001u, C) << 32 |
                  (kvm_and_cpu(0x80000001u, D) & ~(1u << 8)) |
                  (kvm_and_cpu(0x80000007u, D) & (1u << 8));
    uint32_t b7 = kvm_and_cpu(7, B), d7 = kvm_and_cpu(7, D);
    uint64_t l7 = (uint64_t)kvm_and_cpu(7, C) << 32 | b7;
    /* the basics any x86-64 CPU and KVM have: FPU, TSC, SSE2; LM */
    cr_assert(f1 & (1u << 0) && f1 & (1u << 4) && f1 & (1u << 26));
    cr_assert(e1 & (1u << 29));
    expect_quad("machdep.cpu.feature_bits", f1);
    expect_quad("machdep.cpu.extfeature_bits", e1);
    if (b7) {
        expect_quad("machdep.cpu.leaf7_feature_bits", l7);
    } else {
        uint64_t q;
        size_t len = sizeof(q);
        errno = 0;
        cr_assert_eq(
            sysctlbyname("machdep.cpu.leaf7_feature_bits", &q, &len, NULL, 0),
            -1);
        cr_assert_eq(errno, ENOENT);
    }
    uint32_t d = ~d7;
    size_t len = sizeof(d);
    errno = 0;
    int r =
        sysctlbyname("machdep.cpu.leaf7_feature_bits_edx", &d, &len, NULL, 0);
    if (d7) {
        cr_assert_eq(r, 0);
        cr_assert_eq(len, 4);
        cr_assert_eq(d, d7, "leaf 7 EDX 0x%08x, want 0x%08x", d, d7);
    } else {
        cr_assert_eq(r, -1);
        cr_assert_eq(errno, ENOENT);
    }
    /* the size alone; too small a buffer; a write; a name XNU lacks */
    len = 0;
    cr_assert_eq(sysctlbyname("machdep.cpu.feature_bits", NULL, &len, NULL, 0),
                 0);
    cr_assert_eq(len, 8);
    uint32_t small = 0x5a5a5a5a;
    len = sizeof(small);
    errno = 0;
    cr_assert_eq(
        sysctlbyname("machdep.cpu.extfeature_bits", &small, &len, NULL, 0), -1);
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(small, 0x5a5a5a5a);
    uint64_t q = f1;
    errno = 0;
    cr_assert_eq(
        sysctlbyname("machdep.cpu.feature_bits", NULL, NULL, &q, sizeof(q)),
        -1);
    cr_assert_eq(errno, EPERM);
    len = sizeof(q);
    errno = 0;
    cr_assert_eq(
        sysctlbyname("machdep.cpu.leaf7_feature_bits_eax", &q, &len, NULL, 0),
        -1);
    cr_assert_eq(errno, ENOENT);
}

/* Guest TSC = hv_tsc_clock() + offset where KVM can offset it; where it
 * cannot (PVM), the calls say so and the guest reads the host's TSC. */
Test(hvf_state, tsc_relative_to_hv_tsc_clock)
{
    int offsets = host_offsets_tsc();
    int64_t off = (int64_t)(1ull << 50) - (int64_t)hv_tsc_clock();
    hv_return_t r = hv_vcpu_set_tsc_relative(vcpu, off);
    cr_assert_eq(r, offsets ? HV_SUCCESS : HV_UNSUPPORTED);
    cr_assert_eq(hv_vcpu_set_tsc_relative(vcpu, 0), HV_SUCCESS);
    cr_assert_eq(hv_vm_sync_tsc(1ull << 50),
                 offsets ? HV_SUCCESS : HV_UNSUPPORTED);
    if (!offsets)
        off = 0;
    EMIT(0x0f, 0x31);                     /* rdtsc */
    EMIT(0x89, 0x04, 0x25, B4(DATA));     /* mov [DATA], eax */
    EMIT(0x89, 0x14, 0x25, B4(DATA + 4)); /* mov [DATA+4], edx */
    EMIT(0xf4);
    uint64_t before = hv_tsc_clock() + (uint64_t)off;
    cr_assert_eq(run(), VMX_REASON_HLT);
    uint64_t after = hv_tsc_clock() + (uint64_t)off;
    uint64_t t;
    memcpy(&t, ram + DATA, 8);
    cr_assert(t >= before - 1000000000ull && t <= after,
              "guest TSC 0x%llx, hv_tsc_clock()+offset 0x%llx..0x%llx",
              (unsigned long long)t, (unsigned long long)before,
              (unsigned long long)after);
}

/* A second vCPU on its own thread: its own exits, its own registers, and
 * hv_vcpu_interrupt reaching only the vCPU it names. */
struct second {
    hv_vcpuid_t id;
    uint32_t first, second;
    uint64_t rip, rbx;
    int ready;
};

static void *second_thread(void *arg)
{
    struct second *s = arg;
    if (vcpu_init(&s->id, 0x1100, 0x7000)) {
        __atomic_store_n(&s->ready, -1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    __atomic_store_n(&s->ready, 1, __ATOMIC_SEQ_CST);
    s->first = run_vcpu(s->id); /* out 0x22 */
    hv_vcpu_read_register(s->id, HV_X86_RBX, &s->rbx);
    hv_vcpu_write_register(s->id, HV_X86_RIP, 0x1102);
    s->second = run_vcpu(s->id); /* spins until interrupted */
    hv_vcpu_read_register(s->id, HV_X86_RIP, &s->rip);
    hv_vcpu_destroy(s->id);
    return NULL;
}

Test(hvf_state, two_vcpus_on_two_threads)
{
    pc = 0x1100;
    EMIT(0xe6, 0x22);                 /* out 0x22, al */
    uint64_t spin = EMIT(0xeb, 0xfe); /* jmp . */
    pc = CODE;
    EMIT(0xbb, B4(0x1111));        /* mov ebx, 0x1111 */
    uint64_t o = EMIT(0xe6, 0x11); /* out 0x11, al */
    EMIT(0xf4);
    struct second s;
    memset(&s, 0, sizeof(s));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, second_thread, &s), 0);
    while (!__atomic_load_n(&s.ready, __ATOMIC_SEQ_CST))
        usleep(1000);
    cr_assert_eq(s.ready, 1);
    cr_assert_neq(s.id, vcpu);
    cr_assert_eq(run(), VMX_REASON_IO);
    cr_assert_eq(rreg(HV_X86_RIP), o);
    cr_assert_eq(rreg(HV_X86_RBX), 0x1111);
    uint64_t v;
    cr_assert_eq(hv_vcpu_read_register(s.id, HV_X86_RIP, &v), HV_BAD_ARGUMENT,
                 "not this thread's vCPU");
    usleep(200 * 1000);
    cr_assert_eq(hv_vcpu_interrupt(&s.id, 1), HV_SUCCESS);
    pthread_join(t, NULL);
    cr_assert_eq(s.first, VMX_REASON_IO);
    cr_assert_neq(s.rbx, 0x1111, "registers are per vCPU");
    cr_assert_eq(s.second, VMX_REASON_IRQ);
    cr_assert_eq(s.rip, spin);
    /* ours was not interrupted: it runs on to the HLT */
    skip_insn();
    cr_assert_eq(run(), VMX_REASON_HLT);
}

/* Controls outside the capability fail the entry (VM-instruction error 7):
 * MOV-DR exiting is not offered, HLT exiting is required. */
Test(hvf_state, controls_outside_the_capability)
{
    EMIT(0xf4);
    uint64_t cap, cpu = rvmcs(VMCS_CTRL_CPU_BASED);
    cr_assert_eq(hv_vmx_read_capability(HV_VMX_CAP_PROCBASED, &cap),
                 HV_SUCCESS);
    cr_assert_eq(cap >> 32 & CPU_BASED_MOV_DR, 0);
    cr_assert_neq(cap & CPU_BASED_HLT, 0);
    wvmcs(VMCS_CTRL_CPU_BASED, cpu | CPU_BASED_MOV_DR);
    cr_assert_eq(hv_vcpu_run(vcpu), HV_ERROR);
    cr_assert_eq(rvmcs(VMCS_RO_INSTR_ERROR), 7);
    wvmcs(VMCS_CTRL_CPU_BASED, cpu & ~(uint64_t)CPU_BASED_HLT);
    cr_assert_eq(hv_vcpu_run(vcpu), HV_ERROR);
    wvmcs(VMCS_CTRL_CPU_BASED, cpu);
    cr_assert_eq(run(), VMX_REASON_HLT);
}

/* A vCPU thread that blocks every signal is still interrupted. */
struct blocked {
    hv_vcpuid_t id;
    int ready;
    uint32_t why;
};

static void *blocked_thread(void *arg)
{
    struct blocked *b = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (vcpu_init(&b->id, 0x1200, 0x7000)) {
        __atomic_store_n(&b->ready, -1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    __atomic_store_n(&b->ready, 1, __ATOMIC_SEQ_CST);
    b->why = run_vcpu(b->id);
    hv_vcpu_destroy(b->id);
    return NULL;
}

Test(hvf_state, interrupt_reaches_a_thread_blocking_signals)
{
    pc = 0x1200;
    EMIT(0xeb, 0xfe); /* jmp . */
    struct blocked b;
    memset(&b, 0, sizeof(b));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, blocked_thread, &b), 0);
    while (!__atomic_load_n(&b.ready, __ATOMIC_SEQ_CST))
        usleep(1000);
    cr_assert_eq(b.ready, 1);
    usleep(200 * 1000); /* in the guest by now */
    cr_assert_eq(hv_vcpu_interrupt(&b.id, 1), HV_SUCCESS);
    pthread_join(t, NULL);
    cr_assert_eq(b.why, VMX_REASON_IRQ);
}

/* Protecting and unprotecting pages one by one, while another vCPU works
 * on memory of the same range: it never sees a fault, and the ranges merge
 * back (a thousand splits do not exhaust memslots). */
struct worker {
    hv_vcpuid_t id;
    int ready;
    uint32_t why;
};

static void *worker_thread(void *arg)
{
    struct worker *w = arg;
    if (vcpu_init(&w->id, 0x1300, 0x7000)) {
        __atomic_store_n(&w->ready, -1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    __atomic_store_n(&w->ready, 1, __ATOMIC_SEQ_CST);
    w->why = run_vcpu(w->id);
    hv_vcpu_destroy(w->id);
    return NULL;
}

Test(hvf_state, protect_while_another_vcpu_runs)
{
    pc = 0x1300;
    uint64_t loop = EMIT(0x48, 0xff, 0x04, 0x25, B4(0x4000)); /* inc [0x4000] */
    EMIT(0x48, 0x8b, 0x04, 0x25, B4(0x4008)); /* mov rax, [0x4008] */
    EMIT(0xeb, (uint8_t)(loop - (pc + 2)));   /* jmp loop */
    struct worker w;
    memset(&w, 0, sizeof(w));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, worker_thread, &w), 0);
    while (!__atomic_load_n(&w.ready, __ATOMIC_SEQ_CST))
        usleep(1000);
    cr_assert_eq(w.ready, 1);
    for (int i = 0; i < 1000; i++) {
        uint64_t page = 0x100000 + (uint64_t)(i % 200) * 0x1000;
        cr_assert_eq(hv_vm_protect(page, 0x1000, HV_MEMORY_READ), HV_SUCCESS);
        cr_assert_eq(
            hv_vm_protect(page, 0x1000,
                          HV_MEMORY_READ | HV_MEMORY_WRITE | HV_MEMORY_EXEC),
            HV_SUCCESS);
    }
    uint64_t c1, c2;
    memcpy(&c1, ram + 0x4000, 8);
    usleep(50 * 1000);
    memcpy(&c2, ram + 0x4000, 8);
    cr_assert_gt(c2, c1, "the guest still runs");
    cr_assert_eq(hv_vcpu_interrupt(&w.id, 1), HV_SUCCESS);
    pthread_join(t, NULL);
    cr_assert_eq(w.why, VMX_REASON_IRQ, "exit %u", w.why);
    /* one range again: the whole RAM can still be protected in one go */
    cr_assert_eq(hv_vm_protect(0, RAM_SIZE, HV_MEMORY_READ), HV_SUCCESS);
}

/* Destroyed on its thread, a vCPU's id can be created again; the VM goes
 * once its vCPUs have, and a new one may then be created. */
Test(hvf_state, vcpu_and_vm_lifecycle)
{
    cr_assert_eq(hv_vm_destroy(), HV_BUSY, "a vCPU is left");
    hv_vcpuid_t old = vcpu;
    cr_assert_eq(hv_vcpu_destroy(vcpu), HV_SUCCESS);
    uint64_t v;
    cr_assert_eq(hv_vcpu_read_register(old, HV_X86_RIP, &v), HV_BAD_ARGUMENT);
    cr_assert_eq(vcpu_init(&vcpu, CODE, 0x8000), 0);
    cr_assert_eq(vcpu, old, "the id is free again");
    EMIT(0xf4);
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(hv_vcpu_destroy(vcpu), HV_SUCCESS);
    cr_assert_eq(hv_vm_destroy(), HV_SUCCESS);
    cr_assert_eq(hv_vm_map(ram, 0, 4096, HV_MEMORY_READ), HV_BAD_ARGUMENT,
                 "no VM");
    cr_assert_eq(hv_vm_create(HV_VM_DEFAULT), HV_SUCCESS);
    cr_assert_eq(hv_vm_map(ram, 0, RAM_SIZE, HV_MEMORY_READ | HV_MEMORY_WRITE),
                 HV_SUCCESS);
    cr_assert_eq(vcpu_init(&vcpu, CODE, 0x8000), 0);
    cr_assert_eq(run(), VMX_REASON_HLT);
}
