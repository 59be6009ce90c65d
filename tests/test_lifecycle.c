/* 1000 create/run/destroy cycles leave no descriptor or memory behind. */
#include "hvtest.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static unsigned char guest[4096];
static size_t guest_len;

static void cycle(hvc_hypervisor *hv)
{
    hvc_vm *vm;
    hvc_vcpu *v;
    HVT_OK(hvc_vm_create(hv, NULL, &vm));
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = HVT_MEM;
    HVT_OK(hvc_vm_add_memory(vm, &m, NULL));
    HVT_OK(hvc_vm_write(vm, GUEST_LOAD, guest, guest_len));
    uint64_t in[2] = {1, 5};
    HVT_OK(hvc_vm_write(vm, DATA_IN, in, sizeof(in)));
    HVT_OK(hvc_vcpu_create(vm, 0, &v));
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = HVC_X86_MODE_LONG64;
    o.entry = GUEST_LOAD;
    o.stack = GUEST_STACK;
    o.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(v, &o));
    cr_assert_eq(hvt_run_done(v), 0x64);
    HVT_OK(hvc_vm_destroy(vm));
}

Test(lifecycle, thousand_cycles_leak_nothing, .timeout = 240)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv));
    /* read the guest once through a scratch VM */
    {
        hvt s;
        hvt_open(&s, 0);
        hvt_load(s.vm, "long64");
        guest_len = sizeof(guest);
        HVT_OK(hvc_vm_read(s.vm, GUEST_LOAD, guest, guest_len));
        hvt_close(&s);
    }
    /* warm up allocator caches and lazily created state */
    for (int i = 0; i < 20; i++)
        cycle(hv);
    int fds = count_fds();
    long rss = rss_kib();
    for (int i = 0; i < 1000; i++)
        cycle(hv);
    int fds_after = count_fds();
    long rss_after = rss_kib();
    cr_log_info("fds %d -> %d, RSS %ld -> %ld KiB", fds, fds_after, rss,
                rss_after);
    cr_assert_eq(fds_after, fds, "descriptors leaked: %d -> %d", fds,
                 fds_after);
#if defined(__SANITIZE_ADDRESS__)
    /* ASan keeps freed memory in quarantine, so RSS says nothing here;
     * LeakSanitizer checks the heap at exit instead. */
    (void)rss_after;
#else
    cr_assert_lt(rss_after - rss, 2048, "RSS grew by %ld KiB", rss_after - rss);
#endif
    HVT_OK(hvc_hypervisor_close(hv));
}
