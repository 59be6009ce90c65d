/* The raw-ioctl baseline of bench/exit_latency.c; see raw_kvm.h. */
#define _GNU_SOURCE /* memfd_create */
#include "raw_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* What libhvcore uses on KVM (src/backends/kvm/kvm.h). */
#define TSS_ADDR 0xfffbd000ul
#define IDENTITY_MAP_ADDR 0xfffbc000ull

static int check_ioctl(int r, const char *what)
{
    if (r < 0)
        bench_die(what);
    return r;
}

#define XIOCTL(fd, req, arg) check_ioctl(ioctl((fd), (req), (arg)), #req)

int raw_open(struct raw_kvm *k)
{
    k->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (k->fd < 0)
        return -errno;
    if (XIOCTL(k->fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        fprintf(stderr,
                BENCH_PROG ": /dev/kvm speaks API version %d, not "
                           "%d\n",
                ioctl(k->fd, KVM_GET_API_VERSION, 0), KVM_API_VERSION);
        exit(1);
    }
    k->run_size = (size_t)XIOCTL(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    for (uint32_t n = 64;; n *= 2) {
        k->cpuid =
            calloc(1, sizeof(*k->cpuid) + n * sizeof(k->cpuid->entries[0]));
        if (!k->cpuid)
            bench_die("calloc");
        k->cpuid->nent = n;
        if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, k->cpuid) == 0)
            break;
        free(k->cpuid);
        if (errno != E2BIG || n >= 4096)
            bench_die("KVM_GET_SUPPORTED_CPUID");
    }
    /* libhvcore's edits for vCPU 0: APIC id 0, the hypervisor bit. It makes
     * them on a copy per vCPU; one vCPU needs them once. */
    for (uint32_t i = 0; i < k->cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &k->cpuid->entries[i];
        if (e->function == 1) {
            e->ebx &= 0x00ffffffu;
            e->ecx |= 1u << 31;
        } else if (e->function == 0xb || e->function == 0x1f) {
            e->edx = 0;
        }
    }
    return 0;
}

void raw_close(struct raw_kvm *k)
{
    free(k->cpuid);
    close(k->fd);
}

void raw_vm_create(const struct raw_kvm *k, struct raw_vm *v,
                   const struct guest *g)
{
    v->fd = XIOCTL(k->fd, KVM_CREATE_VM, 0);
    XIOCTL(v->fd, KVM_SET_TSS_ADDR, TSS_ADDR);
    uint64_t map = IDENTITY_MAP_ADDR;
    XIOCTL(v->fd, KVM_SET_IDENTITY_MAP_ADDR, &map);
    XIOCTL(v->fd, KVM_CREATE_IRQCHIP, 0);
    struct kvm_pit_config pit = {.flags = 0};
    XIOCTL(v->fd, KVM_CREATE_PIT2, &pit);

    v->mem_fd = memfd_create("exit-latency", MFD_CLOEXEC);
    if (v->mem_fd < 0)
        bench_die("memfd_create");
    if (ftruncate(v->mem_fd, RAM_SIZE) < 0)
        bench_die("ftruncate");
    v->mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_NORESERVE, v->mem_fd, 0);
    if (v->mem == MAP_FAILED)
        bench_die("mmap (guest RAM)");
    memcpy(v->mem + GUEST_LOAD, g->code, g->len);
    struct kvm_userspace_memory_region m = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = RAM_SIZE,
        .userspace_addr = (uintptr_t)v->mem,
    };
    XIOCTL(v->fd, KVM_SET_USER_MEMORY_REGION, &m);

    v->vcpu_fd = XIOCTL(v->fd, KVM_CREATE_VCPU, 0);
    v->run_size = k->run_size;
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                  v->vcpu_fd, 0);
    if (v->run == MAP_FAILED)
        bench_die("mmap (kvm_run)");
    XIOCTL(v->vcpu_fd, KVM_SET_CPUID2, k->cpuid);
    struct kvm_sregs s;
    XIOCTL(v->vcpu_fd, KVM_GET_SREGS, &s);
    s.cs.base = 0;
    s.cs.selector = 0;
    XIOCTL(v->vcpu_fd, KVM_SET_SREGS, &s);
}

/* libhvcore's order: vCPU, then RAM, then the VM. */
void raw_vm_destroy(struct raw_vm *v)
{
    munmap(v->run, v->run_size);
    close(v->vcpu_fd);
    munmap(v->mem, RAM_SIZE);
    close(v->mem_fd);
    close(v->fd);
}

void raw_start(struct raw_vm *v, uint32_t exits)
{
    memcpy(v->mem + COUNT_ADDR, &exits, sizeof(exits));
    struct kvm_regs r;
    memset(&r, 0, sizeof(r));
    r.rip = GUEST_LOAD;
    r.rsp = GUEST_STACK;
    r.rflags = 0x2;
    XIOCTL(v->vcpu_fd, KVM_SET_REGS, &r);
}

uint64_t raw_run(struct raw_vm *v)
{
    uint64_t outs = 0;
    for (;;) {
        if (ioctl(v->vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            bench_die("KVM_RUN");
        }
        const struct kvm_run *run = v->run;
        if (run->exit_reason == KVM_EXIT_IO &&
            run->io.direction == KVM_EXIT_IO_OUT) {
            if (run->io.port == PORT_LOOP) {
                outs++;
                continue;
            }
            if (run->io.port == PORT_DONE)
                return outs;
        }
        fprintf(stderr,
                BENCH_PROG ": raw KVM_RUN: unexpected exit %u (port 0x%x)\n",
                run->exit_reason, run->io.port);
        exit(1);
    }
}
