/* Live migration's transport (src/migration/transport.c, tls.c,
 * throttle.c): unix: and tcp: addresses, TCP over loopback with and
 * without TLS (certificates made at test time with the openssl command,
 * never stored), refused certificates, the bandwidth limit and the
 * statistics as JSON. The guest is the counter (tests/migtest.h),
 * migrated to a forked child. */
#include "migtest.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(migration_transport, .timeout = 240);

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A TCP listener on 127.0.0.1 at a port the kernel picks; its address. */
/* The destination, in a child: accepts one connection on @l, receives
 * with @tls, counts five more and exits 0, or exits with 10 + the
 * negated errno (at most 255) and the message on stderr. Its console goes
 * to @report. */
static const uint8_t *dest_key; /* the destination's stream key */

static void destination(int l, const hvc_migrate_tls *tls, int report)
{
    int fd = accept(l, NULL, NULL);
    if (fd < 0)
        _exit(3);
    static migt r;
    int e = migt_receive_tls(&r, fd, tls, dest_key);
    if (e != 0) {
        fprintf(stderr, "destination: %s\n", hvc_last_error());
        _exit(-e > 200 ? 200 : -e);
    }
    uint64_t most = migt_count(&r, 0);
    if (migt_run_until(&r, most + 5) || migt_check(&r, most + 5))
        _exit(2);
    if (write(report, r.console, r.console_len) < 0)
        _exit(4);
    _exit(0);
}

struct child {
    pid_t pid;
    int report; /* the destination's console */
};

static struct child fork_destination(int l, const hvc_migrate_tls *tls)
{
    int rep[2];
    cr_assert_eq(pipe(rep), 0);
    struct child c = {hvt_fork(), rep[0]};
    cr_assert_geq(c.pid, 0);
    if (c.pid == 0) {
        close(rep[0]);
        destination(l, tls, rep[1]);
    }
    close(rep[1]);
    close(l);
    return c;
}

/* The child's exit status. */
static int child_status(struct child *c)
{
    int st;
    cr_assert_eq(waitpid(c->pid, &st, 0), c->pid);
    cr_assert(WIFEXITED(st), "destination died: 0x%x", st);
    return WEXITSTATUS(st);
}

/* The console of source then destination counts on without a gap. */
static void assert_continues(migt *m, struct child *c)
{
    static char dcons[1 << 16], all[1 << 17];
    size_t got = 0;
    for (ssize_t n;
         (n = read(c->report, dcons + got, sizeof(dcons) - 1 - got)) > 0;)
        got += (size_t)n;
    dcons[got] = 0;
    close(c->report);
    cr_assert_eq(child_status(c), 0, "the destination failed");
    snprintf(all, sizeof(all), "%.*s%s", (int)m->console_len, m->console,
             dcons);
    uint64_t want = 1;
    for (const char *p = all; *p; want++) {
        char line[64];
        int len = snprintf(line, sizeof(line), "count %llu\r\n",
                           (unsigned long long)want);
        cr_assert_eq(strncmp(p, line, (size_t)len), 0,
                     "console at count %llu: \"%.20s\"",
                     (unsigned long long)want, p);
        p += len;
    }
    cr_assert_geq(want - 1, migt_count(m, 0) + 5);
}

/* A failure before the switchover: the source counts on. */
static void assert_runs_on(migt *m, migt_runner *run)
{
    cr_assert(!hvc_vm_is_paused(m->vm));
    migt_assert_counts_on(m, "the source");
    migt_stop_runners(m, run);
    uint64_t n = migt_count(m, 0) + 1;
    cr_assert_eq(migt_run_until(m, n), 0);
    cr_assert_eq(migt_check(m, n), 0);
}

/* Migrates the counter guest over TCP on loopback, with @so's TLS on the
 * source and @dtls on the destination; the send's result. */
#define BIG_GPA 0x10000000ull
#define BIG_LEN (24ull << 20)

/* 24 MiB more of RAM, full of data (no zero page). */
static void add_big(migt *m)
{
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.guest_addr = BIG_GPA;
    mo.length = BIG_LEN;
    hvc_memory_region *r;
    HVT_OK(hvc_vm_add_memory(m->vm, &mo, &r));
    uint64_t *p = hvc_memory_region_hva(r), x = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < BIG_LEN / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = x | 1;
    }
}

static void (*prepare)(migt *m); /* before the vCPUs start, or NULL */

static int migrate_tcp(migt *m, migt_runner *run, hvc_migrate_options *so,
                       const hvc_migrate_tls *dtls, struct child *c,
                       hvc_migrate_stats *st)
{
    char addr[64];
    int l = migt_listen_tcp(addr, sizeof(addr));
    *c = fork_destination(l, dtls);
    migt_open(m, 1, NULL);
    if (prepare)
        prepare(m);
    migt_start_runners(m, run);
    migt_sleep_ms(30);
    int fd = hvc_migrate_connect(addr);
    cr_assert_geq(fd, 0, "%s", hvc_last_error());
    int r = hvc_vm_migrate_send(m->vm, fd, so, st);
    fprintf(stderr, "%s: %d %s\n", addr, r, r ? hvc_last_error() : "");
    close(fd);
    return r;
}

Test(migration_transport, addresses)
{
    static const char *const bad[] = {
        "",
        "tcp:",
        "tcp:localhost",
        "tcp::4444",
        "tcp:127.0.0.1:",
        "tcp:127.0.0.1:0",
        "tcp:127.0.0.1:65536",
        "tcp:127.0.0.1:44x",
        "tcp:127.0.0.1:-1",
        "tcp:::1:4444",
        "tcp:[::1]",
        "tcp:a b:4444",
        "tcp:evil\x01host:4444",
        "unix:",
        "udp:127.0.0.1:4444",
        "unix:/tmp/\x1b[31mred",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = hvc_migrate_connect(bad[i]);
        cr_assert_eq(r, -EINVAL, "'%s': %d", bad[i], r);
        const char *e = hvc_last_error();
        cr_assert(strstr(e, "migration address"), "%s", e);
        for (const char *p = e; *p; p++)
            cr_assert((unsigned char)*p >= 0x20, "unescaped: %s", e);
    }
    cr_assert(strstr(hvc_last_error(), "\\x1b"), "%s", hvc_last_error());
    HVT_ERR(hvc_migrate_connect(NULL), -EINVAL);
    HVT_ERR(hvc_migrate_listen("tcp:127.0.0.1:70000"), -EINVAL);
    char longpath[300];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = 0;
    memcpy(longpath, "unix:", 5);
    HVT_ERR(hvc_migrate_listen(longpath), -EINVAL);

    /* Nobody listens: connect's own error. */
    char addr[64];
    int l = migt_listen_tcp(addr, sizeof(addr));
    close(l);
    int r = hvc_migrate_connect(addr);
    cr_assert_eq(r, -ECONNREFUSED, "%d %s", r, hvc_last_error());
    cr_assert(strstr(hvc_last_error(), addr), "%s", hvc_last_error());

    /* unix: and tcp: both connect; a stale unix socket is replaced. */
    char dir[] = "/tmp/hvt-addr-XXXXXX", ua[96];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(ua, sizeof(ua), "unix:%s/s", dir);
    for (int round = 0; round < 2; round++) {
        l = hvc_migrate_listen(ua);
        cr_assert_geq(l, 0, "%s", hvc_last_error());
        int c = hvc_migrate_connect(ua);
        cr_assert_geq(c, 0, "%s", hvc_last_error());
        close(c);
        close(l); /* the socket file stays: the next listen replaces it */
    }
    unlink(ua + 5);
    rmdir(dir);
    l = migt_listen_tcp(addr, sizeof(addr));
    int c = hvc_migrate_connect(addr);
    cr_assert_geq(c, 0, "%s", hvc_last_error());
    close(c);
    close(l);
    l = hvc_migrate_listen("tcp:[::1]:0");
    if (l >= 0) /* hosts without IPv6 on loopback refuse it */
        close(l);
}

/* Over TCP, with options of the first release's size. */
Test(migration_transport, tcp_loopback)
{
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    struct child c;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.size = offsetof(hvc_migrate_options, tls);
    prepare = add_big;
    HVT_OK(migrate_tcp(&m, run, &o, NULL, &c, &st));
    prepare = NULL;
    fprintf(stderr, "plain TCP: %.1f MiB/s, total %llu ms\n",
            (double)st.throughput_bps / (1 << 20),
            (unsigned long long)st.total_ms);
    cr_assert_eq(st.completed, 1);
    cr_assert_eq(st.tls, 0);
    assert_continues(&m, &c);
}

Test(migration_transport, tls_mutual)
{
    migt_certs k;
    migt_make_certs(&k);
    hvc_migrate_tls dt, stl;
    migt_tls_options(&k, true, &stl, &dt);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.tls = &stl;
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    struct child c;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    prepare = add_big; /* 24 MiB: many records, partial writes */
    HVT_OK(migrate_tcp(&m, run, &o, &dt, &c, &st));
    prepare = NULL;
    fprintf(stderr, "TLS: %.1f MiB/s, total %llu ms\n",
            (double)st.throughput_bps / (1 << 20),
            (unsigned long long)st.total_ms);
    cr_assert_eq(st.completed, 1);
    cr_assert_eq(st.tls, 1);
    cr_assert(hvc_vm_is_paused(m.vm));
    assert_continues(&m, &c);
    migt_drop_certs(&k);
}

/* The destination's certificate is not signed by the CA the source
 * trusts; or it names another host: refused, the source runs on. */
Test(migration_transport, tls_wrong_ca)
{
    migt_certs k;
    migt_make_certs(&k);
    for (int i = 0; i < 2; i++) {
        hvc_migrate_tls dt = HVC_MIGRATE_TLS_INIT, stl = HVC_MIGRATE_TLS_INIT;
        dt.cert = k.srv;
        dt.key = k.srv_key;
        stl.ca = i == 0 ? k.other_ca : k.ca;
        stl.server_name = i == 0 ? "127.0.0.1" : "migrate.example";
        hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
        o.tls = &stl;
        static migt m;
        migt_runner run[MIGT_MAX_VCPUS];
        struct child c;
        hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
        int r = migrate_tcp(&m, run, &o, &dt, &c, &st);
        cr_assert_eq(r, -EKEYREJECTED, "%d: %s", r, hvc_last_error());
        const char *e = hvc_last_error();
        cr_assert(strstr(e, "certificate") && strstr(e, "the VM runs on"), "%s",
                  e);
        cr_assert_eq(st.completed, 0);
        assert_runs_on(&m, run);
        migt_close(&m);
        close(c.report);
        cr_assert_neq(child_status(&c), 0);
    }
    migt_drop_certs(&k);
}

/* Mutual TLS asked, the source has no certificate (or one from another
 * CA): both sides say so, the source runs on. */
Test(migration_transport, tls_client_cert_required)
{
    migt_certs k;
    migt_make_certs(&k);
    for (int i = 0; i < 2; i++) {
        hvc_migrate_tls dt = HVC_MIGRATE_TLS_INIT, stl = HVC_MIGRATE_TLS_INIT;
        dt.cert = k.srv;
        dt.key = k.srv_key;
        dt.ca = i == 0 ? k.ca : k.other_ca;
        dt.flags = HVC_MIGRATE_TLS_VERIFY_PEER;
        stl.ca = k.ca;
        if (i == 1) {
            stl.cert = k.cli;
            stl.key = k.cli_key;
        }
        hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
        o.tls = &stl;
        static migt m;
        migt_runner run[MIGT_MAX_VCPUS];
        struct child c;
        int r = migrate_tcp(&m, run, &o, &dt, &c, NULL);
        cr_assert_eq(r, -EKEYREJECTED, "%d: %s", r, hvc_last_error());
        cr_assert(strstr(hvc_last_error(), "certificate"), "%s",
                  hvc_last_error());
        assert_runs_on(&m, run);
        migt_close(&m);
        close(c.report);
        cr_assert_eq(child_status(&c), EKEYREJECTED);
    }
    migt_drop_certs(&k);
}

/* Options the library refuses before it touches the VM. */
Test(migration_transport, bad_tls_options)
{
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 1, NULL);
    migt_start_runners(&m, run);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    hvc_migrate_tls t = HVC_MIGRATE_TLS_INIT;
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.tls = &t;
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL); /* no CA */
    t.ca = "/nonexistent/ca\x01.pem";
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -ENOENT);
    cr_assert(strstr(hvc_last_error(), "\\x01"), "%s", hvc_last_error());
    t.ca = "/tmp";
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    t.ca = "/etc/hostname";
    t.flags = 1u << 5;
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    t.flags = 0;
    t.cert = "/etc/hostname";
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL); /* no key */
    o.tls = NULL;
    o.bandwidth_mib = (1u << 24) + 1;
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    o.bandwidth_mib = 0;
    o.postcopy_after_rounds = 1; /* without HVC_MIGRATE_POSTCOPY */
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    o.postcopy_after_rounds = 0;
    o.flags = 1u << 7;
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    /* A PEM file that is not a certificate: the source's context fails
     * before anything is written. */
    o.flags = 0;
    o.tls = &t;
    t.cert = "/etc/hostname";
    t.key = "/etc/hostname";
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "the VM runs on"), "%s",
              hvc_last_error());
    close(sv[0]);
    close(sv[1]);
    assert_runs_on(&m, run);
    migt_close(&m);
}

/* The bandwidth limit holds pre-copy to its rate: the bytes it sent take
 * at least their time at that rate (less the 100 ms of credit the limit
 * allows and a margin); the paused phase is not limited. The statistics
 * then render as JSON. */
Test(migration_transport, bandwidth_limit)
{
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    struct child c;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.bandwidth_mib = 16;
    o.max_downtime_ms = 200;
    prepare = add_big;
    double t0 = now_s();
    HVT_OK(migrate_tcp(&m, run, &o, NULL, &c, &st));
    double took = now_s() - t0;
    prepare = NULL;
    uint64_t sent = st.bytes_initial + st.bytes_precopy;
    double want = (double)sent / (16.0 * (1 << 20));
    fprintf(stderr,
            "bandwidth 16 MiB/s: %llu bytes of pre-copy in %.2f s (at least "
            "%.2f s), measured %.1f MiB/s, %u rounds, final %llu bytes\n",
            (unsigned long long)sent, took, want,
            (double)st.throughput_bps / (1 << 20), st.rounds,
            (unsigned long long)st.bytes_final);
    cr_assert_geq(sent, BIG_LEN);
    cr_assert_geq(took, want * 0.95 - 0.15, "%.2f s for %.2f s of data", took,
                  want);
    cr_assert_geq((double)st.total_ms / 1000.0, want * 0.95 - 0.15);
    cr_assert_eq(st.completed, 1);
    assert_continues(&m, &c);

    char json[2048];
    int n = hvc_migrate_stats_json(&st, json, sizeof(json));
    cr_assert_gt(n, 0, "%s", hvc_last_error());
    cr_assert_eq((size_t)n, strlen(json));
    fprintf(stderr, "%s\n", json);
    cr_assert(json[0] == '{' && json[n - 1] == '}');
    char want_s[96];
    snprintf(want_s, sizeof(want_s), "\"rounds\":%u,", st.rounds);
    cr_assert(strstr(json, want_s), "%s", json);
    snprintf(want_s, sizeof(want_s), "\"bytes_initial\":%llu,",
             (unsigned long long)st.bytes_initial);
    cr_assert(strstr(json, want_s), "%s", json);
    cr_assert(strstr(json, "\"completed\":1,"), "%s", json);
    cr_assert(strstr(json, "\"dirty_tracking\":\"bitmap\""), "%s", json);
    cr_assert(strstr(json, "\"tls\":0,"), "%s", json);
    cr_assert(strstr(json, "\"postcopy_ms\":0,\"connections\":1,"), "%s", json);
    /* the per-connection arrays close the object */
    cr_assert(strstr(json, ",\"connection_pages\":[") && json[n - 2] == ']',
              "%s", json);
    /* As snprintf: the length it needs, cut short and terminated. */
    cr_assert_eq(hvc_migrate_stats_json(&st, NULL, 0), n);
    char small[16];
    cr_assert_eq(hvc_migrate_stats_json(&st, small, sizeof(small)), n);
    cr_assert_eq(strlen(small), sizeof(small) - 1);
    cr_assert_eq(strncmp(small, json, sizeof(small) - 1), 0);
    /* A caller of an older size gets its fields only. */
    hvc_migrate_stats old = st;
    old.size = offsetof(hvc_migrate_stats, throttle_percent);
    n = hvc_migrate_stats_json(&old, json, sizeof(json));
    cr_assert_gt(n, 0);
    cr_assert(strstr(json, "\"ack_wait_us\":") && !strstr(json, "tls"), "%s",
              json);
    old.size = 8;
    HVT_ERR(hvc_migrate_stats_json(&old, json, sizeof(json)), -EINVAL);
    HVT_ERR(hvc_migrate_stats_json(NULL, json, sizeof(json)), -EINVAL);
    HVT_ERR(hvc_migrate_stats_json(&st, NULL, 5), -EINVAL);
}

static const uint8_t key_a[HVC_STREAM_KEY_SIZE] = {1, 2, 3};
static const uint8_t key_b[HVC_STREAM_KEY_SIZE] = {3, 2, 1};

/* TLS and the stream's own encryption together: the right key migrates;
 * the wrong one is refused by the destination, through TLS, and the
 * source runs on. */
Test(migration_transport, tls_and_stream_key)
{
    migt_certs k;
    migt_make_certs(&k);
    for (int i = 0; i < 2; i++) {
        hvc_migrate_tls dt, stl;
        migt_tls_options(&k, false, &stl, &dt);
        stl.server_name = "localhost";
        hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
        o.tls = &stl;
        o.key = key_a;
        dest_key = i == 0 ? key_a : key_b;
        static migt m;
        migt_runner run[MIGT_MAX_VCPUS];
        struct child c;
        hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
        int r = migrate_tcp(&m, run, &o, &dt, &c, &st);
        dest_key = NULL;
        if (i == 0) {
            cr_assert_eq(r, 0, "%s", hvc_last_error());
            cr_assert_eq(st.tls, 1);
            assert_continues(&m, &c);
            /* the migrated source goes before the next one is made (one
             * VM per process on some backends) */
            migt_stop_runners(&m, run);
            migt_close(&m);
            continue;
        }
        cr_assert_eq(r, -EKEYREJECTED, "%d: %s", r, hvc_last_error());
        cr_assert(strstr(hvc_last_error(), "refused the stream"), "%s",
                  hvc_last_error());
        assert_runs_on(&m, run);
        migt_close(&m);
        close(c.report);
        cr_assert_eq(child_status(&c), EKEYREJECTED);
    }
    migt_drop_certs(&k);
}

static void *cancel_later(void *vm)
{
    migt_sleep_ms(300);
    hvc_vm_migrate_cancel(vm);
    return NULL;
}

/* A cancel is seen while the bandwidth limit holds the writer back. */
Test(migration_transport, cancel_while_limited)
{
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    struct child c;
    char addr[64];
    int l = migt_listen_tcp(addr, sizeof(addr));
    c = fork_destination(l, NULL);
    migt_open(&m, 1, NULL);
    add_big(&m);
    migt_start_runners(&m, run);
    int fd = hvc_migrate_connect(addr);
    cr_assert_geq(fd, 0, "%s", hvc_last_error());
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.bandwidth_mib = 1;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, cancel_later, m.vm), 0);
    double t0 = now_s();
    int r = hvc_vm_migrate_send(m.vm, fd, &o, NULL);
    double took = now_s() - t0;
    pthread_join(t, NULL);
    cr_assert_eq(r, -ECANCELED, "%d: %s", r, hvc_last_error());
    cr_assert_lt(took, 5.0, "the cancel took %.2f s", took);
    close(fd);
    assert_runs_on(&m, run);
    migt_close(&m);
    close(c.report);
    cr_assert_neq(child_status(&c), 0);
}

/* One side speaks TLS, the other does not: each says so, nothing is
 * started, the source runs on. */
Test(migration_transport, tls_on_one_side_only)
{
    migt_certs k;
    migt_make_certs(&k);
    for (int i = 0; i < 2; i++) {
        hvc_migrate_tls dt, stl;
        migt_tls_options(&k, false, &stl, &dt);
        hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
        o.tls = i == 0 ? &stl : NULL; /* 0: only the source; 1: only the
                                        destination */
        static migt m;
        migt_runner run[MIGT_MAX_VCPUS];
        struct child c;
        int r = migrate_tcp(&m, run, &o, i == 0 ? NULL : &dt, &c, NULL);
        cr_assert_lt(r, 0);
        cr_assert(strstr(hvc_last_error(), "the VM runs on"), "%s",
                  hvc_last_error());
        assert_runs_on(&m, run);
        migt_close(&m);
        close(c.report);
        cr_assert_neq(child_status(&c), 0);
    }
    migt_drop_certs(&k);
}
