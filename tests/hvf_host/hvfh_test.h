/* tests/hvf_host suites: a 64-bit guest assembled in place (machine code
 * bytes, each instruction's address recorded) and a backend's side of
 * hv_vcpu_run (CPUID answered). Each test runs in its own process
 * (Criterion), so each has the process's one VM. */
#ifndef HVFH_TEST_H
#define HVFH_TEST_H

#include <Hypervisor/Hypervisor.h>

#include <stddef.h>
#include <stdint.h>

#define RAM_SIZE 0x200000ull
#define CODE 0x1000ull
#define DATA 0x3000ull
#define GDT 0x9000ull
#define IDT 0xa000ull
#define PML4 0x10000ull
#define MMIO 0xd0000000ull

extern uint8_t *ram;
extern hv_vcpuid_t vcpu;
extern uint64_t pc; /* where the next instruction goes */
extern int cpuid_exits;

/* Emits an instruction; returns its guest address. */
uint64_t emit_bytes(const uint8_t *b, size_t n);
#define EMIT(...)                                                              \
    emit_bytes((const uint8_t[]){__VA_ARGS__},                                 \
               sizeof((const uint8_t[]){__VA_ARGS__}))
#define B4(x)                                                                  \
    (uint8_t)(x), (uint8_t)((x) >> 8), (uint8_t)((x) >> 16),                   \
        (uint8_t)((x) >> 24)

uint64_t rreg(hv_x86_reg_t r);
void wreg(hv_x86_reg_t r, uint64_t v);
uint64_t rvmcs(uint32_t f);
void wvmcs(uint32_t f, uint64_t v);
/* hv_vcpu_run, answering CPUID exits as a backend would; returns the
 * first other exit reason. */
uint32_t run(void);
uint32_t run_vcpu(hv_vcpuid_t id);
int vcpu_init(hv_vcpuid_t *out, uint64_t rip, uint64_t rsp);
void skip_insn(void);
/* A VM with 2 MiB of RAM at 0, identity paging of the low 4 GiB, a GDT and
 * an IDT, and one vCPU in 64-bit mode at CODE (the suites' .init). */
void vm_setup(void);
void expect_io(uint64_t rip, unsigned len, unsigned port, unsigned size, int in,
               int string, int rep, int imm);
void expect_ept(uint64_t rip, uint64_t gpa, unsigned access);
/* IDT vector `vec` -> code at `h` (64-bit interrupt gate). */
void idt_gate(unsigned vec, uint64_t h);

#endif
