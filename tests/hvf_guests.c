/* The Hypervisor.framework backend running real guests (issue 17), on
 * tests/hvf_host's KVM-hosted implementation of Apple's API: the counter
 * guest (tests/guests/counter64.S) counts on the console and checksums its
 * pattern pages under hvf; and a snapshot taken under kvm resumes under
 * hvf and one taken under hvf under kvm, the console going on with the
 * next number. Built only with
 * HVCORE_HVF_ON_KVM, run with HVCORE_HVF_HOST_LIBRARY set
 * (tests/CMakeLists.txt). */
#include "migtest.h"

#ifdef HVT_HVRUN
#include "hvrun_util.h"
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(hvf_guests, .timeout = 240);

static void require_both(void)
{
    hvt_require_kvm(); /* $HVT_BACKEND, set to hvf by CTest */
    cr_assert_eq(hvc_backend_probe("hvf"), 0, "hvf: %s", hvc_last_error());
    cr_assert_eq(hvc_backend_probe("kvm"), 0, "kvm: %s", hvc_last_error());
}

Test(hvf_guests, counter_counts_and_checksums_its_memory)
{
    require_both();
    setenv("HVT_BACKEND", "hvf", 1);
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_str_eq(hvc_hypervisor_backend(m.hv), "hvf");
    cr_assert_eq(migt_run_until(&m, 60), 0);
    /* count 60, the pattern of iteration 60 in place, no page found with
     * a wrong checksum word, the TSC never seen going back */
    cr_assert_eq(migt_check(&m, 60), 0);
    migt_assert_console(&m, 1, 60);
    migt_close(&m);
}

/* Both backends on one host give the same TSC frequency to the kHz: the
 * hvf backend takes macOS's machdep.tsc.frequency (which the KVM-hosted
 * layer answers with the kernel's calibration), so a snapshot's frequency
 * is within the restore's tolerance on the other backend, however loaded
 * the host (a measurement against CLOCK_MONOTONIC was 6079 ppm off in one
 * loaded CI run). */
static uint32_t host_khz(const char *backend)
{
    hvc_hypervisor *hv;
    cr_assert_eq(hvc_hypervisor_open(backend, &hv), 0, "%s: %s", backend,
                 hvc_last_error());
    hvc_tsc_info info = HVC_TSC_INFO_INIT;
    int r = hvc_tsc_get_info(hv, &info);
    hvc_hypervisor_close(hv);
    cr_assert_eq(r, 0, "%s: %s", backend, hvc_last_error());
    return info.host_tsc_khz;
}

Test(hvf_guests, both_backends_agree_on_the_tsc_frequency)
{
    require_both();
    uint32_t k = host_khz("kvm"), h = host_khz("hvf");
    cr_assert_gt(k, 0);
    cr_assert_eq(h, k, "hvf says %u kHz, kvm %u kHz", h, k);
}

/* Counts to @p first under @p from, snapshots to a file, restores under
 * @p to, and counts on to @p second. */
static void cross(const char *from, const char *to)
{
    require_both();
    char path[] = "/tmp/hvf_cross_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    setenv("HVT_BACKEND", from, 1);
    migt m;
    migt_open_max(&m, 1, NULL, 4); /* KVM's default, 1024, is past hvf's */
    cr_assert_eq(migt_run_until(&m, 20), 0);
    cr_assert_eq(migt_check(&m, 20), 0);
    cr_assert_eq(migt_save_file(&m, path), 0, "save under %s: %s", from,
                 hvc_last_error());
    migt_assert_console(&m, 1, 20);
    migt_close(&m);

    setenv("HVT_BACKEND", to, 1);
    migt r;
    int rr = migt_restore_file(&r, path, 0);
    unlink(path);
    if (rr != 0) {
        char why[1024];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        migt_close(&r);
        cr_assert_fail("restore under %s: %s", to, why);
    }
    cr_assert_str_eq(hvc_hypervisor_backend(r.hv), to);
    cr_assert_eq(migt_run_until(&r, 45), 0);
    cr_assert_eq(migt_check(&r, 45), 0);
    /* the restored console starts with the next number */
    migt_assert_console(&r, 21, 45);
    migt_close(&r);
}

Test(hvf_guests, snapshot_from_kvm_resumes_under_hvf)
{
    cross("kvm", "hvf");
}

/* The hvf guest's CPUID is the host's masked by what the platform's
 * machdep.cpu.*feature_bits say (tests/hvf_host answers with what KVM and
 * the CPU both have), so KVM accepts it: without the mask this host's KVM
 * refuses LZCNT/ABM (leaf 0x80000001 ECX bit 5), which the CPU has. */
Test(hvf_guests, snapshot_from_hvf_resumes_under_kvm)
{
    cross("hvf", "kvm");
}

#ifdef HVT_HVRUN
/* The same guest under hvrun --accel hvf: the console counts on, line after
 * line, until hvrun is stopped. */
Test(hvf_guests, hvrun_accel_hvf_counts)
{
    require_both();
    struct scratch s;
    scratch_open(&s);
    const char *args[] = {
        "--accel", "hvf",    "--kernel", HVT_GUEST_DIR "/counter64.bin",
        "--raw",   "0x8000", "--mem",    "64",
        NULL};
    pid_t pid = spawn_hvrun(&s, "hvf", NULL, args);
    wait_for_count(in(&s, "hvf.out"), 40, 60.0, pid);
    kill(pid, SIGTERM);
    wait_exit(pid, 30.0);
    char *out = output(&s, "hvf", "out");
    cr_assert_geq(assert_consecutive(out, 1), 40);
    free(out);
    scratch_close(&s);
}
#endif
