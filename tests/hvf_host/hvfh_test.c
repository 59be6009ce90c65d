/* tests/hvf_host suites' helpers (hvfh_test.h). */
#define _GNU_SOURCE
#include "hvfh_test.h"

#include <cpuid.h>
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mman.h>

uint8_t *ram;
hv_vcpuid_t vcpu;
uint64_t pc = CODE; /* where the next instruction goes */

uint64_t emit_bytes(const uint8_t *b, size_t n)
{
    uint64_t at = pc;
    memcpy(ram + pc, b, n);
    pc += n;
    return at;
}
uint64_t rreg(hv_x86_reg_t r)
{
    uint64_t v = 0;
    cr_assert_eq(hv_vcpu_read_register(vcpu, r, &v), HV_SUCCESS);
    return v;
}
void wreg(hv_x86_reg_t r, uint64_t v)
{
    cr_assert_eq(hv_vcpu_write_register(vcpu, r, v), HV_SUCCESS);
}
uint64_t rvmcs(uint32_t f)
{
    uint64_t v = 0;
    cr_assert_eq(hv_vmx_vcpu_read_vmcs(vcpu, f, &v), HV_SUCCESS,
                 "read vmcs 0x%x", f);
    return v;
}
void wvmcs(uint32_t f, uint64_t v)
{
    cr_assert_eq(hv_vmx_vcpu_write_vmcs(vcpu, f, v), HV_SUCCESS,
                 "write vmcs 0x%x", f);
}

/* The test's CPUID answers: the host's, with a few of our own. */
int cpuid_exits;
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
    } else if (leaf == 1) {
        r[2] &= ~(1u << 31); /* this CPU reports no hypervisor */
    }
}

/* hv_vcpu_run, answering CPUID exits as a backend would; returns the
 * first other exit reason. */
/* Non-asserting (any thread): answers CPUID exits, returns the first
 * other exit reason, or UINT32_MAX when a call fails. */
uint32_t run_vcpu(hv_vcpuid_t id)
{
    for (;;) {
        uint64_t why = 0, len = 0, rax = 0, rcx = 0, rip = 0;
        if (hv_vcpu_run(id) != HV_SUCCESS ||
            hv_vmx_vcpu_read_vmcs(id, VMCS_RO_EXIT_REASON, &why))
            return UINT32_MAX;
        if (why != VMX_REASON_CPUID)
            return (uint32_t)why;
        if (hv_vmx_vcpu_read_vmcs(id, VMCS_RO_VMEXIT_INSTR_LEN, &len) ||
            len != 2 || hv_vcpu_read_register(id, HV_X86_RAX, &rax) ||
            hv_vcpu_read_register(id, HV_X86_RCX, &rcx) ||
            hv_vcpu_read_register(id, HV_X86_RIP, &rip))
            return UINT32_MAX;
        uint32_t r[4];
        cpuid_answer((uint32_t)rax, (uint32_t)rcx, r);
        if (hv_vcpu_write_register(id, HV_X86_RAX, r[0]) ||
            hv_vcpu_write_register(id, HV_X86_RBX, r[1]) ||
            hv_vcpu_write_register(id, HV_X86_RCX, r[2]) ||
            hv_vcpu_write_register(id, HV_X86_RDX, r[3]) ||
            hv_vcpu_write_register(id, HV_X86_RIP, rip + 2))
            return UINT32_MAX;
        __atomic_add_fetch(&cpuid_exits, 1, __ATOMIC_RELAXED);
    }
}

uint32_t run(void)
{
    uint32_t why = run_vcpu(vcpu);
    cr_assert_neq(why, UINT32_MAX, "hv_vcpu_run or a register access failed");
    return why;
}

void skip_insn(void)
{
    wreg(HV_X86_RIP, rreg(HV_X86_RIP) + rvmcs(VMCS_RO_VMEXIT_INSTR_LEN));
}

/* Non-asserting (any thread): a vCPU of the calling thread in 64-bit mode
 * at `rip`; 0 or -1. */
int vcpu_init(hv_vcpuid_t *out, uint64_t rip, uint64_t rsp)
{
    hv_vcpuid_t id;
    if (hv_vcpu_create(&id, HV_VCPU_DEFAULT))
        return -1;
    static const struct {
        uint32_t f;
        uint64_t v;
    } st[] = {
        {VMCS_GUEST_CS, 0x08},
        {VMCS_GUEST_CS_BASE, 0},
        {VMCS_GUEST_CS_LIMIT, 0xffffffff},
        {VMCS_GUEST_CS_AR, 0xa09b},
        {VMCS_GUEST_TR, 0x18},
        {VMCS_GUEST_TR_BASE, 0},
        {VMCS_GUEST_TR_LIMIT, 0x67},
        {VMCS_GUEST_TR_AR, 0x8b},
        {VMCS_GUEST_LDTR, 0},
        {VMCS_GUEST_LDTR_AR, 0x10000},
        {VMCS_GUEST_GDTR_BASE, GDT},
        {VMCS_GUEST_GDTR_LIMIT, 0x1f},
        {VMCS_GUEST_IDTR_BASE, IDT},
        {VMCS_GUEST_IDTR_LIMIT, 0xfff},
        {VMCS_GUEST_CR0, 0x80000031},
        {VMCS_CTRL_CR0_SHADOW, 0x80000031},
        {VMCS_GUEST_CR3, PML4},
        {VMCS_GUEST_CR4, 0x20 | 0x200 | 0x2000}, /* PAE OSFXSR VMXE */
        {VMCS_CTRL_CR4_MASK, 0x2000},
        {VMCS_CTRL_CR4_SHADOW, 0x20 | 0x200},
        {VMCS_GUEST_IA32_EFER, 0x500},
        {VMCS_GUEST_RFLAGS, 2},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
        bad |= hv_vmx_vcpu_write_vmcs(id, st[i].f, st[i].v) != HV_SUCCESS;
    static const uint32_t segs[] = {VMCS_GUEST_ES, VMCS_GUEST_SS, VMCS_GUEST_DS,
                                    VMCS_GUEST_FS, VMCS_GUEST_GS};
    for (int i = 0; i < 5; i++) {
        uint32_t k = (segs[i] - VMCS_GUEST_ES) / 2;
        bad |= hv_vmx_vcpu_write_vmcs(id, segs[i], 0x10) ||
               hv_vmx_vcpu_write_vmcs(id, VMCS_GUEST_ES_BASE + 2 * k, 0) ||
               hv_vmx_vcpu_write_vmcs(id, VMCS_GUEST_ES_LIMIT + 2 * k,
                                      0xffffffff) ||
               hv_vmx_vcpu_write_vmcs(id, VMCS_GUEST_ES_AR + 2 * k, 0xc093);
    }
    uint64_t entry = 0;
    bad |= hv_vmx_vcpu_read_vmcs(id, VMCS_CTRL_VMENTRY_CONTROLS, &entry) ||
           hv_vmx_vcpu_write_vmcs(id, VMCS_CTRL_VMENTRY_CONTROLS,
                                  entry | VMENTRY_GUEST_IA32E) ||
           hv_vmx_vcpu_write_vmcs(id, VMCS_GUEST_RSP, rsp) ||
           hv_vmx_vcpu_write_vmcs(id, VMCS_GUEST_RIP, rip);
    *out = id;
    return bad ? -1 : 0;
}

void vm_setup(void)
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
    cr_assert_eq(vcpu_init(&vcpu, CODE, 0x8000), 0);
    pc = CODE;
}

void expect_io(uint64_t rip, unsigned len, unsigned port, unsigned size, int in,
               int string, int rep, int imm)
{
    cr_assert_eq(run(), VMX_REASON_IO, "exit at rip 0x%llx",
                 (unsigned long long)rreg(HV_X86_RIP));
    cr_assert_eq(rreg(HV_X86_RIP), rip, "rip 0x%llx, expected 0x%llx",
                 (unsigned long long)rreg(HV_X86_RIP), (unsigned long long)rip);
    cr_assert_eq(rvmcs(VMCS_RO_VMEXIT_INSTR_LEN), len);
    uint64_t q = rvmcs(VMCS_RO_EXIT_QUALIFIC);
    uint64_t want = (size - 1) | (unsigned)in << 3 | (unsigned)string << 4 |
                    (unsigned)rep << 5 | (unsigned)imm << 6 |
                    (uint64_t)port << 16;
    cr_assert_eq(q, want, "qualification 0x%llx, expected 0x%llx",
                 (unsigned long long)q, (unsigned long long)want);
}

void expect_ept(uint64_t rip, uint64_t gpa, unsigned access)
{
    cr_assert_eq(run(), VMX_REASON_EPT_VIOLATION, "exit %llu at 0x%llx",
                 (unsigned long long)rvmcs(VMCS_RO_EXIT_REASON),
                 (unsigned long long)rreg(HV_X86_RIP));
    cr_assert_eq(rreg(HV_X86_RIP), rip, "rip 0x%llx, expected 0x%llx",
                 (unsigned long long)rreg(HV_X86_RIP), (unsigned long long)rip);
    cr_assert_eq(rvmcs(VMCS_GUEST_PHYSICAL_ADDRESS), gpa);
    cr_assert_eq(rvmcs(VMCS_RO_EXIT_QUALIFIC) & 7, access);
}

/* IDT vector `vec` -> code at `h` (64-bit interrupt gate). */
void idt_gate(unsigned vec, uint64_t h)
{
    uint64_t *g = (uint64_t *)(ram + IDT + vec * 16);
    g[0] = (h & 0xffff) | (0x08ull << 16) | (0x8eull << 40) |
           ((h >> 16 & 0xffff) << 48);
    g[1] = h >> 32;
}
