/* examples/hvrun given what it must refuse or handle with care: snapshots
 * that ask more than the host has (a usage error in both restore modes),
 * --mem checked against the restored regions, hugetlb regions kept by an
 * mmap restore, and --audit-sharing's report. The guest is
 * tests/guests/counter64.S (see test_hvrun_snapshot.c). */
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

#endif /* HVT_HVRUN */
