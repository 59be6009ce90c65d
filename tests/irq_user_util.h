/* Helpers of the irq_user suites (tests/test_irq_user*.c, guests
 * tests/guests/irq_user.S and tsc_pit.S). */
#ifndef IRQ_USER_UTIL_H
#define IRQ_USER_UTIL_H

#include "hvtest.h"

#include <pthread.h>
#include <stdatomic.h>

#define MODE (DATA_IN + 8)
#define DELTA (DATA_IN + 16)

uint64_t q(hvc_vm *vm, uint64_t gpa);
void put_q(hvc_vm *vm, uint64_t gpa, uint64_t v);
uint64_t mono_ns(void);

/* A vCPU on its own thread until its PORT_DONE (status), a kick (0x100)
 * or an error (rc); status is -1 while it runs. */
struct runner {
    hvc_vcpu *vcpu;
    pthread_t th;
    int rc;
    atomic_int status;
    uint32_t reason;
};
void start(struct runner *r, hvc_vcpu *v);
/* Waits up to @p ms for the qword at @p gpa to reach @p want; returns it. */
uint64_t wait_q(hvc_vm *vm, uint64_t gpa, uint64_t want, int ms);
/* Sets DATA_IN, joins the runner and checks its status. */
void finish(hvt *t, struct runner *r, int status);
/* Ticks counted at DATA_OUT per second over @p ms. */
double rate_hz(hvc_vm *vm, int ms);
/* The host's TSC kHz. */
uint32_t tsc_khz(void);

#endif
