/* examples/hvrun's snapshots, end to end: --snapshot (after a delay, or on
 * SIGUSR1 with --keep-running), --restore in a new process (read and mmap
 * modes), --key-file encryption, and snapshots that must be refused. The
 * guest is tests/guests/counter64.S: vCPU 0 prints "count N\r\n" on COM1
 * forever, so a restored VM must go on with exactly the next number. */
#include "hvtest.h"
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

#ifdef HVT_HVRUN /* built with the examples */

extern char **environ;

#define COUNTER HVT_GUEST_DIR "/counter64.bin"
#define WAIT_S 60.0 /* for anything hvrun should do in a second or two */

/* A hang fails the test instead of blocking the suite. */
TestSuite(hvrun_snapshot, .timeout = 240);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A test's scratch directory and the files in it. */
struct scratch {
    char dir[64];
};

static void scratch_open(struct scratch *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/hvt-snap-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
}

static const char *in(const struct scratch *s, const char *name)
{
    static char paths[16][128];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, 128, "%s/%s", s->dir, name);
    return p;
}

static void scratch_close(struct scratch *s)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    (void)system(cmd);
}

/* Starts hvrun with args (NULL-terminated): stdin /dev/null, stdout to
 * <dir>/<tag>.out, stderr to <dir>/<tag>.err or to @err_path. */
static pid_t spawn_hvrun(const struct scratch *s, const char *tag,
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
static int wait_exit(pid_t pid, double secs)
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
static char *slurp(const char *path, size_t *len)
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

static char *output(const struct scratch *s, const char *tag, const char *what)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s.%s", s->dir, tag, what);
    return slurp(path, NULL);
}

/* hvrun's stderr is exactly one line "hvrun: ..." (containing @needle
 * when not NULL). */
static void assert_one_line(const char *err, const char *needle)
{
    size_t n = strlen(err);
    cr_assert(n > 0 && strncmp(err, "hvrun: ", 7) == 0, "stderr: [%s]", err);
    cr_assert(strchr(err, '\n') == err + n - 1, "not one line: [%s]", err);
    if (needle)
        cr_assert(strstr(err, needle), "stderr lacks \"%s\": %s", needle, err);
}

/* Runs hvrun to its end; its exit status (it must not die by a signal). */
static int run_hvrun(const struct scratch *s, const char *tag,
                     const char *const *args)
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
static long last_count(const char *text, const char **tail)
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
static long assert_consecutive(const char *text, long first)
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
static void wait_for_count(const char *path, long n, double secs, pid_t pid)
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
static long snapshot_counter(const struct scratch *s, const char *snap,
                             const char *ms, const char *const *extra,
                             char **tail)
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
static void restore_and_check(const struct scratch *s, const char *snap,
                              const char *const *extra, long k,
                              const char *tail, int sig)
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

Test(hvrun_snapshot, restore_continues_the_count)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "vm.snap");
    char *tail;
    long k = snapshot_counter(&s, snap, "1500", NULL, &tail);
    /* written aside and renamed: nothing else is left in the directory */
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 3", s.dir);
    cr_assert_eq(system(cmd), 0, "a temporary file was left in %s", s.dir);
    restore_and_check(&s, snap, NULL, k, tail, SIGINT);

    /* the snapshot's configuration decides; a conflicting flag is refused */
    const char *mem[] = {"--restore", snap, "--mem", "128", NULL};
    cr_assert_eq(run_hvrun(&s, "conflict", mem), 2);
    char *err = output(&s, "conflict", "err");
    assert_one_line(err, "--mem 128 conflicts with the snapshot's 64 MiB");
    free(err);
    free(tail);
    scratch_close(&s);
}

Test(hvrun_snapshot, restore_mmap_with_devices)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *disk = in(&s, "disk.img");
    const char *other = in(&s, "other.img");
    for (int i = 0; i < 2; i++) {
        int fd = open(i ? other : disk, O_WRONLY | O_CREAT, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, 1 << 20), 0);
        close(fd);
    }
    char ro[160], other_ro[160];
    snprintf(ro, sizeof(ro), "%s,ro", disk);
    snprintf(other_ro, sizeof(other_ro), "%s,ro", other);
    const char *snap = in(&s, "vm.snap");
    const char *devs[] = {"--cpus", "2", "--disk", ro, "--rng", NULL};
    char *tail;
    long k = snapshot_counter(&s, snap, "1500", devs, &tail);
    /* the disk moved: --disk points the restored one at the new path */
    const char *mmap[] = {"--restore-mode", "mmap", "--disk", other_ro, NULL};
    restore_and_check(&s, snap, mmap, k, tail, SIGTERM);

    const char *rw[] = {"--restore", snap, "--disk", other, NULL};
    cr_assert_eq(run_hvrun(&s, "rw", rw), 2);
    char *err = output(&s, "rw", "err");
    assert_one_line(err, "read-only");
    free(err);
    free(tail);
    scratch_close(&s);
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Waits until @path exists with an inode other than @old. */
static ino_t wait_for_new_file(const char *path, ino_t old, pid_t pid)
{
    double end = now() + WAIT_S;
    for (;;) {
        ino_t ino = inode_of(path);
        if (ino && ino != old)
            return ino;
        int st;
        cr_assert_neq(waitpid(pid, &st, WNOHANG), pid,
                      "hvrun exited (status 0x%x) instead of saving", st);
        if (now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            cr_assert_fail("no snapshot at %s within %.0f s", path, WAIT_S);
        }
        usleep(20000);
    }
}

Test(hvrun_snapshot, keep_running_snapshots_on_sigusr1)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "vm.snap");
    const char *args[] = {"--kernel",       COUNTER, "--raw",      "0x8000",
                          "--mem",          "64",    "--snapshot", snap,
                          "--keep-running", NULL};
    pid_t pid = spawn_hvrun(&s, "run", NULL, args);
    const char *out = in(&s, "run.out");
    wait_for_count(out, 200, WAIT_S, pid);
    kill(pid, SIGUSR1);
    ino_t first = wait_for_new_file(snap, 0, pid);
    char *text = slurp(out, NULL);
    long at = last_count(text, NULL);
    free(text);
    /* the VM goes on counting after the snapshot */
    wait_for_count(out, at + 300, WAIT_S, pid);
    kill(pid, SIGUSR1);
    wait_for_new_file(snap, first, pid); /* replaced by a rename */
    text = slurp(out, NULL);
    long second = last_count(text, NULL);
    free(text);
    wait_for_count(out, second + 100, WAIT_S, pid);
    kill(pid, SIGTERM);
    int st = wait_exit(pid, WAIT_S);
    char *err = output(&s, "run", "err");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status 0x%x: %s", st,
              err);
    cr_assert_str_empty(err);
    free(err);
    text = slurp(out, NULL);
    long total = assert_consecutive(text, 1); /* the pauses lost nothing */
    free(text);

    /* the second snapshot restores to a count from around then */
    const char *restore[] = {"--restore", snap, NULL};
    pid = spawn_hvrun(&s, "restore", NULL, restore);
    wait_for_count(in(&s, "restore.out"), second + 200, WAIT_S, pid);
    kill(pid, SIGINT);
    st = wait_exit(pid, WAIT_S);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status 0x%x", st);
    text = output(&s, "restore", "out");
    const char *p = strstr(text, "count ");
    cr_assert_not_null(p, "%s", text);
    /* the restored console may start inside the line the save cut short */
    long from = strtol(p + 6, NULL, 10);
    cr_assert(from > at + 300 - 1 && from <= total,
              "restored at %ld (%ld..%ld)", from, at + 300, total);
    assert_consecutive(p, from);
    free(text);
    scratch_close(&s);
}

static void write_bytes(const char *path, const void *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
}

Test(hvrun_snapshot, encrypted_snapshot_needs_its_key)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    uint8_t key[33];
    for (int i = 0; i < 33; i++)
        key[i] = (uint8_t)(i * 37 + 11);
    const char *good = in(&s, "good.key");
    const char *wrong = in(&s, "wrong.key");
    const char *shortk = in(&s, "short.key");
    write_bytes(good, key, 32);
    write_bytes(wrong, key + 1, 32);
    write_bytes(shortk, key, 31);
    const char *snap = in(&s, "vm.snap");

    const char *bad[] = {"--kernel",   COUNTER,      "--raw",
                         "0x8000",     "--snapshot", snap,
                         "--key-file", shortk,       NULL};
    cr_assert_eq(run_hvrun(&s, "short", bad), 2);
    char *err = output(&s, "short", "err");
    assert_one_line(err, "holds 31 bytes");
    free(err);

    const char *with_key[] = {"--key-file", good, NULL};
    char *tail;
    long k = snapshot_counter(&s, snap, "1000", with_key, &tail);
    /* neither the guest's code nor hvrun's configuration is readable */
    size_t len;
    char *raw = slurp(snap, &len);
    cr_assert_null(memmem(raw, len, "count ", 6));
    cr_assert_null(memmem(raw, len, "HVRUNCFG", 8));
    free(raw);

    const char *nokey[] = {"--restore", snap, NULL};
    int status = run_hvrun(&s, "nokey", nokey);
    err = output(&s, "nokey", "err");
    cr_assert_neq(status, 0);
    assert_one_line(err, NULL);
    free(err);
    const char *wrongkey[] = {"--restore", snap, "--key-file", wrong, NULL};
    status = run_hvrun(&s, "wrongkey", wrongkey);
    err = output(&s, "wrongkey", "err");
    cr_assert_eq(status, 2, "status %d: %s", status, err);
    assert_one_line(err, "--restore");
    free(err);

    restore_and_check(&s, snap, with_key, k, tail, SIGINT);
    free(tail);
    scratch_close(&s);
}

Test(hvrun_snapshot, truncated_or_missing_snapshot_is_refused)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "vm.snap");
    char *tail;
    snapshot_counter(&s, snap, "300", NULL, &tail);
    free(tail);
    size_t len;
    char *whole = slurp(snap, &len);
    const size_t cuts[] = {0, 40, 100, 4096, len / 2, len - 1};
    const char *modes[] = {"read", "mmap"};
    for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
        const char *cut = in(&s, "cut.snap");
        write_bytes(cut, whole, cuts[c]);
        for (int m = 0; m < 2; m++) {
            const char *args[] = {"--restore", cut, "--restore-mode", modes[m],
                                  NULL};
            int status = run_hvrun(&s, "cut", args);
            char *err = output(&s, "cut", "err");
            cr_assert_eq(status, 2, "%zu of %zu bytes (%s): status %d: %s",
                         cuts[c], len, modes[m], status, err);
            assert_one_line(err, "--restore");
            free(err);
            char *out = output(&s, "cut", "out");
            cr_assert_str_empty(out, "a refused snapshot ran: %s", out);
            free(out);
        }
    }
    free(whole);
    const char *missing[] = {"--restore", in(&s, "nonexistent.snap"), NULL};
    cr_assert_eq(run_hvrun(&s, "missing", missing), 2);
    char *err = output(&s, "missing", "err");
    assert_one_line(err, "nonexistent.snap");
    free(err);
    scratch_close(&s);
}

Test(hvrun_snapshot, usage_errors)
{
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "vm.snap");
    static const struct {
        const char *args[8];
        const char *needle;
    } cases[] = {
        {{"--restore", "x.snap", "--kernel", COUNTER},
         "--kernel cannot be combined with --restore"},
        {{"--restore", "x.snap", "--raw", "0x8000"}, "--raw cannot be"},
        {{"--kernel", COUNTER, "--snapshot-after-ms", "10"},
         "--snapshot-after-ms goes with --snapshot"},
        {{"--kernel", COUNTER, "--keep-running"}, "--keep-running goes with"},
        {{"--restore", "x.snap", "--restore-mode", "lazy"},
         "--restore-mode: 'lazy' is not read or mmap"},
        {{"--kernel", COUNTER, "--key-file", "/etc/hostname"},
         "--key-file and --passphrase-file go with"},
        {{"--kernel", COUNTER, "--snapshot", "/nonexistent/dir/x.snap"},
         "cannot write in '/nonexistent/dir'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status = run_hvrun(&s, "usage", cases[i].args);
        char *err = output(&s, "usage", "err");
        cr_assert_eq(status, 2, "case %zu: status %d: %s", i, status, err);
        assert_one_line(err, cases[i].needle);
        free(err);
    }
    (void)snap;
    scratch_close(&s);
}

Test(hvrun_snapshot, passphrase_file)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *pass = in(&s, "pass");
    const char *other = in(&s, "other");
    write_bytes(pass, "correct horse battery staple\n", 29);
    write_bytes(other, "incorrect horse\n", 16);
    const char *snap = in(&s, "vm.snap");
    const char *with_pass[] = {"--passphrase-file", pass, NULL};
    char *tail;
    long k = snapshot_counter(&s, snap, "800", with_pass, &tail);
    const char *wrong[] = {"--restore", snap, "--passphrase-file", other, NULL};
    cr_assert_eq(run_hvrun(&s, "wrong", wrong), 2);
    char *err = output(&s, "wrong", "err");
    assert_one_line(err, NULL);
    free(err);
    restore_and_check(&s, snap, with_pass, k, tail, SIGINT);
    free(tail);
    scratch_close(&s);
}

/* Saves a VM of the library's own (the counter guest, a UART) whose user
 * data is @user: a snapshot hvrun did not write. */
static void forge(const char *path, const void *user, size_t len)
{
    migt m;
    migt_open(&m, 1, NULL);
    HVT_OK(hvc_vm_pause(m.vm));
    hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
    so.user_data = user;
    so.user_data_length = len;
    HVT_OK(hvc_snapshot_save(m.vm, path, &so));
    migt_close(&m);
}

/* The user data is hostile input too: hvrun refuses what it did not
 * write, in one line, before attaching anything. */
Test(hvrun_snapshot, foreign_user_data_is_refused)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
#define HDR "HVRUNCFG\x01\x00"
#define MEM "\x01\x00\x08\x00\x40\0\0\0\0\0\0\0"
#define CPUS "\x02\x00\x04\x00\x01\0\0\0"
#define SERIAL "\x03\x00\x01\x00\x00"
    static const struct {
        const char *data;
        size_t len;
        const char *needle;
    } cases[] = {
        {NULL, 0, "holds no hvrun configuration"},
        {"not hvrun", 9, "is not an hvrun configuration"},
        {"HVRUNCFG\x02\x00\x00\x00", 12, "version 2"},
        {HDR "\x03\x00" MEM CPUS, 32, "truncated at 32"},
        {HDR "\x01\x00\x01\x00\xff\x7f", 16, "passes the end"},
        {HDR "\x03\x00" MEM CPUS "\x03\x00\x01\x00\x05", 37,
         "malformed field 3"},
        {HDR "\x01\x00\x02\x00\x04\x00\x00\x01\x00\x00", 20,
         "256 vCPUs is out of range"},
        {HDR "\x02\x00" MEM MEM, 36, "field 1 twice"},
        {HDR "\x01\x00\x09\x00\x00\x00", 16, "unknown field 9"},
        {HDR "\x01\x00\x04\x00\x03\x00\0a\0", 19, "malformed field 4"},
        {HDR "\x02\x00" MEM CPUS, 32, "lacks RAM size"},
        {HDR "\x03\x00" MEM CPUS SERIAL "!", 38, "1 stray bytes"},
    };
    const char *snap = in(&s, "forged.snap");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        forge(snap, cases[i].data, cases[i].len);
        const char *args[] = {"--restore", snap, NULL};
        int status = run_hvrun(&s, "forged", args);
        char *err = output(&s, "forged", "err");
        cr_assert_eq(status, 2, "case %zu: status %d: %s", i, status, err);
        assert_one_line(err, cases[i].needle);
        free(err);
    }
    /* well-formed, but the VM has other devices than hvrun attaches */
    forge(snap, HDR "\x03\x00" MEM CPUS SERIAL, 37);
    const char *args[] = {"--restore", snap, NULL};
    cr_assert_eq(run_hvrun(&s, "forged", args), 2);
    char *err = output(&s, "forged", "err");
    assert_one_line(err, "devices");
    free(err);
    scratch_close(&s);
}

/* A pseudo-terminal for hvrun's stderr; the master end. */
static int open_pty(char *slave, size_t cap)
{
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(grantpt(fd), 0);
    cr_assert_eq(unlockpt(fd), 0);
    snprintf(slave, cap, "%s", ptsname(fd));
    return fd;
}

static void read_pty(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (ssize_t k; n + 1 < cap && (k = read(fd, buf + n, cap - 1 - n)) > 0;)
        n += (size_t)k;
    buf[n] = 0;
}

Test(hvrun_snapshot, progress_line_on_a_terminal)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "vm.snap");
    char slave[64];
    int master = open_pty(slave, sizeof(slave));
    const char *args[] = {"--kernel",   COUNTER, "--raw",
                          "0x8000",     "--mem", "64",
                          "--snapshot", snap,    "--snapshot-after-ms",
                          "200",        NULL};
    int st = wait_exit(spawn_hvrun(&s, "save", slave, args), WAIT_S);
    char buf[8192];
    read_pty(master, buf, sizeof(buf));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x: %s", st,
              buf);
    cr_assert(strncmp(buf, "\rhvrun: saving '", 16) == 0, "[%s]", buf);
    cr_assert(strstr(buf, "MB/s") && strstr(buf, ", done"), "[%s]", buf);
    cr_assert(strchr(buf, '\n') == buf + strlen(buf) - 1,
              "one line, ended once: [%s]", buf);

    const char *restore[] = {"--restore", snap, NULL};
    pid_t pid = spawn_hvrun(&s, "restore", slave, restore);
    char *text = output(&s, "save", "out");
    long k = last_count(text, NULL);
    free(text);
    wait_for_count(in(&s, "restore.out"), k + 5, WAIT_S, pid);
    kill(pid, SIGINT);
    st = wait_exit(pid, WAIT_S);
    read_pty(master, buf, sizeof(buf));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status 0x%x", st);
    cr_assert(strncmp(buf, "\rhvrun: restoring '", 19) == 0, "[%s]", buf);
    cr_assert(strstr(buf, "MB/s") && strstr(buf, ", done"), "[%s]", buf);
    cr_assert(strchr(buf, '\n') == buf + strlen(buf) - 1,
              "one line, ended once: [%s]", buf);
    close(master);
    scratch_close(&s);
}

/* Sections of a stream file: the offset of the first with id @id at or
 * after @from (0: none). */
#define SEC_HDR 24
static size_t find_section(const uint8_t *f, size_t len, uint16_t id,
                           size_t from)
{
    for (size_t off = 80; off + SEC_HDR <= len;) {
        uint16_t sid;
        uint64_t n;
        memcpy(&sid, f + off, 2);
        memcpy(&n, f + off + 8, 8);
        if (sid == id && off >= from)
            return off;
        if (n > len - off - SEC_HDR)
            break;
        off += SEC_HDR + (size_t)n;
    }
    return 0;
}

/* Rewrites the CRC of the (unencrypted, non-memory) section at @off. */
static void reseal(uint8_t *f, size_t off)
{
    uint64_t n;
    memcpy(&n, f + off + 8, 8);
    uint32_t crc = migt_crc32c(0, f + off, 20);
    crc = migt_crc32c(crc, f + off + SEC_HDR, (size_t)n);
    memcpy(f + off + 20, &crc, 4);
}

/* The value of field @tag of the tagged record (u16 tag, u16 kind, u32
 * length, value padded to 8) at @p; NULL when absent. */
static uint8_t *record_field(uint8_t *p, size_t len, uint16_t tag)
{
    for (size_t off = 0; off + 8 <= len;) {
        uint16_t t;
        uint32_t n;
        memcpy(&t, p + off, 2);
        memcpy(&n, p + off + 4, 4);
        if (t == tag)
            return p + off + 8;
        off += 8 + (((size_t)n + 7) & ~(size_t)7);
    }
    return NULL;
}

/* Restores @path with hvrun in read and mmap mode: each must exit 2
 * with one line containing @needle, and run nothing. */
static void refused_both_modes(struct scratch *s, const char *path,
                               const char *needle)
{
    const char *modes[] = {"read", "mmap"};
    for (int m = 0; m < 2; m++) {
        const char *args[] = {"--restore", path, "--restore-mode", modes[m],
                              NULL};
        int status = run_hvrun(s, "forged", args);
        char *err = output(s, "forged", "err");
        cr_assert_eq(status, 2, "%s: status %d: %s", modes[m], status, err);
        assert_one_line(err, needle);
        free(err);
        char *out = output(s, "forged", "out");
        cr_assert_str_empty(out, "a refused snapshot ran: %s", out);
        free(out);
    }
}

/* issue 15: a snapshot whose CONFIG claims 1 TiB of RAM (address bits
 * and CRC made consistent, so only the size can refuse it) is the
 * snapshot's fault: status 2 and one line, in both restore modes, not
 * 125 (internal error). So is a pinned TSC frequency this host cannot
 * give (-ENOTSUP without TSC scaling, -ERANGE above the scaling's
 * limits). */
Test(hvrun_snapshot, what_a_snapshot_asks_beyond_the_host_is_a_usage_error)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "vm.snap");
    char *tail;
    snapshot_counter(&s, snap, "200", NULL, &tail);
    free(tail);
    size_t len;
    uint8_t *orig = (uint8_t *)slurp(snap, &len);
    uint8_t *f = malloc(len);
    cr_assert_not_null(f);
    size_t cfg = find_section(orig, len, 1, 0);
    cr_assert_eq(cfg, 80, "CONFIG is not the first section");
    uint64_t plen;
    memcpy(&plen, orig + cfg + 8, 8);
    const char *forged = in(&s, "forged.snap");

    memcpy(f, orig, len);
    uint8_t *regions = record_field(f + cfg + SEC_HDR, (size_t)plen, 4);
    uint8_t *bits = record_field(f + cfg + SEC_HDR, (size_t)plen, 6);
    cr_assert(regions && bits, "CONFIG lacks regions or address bits");
    uint64_t gpa, one_tib = 1ull << 40, forty = 40;
    memcpy(&gpa, regions, 8);
    cr_assert_eq(gpa, 0);
    memcpy(regions + 8, &one_tib, 8);
    memcpy(bits, &forty, 8);
    reseal(f, cfg);
    write_bytes(forged, f, len);
    refused_both_modes(&s, forged, "more than this host's");

    /* 4 THz, pinned: above what any host scales a TSC to */
    memcpy(f, orig, len);
    uint8_t *khz = record_field(f + cfg + SEC_HDR, (size_t)plen, 7);
    uint8_t *pinned = record_field(f + cfg + SEC_HDR, (size_t)plen, 8);
    cr_assert(khz && pinned, "CONFIG lacks the TSC frequency");
    uint64_t huge_khz = UINT32_MAX, one = 1;
    memcpy(khz, &huge_khz, 8);
    memcpy(pinned, &one, 8);
    reseal(f, cfg);
    write_bytes(forged, f, len);
    refused_both_modes(&s, forged, "TSC");
    free(f);
    free(orig);
    scratch_close(&s);
}

/* issue 15: --mem is checked against the RAM the restore created, not
 * against hvrun's own USER section, which here claims 128 MiB for a
 * 64 MiB VM. */
Test(hvrun_snapshot, mem_is_checked_against_the_restored_regions)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "vm.snap");
    char *tail;
    long k = snapshot_counter(&s, snap, "1000", NULL, &tail);
    size_t len;
    uint8_t *f = (uint8_t *)slurp(snap, &len);
    size_t user = find_section(f, len, 8, 0);
    cr_assert_neq(user, 0, "the snapshot has no USER section");
    uint8_t *cfg = f + user + SEC_HDR;
    cr_assert_eq(memcmp(cfg, "HVRUNCFG", 8), 0);
    /* The first field is MEM: tag 1, length 8, u64 MiB. */
    uint16_t tag, flen;
    memcpy(&tag, cfg + 12, 2);
    memcpy(&flen, cfg + 14, 2);
    cr_assert(tag == 1 && flen == 8, "field %u of %u bytes", tag, flen);
    uint64_t mib;
    memcpy(&mib, cfg + 16, 8);
    cr_assert_eq(mib, 64);
    mib = 128;
    memcpy(cfg + 16, &mib, 8);
    reseal(f, user);
    write_bytes(snap, f, len);
    free(f);

    const char *lie[] = {"--restore", snap, "--mem", "128", NULL};
    cr_assert_eq(run_hvrun(&s, "lie", lie), 2);
    char *err = output(&s, "lie", "err");
    assert_one_line(err, "--mem 128 conflicts with the snapshot's 64 MiB");
    free(err);
    /* the truth is accepted, and the guest goes on */
    const char *truth[] = {"--mem", "64", NULL};
    restore_and_check(&s, snap, truth, k, tail, SIGINT);
    free(tail);
    scratch_close(&s);
}

/* Huge pages for the hugetlb test: the pool's old size, put back after. */
#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
static long old_hugepages = -1;

static long read_long(const char *path)
{
    FILE *fp = fopen(path, "r");
    long v = -1;
    if (fp) {
        if (fscanf(fp, "%ld", &v) != 1)
            v = -1;
        fclose(fp);
    }
    return v;
}

static bool write_long(const char *path, long v)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        return false;
    bool ok = fprintf(fp, "%ld\n", v) > 0;
    return fclose(fp) == 0 && ok;
}

static void hugepages_fini(void)
{
    if (old_hugepages >= 0)
        write_long(NR_HUGEPAGES, old_hugepages);
    old_hugepages = -1;
}

static char warnings[4096];

static void keep_warning(void *opaque, int level, const char *message)
{
    (void)opaque;
    if (level == HVC_LOG_WARN)
        snprintf(warnings + strlen(warnings),
                 sizeof(warnings) - strlen(warnings), "%s\n", message);
}

/* issue 15: HVC_RESTORE_MMAP kept the HVC_MEMORY_HUGETLB of a region
 * only in read mode. A copy-on-write mapping of the file cannot be huge
 * pages, so mmap mode now reads such a snapshot, with a warning, and the
 * restored region is hugetlb-backed. */
Test(hvrun_snapshot, mmap_restore_keeps_hugetlb_regions, .fini = hugepages_fini)
{
    hvt_require_kvm();
    const char *pool = "/sys/kernel/mm/hugepages/hugepages-2048kB/"
                       "free_hugepages";
    if (read_long(pool) < 0)
        cr_skip_test("this kernel has no 2 MiB huge pages");
    long free_pages = read_long(pool);
    if (free_pages < 8) {
        if (geteuid() != 0)
            cr_skip_test("%ld free huge pages; sizing the pool needs root",
                         free_pages);
        old_hugepages = read_long(NR_HUGEPAGES);
        cr_assert_geq(old_hugepages, 0);
        cr_assert(write_long(NR_HUGEPAGES, old_hugepages + 8 - free_pages));
        free_pages = read_long(pool);
        if (free_pages < 8)
            cr_skip_test("the kernel found only %ld free huge pages",
                         free_pages);
    }
    struct scratch s;
    scratch_open(&s);
    const char *snap = in(&s, "huge.snap");
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    vo.flags = HVC_VM_NO_IRQCHIP;
    hvc_vm *vm;
    HVT_OK(hvc_vm_create(hv, &vo, &vm));
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = 4 << 20;
    mo.flags = HVC_MEMORY_HUGETLB;
    HVT_OK(hvc_vm_add_memory(vm, &mo, NULL));
    HVT_OK(hvc_vm_write(vm, 0x1000, "huge one", 8));
    HVT_OK(hvc_vm_write(vm, 0x3ffff8, "huge two", 8));
    HVT_OK(hvc_vm_pause(vm));
    HVT_OK(hvc_snapshot_save(vm, snap, NULL));
    HVT_OK(hvc_vm_destroy(vm));

    warnings[0] = 0;
    HVT_OK(hvc_set_log(HVC_LOG_WARN, keep_warning, NULL));
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.flags = HVC_RESTORE_MMAP;
    hvc_vm *back = NULL;
    int r = hvc_snapshot_restore(hv, snap, &ro, &back);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
    cr_assert_eq(r, 0, "%d: %s", r, hvc_last_error());
    cr_assert(strstr(warnings, "hugetlb"), "no warning: [%s]", warnings);
    hvc_memory_region *reg;
    HVT_OK(hvc_vm_find_memory(back, 0, &reg));
    cr_assert(hvc_memory_region_flags(reg) & HVC_MEMORY_HUGETLB, "flags 0x%x",
              hvc_memory_region_flags(reg));
    char a[8], b[8];
    HVT_OK(hvc_vm_read(back, 0x1000, a, 8));
    HVT_OK(hvc_vm_read(back, 0x3ffff8, b, 8));
    cr_assert_eq(memcmp(a, "huge one", 8), 0);
    cr_assert_eq(memcmp(b, "huge two", 8), 0);
    HVT_OK(hvc_vm_destroy(back));

    /* read mode: the same, without a warning */
    warnings[0] = 0;
    HVT_OK(hvc_set_log(HVC_LOG_WARN, keep_warning, NULL));
    ro.flags = 0;
    r = hvc_snapshot_restore(hv, snap, &ro, &back);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
    cr_assert_eq(r, 0, "%d: %s", r, hvc_last_error());
    cr_assert_str_empty(warnings);
    HVT_OK(hvc_vm_find_memory(back, 0, &reg));
    cr_assert(hvc_memory_region_flags(reg) & HVC_MEMORY_HUGETLB);
    HVT_OK(hvc_vm_destroy(back));

    /* with the pool as it was, too small: what the host lacks (-ENOTSUP),
     * not an allocation failure (-ENOMEM) */
    hugepages_fini();
    if (read_long(pool) < 2) {
        for (int m = 0; m < 2; m++) {
            ro.flags = m ? HVC_RESTORE_MMAP : 0;
            back = NULL;
            r = hvc_snapshot_restore(hv, snap, &ro, &back);
            cr_assert_eq(r, -ENOTSUP, "%d: %s", r, hvc_last_error());
            cr_assert_null(back);
            cr_assert(strstr(hvc_last_error(), "huge pages"), "%s",
                      hvc_last_error());
        }
    }
    HVT_OK(hvc_hypervisor_close(hv));
    scratch_close(&s);
}

/* "hvrun: sharing audit WHEN: P pages in R region(s): A resident, B
 * swapped, C not resident; ..." in @err after @from; the counts. */
static const char *audit_line(const char *err, const char *when,
                              unsigned long long c[5])
{
    char head[64];
    snprintf(head, sizeof(head), "hvrun: sharing audit %s: ", when);
    const char *p = strstr(err, head);
    cr_assert_not_null(p, "no \"%s\" in [%s]", head, err);
    int n = sscanf(p + strlen(head),
                   "%llu pages in %llu region%*[s]: %llu resident, %llu "
                   "swapped, %llu not resident",
                   &c[0], &c[1], &c[2], &c[3], &c[4]);
    if (n != 5) /* "1 region:" has no s for %*[s] to match */
        n = sscanf(p + strlen(head),
                   "%llu pages in %llu region: %llu resident, %llu "
                   "swapped, %llu not resident",
                   &c[0], &c[1], &c[2], &c[3], &c[4]);
    cr_assert_eq(n, 5, "cannot parse [%s]", p);
    return p;
}

/* Root's hvrun without CAP_SYS_ADMIN (dropped from the bounding set, so
 * that the exec does not give it back): frame numbers read as 0, and the
 * report at exit gives the residency counts and says why it lacks the
 * sharing ones. */
static void audit_without_sys_admin(struct scratch *s)
{
    const char *outp = in(s, "nocap.out"), *errp = in(s, "nocap.err");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int n = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || n < 0 || dup2(n, 0) < 0 || dup2(o, 1) < 0 ||
            dup2(e, 2) < 0 || prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN) < 0)
            _exit(99);
        char *argv[] = {HVT_HVRUN, "--kernel",        COUNTER,
                        "--raw",   "0x8000",          "--mem",
                        "64",      "--audit-sharing", NULL};
        execv(HVT_HVRUN, argv);
        _exit(98);
    }
    wait_for_count(outp, 50, WAIT_S, pid);
    kill(pid, SIGTERM);
    int st = wait_exit(pid, WAIT_S);
    char *err = slurp(errp, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status 0x%x: %s", st,
              err);
    unsigned long long c[5];
    const char *line = audit_line(err, "at exit", c);
    cr_assert_eq(c[0], 64ull << 20 >> 12, "[%s]", line);
    cr_assert_eq(c[2] + c[3] + c[4], c[0], "[%s]", line);
    cr_assert(strstr(line, "sharing not counted") &&
                  strstr(line, "CAP_SYS_ADMIN"),
              "[%s]", line);
    cr_assert(strchr(err, '\n') == err + strlen(err) - 1, "[%s]", err);
    free(err);
}

/* issue 15: --audit-sharing prints the report on SIGUSR1 with
 * --keep-running and at exit; the counts add up to the guest's RAM. */
Test(hvrun_snapshot, audit_sharing_report)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *args[] = {"--kernel",        COUNTER,          "--raw",
                          "0x8000",          "--mem",          "64",
                          "--audit-sharing", "--keep-running", NULL};
    pid_t pid = spawn_hvrun(&s, "run", NULL, args);
    const char *out = in(&s, "run.out");
    wait_for_count(out, 100, WAIT_S, pid);
    kill(pid, SIGUSR1);
    const char *errp = in(&s, "run.err");
    double end = now() + WAIT_S;
    char *err = slurp(errp, NULL);
    while (!strstr(err, "on SIGUSR1") && now() < end) {
        free(err);
        usleep(20000);
        err = slurp(errp, NULL);
    }
    /* the guest keeps running after the report */
    char *text = slurp(out, NULL);
    long at = last_count(text, NULL);
    free(text);
    wait_for_count(out, at + 50, WAIT_S, pid);
    kill(pid, SIGTERM);
    int st = wait_exit(pid, WAIT_S);
    free(err);
    err = slurp(errp, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status 0x%x: %s", st,
              err);
    const uint64_t pages = 64ull << 20 >> 12;
    const char *whens[] = {"on SIGUSR1", "at exit"};
    for (int i = 0; i < 2; i++) {
        unsigned long long c[5];
        const char *line = audit_line(err, whens[i], c);
        cr_assert_eq(c[0], pages, "[%s]", line);
        cr_assert_eq(c[1], 1, "[%s]", line);
        cr_assert_eq(c[2] + c[3] + c[4], pages, "[%s]", line);
        /* the guest ran: its code, stack and console data are resident */
        cr_assert_gt(c[2], 0, "[%s]", line);
        if (geteuid() == 0)
            cr_assert(strstr(line, "shared: 0 KSM-merged, 0 mapped "
                                   "elsewhere"),
                      "hvrun's memfd is mapped by hvrun alone: [%s]", line);
        else
            cr_assert(strstr(line, "sharing not counted"), "[%s]", line);
    }
    /* exactly the two report lines */
    int lines = 0;
    for (const char *p = err; (p = strchr(p, '\n')); p++)
        lines++;
    cr_assert_eq(lines, 2, "[%s]", err);
    free(err);
    text = slurp(out, NULL);
    assert_consecutive(text, 1); /* the report kept out of the console */
    free(text);

    if (geteuid() == 0)
        audit_without_sys_admin(&s);

    /* without --keep-running (and --snapshot) SIGUSR1 is not asked for */
    const char *alone[] = {"--kernel", COUNTER, "--keep-running", NULL};
    cr_assert_eq(run_hvrun(&s, "alone", alone), 2);
    err = output(&s, "alone", "err");
    assert_one_line(err, "--keep-running goes with --snapshot FILE or "
                         "--audit-sharing");
    free(err);
    scratch_close(&s);
}

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
    for (double end = now() + WAIT_S; access(sock, F_OK) != 0;) {
        cr_assert(now() < end, "--incoming never listened");
        usleep(10000);
    }
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
    char *src_text = slurp(in(&s, "src.txt"), NULL);
    char *dst_text = slurp(in(&s, "dst.txt"), NULL);
    char *all = malloc(strlen(src_text) + strlen(dst_text) + 1);
    cr_assert_not_null(all);
    strcpy(all, src_text);
    strcat(all, dst_text);
    cr_assert_geq(assert_consecutive(all, 1), last + 20);
    free(all);
    free(src_text);
    free(dst_text);

    /* Nobody listens: one line, and the guest counts on. */
    const char *lone[] = {"--kernel",     COUNTER, "--raw",    "0x8000",
                          "--mem",        "64",    "--serial", ser_lone,
                          "--migrate-to", to,      NULL};
    pid_t l = spawn_hvrun(&s, "lone", NULL, lone);
    wait_for_count(in(&s, "lone.txt"), 10, WAIT_S, l);
    kill(l, SIGUSR2); /* no --migrate-after-ms: the signal starts it */
    for (double end = now() + WAIT_S;;) {
        err = output(&s, "lone", "err");
        bool said = strchr(err, '\n') != NULL;
        free(err);
        if (said)
            break;
        cr_assert(now() < end, "no line after SIGUSR2");
        usleep(10000);
    }
    err = output(&s, "lone", "err");
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

#endif /* HVT_HVRUN */
