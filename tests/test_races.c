/* The races the thread rules name: kicks against a vCPU's first run, a
 * kick from a signal handler while pauses and kicks are in progress, calls
 * from the VM's event thread that would deadlock, and completing a read
 * across a concurrent save. */
#include "hvtest.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct runner {
    hvc_vcpu *vcpu;
    int rc;
    uint32_t reason;
    atomic_int done;
};

static void *run_once(void *arg)
{
    struct runner *r = arg;
    const hvc_exit *e = NULL;
    r->rc = hvc_vcpu_run(r->vcpu, &e);
    r->reason = r->rc == 0 ? e->reason : 0;
    atomic_store(&r->done, 1);
    return NULL;
}

/* Before the fix, the vCPU counted as running before the backend knew its
 * thread, so a kick in that window signalled a zero or exited thread. Here
 * a kicker hammers vCPUs while each run starts on a new thread: every run
 * must come back with HVC_EXIT_KICK, and nothing may crash. A new vCPU
 * every 500 runs (KVM never frees a vCPU id, so each has its own)
 * gives the window its worst case: no runner thread known yet. */
/* One timeout for the suite: a deadlock here must fail, not hang CI. */
TestSuite(races, .timeout = 240);

Test(races, kicks_against_first_runs)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "spin64");
    enum { RUNS = 10000, PER_VCPU = 500 };
    hvc_vcpu *vcpu = NULL;
    int kicks_landed_early = 0;
    for (int i = 0; i < RUNS; i++) {
        if (i % PER_VCPU == 0) {
            if (vcpu)
                HVT_OK(hvc_vcpu_destroy(vcpu));
            vcpu = hvt_vcpu(t.vm, (uint32_t)(i / PER_VCPU), HVC_X86_MODE_LONG64,
                            0);
        }
        struct runner r = {vcpu, -1, 0, 0};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, run_once, &r), 0);
        /* Kick as fast as possible while the thread is being born,
         * entering hvc_vcpu_run(), and running. */
        int n = 0;
        while (!atomic_load(&r.done)) {
            HVT_OK(hvc_vcpu_kick(vcpu));
            /* now and then let the runner have the CPU: on a loaded 2-core
             * host a kicker that never yields starved it (a 240 s run) */
            if (++n % 64 == 0)
                sched_yield();
        }
        pthread_join(th, NULL);
        cr_assert_eq(r.rc, 0, "run %d: %d (%s)", i, r.rc, hvc_last_error());
        cr_assert_eq(r.reason, HVC_EXIT_KICK, "run %d: exit %u", i, r.reason);
        kicks_landed_early += n <= 1;
    }
    HVT_OK(hvc_vcpu_destroy(vcpu));
    /* The loop must really have raced: most runs see many kicks. */
    cr_assert_lt(kicks_landed_early, RUNS, "no run overlapped a kick");
    hvt_close(&t);
}

/* hvc_vcpu_kick() is async-signal-safe: a handler calls it while the
 * interrupted thread was itself inside hvc_vcpu_kick() or hvc_vm_pause().
 * A lock or a wait for another kicker would hang this test. */
static hvc_vcpu *sig_vcpu;
static atomic_long sig_kicks;

static void kick_from_handler(int sig)
{
    (void)sig;
    int saved = errno;
    if (hvc_vcpu_kick(sig_vcpu) == 0)
        atomic_fetch_add(&sig_kicks, 1);
    errno = saved;
}

struct storm {
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    atomic_int stop;
    atomic_long runs, kicks, pauses; /* each written by one thread */
    /* Failures seen by the threads, asserted on the test's own thread
     * (Criterion's assertions belong there). */
    atomic_int failed;
    char why[256];
};

static void storm_fail(struct storm *s, const char *what, int r,
                       uint32_t reason)
{
    if (atomic_exchange(&s->failed, 1) == 0)
        snprintf(s->why, sizeof(s->why), "%s: %d, exit %u (%s)", what, r,
                 reason, hvc_last_error());
    atomic_store(&s->stop, 1);
}

static void *storm_runner(void *arg)
{
    struct storm *s = arg;
    while (!atomic_load(&s->stop)) {
        const hvc_exit *e;
        int r = hvc_vcpu_run(s->vcpu, &e);
        if (r != 0 || e->reason != HVC_EXIT_KICK) {
            storm_fail(s, "hvc_vcpu_run", r, r == 0 ? e->reason : 0);
            break;
        }
        s->runs++;
    }
    return NULL;
}

static void *storm_kicker(void *arg)
{
    struct storm *s = arg;
    while (!atomic_load(&s->stop)) {
        hvc_vcpu_kick(s->vcpu);
        s->kicks++;
    }
    return NULL;
}

static void *storm_pauser(void *arg)
{
    struct storm *s = arg;
    while (!atomic_load(&s->stop)) {
        int r = hvc_vm_pause(s->vm);
        if (r != 0) {
            storm_fail(s, "hvc_vm_pause", r, 0);
            break;
        }
        if ((r = hvc_vm_resume(s->vm)) != 0) {
            storm_fail(s, "hvc_vm_resume", r, 0);
            break;
        }
        s->pauses++;
    }
    return NULL;
}

Test(races, kick_from_a_signal_handler_during_kicks_and_pauses)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "spin64");
    struct storm s = {.vm = t.vm,
                      .vcpu = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0)};
    sig_vcpu = s.vcpu;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_from_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    pthread_t run, kick, pause;
    pthread_create(&run, NULL, storm_runner, &s);
    pthread_create(&kick, NULL, storm_kicker, &s);
    pthread_create(&pause, NULL, storm_pauser, &s);
    /* Two seconds at least; on a loaded host, until each side made
     * its count (a livelock still fails, 20 s on). */
    double start = now_s(), end = start + 2.0;
    long sent = 0;
    while (now_s() < end || ((s.runs <= 100 || s.pauses <= 100 ||
                              atomic_load(&sig_kicks) <= 1000) &&
                             now_s() < start + 20.0)) {
        /* Into the kicker and the pauser, in the middle of their calls. */
        pthread_kill(kick, SIGUSR1);
        pthread_kill(pause, SIGUSR1);
        sent += 2;
        usleep(50);
    }
    atomic_store(&s.stop, 1);
    pthread_join(kick, NULL);
    pthread_join(pause, NULL);
    /* The runner may be in the guest with nobody kicking any more. */
    while (pthread_tryjoin_np(run, NULL) != 0) {
        hvc_vcpu_kick(s.vcpu);
        usleep(1000);
    }
    signal(SIGUSR1, SIG_DFL);
    cr_log_info("%ld runs, %ld kicks, %ld pauses, %ld signals, %ld kicks "
                "from handlers",
                s.runs, s.kicks, s.pauses, sent, atomic_load(&sig_kicks));
    cr_assert_eq(atomic_load(&s.failed), 0, "%s", s.why);
    cr_assert_gt(s.runs, 100);
    cr_assert_gt(s.pauses, 100);
    cr_assert_gt(atomic_load(&sig_kicks), 1000);
    hvt_close(&t);
}

/* A pause parks the runner inside hvc_vcpu_run(); a kick takes it out at
 * once, even while the pause lasts. */
Test(races, kick_releases_a_parked_runner)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "spin64");
    struct runner r = {hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0), -1, 0, 0};
    HVT_OK(hvc_vm_pause(t.vm));
    pthread_t th;
    pthread_create(&th, NULL, run_once, &r);
    usleep(20000);
    cr_assert_eq(atomic_load(&r.done), 0, "a paused vCPU ran to an exit");
    double t0 = now_s();
    HVT_OK(hvc_vcpu_kick(r.vcpu));
    pthread_join(th, NULL);
    cr_assert_lt(now_s() - t0, 0.5);
    cr_assert_eq(r.reason, HVC_EXIT_KICK);
    HVT_OK(hvc_vm_resume(t.vm));
    hvt_close(&t);
}

/* Calls from an fd-watch callback that would wait on the event thread
 * itself refuse with -EDEADLK and a message, and leave the VM usable. */
struct from_loop {
    hvc_vm *vm;
    hvc_device *dev;
    int pause, remove, reset, destroy;
    char msg[4][256];
    int pipe[2];
    atomic_int done;
};

static void on_readable(void *opaque, int fd, uint32_t events)
{
    struct from_loop *f = opaque;
    (void)events;
    char c;
    if (read(fd, &c, 1) != 1)
        return;
    f->pause = hvc_vm_pause(f->vm);
    snprintf(f->msg[0], sizeof(f->msg[0]), "%s", hvc_last_error());
    f->remove = hvc_vm_remove_device(f->vm, f->dev);
    snprintf(f->msg[1], sizeof(f->msg[1]), "%s", hvc_last_error());
    f->reset = hvc_vm_reset_devices(f->vm);
    snprintf(f->msg[2], sizeof(f->msg[2]), "%s", hvc_last_error());
    f->destroy = hvc_vm_destroy(f->vm);
    snprintf(f->msg[3], sizeof(f->msg[3]), "%s", hvc_last_error());
    atomic_store(&f->done, 1);
}

Test(races, event_thread_calls_that_would_deadlock_refuse)
{
    hvt t;
    hvt_open(&t, 0);
    struct from_loop f = {.vm = t.vm};
    HVT_OK(hvc_port80_create(t.vm, &f.dev));
    cr_assert_eq(pipe(f.pipe), 0);
    HVT_OK(hvc_vm_watch_fd(t.vm, f.pipe[0], HVC_FD_READABLE, on_readable, &f));
    cr_assert_eq(write(f.pipe[1], "x", 1), 1);
    for (int i = 0; i < 5000 && !atomic_load(&f.done); i++)
        usleep(1000);
    cr_assert(atomic_load(&f.done), "the callback never returned");
    int got[4] = {f.pause, f.remove, f.reset, f.destroy};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(got[i], -EDEADLK, "call %d: %d (%s)", i, got[i], f.msg[i]);
        cr_assert(strstr(f.msg[i], "event thread"), "call %d: %s", i, f.msg[i]);
    }
    /* Outside the callback the same calls work. */
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    HVT_OK(hvc_vm_reset_devices(t.vm));
    HVT_OK(hvc_vm_unwatch_fd(t.vm, f.pipe[0]));
    HVT_OK(hvc_vm_remove_device(t.vm, f.dev));
    HVT_ERR(hvc_vm_remove_device(t.vm, f.dev), -ENOENT);
    close(f.pipe[0]);
    close(f.pipe[1]);
    hvt_close(&t);
}

/* Lock order: an event callback (holding the event lock) looks devices up
 * (the device lock) while another thread adds and removes doorbells, which
 * used to watch their notifier with the device lock held: an ABBA deadlock
 * that this test hung on. */
static void ignore_ring(void *opaque, const hvc_doorbell *db)
{
    (void)opaque, (void)db;
}
#define NULL_DOORBELL_FN ignore_ring

struct lookups {
    hvc_vm *vm;
    int pipe[2];
    atomic_long calls;
    atomic_int stop;
    bool slow;
};

static void look_up_devices(void *opaque, int fd, uint32_t events)
{
    (void)events;
    struct lookups *l = opaque;
    char buf[64];
    if (read(fd, buf, sizeof(buf)) <= 0)
        return;
    hvc_device *d;
    size_t n;
    if (l->slow)
        usleep(300); /* hold the event lock a while, to widen the race */
    hvc_vm_find_device(l->vm, "none", &d);
    hvc_vm_list_devices(l->vm, NULL, 0, &n);
    atomic_fetch_add(&l->calls, 1);
}

static void *poke(void *arg)
{
    struct lookups *l = arg;
    /* Keep callbacks coming for as long as doorbells come and go. */
    while (!atomic_load(&l->stop)) {
        if (write(l->pipe[1], "x", 1) != 1)
            break;
        usleep(50);
    }
    return NULL;
}

Test(races, doorbells_added_while_event_callbacks_look_up_devices)
{
    hvt t;
    hvt_open(&t, 0);
    struct lookups l = {.vm = t.vm};
    cr_assert_eq(pipe(l.pipe), 0);
    HVT_OK(
        hvc_vm_watch_fd(t.vm, l.pipe[0], HVC_FD_READABLE, look_up_devices, &l));
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, poke, &l), 0);
    hvc_doorbell db = {.space = HVC_IO_MMIO, .length = 4, .addr = 0xd0000000};
    /* At least 500 rounds, and on until callbacks ran beside them: where
     * the backend has no ioeventfd (the core's fallback), a round is so
     * short that 500 can end before the poking thread first runs. */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int rounds = 0;; rounds++) {
        HVT_OK(hvc_vm_add_doorbell(t.vm, &db, NULL_DOORBELL_FN, NULL));
        HVT_ERR(hvc_vm_add_doorbell(t.vm, &db, NULL_DOORBELL_FN, NULL),
                -EEXIST);
        HVT_OK(hvc_vm_remove_doorbell(t.vm, &db));
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((rounds >= 500 && atomic_load(&l.calls) >= 20) ||
            now.tv_sec - t0.tv_sec > 20)
            break;
    }
    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    HVT_OK(hvc_vm_unwatch_fd(t.vm, l.pipe[0]));
    cr_assert_gt(atomic_load(&l.calls), 0, "no callback ran");
    close(l.pipe[0]);
    close(l.pipe[1]);
    hvt_close(&t);
}

/* Lock order again: hvc_vm_reset_devices() resets a UART whose receiver
 * was full, and the reset watches its input again, while an event
 * callback looks devices up. The reset used to hold the device-list lock
 * across that watch (which took the event lock): ABBA with the callback. */
Test(races, device_resets_while_event_callbacks_look_up_devices)
{
    hvt t;
    hvt_open(&t, 0);
    struct lookups l = {.vm = t.vm, .slow = true};
    cr_assert_eq(pipe(l.pipe), 0);
    int in[2];
    cr_assert_eq(pipe(in), 0);
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.input_fd = in[0];
    so.name = "com1";
    HVT_OK(hvc_serial_create(t.vm, &so, NULL));
    HVT_OK(
        hvc_vm_watch_fd(t.vm, l.pipe[0], HVC_FD_READABLE, look_up_devices, &l));
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, poke, &l), 0);
    static const char burst[64] = {0};
    for (int round = 0; round < 100; round++) {
        /* More than the FIFO holds: the UART stops watching its input,
         * and the reset below empties the FIFO and watches again. */
        cr_assert_eq(write(in[1], burst, sizeof(burst)),
                     (ssize_t)sizeof(burst));
        usleep(200);
        HVT_OK(hvc_vm_reset_devices(t.vm));
    }
    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    HVT_OK(hvc_vm_unwatch_fd(t.vm, l.pipe[0]));
    cr_assert_gt(atomic_load(&l.calls), 0, "no callback ran");
    hvt_close(&t);
    close(l.pipe[0]);
    close(l.pipe[1]);
    close(in[0]);
    close(in[1]);
}

/* An unclaimed read around a save: the save takes in what was completed
 * before it, the source and the restored guest read the same value, and a
 * completion after the save fails with -EALREADY. The source finishes and
 * is destroyed before the stream is restored: a backend may allow one VM
 * per process (HVC_CAP_MAX_VMS 1, Hypervisor.framework), and what is
 * compared, the value each guest read, does not need both at once. */
static int save_to(hvc_vm *vm, int fd)
{
    int r = hvc_vm_pause(vm);
    if (r == 0) {
        r = hvc_vm_save_fd(vm, fd, NULL);
        hvc_vm_resume(vm);
    }
    return r;
}

static uint8_t restored_value(hvt *t, int fd)
{
    HVT_OK(hvc_vm_destroy(t->vm)); /* the source, done with */
    t->vm = NULL;
    t->ram = NULL;
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    hvc_vm *vm;
    HVT_OK(hvc_vm_restore_fd(t->hv, fd, NULL, &vm));
    hvc_vcpu *v;
    HVT_OK(hvc_vm_get_vcpu(vm, 0, &v));
    cr_assert_eq(hvt_run_done(v), 0x11);
    uint8_t got = 0;
    HVT_OK(hvc_vm_read(vm, DATA_OUT, &got, 1));
    HVT_OK(hvc_vm_destroy(vm));
    return got;
}

static const hvc_exit *to_the_read(hvc_vcpu *v)
{
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(v, &e));
    cr_assert_eq(e->reason, HVC_EXIT_PIO);
    cr_assert_eq(e->u.io.port, PORT_UNCLAIMED_IN);
    cr_assert_eq(e->u.io.is_write, 0);
    return e;
}

Test(races, complete_io_around_a_save)
{
    for (int completed_first = 0; completed_first < 2; completed_first++) {
        hvt t;
        hvt_open(&t, 0);
        hvt_load(t.vm, "read_once64");
        hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
        to_the_read(v);
        uint8_t value = 0x5a;
        if (completed_first)
            HVT_OK(hvc_vcpu_complete_io(v, &value, 1));
        int fd = memfd_create("snap", MFD_CLOEXEC);
        cr_assert_geq(fd, 0);
        HVT_OK(save_to(t.vm, fd));
        uint8_t want = completed_first ? 0x5a : 0xff;
        if (!completed_first) {
            HVT_ERR(hvc_vcpu_complete_io(v, &value, 1), -EALREADY);
            cr_assert(strstr(hvc_last_error(), "save"), "%s", hvc_last_error());
        }
        /* The source goes on with what the save took in. */
        cr_assert_eq(hvt_run_done(v), 0x11);
        uint8_t got = 0;
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &got, 1));
        cr_assert_eq(got, want, "source read 0x%x", got);
        cr_assert_eq(restored_value(&t, fd), want);
        close(fd);
        hvt_close(&t);
    }
}

/* complete_io() from the vCPU's thread while another thread saves, many
 * times: each save and the source agree on the value, never a mix. */
struct completer {
    hvc_vcpu *vcpu;
    atomic_int go;
    int rc;
};

static void *complete_now(void *arg)
{
    struct completer *c = arg;
    while (!atomic_load(&c->go))
        ;
    uint8_t value = 0x5a;
    c->rc = hvc_vcpu_complete_io(c->vcpu, &value, 1);
    return NULL;
}

Test(races, complete_io_racing_a_save)
{
    int seen[2] = {0, 0};
    for (int i = 0; i < 40; i++) {
        hvt t;
        hvt_open(&t, 0);
        hvt_load(t.vm, "read_once64");
        hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
        to_the_read(v);
        int fd = memfd_create("snap", MFD_CLOEXEC);
        struct completer c = {v, 0, 1};
        pthread_t th;
        pthread_create(&th, NULL, complete_now, &c);
        atomic_store(&c.go, 1);
        HVT_OK(save_to(t.vm, fd));
        pthread_join(th, NULL);
        cr_assert(c.rc == 0 || c.rc == -EALREADY, "%d", c.rc);
        uint8_t want = c.rc == 0 ? 0x5a : 0xff;
        seen[c.rc == 0]++;
        cr_assert_eq(hvt_run_done(v), 0x11);
        uint8_t got = 0;
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &got, 1));
        cr_assert_eq(got, want, "run %d: source read 0x%x", i, got);
        cr_assert_eq(restored_value(&t, fd), want, "run %d", i);
        close(fd);
        hvt_close(&t);
    }
    cr_log_info("completed before the save %d times, after %d", seen[1],
                seen[0]);
}
