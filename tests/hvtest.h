/* Shared helpers for the Criterion suites: open KVM or skip (or fail when
 * HVCORE_REQUIRE_KVM=1), build a VM with RAM, load a guest from
 * tests/guests, and run it to its done port. */
#ifndef HVTEST_H
#define HVTEST_H

#include <criterion/criterion.h>
#include <hvcore.h>

/* Same numbers as tests/guests/guest.h. */
#define GUEST_LOAD 0x8000
#define GUEST_STACK 0x7000
#define GUEST_TABLES 0x100000
#define DATA_IN 0x20000
#define DATA_OUT 0x30000
#define PORT_DONE 0xf4
#define PORT_DATA 0x10
#define PORT_STRING 0x18
#define PORT_UNCLAIMED_OUT 0x99
#define PORT_UNCLAIMED_IN 0x98
#define PORT_SMP 0x20
#define MMIO_HANDLED 0xd0000000u
#define MMIO_UNCLAIMED 0xe0000000u
#define HVT_MEM (4u << 20)

/* Asserts that a libhvcore call returned 0, printing hvc_last_error(). */
#define HVT_OK(call)                                                           \
    do {                                                                       \
        int hvt_r_ = (call);                                                   \
        cr_assert_eq(hvt_r_, 0, "%s = %d (%s): %s", #call, hvt_r_,             \
                     hvc_strerror(hvt_r_), hvc_last_error());                  \
    } while (0)

/* Asserts that a call failed with @err and left a non-empty message. */
#define HVT_ERR(call, err)                                                     \
    do {                                                                       \
        int hvt_r_ = (call);                                                   \
        cr_assert_eq(hvt_r_, (err), "%s = %d, expected %d (%s)", #call,        \
                     hvt_r_, (err), hvc_last_error());                         \
        cr_assert_neq(hvc_last_error()[0], '\0', "%s: no message", #call);     \
    } while (0)

typedef struct hvt {
    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_memory_region *ram;
} hvt;

/* The backend the suites open: $HVT_BACKEND ("kvm", "hvf"), else "kvm".
 * CTest runs a suite once per backend with it (the *_hvf entries run
 * under the hvf backend on tests/hvf_host's KVM-hosted API). */
const char *hvt_backend(void);
/* Skips the test when the backend (hvt_backend()) cannot open, unless
 * HVCORE_REQUIRE_KVM=1, in which case it fails: CI sets that when
 * /dev/kvm is usable. */
void hvt_require_kvm(void);

/* fork() for a test's helper process (a destination, a peer): the child is
 * killed when the test's process dies, so a test that fails or times out
 * while its child waits (on a socket, on a userfault) leaves nothing
 * behind to hold CTest's output pipe open. Call it on the test's thread:
 * the signal follows the thread that forked. */
#include <sys/types.h>
pid_t hvt_fork(void);
/* Opens the backend, creates a VM with @p vm_flags and HVT_MEM of RAM at 0. */
void hvt_open(hvt *t, uint32_t vm_flags);
void hvt_close(hvt *t);
/* Loads tests/guests/<name>.bin at GUEST_LOAD. */
void hvt_load(hvc_vm *vm, const char *name);
/* Creates vCPU @p id in @p mode at GUEST_LOAD + @p entry_offset. */
hvc_vcpu *hvt_vcpu(hvc_vm *vm, uint32_t id, int mode, uint64_t entry_offset);
/* Runs until the guest writes PORT_DONE; returns the status byte. Fails the
 * test on any other unclaimed exit. */
uint8_t hvt_run_done(hvc_vcpu *vcpu);
/* Reads one register or fails the test. */
uint64_t hvt_reg(hvc_vcpu *vcpu, hvc_reg id);

#endif
