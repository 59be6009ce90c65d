/**
 * @file hvcore/tsc.h
 * @brief TSC virtualization: guest TSC frequency, offsets, and continuity
 *        across pause, save and restore.
 *
 * A guest's time stamp counter must tick at the frequency it was promised,
 * never go backwards, and agree across vCPUs: on this host, after a pause,
 * and on another host after a restore. This header gives a VMM the pieces:
 *
 * - what the host can do (hvc_tsc_get_info()), and the hardware scaling
 *   arithmetic as pure functions (hvc_tsc_ratio(), hvc_tsc_scale());
 * - the guest TSC frequency of a VM, set before its vCPUs first run
 *   (hvc_vm_set_tsc_frequency()), and told to the guest through CPUID;
 * - the guest TSC value and offset per vCPU, with one offset shared by all
 *   vCPUs (hvc_vcpu_set_tsc(), hvc_vcpu_set_tsc_offset());
 * - what paused time does to the guest's clocks (hvc_vm_set_tsc_policy());
 * - a fixed-layout, versioned TSC state record captured at one pause point
 *   and restored into the same or a new VM (hvc_vm_save_tsc(),
 *   hvc_vm_restore_tsc()).
 *
 * docs/TSC.md explains the model, the restore procedure and the fallbacks.
 *
 * Thread rules: hvc_tsc_get_info(), hvc_tsc_ratio() and hvc_tsc_scale() may be
 * called from any thread. Calls that read or write one vCPU follow the
 * register rules of hvcore/vcpu.h (the runner thread, or any thread while
 * the vCPU is not running or the VM is paused). Calls that touch every vCPU
 * of a VM (a VM-wide offset, save, restore) need every vCPU out of
 * hvc_vcpu_run() or the VM paused, and fail with -EBUSY otherwise. None may
 * be called from an I/O handler of the same VM, except the per-vCPU calls
 * on the vCPU that made the access (writes with ::HVC_TSC_THIS_VCPU).
 */
#ifndef HVCORE_TSC_H
#define HVCORE_TSC_H

#include "common.h"
#include "hypervisor.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Fractional bits of the Intel VMX TSC multiplier (16.48 fixed point). */
#define HVC_TSC_FRAC_BITS_VMX 48
/** Fractional bits of the AMD SVM TSC ratio MSR (8.32 fixed point). */
#define HVC_TSC_FRAC_BITS_SVM 32
/**
 * Default tolerance, in parts per million, within which a requested guest
 * TSC frequency is accepted without scaling (as KVM's tsc_tolerance_ppm).
 */
#define HVC_TSC_DEFAULT_TOLERANCE_PPM 250
/** Largest tolerance hvc_vm_set_tsc_frequency() accepts (1%). */
#define HVC_TSC_MAX_TOLERANCE_PPM 10000

/**
 * Computes the hardware TSC scaling ratio for a guest frequency, in the
 * fixed-point format with @p frac_bits fractional bits:
 * floor(guest_khz * 2^frac_bits / host_khz). The rounding is truncation,
 * as Linux KVM computes it, so hvc_tsc_scale() with this ratio predicts the
 * guest TSC KVM will give, to the cycle. A pure function: no VM needed.
 *
 * @param guest_khz the guest TSC frequency; non-zero.
 * @param host_khz  the host TSC frequency; non-zero.
 * @param frac_bits ::HVC_TSC_FRAC_BITS_VMX (48: a 64-bit 16.48 multiplier) or
 *                  ::HVC_TSC_FRAC_BITS_SVM (32: an 8.32 ratio in bits 39:0).
 * @param ratio     receives the ratio.
 * @return 0; -EINVAL (NULL @p ratio, a zero frequency, another
 *         @p frac_bits); -ERANGE when the ratio is 0 or does not fit the
 *         format (at least 2^16 for VMX, at least 2^8 for SVM); the
 *         message gives the exact value.
 */
HVC_EXTERN int hvc_tsc_ratio(uint32_t guest_khz, uint32_t host_khz,
                             uint32_t frac_bits, uint64_t *ratio);

/**
 * Scales a host TSC value as the hardware does:
 * (host_tsc * ratio) >> frac_bits, with the full 128-bit product,
 * truncated, modulo 2^64. The guest TSC is this plus the vCPU's offset.
 * With @p frac_bits 0 and @p ratio 1 it is the identity (no scaling).
 *
 * @return 0; -EINVAL for NULL @p out or @p frac_bits above 63.
 */
HVC_EXTERN int hvc_tsc_scale(uint64_t host_tsc, uint64_t ratio,
                             uint32_t frac_bits, uint64_t *out);

/** Flags of hvc_tsc_info::flags. Values are stable; new ones are appended. */
typedef enum hvc_tsc_info_flags {
    /** The host TSC is invariant (CPUID 0x80000007 EDX bit 8). */
    HVC_TSC_HOST_INVARIANT = 1u << 0,
    /** The host kernel keeps time with the TSC: synchronised across CPUs. */
    HVC_TSC_HOST_STABLE = 1u << 1,
    /** The guest TSC frequency can be scaled in hardware. */
    HVC_TSC_SCALING = 1u << 2,
    /**
     * The guest TSC offset can be set, and a written offset takes effect
     * (verified on a probe vCPU; some hosts accept the write and ignore
     * it). Without it the guest TSC is the host TSC, scaled: the freeze
     * pause policy is refused, and a restore succeeds only when the host
     * TSC already gives the guest the TSC the record asks for.
     */
    HVC_TSC_OFFSET = 1u << 3,
    /** One call sets the frequency of every vCPU of a VM. */
    HVC_TSC_VM_FREQUENCY = 1u << 4,
    /** The backend advances the guest clock by CLOCK_REALTIME itself. */
    HVC_TSC_CLOCK_REALTIME = 1u << 5,
    /**
     * The backend can sample the guest clock and the host TSC atomically
     * (KVM: while its master clock is in use). Otherwise, or when a
     * sample lacks it, the library brackets the sample with host TSC
     * reads (hvc_tsc_state::sample_error_ns says how closely).
     */
    HVC_TSC_CLOCK_HOST_TSC = 1u << 6,
    /** Missed PIT ticks can be reinjected (see ::HVC_TSC_CATCHUP_PIT). */
    HVC_TSC_PIT_CATCHUP = 1u << 7,
    /** Missed local APIC timer ticks can be reinjected (never on KVM). */
    HVC_TSC_LAPIC_CATCHUP = 1u << 8
} hvc_tsc_info_flags;

/**
 * The host's TSC and what the backend can do with it. Initialise with
 * ::HVC_TSC_INFO_INIT; the library fills only the fields @c size covers.
 */
typedef struct hvc_tsc_info {
    /** sizeof(hvc_tsc_info) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_tsc_info_flags. */
    uint32_t flags;
    /** Host TSC frequency in kHz, as the backend uses it. */
    uint32_t host_tsc_khz;
    /**
     * The backend's own tolerance (ppm) for a frequency it runs unscaled
     * (KVM: the tsc_tolerance_ppm module parameter).
     */
    uint32_t backend_tolerance_ppm;
    /** Fractional bits of the hardware ratio (48 or 32); 0 without scaling. */
    uint32_t ratio_frac_bits;
    /** Frequency of the local APIC timer's clock, in kHz (KVM: 1 GHz). */
    uint32_t apic_bus_khz;
    /** Largest ratio the backend accepts; 0 without scaling. */
    uint64_t ratio_max;
    /** Highest guest TSC frequency, kHz (the host's without scaling). */
    uint32_t max_guest_tsc_khz;
    /** Reserved; 0. */
    uint32_t reserved;
} hvc_tsc_info;

/** Initialiser for ::hvc_tsc_info. */
#define HVC_TSC_INFO_INIT                                                      \
    {                                                                          \
        sizeof(hvc_tsc_info), 0, 0, 0, 0, 0, 0, 0, 0                           \
    }

/**
 * Describes the host TSC and the backend's TSC capabilities. The first call
 * on a hypervisor probes the backend (on KVM with a throw-away VM); later
 * calls return the cached answer.
 *
 * @param info in: @c size set (::HVC_TSC_INFO_INIT); out: filled.
 * @return 0; -EINVAL (NULL, an unknown @c size); a backend error.
 */
HVC_EXTERN int hvc_tsc_get_info(hvc_hypervisor *hv, hvc_tsc_info *info);

/**
 * Options of hvc_vm_set_tsc_frequency(). Initialise with
 * ::HVC_TSC_FREQUENCY_OPTIONS_INIT; fields are only ever appended.
 */
typedef struct hvc_tsc_frequency_options {
    /** sizeof(hvc_tsc_frequency_options) as the caller was compiled. */
    uint32_t size;
    /** The guest TSC frequency in kHz; non-zero. */
    uint32_t tsc_khz;
    /**
     * Within this many ppm of the host frequency, @c tsc_khz is accepted
     * without scaling: the guest is told @c tsc_khz and its TSC runs at
     * the host's rate (the point of a tolerance: a guest migrated between
     * hosts of nearly equal frequency keeps its calibration). At most
     * ::HVC_TSC_MAX_TOLERANCE_PPM; 0 demands scaling for any difference.
     */
    uint32_t tolerance_ppm;
} hvc_tsc_frequency_options;

/** Initialiser for ::hvc_tsc_frequency_options. */
#define HVC_TSC_FREQUENCY_OPTIONS_INIT                                         \
    {                                                                          \
        sizeof(hvc_tsc_frequency_options), 0, HVC_TSC_DEFAULT_TOLERANCE_PPM    \
    }

/**
 * Pins the guest TSC frequency of a VM. Call it before any vCPU of the VM
 * first runs; vCPUs that exist already are updated (their CPUID too, which
 * KVM only accepts before the first run), vCPUs created later get it.
 *
 * The guest learns the frequency from CPUID: leaf 0x15 (TSC/crystal ratio
 * with the APIC bus clock as the crystal), leaf 0x16 (base and maximum
 * MHz, bus MHz) and the hypervisor timing leaf 0x40000010 (EAX: TSC kHz,
 * EBX: APIC bus kHz). The invariant-TSC bit (0x80000007 EDX bit 8) is
 * passed to the guest only when the frequency is pinned by this call and
 * the host TSC is invariant: an unpinned VM would change frequency when
 * restored on another host. An unpinned VM advertises the host frequency.
 *
 * A frequency within @c tolerance_ppm of the host's is accepted unscaled.
 * Otherwise the backend must scale it in hardware (on KVM: the VM-wide
 * KVM_SET_TSC_KHZ where KVM_CAP_VM_TSC_CONTROL exists, else per vCPU).
 *
 * @return 0; -EINVAL (NULL, unknown @c size, zero @c tsc_khz, tolerance
 *         above ::HVC_TSC_MAX_TOLERANCE_PPM); -EBUSY when a vCPU of the VM
 *         has already run; -ENOTSUP when scaling is needed and the host has
 *         none (the message names both frequencies: never a silently wrong
 *         frequency); -ERANGE when the ratio is outside what the hardware
 *         or backend accepts; a backend error.
 */
HVC_EXTERN int hvc_vm_set_tsc_frequency(hvc_vm *vm,
                                        const hvc_tsc_frequency_options *opts);

/** Flags of hvc_tsc_config::flags. */
typedef enum hvc_tsc_config_flags {
    /** The frequency was pinned with hvc_vm_set_tsc_frequency(). */
    HVC_TSC_PINNED = 1u << 0,
    /** The backend scales the guest TSC in hardware. */
    HVC_TSC_SCALED = 1u << 1
} hvc_tsc_config_flags;

/** A VM's TSC frequency set-up, as hvc_vm_get_tsc_config() reports it. */
typedef struct hvc_tsc_config {
    /** sizeof(hvc_tsc_config) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_tsc_config_flags. */
    uint32_t flags;
    /** The frequency the guest is told, kHz (the host's when unpinned). */
    uint32_t tsc_khz;
    /** The frequency the guest TSC actually runs at, kHz. */
    uint32_t effective_khz;
    /** Ratio in use: 1 with @c ratio_frac_bits 0 when unscaled. */
    uint64_t ratio;
    /** Fractional bits of @c ratio. */
    uint32_t ratio_frac_bits;
    /** Tolerance the frequency was accepted with, ppm. */
    uint32_t tolerance_ppm;
} hvc_tsc_config;

/** Initialiser for ::hvc_tsc_config. */
#define HVC_TSC_CONFIG_INIT                                                    \
    {                                                                          \
        sizeof(hvc_tsc_config), 0, 0, 0, 0, 0, 0                               \
    }

/**
 * Reports a VM's TSC frequency set-up.
 *
 * @param out in: @c size set (::HVC_TSC_CONFIG_INIT); out: filled.
 * @return 0; -EINVAL (NULL, unknown @c size); a backend error.
 */
HVC_EXTERN int hvc_vm_get_tsc_config(hvc_vm *vm, hvc_tsc_config *out);

/** Flags of the per-vCPU TSC writes. */
typedef enum hvc_tsc_write_flags {
    /**
     * Write only this vCPU. Without it a write moves the one offset all
     * vCPUs share, so their TSCs stay equal and KVM's master clock (a
     * stable kvmclock) stays usable. With it the vCPU's TSC deliberately
     * diverges from the others (to test a guest's TSC synchronisation).
     */
    HVC_TSC_THIS_VCPU = 1u << 0
} hvc_tsc_write_flags;

/**
 * Reads the guest TSC of a vCPU: the value RDTSC would return now. While
 * the VM is paused under ::HVC_TSC_PAUSE_FREEZE, the value it will resume
 * with.
 *
 * @return 0; -EINVAL for NULL; -EBUSY when the vCPU runs on another
 *         thread; a backend error.
 */
HVC_EXTERN int hvc_vcpu_get_tsc(hvc_vcpu *vcpu, uint64_t *tsc);

/**
 * Sets the guest TSC so that the vCPU reads @p tsc now (for a VM paused
 * under ::HVC_TSC_PAUSE_FREEZE: resumes with it). Without
 * ::HVC_TSC_THIS_VCPU every vCPU of the VM gets the same offset.
 * An armed TSC-deadline timer is re-armed against the new TSC.
 *
 * @param flags bit mask of ::hvc_tsc_write_flags.
 * @return 0; -EINVAL (NULL, unknown flags); -EBUSY (a vCPU concerned runs
 *         on another thread; pause the VM); -ENOTSUP when the host cannot
 *         offset the guest TSC (::HVC_TSC_OFFSET); a backend error.
 */
HVC_EXTERN int hvc_vcpu_set_tsc(hvc_vcpu *vcpu, uint64_t tsc, uint32_t flags);

/**
 * Reads the vCPU's TSC offset: guest TSC = hvc_tsc_scale(host TSC) +
 * offset, modulo 2^64 (KVM: KVM_VCPU_TSC_OFFSET).
 *
 * @return as hvc_vcpu_get_tsc().
 */
HVC_EXTERN int hvc_vcpu_get_tsc_offset(hvc_vcpu *vcpu, uint64_t *offset);

/**
 * Sets the TSC offset; as hvc_vcpu_set_tsc() (a write of the offset already
 * in place succeeds on any host).
 */
HVC_EXTERN int hvc_vcpu_set_tsc_offset(hvc_vcpu *vcpu, uint64_t offset,
                                       uint32_t flags);

/** What a pause (or a save and restore) does to the guest's clocks. */
typedef enum hvc_tsc_pause_policy {
    /**
     * The guest TSC and kvmclock advance by the real time the VM was
     * paused or saved, so the guest's wall clock stays right; the guest
     * sees a jump as long as the pause.
     */
    HVC_TSC_PAUSE_ADVANCE = 0,
    /**
     * The guest TSC and kvmclock stand still while the VM is paused or
     * saved: no jump, and the guest's wall clock falls behind by the pause
     * (its NTP must catch up). TSC-deadline timers are frozen with them.
     * Needs ::HVC_TSC_OFFSET.
     */
    HVC_TSC_PAUSE_FREEZE = 1
} hvc_tsc_pause_policy;

/** Periodic timers whose missed ticks are delivered late, one by one. */
typedef enum hvc_tsc_catchup {
    /**
     * The in-kernel PIT: ticks the guest could not take (the VM paused
     * under ::HVC_TSC_PAUSE_ADVANCE, its vCPU descheduled, interrupts
     * masked) are queued and delivered back to back, each as soon as the
     * guest acknowledges the previous one, until the guest has seen every
     * tick (KVM's PIT reinjection; QEMU's lost_tick_policy=delay). A guest
     * that keeps time by counting ticks then keeps the right time, at the
     * cost of an interrupt burst after a stall: a 10 s pause of a 1000 Hz
     * PIT is 10000 interrupts. Without it missed ticks merge into one.
     * Under ::HVC_TSC_PAUSE_FREEZE the ticks missed during the pause are
     * always dropped (the guest's time did not advance).
     */
    HVC_TSC_CATCHUP_PIT = 1u << 0,
    /**
     * Local APIC timers. KVM has no reinjection for them: asking for it
     * fails with -ENOTSUP (see ::HVC_TSC_LAPIC_CATCHUP).
     */
    HVC_TSC_CATCHUP_LAPIC = 1u << 1
} hvc_tsc_catchup;

/**
 * A VM's TSC policy. Initialise with ::HVC_TSC_POLICY_INIT; fields are only
 * ever appended.
 */
typedef struct hvc_tsc_policy {
    /** sizeof(hvc_tsc_policy) as the caller was compiled. */
    uint32_t size;
    /** An ::hvc_tsc_pause_policy. */
    uint32_t pause;
    /** Bit mask of ::hvc_tsc_catchup. */
    uint32_t catchup;
    /**
     * Pauses longer than this many milliseconds are not caught up (the
     * missed ticks are dropped at hvc_vm_resume()); 0: no limit.
     */
    uint32_t catchup_max_ms;
} hvc_tsc_policy;

/**
 * Initialiser for ::hvc_tsc_policy: the defaults of a new VM (advance, PIT
 * catch-up without limit: KVM's own default).
 */
#define HVC_TSC_POLICY_INIT                                                    \
    {                                                                          \
        sizeof(hvc_tsc_policy), HVC_TSC_PAUSE_ADVANCE, HVC_TSC_CATCHUP_PIT, 0  \
    }

/**
 * Sets the TSC policy of a VM. It may change at any time, also while the
 * VM is paused: the pause policy in force at hvc_vm_resume() decides what
 * the pause did. ::HVC_TSC_CATCHUP_PIT on a VM without a PIT
 * (::HVC_VM_NO_IRQCHIP) has nothing to do and is accepted.
 *
 * @return 0; -EINVAL (NULL, unknown @c size, pause policy or catch-up
 *         bits); -ENOTSUP for ::HVC_TSC_PAUSE_FREEZE without
 *         ::HVC_TSC_OFFSET, or a catch-up the backend lacks (the message
 *         says which); a backend error.
 */
HVC_EXTERN int hvc_vm_set_tsc_policy(hvc_vm *vm, const hvc_tsc_policy *policy);

/**
 * Reads the TSC policy of a VM.
 *
 * @param out in: @c size set (::HVC_TSC_POLICY_INIT); out: filled.
 * @return 0; -EINVAL (NULL, unknown @c size).
 */
HVC_EXTERN int hvc_vm_get_tsc_policy(hvc_vm *vm, hvc_tsc_policy *out);

/** hvc_tsc_state::magic: the bytes "HVTS". */
#define HVC_TSC_STATE_MAGIC 0x53545648u
/**
 * hvc_tsc_state::version. It changes only with an incompatible change; a
 * compatible one appends fields and grows @c header_size or @c vcpu_size,
 * which readers of this version skip.
 */
#define HVC_TSC_STATE_VERSION 1

/** Flags of hvc_tsc_state::flags. */
typedef enum hvc_tsc_state_flags {
    /** The frequency was pinned on the source. */
    HVC_TSC_STATE_PINNED = 1u << 0,
    /** The source scaled the guest TSC (ratio and ratio_frac_bits). */
    HVC_TSC_STATE_SCALED = 1u << 1,
    /**
     * host_tsc and realtime_ns were sampled by the kernel together with
     * kvmclock_ns (KVM_CLOCK_HOST_TSC | KVM_CLOCK_REALTIME); otherwise the
     * library bracketed the sample (sample_error_ns).
     */
    HVC_TSC_STATE_KERNEL_SAMPLE = 1u << 2,
    /** The source's kvmclock was stable (KVM_CLOCK_TSC_STABLE). */
    HVC_TSC_STATE_CLOCK_STABLE = 1u << 3
} hvc_tsc_state_flags;

/**
 * Header of a TSC state record. Fixed layout (128 bytes), little-endian,
 * followed by @c nr_vcpus entries of @c vcpu_size bytes
 * (::hvc_tsc_vcpu_state). All values describe one instant, the pause point:
 * when the VM was paused (hvc_vm_pause()), or when the record was saved if
 * it was not paused. docs/TSC.md documents every field.
 */
typedef struct hvc_tsc_state {
    /** ::HVC_TSC_STATE_MAGIC. */
    uint32_t magic;
    /** ::HVC_TSC_STATE_VERSION. */
    uint16_t version;
    /** Bytes of this header in the record (at least 128). */
    uint16_t header_size;
    /** Bytes of each vCPU entry (at least 48). */
    uint16_t vcpu_size;
    /** Reserved; 0. */
    uint16_t reserved0;
    /** Number of vCPU entries; at least 1. */
    uint32_t nr_vcpus;
    /** Bit mask of ::hvc_tsc_state_flags. */
    uint32_t flags;
    /** Guest TSC frequency the guest was told, kHz. */
    uint32_t tsc_khz;
    /** The source host's TSC frequency, kHz. */
    uint32_t host_tsc_khz;
    /** Fractional bits of @c ratio: 48, 32, or 0 when unscaled. */
    uint32_t ratio_frac_bits;
    /** The source's scaling ratio; 1 when unscaled. */
    uint64_t ratio;
    /** Source host TSC at the pause point. */
    uint64_t host_tsc;
    /** kvmclock (guest nanoseconds) at the pause point. */
    uint64_t kvmclock_ns;
    /** Source host CLOCK_REALTIME (ns since 1970) at the pause point. */
    uint64_t realtime_ns;
    /** Half-width of the sampling bracket, ns; 0 for a kernel sample. */
    uint32_t sample_error_ns;
    /** Reserved; 0. */
    uint32_t reserved1;
    /**
     * The source host's boot identity (Linux: /proc/sys/kernel/random/
     * boot_id); all zero when unknown. A restore on the same boot measures
     * the elapsed time with the host TSC instead of CLOCK_REALTIME.
     */
    uint8_t host_boot_id[16];
    /** Reserved; 0. */
    uint64_t reserved[5];
} hvc_tsc_state;

/** Flags of hvc_tsc_vcpu_state::flags. */
typedef enum hvc_tsc_vcpu_flags {
    /** @c tsc_adjust holds IA32_TSC_ADJUST (MSR 0x3b). */
    HVC_TSC_VCPU_ADJUST = 1u << 0,
    /** @c tsc_deadline holds IA32_TSC_DEADLINE (MSR 0x6e0). */
    HVC_TSC_VCPU_DEADLINE = 1u << 1
} hvc_tsc_vcpu_flags;

/** One vCPU's entry in a TSC state record. Fixed layout (48 bytes). */
typedef struct hvc_tsc_vcpu_state {
    /** The vCPU id. */
    uint32_t id;
    /** Bit mask of ::hvc_tsc_vcpu_flags. */
    uint32_t flags;
    /** TSC offset on the source. */
    uint64_t offset;
    /**
     * Guest TSC at the pause point: hvc_tsc_scale(host_tsc, ratio,
     * ratio_frac_bits) + offset (checked on restore).
     */
    uint64_t guest_tsc;
    /** IA32_TSC_ADJUST. */
    uint64_t tsc_adjust;
    /** IA32_TSC_DEADLINE: an absolute guest TSC value; 0 when disarmed. */
    uint64_t tsc_deadline;
    /** Reserved; 0. */
    uint64_t reserved;
} hvc_tsc_vcpu_state;

/**
 * Bytes hvc_vm_save_tsc() writes for the VM's current vCPUs.
 *
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_vm_tsc_state_size(hvc_vm *vm, size_t *size);

/**
 * Captures the TSC state record of a VM: frequency, per-vCPU offsets, guest
 * TSC, IA32_TSC_ADJUST and IA32_TSC_DEADLINE, the kvmclock value, and the
 * host TSC and CLOCK_REALTIME of one instant. When the VM is paused, that
 * instant is the pause (so the record does not depend on how long after
 * the pause it was saved); otherwise it is now, and every vCPU must be out
 * of hvc_vcpu_run().
 *
 * @param buf     receives the record.
 * @param length  size of @p buf.
 * @param written receives the record's size (may be NULL).
 * @return 0; -EINVAL (NULL, no vCPUs); -ENOSPC when @p length is smaller
 *         than hvc_vm_tsc_state_size(); -EBUSY when a vCPU is running and
 *         the VM is not paused; a backend error.
 */
HVC_EXTERN int hvc_vm_save_tsc(hvc_vm *vm, void *buf, size_t length,
                               size_t *written);

/**
 * Options of hvc_vm_restore_tsc(). Initialise with
 * ::HVC_TSC_RESTORE_OPTIONS_INIT; fields are only ever appended.
 */
typedef struct hvc_tsc_restore_options {
    /** sizeof(hvc_tsc_restore_options) as the caller was compiled. */
    uint32_t size;
    /**
     * An ::hvc_tsc_pause_policy for the time between the record's pause
     * point and the restore: advance (the guest TSC and kvmclock include
     * it) or freeze (they resume where the record left them).
     */
    uint32_t pause;
    /**
     * Hosts without ::HVC_TSC_OFFSET cannot move the guest TSC: the restore
     * is accepted when the TSC the host gives differs from the one the
     * record and policy ask for by at most this many microseconds, and
     * refused otherwise. 0 picks the default, 1000.
     */
    uint32_t max_error_us;
} hvc_tsc_restore_options;

/** Initialiser for ::hvc_tsc_restore_options. */
#define HVC_TSC_RESTORE_OPTIONS_INIT                                           \
    {                                                                          \
        sizeof(hvc_tsc_restore_options), HVC_TSC_PAUSE_ADVANCE, 0              \
    }

/**
 * Restores a TSC state record into a VM: the same VM, or a new one (on
 * this host or another) whose vCPUs have the record's ids. Every field is
 * validated before anything is applied; a record with an impossible value
 * is refused with a message naming it.
 *
 * The procedure is the one of the kernel's
 * Documentation/virt/kvm/devices/vcpu.rst (KVM_VCPU_TSC_OFFSET): set the
 * kvmclock (advanced by the elapsed time under ::HVC_TSC_PAUSE_ADVANCE),
 * sample the kvmclock with the host TSC, and give every vCPU the offset
 * that keeps "guest TSC - kvmclock * frequency" what it was on the source;
 * then IA32_TSC_ADJUST, then IA32_TSC_DEADLINE (after the TSC, so the
 * deadline is armed against the restored TSC; KVM ignores it unless the
 * local APIC timer is in TSC-deadline mode, so restore the local APIC
 * first). The elapsed time is measured with the host TSC when the record
 * comes from the same host boot, else with CLOCK_REALTIME, which then must
 * be synchronised between the hosts. docs/TSC.md gives the fallbacks for
 * hosts without KVM_CLOCK_REALTIME / KVM_CLOCK_HOST_TSC or without TSC
 * offsetting.
 *
 * An unpinned VM whose vCPUs have not run is pinned to the record's
 * frequency. Restoring into a paused VM defines its clocks as of the
 * restore; the VM's pause policy governs the time until it resumes.
 *
 * @param opts options, or NULL for the VM's pause policy and defaults.
 * @return 0; -EINVAL (NULL, a malformed or inconsistent record, vCPU ids
 *         that differ from the VM's); -EBUSY (a vCPU runs and the VM is not
 *         paused; or the frequency differs and the vCPUs have run);
 *         -ENOTSUP (the frequency needs scaling the host lacks; the TSC
 *         needs an offset the host cannot set); a backend error.
 */
HVC_EXTERN int hvc_vm_restore_tsc(hvc_vm *vm, const void *buf, size_t length,
                                  const hvc_tsc_restore_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* HVCORE_TSC_H */
