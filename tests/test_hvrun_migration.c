/* examples/hvrun's live migration, end to end: --migrate-to and
 * --incoming between two hvrun processes. The guest is
 * tests/guests/counter64.S (see test_hvrun_snapshot.c). */
#include "hvrun_util.h"
#include "migtest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HVT_HVRUN /* built with the examples */

/* A hang fails the test instead of blocking the suite. */
TestSuite(hvrun_snapshot, .timeout = 240);

/* --migrate-to and --incoming: the counter guest moves to a second hvrun,
 * whose console goes on with the next number; the source exits 0 after
 * one line with the downtime. A destination that is not there leaves the
 * source counting, after one line. */
Test(hvrun_snapshot, live_migration)
{
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "mig.sock");
    char ser_dst[160], ser_src[160], ser_lone[160];
    snprintf(ser_dst, sizeof(ser_dst), "file:%s", in(&s, "dst.txt"));
    snprintf(ser_src, sizeof(ser_src), "file:%s", in(&s, "src.txt"));
    snprintf(ser_lone, sizeof(ser_lone), "file:%s", in(&s, "lone.txt"));
    char to[160];
    snprintf(to, sizeof(to), "unix:%s", sock);
    const char *dst[] = {"--incoming", to, "--serial", ser_dst, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    const char *src[] = {"--kernel",
                         COUNTER,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--serial",
                         ser_src,
                         "--migrate-to",
                         to,
                         "--migrate-after-ms",
                         "100",
                         "--max-downtime-ms",
                         "5",
                         NULL};
    cr_assert_eq(run_hvrun(&s, "src", src), 0);
    char *err = output(&s, "src", "err");
    assert_one_line(err, "downtime");
    fprintf(stderr, "hvrun %s", err);
    free(err);
    char *text = slurp(in(&s, "src.txt"), NULL);
    const char *tail;
    long last = last_count(text, &tail);
    cr_assert_gt(last, 0);
    assert_consecutive(text, 1);
    free(text);
    wait_for_count(in(&s, "dst.txt"), last + 20, WAIT_S, d);
    kill(d, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 130);
    /* The source's last line, cut or not, goes on on the destination. */
    cr_assert_geq(assert_consecutive_across(in(&s, "src.txt"), in(&s, "dst.txt")),
                  last + 20);

    /* Nobody listens: one line, and the guest counts on. */
    const char *lone[] = {"--kernel",     COUNTER, "--raw",    "0x8000",
                          "--mem",        "64",    "--serial", ser_lone,
                          "--migrate-to", to,      NULL};
    pid_t l = spawn_hvrun(&s, "lone", NULL, lone);
    wait_for_count(in(&s, "lone.txt"), 10, WAIT_S, l);
    kill(l, SIGUSR2); /* no --migrate-after-ms: the signal starts it */
    err = wait_line(&s, "lone");
    assert_one_line(err, "the VM runs on");
    free(err);
    text = slurp(in(&s, "lone.txt"), NULL);
    long before = last_count(text, NULL);
    free(text);
    wait_for_count(in(&s, "lone.txt"), before + 10, WAIT_S, l);
    kill(l, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(l, WAIT_S)), 130);
    scratch_close(&s);
}

/* --snapshot --live: saved while the guest counts, paused only for the
 * final round and left paused (the console ends where the file does); a
 * new hvrun restores it and counts on with the next number. */
Test(hvrun_snapshot, live_snapshot_restores_and_counts_on)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "live.snap");
    char *tail;
    const char *live[] = {"--live", "--max-downtime-ms", "5", NULL};
    long k = snapshot_counter(&s, snap, "300", live, &tail);
    restore_and_check(&s, snap, NULL, k, tail, SIGTERM);
    free(tail);
}

/* A port on 127.0.0.1 nobody uses right now. */
static unsigned free_port(void)
{
    int l = hvc_migrate_listen("tcp:127.0.0.1:0");
    cr_assert_geq(l, 0, "%s", hvc_last_error());
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
    close(l);
    return ntohs(a.sin_port);
}

/* Waits until something listens on 127.0.0.1:@port (/proc/net/tcp, so
 * that no connection is used up). */
static void wait_listening(unsigned port, pid_t pid)
{
    char want[32];
    snprintf(want, sizeof(want), "0100007F:%04X 00000000:0000 0A", port);
    for (double end = now() + WAIT_S;;) {
        char *t = slurp("/proc/net/tcp", NULL);
        bool up = strstr(t, want) != NULL;
        free(t);
        if (up)
            return;
        cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "--incoming exited");
        cr_assert(now() < end, "nothing listens on port %u", port);
        usleep(10000);
    }
}

/* Waits for one line on <tag>.err. */
/* --incoming and --migrate-to over TCP with mutual TLS, a bandwidth limit
 * and --migration-stats: the guest counts on at the destination, the
 * stats say TLS and success. Then a source that trusts another CA is
 * refused: one line each side, the source counts on, its stats say why. */
Test(hvrun_snapshot, tcp_tls_migration)
{
    struct scratch s;
    scratch_open(&s);
    migt_certs k;
    migt_make_certs(&k);
    unsigned port = free_port();
    char addr[64], ser_dst[160], ser_src[160], stats[160];
    snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", port);
    snprintf(ser_dst, sizeof(ser_dst), "file:%s", in(&s, "dst.txt"));
    snprintf(ser_src, sizeof(ser_src), "file:%s", in(&s, "src.txt"));
    snprintf(stats, sizeof(stats), "%s", in(&s, "stats.json"));
    const char *dst[] = {"--incoming", addr,  "--serial",  ser_dst,
                         "--tls-cert", k.srv, "--tls-key", k.srv_key,
                         "--tls-ca",   k.ca,  NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_listening(port, d);
    const char *src[] = {"--kernel",
                         COUNTER,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--serial",
                         ser_src,
                         "--migrate-to",
                         addr,
                         "--migrate-after-ms",
                         "100",
                         "--tls-ca",
                         k.ca,
                         "--tls-cert",
                         k.cli,
                         "--tls-key",
                         k.cli_key,
                         "--bandwidth-mib",
                         "64",
                         "--migration-stats",
                         stats,
                         NULL};
    cr_assert_eq(run_hvrun(&s, "src", src), 0);
    char *err = output(&s, "src", "err");
    assert_one_line(err, "TLS");
    fprintf(stderr, "hvrun %s", err);
    free(err);
    char *json = slurp(stats, NULL);
    fprintf(stderr, "%s", json);
    cr_assert(strstr(json, "\"completed\":1,") && strstr(json, "\"tls\":1") &&
                  strstr(json, "\"ok\":true"),
              "%s", json);
    free(json);
    char *text = slurp(in(&s, "src.txt"), NULL);
    long last = last_count(text, NULL);
    free(text);
    cr_assert_gt(last, 0);
    wait_for_count(in(&s, "dst.txt"), last + 20, WAIT_S, d);
    kill(d, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 130);

    /* The wrong CA on the source. */
    port = free_port();
    snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", port);
    snprintf(ser_src, sizeof(ser_src), "file:%s", in(&s, "src2.txt"));
    d = spawn_hvrun(&s, "dst2", NULL, dst);
    wait_listening(port, d);
    src[13] = k.other_ca;
    src[9] = addr;
    src[7] = ser_src;
    src[10] = "--max-downtime-ms"; /* no --migrate-after-ms: SIGUSR2 */
    src[11] = "10";
    pid_t p = spawn_hvrun(&s, "src2", NULL, src);
    wait_for_count(in(&s, "src2.txt"), 10, WAIT_S, p);
    kill(p, SIGUSR2);
    err = wait_line(&s, "src2");
    assert_one_line(err, "certificate");
    cr_assert(strstr(err, "the VM runs on"), "%s", err);
    free(err);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 2);
    err = output(&s, "dst2", "err");
    assert_one_line(err, "certificate");
    free(err);
    json = slurp(stats, NULL);
    cr_assert(strstr(json, "\"ok\":false") && strstr(json, "\"completed\":0"),
              "%s", json);
    free(json);
    text = slurp(in(&s, "src2.txt"), NULL);
    long before = last_count(text, NULL);
    free(text);
    wait_for_count(in(&s, "src2.txt"), before + 10, WAIT_S, p);
    kill(p, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(p, WAIT_S)), 130);
    migt_drop_certs(&k);
    scratch_close(&s);
}

/* Bad migration flags: one line, status 2, the value escaped. */
Test(hvrun_snapshot, migration_flag_errors)
{
    struct scratch s;
    scratch_open(&s);
    static const char *const bad[][10] = {
        {"--incoming", "tcp:127.0.0.1", NULL},
        {"--incoming", "tcp:127.0.0.1:70000", NULL},
        {"--incoming", "udp:127.0.0.1:4444", NULL},
        {"--incoming", "tcp:no\x01host:4444", NULL},
        {"--incoming", "tcp:127.0.0.1:4444", "--tls-ca", "/etc/hostname", NULL},
        {"--kernel", COUNTER, "--migrate-to", "tcp:127.0.0.1:0", NULL},
        {"--kernel", COUNTER, "--migrate-to", "tcp:[::1]", NULL},
        {"--kernel", COUNTER, "--tls-ca", "/etc/hostname", NULL},
        {"--kernel", COUNTER, "--migrate-to", "unix:/tmp/x", "--tls-cert",
         "/etc/hostname", "--tls-key", "/etc/hostname"},
        {"--kernel", COUNTER, "--migrate-to", "unix:/tmp/x", "--tls-ca",
         "/nonexistent\x1b.pem", NULL},
        {"--kernel", COUNTER, "--migrate-to", "unix:/tmp/x", "--bandwidth-mib",
         "0", NULL},
        {"--kernel", COUNTER, "--bandwidth-mib", "5", NULL},
        {"--kernel", COUNTER, "--auto-converge", NULL},
        {"--kernel", COUNTER, "--migration-stats", "/tmp/x.json", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(run_hvrun(&s, "bad", bad[i]), 2, "case %zu", i);
        char *err = output(&s, "bad", "err");
        assert_one_line(err, NULL);
        cr_assert(!strchr(err, '\x01') && !strchr(err, '\x1b'), "%s", err);
        fprintf(stderr, "%s", err);
        free(err);
    }
    scratch_close(&s);
}

/* The source's progress line on a terminal: drawn after each round
 * (bytes, rate, dirty rate, ETA), erased before the one line that says
 * how it went. */
Test(hvrun_snapshot, migration_progress_on_a_terminal)
{
    struct scratch s;
    scratch_open(&s);
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(master, 0);
    cr_assert_eq(grantpt(master), 0);
    cr_assert_eq(unlockpt(master), 0);
    char slave[64];
    snprintf(slave, sizeof(slave), "%s", ptsname(master));
    char to[160], ser_dst[160];
    snprintf(to, sizeof(to), "unix:%s", in(&s, "mig.sock"));
    snprintf(ser_dst, sizeof(ser_dst), "file:%s", in(&s, "dst.txt"));
    const char *dst[] = {"--incoming", to, "--serial", ser_dst, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(in(&s, "mig.sock"));
    const char *src[] = {"--kernel",
                         COUNTER,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--serial",
                         "none",
                         "--migrate-to",
                         to,
                         "--migrate-after-ms",
                         "100",
                         "--bandwidth-mib",
                         "4",
                         NULL};
    int st = wait_exit(spawn_hvrun(&s, "src", slave, src), WAIT_S);
    char buf[8192];
    size_t n = 0;
    fcntl(master, F_SETFL, O_NONBLOCK);
    for (ssize_t k; n + 1 < sizeof(buf) &&
                    (k = read(master, buf + n, sizeof(buf) - 1 - n)) > 0;)
        n += (size_t)k;
    buf[n] = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x: %s", st,
              buf);
    cr_assert(strncmp(buf, "\rhvrun: migrating: round 1, ", 28) == 0, "[%s]",
              buf);
    cr_assert(strstr(buf, "MB/s, dirty ") && strstr(buf, " ETA "), "[%s]", buf);
    const char *last = strstr(buf, "hvrun: migrated to");
    cr_assert_not_null(last, "[%s]", buf);
    cr_assert(strchr(buf, '\n') == buf + strlen(buf) - 1,
              "one line, ended once: [%s]", buf);
    kill(d, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 130);
    close(master);
    scratch_close(&s);
}

/* --postcopy-after-rounds 1: the guest runs on the destination right
 * after the first pass, the rest of memory follows; the source exits 0
 * after one line with the post-copy figures, the destination prints one
 * line when every page arrived, and counts on. */
Test(hvrun_snapshot, postcopy_migration)
{
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "pc.sock");
    char ser_dst[160], ser_src[160], to[160];
    snprintf(ser_dst, sizeof(ser_dst), "file:%s", in(&s, "dst.txt"));
    snprintf(ser_src, sizeof(ser_src), "file:%s", in(&s, "src.txt"));
    snprintf(to, sizeof(to), "unix:%s", sock);
    const char *dst[] = {"--incoming", to, "--serial", ser_dst, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    const char *src[] = {"--kernel",
                         COUNTER,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--serial",
                         ser_src,
                         "--migrate-to",
                         to,
                         "--migrate-after-ms",
                         "100",
                         "--postcopy-after-rounds",
                         "1",
                         NULL};
    cr_assert_eq(run_hvrun(&s, "src", src), 0);
    char *err = output(&s, "src", "err");
    assert_one_line(err, "by post-copy");
    fprintf(stderr, "hvrun %s", err);
    free(err);
    char *text = slurp(in(&s, "src.txt"), NULL);
    long last = last_count(text, NULL);
    cr_assert_gt(last, 0);
    free(text);
    wait_for_count(in(&s, "dst.txt"), last + 20, WAIT_S, d);
    for (double end = now() + WAIT_S;;) {
        err = output(&s, "dst", "err");
        bool said = strstr(err, "post-copy complete") != NULL;
        if (said)
            fprintf(stderr, "hvrun %s", err);
        free(err);
        if (said)
            break;
        cr_assert(now() < end, "the destination never said post-copy ended");
        usleep(10000);
    }
    kill(d, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 130);
    cr_assert_geq(assert_consecutive_across(in(&s, "src.txt"), in(&s, "dst.txt")),
                  last + 20);
    /* Post-copy needs --migrate-to. */
    const char *bad[] = {"--kernel", COUNTER,      "--raw",
                         "0x8000",   "--postcopy", NULL};
    cr_assert_eq(run_hvrun(&s, "bad", bad), 2);
    err = output(&s, "bad", "err");
    assert_one_line(err, "--postcopy");
    free(err);
    scratch_close(&s);
}

/* --migrate-connections 4 over TCP with TLS: four TLS sessions carry
 * memory, the guest counts on, the stats say so; then post-copy over TCP
 * and TLS with two connections: the page channel is a connection (and a
 * TLS session) of its own. */
Test(hvrun_snapshot, parallel_connections_and_tcp_postcopy)
{
    struct scratch s;
    scratch_open(&s);
    migt_certs k;
    migt_make_certs(&k);
    for (int round = 0; round < 2; round++) {
        bool pc = round == 1;
        unsigned port = free_port();
        char addr[64], ser_dst[160], ser_src[160], stats[160];
        snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", port);
        snprintf(ser_dst, sizeof(ser_dst), "file:%s",
                 in(&s, pc ? "dst2.txt" : "dst.txt"));
        snprintf(ser_src, sizeof(ser_src), "file:%s",
                 in(&s, pc ? "src2.txt" : "src.txt"));
        snprintf(stats, sizeof(stats), "%s", in(&s, "stats.json"));
        const char *dst[] = {"--incoming", addr,         "--serial",
                             ser_dst,      "--tls-cert", k.srv,
                             "--tls-key",  k.srv_key,    NULL};
        pid_t d = spawn_hvrun(&s, pc ? "dst2" : "dst", NULL, dst);
        wait_listening(port, d);
        const char *src[] = {"--kernel",
                             COUNTER,
                             "--raw",
                             "0x8000",
                             "--mem",
                             "64",
                             "--serial",
                             ser_src,
                             "--migrate-to",
                             addr,
                             "--migrate-after-ms",
                             "100",
                             "--migration-stats",
                             stats,
                             "--migrate-connections",
                             pc ? "2" : "4",
                             "--tls-ca",
                             k.ca,
                             pc ? "--postcopy-after-rounds" : NULL,
                             "1",
                             NULL};
        int rc = run_hvrun(&s, pc ? "src2" : "src", src);
        char *err = output(&s, pc ? "src2" : "src", "err");
        if (rc != 0) {
            kill(d, SIGTERM);
            wait_exit(d, WAIT_S);
        }
        cr_assert_eq(rc, 0, "%s; the destination: %s", err,
                     rc ? output(&s, pc ? "dst2" : "dst", "err") : "");
        assert_one_line(err, pc ? "by post-copy" : "TLS, 4 connections");
        fprintf(stderr, "hvrun %s", err);
        free(err);
        char *json = slurp(stats, NULL);
        fprintf(stderr, "%s", json);
        cr_assert(
            strstr(json, pc ? "\"connections\":2," : "\"connections\":4,"),
            "%s", json);
        cr_assert(strstr(json, "\"ok\":true"), "%s", json);
        cr_assert(strstr(json, "\"tls\":1"), "%s", json);
        if (pc)
            cr_assert(strstr(json, "\"postcopy_channel\":2,"), "%s", json);
        free(json);
        char *text = slurp(in(&s, pc ? "src2.txt" : "src.txt"), NULL);
        long last = last_count(text, NULL);
        free(text);
        cr_assert_gt(last, 0);
        wait_for_count(in(&s, pc ? "dst2.txt" : "dst.txt"), last + 20, WAIT_S,
                       d);
        kill(d, SIGTERM);
        cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 130);
        cr_assert_geq(
            assert_consecutive_across(in(&s, pc ? "src2.txt" : "src.txt"),
                                      in(&s, pc ? "dst2.txt" : "dst.txt")),
            last + 20);
    }
    /* Bad counts, or without --migrate-to: one line, status 2. */
    static const char *const bad[][8] = {
        {"--kernel", COUNTER, "--migrate-to", "unix:/tmp/x",
         "--migrate-connections", "0", NULL},
        {"--kernel", COUNTER, "--migrate-to", "unix:/tmp/x",
         "--migrate-connections", "17", NULL},
        {"--kernel", COUNTER, "--migrate-connections", "2", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(run_hvrun(&s, "bad", bad[i]), 2, "case %zu", i);
        char *err = output(&s, "bad", "err");
        assert_one_line(err, "--migrate-connections");
        free(err);
    }
    migt_drop_certs(&k);
    scratch_close(&s);
}

/* --incoming-timeout-ms: a source that connects, sends a few bytes and
 * then nothing, the connection open, makes the destination give up after
 * that long: one line naming the stall, status 2, no guest started. Bad
 * values, and the flag without --incoming, are usage errors. */
Test(hvrun_snapshot, incoming_gives_up_on_a_stalled_source)
{
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "mig.sock");
    char to[160], ser[160];
    snprintf(to, sizeof(to), "unix:%s", sock);
    snprintf(ser, sizeof(ser), "file:%s", in(&s, "dst.txt"));
    const char *dst[] = {"--incoming", to,         "--incoming-timeout-ms",
                         "300",        "--serial", ser,
                         NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int c = -1;
    for (int i = 0; i < 500 && c < 0; i++) {
        c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(c, 0);
        if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            close(c);
            c = -1;
            usleep(10000);
        }
    }
    cr_assert_geq(c, 0, "cannot connect to the destination");
    double t0 = now();
    cr_assert_eq(write(c, "HVCORE", 6), 6); /* a header cut short */
    int st = wait_exit(d, WAIT_S);
    double took = now() - t0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status 0x%x", st);
    char *err = output(&s, "dst", "err");
    assert_one_line(err, "stalled");
    cr_assert(strstr(err, "300 ms"), "%s", err);
    fprintf(stderr, "after %.2f s: %s", took, err);
    free(err);
    cr_assert(took >= 0.25 && took < 20, "gave up after %.2f s", took);
    char *text = slurp(in(&s, "dst.txt"), NULL);
    cr_assert_eq(text[0], 0, "a guest ran: %s", text);
    free(text);
    close(c);

    static const char *const bad[][6] = {
        {"--incoming", "unix:/tmp/x", "--incoming-timeout-ms", "soon", NULL},
        {"--incoming", "unix:/tmp/x", "--incoming-timeout-ms", "-1", NULL},
        {"--incoming", "unix:/tmp/x", "--incoming-timeout-ms", "86400001",
         NULL},
        {"--kernel", COUNTER, "--incoming-timeout-ms", "100", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(run_hvrun(&s, "bad", bad[i]), 2, "case %zu", i);
        err = output(&s, "bad", "err");
        assert_one_line(err, "--incoming-timeout-ms");
        fprintf(stderr, "%s", err);
        free(err);
    }
    scratch_close(&s);
}

#endif /* HVT_HVRUN */
