/* The baseline of bench/exit_latency.c: the same guest driven by raw KVM
 * ioctls, on a VM built as libhvcore builds a default VM on KVM (TSS and
 * identity-map addresses, irqchip, PIT, memfd RAM, the supported CPUID), so
 * both ways ask the kernel for the same work. Every failure is fatal: it is
 * reported on stderr and the process exits with 1.
 */
#ifndef BENCH_RAW_KVM_H
#define BENCH_RAW_KVM_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_util.h"

#ifndef BENCH_PROG /* the program that names itself in messages */
#define BENCH_PROG "exit_latency"
#endif

/* Guest layout, shared by both ways; bench/guests/outloop.S and
 * bench/CMakeLists.txt repeat the numbers. The guest reads its loop count
 * from the dword at COUNT_ADDR, so it must end below it. */
#define GUEST_LOAD 0x8000
#define GUEST_MAX 0x1000
#define COUNT_ADDR 0x9000
#define GUEST_STACK 0x7000
#define PORT_LOOP 0x10
#define PORT_DONE 0xf4
#define RAM_SIZE (64u << 20)

struct guest {
    unsigned char code[GUEST_MAX];
    size_t len;
};

/* What is asked of /dev/kvm once, as hvc_hypervisor_open() does. */
struct raw_kvm {
    int fd;
    size_t run_size;
    struct kvm_cpuid2 *cpuid; /* supported CPUID, edited for vCPU 0 */
};

struct raw_vm {
    int fd;
    int mem_fd;
    int vcpu_fd;
    unsigned char *mem;
    struct kvm_run *run;
    size_t run_size;
};

/* Opens /dev/kvm. Returns -errno when it cannot be opened (the caller
 * skips); a failure after that is fatal. */
int raw_open(struct raw_kvm *k);
void raw_close(struct raw_kvm *k);

/* A default VM with RAM at 0 holding @g at GUEST_LOAD, and vCPU 0 in real
 * mode with CS = 0. raw_start() then points the vCPU at the guest. */
void raw_vm_create(const struct raw_kvm *k, struct raw_vm *v,
                   const struct guest *g);
void raw_vm_destroy(struct raw_vm *v);

/* Sets the guest's loop count and puts the vCPU at its entry point. */
void raw_start(struct raw_vm *v, uint32_t exits);

/* The measured loop: KVM_RUN until the write to PORT_DONE. Returns how many
 * writes to PORT_LOOP it passed. */
uint64_t raw_run(struct raw_vm *v);

#endif
