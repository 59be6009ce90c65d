/* examples/hvrun moving a guest between backends (issue 17): live
 * migration, hand-over and a snapshot file from an hvrun with one --accel
 * to an hvrun with another, two processes (the framework allows one VM per
 * process). The guest is tests/guests/counter64.S: its console goes on
 * with the next number on the other backend. Built only with
 * HVCORE_HVF_ON_KVM, run with HVCORE_HVF_HOST_LIBRARY set to tests/hvf_host
 * (tests/CMakeLists.txt). */
#include "hvrun_util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HVT_HVRUN /* built with the examples */

TestSuite(hvrun_cross, .timeout = 240);

static void require_both(void)
{
    hvt_require_kvm();
    cr_assert_eq(hvc_backend_probe("hvf"), 0, "hvf: %s", hvc_last_error());
    cr_assert_eq(hvc_backend_probe("kvm"), 0, "kvm: %s", hvc_last_error());
}

/* The number after @p key in @p line ("downtime 2.175 ms"); fails when
 * missing. */
static double number_after(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    cr_assert_not_null(p, "no '%s' in: %s", key, line);
    char *end;
    double v = strtod(p + strlen(key), &end);
    cr_assert_neq(end, p + strlen(key), "no number after '%s' in: %s", key,
                  line);
    return v;
}

/* Stops the hvrun @p pid (SIGTERM): status 130, nothing on its stderr. */
static void stop_quietly(const struct scratch *s, const char *tag, pid_t pid)
{
    kill(pid, SIGTERM);
    int st = wait_exit(pid, WAIT_S);
    char *err = output(s, tag, "err");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "%s: status 0x%x: %s",
              tag, st, err);
    cr_assert_str_empty(err, "%s said: %s", tag, err);
    free(err);
}

/* The counter guest under --accel @p accel, its console on @p serial
 * (file:PATH), then @p how and @p arg (and @p after, @p ms where not NULL):
 * in @p a, NULL-terminated. */
static void source_args(const char **a, const char *accel, const char *serial,
                        const char *how, const char *arg, const char *after,
                        const char *ms)
{
    const char *const base[] = {"--accel",  accel,    "--kernel", COUNTER,
                                "--raw",    "0x8000", "--mem",    "64",
                                "--serial", serial,   how,        arg};
    size_t n = sizeof(base) / sizeof(base[0]);
    memcpy(a, base, sizeof(base));
    if (after) {
        a[n++] = after;
        a[n++] = ms;
    }
    a[n] = NULL;
}

/* Runs the source hvrun (@p from -> @p to) to its end: status 0, one line
 * containing @p needle, the number after @p key in it (milliseconds) sane:
 * a pause, not a stop-and-copy of 64 MiB, generous for a loaded host. */
static double run_source(const struct scratch *s, const char *const *args,
                         const char *from, const char *to, const char *needle,
                         const char *key)
{
    int st = run_hvrun(s, "src", args);
    char *err = output(s, "src", "err");
    cr_assert_eq(st, 0, "%s -> %s: status %d: %s", from, to, st, err);
    assert_one_line(err, needle);
    double ms = number_after(err, key);
    cr_assert(ms > 0 && ms < 1000.0, "%s%.3f ms: %s", key, ms, err);
    fprintf(stderr, "%s -> %s: %s", from, to, err);
    free(err);
    return ms;
}

/* hvrun --accel @p from --migrate-to an hvrun --accel @p to --incoming:
 * the source exits 0 after one line with a sane downtime, the console goes
 * on at the destination with the next number, consecutive. */
static void live(const char *from, const char *to, const char *cpus)
{
    require_both();
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "mig.sock");
    char ser_dst[160], ser_src[160], addr[160];
    snprintf(ser_dst, sizeof(ser_dst), "file:%s", in(&s, "dst.txt"));
    snprintf(ser_src, sizeof(ser_src), "file:%s", in(&s, "src.txt"));
    snprintf(addr, sizeof(addr), "unix:%s", sock);
    const char *dst[] = {"--accel",  to,      "--incoming", addr,
                         "--serial", ser_dst, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    const char *src[20];
    source_args(src, from, ser_src, "--migrate-to", addr, "--migrate-after-ms",
                "200");
    src[14] = "--cpus"; /* after the 14 source_args() set */
    src[15] = cpus;
    src[16] = NULL;
    run_source(&s, src, from, to, "downtime", "downtime ");
    char *text = slurp(in(&s, "src.txt"), NULL);
    long last = last_count(text, NULL);
    cr_assert_gt(last, 0);
    assert_consecutive(text, 1);
    free(text);
    wait_for_count(in(&s, "dst.txt"), last + 20, WAIT_S, d);
    stop_quietly(&s, "dst", d);
    /* the source's last line, cut or not, goes on at the destination */
    cr_assert_geq(
        assert_consecutive_across(in(&s, "src.txt"), in(&s, "dst.txt")),
        last + 20);
    scratch_close(&s);
}

Test(hvrun_cross, live_migration_kvm_to_hvf)
{
    live("kvm", "hvf", "1");
}

Test(hvrun_cross, live_migration_hvf_to_kvm)
{
    live("hvf", "kvm", "1");
}

Test(hvrun_cross, live_migration_hvf_to_hvf)
{
    live("hvf", "hvf", "1");
}

/* --cpus 2: vCPU 1 (an AP the counter guest never starts) halts in the
 * library's userspace LAPIC, and the save, holding the VM's lock, reads
 * its state on its thread (it used to deadlock there). */
Test(hvrun_cross, live_migration_hvf_to_hvf_two_vcpus)
{
    live("hvf", "hvf", "2");
}

/* hvrun --accel @p from --handover-to an hvrun --accel @p to --incoming
 * (started on its own, so with its own accelerator): the new hvrun takes
 * the memory and the console descriptor, and the console counts on in the
 * same file. */
static void handover(const char *from, const char *to)
{
    require_both();
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "ho.sock");
    char ser[160], addr[160];
    snprintf(ser, sizeof(ser), "file:%s", in(&s, "con.txt"));
    snprintf(addr, sizeof(addr), "unix:%s", sock);
    const char *dst[] = {"--accel", to, "--incoming", addr, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    const char *src[20];
    source_args(src, from, ser, "--handover-to", addr, "--handover-after-ms",
                "150");
    run_source(&s, src, from, to, "handed over", "pause ");
    char *text = slurp(in(&s, "con.txt"), NULL);
    long last = last_count(text, NULL);
    free(text);
    cr_assert_gt(last, 0);
    wait_for_count(in(&s, "con.txt"), last + 20, WAIT_S, d);
    stop_quietly(&s, "dst", d);
    text = slurp(in(&s, "con.txt"), NULL);
    cr_assert_geq(assert_consecutive(text, 1), last + 20);
    free(text);
    scratch_close(&s);
}

Test(hvrun_cross, handover_kvm_to_hvf)
{
    handover("kvm", "hvf");
}

Test(hvrun_cross, handover_hvf_to_kvm)
{
    handover("hvf", "kvm");
}

Test(hvrun_cross, handover_hvf_to_hvf)
{
    handover("hvf", "hvf");
}

/* --upgrade-exec under hvf: the new hvrun gets the same --accel (it has
 * tests/hvf_host loaded, which only the hvf backend loads) and the console
 * counts on. */
Test(hvrun_cross, upgrade_exec_keeps_the_accelerator)
{
    require_both();
    struct scratch s;
    scratch_open(&s);
    char ser[160];
    snprintf(ser, sizeof(ser), "file:%s", in(&s, "con.txt"));
    const char *src[20];
    source_args(src, "hvf", ser, "--upgrade-exec", HVT_HVRUN, NULL, NULL);
    pid_t p = spawn_hvrun(&s, "src", NULL, src);
    wait_for_count(in(&s, "con.txt"), 10, WAIT_S, p);
    kill(p, SIGHUP);
    cr_assert_eq(WEXITSTATUS(wait_exit(p, WAIT_S)), 0);
    char *err = output(&s, "src", "err");
    assert_one_line(err, "handed over");
    const char *at = strstr(err, "(pid ");
    cr_assert_not_null(at, "%s", err);
    pid_t n = (pid_t)atoi(at + 5);
    cr_assert_gt(n, 0, "%s", err);
    free(err);
    char maps[64];
    snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)n);
    char *text = slurp(maps, NULL);
    bool hvf = strstr(text, "libhvf_host.so") != NULL;
    free(text);
    cr_assert(hvf, "the new hvrun (pid %d) has not loaded libhvf_host.so",
              (int)n);
    text = slurp(in(&s, "con.txt"), NULL);
    long last = last_count(text, NULL);
    free(text);
    wait_for_count(in(&s, "con.txt"), last + 20, WAIT_S, n);
    /* not our child: stopped, then gone */
    kill(n, SIGTERM);
    for (double end = now() + WAIT_S; kill(n, 0) == 0;) {
        cr_assert(now() < end, "pid %d did not stop", (int)n);
        usleep(10000);
    }
    text = slurp(in(&s, "con.txt"), NULL);
    cr_assert_geq(assert_consecutive(text, 1), last + 20);
    free(text);
    scratch_close(&s);
}

/* hvrun --accel @p from --snapshot, then hvrun --accel @p to --restore:
 * the console goes on with the next number. */
static void snapshot(const char *from, const char *to)
{
    require_both();
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "vm.snap");
    char *tail;
    const char *save[] = {"--accel", from, NULL};
    long k = snapshot_counter(&s, snap, "300", save, &tail);
    const char *restore[] = {"--accel", to, NULL};
    restore_and_check(&s, snap, restore, k, tail, SIGTERM);
    free(tail);
    scratch_close(&s);
}

Test(hvrun_cross, snapshot_hvf_restores_under_kvm)
{
    snapshot("hvf", "kvm");
}

Test(hvrun_cross, snapshot_kvm_restores_under_hvf)
{
    snapshot("kvm", "hvf");
}

/* A source under @p accel (console on src.txt) sent to @p addr on SIGUSR2
 * whose migration fails: one line saying the VM runs on; returns its pid. */
static pid_t source_that_runs_on(const struct scratch *s, const char *accel,
                                 const char *addr)
{
    char ser[160];
    snprintf(ser, sizeof(ser), "file:%s", in(s, "src.txt"));
    const char *src[20];
    source_args(src, accel, ser, "--migrate-to", addr, NULL, NULL);
    pid_t p = spawn_hvrun(s, "src", NULL, src);
    wait_for_count(in(s, "src.txt"), 10, WAIT_S, p);
    kill(p, SIGUSR2); /* no --migrate-after-ms: the signal starts it */
    char *err = wait_line(s, "src");
    assert_one_line(err, "the VM runs on");
    fprintf(stderr, "source: %s", err);
    free(err);
    return p;
}

/* The source @p p counts 10 more lines, consecutive from 1, and stops on
 * SIGTERM with status 130. */
static void counts_on_then_stop(const struct scratch *s, pid_t p)
{
    char *text = slurp(in(s, "src.txt"), NULL);
    long before = last_count(text, NULL);
    free(text);
    wait_for_count(in(s, "src.txt"), before + 10, WAIT_S, p);
    kill(p, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(p, WAIT_S)), 130);
    text = slurp(in(s, "src.txt"), NULL);
    assert_consecutive(text, 1);
    free(text);
}

/* A destination under hvf that refuses the stream (its --mem contradicts
 * the VM's): the source, under @p accel, says so in one line and counts
 * on. */
static void refused(const char *accel)
{
    require_both();
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "mig.sock");
    char addr[160];
    snprintf(addr, sizeof(addr), "unix:%s", sock);
    const char *dst[] = {"--accel", "hvf", "--incoming", addr,
                         "--mem",   "128", NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    pid_t p = source_that_runs_on(&s, accel, addr);
    /* the destination exits 2 with one line naming what it refused */
    int st = wait_exit(d, WAIT_S);
    char *err = output(&s, "dst", "err");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status 0x%x: %s", st,
              err);
    assert_one_line(err, "--mem 128");
    fprintf(stderr, "destination: %s", err);
    free(err);
    counts_on_then_stop(&s, p);
    scratch_close(&s);
}

Test(hvrun_cross, refused_by_hvf_destination_kvm_runs_on)
{
    refused("kvm");
}

Test(hvrun_cross, refused_by_hvf_destination_hvf_runs_on)
{
    refused("hvf");
}

/* --accel hvf where the framework cannot be loaded (a library that is not
 * there): the would-be destination exits 2 with one line naming the
 * accelerator, and a kvm source sent to its address runs on. */
Test(hvrun_cross, hvf_destination_that_cannot_open_leaves_the_source)
{
    require_both();
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "mig.sock");
    char addr[160];
    snprintf(addr, sizeof(addr), "unix:%s", sock);
    const char *lib = getenv("HVCORE_HVF_HOST_LIBRARY");
    char *saved = lib ? strdup(lib) : NULL;
    setenv("HVCORE_HVF_HOST_LIBRARY", in(&s, "no-such-libhvf_host.so"), 1);
    const char *dst[] = {"--accel", "hvf", "--incoming", addr, NULL};
    int st = run_hvrun(&s, "dst", dst);
    if (saved) {
        setenv("HVCORE_HVF_HOST_LIBRARY", saved, 1);
        free(saved);
    } else {
        unsetenv("HVCORE_HVF_HOST_LIBRARY");
    }
    char *err = output(&s, "dst", "err");
    cr_assert_eq(st, 2, "status %d: %s", st, err);
    assert_one_line(err, "--accel hvf");
    cr_assert_not_null(strstr(err, "no-such-libhvf_host.so"), "%s", err);
    free(err);
    cr_assert_neq(access(sock, F_OK), 0, "it left a socket behind");
    counts_on_then_stop(&s, source_that_runs_on(&s, "kvm", addr));
    scratch_close(&s);
}

#endif /* HVT_HVRUN */
