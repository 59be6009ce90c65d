/* tests/hvf_host: exits through the KVM-hosted Hypervisor.framework API as
 * Apple documents them (I/O, MMIO as EPT violations, CPUID, MSRs), driven
 * directly through hv_* with guests assembled here (hvfh_test.h). */
#define _GNU_SOURCE
#include "hvfh_test.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

TestSuite(hvf_host, .init = vm_setup, .timeout = 60);

Test(hvf_host, port_io_exits_before_the_instruction)
{
    EMIT(0xba, B4(0x10));              /* mov edx, 0x10 */
    EMIT(0xb0, 0x42);                  /* mov al, 0x42 */
    uint64_t out8 = EMIT(0xee);        /* out dx, al */
    EMIT(0x66, 0xb8, 0x34, 0x12);      /* mov ax, 0x1234 */
    uint64_t out16 = EMIT(0x66, 0xef); /* out dx, ax */
    EMIT(0xb8, B4(0xdeadbeef));        /* mov eax, ... */
    uint64_t out32 = EMIT(0xef);       /* out dx, eax */
    uint64_t outi = EMIT(0xe6, 0x80);  /* out 0x80, al */
    uint64_t in8 = EMIT(0xec);         /* in al, dx */
    uint64_t in16 = EMIT(0x66, 0xed);  /* in ax, dx */
    uint64_t in32 = EMIT(0xed);        /* in eax, dx */
    uint64_t ini = EMIT(0xe4, 0x71);   /* in al, 0x71 */
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
    EMIT(0xba, B4(0x18));                  /* mov edx, 0x18 */
    EMIT(0xbe, B4(0x2000));                /* mov esi, 0x2000 */
    EMIT(0xb9, B4(3));                     /* mov ecx, 3 */
    uint64_t outs = EMIT(0xf3, 0x6e);      /* rep outsb */
    EMIT(0xbf, B4(DATA));                  /* mov edi, DATA */
    EMIT(0xb9, B4(2));                     /* mov ecx, 2 */
    uint64_t ins = EMIT(0xf3, 0x66, 0x6d); /* rep insw */
    EMIT(0xbe, B4(0x2001));                /* mov esi, 0x2001 */
    uint64_t fsouts = EMIT(0x64, 0x6e);    /* outsb fs:[rsi] */
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

Test(hvf_host, mmio_is_an_ept_violation_before_the_instruction)
{
    EMIT(0xbb, B4(MMIO));                       /* mov ebx, MMIO */
    EMIT(0xb8, B4(0x1111));                     /* mov eax, 0x1111 */
    EMIT(0xb9, B4(0x55667788));                 /* mov ecx, ... */
    uint64_t ld = EMIT(0x8b, 0x03);             /* mov eax, [rbx] */
    uint64_t st = EMIT(0x89, 0x4b, 0x08);       /* mov [rbx+8], ecx */
    uint64_t mz = EMIT(0x0f, 0xb6, 0x4b, 0x01); /* movzx ecx, byte [rbx+1] */
    EMIT(0xbf, B4(MMIO + 0x10));                /* mov edi, MMIO+0x10 */
    uint64_t sd = EMIT(0xab);                   /* stosd */
    EMIT(0xbf, B4(MMIO + 0x20));                /* mov edi, MMIO+0x20 */
    EMIT(0xb9, B4(2));                          /* mov ecx, 2 */
    uint64_t rs = EMIT(0xf3, 0xaa);             /* rep stosb */
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

/* A write KVM has already executed is found backwards from where KVM left
 * RIP: bytes before it can decode as another instruction that writes the
 * same address from another register ("44 89 41 20", mov [rcx+0x20],
 * r8d, read from its second byte is mov [rcx+0x20], eax), and the previous
 * instruction's last byte can look like a REX prefix. The exit is at the
 * instruction that stored the data. */
Test(hvf_host, mmio_write_exits_at_the_instruction_that_stored_it)
{
    EMIT(0xb9, B4(MMIO));                       /* mov ecx, MMIO */
    EMIT(0xb8, B4(0x1111));                     /* mov eax, 0x1111 */
    EMIT(0x41, 0xb8, B4(0x2222));               /* mov r8d, 0x2222 */
    uint64_t r8 = EMIT(0x44, 0x89, 0x41, 0x20); /* mov [rcx+0x20], r8d */
    EMIT(0xba, B4(0x44000000));                 /* mov edx, 0x44000000 */
    uint64_t ax = EMIT(0x89, 0x41, 0x24);       /* mov [rcx+0x24], eax */
    uint64_t hlt = EMIT(0xf4);
    expect_ept(r8, MMIO + 0x20, 2);
    cr_assert_eq(rvmcs(VMCS_RO_GUEST_LIN_ADDR), MMIO + 0x20);
    wreg(HV_X86_RIP, r8 + 4);
    expect_ept(ax, MMIO + 0x24, 2);
    wreg(HV_X86_RIP, ax + 3);
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
}

/* One store to the stack page at 0x7000, write-protected as a VMM's dirty
 * tracking does (hv_vm_protect without WRITE): an EPT violation before the
 * instruction, RIP and RSP as they were (KVM completed a CALL or PUSH into
 * its read-only memslot before exiting), and the store done once the page
 * is writable again; the OUT after it returns here. */
static void protected_push(uint64_t insn, uint64_t out, uint64_t rsp,
                           uint64_t value)
{
    const hv_memory_flags_t rx = HV_MEMORY_READ | HV_MEMORY_EXEC;
    cr_assert_eq(hv_vm_protect(0x7000, 0x1000, rx), HV_SUCCESS);
    expect_ept(insn, rsp - 8, 2);
    cr_assert_eq(rreg(HV_X86_RSP), rsp, "rsp 0x%llx",
                 (unsigned long long)rreg(HV_X86_RSP));
    cr_assert_eq(hv_vm_protect(0x7000, 0x1000, rx | HV_MEMORY_WRITE),
                 HV_SUCCESS);
    expect_io(out, 2, 0x10, 1, 0, 0, 0, 1);
    cr_assert_eq(rreg(HV_X86_RSP), rsp - 8);
    uint64_t got;
    memcpy(&got, ram + rsp - 8, 8);
    cr_assert_eq(got, value, "stored 0x%llx, expected 0x%llx",
                 (unsigned long long)got, (unsigned long long)value);
    skip_insn();
}

Test(hvf_host, stack_writes_to_a_protected_page)
{
    uint64_t pr = EMIT(0x50);        /* push rax */
    uint64_t o1 = EMIT(0xe6, 0x10);  /* out 0x10, al */
    uint64_t pi = EMIT(0x6a, 0x11);  /* push 0x11 */
    uint64_t o2 = EMIT(0xe6, 0x10);  /* out 0x10, al */
    uint64_t ca = EMIT(0xe8, B4(1)); /* call over the hlt */
    EMIT(0xf4);                      /* hlt, skipped */
    uint64_t o3 = EMIT(0xe6, 0x10);  /* out 0x10, al */
    EMIT(0xbb, B4(0));               /* mov ebx, 0 (set below) */
    uint64_t cr = EMIT(0xff, 0xd3);  /* call rbx */
    uint64_t o4 = EMIT(0xe6, 0x10);  /* out 0x10, al: call rbx's target */
    uint64_t hlt = EMIT(0xf4);
    ram[o3 + 3] = (uint8_t)o4; /* mov ebx, o4 */
    ram[o3 + 4] = (uint8_t)(o4 >> 8);
    wreg(HV_X86_RSP, 0x8000);
    wreg(HV_X86_RAX, 0x1234);
    protected_push(pr, o1, 0x8000, 0x1234);
    protected_push(pi, o2, 0x7ff8, 0x11);
    protected_push(ca, o3, 0x7ff0, ca + 5);
    protected_push(cr, o4, 0x7fe8, cr + 2);
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
}

Test(hvf_host, cpuid_answers_are_the_backends)
{
    EMIT(0xb8, B4(0x40000000));            /* mov eax, 0x40000000 */
    EMIT(0x0f, 0xa2);                      /* cpuid */
    EMIT(0x89, 0x1c, 0x25, B4(DATA));      /* mov [DATA], ebx */
    EMIT(0x89, 0x0c, 0x25, B4(DATA + 4));  /* mov [DATA+4], ecx */
    EMIT(0x89, 0x14, 0x25, B4(DATA + 8));  /* mov [DATA+8], edx */
    EMIT(0xb8, B4(6));                     /* mov eax, 6 */
    EMIT(0x0f, 0xa2);                      /* cpuid */
    EMIT(0x89, 0x04, 0x25, B4(DATA + 12)); /* mov [DATA+12], eax */
    EMIT(0x89, 0x1c, 0x25, B4(DATA + 16)); /* mov [DATA+16], ebx */
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
    EMIT(0xb9, B4(0x174));                /* mov ecx, 0x174 */
    uint64_t rd = EMIT(0x0f, 0x32);       /* rdmsr */
    EMIT(0x89, 0x04, 0x25, B4(DATA));     /* mov [DATA], eax */
    EMIT(0xb9, B4(0x175));                /* mov ecx, 0x175 */
    EMIT(0xb8, B4(0x2));                  /* mov eax, 2 */
    EMIT(0xba, B4(0x1));                  /* mov edx, 1 */
    uint64_t wr = EMIT(0x0f, 0x30);       /* wrmsr */
    EMIT(0xb9, B4(0x174));                /* mov ecx, 0x174 */
    EMIT(0x0f, 0x32);                     /* rdmsr (native) */
    EMIT(0x89, 0x04, 0x25, B4(DATA + 4)); /* mov [DATA+4], eax */
    EMIT(0xf4);
    uint32_t w0 = run();
    cr_assert_eq(w0, VMX_REASON_RDMSR, "exit %u rip %llx", w0,
                 (unsigned long long)rreg(HV_X86_RIP));
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
    EMIT(0xbb, B4(MMIO));                   /* mov ebx, MMIO */
    uint64_t loop = EMIT(0xe6, 0x10);       /* out 0x10, al */
    EMIT(0x89, 0x03);                       /* mov [rbx], eax */
    EMIT(0xeb, (uint8_t)(loop - (pc + 2))); /* jmp loop */
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

Test(hvf_host, unmapped_range_and_fetch)
{
    uint64_t ld = EMIT(0x8a, 0x0c, 0x25, B4(0x7000)); /* mov cl, [0x7000] */
    EMIT(0xb8, B4(MMIO + 0x100));                     /* mov eax, MMIO+0x100 */
    EMIT(0xff, 0xe0);                                 /* jmp rax */
    cr_assert_eq(hv_vm_unmap(0x7000, 0x1000), HV_SUCCESS);
    cr_assert_eq(hv_vm_unmap(0x7000, 0x1000), HV_BAD_ARGUMENT,
                 "unmapping a hole");
    expect_ept(ld, 0x7000, 1);
    wreg(HV_X86_RIP, ld + 7);
    /* map it back: the same access now reads memory */
    cr_assert_eq(hv_vm_map(ram + 0x7000, 0x7000, 0x1000,
                           HV_MEMORY_READ | HV_MEMORY_WRITE),
                 HV_SUCCESS);
    expect_ept(MMIO + 0x100, MMIO + 0x100, 4);
}

/* Writes exit after KVM executed them: the instruction found must be the
 * one that ended at RIP, whatever the bytes before it look like. */
Test(hvf_host, mmio_write_prefixes_and_lookalikes)
{
    wvmcs(VMCS_GUEST_FS_BASE, 0x100);
    EMIT(0xbb, B4(MMIO));                      /* mov ebx, MMIO */
    EMIT(0x48, 0xc7, 0xc0, B4(0x11223344));    /* mov rax, imm32 */
    uint64_t q = EMIT(0x48, 0x89, 0x43, 0x18); /* mov [rbx+0x18], rax */
    EMIT(0xb8, B4(0x66484141));                /* mov eax, 0x66484141 */
    uint64_t d = EMIT(0x89, 0x03);             /* mov [rbx], eax */
    EMIT(0xb0, 0x41);                          /* mov al, 0x41 */
    uint64_t b = EMIT(0x88, 0x43, 0x01);       /* mov [rbx+1], al */
    uint64_t f = EMIT(0x64, 0x89, 0x03);       /* mov fs:[rbx], eax */
    EMIT(0x66, 0xb8, 0x64, 0x00);              /* mov ax, 0x64 */
    uint64_t w = EMIT(0x66, 0x89, 0x43, 0x04); /* mov [rbx+4], ax */
    uint64_t hlt = EMIT(0xf4);
    expect_ept(q, MMIO + 0x18, 2);
    cr_assert_eq(rvmcs(VMCS_RO_GUEST_LIN_ADDR), MMIO + 0x18);
    wreg(HV_X86_RIP, q + 4);
    expect_ept(d, MMIO, 2);
    wreg(HV_X86_RIP, d + 2);
    expect_ept(b, MMIO + 1, 2);
    wreg(HV_X86_RIP, b + 3);
    expect_ept(f, MMIO + 0x100, 2);
    cr_assert_eq(rvmcs(VMCS_RO_GUEST_LIN_ADDR), MMIO + 0x100);
    wreg(HV_X86_RIP, f + 3);
    expect_ept(w, MMIO + 4, 2);
    wreg(HV_X86_RIP, w + 4);
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
}

/* MOVS from MMIO into RAM: the read exits first, RAM untouched. */
Test(hvf_host, movs_from_mmio_leaves_ram)
{
    ram[DATA] = 0x5c;
    EMIT(0xbe, B4(MMIO + 0x40)); /* mov esi, MMIO+0x40 */
    EMIT(0xbf, B4(DATA));        /* mov edi, DATA */
    uint64_t m = EMIT(0xa4);     /* movsb */
    uint64_t hlt = EMIT(0xf4);
    expect_ept(m, MMIO + 0x40, 1);
    cr_assert_eq(rreg(HV_X86_RSI), MMIO + 0x40);
    cr_assert_eq(rreg(HV_X86_RDI), DATA);
    cr_assert_eq(ram[DATA], 0x5c, "MOVS must not have written RAM");
    ram[DATA] = 0x99; /* the backend's emulation */
    wreg(HV_X86_RSI, MMIO + 0x41);
    wreg(HV_X86_RDI, DATA + 1);
    wreg(HV_X86_RIP, m + 1);
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
    cr_assert_eq(ram[DATA], 0x99);
}

/* REP OUTS backwards (DF=1) with 32-bit addressing: the exit comes before
 * the first element, RSI/RCX as the guest left them. */
Test(hvf_host, string_io_backwards_addr32)
{
    memcpy(ram + 0x2000, "xyz", 3);
    EMIT(0xba, B4(0x18));                   /* mov edx, 0x18 */
    EMIT(0xbe, B4(0x2002));                 /* mov esi, 0x2002 */
    EMIT(0xb9, B4(3));                      /* mov ecx, 3 */
    EMIT(0xfd);                             /* std */
    uint64_t outs = EMIT(0x67, 0xf3, 0x6e); /* rep outsb (addr32) */
    EMIT(0xfc);                             /* cld */
    uint64_t hlt = EMIT(0xf4);
    expect_io(outs, 3, 0x18, 1, 0, 1, 1, 0);
    cr_assert_eq(rreg(HV_X86_RSI), 0x2002);
    cr_assert_eq(rreg(HV_X86_RCX), 3);
    cr_assert(rreg(HV_X86_RFLAGS) & (1u << 10), "DF");
    cr_assert_eq(rvmcs(VMCS_RO_VMX_INSTR_INFO), 1u << 7 | 3u << 15);
    cr_assert_eq(rvmcs(VMCS_RO_GUEST_LIN_ADDR), 0x2002);
    wreg(HV_X86_RSI, 0x1fff);
    wreg(HV_X86_RCX, 0);
    skip_insn();
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
}

/* MSRs KVM does not filter (x2APIC) or does not know exit too. */
Test(hvf_host, x2apic_and_unknown_msrs_exit)
{
    EMIT(0xb9, B4(0x802));         /* mov ecx, 0x802 (x2APIC ID) */
    uint64_t a = EMIT(0x0f, 0x32); /* rdmsr */
    EMIT(0xb9, B4(0x4b564dff));    /* mov ecx, an unknown MSR */
    uint64_t b = EMIT(0x0f, 0x32); /* rdmsr */
    uint64_t hlt = EMIT(0xf4);
    uint32_t why = run();
    cr_assert_eq(why, VMX_REASON_RDMSR, "exit %u at 0x%llx", why,
                 (unsigned long long)rreg(HV_X86_RIP));
    cr_assert_eq(rreg(HV_X86_RIP), a);
    cr_assert_eq(rreg(HV_X86_RCX), 0x802);
    skip_insn();
    cr_assert_eq(run(), VMX_REASON_RDMSR);
    cr_assert_eq(rreg(HV_X86_RIP), b);
    cr_assert_eq(rreg(HV_X86_RCX), 0x4b564dff);
    skip_insn();
    cr_assert_eq(run(), VMX_REASON_HLT);
    cr_assert_eq(rreg(HV_X86_RIP), hlt);
}
