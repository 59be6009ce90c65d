#include "hvtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

const char *hvt_backend(void)
{
    const char *b = getenv("HVT_BACKEND");
    return b && *b ? b : "kvm";
}

void hvt_require_kvm(void)
{
    const char *b = hvt_backend();
    if (hvc_backend_probe(b) == 0)
        return;
    const char *req = getenv("HVCORE_REQUIRE_KVM");
    /* A suite asked to run on a named backend other than kvm fails when
     * that backend does not open: CTest only asks where it was built. */
    if ((req && strcmp(req, "1") == 0) || strcmp(b, "kvm") != 0)
        cr_assert_fail("backend %s is unusable (HVCORE_REQUIRE_KVM=1 or "
                       "HVT_BACKEND set): %s",
                       b, hvc_last_error());
    cr_skip_test("KVM is not usable here: %s", hvc_last_error());
}

void hvt_open(hvt *t, uint32_t vm_flags)
{
    hvt_require_kvm();
    memset(t, 0, sizeof(*t));
    HVT_OK(hvc_hypervisor_open(hvt_backend(), &t->hv));
    hvc_vm_options o = HVC_VM_OPTIONS_INIT;
    o.flags = vm_flags;
    /* HVCORE_TEST_USER_IRQCHIP=1 runs a suite's VMs on the library's
     * userspace interrupt controllers instead of the kernel's (the
     * conformance run of "kvm without the in-kernel irqchip"); VMs that
     * asked for no interrupt controller keep none. */
    const char *user = getenv("HVCORE_TEST_USER_IRQCHIP");
    if (user && strcmp(user, "1") == 0 && !(vm_flags & HVC_VM_NO_IRQCHIP))
        o.flags |= HVC_VM_USER_IRQCHIP;
    HVT_OK(hvc_vm_create(t->hv, &o, &t->vm));
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = HVT_MEM;
    HVT_OK(hvc_vm_add_memory(t->vm, &m, &t->ram));
}

void hvt_close(hvt *t)
{
    if (t->vm)
        HVT_OK(hvc_vm_destroy(t->vm));
    if (t->hv)
        HVT_OK(hvc_hypervisor_close(t->hv));
    memset(t, 0, sizeof(*t));
}

void hvt_load(hvc_vm *vm, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.bin", HVT_GUEST_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open guest %s", path);
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    cr_assert_gt(n, 0, "guest %s is empty", path);
    HVT_OK(hvc_vm_write(vm, GUEST_LOAD, buf, n));
}

hvc_vcpu *hvt_vcpu(hvc_vm *vm, uint32_t id, int mode, uint64_t entry_offset)
{
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(vm, id, &v));
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = (uint32_t)mode;
    o.entry = GUEST_LOAD + entry_offset;
    o.stack = GUEST_STACK;
    o.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(v, &o));
    return v;
}

uint8_t hvt_run_done(hvc_vcpu *vcpu)
{
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(vcpu, &e));
    cr_assert_eq(e->reason, HVC_EXIT_PIO,
                 "vCPU %u: exit reason %u (backend %llu), expected PIO",
                 hvc_vcpu_id(vcpu), e->reason,
                 (unsigned long long)e->backend_reason);
    cr_assert_eq(e->u.io.port, PORT_DONE, "unexpected port 0x%x", e->u.io.port);
    cr_assert(e->u.io.is_write);
    return *(uint8_t *)e->u.io.data;
}

uint64_t hvt_reg(hvc_vcpu *vcpu, hvc_reg id)
{
    uint64_t v = 0;
    HVT_OK(hvc_vcpu_get_reg(vcpu, id, &v));
    return v;
}

pid_t hvt_fork(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* the parent may have died before the signal was asked for */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
    }
    return pid;
}
