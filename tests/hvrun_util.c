/* Helpers shared by the hvrun snapshot suites (hvrun_util.h). */
#include "hvrun_util.h"
#include "migtest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HVT_HVRUN

extern char **environ;

double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void scratch_open(struct scratch *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/hvt-snap-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
}

const char *in(const struct scratch *s, const char *name)
{
    static char paths[16][128];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, 128, "%s/%s", s->dir, name);
    return p;
}

void scratch_close(struct scratch *s)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    (void)system(cmd);
}

/* Starts hvrun with args (NULL-terminated): stdin /dev/null, stdout to
 * <dir>/<tag>.out, stderr to <dir>/<tag>.err or to @err_path. */
pid_t spawn_hvrun(const struct scratch *s, const char *tag,
                  const char *err_path, const char *const *args)
{
    char out[128], err[128];
    snprintf(out, sizeof(out), "%s/%s.out", s->dir, tag);
    snprintf(err, sizeof(err), "%s/%s.err", s->dir, tag);
    const char *argv[40] = {HVT_HVRUN};
    int n = 1;
    for (; *args && n < 39; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_addopen(
        &fa, 2, err_path ? err_path : err,
        err_path ? O_RDWR | O_NOCTTY : O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    cr_assert_eq(
        posix_spawn(&pid, HVT_HVRUN, &fa, NULL, (char **)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* The wait status; SIGKILL and fail when hvrun takes over @secs. */
int wait_exit(pid_t pid, double secs)
{
    double end = now() + secs;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        cr_assert_neq(r, -1, "waitpid: %s", strerror(errno));
        if (r == pid)
            return st;
        if (now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("hvrun did not exit within %.0f s", secs);
        }
        usleep(10000);
    }
}

/* Whole file, NUL-terminated, malloc'ed ("" when missing). */
char *slurp(const char *path, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        size_t cap = 1 << 16;
        buf = malloc(cap + 1);
        cr_assert_not_null(buf);
        for (size_t k; (k = fread(buf + n, 1, cap - n, f)) > 0;) {
            n += k;
            if (n == cap) {
                cap *= 2;
                buf = realloc(buf, cap + 1);
                cr_assert_not_null(buf);
            }
        }
        fclose(f);
    } else {
        buf = malloc(1);
        cr_assert_not_null(buf);
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

char *output(const struct scratch *s, const char *tag, const char *what)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s.%s", s->dir, tag, what);
    return slurp(path, NULL);
}

/* hvrun's stderr is exactly one line "hvrun: ..." (containing @needle
 * when not NULL). */
void assert_one_line(const char *err, const char *needle)
{
    size_t n = strlen(err);
    cr_assert(n > 0 && strncmp(err, "hvrun: ", 7) == 0, "stderr: [%s]", err);
    cr_assert(strchr(err, '\n') == err + n - 1, "not one line: [%s]", err);
    if (needle)
        cr_assert(strstr(err, needle), "stderr lacks \"%s\": %s", needle, err);
}

/* Runs hvrun to its end; its exit status (it must not die by a signal). */
int run_hvrun(const struct scratch *s, const char *tag, const char *const *args)
{
    int st = wait_exit(spawn_hvrun(s, tag, NULL, args), WAIT_S);
    char *err = output(s, tag, "err");
    cr_assert(WIFEXITED(st), "hvrun died by signal %d; stderr: %s",
              WTERMSIG(st), err);
    free(err);
    return WEXITSTATUS(st);
}

/* The number of the last complete "count N\r\n" line in @text (0: none);
 * @tail receives what follows it (a line the snapshot cut short). */
long last_count(const char *text, const char **tail)
{
    long last = 0;
    const char *end = text;
    for (const char *p = text; (p = strstr(p, "count ")); p++) {
        char *e;
        long v = strtol(p + 6, &e, 10);
        if (e > p + 6 && strncmp(e, "\r\n", 2) == 0) {
            last = v;
            end = e + 2;
        }
    }
    if (tail)
        *tail = end;
    return last;
}

/* Every line of @text is "count N\r\n", from @first on, without a gap
 * (the last line may be cut short); the last complete N. */
long assert_consecutive(const char *text, long first)
{
    long n = first;
    const char *p = text;
    char want[48];
    while (*p) {
        int k = snprintf(want, sizeof(want), "count %ld\r\n", n);
        if (strncmp(p, want, (size_t)k) != 0) {
            cr_assert(strlen(p) < (size_t)k && strncmp(p, want, strlen(p)) == 0,
                      "expected \"count %ld\" at byte %zu, got [%.40s]", n,
                      (size_t)(p - text), p);
            break;
        }
        p += k;
        n++;
    }
    return n - 1;
}

/* Waits until the file holds "count @n\r\n". */
void wait_for_count(const char *path, long n, double secs, pid_t pid)
{
    char want[48];
    snprintf(want, sizeof(want), "count %ld\r\n", n);
    double end = now() + secs;
    for (;;) {
        char *text = slurp(path, NULL);
        bool found = strstr(text, want) != NULL;
        free(text);
        if (found)
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char err[160];
            snprintf(err, sizeof(err), "%.*s.err", (int)(strlen(path) - 4),
                     path);
            char *e = slurp(err, NULL);
            cr_assert_fail("hvrun exited (status 0x%x) before \"count %ld\"; "
                           "stderr: %s",
                           st, n, e);
        }
        if (now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            cr_assert_fail("no \"count %ld\" within %.0f s", n, secs);
        }
        usleep(20000);
    }
}

/* Boots the counter guest with @extra args and --snapshot @snap
 * --snapshot-after-ms @ms; checks it exits 0 with @snap written and
 * nothing else left next to it; the last complete count and the console
 * text after it (*tail, malloc'ed). */
long snapshot_counter(const struct scratch *s, const char *snap, const char *ms,
                      const char *const *extra, char **tail)
{
    const char *args[40] = {"--kernel",
                            COUNTER,
                            "--raw",
                            "0x8000",
                            "--mem",
                            "64",
                            "--snapshot",
                            snap,
                            "--snapshot-after-ms",
                            ms};
    int n = 10;
    for (; extra && *extra && n < 39; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    int status = run_hvrun(s, "save", args);
    char *err = output(s, "save", "err");
    cr_assert_eq(status, 0, "status %d; stderr: %s", status, err);
    cr_assert_str_empty(err, "stderr is no terminal: no progress line");
    free(err);
    struct stat st;
    cr_assert_eq(stat(snap, &st), 0, "no snapshot at %s", snap);
    cr_assert_gt(st.st_size, 4096);
    char *console = output(s, "save", "out");
    long k = assert_consecutive(console, 1);
    const char *t;
    cr_assert_eq(last_count(console, &t), k);
    cr_assert_gt(k, 10, "the guest counted only to %ld", k);
    *tail = strdup(t);
    free(console);
    return k;
}

/* Restores @snap (with @extra args) in a new hvrun, waits for count
 * @k + @more, stops it with @sig and checks status 130 and that the console
 * (after the cut-short line @tail of the saving run) goes on from k + 1. */
void restore_and_check(const struct scratch *s, const char *snap,
                       const char *const *extra, long k, const char *tail,
                       int sig)
{
    const char *args[40] = {"--restore", snap};
    int n = 2;
    for (; extra && *extra && n < 39; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    pid_t pid = spawn_hvrun(s, "restore", NULL, args);
    wait_for_count(in(s, "restore.out"), k + 20, WAIT_S, pid);
    kill(pid, sig);
    int st = wait_exit(pid, WAIT_S);
    char *err = output(s, "restore", "err");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130,
              "status 0x%x after signal %d; stderr: %s", st, sig, err);
    cr_assert_str_empty(err);
    free(err);
    char *console = output(s, "restore", "out");
    size_t tl = strlen(tail);
    char *joined = malloc(tl + strlen(console) + 1);
    cr_assert_not_null(joined);
    memcpy(joined, tail, tl);
    strcpy(joined + tl, console);
    /* The first count line is exactly the next number, then no gaps. */
    long last = assert_consecutive(joined, k + 1);
    cr_assert_geq(last, k + 20);
    free(joined);
    free(console);
}

void write_bytes(const char *path, const void *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
}
void wait_for_path(const char *path)
{
    for (double end = now() + WAIT_S; access(path, F_OK) != 0;) {
        cr_assert(now() < end, "--incoming never listened (%s)", path);
        usleep(10000);
    }
}

char *wait_line(const struct scratch *s, const char *tag)
{
    for (double end = now() + WAIT_S;;) {
        char *err = output(s, tag, "err");
        if (strchr(err, '\n'))
            return err;
        free(err);
        cr_assert(now() < end, "no line from %s", tag);
        usleep(10000);
    }
}

long assert_consecutive_across(const char *first, const char *then)
{
    char *a = slurp(first, NULL), *b = slurp(then, NULL);
    size_t la = strlen(a), lb = strlen(b);
    char *all = malloc(la + lb + 1);
    cr_assert_not_null(all);
    memcpy(all, a, la);
    memcpy(all + la, b, lb + 1);
    long n = assert_consecutive(all, 1);
    free(all);
    free(a);
    free(b);
    return n;
}

#endif /* HVT_HVRUN */
