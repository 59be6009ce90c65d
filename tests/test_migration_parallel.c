/* Live migration over several connections (hvc_migrate_options::
 * connections; docs/MIGRATION.md, "Parallel connections"): the counter
 * guest (tests/migtest.h) with 24 MiB more of data, migrated to a forked
 * child over 4 connections on unix and on TCP (with a stream key, and
 * under TLS), continues with the next number and its RAM hashes the same
 * on both sides. A relay in the middle cuts one memory connection during
 * the transfer, or forges a connection's totals or a record's round: the
 * source runs on and the destination refuses. A stranger's connection to
 * the destination's listening socket is refused with an answer, and the
 * migration goes on. */
#include "migtest.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(migration_parallel, .init = hvt_require_kvm, .timeout = 240);

static const uint8_t key_a[HVC_STREAM_KEY_SIZE] = {7, 7, 7};

#define BIG_GPA 0x10000000ull
#define BIG_LEN (24ull << 20)

/* 24 MiB more of RAM, full of data (no zero page), a little of it zero. */
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
        p[i] = (i / 512) % 7 == 3 ? 0 : x | 1;
    }
}

/* A listening socket: TCP on 127.0.0.1 at a port the kernel picks, or a
 * unix socket in a fresh directory; its address. */
static int listen_on(bool tcp, char *addr, size_t len)
{
    if (!tcp) {
        char dir[] = "/tmp/hvt-par-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        snprintf(addr, len, "unix:%s/s", dir);
    } else {
        snprintf(addr, len, "tcp:127.0.0.1:0");
    }
    int l = hvc_migrate_listen(addr);
    cr_assert_geq(l, 0, "%s", hvc_last_error());
    if (tcp) {
        struct sockaddr_in a;
        socklen_t al = sizeof(a);
        cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
        snprintf(addr, len, "tcp:127.0.0.1:%u", ntohs(a.sin_port));
    }
    return l;
}

/* The destination, in a child: accepts the main connection on @l,
 * receives with the extra connections from @l, hashes its RAM before any
 * vCPU runs, counts five more and reports status, hash, console; on a
 * refusal, the status and the message. */
struct report {
    int32_t status;
    uint64_t hash;
    char why[512];
};

static void destination(int l, const hvc_migrate_tls *tls, const uint8_t *key,
                        int report)
{
    static struct report rep;
    int fd = accept(l, NULL, NULL);
    if (fd < 0)
        _exit(3);
    static migt r;
    rep.status = migt_receive_par(&r, fd, l, tls, key);
    if (rep.status != 0) {
        snprintf(rep.why, sizeof(rep.why), "%s", hvc_last_error());
        migt_write_all(report, &rep, sizeof(rep));
        _exit(0);
    }
    rep.hash = migt_ram_hash(r.vm);
    uint64_t most = migt_count(&r, 0);
    if (migt_run_until(&r, most + 5) || migt_check(&r, most + 5))
        _exit(2);
    migt_write_all(report, &rep, sizeof(rep));
    migt_write_all(report, r.console, r.console_len);
    _exit(0);
}

struct child {
    pid_t pid;
    int report;
};

static struct child fork_destination(int l, const hvc_migrate_tls *tls,
                                     const uint8_t *key)
{
    int rep[2];
    cr_assert_eq(pipe(rep), 0);
    struct child c = {hvt_fork(), rep[0]};
    cr_assert_geq(c.pid, 0);
    if (c.pid == 0) {
        close(rep[0]);
        destination(l, tls, key, rep[1]);
    }
    close(rep[1]);
    return c;
}

/* The destination's report (its console into @cons), and its exit. */
static void child_report(struct child *c, struct report *r, char *cons,
                         size_t cap)
{
    cr_assert_eq(migt_read_all(c->report, r, sizeof(*r)), sizeof(*r),
                 "the destination reported nothing");
    size_t n = cons ? migt_read_all(c->report, cons, cap - 1) : 0;
    if (cons)
        cons[n] = 0;
    close(c->report);
    int st;
    cr_assert_eq(waitpid(c->pid, &st, 0), c->pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "destination 0x%x", st);
}

static void print_stats(const char *what, const hvc_migrate_stats *st)
{
    fprintf(stderr,
            "%s: %u connections, total %llu ms, downtime %llu us, %u rounds, "
            "%llu MB/s;",
            what, st->connections, (unsigned long long)st->total_ms,
            (unsigned long long)st->downtime_us, st->rounds,
            (unsigned long long)(st->throughput_bps >> 20));
    for (uint32_t k = 0; k < st->connections; k++)
        fprintf(stderr, " [%u] %llu pages %llu bytes", k,
                (unsigned long long)st->connection_pages[k],
                (unsigned long long)st->connection_bytes[k]);
    fputc('\n', stderr);
}

/* The console of source then destination counts on without a gap. */
static void assert_continues(migt *m, const char *dcons)
{
    static char all[1 << 18];
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

/* Migrates the counter guest to a child over @n connections. */
static void parallel(bool tcp, uint32_t n, const uint8_t *key, bool tls)
{
    char addr[128];
    int l = listen_on(tcp, addr, sizeof(addr));
    migt_certs certs;
    hvc_migrate_tls dt = HVC_MIGRATE_TLS_INIT, st_tls = HVC_MIGRATE_TLS_INIT;
    if (tls) {
        migt_make_certs(&certs);
        /* mutual: each connection's session checks both sides */
        dt.flags = HVC_MIGRATE_TLS_VERIFY_PEER;
        dt.cert = certs.srv;
        dt.key = certs.srv_key;
        dt.ca = certs.ca;
        st_tls.ca = certs.ca;
        st_tls.cert = certs.cli;
        st_tls.key = certs.cli_key;
        st_tls.server_name = "127.0.0.1";
    }
    struct child c = fork_destination(l, tls ? &dt : NULL, key);
    close(l);
    static migt m;
    migt_open(&m, 1, NULL);
    add_big(&m);
    static migt_runner run;
    migt_start_runners(&m, &run);
    migt_wait_counting(&m, 3);
    int fd = hvc_migrate_connect(addr);
    cr_assert_geq(fd, 0, "%s", hvc_last_error());
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.connections = n;
    o.address = addr;
    o.key = key;
    o.tls = tls ? &st_tls : NULL;
    o.max_downtime_ms = 50;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    int r = hvc_vm_migrate_send(m.vm, fd, &o, &st);
    cr_assert_eq(r, 0, "%s", hvc_last_error());
    print_stats(addr, &st);
    cr_assert_eq(st.connections, n);
    /* Striped: several connections carried pages (a worker the loaded
     * host starved for the whole transfer may have carried none). */
    uint64_t pages = 0;
    uint32_t busy = 0;
    for (uint32_t k = 0; k < n; k++) {
        busy += st.connection_pages[k] > 0;
        pages += st.connection_pages[k];
    }
    cr_assert_geq(busy, 2, "%u of %u connections carried pages", busy, n);
    cr_assert_eq(pages, st.pages_initial + st.pages_precopy + st.pages_final);
    cr_assert_eq(st.tls, tls ? 1u : 0u);
    char json[4096];
    cr_assert_lt(hvc_migrate_stats_json(&st, json, sizeof(json)),
                 (int)sizeof(json));
    cr_assert(strstr(json, "\"connection_pages\":["), "%s", json);
    HVT_ERR(hvc_vm_resume(m.vm), -EPERM);
    uint64_t h = migt_ram_hash(m.vm);
    struct report rep;
    static char dcons[1 << 17];
    child_report(&c, &rep, dcons, sizeof(dcons));
    cr_assert_eq(rep.status, 0, "destination: %s", rep.why);
    cr_assert_eq(rep.hash, h, "guest RAM differs at the switchover");
    assert_continues(&m, dcons);
    close(fd);
    if (!tcp)
        unlink(addr + 5);
    if (tls)
        migt_drop_certs(&certs);
}

Test(migration_parallel, four_over_unix)
{
    parallel(false, 4, NULL, false);
}

Test(migration_parallel, four_over_tcp_encrypted)
{
    parallel(true, 4, key_a, false);
}

Test(migration_parallel, four_over_mutual_tls)
{
    parallel(true, 4, NULL, true);
}

/* --- a relay that cuts or forges one connection --- */

enum relay_mode { RELAY_CUT, RELAY_COUNTS, RELAY_ROUND };

struct relay {
    int listen;           /* where the source connects */
    char upstream[128];   /* the destination */
    enum relay_mode mode; /* what it does to extra connection 2 */
    _Atomic int stop;
    _Atomic int forged; /* it did */
    pthread_t t;
};

struct hop {
    struct relay *r;
    int from, to;
    bool victim; /* the source's side of the connection to alter */
};

static bool read_full(int fd, void *p, size_t n)
{
    return migt_read_all(fd, p, n) == n;
}

/* Source to destination on the connection to alter: the hello, then
 * section by section. */
static void forge(struct hop *h)
{
    static uint8_t buf[(4u << 20)];
    if (!read_full(h->from, buf, 40))
        return;
    migt_write_all(h->to, buf, 40);
    uint64_t passed = 0;
    for (;;) {
        if (!read_full(h->from, buf, 24))
            return;
        uint16_t id;
        uint64_t len;
        memcpy(&id, buf, 2);
        memcpy(&len, buf + 8, 8);
        if (len > sizeof(buf) - 24 || !read_full(h->from, buf + 24, len))
            return;
        passed += 24 + len;
        /* after its first record (or at its end, should it carry
         * none): the rest of memory still flows on the others */
        if (h->r->mode == RELAY_CUT && (passed > (256u << 10) || id == 14)) {
            atomic_store(&h->r->forged, 1);
            return; /* the connection goes down here */
        }
        /* ROUND: the first record's round to 0 (or, on a connection that
         * carried none, its end's last round) */
        bool alter = (h->r->mode == RELAY_COUNTS && id == 14) ||
                     (h->r->mode == RELAY_ROUND && (id == 13 || id == 14) &&
                      !atomic_load(&h->r->forged));
        if (alter) {
            if (h->r->mode == RELAY_COUNTS)
                buf[24] ^= 1; /* the record count */
            else if (id == 13)
                memset(buf + 24 + 20, 0, 4); /* round 0 */
            else
                memset(buf + 24 + 32, 0, 4); /* last round 0 */
            uint32_t crc = migt_crc32c(0, buf, 20);
            crc = migt_crc32c(crc, buf + 24, len);
            memcpy(buf + 20, &crc, 4);
            atomic_store(&h->r->forged, 1);
        }
        migt_write_all(h->to, buf, 24 + len);
    }
}

static void *hop_main(void *arg)
{
    struct hop *h = arg;
    if (h->victim) {
        forge(h);
    } else {
        static _Thread_local uint8_t buf[65536];
        for (ssize_t n; (n = read(h->from, buf, sizeof(buf))) > 0;)
            migt_write_all(h->to, buf, (size_t)n);
    }
    shutdown(h->from, SHUT_RDWR);
    shutdown(h->to, SHUT_RDWR);
    return NULL;
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    static struct hop hops[16][2];
    static pthread_t ts[16][2];
    int n = 0;
    while (!atomic_load(&r->stop) && n < 16) {
        struct pollfd p = {.fd = r->listen, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int a = accept(r->listen, NULL, NULL);
        if (a < 0)
            continue;
        int b = hvc_migrate_connect(r->upstream);
        if (b < 0) {
            close(a);
            continue;
        }
        /* accepted in order: the main connection, then 1, 2, 3 */
        hops[n][0] = (struct hop){r, a, b, n == 2};
        hops[n][1] = (struct hop){r, b, a, false};
        pthread_create(&ts[n][0], NULL, hop_main, &hops[n][0]);
        pthread_create(&ts[n][1], NULL, hop_main, &hops[n][1]);
        n++;
    }
    for (int i = 0; i < n; i++) {
        shutdown(hops[i][0].from, SHUT_RDWR);
        shutdown(hops[i][0].to, SHUT_RDWR);
        pthread_join(ts[i][0], NULL);
        pthread_join(ts[i][1], NULL);
        close(hops[i][0].from);
        close(hops[i][0].to);
    }
    return NULL;
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

static void relayed(enum relay_mode mode, const char *want)
{
    signal(SIGPIPE, SIG_IGN); /* the relay writes to closed connections */
    char addr[128];
    int l = listen_on(true, addr, sizeof(addr));
    struct child c = fork_destination(l, NULL, NULL);
    close(l);
    static struct relay r;
    memset(&r, 0, sizeof(r));
    r.mode = mode;
    char raddr[128];
    r.listen = listen_on(true, raddr, sizeof(raddr));
    snprintf(r.upstream, sizeof(r.upstream), "%s", addr);
    cr_assert_eq(pthread_create(&r.t, NULL, relay_main, &r), 0);
    static migt m;
    migt_open(&m, 1, NULL);
    add_big(&m);
    static migt_runner run;
    migt_start_runners(&m, &run);
    migt_wait_counting(&m, 3);
    int fd = hvc_migrate_connect(raddr);
    cr_assert_geq(fd, 0, "%s", hvc_last_error());
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.connections = 4;
    o.address = raddr;
    o.max_downtime_ms = 50;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    int e = hvc_vm_migrate_send(m.vm, fd, &o, &st);
    char why[600];
    snprintf(why, sizeof(why), "%s", hvc_last_error());
    fprintf(stderr, "source: %d %s\n", e, why);
    cr_assert_lt(e, 0, "the migration succeeded");
    cr_assert_eq(st.completed, 0);
    cr_assert(strstr(why, "the VM runs on"), "%s", why);
    close(fd);
    struct report rep;
    child_report(&c, &rep, NULL, 0);
    fprintf(stderr, "destination: %d %s\n", rep.status, rep.why);
    cr_assert_lt(rep.status, 0, "the destination started the guest");
    cr_assert(strstr(rep.why, want), "destination: %s", rep.why);
    cr_assert(atomic_load(&r.forged), "the relay never altered anything");
    atomic_store(&r.stop, 1);
    pthread_join(r.t, NULL);
    close(r.listen);
    assert_runs_on(&m, &run);
}

Test(migration_parallel, connection_cut_mid_transfer)
{
    relayed(RELAY_CUT, "memory connection");
}

Test(migration_parallel, forged_connection_totals)
{
    relayed(RELAY_COUNTS, "totals");
}

Test(migration_parallel, forged_round_zero)
{
    relayed(RELAY_ROUND, "round 0");
}

/* A connection that is not the migration's, waiting on the destination's
 * listening socket before the source's own: refused with an answer, and
 * the migration goes on. */
Test(migration_parallel, stranger_refused)
{
    char addr[128];
    int l = listen_on(true, addr, sizeof(addr));
    struct child c = fork_destination(l, NULL, NULL);
    close(l);
    static migt m;
    migt_open(&m, 1, NULL);
    static migt_runner run;
    migt_start_runners(&m, &run);
    migt_wait_counting(&m, 3);
    int fd = hvc_migrate_connect(addr);
    cr_assert_geq(fd, 0, "%s", hvc_last_error());
    /* The child accepts the main connection first (it came first); then
     * two strangers queue: a hello naming another session, and text. */
    migt_sleep_ms(100);
    int s1 = hvc_migrate_connect(addr), s2 = hvc_migrate_connect(addr);
    cr_assert(s1 >= 0 && s2 >= 0, "%s", hvc_last_error());
    uint8_t hello[40] = "HVCMCON1";
    hello[8] = 1;
    memset(hello + 16, 0x5a, 16);
    uint32_t crc = migt_crc32c(0, hello, 36);
    memcpy(hello + 36, &crc, 4);
    migt_write_all(s1, hello, sizeof(hello));
    migt_write_all(s2, "GET / HTTP/1.0\r\n\r\nmore and more text here", 40);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.connections = 3;
    o.address = addr;
    o.max_downtime_ms = 50;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    int e = hvc_vm_migrate_send(m.vm, fd, &o, &st);
    cr_assert_eq(e, 0, "%s", hvc_last_error());
    cr_assert_eq(st.connections, 3);
    for (int i = 0; i < 2; i++) {
        uint8_t a[16];
        cr_assert_eq(migt_read_all(i ? s2 : s1, a, sizeof(a)), sizeof(a),
                     "stranger %d got no answer", i);
        int32_t status;
        memcpy(&status, a + 8, 4);
        cr_assert(memcmp(a, "HVCMCAC1", 8) == 0 && status == -EPERM,
                  "stranger %d: status %d", i, status);
        uint8_t more;
        cr_assert_eq(read(i ? s2 : s1, &more, 1), 0, "not closed");
    }
    struct report rep;
    static char dcons[1 << 17];
    child_report(&c, &rep, dcons, sizeof(dcons));
    cr_assert_eq(rep.status, 0, "destination: %s", rep.why);
    cr_assert_eq(rep.hash, migt_ram_hash(m.vm));
    assert_continues(&m, dcons);
    close(s1);
    close(s2);
    close(fd);
}

/* Options: more than 16 connections, or several without an address, or
 * for a live snapshot; and a receiver without a listening socket refuses
 * a parallel stream, with the source running on. */
Test(migration_parallel, bad_options_and_no_listener)
{
    /* A destination without listen_fd, forked first: a backend that
     * allows one VM per process (hvf) has none yet in the child. */
    char addr[128];
    int l = listen_on(true, addr, sizeof(addr));
    int rp[2];
    cr_assert_eq(pipe(rp), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(rp[0]);
        int fd = accept(l, NULL, NULL);
        close(l); /* the source's extra connection is reset */
        static migt r;
        static struct report rep;
        rep.status = migt_receive_par(&r, fd, -1, NULL, NULL);
        snprintf(rep.why, sizeof(rep.why), "%s", hvc_last_error());
        migt_write_all(rp[1], &rep, sizeof(rep));
        _exit(0);
    }
    close(rp[1]);
    close(l);
    static migt m;
    migt_open(&m, 1, NULL);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.connections = 17;
    o.address = "tcp:127.0.0.1:9";
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "17"), "%s", hvc_last_error());
    o.connections = 2;
    o.address = NULL;
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    o.address = "tcp:nope";
    HVT_ERR(hvc_vm_migrate_send(m.vm, sv[0], &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "nope"), "%s", hvc_last_error());
    o.address = "tcp:127.0.0.1:9";
    HVT_ERR(hvc_snapshot_save_live(m.vm, "/tmp/hvt-par-snap", &o, NULL),
            -EINVAL);
    close(sv[0]);
    close(sv[1]);

    static migt_runner run;
    migt_start_runners(&m, &run);
    migt_wait_counting(&m, 3);
    int fd = hvc_migrate_connect(addr);
    o.connections = 2;
    o.address = addr;
    int e = hvc_vm_migrate_send(m.vm, fd, &o, NULL);
    cr_assert_lt(e, 0);
    struct report rep;
    cr_assert_eq(migt_read_all(rp[0], &rep, sizeof(rep)), sizeof(rep));
    waitpid(pid, NULL, 0);
    cr_assert_eq(rep.status, -ENOTSUP, "%d %s", rep.status, rep.why);
    cr_assert(strstr(rep.why, "listen_fd"), "%s", rep.why);
    close(fd);
    close(rp[0]);
    assert_runs_on(&m, &run);
}

/* --- hostile parallel sections in a stream --- */

/* A section: 24-byte header (CRC32C of its first 20 bytes and the
 * payload) and the payload, appended to @out at @at. */
static size_t put_section(uint8_t *out, size_t at, uint16_t id,
                          const uint8_t *pl, uint64_t len)
{
    uint8_t h[24] = {0};
    memcpy(h, &id, 2);
    uint16_t flags = 1; /* required */
    memcpy(h + 2, &flags, 2);
    uint32_t version = 1;
    memcpy(h + 4, &version, 4);
    memcpy(h + 8, &len, 8);
    uint32_t crc = migt_crc32c(migt_crc32c(0, h, 20), pl, len);
    memcpy(h + 20, &crc, 4);
    memcpy(out + at, h, 24);
    memcpy(out + at + 24, pl, len);
    return at + 24 + len;
}

/* @s with @extra inserted before its first section that is not CONFIG or
 * USER (so where PARALLEL belongs); malloc'd, its length in *out_len. */
static uint8_t *insert(const uint8_t *s, size_t len, const uint8_t *extra,
                       size_t elen, size_t *out_len)
{
    size_t off = 80;
    for (;;) {
        uint16_t id;
        uint64_t l;
        memcpy(&id, s + off, 2);
        memcpy(&l, s + off + 8, 8);
        if (id != 1 && id != 8)
            break;
        off += 24 + l;
    }
    uint8_t *o = malloc(len + elen);
    cr_assert_not_null(o);
    memcpy(o, s, off);
    memcpy(o + off, extra, elen);
    memcpy(o + off + elen, s + off, len - off);
    *out_len = len + elen;
    return o;
}

struct feeder {
    int fd;
    const uint8_t *p;
    size_t len;
    pthread_t t;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    migt_write_all(f->fd, f->p, f->len);
    shutdown(f->fd, SHUT_WR);
    return NULL;
}

/* hvc_vm_migrate_receive() of @s over a socket pair (listen_fd @l); its
 * error, with the message in @why. */
static int receive_stream(const uint8_t *s, size_t len, int l, char *why,
                          size_t wl)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct feeder f = {sv[0], s, len, 0};
    cr_assert_eq(pthread_create(&f.t, NULL, feed, &f), 0);
    static migt r;
    int e = migt_receive_par(&r, sv[1], l, NULL, NULL);
    snprintf(why, wl, "%s", hvc_last_error());
    close(sv[1]);
    pthread_join(f.t, NULL);
    close(sv[0]);
    if (e == 0)
        hvc_vm_destroy(r.vm);
    if (r.hv)
        hvc_hypervisor_close(r.hv);
    return e;
}

/* PARALLEL where it may not be, or saying what cannot be; a round-tagged
 * record without PARALLEL; an untagged run after it: each refused with a
 * message, nothing left. */
Test(migration_parallel, hostile_sections)
{
    signal(SIGPIPE, SIG_IGN);
    static migt m;
    migt_open(&m, 1, NULL);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    /* only its stream is needed: the restores below may then create their
     * VM here on a backend that allows one per process */
    HVT_OK(hvc_vm_destroy(m.vm));
    m.vm = NULL;
    uint8_t sec[256], pl[64] = {0};
    size_t hl, sl;
    char why[600];

    /* In a saved stream: not a live migration. */
    sl = put_section(sec, 0, 12, pl, 24);
    uint8_t *h = insert(s, len, sec, sl, &hl);
    hvc_vm *vm = NULL;
    int e = migt_restore_mem_vm(m.hv, h, hl, NULL, NULL, &vm);
    cr_assert_eq(e, -EBADMSG, "%d %s", e, migt_last_error());
    cr_assert_null(vm);
    cr_assert(strstr(migt_last_error(), "not a live migration"), "%s",
              migt_last_error());
    free(h);

    /* Live: 16 extra connections, unknown flags, a short payload. */
    static const struct {
        uint32_t extra, flags, len;
        int err;
        const char *msg;
    } bad[] = {
        {16, 0, 24, -EBADMSG, "16 extra connections"},
        {1, 0x80, 24, -EBADMSG, "flags 0x80"},
        {1, 0, 20, -EBADMSG, "payload of 20 bytes"},
        {1, 0, 24, -ENOTSUP, "listen_fd"}, /* nowhere to accept them */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(pl, &bad[i].extra, 4);
        memcpy(pl + 4, &bad[i].flags, 4);
        sl = put_section(sec, 0, 12, pl, bad[i].len);
        h = insert(s, len, sec, sl, &hl);
        e = receive_stream(h, hl, -1, why, sizeof(why));
        fprintf(stderr, "case %zu: %d %s\n", i, e, why);
        cr_assert_eq(e, bad[i].err, "case %zu: %d %s", i, e, why);
        cr_assert(strstr(why, bad[i].msg), "case %zu: %s", i, why);
        free(h);
    }

    /* PARALLEL with no extra connection: the saved stream's untagged
     * memory after it is refused. */
    memset(pl, 0, sizeof(pl));
    sl = put_section(sec, 0, 12, pl, 24);
    h = insert(s, len, sec, sl, &hl);
    e = receive_stream(h, hl, -1, why, sizeof(why));
    cr_assert_eq(e, -EBADMSG, "%d %s", e, why);
    cr_assert(strstr(why, "untagged memory run"), "%s", why);
    free(h);

    /* A round-tagged record without PARALLEL. */
    uint64_t gpa = 0, pages = 1;
    uint32_t enc = 1, round = 1;
    memcpy(pl, &gpa, 8);
    memcpy(pl + 8, &pages, 8);
    memcpy(pl + 16, &enc, 4);
    memcpy(pl + 20, &round, 4);
    sl = put_section(sec, 0, 13, pl, 24);
    h = insert(s, len, sec, sl, &hl);
    e = receive_stream(h, hl, -1, why, sizeof(why));
    cr_assert_eq(e, -EBADMSG, "%d %s", e, why);
    cr_assert(strstr(why, "without PARALLEL"), "%s", why);
    free(h);
    free(s);
}
