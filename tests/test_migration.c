/* Migration streams and snapshots (docs/MIGRATION.md): a counting guest is
 * saved at several points, restored in another process, and must go on
 * counting with its memory pattern intact and its TSC never going back. */
#include "migtest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(migration, .init = hvt_require_kvm, .timeout = 240);

/* One save/restore generation: restore in a forked child (a new process
 * with its own hypervisor handle), run to @p until, save again. */
static void child_generation(const char *in, const char *out, uint64_t until,
                             uint32_t flags, int *status)
{
    fflush(NULL);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        migt m;
        int e = migt_restore_file(&m, in, flags);
        if (e) {
            fprintf(stderr, "restore: %s\n", migt_last_error());
            _exit(10);
        }
        e = migt_run_until(&m, until);
        if (e) {
            fprintf(stderr, "run: code %d\n", e);
            _exit(11);
        }
        if (migt_check(&m, until) != 0)
            _exit(12);
        if (out && migt_save_file(&m, out) != 0) {
            fprintf(stderr, "save: %s\n", hvc_last_error());
            _exit(13);
        }
        migt_close(&m);
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, status, 0), pid);
}

Test(migration, chain_of_restores_in_new_processes)
{
    char a[64], b[64];
    snprintf(a, sizeof(a), "/tmp/hvmig-a-%d.snap", getpid());
    snprintf(b, sizeof(b), "/tmp/hvmig-b-%d.snap", getpid());
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 3), 0);
    migt_assert_console(&m, 1, 3);
    MIGT_OK(migt_save_file(&m, a));
    migt_close(&m);
    /* Three generations, alternating read and mmap restores. */
    uint32_t flags[] = {0, HVC_RESTORE_MMAP,
                        HVC_RESTORE_MMAP | HVC_RESTORE_VERIFY_MEMORY};
    for (int g = 0; g < 3; g++) {
        int st;
        child_generation(g % 2 ? b : a, g % 2 ? a : b, 3 + 4 * (g + 1),
                         flags[g], &st);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "generation %d failed (status 0x%x)", g, st);
    }
    /* The last file holds count 15; the console of a restore continues
     * with 16. */
    migt r;
    MIGT_OK(migt_restore_file(&r, b, 0));
    cr_assert_eq(migt_run_until(&r, 17), 0);
    migt_assert_console(&r, 16, 17);
    cr_assert_eq(migt_check(&r, 17), 0);
    migt_close(&r);
    unlink(a);
    unlink(b);
}

Test(migration, saved_vm_resumes)
{
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 4), 0);
    char path[64];
    snprintf(path, sizeof(path), "/tmp/hvmig-r-%d.snap", getpid());
    MIGT_OK(migt_save_file(&m, path));
    /* The source goes on where it was. */
    cr_assert_eq(migt_run_until(&m, 8), 0);
    migt_assert_console(&m, 1, 8);
    cr_assert_eq(migt_check(&m, 8), 0);
    migt_close(&m);
    unlink(path);
}

Test(migration, multi_vcpu)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/hvmig-smp-%d.snap", getpid());
    migt m;
    migt_open(&m, 3, NULL);
    cr_assert_eq(migt_run_until(&m, 5), 0);
    MIGT_OK(migt_save_file(&m, path));
    migt_close(&m);
    int st;
    child_generation(path, NULL, 9, HVC_RESTORE_MMAP, &st);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    unlink(path);
}

Test(migration, stream_through_a_pipe)
{
    migt m;
    migt_open(&m, 2, NULL);
    cr_assert_eq(migt_run_until(&m, 2), 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[1]);
        migt r;
        if (migt_restore_fd(&r, p[0], NULL) != 0) {
            fprintf(stderr, "restore: %s\n", migt_last_error());
            _exit(10);
        }
        _exit(migt_run_until(&r, 6) || migt_check(&r, 6) ? 11 : 0);
    }
    close(p[0]);
    HVT_OK(hvc_vm_pause(m.vm));
    /* A destination that refused the stream and exited makes this -EPIPE
     * (never a SIGPIPE): the child's status says why, so it is checked
     * first. */
    int saved = hvc_vm_save_fd(m.vm, p[1], NULL);
    char why[256];
    snprintf(why, sizeof(why), "%s", hvc_last_error());
    HVT_OK(hvc_vm_resume(m.vm));
    close(p[1]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    cr_assert_eq(saved, 0, "%s", why);
    migt_close(&m);
}

Test(migration, encrypted_with_key_and_passphrase)
{
    uint8_t key[HVC_STREAM_KEY_SIZE];
    for (int i = 0; i < HVC_STREAM_KEY_SIZE; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 2), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, key, NULL, &len);
    /* No page pattern in clear: the pattern value for page 0, count 2. */
    uint64_t probe = (uint64_t)2 << 20;
    cr_assert_null(memmem(s, len, &probe, sizeof(probe)));
    migt r;
    MIGT_OK(migt_restore_mem(&r, s, len, key, NULL));
    cr_assert_eq(migt_run_until(&r, 4), 0);
    cr_assert_eq(migt_check(&r, 4), 0);
    migt_close(&r);
    /* Wrong key, no key, passphrase for a key stream. */
    key[5] ^= 1;
    hvc_vm *vm;
    MIGT_ERR(migt_restore_mem_vm(m.hv, s, len, key, NULL, &vm), -EKEYREJECTED);
    cr_assert(strstr(migt_last_error(), "at byte"), "%s", migt_last_error());
    MIGT_ERR(migt_restore_mem_vm(m.hv, s, len, NULL, NULL, &vm), -EKEYREJECTED);
    MIGT_ERR(migt_restore_mem_vm(m.hv, s, len, NULL, "pass", &vm),
            -EKEYREJECTED);
    free(s);

    s = migt_save_mem(&m, NULL, "correct horse", &len);
    MIGT_ERR(migt_restore_mem_vm(m.hv, s, len, NULL, "wrong horse", &vm),
            -EKEYREJECTED);
    MIGT_OK(migt_restore_mem(&r, s, len, NULL, "correct horse"));
    cr_assert_eq(migt_run_until(&r, 3), 0);
    migt_close(&r);
    free(s);
    migt_close(&m);
}

Test(migration, zero_pages_cost_nothing)
{
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 1), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    /* 4 MiB of RAM, of which the guest touched a few dozen pages. */
    cr_assert_lt(len, 256 * 1024, "stream of %zu bytes", len);
    free(s);
    migt_close(&m);
}

Test(migration, save_needs_a_pause)
{
    migt m;
    migt_open(&m, 1, NULL);
    int fd = open("/dev/null", O_WRONLY);
    HVT_ERR(hvc_vm_save_fd(m.vm, fd, NULL), -EBUSY);
    HVT_OK(hvc_vm_pause(m.vm));
    hvc_save_options o = HVC_SAVE_OPTIONS_INIT;
    uint8_t key[32] = {0};
    o.key = key;
    o.passphrase = "x";
    HVT_ERR(hvc_vm_save_fd(m.vm, fd, &o), -EINVAL);
    o.passphrase = NULL;
    o.key = NULL;
    o.user_data_length = HVC_STREAM_USER_DATA_MAX + 1;
    o.user_data = key;
    HVT_ERR(hvc_vm_save_fd(m.vm, fd, &o), -EINVAL);
    o.user_data_length = 0;
    o.flags = 0x80;
    HVT_ERR(hvc_vm_save_fd(m.vm, fd, &o), -EINVAL);
    HVT_OK(hvc_vm_resume(m.vm));
    close(fd);
    migt_close(&m);
}

Test(migration, failed_save_keeps_the_old_snapshot)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/hvmig-keep-%d.snap", getpid());
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 2), 0);
    MIGT_OK(migt_save_file(&m, path));
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long before = ftell(f);
    fclose(f);
    /* A progress callback that stops the save half way. */
    cr_assert_eq(migt_run_until(&m, 3), 0);
    HVT_OK(hvc_vm_pause(m.vm));
    hvc_save_options o = HVC_SAVE_OPTIONS_INIT;
    o.progress = migt_stop_progress;
    HVT_ERR(hvc_snapshot_save(m.vm, path, &o), -ECANCELED);
    cr_assert(strstr(hvc_last_error(), "kept"), "%s", hvc_last_error());
    HVT_OK(hvc_vm_resume(m.vm));
    /* The earlier snapshot is intact (count 2), and no temporary file is
     * left. */
    migt r;
    MIGT_OK(migt_restore_file(&r, path, 0));
    cr_assert_eq(migt_count(&r, 0), 2);
    migt_close(&r);
    f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    cr_assert_eq(ftell(f), before);
    fclose(f);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ls %s.tmp-* 2>/dev/null | grep -q .", path);
    cr_assert_neq(system(cmd), 0, "a temporary file is left");
    /* A directory that does not exist: nothing is created. */
    HVT_OK(hvc_vm_pause(m.vm));
    HVT_ERR(hvc_snapshot_save(m.vm, "/nonexistent-dir/x.snap", NULL), -ENOENT);
    HVT_OK(hvc_vm_resume(m.vm));
    migt_close(&m);
    unlink(path);
}

/* Setup callbacks for setup_callback_errors_name_the_callback. */
static int setup_fails_silently(void *opaque, hvc_vm *vm, const void *user,
                                size_t length)
{
    (void)opaque, (void)vm, (void)user, (void)length;
    return -EIO; /* and sets no message */
}

static int setup_fails_in_the_library(void *opaque, hvc_vm *vm,
                                      const void *user, size_t length)
{
    (void)opaque, (void)user, (void)length;
    hvc_device *d;
    return hvc_vm_find_device(vm, "no-such-device", &d);
}

static int setup_attaches_nothing(void *opaque, hvc_vm *vm, const void *user,
                                  size_t length)
{
    (void)opaque, (void)vm, (void)user, (void)length;
    return 0;
}

/* A failing setup callback is reported as the callback's failure: its own
 * message or "it left no message", never text left from an earlier call,
 * and never blamed on the stream section that happened to follow. */
Test(migration, setup_callback_errors_name_the_callback)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/hvmig-setup-%d.snap", getpid());
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 1), 0);
    MIGT_OK(migt_save_file(&m, path));
    migt_close(&m);
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    hvc_vm *vm = NULL;

    /* A stale message from an unrelated failed call. */
    hvc_vcpu_kick(NULL);
    o.setup = setup_fails_silently;
    HVT_ERR(hvc_snapshot_restore(hv, path, &o, &vm), -EIO);
    const char *e = hvc_last_error();
    cr_assert(strstr(e, "setup callback failed"), "%s", e);
    cr_assert(strstr(e, "it left no message"), "%s", e);
    cr_assert_null(strstr(e, "hvc_vcpu_kick"), "stale text: %s", e);
    cr_assert_null(strstr(e, "MEMORY"), "blames a section: %s", e);
    cr_assert_null(vm);

    o.setup = setup_fails_in_the_library;
    HVT_ERR(hvc_snapshot_restore(hv, path, &o, &vm), -ENOENT);
    e = hvc_last_error();
    cr_assert(strstr(e, "setup callback failed"), "%s", e);
    cr_assert(strstr(e, "no-such-device"), "%s", e);
    cr_assert_null(strstr(e, "MEMORY"), "blames a section: %s", e);

    /* The stream holds the UART "com1"; a callback that attaches nothing
     * is told how many devices the stream needs. */
    o.setup = setup_attaches_nothing;
    HVT_ERR(hvc_snapshot_restore(hv, path, &o, &vm), -ENOENT);
    e = hvc_last_error();
    cr_assert(strstr(e, "the setup callback attached 0 devices"), "%s", e);
    cr_assert(strstr(e, "holds 1 device records"), "%s", e);
    cr_assert_null(strstr(e, "MEMORY"), "blames a section: %s", e);
    HVT_OK(hvc_hypervisor_close(hv));
    unlink(path);
}
