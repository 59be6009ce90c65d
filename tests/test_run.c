/* Running: SMP, two VMs, kicks, pause/resume, HLT, shutdown, interrupts. */
#include "hvtest.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#define NCPU 4

struct smp {
    atomic_uint count[NCPU];
    atomic_uint next[NCPU];
    atomic_int order_errors;
};

static int smp_port(void *opaque, hvc_vcpu *vcpu, uint64_t off, void *data,
                    uint32_t size, int is_write)
{
    struct smp *s = opaque;
    (void)off;
    cr_assert_eq(size, 4);
    cr_assert(is_write);
    uint32_t v = *(uint32_t *)data, id = v >> 16, i = v & 0xffff;
    if (id >= NCPU || id != hvc_vcpu_id(vcpu) || i != s->next[id])
        atomic_fetch_add(&s->order_errors, 1);
    s->next[id] = i + 1;
    atomic_fetch_add(&s->count[id], 1);
    return 0;
}

struct runner {
    hvc_vcpu *vcpu;
    int status;
    int rc;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    const hvc_exit *e;
    r->rc = hvc_vcpu_run(r->vcpu, &e);
    r->status =
        r->rc == 0 && e->reason == HVC_EXIT_PIO && e->u.io.port == PORT_DONE
            ? *(uint8_t *)e->u.io.data
            : -1;
    return NULL;
}

Test(run, four_vcpus_on_four_threads)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "smp64");
    struct smp s;
    memset(&s, 0, sizeof(s));
    HVT_OK(hvc_vm_add_io_handler(t.vm, HVC_IO_PIO, PORT_SMP, 4, smp_port, &s));
    struct runner r[NCPU];
    pthread_t th[NCPU];
    for (uint32_t i = 0; i < NCPU; i++) {
        r[i].vcpu = hvt_vcpu(t.vm, i, HVC_X86_MODE_LONG64, 0);
        HVT_OK(hvc_vcpu_set_reg(r[i].vcpu, HVC_X86_RDI, i));
    }
    for (int i = 0; i < NCPU; i++)
        pthread_create(&th[i], NULL, run_thread, &r[i]);
    for (int i = 0; i < NCPU; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NCPU; i++) {
        cr_assert_eq(r[i].rc, 0, "vCPU %d: %d", i, r[i].rc);
        cr_assert_eq(r[i].status, i);
        cr_assert_eq(s.count[i], 1000);
        uint64_t mem;
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT + 8 * i, &mem, 8));
        cr_assert_eq(mem, 1000);
    }
    cr_assert_eq(s.order_errors, 0);
    hvt_close(&t);
}

/* Runs the long64 guest of @p t to its end with @p in (count, a, b): it
 * adds a + b into DATA_OUT and RBX. */
static void sum_runs(hvt *t, uint64_t a, uint64_t b)
{
    uint64_t in[3] = {2, a, b}, out;
    HVT_OK(hvc_vm_write(t->vm, DATA_IN, in, sizeof(in)));
    hvc_vcpu *v = hvt_vcpu(t->vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x64);
    HVT_OK(hvc_vm_read(t->vm, DATA_OUT, &out, 8));
    cr_assert_eq(out, a + b);
    cr_assert_eq(hvt_reg(v, HVC_X86_RBX), a + b);
}

/* Two VMs at once where the backend allows them (HVC_CAP_MAX_VMS 0, no
 * limit, or >= 2): each runs its own guest on its own thread. Where it
 * allows one (Hypervisor.framework), the second hvc_vm_create() is -EBUSY
 * with a message naming the limit, changes nothing (the first VM runs on
 * correctly), and once the first is destroyed a new VM can be created and
 * runs. Decided by the capability, never by the backend's name. */
Test(run, two_vms_do_not_interfere)
{
    hvt a, b;
    hvt_open(&a, 0);
    uint64_t max = 0;
    HVT_OK(hvc_hypervisor_get_cap(a.hv, HVC_CAP_MAX_VMS, &max));
    if (max == 1) {
        hvc_hypervisor *hv2;
        HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv2));
        hvc_vm_options o = HVC_VM_OPTIONS_INIT;
        hvc_vm *second = NULL;
        HVT_ERR(hvc_vm_create(hv2, &o, &second), -EBUSY);
        cr_assert(strstr(hvc_last_error(), "allows 1 VM"), "%s",
                  hvc_last_error());
        cr_assert_null(second);
        /* through the same handle too */
        HVT_ERR(hvc_vm_create(a.hv, &o, &second), -EBUSY);
        cr_assert_null(second);
        hvt_load(a.vm, "long64");
        sum_runs(&a, 10, 20);
        hvt_close(&a);
        /* the slot is free again */
        HVT_OK(hvc_hypervisor_close(hv2));
        hvt_open(&b, 0);
        hvt_load(b.vm, "long64");
        sum_runs(&b, 1000, 2000);
        hvt_close(&b);
        return;
    }
    cr_assert(max == 0 || max >= 2, "HVC_CAP_MAX_VMS %llu",
              (unsigned long long)max);
    hvt_open(&b, 0);
    hvt_load(a.vm, "long64");
    hvt_load(b.vm, "long64");
    uint64_t ina[3] = {2, 10, 20}, inb[3] = {2, 1000, 2000};
    HVT_OK(hvc_vm_write(a.vm, DATA_IN, ina, sizeof(ina)));
    HVT_OK(hvc_vm_write(b.vm, DATA_IN, inb, sizeof(inb)));
    struct runner ra = {hvt_vcpu(a.vm, 0, HVC_X86_MODE_LONG64, 0), 0, 0};
    struct runner rb = {hvt_vcpu(b.vm, 0, HVC_X86_MODE_LONG64, 0), 0, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_thread, &ra);
    pthread_create(&tb, NULL, run_thread, &rb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(ra.status, 0x64);
    cr_assert_eq(rb.status, 0x64);
    uint64_t oa, ob;
    HVT_OK(hvc_vm_read(a.vm, DATA_OUT, &oa, 8));
    HVT_OK(hvc_vm_read(b.vm, DATA_OUT, &ob, 8));
    cr_assert_eq(oa, 30);
    cr_assert_eq(ob, 3000);
    cr_assert_eq(hvt_reg(ra.vcpu, HVC_X86_RBX), 30);
    cr_assert_eq(hvt_reg(rb.vcpu, HVC_X86_RBX), 3000);
    hvt_close(&a);
    hvt_close(&b);
}

struct kick_run {
    hvc_vcpu *vcpu;
    const hvc_exit *exit;
    int rc;
    double returned_ms;
};

static void *kick_thread(void *arg)
{
    struct kick_run *k = arg;
    k->rc = hvc_vcpu_run(k->vcpu, &k->exit);
    k->returned_ms = now_ms();
    return NULL;
}

static void wait_guest_spinning(hvc_vm *vm)
{
    uint64_t c = 0;
    for (int i = 0; i < 5000 && c < 1000; i++) {
        usleep(1000);
        HVT_OK(hvc_vm_read(vm, DATA_OUT, &c, 8));
    }
    cr_assert_geq(c, 1000, "the guest never started spinning");
}

Test(run, kick_stops_a_spinning_guest)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "spin64");
    struct kick_run k = {hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0), NULL, -1,
                         0};
    pthread_t th;
    pthread_create(&th, NULL, kick_thread, &k);
    wait_guest_spinning(t.vm);
    /* a second run while the first is on: refused, not queued */
    const hvc_exit *e;
    HVT_ERR(hvc_vcpu_run(k.vcpu, &e), -EBUSY);
    cr_assert(strstr(hvc_last_error(), "already running"), "%s",
              hvc_last_error());
    HVT_ERR(hvc_vcpu_destroy(k.vcpu), -EBUSY);
    HVT_ERR(hvc_vm_destroy(t.vm), -EBUSY);
    uint64_t x;
    HVT_ERR(hvc_vcpu_get_reg(k.vcpu, HVC_X86_RAX, &x), -EBUSY);
    double kicked = now_ms();
    HVT_OK(hvc_vcpu_kick(k.vcpu));
    pthread_join(th, NULL);
    cr_assert_eq(k.rc, 0);
    cr_assert_eq(k.exit->reason, HVC_EXIT_KICK);
    cr_assert_lt(k.returned_ms - kicked, 100.0, "kick took %.1f ms",
                 k.returned_ms - kicked);
    /* the guest resumes where it was: the counter keeps going */
    uint64_t before, after;
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &before, 8));
    pthread_create(&th, NULL, kick_thread, &k);
    /* kicked once the guest has counted on (a loaded host may take a
     * while to enter it), or after 5 s, which the assertion then reports */
    for (int i = 0; i < 5000; i++) {
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &after, 8));
        if (after > before)
            break;
        usleep(1000);
    }
    HVT_OK(hvc_vcpu_kick(k.vcpu));
    pthread_join(th, NULL);
    cr_assert_eq(k.exit->reason, HVC_EXIT_KICK);
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &after, 8));
    cr_assert_gt(after, before);
    hvt_close(&t);
}

Test(run, kick_reaches_a_thread_that_blocks_signals)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "spin64");
    struct kick_run k = {hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0), NULL, -1,
                         0};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread inherits it */
    pthread_t th;
    pthread_create(&th, NULL, kick_thread, &k);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    wait_guest_spinning(t.vm);
    double kicked = now_ms();
    HVT_OK(hvc_vcpu_kick(k.vcpu));
    pthread_join(th, NULL);
    cr_assert_eq(k.exit->reason, HVC_EXIT_KICK);
    cr_assert_lt(k.returned_ms - kicked, 100.0);
    hvt_close(&t);
}

Test(run, kick_before_run_returns_at_once)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "spin64");
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    HVT_OK(hvc_vcpu_kick(v));
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(v, &e));
    cr_assert_eq(e->reason, HVC_EXIT_KICK);
    HVT_ERR(hvc_vcpu_kick(NULL), -EINVAL);
    hvt_close(&t);
}

Test(run, pause_and_resume)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "spin64");
    struct kick_run k = {hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0), NULL, -1,
                         0};
    pthread_t th;
    pthread_create(&th, NULL, kick_thread, &k);
    wait_guest_spinning(t.vm);
    HVT_OK(hvc_vm_pause(t.vm));
    cr_assert(hvc_vm_is_paused(t.vm));
    /* paused: the counter stands still, and registers are readable */
    uint64_t c1, c2;
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &c1, 8));
    usleep(30000);
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &c2, 8));
    cr_assert_eq(c1, c2, "guest ran while paused");
    uint64_t rax = hvt_reg(k.vcpu, HVC_X86_RAX);
    cr_assert(rax == c1 || rax == c1 + 1, "rax %llu, memory %llu",
              (unsigned long long)rax, (unsigned long long)c1);
    /* nested pause needs two resumes */
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    cr_assert(hvc_vm_is_paused(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    cr_assert(!hvc_vm_is_paused(t.vm));
    HVT_ERR(hvc_vm_resume(t.vm), -EINVAL);
    /* running again */
    usleep(30000);
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &c2, 8));
    cr_assert_gt(c2, c1, "guest did not resume");
    /* the run never returned during the pause */
    cr_assert_eq(k.rc, -1);
    /* a kick releases a thread parked by a pause */
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vcpu_kick(k.vcpu));
    pthread_join(th, NULL);
    cr_assert_eq(k.rc, 0);
    cr_assert_eq(k.exit->reason, HVC_EXIT_KICK);
    HVT_OK(hvc_vm_resume(t.vm));
    HVT_ERR(hvc_vm_pause(NULL), -EINVAL);
    HVT_ERR(hvc_vm_resume(NULL), -EINVAL);
    hvt_close(&t);
}

Test(run, hlt_and_shutdown_without_irqchip)
{
    hvt t;
    hvt_open(&t, HVC_VM_NO_IRQCHIP);
    hvt_load(t.vm, "hlt64");
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(v, &e));
    cr_assert_eq(e->reason, HVC_EXIT_HLT);
    cr_assert_eq(hvt_run_done(v), 0x48);
    HVT_OK(hvc_vcpu_run(v, &e));
    cr_assert_eq(e->reason, HVC_EXIT_SHUTDOWN, "ud2 without an IDT: %u",
                 e->reason);
    HVT_ERR(hvc_vm_set_irq(t.vm, 4, 1), -ENOTSUP);
    HVT_ERR(hvc_vm_send_msi(t.vm, 0xfee00000, 0x30), -ENOTSUP);
    hvt_close(&t);
}

Test(run, interrupt_lines_and_msi)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(t.vm, 0, &v));
    HVT_OK(hvc_vm_set_irq(t.vm, 4, 1));
    HVT_OK(hvc_vm_set_irq(t.vm, 4, 0));
    HVT_OK(hvc_vm_set_irq(t.vm, 23, 1));
    HVT_ERR(hvc_vm_set_irq(t.vm, 24, 1), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "GSI 24"), "%s", hvc_last_error());
    HVT_ERR(hvc_vm_set_irq(t.vm, 4, 2), -EINVAL);
    /* the LAPIC is software-disabled after reset: delivery may be refused
     * (-EAGAIN) but the call itself must work */
    int r = hvc_vm_send_msi(t.vm, 0xfee00000, 0x30);
    cr_assert(r == 0 || r == -EAGAIN, "%d: %s", r, hvc_last_error());
    HVT_ERR(hvc_vm_set_irq(NULL, 4, 1), -EINVAL);
    HVT_ERR(hvc_vm_send_msi(NULL, 0xfee00000, 0x30), -EINVAL);
    hvt_close(&t);
}

Test(run, run_without_memory_is_refused)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_vcpu *v;
    HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv));
    HVT_OK(hvc_vm_create(hv, NULL, &vm));
    HVT_OK(hvc_vcpu_create(vm, 0, &v));
    const hvc_exit *e;
    HVT_ERR(hvc_vcpu_run(v, &e), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "no memory"), "%s", hvc_last_error());
    HVT_ERR(hvc_vcpu_run(NULL, &e), -EINVAL);
    HVT_OK(hvc_vm_destroy(vm));
    HVT_OK(hvc_hypervisor_close(hv));
}
