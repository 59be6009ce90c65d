/* vCPU thread affinity (core17): the KVM backend's test-only strict mode
 * (HVCORE_KVM_STRICT_THREADS=1, src/backends/kvm/kvm_strict.c) binds each
 * vCPU to the thread that created it, as Hypervisor.framework does, and
 * counts every vCPU call made off that thread. Through the public API,
 * from whatever thread each scenario uses, the core must forward every
 * call: the assertion is zero violations, with real guests running.
 * White-box (links the static library) only to read that count. Also the
 * VM limit (HVC_CAP_MAX_VMS, HVCORE_KVM_MAX_VMS) and the page size. */
#include "hvtest.h"

#include "../src/core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned long hvi_kvm_strict_violations(void);

static hvt t;

static void strict_open(void)
{
    setenv("HVCORE_KVM_STRICT_THREADS", "1", 1);
    hvt_open(&t, 0);
    unsetenv("HVCORE_KVM_STRICT_THREADS");
}

static void strict_close(void)
{
    hvt_close(&t);
}

TestSuite(vcpu_thread, .init = strict_open, .fini = strict_close,
          .timeout = 120);

static void load_long64(hvc_vm *vm)
{
    hvt_load(vm, "long64");
    uint64_t in[2] = {1, 5};
    HVT_OK(hvc_vm_write(vm, DATA_IN, in, sizeof(in)));
}

struct runner {
    hvc_vcpu *v;
    int rc;
    uint32_t reason;
    uint16_t port;
    uint8_t data;
    char msg[256];
};

static void *run_once(void *p)
{
    struct runner *r = p;
    const hvc_exit *e = NULL;
    r->rc = hvc_vcpu_run(r->v, &e);
    if (r->rc < 0) {
        snprintf(r->msg, sizeof(r->msg), "%s", hvc_last_error());
        return NULL;
    }
    r->reason = e->reason;
    if (e->reason == HVC_EXIT_PIO) {
        r->port = e->u.io.port;
        r->data = *(uint8_t *)e->u.io.data;
    }
    return NULL;
}

/* Set up on the main thread (registers, segments, MSRs, CPUID), run on
 * another: the backend vCPU lives on its own thread throughout. */
Test(vcpu_thread, regs_set_on_main_run_on_other_thread)
{
    unsigned long before = hvi_kvm_strict_violations();
    load_long64(t.vm);
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    uint64_t rip = hvt_reg(v, HVC_X86_RIP);
    cr_assert_eq(rip, GUEST_LOAD);
    struct runner r = {.v = v};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_once, &r), 0);
    pthread_join(th, NULL);
    cr_assert_eq(r.rc, 0, "run: %s", r.msg);
    cr_assert_eq(r.reason, HVC_EXIT_PIO);
    cr_assert_eq(r.port, PORT_DONE);
    cr_assert_eq(r.data, 0x64);
    /* and read back on main after the runner thread is gone */
    cr_assert_neq(hvt_reg(v, HVC_X86_RIP), GUEST_LOAD);
    cr_assert_eq(hvi_kvm_strict_violations(), before,
                 "%lu vCPU calls made off the vCPU's thread",
                 hvi_kvm_strict_violations() - before);
}

/* The spinning guest runs on a thread; main reads its registers and its
 * FPU state in the middle of that run: the ABI wants the VM paused for
 * that (the runner parks on its thread, inside hvc_vcpu_run(), and serves
 * the reads there), exactly as on a backend without thread binding, and
 * refuses an unpaused read with -EBUSY on both. */
Test(vcpu_thread, regs_read_while_running)
{
    unsigned long before = hvi_kvm_strict_violations();
    hvt_load(t.vm, "spin64");
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    struct runner r = {.v = v};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_once, &r), 0);
    uint64_t last = 0;
    size_t fsz = 0;
    HVT_OK(hvc_vcpu_fpu_state_size(v, &fsz));
    void *fpu = malloc(fsz);
    int reads = 0, busy = 0;
    uint64_t started = 0;
    for (int i = 0; i < 5000 && !started; i++) {
        usleep(1000);
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &started, sizeof(started)));
    }
    cr_assert_gt(started, 0, "the guest never ran");
    for (int i = 0; i < 100; i++) {
        uint64_t rip = 0, rax = 0;
        int e = hvc_vcpu_get_reg(v, HVC_X86_RIP, &rip);
        if (e == -EBUSY)
            busy++; /* running, not paused: refused as on any backend */
        else
            HVT_OK(e);
        HVT_OK(hvc_vm_pause(t.vm));
        HVT_OK(hvc_vcpu_get_reg(v, HVC_X86_RIP, &rip));
        HVT_OK(hvc_vcpu_get_reg(v, HVC_X86_RAX, &rax));
        HVT_OK(hvc_vcpu_get_fpu_state(v, fpu, fsz));
        HVT_OK(hvc_vcpu_set_reg(v, HVC_X86_RAX, rax));
        HVT_OK(hvc_vm_resume(t.vm));
        usleep(500);
        cr_assert(rip >= GUEST_LOAD && rip < GUEST_LOAD + 0x100,
                  "rip 0x%llx outside the guest", (unsigned long long)rip);
        cr_assert_geq(rax, last, "the counter went back");
        last = rax;
        reads++;
    }
    HVT_OK(hvc_vcpu_kick(v));
    pthread_join(th, NULL);
    free(fpu);
    cr_assert_eq(r.rc, 0, "run: %s", r.msg);
    cr_assert_eq(r.reason, HVC_EXIT_KICK);
    cr_assert_gt(last, 0, "no read saw the guest's counter");
    cr_assert_eq(reads, 100);
    cr_assert_gt(busy, 0, "an unpaused read of a running vCPU was allowed");
    cr_assert_eq(hvi_kvm_strict_violations(), before);
}

/* Pause from main while the vCPU runs on its thread, save the whole VM
 * (every vCPU state blob, TSC offsets), resume, kick. */
Test(vcpu_thread, pause_save_resume_from_other_thread)
{
    unsigned long before = hvi_kvm_strict_violations();
    hvt_load(t.vm, "spin64");
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    struct runner r = {.v = v};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_once, &r), 0);
    usleep(20000);
    for (int i = 0; i < 3; i++) {
        HVT_OK(hvc_vm_pause(t.vm));
        uint64_t c1 = 0, c2 = 0;
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &c1, sizeof(c1)));
        int fd = open("/dev/null", O_WRONLY);
        cr_assert_geq(fd, 0);
        HVT_OK(hvc_vm_save_fd(t.vm, fd, NULL));
        close(fd);
        usleep(5000);
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &c2, sizeof(c2)));
        cr_assert_eq(c1, c2, "the guest ran while paused");
        HVT_OK(hvc_vm_resume(t.vm));
        usleep(5000);
    }
    HVT_OK(hvc_vcpu_kick(v));
    pthread_join(th, NULL);
    cr_assert_eq(r.rc, 0, "run: %s", r.msg);
    cr_assert_eq(r.reason, HVC_EXIT_KICK);
    cr_assert_eq(hvi_kvm_strict_violations(), before);
}

struct cb_state {
    hvc_vcpu *expect;
    atomic_int calls;
    atomic_int errors;
    uint64_t rip;
};

/* An I/O handler runs on the vCPU's thread; it reads and writes its own
 * vCPU's registers there (inline, no forwarding to itself). */
static int own_vcpu_handler(void *opaque, hvc_vcpu *vcpu, uint64_t offset,
                            void *data, uint32_t size, int is_write)
{
    struct cb_state *s = opaque;
    (void)offset;
    (void)size;
    atomic_fetch_add(&s->calls, 1);
    if (vcpu != s->expect)
        atomic_fetch_add(&s->errors, 1);
    uint64_t rip = 0, rbx = 0;
    if (hvc_vcpu_get_reg(vcpu, HVC_X86_RIP, &rip) < 0 ||
        hvc_vcpu_get_reg(vcpu, HVC_X86_RBX, &rbx) < 0 ||
        hvc_vcpu_set_reg(vcpu, HVC_X86_RBX, rbx) < 0)
        atomic_fetch_add(&s->errors, 1);
    s->rip = rip;
    if (!is_write)
        memset(data, 0, size);
    return 0;
}

Test(vcpu_thread, callback_calls_its_own_vcpu)
{
    unsigned long before = hvi_kvm_strict_violations();
    struct cb_state s = {0};
    hvt_load(t.vm, "io64");
    memset(&s, 0, sizeof(s));
    HVT_OK(hvc_vm_add_io_handler(t.vm, HVC_IO_PIO, PORT_DATA, 1,
                                 own_vcpu_handler, &s));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    s.expect = v;
    struct runner r = {.v = v};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_once, &r), 0);
    pthread_join(th, NULL);
    cr_assert_eq(r.rc, 0, "run: %s", r.msg);
    cr_assert_gt(atomic_load(&s.calls), 0, "the handler never ran");
    cr_assert_eq(atomic_load(&s.errors), 0);
    cr_assert(s.rip >= GUEST_LOAD && s.rip < GUEST_LOAD + 0x1000);
    cr_assert_eq(hvi_kvm_strict_violations(), before);
}

/* The vCPU runs (and its runner thread ends) elsewhere; main destroys it,
 * then creates it again under the same id and runs it on main. */
Test(vcpu_thread, destroy_from_other_thread)
{
    unsigned long before = hvi_kvm_strict_violations();
    load_long64(t.vm);
    /* KVM keeps a destroyed vCPU's id until the VM goes: new ids */
    for (uint32_t i = 0; i < 3; i++) {
        hvc_vcpu *v = hvt_vcpu(t.vm, i, HVC_X86_MODE_LONG64, 0);
        struct runner r = {.v = v};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, run_once, &r), 0);
        pthread_join(th, NULL);
        cr_assert_eq(r.rc, 0, "run: %s", r.msg);
        cr_assert_eq(r.data, 0x64);
        HVT_OK(hvc_vcpu_destroy(v));
    }
    hvc_vcpu *v = hvt_vcpu(t.vm, 3, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x64);
    cr_assert_eq(hvi_kvm_strict_violations(), before);
}

struct kicker {
    hvc_vcpu *v;
    atomic_int stop;
    unsigned long kicks;
};

static void *kick_loop(void *p)
{
    struct kicker *k = p;
    while (!atomic_load(&k->stop)) {
        hvc_vcpu_kick(k->v);
        k->kicks++;
    }
    return NULL;
}

/* Kicks race the first run and every run after: each run returns (a kick
 * or the guest's end) and nothing is called off the vCPU's thread. */
Test(vcpu_thread, kicks_race_first_run)
{
    unsigned long before = hvi_kvm_strict_violations();
    load_long64(t.vm);
    for (uint32_t round = 0; round < 5; round++) {
        hvc_vcpu *v = hvt_vcpu(t.vm, round, HVC_X86_MODE_LONG64, 0);
        struct kicker k = {.v = v};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, kick_loop, &k), 0);
        int done = 0, kicked = 0;
        for (int i = 0; i < 100000 && !done; i++) {
            const hvc_exit *e;
            HVT_OK(hvc_vcpu_run(v, &e));
            if (e->reason == HVC_EXIT_KICK) {
                kicked++;
                if (kicked == 50)
                    atomic_store(&k.stop, 1);
                continue;
            }
            cr_assert_eq(e->reason, HVC_EXIT_PIO);
            cr_assert_eq(e->u.io.port, PORT_DONE);
            cr_assert_eq(*(uint8_t *)e->u.io.data, 0x64);
            done = 1;
        }
        atomic_store(&k.stop, 1);
        pthread_join(th, NULL);
        cr_assert(done, "the guest never finished");
        cr_assert_gt(kicked, 0, "no run returned for a kick (%lu sent)",
                     k.kicks);
        HVT_OK(hvc_vcpu_destroy(v));
    }
    cr_assert_eq(hvi_kvm_strict_violations(), before);
}

/* A handler on vCPU 0's thread reads and writes the registers of vCPU 1,
 * which is not running: the call goes from one vCPU thread to the other
 * (the waiting vCPU thread keeps serving its own queue meanwhile). */
struct cross {
    hvc_vcpu *other;
    atomic_int calls;
    atomic_int errors;
};

static int cross_handler(void *opaque, hvc_vcpu *vcpu, uint64_t offset,
                         void *data, uint32_t size, int is_write)
{
    struct cross *c = opaque;
    (void)vcpu;
    (void)offset;
    (void)size;
    uint64_t rbx = 0;
    atomic_fetch_add(&c->calls, 1);
    if (hvc_vcpu_get_reg(c->other, HVC_X86_RBX, &rbx) < 0 ||
        hvc_vcpu_set_reg(c->other, HVC_X86_RBX, rbx + 1) < 0)
        atomic_fetch_add(&c->errors, 1);
    if (!is_write)
        memset(data, 0, size);
    return 0;
}

Test(vcpu_thread, handler_calls_another_vcpu)
{
    unsigned long before = hvi_kvm_strict_violations();
    hvt_load(t.vm, "io64");
    static struct cross c;
    memset(&c, 0, sizeof(c));
    HVT_OK(hvc_vm_add_io_handler(t.vm, HVC_IO_PIO, PORT_DATA, 1,
                                 cross_handler, &c));
    hvc_vcpu *v0 = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    hvc_vcpu *v1 = hvt_vcpu(t.vm, 1, HVC_X86_MODE_LONG64, 0);
    c.other = v1;
    HVT_OK(hvc_vcpu_set_reg(v1, HVC_X86_RBX, 0));
    struct runner r0 = {.v = v0};
    pthread_t t0;
    cr_assert_eq(pthread_create(&t0, NULL, run_once, &r0), 0);
    pthread_join(t0, NULL);
    cr_assert_eq(r0.rc, 0, "run: %s", r0.msg);
    int calls = atomic_load(&c.calls);
    cr_assert_gt(calls, 0);
    cr_assert_eq(atomic_load(&c.errors), 0);
    cr_assert_eq(hvt_reg(v1, HVC_X86_RBX), (uint64_t)calls);
    cr_assert_eq(hvi_kvm_strict_violations(), before);
}

/* The strict mode does catch a call made off the vCPU's thread: this one
 * bypasses the core and calls the backend op directly from here. */
Test(vcpu_thread, strict_mode_counts_violations)
{
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    unsigned long before = hvi_kvm_strict_violations();
    hvc_reg id = HVC_X86_RIP;
    uint64_t rip = 0;
    cr_assert_eq(v->vm->ops->vcpu_get_regs(v->priv, &id, &rip, 1), -EPERM);
    cr_assert(strstr(hvc_last_error(), "off the vCPU's thread"), "%s",
              hvc_last_error());
    cr_assert_eq(hvi_kvm_strict_violations(), before + 1);
    /* through the core: forwarded, and no violation */
    HVT_OK(hvc_vcpu_get_reg(v, HVC_X86_RIP, &rip));
    cr_assert_eq(rip, GUEST_LOAD);
    cr_assert_eq(hvi_kvm_strict_violations(), before + 1);
}
