/* KVM backend private definitions. */
#ifndef HVCORE_KVM_H
#define HVCORE_KVM_H

#include "../../core/internal.h"

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* KVM reserves three pages below 4 GiB for the VMX real-mode TSS and one
 * for the identity map; guest RAM must stay clear of 0xfffbc000..0xfffc0000.
 * These are the addresses QEMU and Firecracker use too. */
#define HVI_KVM_IDENTITY_MAP_ADDR 0xfffbc000ull
#define HVI_KVM_TSS_ADDR 0xfffbd000ull
#define HVI_KVM_PRIVATE_END 0xfffc0000ull /* one past the TSS */

/* GSIs routed by KVM's default IRQ routing (the IOAPIC's 24 pins). */
#define HVI_KVM_NR_GSIS 24

/* The local APIC timer's clock: KVM counts it in 1 ns bus cycles unless
 * KVM_CAP_X86_APIC_BUS_CYCLES_NS changes that, which this backend never
 * does. CPUID leaves 0x15/0x16/0x40000010 report it (kvm_tsc.c). */
#define HVI_KVM_APIC_BUS_KHZ 1000000u

/* What kvm_tsc.c learnt about the host's TSC, once (tsc_lock). */
struct hvi_kvm_tsc {
    pthread_mutex_t lock;
    bool probed;
    int probe_error; /* a failed probe is retried */
    hvc_tsc_info info;
    uint8_t boot_id[16];
    uint32_t adjust_clock; /* KVM_CAP_ADJUST_CLOCK: KVM_CLOCK_* supported */
};

/* KVM_GET_MSR_INDEX_LIST without the TSC MSRs, listed under the lock when
 * first needed (kvm_state.c), never changed after. */
struct hvi_kvm_msr_list {
    pthread_mutex_t lock;
    struct kvm_msr_list *list;
};

struct hvi_kvm {
    int fd;
    int run_size;
    uint64_t caps[HVC_CAP_IRQ_LINES + 1];
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID */
    struct hvi_kvm_tsc tsc;
    struct hvi_kvm_msr_list msrs;
    /* Dirty tracking (kvm_dirty.c): KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2's
     * flags, and the dirty ring's capability and largest size in bytes
     * (0 without one). */
    uint32_t dirty_manual;
    uint32_t ring_cap;
    uint32_t ring_max_bytes;
};

/* A slot's dirty tracking (kvm_dirty.c). */
struct hvi_kvm_dirty_slot {
    bool tracked;
    uint32_t mode; /* HVC_DIRTY_BITMAP or HVC_DIRTY_RING */
    uint64_t npages;
    uint64_t *bits; /* ring: harvested pages not fetched yet */
};

struct hvi_kvm_vm {
    struct hvi_kvm *kvm;
    int fd;
    int kick_signal;
    bool has_irqchip; /* in-kernel PIC, IOAPIC and local APICs */
    bool has_pit;
    bool pit_reinject; /* KVM_REINJECT_CONTROL; on by KVM's default */
    /* The guest TSC frequency (kvm_tsc.c). tsc_khz 0: unpinned, the
     * host's. tsc_hw_khz: the frequency KVM must run the vCPUs at, 0 for
     * the host's; vm_hw_khz: what the VM-wide KVM_SET_TSC_KHZ gave vCPUs
     * created since. */
    uint32_t tsc_khz;
    uint32_t tsc_hw_khz;
    uint32_t vm_hw_khz;
    /* Dirty tracking (kvm_dirty.c), under dirty_lock: the flags given to
     * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (0: plain KVM_GET_DIRTY_LOG), the
     * ring's entries per vCPU (0: no ring), the vCPUs with a ring, and the
     * tracked slots, indexed by slot number. */
    pthread_mutex_t dirty_lock;
    uint32_t dirty_manual;
    uint32_t ring_entries;
    struct hvi_kvm_vcpu **ring_vcpus;
    size_t nr_ring_vcpus;
    struct hvi_kvm_dirty_slot *dirty_slots;
    size_t nr_dirty_slots;
    uint64_t ring_overflows; /* rings found overflowed (kvm_dirty.c) */
};

enum hvi_kvm_fpu_mode { HVI_FPU_XSAVE2, HVI_FPU_XSAVE, HVI_FPU_LEGACY };

struct hvi_kvm_vcpu {
    struct hvi_kvm_vm *vm;
    int fd;
    uint32_t id;
    struct kvm_run *run;
    size_t run_size;
    pthread_t runner; /* set by run_prepare, for kicks */
    pthread_t creator; /* the strict test mode's vCPU thread (kvm_strict.c) */
    /* A kick signal was sent and the runner has not returned from KVM_RUN
     * since. Kickers send no second one meanwhile: the kick signal is a
     * queued real-time signal, and a kicker in a loop would otherwise fill
     * the runner's queue faster than it can take the signals, so that it
     * never gets back to user code (seen with 10 000 kicks against runs). */
    atomic_int sig_inflight;
    pthread_t mask_owner; /* thread whose mask KVM_SET_SIGNAL_MASK holds */
    bool mask_set;
    enum hvi_kvm_fpu_mode fpu_mode;
    size_t fpu_size;
    uint32_t tsc_hw_khz; /* the frequency KVM runs this vCPU at; 0: host */
    /* The host's MSR list filtered to what KVM reads for this vCPU
     * (kvm_state.c), probed once so that the MSRS state keeps its size. */
    bool msrs_probed;
    uint32_t nr_msrs;
    uint32_t *msr_index;
    /* The dirty ring (kvm_dirty.c), when the VM has one; ring_next is the
     * next entry to harvest (free-running), under the VM's dirty_lock. */
    struct kvm_dirty_gfn *ring;
    uint32_t ring_next;
};

/* kvm_state.c: messages for a state kind (kind names per sys/backend.h). */
int hvi_kvm_state_fail(uint32_t kind, const char *op, int err);
int hvi_kvm_state_bad(uint32_t kind, const char *what, uint64_t value);
/* kvm_arch_state.c: REGS, SREGS, EVENTS, LAPIC and XSAVE in the
 * architectural layouts (src/arch/x86/arch_state.h); sizes (0: none) and
 * conversions, @p length being that size (get) or the blob's (set). */
size_t hvi_kvm_arch_size(const struct hvi_kvm_vcpu *v, uint32_t kind);
int hvi_kvm_arch_get(struct hvi_kvm_vcpu *v, uint32_t kind, void *buf,
                     size_t length);
int hvi_kvm_arch_set(struct hvi_kvm_vcpu *v, uint32_t kind, const void *buf,
                     size_t length);
/* kvm_arch_chips.c: the PICs, IOAPIC and PIT, likewise. */
size_t hvi_kvm_chip_size(const struct hvi_kvm_vm *vm, uint32_t kind);
int hvi_kvm_chip_get(struct hvi_kvm_vm *vm, uint32_t kind, void *buf,
                     size_t length);
int hvi_kvm_chip_set(struct hvi_kvm_vm *vm, uint32_t kind, const void *buf,
                     size_t length);
/* kvm_cpuid_state.c: KVM's CPUID of a vCPU, and setting one (in KVM's
 * layout, converted by kvm_state.c) after checking it. */
int hvi_kvm_cpuid_state_read(struct hvi_kvm_vcpu *v, struct kvm_cpuid2 **out);
size_t hvi_kvm_cpuid_state_bytes(uint32_t nent);
int hvi_kvm_cpuid_state_set(struct hvi_kvm_vcpu *v, const void *buf,
                            size_t length);

/* Reports a failed ioctl: records "what: strerror" and returns -errno. */
int hvi_kvm_fail(const char *what, int err);

int hvi_kvm_vm_create(void *priv, const hvc_vm_options *opts, void **out);
void hvi_kvm_vm_destroy(void *vm_priv);
int hvi_kvm_map_memory(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                       uint64_t length, void *host_addr, uint32_t flags);
int hvi_kvm_unmap_memory(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                         uint64_t length);
int hvi_kvm_set_irq(void *vm_priv, uint32_t gsi, int level);
int hvi_kvm_send_msi(void *vm_priv, uint64_t address, uint32_t data);
int hvi_kvm_irqfd(void *vm_priv, int fd, uint32_t gsi, int assign);
int hvi_kvm_ioeventfd(void *vm_priv, int fd, uint32_t space, uint64_t addr,
                      uint32_t length, int match, uint64_t data, int assign);

int hvi_kvm_vcpu_create(void *vm_priv, uint32_t id, void **out);
void hvi_kvm_vcpu_destroy(void *vcpu_priv);
int hvi_kvm_vcpu_run_prepare(void *vcpu_priv);
int hvi_kvm_vcpu_run(void *vcpu_priv, hvc_exit *exit);
void hvi_kvm_vcpu_kick(void *vcpu_priv);

int hvi_kvm_get_regs(void *vcpu_priv, const hvc_reg *ids, uint64_t *values,
                     size_t count);
int hvi_kvm_set_regs(void *vcpu_priv, const hvc_reg *ids,
                     const uint64_t *values, size_t count);
int hvi_kvm_get_segment(void *vcpu_priv, hvc_reg id, hvc_x86_segment *seg);
int hvi_kvm_set_segment(void *vcpu_priv, hvc_reg id,
                        const hvc_x86_segment *seg);
int hvi_kvm_fpu_size(void *vcpu_priv, size_t *size);
int hvi_kvm_get_fpu(void *vcpu_priv, void *buf, size_t length);
int hvi_kvm_set_fpu(void *vcpu_priv, const void *buf, size_t length);
int hvi_kvm_set_runnable(void *vcpu_priv);

/* kvm_state.c: migration state blobs (hvc_backend_state) and flush. */
void hvi_kvm_state_open(struct hvi_kvm *k);
void hvi_kvm_state_close(struct hvi_kvm *k);
int hvi_kvm_vcpu_flush(void *vcpu_priv);
int hvi_kvm_vcpu_state_size(void *vcpu_priv, uint32_t kind, size_t *size);
int hvi_kvm_vcpu_get_state(void *vcpu_priv, uint32_t kind, void *buf,
                           size_t length);
int hvi_kvm_vcpu_set_state(void *vcpu_priv, uint32_t kind, const void *buf,
                           size_t length);
int hvi_kvm_vm_state_size(void *vm_priv, uint32_t kind, size_t *size);
int hvi_kvm_vm_get_state(void *vm_priv, uint32_t kind, void *buf,
                         size_t length);
int hvi_kvm_vm_set_state(void *vm_priv, uint32_t kind, const void *buf,
                         size_t length);

/* kvm_vcpu.c: KVM_SET_CPUID2 with this vCPU's ids and TSC leaves. */
int hvi_kvm_set_cpuid(struct hvi_kvm_vcpu *v);

/* kvm_dirty.c */
void hvi_kvm_dirty_open(struct hvi_kvm *k);
uint64_t hvi_kvm_dirty_cap(const struct hvi_kvm *k); /* HVC_DIRTY_* bits */
int hvi_kvm_dirty_vm_init(struct hvi_kvm_vm *vm, bool ring);
void hvi_kvm_dirty_vm_free(struct hvi_kvm_vm *vm);
int hvi_kvm_dirty_vcpu_init(struct hvi_kvm_vcpu *v);
void hvi_kvm_dirty_vcpu_free(struct hvi_kvm_vcpu *v);
/* KVM_EXIT_DIRTY_RING_FULL: empties the rings so the vCPU can go on;
 * an error when the vCPU cannot. */
int hvi_kvm_dirty_ring_full(struct hvi_kvm_vcpu *v);
/* The slot was removed: drops its tracking state. */
void hvi_kvm_dirty_unmapped(struct hvi_kvm_vm *vm, uint32_t slot);
int hvi_kvm_dirty_start(void *vm_priv, uint32_t slot, uint64_t gpa,
                        uint64_t len, void *hva, uint32_t map_flags,
                        uint32_t mode, uint32_t flags, uint32_t *used);
int hvi_kvm_dirty_fetch(void *vm_priv, uint32_t slot, uint64_t len,
                        uint64_t *bitmap);
int hvi_kvm_dirty_stop(void *vm_priv, uint32_t slot, uint64_t gpa, uint64_t len,
                       void *hva, uint32_t map_flags);

/* kvm_tsc.c */
extern const hvc_backend_tsc_ops hvi_kvm_tsc_ops;

/* kvm_strict.c: the test-only variants of this backend, chosen from the
 * environment when it opens (see there). Fills *copy and returns 1 when
 * one is asked for, else 0. */
int hvi_kvm_variant(hvc_backend_ops *copy);
/* Strict mode: vCPU calls refused because they came off the vCPU's
 * thread, since the process started. */
unsigned long hvi_kvm_strict_violations(void);
void hvi_kvm_tsc_open(struct hvi_kvm *k);
void hvi_kvm_tsc_close(struct hvi_kvm *k);
/* HVC_CAP_TSC_OFFSET: a written offset takes effect (probes once). */
uint64_t hvi_kvm_tsc_offset_cap(struct hvi_kvm *k);
/* A new vCPU: the VM's guest TSC frequency, before its CPUID is set. */
int hvi_kvm_tsc_vcpu_init(struct hvi_kvm_vcpu *v);
/* Rewrites the TSC leaves of @p c (room for 3 more entries than nent):
 * 0x15, 0x16, 0x40000010, and the invariant-TSC bit. */
void hvi_kvm_tsc_cpuid(struct hvi_kvm_vcpu *v, struct kvm_cpuid2 *c);

#endif
