/* hvrun --accel (core17): the backend by name; an unknown one, a hostile
 * one and one that cannot open are one-line usage errors (status 2); the
 * default is the first backend that opens; --help lists the option. */
#include "hvtest.h"

#ifdef HVT_HVRUN /* built with the examples */

#include "hvrun_util.h"

#include <stdlib.h>
#include <string.h>

#define GUEST(name) HVT_GUEST_DIR "/" name ".bin"

TestSuite(hvrun_accel, .timeout = 120);

static bool compiled_in(const char *name)
{
    for (size_t i = 0; i < hvc_backend_count(); i++)
        if (strcmp(hvc_backend_name(i), name) == 0)
            return true;
    return false;
}

Test(hvrun_accel, kvm_by_name_runs_the_guest)
{
    hvt_require_kvm();
    struct scratch s;
    scratch_open(&s);
    const char *args[] = {"--kernel", GUEST("long64"), "--raw", "0x8000",
                          "--serial", "none",          "--accel", "kvm",
                          NULL};
    int status = run_hvrun(&s, "kvm", args);
    char *err = output(&s, "kvm", "err");
    cr_assert_eq(status, 0x64, "status %d: %s", status, err);
    free(err);
    /* and the default: the first backend that opens (kvm here) */
    const char *dflt[] = {"--kernel", GUEST("long64"), "--raw", "0x8000",
                          "--serial", "none",          NULL};
    cr_assert_eq(run_hvrun(&s, "default", dflt), 0x64);
    scratch_close(&s);
}

static void refused(const char *accel, const char *needle)
{
    struct scratch s;
    scratch_open(&s);
    const char *args[] = {"--kernel", GUEST("long64"), "--raw", "0x8000",
                          "--serial", "none",          "--accel", accel,
                          NULL};
    int status = run_hvrun(&s, "bad", args);
    char *err = output(&s, "bad", "err");
    cr_assert_eq(status, 2, "--accel %s: status %d: %s", accel, status, err);
    assert_one_line(err, needle);
    free(err);
    scratch_close(&s);
}

Test(hvrun_accel, unknown_or_hostile_name_is_a_usage_error)
{
    refused("xen", "'xen' is not an accelerator of this libhvcore");
    refused("", "'' is not an accelerator");
    refused("kvm\n\x1b[2Jx", "'kvm\\n\\x1b[2Jx'");
}

/* hvf: when this libhvcore has no such backend, a usage error naming what
 * it has; when it has one that cannot open here, a usage error too; when
 * it opens, the guest runs. */
Test(hvrun_accel, hvf_runs_or_is_a_usage_error)
{
    hvt_require_kvm();
    if (!compiled_in("hvf")) {
        refused("hvf", "(it has: kvm");
        return;
    }
    struct scratch s;
    scratch_open(&s);
    const char *args[] = {"--kernel", GUEST("long64"), "--raw", "0x8000",
                          "--serial", "none",          "--accel", "hvf",
                          NULL};
    int status = run_hvrun(&s, "hvf", args);
    char *err = output(&s, "hvf", "err");
    if (hvc_backend_probe("hvf") < 0) {
        cr_assert_eq(status, 2, "status %d: %s", status, err);
        assert_one_line(err, "--accel hvf: cannot open it here");
    } else {
        cr_assert_eq(status, 0x64, "status %d: %s", status, err);
    }
    free(err);
    scratch_close(&s);
}

Test(hvrun_accel, help_lists_it)
{
    struct scratch s;
    scratch_open(&s);
    const char *args[] = {"--help", NULL};
    cr_assert_eq(run_hvrun(&s, "help", args), 0);
    char *out = output(&s, "help", "out");
    cr_assert(strstr(out, "--accel NAME") && strstr(out, "kvm or hvf"),
              "--help: %s", out);
    free(out);
    scratch_close(&s);
}

#endif
