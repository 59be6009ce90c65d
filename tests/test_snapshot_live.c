/* Live snapshots (hvc_snapshot_save_live): the counter guest keeps running
 * on its vCPU threads while its memory goes to the file; the file restores
 * to exactly the state of the final pause (RAM hash, counts, console), the
 * VM runs on after it (or stays paused when asked), and a failed save
 * keeps the file that was there and the guest running. */
#include "migtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

TestSuite(snapshot_live, .init = hvt_require_kvm, .timeout = 180);

static uint64_t file_hash(const char *path)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    uint64_t h = 0xcbf29ce484222325ull;
    uint8_t buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3ull;
    close(fd);
    return h;
}

/* Files in @p dir whose name starts with @p prefix. */
static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)))
            n++;
    closedir(d);
    return n;
}

static void tmp_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/hvlive-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Saved live with LEAVE_PAUSED: the VM is left paused at the state the
 * file holds; a new VM from the file has the same RAM and counts, and
 * counts on from there. */
static void left_paused(uint32_t nr_vcpus, uint32_t restore_flags)
{
    char dir[64], path[128];
    tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/live.hvc", dir);
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, nr_vcpus, NULL);
    migt_start_runners(&m, run);
    migt_wait_counting(&m, 3);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.flags = HVC_MIGRATE_LEAVE_PAUSED;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    HVT_OK(hvc_snapshot_save_live(m.vm, path, &o, &st));
    cr_assert(hvc_vm_is_paused(m.vm), "LEAVE_PAUSED resumed the VM");
    cr_assert_eq(st.completed, 1);
    cr_assert_gt(st.pages_initial, 0, "the first pass sent nothing");
    fprintf(stderr,
            "live snapshot, %u vCPUs: total %llu ms, paused %llu us, %u "
            "rounds, %llu+%llu+%llu pages\n",
            nr_vcpus, (unsigned long long)st.total_ms,
            (unsigned long long)st.downtime_us, st.rounds,
            (unsigned long long)st.pages_initial,
            (unsigned long long)st.pages_precopy,
            (unsigned long long)st.pages_final);
    uint64_t h = migt_hash(&m), counts[MIGT_MAX_VCPUS], most = 0;
    for (uint32_t i = 0; i < nr_vcpus; i++) {
        counts[i] = migt_count(&m, i);
        cr_assert_gt(counts[i], 0, "vCPU %u never counted", i);
        most = counts[i] > most ? counts[i] : most;
    }
    uint64_t src_last = migt_count(&m, 0);
    size_t src_console = m.console_len;
    migt_stop_runners(&m, run);
    HVT_OK(hvc_vm_resume(m.vm));

    static migt r;
    cr_assert_eq(migt_restore_file(&r, path, restore_flags), 0, "%s",
                 migt_last_error());
    cr_assert_eq(migt_hash(&r), h, "the file's RAM is not the paused VM's");
    for (uint32_t i = 0; i < nr_vcpus; i++)
        cr_assert_eq(migt_count(&r, i), counts[i], "vCPU %u restored at %llu, "
                     "saved at %llu", i,
                     (unsigned long long)migt_count(&r, i),
                     (unsigned long long)counts[i]);
    cr_assert_eq(migt_run_until(&r, most + 5), 0);
    cr_assert_eq(migt_check(&r, most + 5), 0);
    /* vCPU 0 prints: the source's console, whose last line the pause may
     * have cut, and the restored one's make one count without a gap */
    static migt both;
    cr_assert_gt(src_console, 0);
    cr_assert_lt(src_console + r.console_len, sizeof(both.console));
    memcpy(both.console, m.console, src_console);
    memcpy(both.console + src_console, r.console, r.console_len);
    both.console_len = src_console + r.console_len;
    both.console[both.console_len] = 0;
    migt_assert_console(&both, 1, migt_count(&r, 0));
    cr_assert_gt(migt_count(&r, 0), src_last);
    migt_close(&r);
    migt_close(&m);
    remove_dir(dir);
}

Test(snapshot_live, one_vcpu_left_paused_restores_exactly)
{
    left_paused(1, 0);
}

Test(snapshot_live, four_vcpus_left_paused_restores_exactly)
{
    left_paused(4, 0);
}

/* A live snapshot's memory is not laid out for mapping: the mmap restore
 * reads it instead, with the same result. */
Test(snapshot_live, mmap_restore_reads_a_live_snapshot)
{
    left_paused(2, HVC_RESTORE_MMAP);
}

/* Without LEAVE_PAUSED the guest runs on after the save, and the file
 * holds a consistent state that restores and counts on. */
Test(snapshot_live, the_guest_runs_on_after_the_save)
{
    char dir[64], path[128];
    tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/live.hvc", dir);
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 2, NULL);
    migt_start_runners(&m, run);
    migt_wait_counting(&m, 3);
    HVT_OK(hvc_snapshot_save_live(m.vm, path, NULL, NULL));
    cr_assert(!hvc_vm_is_paused(m.vm), "the VM was left paused");
    uint64_t after = migt_count(&m, 0);
    migt_assert_counts_on(&m, "the guest");
    migt_stop_runners(&m, run);
    static migt r;
    cr_assert_eq(migt_restore_file(&r, path, 0), 0, "%s", migt_last_error());
    uint64_t c0 = migt_count(&r, 0), c1 = migt_count(&r, 1);
    cr_assert_leq(c0, after, "the file holds a count after the save");
    uint64_t most = c0 > c1 ? c0 : c1;
    cr_assert_eq(migt_run_until(&r, most + 5), 0);
    cr_assert_eq(migt_check(&r, most + 5), 0);
    migt_close(&r);
    migt_close(&m);
    remove_dir(dir);
}

static int stop_after_first(void *opaque, const hvc_migrate_stats *s)
{
    (void)opaque;
    (void)s;
    return -ECANCELED;
}

/* A failed live save keeps the snapshot that was there, leaves no
 * temporary file, and the guest counts on. */
Test(snapshot_live, a_failed_save_keeps_the_old_file_and_the_guest)
{
    char dir[64], path[128];
    tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/live.hvc", dir);
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 1, NULL);
    migt_start_runners(&m, run);
    migt_sleep_ms(20);
    HVT_OK(hvc_snapshot_save_live(m.vm, path, NULL, NULL));
    uint64_t before = file_hash(path);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.progress = stop_after_first;
    HVT_ERR(hvc_snapshot_save_live(m.vm, path, &o, NULL), -ECANCELED);
    cr_assert(strstr(hvc_last_error(), "kept"), "%s", hvc_last_error());
    cr_assert(strstr(hvc_last_error(), "live.hvc"), "%s", hvc_last_error());
    cr_assert_eq(file_hash(path), before, "the old snapshot changed");
    cr_assert_eq(count_files(dir, "live.hvc.tmp"), 0,
                 "a temporary file was left");
    cr_assert(!hvc_vm_is_paused(m.vm));
    migt_assert_counts_on(&m, "the guest");
    /* a cancel from another thread ends it the same way */
    HVT_OK(hvc_vm_migrate_cancel(m.vm));
    migt_stop_runners(&m, run);
    migt_close(&m);
    remove_dir(dir);
}

Test(snapshot_live, refusals)
{
    char dir[64], path[128];
    tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/live.hvc", dir);
    static migt m;
    migt_open(&m, 1, NULL);
    HVT_ERR(hvc_snapshot_save_live(NULL, path, NULL, NULL), -EINVAL);
    HVT_ERR(hvc_snapshot_save_live(m.vm, NULL, NULL, NULL), -EINVAL);
    HVT_ERR(hvc_snapshot_save_live(m.vm, "", NULL, NULL), -EINVAL);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.flags = 1u << 30;
    HVT_ERR(hvc_snapshot_save_live(m.vm, path, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "0x40000000"), "%s",
              hvc_last_error());
    /* LEAVE_PAUSED is a live snapshot's: a migration refuses it */
    o.flags = HVC_MIGRATE_LEAVE_PAUSED;
    HVT_ERR(hvc_vm_migrate_send(m.vm, 0, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "LEAVE_PAUSED"), "%s",
              hvc_last_error());
    /* a directory that does not exist: named, nothing written */
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/x.hvc", dir);
    int r = hvc_snapshot_save_live(m.vm, missing, NULL, NULL);
    cr_assert_eq(r, -ENOENT, "%d: %s", r, hvc_last_error());
    cr_assert(strstr(hvc_last_error(), "no/such/dir"), "%s", hvc_last_error());
    /* a paused VM takes hvc_snapshot_save() */
    HVT_OK(hvc_vm_pause(m.vm));
    HVT_ERR(hvc_snapshot_save_live(m.vm, path, NULL, NULL), -EBUSY);
    cr_assert(strstr(hvc_last_error(), "paused"), "%s", hvc_last_error());
    HVT_OK(hvc_vm_resume(m.vm));
    cr_assert_eq(count_files(dir, "live.hvc"), 0, "a file was written");
    migt_close(&m);
    remove_dir(dir);
}
