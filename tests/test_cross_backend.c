/* Live migration and hand-over between kvm and hvf (issue 17): the
 * counter guest counts on its vCPU thread under one backend in this
 * process and moves, on a socket pair, to a destination under the other
 * in another process (migtest's remote destination, tests/migt_remote.h,
 * with migt_remote_backend()).
 * The new side holds exactly the state of the final pause and counts on,
 * its pattern intact, the two consoles making one count without a gap.
 * Registered only with HVCORE_HVF_ON_KVM (hvf on tests/hvf_host). */
#include "migtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void both_backends(void)
{
    cr_assert_eq(hvc_backend_probe("kvm"), 0, "kvm: %s", hvc_last_error());
    cr_assert_eq(hvc_backend_probe("hvf"), 0, "hvf: %s", hvc_last_error());
}

TestSuite(cross_backend, .init = both_backends, .timeout = 180);

struct sender {
    hvc_vm *vm;
    int fd, handover;
    int r;
    char why[512];
    pthread_t t;
};

static void *do_send(void *arg)
{
    struct sender *s = arg;
    if (s->handover)
        s->r = hvc_vm_handover_send(s->vm, s->fd, NULL, NULL);
    else
        s->r = hvc_vm_migrate_send(s->vm, s->fd, NULL, NULL);
    snprintf(s->why, sizeof(s->why), "%s", hvc_last_error());
    return NULL;
}

static void move(const char *from, const char *to, int handover)
{
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open(from, &hv));
    static migt m;
    /* KVM's default vCPU limit is past hvf's */
    migt_open_max(&m, 1, hv, 4);
    migt_runner run[1];
    migt_start_runners(&m, run);
    migt_wait_counting(&m, 3);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct sender s = {.vm = m.vm, .fd = sv[0], .handover = handover};
    cr_assert_eq(pthread_create(&s.t, NULL, do_send, &s), 0);
    static migt r;
    migt_remote_backend(to);
    int got = handover ? migt_handover_receive(&r, sv[1])
                       : migt_receive_fd(&r, sv[1], NULL, NULL);
    migt_remote_backend(NULL);
    char why[4096];
    snprintf(why, sizeof(why), "%s", migt_last_error());
    pthread_join(s.t, NULL);
    cr_assert_eq(got, 0, "the %s side: %s", to, why);
    cr_assert_eq(s.r, 0, "the %s side: %s", from, s.why);
    cr_assert_gt(r.remote_pid, 0, "the destination is not in another process");
    /* the old side is paused for good; its parked vCPU thread ends with a
     * kick */
    HVT_ERR(hvc_vm_resume(m.vm), -EPERM);
    atomic_store(&run[0].stop, 1);
    hvc_vcpu_kick(run[0].vcpu);
    pthread_join(run[0].t, NULL);
    uint64_t last = migt_count(&m, 0);
    cr_assert_gt(last, 0);
    /* the state of the final pause (the guest may be between a count and
     * its pattern: checked once it stops), counting on there */
    cr_assert_eq(migt_count(&r, 0), last, "moved at %llu, the source at %llu",
                 (unsigned long long)migt_count(&r, 0),
                 (unsigned long long)last);
    cr_assert_eq(migt_run_until(&r, last + 5), 0, "%s", migt_last_error());
    cr_assert_eq(migt_check(&r, last + 5), 0, "%s", migt_last_error());
    /* the old side's console (its last line may be cut by the pause) and
     * the new side's make one count */
    static migt both;
    cr_assert_gt(m.console_len, 0);
    cr_assert_lt(m.console_len + r.console_len, sizeof(both.console));
    memcpy(both.console, m.console, m.console_len);
    memcpy(both.console + m.console_len, r.console, r.console_len);
    both.console_len = m.console_len + r.console_len;
    both.console[both.console_len] = 0;
    migt_assert_console(&both, 1, last + 5);
    migt_close(&r);
    migt_close(&m);
    close(sv[0]);
    close(sv[1]);
}

Test(cross_backend, live_migration_kvm_to_hvf)
{
    move("kvm", "hvf", 0);
}

Test(cross_backend, handover_kvm_to_hvf)
{
    move("kvm", "hvf", 1);
}

/* The other way: hvf's dirty tracking (write protection) carries the live
 * migration; the guest's CPUID is what kvm has (hvf_cpuid.c's mask). */
Test(cross_backend, live_migration_hvf_to_kvm)
{
    move("hvf", "kvm", 0);
}

Test(cross_backend, handover_hvf_to_kvm)
{
    move("hvf", "kvm", 1);
}
