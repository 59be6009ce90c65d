/* Hypervisor.framework backend private definitions (docs/HVF.md).
 *
 * Written against Apple's documented C API for Intel Macs. On macOS the
 * SDK's <Hypervisor/...> headers declare it and the framework is linked;
 * on Linux the same declarations come from tests/hvf_host/include (headers
 * only) and the calls reach whatever library $HVCORE_HVF_HOST_LIBRARY (or
 * the soname libhvf_host.so) names, loaded with dlopen() when the backend
 * is first probed or opened: libhvcore never links test code. */
#ifndef HVCORE_HVF_H
#define HVCORE_HVF_H

#include "../../core/internal.h"

#include <Hypervisor/hv.h>
#include <Hypervisor/hv_vmx.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Every framework call the backend makes, through one table. */
#define HVI_HVF_CALLS(X)                                                       \
    X(hv_capability)                                                           \
    X(hv_vm_create)                                                            \
    X(hv_vm_destroy)                                                           \
    X(hv_vm_map)                                                               \
    X(hv_vm_unmap)                                                             \
    X(hv_vm_protect)                                                           \
    X(hv_vm_sync_tsc)                                                          \
    X(hv_vcpu_create)                                                          \
    X(hv_vcpu_destroy)                                                         \
    X(hv_vcpu_read_register)                                                   \
    X(hv_vcpu_write_register)                                                  \
    X(hv_vcpu_read_fpstate)                                                    \
    X(hv_vcpu_write_fpstate)                                                   \
    X(hv_vcpu_enable_native_msr)                                               \
    X(hv_vcpu_read_msr)                                                        \
    X(hv_vcpu_write_msr)                                                       \
    X(hv_vcpu_flush)                                                           \
    X(hv_vcpu_invalidate_tlb)                                                  \
    X(hv_vcpu_run)                                                             \
    X(hv_vcpu_interrupt)                                                       \
    X(hv_vcpu_set_tsc_relative)                                                \
    X(hv_tsc_clock)                                                            \
    X(hv_vmx_read_capability)                                                  \
    X(hv_vmx_vcpu_read_vmcs)                                                   \
    X(hv_vmx_vcpu_write_vmcs)

struct hvi_hvf_api {
#define HVI_HVF_MEMBER(n) __typeof__(&n) n;
    HVI_HVF_CALLS(HVI_HVF_MEMBER)
#undef HVI_HVF_MEMBER
};

/* The table, valid after hvi_hvf_load() returned 0 (never changes then). */
extern struct hvi_hvf_api hvi_hvf;
/* Binds the table (dlopen on Linux, once); -ENOTSUP with a message naming
 * the library and what was missing. */
int hvi_hvf_load(void);
/* Reports a failed framework call: "what: HV_NAME (0x...)", returns the
 * negative errno it maps to. */
int hvi_hvf_fail(const char *what, hv_return_t ret);
const char *hvi_hvf_ret_name(hv_return_t ret);

/* Guest RAM as the backend mapped it, for its own accesses (instruction
 * fetch, page walks, string I/O, the memory side of MOVS). */
struct hvi_hvf_slot {
    bool used;
    bool readonly;
    uint64_t gpa;
    uint64_t len;
    uint8_t *hva;
    /* Dirty logging (hvf_dirty.c): the pages written since the last
     * fetch, under hvi_hvf_vm.dirty_lock; NULL when not logging. */
    uint64_t *dirty;
};

struct hvi_hvf {
    uint64_t caps[HVC_CAP_IRQCHIP_PIT + 1]; /* 17-20: 0, none in kernel */
    /* The allowed settings of the VMX controls (HV_VMX_CAP_*). */
    uint64_t cap_pin, cap_cpu, cap_cpu2, cap_entry, cap_exit;
    atomic_int vms;   /* the framework allows one VM per process */
    uint32_t tsc_khz; /* the host TSC (hvf_tsc.c), found at open */
};

struct hvi_hvf_vm {
    struct hvi_hvf *hvf;
    uint32_t flags;
    /* Slots by number, under slot_lock (map/unmap come from any thread;
     * vCPUs read under it). A leaf lock, below every core lock. */
    pthread_rwlock_t slot_lock;
    struct hvi_hvf_slot *slots;
    uint32_t nr_slots;
    /* Dirty logging's bitmaps and the write protection that feeds them
     * (hvf_dirty.c): taken with slot_lock held (read or write); a leaf
     * below slot_lock. */
    pthread_mutex_t dirty_lock;
    uint32_t tsc_khz;            /* 0: the host's */
    _Atomic int64_t clock_delta; /* software guest clock - monotonic */
};

/* The exit the guest has not been given the completion of yet. */
enum hvi_hvf_pending {
    HVI_PEND_NONE = 0,
    HVI_PEND_PIO,  /* IN/OUT/INS/OUTS: finish it on the next entry */
    HVI_PEND_MMIO, /* an emulated instruction waiting for a device access */
};

/* The accesses an emulated MMIO instruction made so far: it is replayed
 * from its start until every access it makes has been served. */
#define HVI_HVF_MMIO_LOG 4
struct hvi_hvf_mmio_log {
    unsigned n;    /* accesses served */
    unsigned next; /* replay position */
    uint64_t val[HVI_HVF_MMIO_LOG];
    /* The access the device is serving now. */
    uint64_t addr;
    unsigned size;
    bool is_write;
    uint64_t data;    /* the exit's data buffer */
    bool fault_write; /* the EPT violation was a write */
};

struct hvi_hvf_pio {
    uint16_t port;
    uint8_t size;
    bool in;
    bool string;
    bool rep;
    uint32_t count;     /* elements in this exit */
    uint32_t insn_len;  /* to step over when done */
    uint64_t lin;       /* string: linear address of the first element */
    unsigned addr_size; /* string: 2, 4 or 8 */
    bool down;          /* string: EFLAGS.DF */
};

/* MSRs the backend keeps itself (the framework runs the others natively
 * or in the VMCS). */
struct hvi_hvf_msrs {
    uint64_t misc_enable;
    uint64_t mtrr_def_type;
    uint64_t mtrr_fixed[11];
    uint64_t mtrr_var[16]; /* base, mask pairs */
    uint64_t apic_base;
    uint64_t tsc_deadline;
    uint64_t xcr0;
    uint64_t tsc_adjust; /* kept for the TSC record; CPUID does not offer it */
    uint64_t feature_control; /* IA32_FEATURE_CONTROL: VMX never enabled */
};

#define HVI_HVF_IOBUF 4096

struct hvi_hvf_vcpu {
    struct hvi_hvf_vm *vm;
    uint32_t id;
    hv_vcpuid_t vcpu;
    pthread_t owner;
    atomic_int kicked;
    enum hvi_hvf_pending pending;
    /* RIP at the exit still pending: a caller that moved RIP since (a
     * restart, a restore) cancels the completion, as KVM does. */
    uint64_t pending_rip;
    struct hvi_hvf_pio pio;
    struct hvi_hvf_mmio_log mmio;
    struct hvi_hvf_msrs msrs;
    uint64_t cr0_mask, cr4_mask;
    uint64_t entry_ctls;  /* without the IA-32e bit, which follows LMA */
    bool rdtscp, invpcid; /* the secondary controls that enable them */
    size_t fpu_size;
    uint64_t tsc_offset; /* hv_vcpu_set_tsc_relative's, as last set */
    /* The HVC_BACKEND_EXIT_MSR awaiting vcpu_complete_msr (hvf_irq.c). */
    struct {
        bool active, write;
        uint64_t len;
    } msr_exit;
    bool nmi_pending; /* an NMI the entry field could not take yet */
    /* aligned as KVM's run page data: handlers read it as words */
    _Alignas(8) uint8_t iobuf[HVI_HVF_IOBUF];
};

/* hvf_irq.c: the library's userspace interrupt controllers (irq17 ops). */
int hvi_hvf_vcpu_inject(void *vcpu_priv, uint32_t kind, uint8_t vector);
int hvi_hvf_vcpu_irq_window(void *vcpu_priv, int request, int *ready);
int hvi_hvf_vcpu_complete_msr(void *vcpu_priv, int error, uint64_t value);
/* True for the MSRs the chips own, in a VM on them. */
bool hvi_hvf_msr_is_chips(const struct hvi_hvf_vcpu *v, uint32_t msr);
/* Fills @p exit with the HVC_BACKEND_EXIT_MSR of that access. */
void hvi_hvf_msr_exit(struct hvi_hvf_vcpu *v, hvc_exit *exit, uint32_t msr,
                      bool write, uint64_t value, uint64_t len);
/* Enters a held NMI when the entry field is free and NMIs unblocked. */
int hvi_hvf_nmi_flush(struct hvi_hvf_vcpu *v);

/* hvf_vm.c */
int hvi_hvf_vm_create(void *priv, const hvc_vm_options *opts, void **out);
void hvi_hvf_vm_destroy(void *vm_priv);
int hvi_hvf_map_memory(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                       uint64_t length, void *host_addr, uint32_t flags);
int hvi_hvf_unmap_memory(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                         uint64_t length);
int hvi_hvf_set_irq(void *vm_priv, uint32_t gsi, int level);
int hvi_hvf_send_msi(void *vm_priv, uint64_t address, uint32_t data);

/* hvf_mem.c: guest memory by guest-physical address, and linear addresses
 * through the guest's page tables. */
/* Copies guest RAM; -EFAULT when a byte is not RAM (for a write: not
 * writable RAM). */
int hvi_hvf_gpa_read(struct hvi_hvf_vm *vm, uint64_t gpa, void *buf,
                     size_t len);
int hvi_hvf_gpa_write(struct hvi_hvf_vm *vm, uint64_t gpa, const void *buf,
                      size_t len);
/* True when [gpa, gpa+len) is RAM the guest may access that way. */
bool hvi_hvf_gpa_is_ram(struct hvi_hvf_vm *vm, uint64_t gpa, size_t len,
                        bool write);
/* Linear to guest-physical with the vCPU's paging mode; -EFAULT when not
 * mapped. */
int hvi_hvf_translate(struct hvi_hvf_vcpu *v, uint64_t lin, uint64_t *gpa);
/* Copies through linear addresses, page by page. */
int hvi_hvf_lin_read(struct hvi_hvf_vcpu *v, uint64_t lin, void *buf,
                     size_t len);
int hvi_hvf_lin_write(struct hvi_hvf_vcpu *v, uint64_t lin, const void *buf,
                      size_t len);

/* hvf_vcpu.c */
int hvi_hvf_vcpu_create(void *vm_priv, uint32_t id, void **out);
void hvi_hvf_vcpu_destroy(void *vcpu_priv);
int hvi_hvf_vcpu_run_prepare(void *vcpu_priv);
int hvi_hvf_vcpu_run(void *vcpu_priv, hvc_exit *exit);
void hvi_hvf_vcpu_kick(void *vcpu_priv);
int hvi_hvf_set_runnable(void *vcpu_priv);
int hvi_hvf_vcpu_flush(void *vcpu_priv);
/* VMCS access that reports failures. */
int hvi_hvf_rvmcs(struct hvi_hvf_vcpu *v, uint32_t field, uint64_t *value);
int hvi_hvf_wvmcs(struct hvi_hvf_vcpu *v, uint32_t field, uint64_t value);
uint64_t hvi_hvf_vmcs(struct hvi_hvf_vcpu *v, uint32_t field); /* 0 on error */
int hvi_hvf_rreg(struct hvi_hvf_vcpu *v, hv_x86_reg_t reg, uint64_t *value);
int hvi_hvf_wreg(struct hvi_hvf_vcpu *v, hv_x86_reg_t reg, uint64_t value);
/* Steps RIP over the instruction that exited. */
int hvi_hvf_skip(struct hvi_hvf_vcpu *v, uint64_t len);
/* Queues an exception for the next entry. */
int hvi_hvf_inject_exception(struct hvi_hvf_vcpu *v, uint8_t vector,
                             bool has_error, uint32_t error);

/* hvf_regs.c */
int hvi_hvf_get_regs(void *vcpu_priv, const hvc_reg *ids, uint64_t *values,
                     size_t count);
int hvi_hvf_set_regs(void *vcpu_priv, const hvc_reg *ids,
                     const uint64_t *values, size_t count);
int hvi_hvf_get_segment(void *vcpu_priv, hvc_reg id, hvc_x86_segment *seg);
int hvi_hvf_set_segment(void *vcpu_priv, hvc_reg id,
                        const hvc_x86_segment *seg);
int hvi_hvf_fpu_size(void *vcpu_priv, size_t *size);
int hvi_hvf_get_fpu(void *vcpu_priv, void *buf, size_t length);
int hvi_hvf_set_fpu(void *vcpu_priv, const void *buf, size_t length);
/* CR0, CR4 and EFER as the guest sees them, written with the bits VMX
 * needs, the read shadows and the IA-32e entry control kept consistent. */
int hvi_hvf_set_cr0(struct hvi_hvf_vcpu *v, uint64_t cr0);
int hvi_hvf_set_cr4(struct hvi_hvf_vcpu *v, uint64_t cr4);
int hvi_hvf_set_efer(struct hvi_hvf_vcpu *v, uint64_t efer);
uint64_t hvi_hvf_guest_cr0(struct hvi_hvf_vcpu *v);
uint64_t hvi_hvf_guest_cr4(struct hvi_hvf_vcpu *v);

/* hvf_setup.c: the VMCS of a new vCPU. */
int hvi_hvf_vmcs_init(struct hvi_hvf_vcpu *v);

/* hvf_msr.c: MSRs the guest reads and writes (exits), and the register
 * ids HVC_X86_MSR(n). Return 0, -EINVAL for an MSR the guest gets #GP
 * for (with no message), or another error. */
int hvi_hvf_msr_read(struct hvi_hvf_vcpu *v, uint32_t msr, uint64_t *value);
int hvi_hvf_msr_write(struct hvi_hvf_vcpu *v, uint32_t msr, uint64_t value);
void hvi_hvf_msr_reset(struct hvi_hvf_vcpu *v);
/* Enables native access to the MSRs the framework keeps per vCPU. */
int hvi_hvf_msr_native(struct hvi_hvf_vcpu *v);

/* hvf_cpuid.c: the CPUID the guest sees. */
void hvi_hvf_cpuid(struct hvi_hvf_vcpu *v, uint32_t leaf, uint32_t subleaf,
                   uint32_t out[4]);
/* The whole table the guest sees (for the CPUID state): the entries, up
 * to @p cap of them stored in @p out; returns how many there are. */
struct hvi_x86_cpuid_entry;
size_t hvi_hvf_cpuid_table(struct hvi_hvf_vcpu *v,
                           struct hvi_x86_cpuid_entry *out, size_t cap);
/* The XSAVE components offered, and the standard-format area's size. */
uint64_t hvi_hvf_xcr0_mask(void);
uint32_t hvi_hvf_xsave_size(uint64_t xcr0);

/* hvf_exit_io.c: I/O instruction exits and their completion. */
int hvi_hvf_exit_io(struct hvi_hvf_vcpu *v, hvc_exit *exit);
int hvi_hvf_complete_io(struct hvi_hvf_vcpu *v);
/* hvf_exit_mmio.c: EPT violations through the emulator. Returns 1 when
 * @p exit holds an MMIO exit, 0 when the instruction was done without a
 * device (the guest can go on). */
int hvi_hvf_exit_ept(struct hvi_hvf_vcpu *v, hvc_exit *exit);
/* hvf_dirty.c: dirty logging by write protection (hv_vm_protect). The
 * EPT violation of a write to a logged page: 1 when it was that (the page
 * is marked and writable again; the guest retries), 0 when not, or a
 * negative errno. */
int hvi_hvf_dirty_fault(struct hvi_hvf_vcpu *v, uint64_t gpa);
/* Marks the page of @p gpa when its slot is logged (a write the backend
 * made itself); slot_lock held. */
void hvi_hvf_dirty_mark_locked(struct hvi_hvf_vm *vm, uint64_t gpa);
int hvi_hvf_dirty_start(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                        uint64_t length, void *host_addr, uint32_t map_flags,
                        uint32_t mode, uint32_t flags, uint32_t *used);
int hvi_hvf_dirty_fetch(void *vm_priv, uint32_t slot, uint64_t length,
                        uint64_t *bitmap);
int hvi_hvf_dirty_stop(void *vm_priv, uint32_t slot, uint64_t guest_addr,
                       uint64_t length, void *host_addr, uint32_t map_flags);
int hvi_hvf_complete_mmio(struct hvi_hvf_vcpu *v, hvc_exit *exit);

/* hvf_state.c: state blobs in the architectural layouts. */
int hvi_hvf_vcpu_state_size(void *vcpu_priv, uint32_t kind, size_t *size);
int hvi_hvf_vcpu_get_state(void *vcpu_priv, uint32_t kind, void *buf,
                           size_t length);
int hvi_hvf_vcpu_set_state(void *vcpu_priv, uint32_t kind, const void *buf,
                           size_t length);
int hvi_hvf_vm_state_size(void *vm_priv, uint32_t kind, size_t *size);
int hvi_hvf_vm_get_state(void *vm_priv, uint32_t kind, void *buf,
                         size_t length);
int hvi_hvf_vm_set_state(void *vm_priv, uint32_t kind, const void *buf,
                         size_t length);

/* hvf_tsc.c */
extern const hvc_backend_tsc_ops hvi_hvf_tsc_ops;
uint32_t hvi_hvf_host_khz(void);
/* machdep.tsc.frequency in Hz from the platform's sysctlbyname(), or 0
 * where the platform does not say (hvf_api.c). */
uint64_t hvi_hvf_platform_tsc_hz(void);
/* Reads the platform's sysctlbyname() entry @p name into exactly @p len
 * bytes of @p buf: 0, or -1 where the platform has no sysctlbyname, no such
 * entry, or one of another size (hvf_api.c). */
int hvi_hvf_platform_sysctl(const char *name, void *buf, size_t len);
/* HVC_CAP_TSC_OFFSET: offsets take effect (probed once, hvf_tsc.c). */
bool hvi_hvf_tsc_offset_works(void);

#endif
