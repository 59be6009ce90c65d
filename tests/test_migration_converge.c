/* Auto-converge (HVC_MIGRATE_AUTO_CONVERGE, src/migration/throttle.c):
 * a guest that rewrites a large range of memory without pause
 * (tests/guests/dirtyloop64.S), migrated under a bandwidth limit that
 * cannot carry what it dirties, does not converge without throttling
 * (the rounds run out) and does with it. */
#include "hvtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(migration_converge, .timeout = 240);

#define HOT_GPA 0x10000000ull
#define HOT_PAGES 2048ull /* 8 MiB the guest keeps rewriting */
#define BANDWIDTH_MIB 64u
#define DOWNTIME_MS 40u

struct dirtier {
    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    pthread_t t;
    atomic_int stop;
    int error;
};

static void *run(void *arg)
{
    struct dirtier *d = arg;
    while (!atomic_load(&d->stop)) {
        const hvc_exit *e;
        if (hvc_vcpu_run(d->vcpu, &e) < 0) {
            d->error = 1;
            break;
        }
    }
    return NULL;
}

static void dirtier_open(struct dirtier *d)
{
    hvt_require_kvm();
    memset(d, 0, sizeof(*d));
    HVT_OK(hvc_hypervisor_open("kvm", &d->hv));
    HVT_OK(hvc_vm_create(d->hv, NULL, &d->vm));
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = HVT_MEM;
    HVT_OK(hvc_vm_add_memory(d->vm, &mo, NULL));
    mo.guest_addr = HOT_GPA;
    mo.length = HOT_PAGES * 4096;
    HVT_OK(hvc_vm_add_memory(d->vm, &mo, NULL));
    hvt_load(d->vm, "dirtyloop64");
    d->vcpu = hvt_vcpu(d->vm, 0, HVC_X86_MODE_LONG64, 0);
    uint64_t in[3] = {HOT_GPA, HOT_PAGES, 0};
    HVT_OK(hvc_vm_write(d->vm, DATA_IN, in, sizeof(in)));
    cr_assert_eq(pthread_create(&d->t, NULL, run, d), 0);
}

static void dirtier_close(struct dirtier *d)
{
    atomic_store(&d->stop, 1);
    hvc_vcpu_kick(d->vcpu);
    pthread_join(d->t, NULL);
    cr_assert_eq(d->error, 0, "%s", hvc_last_error());
    hvc_vm_destroy(d->vm);
    hvc_hypervisor_close(d->hv);
}

/* The destination, forked before the source opens KVM: receives and
 * exits 0, or 1 with the message. */
static pid_t receiver(int fd)
{
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid)
        return pid;
    hvc_hypervisor *hv;
    hvc_vm *vm;
    if (hvc_hypervisor_open("kvm", &hv) < 0 ||
        hvc_vm_migrate_receive(hv, fd, NULL, &vm) < 0) {
        fprintf(stderr, "destination: %s\n", hvc_last_error());
        _exit(1);
    }
    _exit(0);
}

static int show(void *opaque, const hvc_migrate_stats *s)
{
    uint64_t passes = 0;
    hvc_vm_read(opaque, HOT_GPA, &passes, 8);
    fprintf(stderr,
            "  round %u: pass %llu, %llu pages left, %.1f MiB/s, %llu pages/s "
            "dirtied, "
            "expect %llu us, throttle %u%%\n",
            s->rounds, (unsigned long long)passes,
            (unsigned long long)s->remaining_pages,
            (double)s->throughput_bps / (1 << 20),
            (unsigned long long)s->dirty_pages_per_s,
            (unsigned long long)s->expected_downtime_us, s->throttle_percent);
    return 0;
}

static void migrate(bool converge, hvc_migrate_stats *st)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = receiver(sv[1]);
    close(sv[1]);
    struct dirtier d;
    dirtier_open(&d);
    usleep(50000);
    uint64_t passes_before;
    HVT_OK(hvc_vm_read(d.vm, HOT_GPA, &passes_before, 8));
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.bandwidth_mib = BANDWIDTH_MIB;
    o.max_downtime_ms = DOWNTIME_MS;
    o.max_rounds = converge ? 30 : 6;
    o.flags = converge ? HVC_MIGRATE_AUTO_CONVERGE : 0;
    o.progress = show;
    o.opaque = d.vm;
    HVT_OK(hvc_vm_migrate_send(d.vm, sv[0], &o, st));
    fprintf(stderr,
            "%s: %u rounds, total %llu ms, downtime %llu us, expected %llu "
            "us, throttle %u%%\n",
            converge ? "auto-converge" : "no throttle", st->rounds,
            (unsigned long long)st->total_ms,
            (unsigned long long)st->downtime_us,
            (unsigned long long)st->expected_downtime_us, st->throttle_percent);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(sv[0]);
    /* The guest ran during the migration (it is paused for good now). */
    uint64_t passes_after;
    HVT_OK(hvc_vm_read(d.vm, HOT_GPA, &passes_after, 8));
    cr_assert_gt(passes_after, passes_before);
    dirtier_close(&d);
}

Test(migration_converge, throttles_until_it_fits)
{
    hvc_migrate_stats plain = HVC_MIGRATE_STATS_INIT;
    migrate(false, &plain);
    /* Without throttling the rounds ran out before the rest fitted. */
    cr_assert_eq(plain.rounds, 7);
    cr_assert_eq(plain.throttle_percent, 0);
    cr_assert_gt(plain.expected_downtime_us, DOWNTIME_MS * 1000ull);

    hvc_migrate_stats conv = HVC_MIGRATE_STATS_INIT;
    migrate(true, &conv);
    cr_assert_geq(conv.throttle_percent, 20);
    cr_assert_leq(conv.throttle_percent, 99);
    cr_assert_leq(conv.rounds, 30, "never converged");
    cr_assert_leq(conv.expected_downtime_us, DOWNTIME_MS * 1000ull);
}
