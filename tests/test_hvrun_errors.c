/* examples/hvrun when things go wrong: a KVM emulation failure (reason,
 * RIP, paging mode, instruction bytes), --mem past what the loader maps, a
 * user without access to /dev/kvm, a stop signal during a snapshot save,
 * signals that stop a running guest, and outside strings that must not
 * reach the terminal raw. Each case checks the exit status and that stderr
 * is exactly one line. */
#include "hvtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HVT_HVRUN /* built with the examples */

#define GUEST(name) HVT_GUEST_DIR "/" name ".bin"
#define WAIT_S 60.0

TestSuite(hvrun_errors, .timeout = 240);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct scratch {
    char dir[64];
    char out[128], err[128];
};

static void scratch_open(struct scratch *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/hvt-err-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->out, sizeof(s->out), "%s/out", s->dir);
    snprintf(s->err, sizeof(s->err), "%s/err", s->dir);
}

static void scratch_close(struct scratch *s)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    (void)system(cmd);
}

/* Starts hvrun with @args (NULL-terminated), stdin /dev/null, stdout and
 * stderr to the scratch files; as uid/gid @uid unless it is -1. */
static pid_t spawn_as(const struct scratch *s, long uid,
                      const char *const *args)
{
    const char *argv[32] = {HVT_HVRUN};
    int n = 1;
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(s->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(s->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 ||
            dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        if (uid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 ||
                         setuid((uid_t)uid) < 0))
            _exit(126);
        execv(HVT_HVRUN, (char **)argv);
        _exit(127);
    }
    return pid;
}

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
        usleep(5000);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    cr_assert_not_null(buf);
    if (f) {
        n = fread(buf, 1, cap, f);
        fclose(f);
    }
    buf[n] = 0;
    return buf;
}

/* Runs hvrun to its end: its exit status (it must not die by a signal);
 * *err (when not NULL) gets its stderr. */
static int run(struct scratch *s, long uid, const char *const *args, char **err)
{
    int st = wait_exit(spawn_as(s, uid, args), WAIT_S);
    char *e = slurp(s->err);
    cr_assert(WIFEXITED(st), "hvrun died by signal %d; stderr: %s",
              WTERMSIG(st), e);
    if (err)
        *err = e;
    else
        free(e);
    return WEXITSTATUS(st);
}

/* stderr is exactly one line "hvrun: ...", containing @needle. */
static void assert_one_line(const char *err, const char *needle)
{
    size_t n = strlen(err);
    cr_assert(n > 0 && strncmp(err, "hvrun: ", 7) == 0, "stderr: [%s]", err);
    cr_assert(strchr(err, '\n') == err + n - 1, "not one line: [%s]", err);
    if (needle)
        cr_assert(strstr(err, needle), "stderr lacks \"%s\": %s", needle, err);
}

/* The bytes are read where RIP's linear address maps: in the paged case
 * 0x400000100 is physical 0x8100 (tests/guests/emulfail_paged64.S). */
Test(hvrun_errors, emulation_failure_is_decoded)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    static const struct {
        const char *guest, *mode, *where;
    } cases[] = {
        {GUEST("emulfail64"), "64",
         "KVM emulation failure at RIP 0x8040 (long mode, 4-level paging)"},
        {GUEST("emulfail32"), "32",
         "KVM emulation failure at RIP 0x8040 (protected mode, paging off)"},
        {GUEST("emulfail_paged64"), "64",
         "KVM emulation failure at RIP 0x400000100 (long mode, 4-level "
         "paging)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {"--kernel", cases[i].guest, "--raw",
                              "0x8000",   "--raw-mode",   cases[i].mode,
                              "--mem",    "64",           NULL};
        char *err;
        int status = run(&s, -1, args, &err);
        cr_assert_eq(status, 125, "%s: status %d: %s", cases[i].guest, status,
                     err);
        assert_one_line(err, cases[i].where);
        assert_one_line(err, "hvrun: vCPU 0: KVM emulation failure at RIP ");
        assert_one_line(err, "): instruction bytes 0f ae 27 ");
        cr_assert_null(strstr(err, "backend code"), "%s", err);
        free(err);
    }
    scratch_close(&s);
}

Test(hvrun_errors, mem_past_the_loader_is_refused)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *mems[] = {"142337", "1048576"};
    for (size_t i = 0; i < 2; i++) {
        const char *args[] = {"--kernel", GUEST("hlt64"), "--raw", "0x8000",
                              "--mem",    mems[i],        NULL};
        char *err;
        int status = run(&s, -1, args, &err);
        cr_assert_eq(status, 2, "--mem %s: status %d: %s", mems[i], status,
                     err);
        assert_one_line(err, "(--mem 16..142336)");
        free(err);
    }
    scratch_close(&s);
}

Test(hvrun_errors, no_access_to_kvm_is_a_usage_error)
{
    hvt_require_kvm();
    long uid = -1;
    if (geteuid() == 0)
        uid = 65534; /* nobody, which /dev/kvm (0600 or 0660 kvm) refuses */
    else if (access("/dev/kvm", R_OK | W_OK) == 0)
        cr_skip_test("this user can open /dev/kvm and cannot drop it");
    struct scratch s;
    scratch_open(&s);
    chmod(s.dir, 0777); /* the output files are opened before setuid */
    struct stat st;
    cr_assert_eq(stat("/dev/kvm", &st), 0);
    if (uid >= 0 && (st.st_mode & 06) == 06)
        cr_skip_test("/dev/kvm is open to everyone here");
    const char *args[] = {"--kernel", GUEST("hlt64"), "--raw", "0x8000", NULL};
    char *err;
    int status = run(&s, uid, args, &err);
    cr_assert_eq(status, 2, "status %d: %s", status, err);
    assert_one_line(err, "/dev/kvm");
    free(err);
    scratch_close(&s);
}

/* A temporary file that hvc_snapshot_save() writes next to @name. */
static bool tmp_file_in(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = strlen(name);
    bool found = false;
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, name, n) == 0 &&
            strncmp(e->d_name + n, ".tmp-", 5) == 0)
            found = true;
    closedir(d);
    return found;
}

Test(hvrun_errors, sigterm_during_a_save_keeps_the_old_file)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    char snap[128];
    snprintf(snap, sizeof(snap), "%s/vm.snap", s.dir);
    static const char old[] = "the previous snapshot\n";
    FILE *f = fopen(snap, "w");
    cr_assert_not_null(f);
    fputs(old, f);
    fclose(f);
    /* A save skips untouched memory and takes milliseconds; a passphrase
     * costs it half a second of PBKDF2 after the temporary file exists,
     * and the save reports progress once more after that: time to signal
     * it half-way, whatever the host's speed. */
    char pass[128];
    snprintf(pass, sizeof(pass), "%s/pass", s.dir);
    f = fopen(pass, "w");
    cr_assert_not_null(f);
    fputs("correct horse battery staple\n", f);
    fclose(f);
    const char *args[] = {"--kernel",
                          GUEST("counter64"),
                          "--raw",
                          "0x8000",
                          "--mem",
                          "64",
                          "--snapshot",
                          snap,
                          "--passphrase-file",
                          pass,
                          "--snapshot-after-ms",
                          "100",
                          NULL};
    pid_t pid = spawn_as(&s, -1, args);
    double end = now() + WAIT_S;
    while (!tmp_file_in(s.dir, "vm.snap")) {
        int st;
        cr_assert_neq(waitpid(pid, &st, WNOHANG), pid,
                      "hvrun exited (0x%x) before it saved", st);
        if (now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            cr_assert_fail("no snapshot being written within %.0f s", WAIT_S);
        }
        usleep(1000);
    }
    kill(pid, SIGTERM);
    int st = wait_exit(pid, WAIT_S);
    char *err = slurp(s.err);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status 0x%x: %s", st,
              err);
    assert_one_line(err, "vm.snap' cancelled by SIGTERM; the file is as it "
                         "was before");
    free(err);
    char *now_there = slurp(snap);
    cr_assert_str_eq(now_there, old);
    free(now_there);
    cr_assert(!tmp_file_in(s.dir, "vm.snap"), "a temporary file was left");
    scratch_close(&s);
}

/* SIGINT, SIGTERM, SIGHUP and SIGQUIT stop a running guest: 130, silently. */
Test(hvrun_errors, stop_signals)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < 4; i++) {
        const char *args[] = {
            "--kernel", GUEST("counter64"), "--raw", "0x8000", "--mem", "64",
            NULL};
        unlink(s.out); /* the last run's count must not count */
        pid_t pid = spawn_as(&s, -1, args);
        double end = now() + WAIT_S;
        for (;;) {
            char *out = slurp(s.out);
            bool counting = strstr(out, "count 20\r\n") != NULL;
            free(out);
            if (counting)
                break;
            cr_assert(now() < end, "the guest did not count");
            usleep(5000);
        }
        kill(pid, sigs[i]);
        int st = wait_exit(pid, WAIT_S);
        char *err = slurp(s.err);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130,
                  "signal %d: status 0x%x: %s", sigs[i], st, err);
        cr_assert_str_empty(err);
        free(err);
    }
    scratch_close(&s);
}

/* Paths and flags reach messages escaped: no raw escape or newline. */
Test(hvrun_errors, outside_strings_are_escaped)
{
    struct scratch s;
    scratch_open(&s);
    const char *cases[][3] = {
        {"--serial", "file:/nonexistent/\033[31mred\nline", NULL},
        {"--kernel", "/nonexistent/\033]0;title\007\r", NULL},
        {"--raw-mode", "6\0334", NULL},
    };
    const char *needles[] = {"\\x1b[31mred\\nline", "\\x1b]0;title\\x07\\r",
                             "'6\\x1b4'"};
    for (size_t i = 0; i < 3; i++) {
        const char *args[8] = {"--kernel", GUEST("hlt64"), "--raw", "0x8000"};
        args[4] = cases[i][0];
        args[5] = cases[i][1];
        char *err;
        int status = run(&s, -1, args, &err);
        cr_assert_eq(status, 2, "case %zu: status %d: %s", i, status, err);
        assert_one_line(err, needles[i]);
        cr_assert_null(strchr(err, '\033'), "raw ESC: %s", err);
        cr_assert_null(strchr(err, '\r'), "raw CR: %s", err);
        free(err);
    }
    scratch_close(&s);
}

/* --disk PATH,dma=GPA+LEN: a malformed or empty window is a usage error
 * (status 2, one line), before any VM exists. */
Test(hvrun_errors, disk_dma_window_is_checked)
{
    struct scratch s;
    scratch_open(&s);
    static const struct {
        const char *disk, *needle;
    } cases[] = {
        {"/nonexistent,dma=0x100000", "is not dma=GPA+LEN"},
        {"/nonexistent,dma=0x100000+0", "--disk dma= length"},
        {"/nonexistent,dma=x+1", "--disk dma= address"},
        {"/nonexistent,dma=0xffffffffffffffff+2", "--disk dma= length"},
        {"/nonexistent,dma=0+1,dma=0+1", "is not PATH[,ro][,dma=GPA+LEN]"},
        {"/nonexistent,rw", "is not PATH[,ro][,dma=GPA+LEN]"},
        {",dma=0+1", "--disk needs a path"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {"--kernel", GUEST("hlt64"), "--raw", "0x8000",
                              "--disk",   cases[i].disk,  NULL};
        char *err;
        int status = run(&s, -1, args, &err);
        cr_assert_eq(status, 2, "%s: status %d: %s", cases[i].disk, status,
                     err);
        assert_one_line(err, cases[i].needle);
        free(err);
    }
    scratch_close(&s);
}

#endif /* HVT_HVRUN */
