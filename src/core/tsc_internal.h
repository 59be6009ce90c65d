/*
 * TSC virtualization inside the core (docs/TSC.md): tsc.c keeps a VM's
 * frequency and policy and the shared helpers; tsc_offset.c the per-vCPU
 * value and offset (one offset shared by all vCPUs); tsc_pause.c the pause
 * point and the pause policy; tsc_state.c the state record; tsc_restore.c
 * the restore procedure; tsc_ratio.c and tsc_math.c the arithmetic.
 *
 * Locking: everything in struct hvi_tsc but @c ran is read and written
 * under vm->lock, which the pause and resume hooks already hold. Backend
 * vCPU calls are made only while the vCPU cannot be in the guest (the VM
 * paused, or the vCPU out of hvc_vcpu_run()), so holding vm->lock across
 * them cannot wait on a guest.
 */
#ifndef HVCORE_CORE_TSC_INTERNAL_H
#define HVCORE_CORE_TSC_INTERNAL_H

#include "internal.h"
#include "tsc_math.h"

#define HVI_MSR_TSC_ADJUST 0x3bu
#define HVI_MSR_TSC_DEADLINE 0x6e0u

struct hvi_tsc {
    atomic_bool ran; /* a vCPU entered hvc_vcpu_run(): frequency is fixed */
    bool pinned;
    bool scaled;
    uint32_t khz; /* pinned: what the guest is told; else 0 */
    uint32_t tolerance_ppm;
    uint64_t ratio;     /* 1 when unscaled */
    uint32_t frac_bits; /* 0 when unscaled */

    /* The offset every vCPU gets unless told otherwise, so that vCPUs
     * created late match the others (KVM's master clock needs all vCPUs
     * on one offset). */
    bool shared_valid;
    uint64_t shared_offset;

    hvc_tsc_policy policy;

    /* The pause point, taken once the last vCPU stopped (hvi_tsc_paused)
     * and consumed by hvi_tsc_resuming. */
    bool paused;
    hvc_backend_clock point;
    uint64_t point_mono_ns;
    /* Freeze: armed TSC deadlines taken off at the pause point, by vCPU
     * id, so they do not fire while the guest's TSC stands still. */
    bool frozen;
    uint64_t *deadline;
};

/* vm.c: lifetime and the pause/resume hooks (vm->lock held). A failed
 * hvi_tsc_paused() leaves no pause point; a failed hvi_tsc_resuming()
 * leaves the VM paused and the point in place. */
int hvi_tsc_init(hvc_vm *vm);
void hvi_tsc_free(hvc_vm *vm);
int hvi_tsc_paused(hvc_vm *vm);
int hvi_tsc_resuming(hvc_vm *vm);

/* vcpu.c: a new vCPU joins the shared offset (vm->lock held); a vCPU is
 * about to run for the first time. */
int hvi_tsc_vcpu_created(hvc_vcpu *vcpu);
void hvi_tsc_vcpu_running(hvc_vm *vm);

/* Shared by tsc.c and tsc_state.c; vm->lock held. */
const hvc_backend_tsc_ops *hvi_tsc_ops(const hvc_vm *vm);
int hvi_tsc_need_ops(const hvc_vm *vm, const char *what);
int hvi_tsc_info(const hvc_vm *vm, hvc_tsc_info *info, uint8_t boot_id[16]);
uint32_t hvi_tsc_told_khz(const hvc_vm *vm, const hvc_tsc_info *info);
uint32_t hvi_tsc_rate_khz(const hvc_vm *vm, const hvc_tsc_info *info);
uint64_t hvi_tsc_scaled(const hvc_vm *vm, uint64_t host_tsc);
bool hvi_tsc_all_stopped(hvc_vm *vm);
int hvi_tsc_set_frequency_locked(hvc_vm *vm, uint32_t khz, uint32_t tol_ppm);
bool hvi_tsc_msr_get(hvc_vcpu *vcpu, uint32_t msr, uint64_t *value);
int hvi_tsc_msr_set(hvc_vcpu *vcpu, uint32_t msr, uint64_t value);
bool hvi_tsc_has_irqchip(const hvc_vm *vm);

/* tsc_restore.c: the restore procedure for a validated record (header and
 * @p n entries, one per vCPU of the VM). HVI_APPLY_DEFER_DEADLINES keeps
 * the deadlines for hvi_tsc_resuming() instead of arming them now. */
#define HVI_APPLY_DEFER_DEADLINES 1u
int hvi_tsc_apply(hvc_vm *vm, const hvc_tsc_state *h,
                  const hvc_tsc_vcpu_state *e, uint32_t n, uint32_t pause,
                  uint32_t max_error_us, uint32_t flags);

#endif
