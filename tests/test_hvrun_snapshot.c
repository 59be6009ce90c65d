/* examples/hvrun's snapshots, end to end: --snapshot (after a delay, or on
 * SIGUSR1 with --keep-running), --restore in a new process (read and mmap
 * modes), --key-file encryption, and snapshots that must be refused. The
 * guest is tests/guests/counter64.S: vCPU 0 prints "count N\r\n" on COM1
 * forever, so a restored VM must go on with exactly the next number. */
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

#ifdef HVT_HVRUN /* built with the examples */

/* A hang fails the test instead of blocking the suite. */
TestSuite(hvrun_snapshot, .timeout = 240);

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
        {{"--kernel", COUNTER, "--live"}, "--live goes with --snapshot FILE"},
        {{"--kernel", COUNTER, "--max-downtime-ms", "5"},
         "--max-downtime-ms goes with --migrate-to ADDR or --snapshot FILE "
         "--live"},
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
        {"HVRUNCFG\x03\x00\x00\x00", 12, "version 3"},
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

#endif /* HVT_HVRUN */
