/* Live migration (hvc_vm_migrate_send/receive) of the counter guest,
 * running on its vCPU threads, to a forked child over a socket pair: the
 * child goes on with the next number, guest RAM hashes the same on both
 * sides at the switchover, and every failure before the switchover leaves
 * the source counting. */
#include "migtest.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const uint8_t key_a[HVC_STREAM_KEY_SIZE] = {1, 2, 3};
static const uint8_t key_b[HVC_STREAM_KEY_SIZE] = {3, 2, 1};

/* The destination: receives, hashes its RAM before any vCPU runs, counts
 * five more on every vCPU, and reports hash and console on @p report. */
static void destination(int sock, int report, const uint8_t *key)
{
    migt r;
    int e = migt_receive_fd(&r, sock, key, NULL);
    if (e != 0) {
        fprintf(stderr, "destination: %s\n", hvc_last_error());
        _exit(20);
    }
    uint64_t h = migt_ram_hash(r.vm), most = 0;
    for (uint32_t i = 0; i < r.nr_vcpus; i++)
        if (migt_count(&r, i) > most)
            most = migt_count(&r, i);
    if (migt_run_until(&r, most + 5) || migt_check(&r, most + 5))
        _exit(21);
    migt_write_all(report, &h, sizeof(h));
    migt_write_all(report, &r.first_out_ns, sizeof(r.first_out_ns));
    migt_write_all(report, r.console, r.console_len);
    _exit(0);
}

/* The text holds "count 1" .. "count N" lines and nothing else. */
static void assert_counts(const char *text, uint64_t *last)
{
    uint64_t want = 1;
    const char *p = text;
    while (*p) {
        char line[64];
        int len = snprintf(line, sizeof(line), "count %llu\r\n",
                           (unsigned long long)want);
        cr_assert_eq(strncmp(p, line, (size_t)len), 0,
                     "console at count %llu: \"%.20s\"",
                     (unsigned long long)want, p);
        p += len;
        want++;
    }
    *last = want - 1;
}

static int print_progress(void *opaque, const hvc_migrate_stats *s)
{
    (void)opaque;
    fprintf(stderr,
            "  round %u: %llu pages left, %llu MB/s, %llu pages/s dirtied, "
            "expect %llu us\n",
            s->rounds, (unsigned long long)s->remaining_pages,
            (unsigned long long)(s->throughput_bps >> 20),
            (unsigned long long)s->dirty_pages_per_s,
            (unsigned long long)s->expected_downtime_us);
    return 0;
}

static void live(uint32_t nr_vcpus, const uint8_t *key)
{
    int sv[2], rep[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(pipe(rep), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        close(rep[0]);
        destination(sv[1], rep[1], key);
    }
    close(sv[1]);
    close(rep[1]);

    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, nr_vcpus, NULL);
    migt_start_runners(&m, run);
    migt_wait_counting(&m, 3);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.key = key;
    o.progress = print_progress;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    HVT_OK(hvc_vm_migrate_send(m.vm, sv[0], &o, &st));
    fprintf(stderr,
            "live %u vCPU%s%s: setup %llu ms, total %llu ms, downtime %llu us "
            "(pause %llu, send %llu, ack %llu), %u rounds, %llu+%llu+%llu "
            "pages, %llu+%llu+%llu bytes, mode "
            "0x%x\n",
            nr_vcpus, nr_vcpus > 1 ? "s" : "", key ? " encrypted" : "",
            (unsigned long long)st.setup_ms, (unsigned long long)st.total_ms,
            (unsigned long long)st.downtime_us, (unsigned long long)st.pause_us,
            (unsigned long long)st.final_send_us,
            (unsigned long long)st.ack_wait_us, st.rounds,
            (unsigned long long)st.pages_initial,
            (unsigned long long)st.pages_precopy,
            (unsigned long long)st.pages_final,
            (unsigned long long)st.bytes_initial,
            (unsigned long long)st.bytes_precopy,
            (unsigned long long)st.bytes_final, st.dirty_mode);
    cr_assert_eq(st.completed, 1);
    cr_assert(hvc_vm_is_paused(m.vm));
    /* The source never runs the guest again. */
    HVT_ERR(hvc_vm_resume(m.vm), -EPERM);

    uint64_t h = migt_ram_hash(m.vm), dh = 0, dfirst = 0;
    static char dcons[sizeof(m.console)];
    cr_assert_eq(migt_read_all(rep[0], &dh, sizeof(dh)), sizeof(dh),
                 "the destination reported nothing");
    cr_assert_eq(migt_read_all(rep[0], &dfirst, sizeof(dfirst)), sizeof(dfirst));
    size_t dlen = migt_read_all(rep[0], dcons, sizeof(dcons) - 1);
    dcons[dlen] = 0;
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "destination status 0x%x", status);
    cr_assert_eq(h, dh, "guest RAM differs at the switchover");

    /* The consoles, end to end, count on without a gap or a repeat. */
    cr_assert_lt(m.console_len, sizeof(m.console) - 1,
                 "source console overflowed");
    static char all[2 * sizeof(m.console)];
    snprintf(all, sizeof(all), "%s%s", m.console, dcons);
    uint64_t last, src_last = migt_count(&m, 0);
    assert_counts(all, &last);
    cr_assert_gt(src_last, 0);
    cr_assert_geq(last, src_last + 5);
    /* The pause as the console saw it: from the source's last output to
     * the destination's first (restore, acknowledgement and the first
     * vCPU entry included), against the usual gap between lines. */
    uint64_t lines = src_last > 1 ? src_last - 1 : 1;
    fprintf(
        stderr,
        "  console gap across the switchover: %llu us (a line every %llu "
        "us before)\n",
        (unsigned long long)((dfirst - m.last_out_ns) / 1000u),
        (unsigned long long)((m.last_out_ns - m.first_out_ns) / 1000u / lines));
    /* Parked vCPU threads stay parked: the VM is left for process exit. */
    close(sv[0]);
    close(rep[0]);
}

Test(migration_live, one_vcpu_to_child)
{
    live(1, NULL);
}

Test(migration_live, four_vcpus_to_child)
{
    live(4, NULL);
}

Test(migration_live, encrypted_to_child)
{
    live(2, key_a);
}

/* A failure before the switchover: the source runs on and counts. */
static void assert_runs_on(migt *m, migt_runner *run)
{
    cr_assert(!hvc_vm_is_paused(m->vm));
    migt_assert_counts_on(m, "the source");
    migt_stop_runners(m, run);
    /* A kick stops the guest anywhere in an iteration: finish the next
     * one, then check its pattern pages and error counters. */
    uint64_t n = migt_count(m, 0) + 1;
    cr_assert_eq(migt_run_until(m, n), 0);
    cr_assert_eq(migt_check(m, n), 0);
    migt_close(m);
}

/* The destination dies after reading a little of the stream. */
Test(migration_live, destination_killed)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        static uint8_t buf[16384];
        migt_read_all(sv[1], buf, sizeof(buf));
        raise(SIGKILL);
    }
    close(sv[1]);
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 1, NULL);
    migt_start_runners(&m, run);
    migt_sleep_ms(10);
    int r = hvc_vm_migrate_send(m.vm, sv[0], NULL, NULL);
    cr_assert_lt(r, 0);
    fprintf(stderr, "destination killed: %s\n", hvc_last_error());
    waitpid(pid, NULL, 0);
    assert_runs_on(&m, run);
    close(sv[0]);
}

static int kill_self(void *opaque, const hvc_migrate_stats *s)
{
    (void)opaque;
    (void)s;
    raise(SIGKILL);
    return 0;
}

/* The source dies in pre-copy: the destination says so and has no VM. */
Test(migration_live, source_killed)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        static migt m;
        migt_runner run[MIGT_MAX_VCPUS];
        migt_open(&m, 1, NULL);
        migt_start_runners(&m, run);
        hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
        o.progress = kill_self;
        hvc_vm_migrate_send(m.vm, sv[1], &o, NULL);
        _exit(1);
    }
    close(sv[1]);
    migt d;
    int r = migt_receive_fd(&d, sv[0], NULL, NULL);
    cr_assert_eq(r, -ENODATA, "%d: %s", r, hvc_last_error());
    cr_assert_null(d.vm);
    cr_assert(strstr(hvc_last_error(), "incoming migration"), "%s",
              hvc_last_error());
    fprintf(stderr, "source killed: %s\n", hvc_last_error());
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status));
    hvc_hypervisor_close(d.hv);
    close(sv[0]);
}

/* The destination has the wrong key: it refuses, the source hears why
 * and runs on. */
Test(migration_live, wrong_key)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        migt d;
        int r = migt_receive_fd(&d, sv[1], key_b, NULL);
        _exit(r == -EKEYREJECTED && !d.vm ? 0 : 30);
    }
    close(sv[1]);
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 1, NULL);
    migt_start_runners(&m, run);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.key = key_a;
    int r = hvc_vm_migrate_send(m.vm, sv[0], &o, NULL);
    fprintf(stderr, "wrong key: %s\n", hvc_last_error());
    cr_assert_eq(r, -EKEYREJECTED, "%d: %s", r, hvc_last_error());
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x",
              status);
    assert_runs_on(&m, run);
    close(sv[0]);
}

/* A stream that stops early (the source closed the connection): no VM. */
Test(migration_live, truncated_stream)
{
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 2), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    migt_write_all(sv[0], s, 100); /* the header and a piece of CONFIG */
    shutdown(sv[0], SHUT_WR);
    hvc_vm *vm = NULL;
    HVT_ERR(hvc_vm_migrate_receive(m.hv, sv[1], NULL, &vm), -ENODATA);
    cr_assert_null(vm);
    /* The refusal went back to the sender. */
    uint8_t ack[16];
    cr_assert_eq(migt_read_all(sv[0], ack, sizeof(ack)), sizeof(ack));
    cr_assert_eq(memcmp(ack, "HVCMACK1", 8), 0);
    free(s);
    close(sv[0]);
    close(sv[1]);
    migt_close(&m);
}

struct canceller {
    hvc_vm *vm;
    unsigned ms;
};

static void *cancel_later(void *arg)
{
    struct canceller *c = arg;
    migt_sleep_ms(c->ms);
    hvc_vm_migrate_cancel(c->vm);
    return NULL;
}

/* A destination that never reads: a cancel from another thread, or the
 * timeout, ends the migration and the source runs on. */
static void stalled(bool cancel)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 1, NULL);
    migt_start_runners(&m, run);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    pthread_t t;
    struct canceller c = {m.vm, 50};
    if (cancel)
        cr_assert_eq(pthread_create(&t, NULL, cancel_later, &c), 0);
    else
        o.timeout_ms = 50;
    int r = hvc_vm_migrate_send(m.vm, sv[0], &o, NULL);
    fprintf(stderr, "stalled: %s\n", hvc_last_error());
    cr_assert_eq(r, cancel ? -ECANCELED : -ETIMEDOUT, "%d: %s", r,
                 hvc_last_error());
    if (cancel)
        pthread_join(t, NULL);
    assert_runs_on(&m, run);
    close(sv[0]);
    close(sv[1]);
}

Test(migration_live, cancel_from_another_thread)
{
    stalled(true);
}

Test(migration_live, timeout)
{
    stalled(false);
}

/* A guest that never exits and rewrites 2 MiB (512 pages) as fast as it
 * can (tests/guests/dirtyloop64.S): pre-copy meets a dirty set that
 * never shrinks, switches over within the rounds it has, and the
 * destination holds exactly the source's memory. */
#define DIRTY_BASE 0x200000u /* above the page tables, to the end of RAM */
#define DIRTY_PAGES 512u

static void busy_destination(int sock, int report)
{
    migt r;
    if (migt_receive_fd(&r, sock, NULL, NULL) != 0) {
        fprintf(stderr, "destination: %s\n", hvc_last_error());
        _exit(20);
    }
    uint64_t h = migt_ram_hash(r.vm), one = 1;
    /* It goes on rewriting, then stops when told. */
    if (hvc_vm_write(r.vm, DATA_IN + 16, &one, sizeof(one)) < 0)
        _exit(21);
    const hvc_exit *e;
    if (hvc_vcpu_run(r.vcpu[0], &e) < 0 || e->reason != HVC_EXIT_PIO ||
        e->u.io.port != PORT_DONE || *(uint8_t *)e->u.io.data != 0x6c)
        _exit(22);
    migt_write_all(report, &h, sizeof(h));
    _exit(0);
}

Test(migration_live, busy_guest_without_exits)
{
    int sv[2], rep[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(pipe(rep), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        close(rep[0]);
        busy_destination(sv[1], rep[1]);
    }
    close(sv[1]);
    close(rep[1]);
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 1, NULL);
    hvt_load(m.vm, "dirtyloop64"); /* over the counter, at the same entry */
    uint64_t in[3] = {DIRTY_BASE, DIRTY_PAGES, 0};
    HVT_OK(hvc_vm_write(m.vm, DATA_IN, in, sizeof(in)));
    migt_start_runners(&m, run);
    migt_sleep_ms(20);
    uint64_t before = 0;
    HVT_OK(hvc_vm_read(m.vm, DIRTY_BASE, &before, sizeof(before)));
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.max_rounds = 8;
    o.progress = print_progress;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    HVT_OK(hvc_vm_migrate_send(m.vm, sv[0], &o, &st));
    fprintf(stderr,
            "busy: total %llu ms, downtime %llu us, %u rounds, %llu+%llu+%llu "
            "pages\n",
            (unsigned long long)st.total_ms, (unsigned long long)st.downtime_us,
            st.rounds, (unsigned long long)st.pages_initial,
            (unsigned long long)st.pages_precopy,
            (unsigned long long)st.pages_final);
    uint64_t h = migt_ram_hash(m.vm), dh = 0;
    cr_assert_eq(migt_read_all(rep[0], &dh, sizeof(dh)), sizeof(dh),
                 "the destination reported nothing");
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "destination status 0x%x", status);
    cr_assert_eq(h, dh, "guest RAM differs at the switchover");
    cr_assert_leq(st.rounds, 9);
    uint64_t pass = 0;
    HVT_OK(hvc_vm_read(m.vm, DIRTY_BASE, &pass, sizeof(pass)));
    fprintf(stderr,
            "busy: the guest made %llu passes, %llu during the "
            "migration\n",
            (unsigned long long)pass, (unsigned long long)(pass - before));
    close(sv[0]);
    close(rep[0]);
}

/* Refusals that touch nothing: NULL, a paused VM, bad options. */
Test(migration_live, refusals)
{
    migt m;
    migt_open(&m, 1, NULL);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    HVT_ERR(hvc_vm_migrate_send(NULL, sv[0], NULL, NULL), -EINVAL);
    HVT_ERR(hvc_vm_migrate_send(m.vm, -1, NULL, NULL), -EINVAL);
    HVT_ERR(hvc_vm_migrate_cancel(NULL), -EINVAL);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.flags = 1u << 7; /* no such flag (bits 0, 1 and 8 are taken) */
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    HVT_OK(hvc_vm_pause(m.vm));
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], NULL, NULL), -EBUSY);
    HVT_OK(hvc_vm_resume(m.vm));
    hvc_vm *vm = NULL;
    HVT_ERR(hvc_vm_migrate_receive(m.hv, -1, NULL, &vm), -EINVAL);
    /* Nothing was written on the connection. */
    shutdown(sv[0], SHUT_WR);
    char c;
    cr_assert_eq(read(sv[1], &c, 1), 0);
    close(sv[0]);
    close(sv[1]);
    /* And the VM still runs. */
    cr_assert_eq(migt_run_until(&m, 3), 0);
    cr_assert_eq(migt_check(&m, 3), 0);
    migt_close(&m);
}
