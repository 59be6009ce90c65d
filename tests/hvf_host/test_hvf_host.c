/* tests/hvf_host: the KVM-hosted Hypervisor.framework API against Apple's
 * documented behaviour, driven directly through hv_* with tiny 64-bit
 * guests assembled here (machine code bytes, each instruction's address
 * recorded). Each test runs in its own process (Criterion), so each has
 * the process's one VM. */
#define _GNU_SOURCE
#include <Hypervisor/Hypervisor.h>

#include <cpuid.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE 0x200000ull
#define CODE 0x1000ull
#define DATA 0x3000ull
#define GDT 0x9000ull
#define IDT 0xa000ull
#define PML4 0x10000ull
#define MMIO 0xd0000000ull

static uint8_t *ram;
static hv_vcpuid_t vcpu;
static uint64_t pc = CODE; /* where the next instruction goes */

/* Emits an instruction; returns its guest address. */
static uint64_t emit_bytes(const uint8_t *b, size_t n)
{
    uint64_t at = pc;
    memcpy(ram + pc, b, n);
    pc += n;
    return at;
}
#define EMIT(...)                                                              \
    emit_bytes((const uint8_t[]){__VA_ARGS__},                                 \
               sizeof((const uint8_t[]){__VA_ARGS__}))
#define B4(x)                                                                  \
    (uint8_t)(x), (uint8_t)((x) >> 8), (uint8_t)((x) >> 16),                   \
        (uint8_t)((x) >> 24)

static uint64_t rreg(hv_x86_reg_t r)
{
    uint64_t v = 0;
    cr_assert_eq(hv_vcpu_read_register(vcpu, r, &v), HV_SUCCESS);
    return v;
}
static void wreg(hv_x86_reg_t r, uint64_t v)
{
    cr_assert_eq(hv_vcpu_write_register(vcpu, r, v), HV_SUCCESS);
}
static uint64_t rvmcs(uint32_t f)
{
    uint64_t v = 0;
    cr_assert_eq(hv_vmx_vcpu_read_vmcs(vcpu, f, &v), HV_SUCCESS,
                 "read vmcs 0x%x", f);
    return v;
}
static void wvmcs(uint32_t f, uint64_t v)
{
    cr_assert_eq(hv_vmx_vcpu_write_vmcs(vcpu, f, v), HV_SUCCESS,
                 "write vmcs 0x%x", f);
}

/* The test's CPUID answers: the host's, with a few of our own. */
static int cpuid_exits;
static void cpuid_answer(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    if (leaf == 0x40000000) {
        r[0] = 0x40000000;
        memcpy(&r[1], "hvfh", 4);
        memcpy(&r[2], "TEST", 4);
        memcpy(&r[3], "cpid", 4);
    } else if (leaf == 6) {
        r[0] = 0x12345678;
        r[1] = 0x9abcdef0;
        r[2] = 0x0badf00d;
        r[3] = 0x600dcafe;
    } else if (leaf == 0xd && sub == 0) {
        r[0] &= 0xe7; /* no AMX: KVM wants a permission for it */
        r[3] = 0;
    } else if (leaf == 1) {
        r[2] &= ~(1u << 31); /* this CPU reports no hypervisor */
    }
}

/* hv_vcpu_run, answering CPUID exits as a backend would; returns the
 * first other exit reason. */
static uint32_t run(void)
{
    for (;;) {
        cr_assert_eq(hv_vcpu_run(vcpu), HV_SUCCESS);
        uint32_t why = (uint32_t)rvmcs(VMCS_RO_EXIT_REASON);
        if (why != VMX_REASON_CPUID)
            return why;
        cr_assert_eq(rvmcs(VMCS_RO_VMEXIT_INSTR_LEN), 2);
        uint32_t r[4];
        cpuid_answer((uint32_t)rreg(HV_X86_RAX), (uint32_t)rreg(HV_X86_RCX),
                     r);
        wreg(HV_X86_RAX, r[0]);
        wreg(HV_X86_RBX, r[1]);
        wreg(HV_X86_RCX, r[2]);
        wreg(HV_X86_RDX, r[3]);
        wreg(HV_X86_RIP, rreg(HV_X86_RIP) + 2);
        cpuid_exits++;
    }
}

static void skip_insn(void)
{
    wreg(HV_X86_RIP, rreg(HV_X86_RIP) + rvmcs(VMCS_RO_VMEXIT_INSTR_LEN));
}

/* A VM with 2 MiB of RAM at 0, identity paging of the low 4 GiB, a GDT and
 * an IDT, and one vCPU in 64-bit mode at CODE. */
static void vm_setup(void)
{
    cr_assert_eq(hv_vm_create(HV_VM_DEFAULT), HV_SUCCESS);
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(ram, MAP_FAILED);
    cr_assert_eq(hv_vm_map(ram, 0, RAM_SIZE,
                           HV_MEMORY_READ | HV_MEMORY_WRITE | HV_MEMORY_EXEC),
                 HV_SUCCESS);
    uint64_t *pml4 = (uint64_t *)(ram + PML4);
    uint64_t *pdpt = (uint64_t *)(ram + PML4 + 0x1000);
    pml4[0] = (PML4 + 0x1000) | 3;
    for (int i = 0; i < 4; i++) {
        uint64_t *pd = (uint64_t *)(ram + PML4 + 0x2000 + 0x1000 * i);
        pdpt[i] = (PML4 + 0x2000 + 0x1000 * (uint64_t)i) | 3;
        for (int j = 0; j < 512; j++)
            pd[j] = ((uint64_t)(i * 512 + j) << 21) | 0x83;
    }
    uint64_t *gdt = (uint64_t *)(ram + GDT);
    gdt[1] = 0x00af9b000000ffffull;
    gdt[2] = 0x00cf93000000ffffull;
    gdt[3] = 0x00008b0000000067ull;
    cr_assert_eq(hv_vcpu_create(&vcpu, HV_VCPU_DEFAULT), HV_SUCCESS);
    static const uint32_t segs[] = {VMCS_GUEST_ES, VMCS_GUEST_SS,
                                    VMCS_GUEST_DS, VMCS_GUEST_FS,
                                    VMCS_GUEST_GS};
    for (int i = 0; i < 5; i++) {
        uint32_t s = segs[i], k = (s - VMCS_GUEST_ES) / 2;
        wvmcs(s, 0x10);
        wvmcs(VMCS_GUEST_ES_BASE + 2 * k, 0);
        wvmcs(VMCS_GUEST_ES_LIMIT + 2 * k, 0xffffffff);
        wvmcs(VMCS_GUEST_ES_AR + 2 * k, 0xc093);
    }
    wvmcs(VMCS_GUEST_CS, 0x08);
    wvmcs(VMCS_GUEST_CS_BASE, 0);
    wvmcs(VMCS_GUEST_CS_LIMIT, 0xffffffff);
    wvmcs(VMCS_GUEST_CS_AR, 0xa09b);
    wvmcs(VMCS_GUEST_TR, 0x18);
    wvmcs(VMCS_GUEST_TR_BASE, 0);
    wvmcs(VMCS_GUEST_TR_LIMIT, 0x67);
    wvmcs(VMCS_GUEST_TR_AR, 0x8b);
    wvmcs(VMCS_GUEST_LDTR, 0);
    wvmcs(VMCS_GUEST_LDTR_AR, 0x10000);
    wvmcs(VMCS_GUEST_GDTR_BASE, GDT);
    wvmcs(VMCS_GUEST_GDTR_LIMIT, 0x1f);
    wvmcs(VMCS_GUEST_IDTR_BASE, IDT);
    wvmcs(VMCS_GUEST_IDTR_LIMIT, 0xfff);
    wvmcs(VMCS_GUEST_CR0, 0x80000031);
    wvmcs(VMCS_CTRL_CR0_SHADOW, 0x80000031);
    wvmcs(VMCS_GUEST_CR3, PML4);
    wvmcs(VMCS_GUEST_CR4, 0x20 | 0x200);
    wvmcs(VMCS_GUEST_IA32_EFER, 0x500);
    wvmcs(VMCS_CTRL_VMENTRY_CONTROLS,
          rvmcs(VMCS_CTRL_VMENTRY_CONTROLS) | VMENTRY_GUEST_IA32E);
    wvmcs(VMCS_GUEST_RFLAGS, 2);
    wvmcs(VMCS_GUEST_RSP, 0x8000);
    wvmcs(VMCS_GUEST_RIP, CODE);
    pc = CODE;
}

TestSuite(hvf_host, .init = vm_setup, .timeout = 60);

static void expect_io(uint64_t rip, unsigned len, unsigned port,
                      unsigned size, int in, int string, int rep, int imm)
{
    cr_assert_eq(run(), VMX_REASON_IO, "exit at rip 0x%llx",
                 (unsigned long long)rreg(HV_X86_RIP));
    cr_assert_eq(rreg(HV_X86_RIP), rip, "rip 0x%llx, expected 0x%llx",
                 (unsigned long long)rreg(HV_X86_RIP),
                 (unsigned long long)rip);
    cr_assert_eq(rvmcs(VMCS_RO_VMEXIT_INSTR_LEN), len);
    uint64_t q = rvmcs(VMCS_RO_EXIT_QUALIFIC);
    uint64_t want = (size - 1) | (unsigned)in << 3 | (unsigned)string << 4 |
                    (unsigned)rep << 5 | (unsigned)imm << 6 |
                    (uint64_t)port << 16;
    cr_assert_eq(q, want, "qualification 0x%llx, expected 0x%llx",
                 (unsigned long long)q, (unsigned long long)want);
}

Test(hvf_host, port_io_exits_before_the_instruction)
{
    EMIT(0xba, B4(0x10));                          /* mov edx, 0x10 */
    EMIT(0xb0, 0x42);                              /* mov al, 0x42 */
    uint64_t out8 = EMIT(0xee);                    /* out dx, al */
    EMIT(0x66, 0xb8, 0x34, 0x12);                  /* mov ax, 0x1234 */
    uint64_t out16 = EMIT(0x66, 0xef);             /* out dx, ax */
    EMIT(0xb8, B4(0xdeadbeef));                    /* mov eax, ... */
    uint64_t out32 = EMIT(0xef);                   /* out dx, eax */
    uint64_t outi = EMIT(0xe6, 0x80);              /* out 0x80, al */
    uint64_t in8 = EMIT(0xec);                     /* in al, dx */
    uint64_t in16 = EMIT(0x66, 0xed);              /* in ax, dx */
    uint64_t in32 = EMIT(0xed);                    /* in eax, dx */
    uint64_t ini = EMIT(0xe4, 0x71);               /* in al, 0x71 */
    uint64_t hlt = EMIT(0xf4);

    expect_io(out8, 1, 0x10, 1, 0, 0, 0, 0);
    cr_assert_eq(rreg(HV_X86_RAX) & 0xff, 0x42);
    skip_insn();
    expect_io(out16, 2, 0x10, 2, 0, 0, 0, 0);
    cr_assert_eq(rreg(HV_X86_RAX) & 0xffff, 0x1234);
    skip_insn();
    expect_io(out32, 1, 0x10, 4, 0, 0, 0, 0);
    cr_assert_eq(rreg(HV_X86_RAX), 0xdeadbeef);
    skip_insn();
    expect_io(outi, 2, 0x80, 1, 0, 0, 0, 1);
    skip_insn();
    /* IN: the backend writes the result; the layer must not add KVM's */
    expect_io(in8, 1, 0x10, 1, 1, 0, 0, 0);
    cr_assert_eq(rreg(HV_X86_RAX), 0xdeadbeef, "IN must not have run");
    wreg(HV_X86_RAX, 0xdeadbe5a);
    skip_insn();
    expect_io(in16, 2, 0x10, 2, 1, 0, 0, 0);
    cr_assert_eq(rreg(HV_X86_RAX), 0xdeadbe5a);
    wreg(HV_X86_RAX, 0xdead7777);
    skip_insn();
    expect_io(in32, 1, 0x10, 4, 1, 0, 0, 0);
    cr_assert_eq(rreg(HV_X86_RAX), 0xdead7777);
    wreg(HV_X86_RAX, 0x01020304);
    skip_insn();
    expect_io(ini, 2, 0x71, 1, 1, 0, 0, 1);
    cr_assert_eq(rreg(HV_X86_RAX), 0x01020304);
    skip_insn();
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
    cr_assert_eq(rvmcs(VMCS_RO_VMEXIT_INSTR_LEN), 1);
}

Test(hvf_host, string_io_exits_with_instruction_information)
{
    memcpy(ram + 0x2000, "abc", 3);
    memset(ram + DATA, 0xcc, 16);
    EMIT(0xba, B4(0x18));                          /* mov edx, 0x18 */
    EMIT(0xbe, B4(0x2000));                        /* mov esi, 0x2000 */
    EMIT(0xb9, B4(3));                             /* mov ecx, 3 */
    uint64_t outs = EMIT(0xf3, 0x6e);              /* rep outsb */
    EMIT(0xbf, B4(DATA));                          /* mov edi, DATA */
    EMIT(0xb9, B4(2));                             /* mov ecx, 2 */
    uint64_t ins = EMIT(0xf3, 0x66, 0x6d);         /* rep insw */
    EMIT(0xbe, B4(0x2001));                        /* mov esi, 0x2001 */
    uint64_t fsouts = EMIT(0x64, 0x6e);            /* outsb fs:[rsi] */
    EMIT(0xf4);

    expect_io(outs, 2, 0x18, 1, 0, 1, 1, 0);
    cr_assert_eq(rreg(HV_X86_RSI), 0x2000);
    cr_assert_eq(rreg(HV_X86_RCX), 3);
    cr_assert_eq(rvmcs(VMCS_RO_VMX_INSTR_INFO), 2u << 7 | 3u << 15);
    cr_assert_eq(rvmcs(VMCS_RO_GUEST_LIN_ADDR), 0x2000);
    /* the backend does all three elements */
    wreg(HV_X86_RSI, 0x2003);
    wreg(HV_X86_RCX, 0);
    skip_insn();
    expect_io(ins, 3, 0x18, 2, 1, 1, 1, 0);
    cr_assert_eq(rreg(HV_X86_RDI), DATA);
    cr_assert_eq(rreg(HV_X86_RCX), 2);
    cr_assert_eq(rvmcs(VMCS_RO_VMX_INSTR_INFO), 2u << 7);
    cr_assert_eq(ram[DATA], 0xcc, "INS must not have written memory");
    cr_assert_eq(ram[DATA + 3], 0xcc);
    memcpy(ram + DATA, "WXYZ", 4);
    wreg(HV_X86_RDI, DATA + 4);
    wreg(HV_X86_RCX, 0);
    skip_insn();
    expect_io(fsouts, 2, 0x18, 1, 0, 1, 0, 0);
    cr_assert_eq(rreg(HV_X86_RSI), 0x2001);
    cr_assert_eq(rvmcs(VMCS_RO_VMX_INSTR_INFO), 2u << 7 | 4u << 15);
    wreg(HV_X86_RSI, 0x2002);
    skip_insn();
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(memcmp(ram + DATA, "WXYZ", 4), 0);
}

static void expect_ept(uint64_t rip, uint64_t gpa, unsigned access)
{
    cr_assert_eq(run(), VMX_REASON_EPT_VIOLATION, "exit %llu at 0x%llx",
                 (unsigned long long)rvmcs(VMCS_RO_EXIT_REASON),
                 (unsigned long long)rreg(HV_X86_RIP));
    cr_assert_eq(rreg(HV_X86_RIP), rip, "rip 0x%llx, expected 0x%llx",
                 (unsigned long long)rreg(HV_X86_RIP),
                 (unsigned long long)rip);
    cr_assert_eq(rvmcs(VMCS_GUEST_PHYSICAL_ADDRESS), gpa);
    cr_assert_eq(rvmcs(VMCS_RO_EXIT_QUALIFIC) & 7, access);
}

Test(hvf_host, mmio_is_an_ept_violation_before_the_instruction)
{
    EMIT(0xbb, B4(MMIO));                          /* mov ebx, MMIO */
    EMIT(0xb8, B4(0x1111));                        /* mov eax, 0x1111 */
    EMIT(0xb9, B4(0x55667788));                    /* mov ecx, ... */
    uint64_t ld = EMIT(0x8b, 0x03);                /* mov eax, [rbx] */
    uint64_t st = EMIT(0x89, 0x4b, 0x08);          /* mov [rbx+8], ecx */
    uint64_t mz = EMIT(0x0f, 0xb6, 0x4b, 0x01);    /* movzx ecx, byte [rbx+1] */
    EMIT(0xbf, B4(MMIO + 0x10));                   /* mov edi, MMIO+0x10 */
    uint64_t sd = EMIT(0xab);                      /* stosd */
    EMIT(0xbf, B4(MMIO + 0x20));                   /* mov edi, MMIO+0x20 */
    EMIT(0xb9, B4(2));                             /* mov ecx, 2 */
    uint64_t rs = EMIT(0xf3, 0xaa);                /* rep stosb */
    uint64_t ro = EMIT(0x88, 0x04, 0x25, B4(0x5000)); /* mov [0x5000], al */
    uint64_t na = EMIT(0x8a, 0x0c, 0x25, B4(0x6000)); /* mov cl, [0x6000] */
    uint64_t hlt = EMIT(0xf4);
    ram[0x5000] = 0x99;
    ram[0x6000] = 0x98;
    cr_assert_eq(hv_vm_protect(0x5000, 0x1000, HV_MEMORY_READ), HV_SUCCESS);
    cr_assert_eq(hv_vm_protect(0x6000, 0x1000, 0), HV_SUCCESS);

    expect_ept(ld, MMIO, 1);
    cr_assert_eq(rreg(HV_X86_RAX), 0x1111, "the load must not have run");
    cr_assert_eq(rvmcs(VMCS_RO_EXIT_QUALIFIC) & (3u << 7), 3u << 7);
    cr_assert_eq(rvmcs(VMCS_RO_GUEST_LIN_ADDR), MMIO);
    wreg(HV_X86_RAX, 0xabcd);
    wreg(HV_X86_RIP, ld + 2);
    expect_ept(st, MMIO + 8, 2);
    cr_assert_eq(rreg(HV_X86_RAX), 0xabcd);
    cr_assert_eq(rreg(HV_X86_RCX), 0x55667788);
    wreg(HV_X86_RIP, st + 3);
    expect_ept(mz, MMIO + 1, 1);
    cr_assert_eq(rreg(HV_X86_RCX), 0x55667788, "movzx must not have run");
    wreg(HV_X86_RCX, 0x7f);
    wreg(HV_X86_RIP, mz + 4);
    expect_ept(sd, MMIO + 0x10, 2);
    cr_assert_eq(rreg(HV_X86_RDI), MMIO + 0x10, "stos must not have run");
    wreg(HV_X86_RDI, MMIO + 0x14);
    wreg(HV_X86_RIP, sd + 1);
    expect_ept(rs, MMIO + 0x20, 2);
    cr_assert_eq(rreg(HV_X86_RDI), MMIO + 0x20);
    cr_assert_eq(rreg(HV_X86_RCX), 2);
    wreg(HV_X86_RDI, MMIO + 0x22);
    wreg(HV_X86_RCX, 0);
    wreg(HV_X86_RIP, rs + 2);
    /* read-only page: the write faults, memory keeps its byte */
    expect_ept(ro, 0x5000, 2);
    cr_assert_eq((rvmcs(VMCS_RO_EXIT_QUALIFIC) >> 3) & 7, HV_MEMORY_READ);
    cr_assert_eq(ram[0x5000], 0x99);
    wreg(HV_X86_RIP, ro + 7);
    /* no-access page: the read faults */
    expect_ept(na, 0x6000, 1);
    cr_assert_eq((rvmcs(VMCS_RO_EXIT_QUALIFIC) >> 3) & 7, 0);
    cr_assert_eq(rreg(HV_X86_RCX) & 0xff, 0);
    wreg(HV_X86_RIP, na + 7);
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
}

Test(hvf_host, cpuid_answers_are_the_backends)
{
    EMIT(0xb8, B4(0x40000000));                    /* mov eax, 0x40000000 */
    EMIT(0x0f, 0xa2);                              /* cpuid */
    EMIT(0x89, 0x1c, 0x25, B4(DATA));              /* mov [DATA], ebx */
    EMIT(0x89, 0x0c, 0x25, B4(DATA + 4));          /* mov [DATA+4], ecx */
    EMIT(0x89, 0x14, 0x25, B4(DATA + 8));          /* mov [DATA+8], edx */
    EMIT(0xb8, B4(6));                             /* mov eax, 6 */
    EMIT(0x0f, 0xa2);                              /* cpuid */
    EMIT(0x89, 0x04, 0x25, B4(DATA + 12));         /* mov [DATA+12], eax */
    EMIT(0x89, 0x1c, 0x25, B4(DATA + 16));         /* mov [DATA+16], ebx */
    uint64_t hlt = EMIT(0xf4);
    wreg(HV_X86_RBX, 0x5151);
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
    cr_assert_gt(cpuid_exits, 10, "every leaf is asked up front");
    cr_assert_eq(memcmp(ram + DATA, "hvfhTESTcpid", 12), 0, "saw %.12s",
                 (char *)(ram + DATA));
    uint32_t a, b;
    memcpy(&a, ram + DATA + 12, 4);
    memcpy(&b, ram + DATA + 16, 4);
    cr_assert_eq(a, 0x12345678);
    cr_assert_eq(b, 0x9abcdef0);
}

Test(hvf_host, rdmsr_wrmsr_exit_unless_native)
{
    cr_assert_eq(hv_vcpu_write_msr(vcpu, 0x174, 0x42), HV_SUCCESS);
    EMIT(0xb9, B4(0x174));                         /* mov ecx, 0x174 */
    uint64_t rd = EMIT(0x0f, 0x32);                /* rdmsr */
    EMIT(0x89, 0x04, 0x25, B4(DATA));              /* mov [DATA], eax */
    EMIT(0xb9, B4(0x175));                         /* mov ecx, 0x175 */
    EMIT(0xb8, B4(0x2));                           /* mov eax, 2 */
    EMIT(0xba, B4(0x1));                           /* mov edx, 1 */
    uint64_t wr = EMIT(0x0f, 0x30);                /* wrmsr */
    EMIT(0xb9, B4(0x174));                         /* mov ecx, 0x174 */
    EMIT(0x0f, 0x32);                              /* rdmsr (native) */
    EMIT(0x89, 0x04, 0x25, B4(DATA + 4));          /* mov [DATA+4], eax */
    EMIT(0xf4);
    uint32_t w0 = run();
    cr_assert_eq(w0, VMX_REASON_RDMSR, "exit %u rip %llx", w0, (unsigned long long)rreg(HV_X86_RIP));
    cr_assert_eq(rreg(HV_X86_RIP), rd);
    cr_assert_eq(rreg(HV_X86_RCX), 0x174);
    cr_assert_eq(rvmcs(VMCS_RO_VMEXIT_INSTR_LEN), 2);
    wreg(HV_X86_RAX, 0x11);
    wreg(HV_X86_RDX, 0);
    skip_insn();
    cr_assert_eq(run(), VMX_REASON_WRMSR);
    cr_assert_eq(rreg(HV_X86_RIP), wr);
    cr_assert_eq(rreg(HV_X86_RCX), 0x175);
    cr_assert_eq(rreg(HV_X86_RAX), 2);
    cr_assert_eq(rreg(HV_X86_RDX), 1);
    uint64_t esp = 0;
    cr_assert_eq(hv_vcpu_read_msr(vcpu, 0x175, &esp), HV_SUCCESS);
    cr_assert_neq(esp, 0x100000002ull, "the WRMSR must not have run");
    skip_insn();
    cr_assert_eq(hv_vcpu_enable_native_msr(vcpu, 0x174, true), HV_SUCCESS);
    cr_assert_eq(run(), VMX_REASON_HLT);
    uint32_t a, b;
    memcpy(&a, ram + DATA, 4);
    memcpy(&b, ram + DATA + 4, 4);
    cr_assert_eq(a, 0x11);
    cr_assert_eq(b, 0x42);
}

/* IDT vector 0x20 -> a handler that stores 0x77 at DATA and returns. */
static void idt_handler(void)
{
    uint64_t h = 0x1800, save = pc;
    pc = h;
    EMIT(0xc6, 0x04, 0x25, B4(DATA), 0x77);        /* mov byte [DATA], 0x77 */
    EMIT(0x48, 0xcf);                              /* iretq */
    pc = save;
    uint64_t *g = (uint64_t *)(ram + IDT + 0x20 * 16);
    g[0] = (h & 0xffff) | (0x08ull << 16) | (0x8eull << 40) |
           ((h >> 16 & 0xffff) << 48);
    g[1] = h >> 32;
}

Test(hvf_host, injected_interrupt_and_window)
{
    idt_handler();
    EMIT(0xfa);                                    /* cli */
    uint64_t o1 = EMIT(0xe6, 0x10);                /* out 0x10, al */
    EMIT(0xfb);                                    /* sti */
    EMIT(0x90);                                    /* nop */
    EMIT(0x90);                                    /* nop */
    uint64_t hlt = EMIT(0xf4);
    uint64_t o2 = EMIT(0xe6, 0x11);                /* out 0x11, al */
    EMIT(0xf4);
    cr_assert_eq(run(), VMX_REASON_IO);
    cr_assert_eq(rreg(HV_X86_RIP), o1);
    skip_insn();
    /* IF=0: injecting now would fail the entry, the window waits */
    wvmcs(VMCS_CTRL_VMENTRY_IRQ_INFO, IRQ_INFO_VALID | IRQ_INFO_EXT_IRQ | 0x20);
    cr_assert_eq(run(), 0x80000000u | VMX_REASON_VMENTRY_GUEST);
    wvmcs(VMCS_CTRL_VMENTRY_IRQ_INFO, 0);
    wvmcs(VMCS_CTRL_CPU_BASED, rvmcs(VMCS_CTRL_CPU_BASED) | CPU_BASED_IRQ_WND);
    uint32_t w1 = run();
    cr_assert_eq(w1, VMX_REASON_IRQ_WND, "exit %u rip %llx", w1, (unsigned long long)rreg(HV_X86_RIP));
    cr_assert(rreg(HV_X86_RFLAGS) & (1u << 9), "IF set at the window");
    cr_assert_gt(rreg(HV_X86_RIP), o1);
    cr_assert_leq(rreg(HV_X86_RIP), hlt);
    cr_assert_eq(ram[DATA], 0);
    wvmcs(VMCS_CTRL_CPU_BASED,
          rvmcs(VMCS_CTRL_CPU_BASED) & ~(uint64_t)CPU_BASED_IRQ_WND);
    wvmcs(VMCS_CTRL_VMENTRY_IRQ_INFO, IRQ_INFO_VALID | IRQ_INFO_EXT_IRQ | 0x20);
    uint32_t why = run();
    cr_assert_eq(ram[DATA], 0x77, "the handler ran");
    cr_assert_eq(rvmcs(VMCS_CTRL_VMENTRY_IRQ_INFO) & IRQ_INFO_VALID, 0);
    if (why == VMX_REASON_HLT) {
        cr_assert_eq(rreg(HV_X86_RIP), hlt);
        skip_insn();
        why = run();
    }
    cr_assert_eq(why, VMX_REASON_IO);
    cr_assert_eq(rreg(HV_X86_RIP), o2);
}

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

Test(hvf_host, vcpu_calls_from_another_thread_fail)
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

Test(hvf_host, interrupt_from_another_thread_ends_the_run)
{
    uint64_t spin = EMIT(0xeb, 0xfe);              /* jmp . */
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

Test(hvf_host, entry_checks_ia32e_control)
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
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert(rvmcs(VMCS_CTRL_VMENTRY_CONTROLS) & VMENTRY_GUEST_IA32E);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* For information: the cost of an I/O and an MMIO-write exit round trip
 * through this layer (printed; only the counts are asserted). */
Test(hvf_host, exit_round_trip_costs)
{
    EMIT(0xbb, B4(MMIO));                          /* mov ebx, MMIO */
    uint64_t loop = EMIT(0xe6, 0x10);              /* out 0x10, al */
    EMIT(0x89, 0x03);                              /* mov [rbx], eax */
    EMIT(0xeb, (uint8_t)(loop - (pc + 2)));        /* jmp loop */
    enum { N = 2000 };
    cr_assert_eq(run(), VMX_REASON_IO);
    skip_insn();
    cr_assert_eq(run(), VMX_REASON_EPT_VIOLATION);
    wreg(HV_X86_RIP, rreg(HV_X86_RIP) + 2);
    double t_io = 0, t_mmio = 0;
    int io = 0, mmio = 0;
    for (int i = 0; i < N; i++) {
        double t0 = now_us();
        uint32_t why = run();
        double t1 = now_us();
        if (why == VMX_REASON_IO) {
            io++;
            t_io += t1 - t0;
            skip_insn();
        } else {
            cr_assert_eq(why, VMX_REASON_EPT_VIOLATION);
            mmio++;
            t_mmio += t1 - t0;
            wreg(HV_X86_RIP, rreg(HV_X86_RIP) + 2);
        }
    }
    cr_assert_eq(io, N / 2);
    cr_assert_eq(mmio, N / 2);
    cr_log_info("hvf_host round trip: I/O %.1f us, MMIO write %.1f us",
                t_io / io, t_mmio / mmio);
    fprintf(stderr, "hvf_host round trip: I/O %.1f us, MMIO write %.1f us\n",
            t_io / io, t_mmio / mmio);
}
