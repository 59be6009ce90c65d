/* examples/hvrun's hand-over, end to end: --handover-to and --incoming
 * between two hvrun processes, and --upgrade-exec of hvrun to itself. The
 * guest is tests/guests/counter64.S; the console is a --serial file the
 * new hvrun writes through the descriptor the old one passed it, so one
 * file holds the whole count. */
#include "hvrun_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HVT_HVRUN /* built with the examples */

TestSuite(hvrun_handover, .timeout = 240);

/* Whether process @pid has @path open. */
static bool has_open(pid_t pid, const char *path)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        char link[320], target[256];
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = 0;
            found = strcmp(target, path) == 0;
        }
    }
    if (d)
        closedir(d);
    return found;
}

static void wait_gone(pid_t pid)
{
    for (double end = now() + WAIT_S; kill(pid, 0) == 0;) {
        cr_assert(now() < end, "pid %d did not exit", (int)pid);
        usleep(10000);
    }
}

/* --handover-to: the guest goes on in the hvrun listening with --incoming,
 * writing the same console file and holding the same disk open; the old
 * hvrun exits 0 after one line with the pause. */
Test(hvrun_handover, handover_to_incoming)
{
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "ho.sock");
    const char *disk = in(&s, "disk.img");
    write_bytes(disk, "", 0);
    cr_assert_eq(truncate(disk, 1 << 20), 0);
    char ser[160], to[160], dsk[160];
    snprintf(ser, sizeof(ser), "file:%s", in(&s, "con.txt"));
    snprintf(to, sizeof(to), "unix:%s", sock);
    snprintf(dsk, sizeof(dsk), "%s", disk);
    /* No --serial, no --disk: what the old hvrun had comes with the VM. */
    const char *dst[] = {"--incoming", to, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    const char *src[] = {"--kernel",
                         COUNTER,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--cpus",
                         "2",
                         "--serial",
                         ser,
                         "--disk",
                         dsk,
                         "--handover-to",
                         to,
                         "--handover-after-ms",
                         "150",
                         NULL};
    cr_assert_eq(run_hvrun(&s, "src", src), 0);
    char *err = output(&s, "src", "err");
    assert_one_line(err, "handed over");
    cr_assert_not_null(strstr(err, "2 device descriptors"), "%s", err);
    fprintf(stderr, "%s", err);
    free(err);
    char *text = slurp(in(&s, "con.txt"), NULL);
    long last = last_count(text, NULL);
    free(text);
    cr_assert_gt(last, 0);
    wait_for_count(in(&s, "con.txt"), last + 20, WAIT_S, d);
    cr_assert(has_open(d, disk), "the new hvrun does not hold the disk");
    cr_assert(has_open(d, in(&s, "con.txt")), "nor the console file");
    kill(d, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 130);
    text = slurp(in(&s, "con.txt"), NULL);
    cr_assert_geq(assert_consecutive(text, 1), last + 20);
    free(text);
    err = output(&s, "dst", "err");
    cr_assert_str_eq(err, "", "the new hvrun said: %s", err);
    free(err);
    scratch_close(&s);
}

/* The new hvrun refuses (its --mem contradicts the VM's): the old one
 * says so in one line, without having paused the guest, and counts on. */
Test(hvrun_handover, refused_runs_on)
{
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "ho.sock");
    char ser[160], to[160];
    snprintf(ser, sizeof(ser), "file:%s", in(&s, "con.txt"));
    snprintf(to, sizeof(to), "unix:%s", sock);
    const char *dst[] = {"--incoming", to, "--mem", "128", NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    const char *src[] = {"--kernel",      COUNTER, "--raw",    "0x8000",
                         "--mem",         "64",    "--serial", ser,
                         "--handover-to", to,      NULL};
    pid_t p = spawn_hvrun(&s, "src", NULL, src);
    wait_for_count(in(&s, "con.txt"), 10, WAIT_S, p);
    kill(p, SIGUSR2);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 2);
    char *err = output(&s, "dst", "err");
    assert_one_line(err, "--mem 128");
    free(err);
    err = wait_line(&s, "src");
    assert_one_line(err, "never paused");
    free(err);
    char *text = slurp(in(&s, "con.txt"), NULL);
    long before = last_count(text, NULL);
    free(text);
    wait_for_count(in(&s, "con.txt"), before + 10, WAIT_S, p);
    kill(p, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(p, WAIT_S)), 130);
    scratch_close(&s);
}

static pid_t pid_in(const char *err)
{
    const char *p = strstr(err, "(pid ");
    cr_assert_not_null(p, "no pid in: %s", err);
    return (pid_t)atoi(p + 5);
}

/* --upgrade-exec with hvrun itself, twice: each SIGHUP starts a new hvrun
 * that takes the guest over; the old one exits 0 and the console counts
 * on in the same file without a gap. */
Test(hvrun_handover, upgrade_exec_to_itself)
{
    struct scratch s;
    scratch_open(&s);
    char ser[160];
    snprintf(ser, sizeof(ser), "file:%s", in(&s, "con.txt"));
    const char *src[] = {"--kernel", COUNTER, "--raw",          "0x8000",
                         "--mem",    "64",    "--cpus",         "4",
                         "--serial", ser,     "--upgrade-exec", HVT_HVRUN,
                         NULL};
    pid_t p = spawn_hvrun(&s, "src", NULL, src);
    wait_for_count(in(&s, "con.txt"), 10, WAIT_S, p);
    kill(p, SIGHUP);
    cr_assert_eq(WEXITSTATUS(wait_exit(p, WAIT_S)), 0);
    char *err = output(&s, "src", "err");
    assert_one_line(err, "handed over");
    fprintf(stderr, "%s", err);
    pid_t n1 = pid_in(err);
    free(err);
    char *text = slurp(in(&s, "con.txt"), NULL);
    long last = last_count(text, NULL);
    free(text);
    wait_for_count(in(&s, "con.txt"), last + 20, WAIT_S, n1);
    /* The new hvrun upgrades again; it writes to the same stderr. */
    kill(n1, SIGHUP);
    wait_gone(n1);
    err = output(&s, "src", "err");
    char *second = strchr(err, '\n');
    cr_assert(second && second[1], "no second line: %s", err);
    pid_t n2 = pid_in(second + 1);
    cr_assert_neq(n2, n1);
    free(err);
    text = slurp(in(&s, "con.txt"), NULL);
    last = last_count(text, NULL);
    free(text);
    wait_for_count(in(&s, "con.txt"), last + 20, WAIT_S, n2);
    kill(n2, SIGTERM);
    wait_gone(n2);
    text = slurp(in(&s, "con.txt"), NULL);
    cr_assert_geq(assert_consecutive(text, 1), last + 20);
    free(text);
    scratch_close(&s);
}

/* Usage errors: one line, status 2. */
Test(hvrun_handover, usage_errors)
{
    struct scratch s;
    scratch_open(&s);
    const char *a[] = {
        "--kernel", COUNTER, "--raw", "0x8000", "--handover-after-ms",
        "10",       NULL};
    cr_assert_eq(run_hvrun(&s, "a", a), 2);
    char *err = output(&s, "a", "err");
    assert_one_line(err, "--handover-to");
    free(err);
    const char *b[] = {"--kernel", COUNTER,          "--raw",
                       "0x8000",   "--upgrade-exec", "/nonexistent/hvrun",
                       NULL};
    cr_assert_eq(run_hvrun(&s, "b", b), 2);
    err = output(&s, "b", "err");
    assert_one_line(err, "not an executable");
    free(err);
    const char *c[] = {"--incoming", "fd:0", NULL}; /* /dev/null */
    cr_assert_eq(run_hvrun(&s, "c", c), 2);
    err = output(&s, "c", "err");
    assert_one_line(err, "not an open socket");
    free(err);
    const char *d[] = {"--kernel",      COUNTER, "--raw", "0x8000",
                       "--handover-to", "tcp:1", NULL};
    cr_assert_eq(run_hvrun(&s, "d", d), 2);
    err = output(&s, "d", "err");
    assert_one_line(err, "unix:PATH");
    free(err);
    scratch_close(&s);
}

#endif /* HVT_HVRUN */
