/* tests/hvf_host internals: the one VM, its memory ranges and vCPUs, and
 * the software VMCS kept beside KVM's state. See hvf_host.h for what this
 * layer hides from KVM and how.
 *
 * Locks, in this order: hvfh_vm_lock (vm.c) guards the VM, the range list
 * and the vCPU table; hvfh_vm.run_lock (a writer-first rwlock) is held for
 * reading around each KVM_RUN and for writing by mem.c while it replaces
 * memslots (never taken for reading with hvfh_vm_lock held). A vCPU's own
 * state is touched only by its owner thread (every call on it checks),
 * except the kick flag and run->immediate_exit (atomics), which
 * hv_vcpu_interrupt() and mem.c set from any thread. */
#ifndef HVFH_H
#define HVFH_H

#include <Hypervisor/Hypervisor.h>

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#define HVFH_MAX_VCPUS 64
#define HVFH_PAGE 4096ull
#define HVFH_VMCS_SIZE 0x7000
#define HVFH_NATIVE_MAX 32
#define CR4_VMXE (1ull << 13)

struct hvfh_range {
    uint64_t gpa, size;
    uint64_t uva;
    hv_memory_flags_t flags;
    int slot; /* KVM memslot, -1 when the range has no access (no slot) */
};

struct hvfh_vcpu {
    int used;
    hv_vcpuid_t id;
    int fd;
    struct kvm_run *run;
    size_t run_size;
    pid_t tid; /* owner */
    pthread_t thread;
    atomic_int kick;
    int entered;  /* KVM_RUN done once (CPUID frozen) */
    int stepping; /* single-stepping to find the interrupt window */
    int cr4_vmxe; /* the guest CR4's VMXE bit (KVM's CR4 never has it) */
    uint64_t tlb_la, tlb_gpa; /* last KVM_TRANSLATE, until the next entry */
    int tlb_valid;
    int cpuid_state; /* 0 not probed, 1 probing, 2 programmed */
    int cpuid_idx;
    struct kvm_cpuid2 *cpuid;
    struct kvm_regs saved_regs; /* real registers while probing CPUID */
    int saved_dirty;
    /* cached KVM state */
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    int regs_valid, regs_dirty, sregs_valid, sregs_dirty;
    int sync_regs; /* KVM_CAP_SYNC_REGS: registers through kvm_run */
    uint64_t vmcs[HVFH_VMCS_SIZE];
    uint32_t native_msrs[HVFH_NATIVE_MAX];
    int n_native;
    int msr_filter_dirty;
    int64_t tsc_offset; /* hv_vm_sync_tsc's, applied at the next entry */
    int tsc_sync_pending;
    /* exit bookkeeping */
    uint64_t exits;
    /* slice.c: unstepped slices while IF stays clear */
    int win_if_off;    /* steps in a row with IF clear */
    long win_slice_ns; /* the last slice's length */
    timer_t win_timer; /* sends the kick signal to the owner thread */
    int win_timer_ok;
};

struct hvfh_vm {
    int created;
    int kvm_fd, vm_fd;
    int nr_slots;
    struct hvfh_range *ranges; /* sorted by gpa */
    int n_ranges;
    unsigned char *slot_used;
    struct hvfh_vcpu *vcpus[HVFH_MAX_VCPUS];
    int next_kvm_id;    /* KVM vCPU ids are never reused in a VM */
    int user_msr;       /* KVM_CAP_X86_USER_SPACE_MSR enabled */
    int msr_filter_set; /* msr.c: a filter was applied to this VM */
    /* KVM_RUN holds it for reading; mem.c, replacing memslots, for writing
     * after setting memop and kicking every vCPU (writers first) */
    pthread_rwlock_t run_lock;
    atomic_int memop;
    int tsc_offset_works; /* KVM_VCPU_TSC_OFFSET reaches the guest */
};

extern struct hvfh_vm hvfh_vm;
extern pthread_mutex_t hvfh_vm_lock;

/* mem.c */
int hvfh_mem_init(void);
void hvfh_mem_fini(void);
unsigned hvfh_gpa_rights(uint64_t gpa);
int hvfh_ram_access(uint64_t gpa, void *buf, size_t len, int write);

/* vcpu.c: the calling thread's vCPU `id`, or NULL (not its owner). */
struct hvfh_vcpu *hvfh_vcpu_get(hv_vcpuid_t id);
int hvfh_load_regs(struct hvfh_vcpu *v);
int hvfh_load_sregs(struct hvfh_vcpu *v);
int hvfh_flush_state(struct hvfh_vcpu *v);
int hvfh_flush_sregs(struct hvfh_vcpu *v);
void hvfh_invalidate(struct hvfh_vcpu *v);
int hvfh_kick_signal(void);

/* vmcs.c */
int hvfh_vmcs_field_known(uint32_t field, int *read_only);
hv_return_t hvfh_vmcs_read(struct hvfh_vcpu *v, uint32_t field, uint64_t *val);
hv_return_t hvfh_vmcs_write(struct hvfh_vcpu *v, uint32_t field, uint64_t val,
                            int internal);
/* Checks guest state as VM entry would: 0 or a nonzero reason. */
int hvfh_entry_check(struct hvfh_vcpu *v);
void hvfh_vmcs_init(struct hvfh_vcpu *v);

/* insn.c: guest memory and instruction decoding */
int hvfh_read_linear(struct hvfh_vcpu *v, uint64_t la, void *buf, size_t n);
int hvfh_write_linear(struct hvfh_vcpu *v, uint64_t la, const void *buf,
                      size_t n);
int hvfh_translate(struct hvfh_vcpu *v, uint64_t la, uint64_t *gpa);
struct hvfh_insn {
    int len;
    int opsize, addrsize; /* bytes */
    int rep;              /* 0, 0xf3 or 0xf2 */
    int seg;              /* override: 0 ES .. 5 GS, -1 none */
    int rex;
    uint8_t op; /* last opcode byte */
    int map;    /* 0 one-byte, 1 0f, 2 0f38, 3 0f3a */
    int has_modrm;
    uint8_t modrm;
    int imm_len;
    uint64_t imm;
    int mem;     /* modrm addresses memory */
    uint64_t ea; /* effective address (no segment) when mem */
};
int hvfh_decode(struct hvfh_vcpu *v, uint64_t rip, struct hvfh_insn *in,
                uint64_t end_rip);
int hvfh_code_bits(struct hvfh_vcpu *v);
/* 0 when @p in stores a known value that is not the @p len bytes at
 * @p data (insn.c). */
int hvfh_store_agrees(struct hvfh_vcpu *v, const struct hvfh_insn *in,
                      const void *data, uint32_t len);

/* slice.c: before a KVM_RUN while stepping for the interrupt window, 1
 * when this run is an unstepped slice (then hvfh_slice_end() after
 * it, which turns the slice's end into a step's KVM_EXIT_DEBUG and returns
 * the run's result); hvfh_slice_fini() when the vCPU goes. */
int hvfh_slice_begin(struct hvfh_vcpu *v);
int hvfh_slice_end(struct hvfh_vcpu *v, int rc, int *err);
void hvfh_slice_fini(struct hvfh_vcpu *v);
/* IF was seen set, or the window opened: the next one steps first. */
void hvfh_slice_reset(struct hvfh_vcpu *v);

/* run.c */
hv_return_t hvfh_run(struct hvfh_vcpu *v);

/* window.c: finding the interrupt window by single-stepping */
/* RFLAGS.IF and no STI/MOV SS blocking. */
int hvfh_interruptible(struct hvfh_vcpu *v);
/* A HLT at RIP, CPL 0 (what the next step would run). */
int hvfh_at_hlt(struct hvfh_vcpu *v);
void hvfh_single_step(struct hvfh_vcpu *v, int on);
/* Delivers the external interrupt, NMI or hardware exception (with its
 * error code) of VM-entry interruption info `info` as the processor does
 * (64-bit mode, a 64-bit interrupt or trap gate to the running code segment
 * without IST): frame pushed, RIP/RSP/RFLAGS set in the cached registers,
 * NMIs blocked after an NMI. 1 done, 0 a case left to KVM's injection. */
int hvfh_deliver(struct hvfh_vcpu *v, uint64_t info);
/* IRETQ at RIP (64-bit mode, CPL 0, same CS and SS): done here, as KVM on
 * PVM completes it without the single-step trap after it (the window it
 * opens was missed). 1 done (registers cached, dirty), 0 not an IRETQ it
 * does, -1 error. */
int hvfh_step_iret(struct hvfh_vcpu *v);

/* cpuid.c: 1 when hv_vcpu_run must return a synthesized CPUID exit. */
int hvfh_cpuid_step(struct hvfh_vcpu *v, int *err);

/* vcpu.c: KVM's XSAVE image, malloc'd (NULL on failure) */
void *hvfh_xsave_get(struct hvfh_vcpu *v, size_t *size);

/* msr.c */
int hvfh_msr_filter(struct hvfh_vcpu *v);
/* msr.c: applies the filter hvfh_msr_filter() computed, if it changed,
 * before a KVM_RUN; 0 or -1 (errno). */
int hvfh_msr_filter_apply(void);

/* wsearch.c: a segment's base as the guest's mode uses it, the mask of
 * an address size, and the instruction a write KVM already executed came
 * from (0, with @pre's RIP and RSP put back and @out decoded; -1: none
 * found). */
uint64_t hvfh_seg_base(struct hvfh_vcpu *v, int seg);
uint64_t hvfh_amask(int addrsize);
int hvfh_mmio_write_start(struct hvfh_vcpu *v, uint64_t gpa, uint32_t len,
                          struct kvm_regs *pre, struct hvfh_insn *out);

#endif
