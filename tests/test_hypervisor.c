/* Backends, opening, capabilities, version and error strings. */
#include "hvtest.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

Test(hypervisor, version_matches_header)
{
    cr_assert_eq(hvc_version(), HVC_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", HVC_VERSION_MAJOR,
             HVC_VERSION_MINOR, HVC_VERSION_PATCH);
    cr_assert_str_eq(hvc_version_string(), want);
}

Test(hypervisor, kvm_is_compiled_in)
{
    cr_assert_geq(hvc_backend_count(), 1);
    cr_assert_str_eq(hvc_backend_name(0), "kvm");
    cr_assert_null(hvc_backend_name(hvc_backend_count()));
}

Test(hypervisor, open_auto_and_by_name)
{
    hvt_require_kvm();
    hvc_hypervisor *hv = NULL;
    HVT_OK(hvc_hypervisor_open(NULL, &hv));
    cr_assert_str_eq(hvc_hypervisor_backend(hv), "kvm");
    HVT_OK(hvc_hypervisor_close(hv));
    HVT_OK(hvc_hypervisor_open("auto", &hv));
    HVT_OK(hvc_hypervisor_close(hv));
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    HVT_OK(hvc_hypervisor_close(hv));
    HVT_OK(hvc_backend_probe("kvm"));
}

Test(hypervisor, unknown_backend_is_named)
{
    hvc_hypervisor *hv = (hvc_hypervisor *)0x1;
    HVT_ERR(hvc_hypervisor_open("xen", &hv), -ENOENT);
    cr_assert(strstr(hvc_last_error(), "\"xen\""), "%s", hvc_last_error());
    cr_assert(strstr(hvc_last_error(), "kvm"), "%s", hvc_last_error());
    cr_assert_eq(hv, (hvc_hypervisor *)0x1, "out must stay untouched");
    /* "hvf" is a backend only where it was built (macOS, or Linux with
     * HVCORE_HVF_ON_KVM); elsewhere the name is unknown. */
    bool has_hvf = false;
    for (size_t i = 0; i < hvc_backend_count(); i++)
        has_hvf |= strcmp(hvc_backend_name(i), "hvf") == 0;
    if (!has_hvf)
        HVT_ERR(hvc_backend_probe("hvf"), -ENOENT);
    HVT_ERR(hvc_backend_probe("bhyve"), -ENOENT);
    HVT_ERR(hvc_backend_probe(NULL), -EINVAL);
    HVT_ERR(hvc_hypervisor_open("kvm", NULL), -EINVAL);
}

Test(hypervisor, capabilities)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    uint64_t v;
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_MAX_VCPUS, &v));
    cr_assert_geq(v, 4);
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_NR_VCPUS, &v));
    cr_assert_geq(v, 1);
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_MAX_MEMORY_REGIONS, &v));
    cr_assert_geq(v, 32);
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_DIRTY_TRACKING, &v));
    cr_assert(v & HVC_DIRTY_BITMAP);
    /* This project's hosts: dirty ring present, no TSC scaling. */
    cr_assert(v & HVC_DIRTY_RING, "dirty ring expected on this KVM");
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_IRQCHIP, &v));
    cr_assert_eq(v, 1);
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_FPU_STATE_SIZE, &v));
    cr_assert_geq(v, 512);
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_PHYS_ADDR_BITS, &v));
    cr_assert(v >= 32 && v <= 64, "%llu", (unsigned long long)v);
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_IRQ_LINES, &v));
    cr_assert_eq(v, 24, "KVM's IOAPIC has 24 lines, not %llu",
                 (unsigned long long)v);
    for (int cap = HVC_CAP_MAX_VCPUS; cap <= HVC_CAP_IRQ_LINES; cap++)
        HVT_OK(hvc_hypervisor_get_cap(hv, cap, &v));
    HVT_ERR(hvc_hypervisor_get_cap(hv, 0, &v), -EINVAL);
    HVT_ERR(hvc_hypervisor_get_cap(hv, 9999, &v), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "9999"), "%s", hvc_last_error());
    HVT_ERR(hvc_hypervisor_get_cap(hv, HVC_CAP_MAX_VCPUS, NULL), -EINVAL);
    HVT_ERR(hvc_hypervisor_get_cap(NULL, HVC_CAP_MAX_VCPUS, &v), -EINVAL);
    HVT_OK(hvc_hypervisor_close(hv));
}

Test(hypervisor, close_with_live_vm_is_refused)
{
    hvt t;
    hvt_open(&t, 0);
    HVT_ERR(hvc_hypervisor_close(t.hv), -EBUSY);
    hvt_close(&t);
}

Test(hypervisor, strerror_and_last_error)
{
    cr_assert_str_eq(hvc_strerror(-EINVAL), "invalid argument");
    cr_assert_str_eq(hvc_strerror(EINVAL), "invalid argument");
    cr_assert_str_eq(hvc_strerror(0), "success");
    cr_assert_str_eq(hvc_strerror(-100000), "unknown error");
    HVT_ERR(hvc_vm_create(NULL, NULL, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "hvc_vm_create"), "%s",
              hvc_last_error());
}

Test(hypervisor, strerror_names_every_errno)
{
    /* Every Linux errno, 1 (EPERM) to 133 (EHWPOISON), has a text of its
     * own, the same for -e and e; past them, and INT_MIN, "unknown". */
    for (int e = 1; e <= 133; e++) {
        const char *s = hvc_strerror(-e);
        cr_assert_not_null(s);
        cr_assert_str_neq(s, "unknown error", "errno %d", e);
        cr_assert_neq(s[0], '\0', "errno %d", e);
        cr_assert_eq(s, hvc_strerror(e), "errno %d", e);
    }
    cr_assert_str_eq(hvc_strerror(-EISDIR), "is a directory");
    cr_assert_str_eq(hvc_strerror(-ENOENT), "not found");
    cr_assert_str_eq(hvc_strerror(-EEXIST), "already exists or overlaps");
    cr_assert_str_eq(hvc_strerror(-EFAULT), "address outside guest memory");
    cr_assert_str_eq(hvc_strerror(-ENOTTY), "inappropriate ioctl for device");
    cr_assert_str_eq(hvc_strerror(-EHWPOISON),
                     "memory page has hardware error");
    cr_assert_str_eq(hvc_strerror(-EWOULDBLOCK), "try again");
    cr_assert_str_eq(hvc_strerror(-134), "unknown error");
    cr_assert_str_eq(hvc_strerror(INT_MIN), "unknown error");
    cr_assert_str_eq(hvc_strerror(INT_MAX), "unknown error");
}
