/* Helpers of the irq_user suites (test_irq_user*.c): guest memory as
 * qwords, a vCPU on a thread of its own, rates. */
#include "irq_user_util.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t q(hvc_vm *vm, uint64_t gpa)
{
    uint64_t v = 0;
    HVT_OK(hvc_vm_read(vm, gpa, &v, sizeof(v)));
    return v;
}

void put_q(hvc_vm *vm, uint64_t gpa, uint64_t v)
{
    HVT_OK(hvc_vm_write(vm, gpa, &v, sizeof(v)));
}

uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


static void *run_thread(void *arg)
{
    struct runner *r = arg;
    const hvc_exit *e;
    for (;;) {
        r->rc = hvc_vcpu_run(r->vcpu, &e);
        if (r->rc < 0)
            return NULL;
        r->reason = e->reason;
        if (e->reason == HVC_EXIT_KICK) {
            r->status = 0x100;
            return NULL;
        }
        if (e->reason == HVC_EXIT_PIO && e->u.io.port == PORT_DONE) {
            r->status = ((const uint8_t *)e->u.io.data)[0];
            return NULL;
        }
        return NULL; /* anything else: the test looks at reason */
    }
}

void start(struct runner *r, hvc_vcpu *v)
{
    memset(r, 0, sizeof(*r));
    r->vcpu = v;
    atomic_store(&r->status, -1);
    cr_assert_eq(pthread_create(&r->th, NULL, run_thread, r), 0);
}

/* Waits up to @p ms for the qword at @p gpa to reach @p want. */
uint64_t wait_q(hvc_vm *vm, uint64_t gpa, uint64_t want, int ms)
{
    uint64_t v = 0;
    for (int i = 0; i < ms; i++) {
        if ((v = q(vm, gpa)) >= want)
            break;
        usleep(1000);
    }
    return v;
}

void finish(hvt *t, struct runner *r, int status)
{
    put_q(t->vm, DATA_IN, 1);
    pthread_join(r->th, NULL);
    cr_assert_eq(r->rc, 0, "run: %d (%s)", r->rc, hvc_last_error());
    cr_assert_eq(r->status, status, "status 0x%x (exit reason %u)", r->status,
                 r->reason);
}

/* Ticks counted at DATA_OUT per second over @p ms. */
double rate_hz(hvc_vm *vm, int ms)
{
    uint64_t n0 = q(vm, DATA_OUT), t0 = mono_ns();
    usleep((useconds_t)ms * 1000);
    uint64_t n1 = q(vm, DATA_OUT), t1 = mono_ns();
    return (double)(n1 - n0) * 1e9 / (double)(t1 - t0);
}

uint32_t tsc_khz(void)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_tsc_info in = {.size = sizeof(in)};
    HVT_OK(hvc_tsc_get_info(hv, &in));
    HVT_OK(hvc_hypervisor_close(hv));
    cr_assert_gt(in.host_tsc_khz, 0);
    return in.host_tsc_khz;
}

