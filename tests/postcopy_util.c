/* Helpers of the post-copy suites (postcopy_util.h). */
#include "postcopy_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *run_vcpu(void *arg)
{
    struct pct_runner *r = arg;
    while (!atomic_load(&r->stop)) {
        const hvc_exit *e;
        if (hvc_vcpu_run(r->vcpu, &e) < 0) {
            r->error = 1;
            break;
        }
    }
    return NULL;
}

void pct_start_runner(struct pct_runner *r, hvc_vcpu *v)
{
    r->vcpu = v;
    atomic_store(&r->stop, 0);
    r->error = 0;
    cr_assert_eq(pthread_create(&r->t, NULL, run_vcpu, r), 0);
}

void pct_print_stats(const char *what, const hvc_migrate_stats *st,
                     const hvc_postcopy_stats *ds)
{
    fprintf(stderr,
            "%s: %u rounds, %llu pages left at the switchover, %llu pushed, "
            "%llu on request, %llu bytes in %llu ms, downtime %llu us; "
            "destination: %llu faults (%llu zero-filled), service median %llu "
            "us, p99 %llu us, max %llu us\n",
            what, st->rounds, (unsigned long long)st->postcopy_pages,
            (unsigned long long)st->postcopy_pages_pushed,
            (unsigned long long)st->postcopy_pages_requested,
            (unsigned long long)st->postcopy_bytes,
            (unsigned long long)st->postcopy_ms,
            (unsigned long long)st->downtime_us, (unsigned long long)ds->faults,
            (unsigned long long)ds->zero_faults,
            (unsigned long long)ds->fault_median_us,
            (unsigned long long)ds->fault_p99_us,
            (unsigned long long)ds->fault_max_us);
}

void pct_touch_open(hvc_hypervisor **hv, hvc_vm **vm, hvc_vcpu **v)
{
    hvt_require_kvm();
    HVT_OK(hvc_hypervisor_open("kvm", hv));
    HVT_OK(hvc_vm_create(*hv, NULL, vm));
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = TR_MEM;
    HVT_OK(hvc_vm_add_memory(*vm, &mo, NULL));
    hvt_load(*vm, "touchrand64");
    *v = hvt_vcpu(*vm, 0, HVC_X86_MODE_LONG64, 0);
}

/* The destination: receives, switches the guest to its random visits at
 * once, runs them, then waits for post-copy to end. With @p expect_fail,
 * a failure anywhere is reported rather than fatal. */
int pct_touch_listen = -1;
const hvc_migrate_tls *pct_touch_tls;

void pct_touch_destination(int sock, int report)
{
    struct pct_touch_report rep = {0};
    rep.st.size = sizeof(rep.st);
    hvc_hypervisor *hv;
    hvc_vm *vm = NULL;
    if (hvc_hypervisor_open("kvm", &hv) < 0)
        _exit(30);
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.listen_fd = pct_touch_listen;
    ro.tls = pct_touch_tls;
    rep.receive = hvc_vm_migrate_receive(hv, sock, &ro, &vm);
    close(sock); /* as a VMM may: post-copy goes on, over TLS too */
    if (rep.receive < 0) {
        snprintf(rep.why, sizeof(rep.why), "%s", hvc_last_error());
        migt_write_all(report, &rep, sizeof(rep));
        _exit(0);
    }
    uint64_t in[2] = {1, 0x1234567 + (uint64_t)getpid()};
    hvc_vcpu *v = NULL;
    rep.run = hvc_vm_get_vcpu(vm, 0, &v);
    if (rep.run == 0)
        rep.run = hvc_vm_write(vm, DATA_IN, in, sizeof(in));
    if (rep.run == 0) {
        const hvc_exit *e;
        rep.run = hvc_vcpu_run(v, &e);
        if (rep.run == 0)
            rep.status = e->reason == HVC_EXIT_PIO && e->u.io.port == PORT_DONE
                             ? *(uint8_t *)e->u.io.data
                             : 0x100 + e->reason;
    }
    if (rep.run < 0)
        snprintf(rep.why, sizeof(rep.why), "%s", hvc_last_error());
    rep.wait = hvc_vm_postcopy_wait(vm, 30000);
    if (rep.wait < 0)
        snprintf(rep.wait_why, sizeof(rep.wait_why), "%s", hvc_last_error());
    hvc_vm_postcopy_stats(vm, &rep.st);
    for (uint32_t i = 0; rep.wait < 0 && i < TR_NPAGES; i++) {
        uint64_t q;
        if (hvc_vm_read(vm, TR_BASE + i * 4096ull, &q, 8) == -EIO)
            rep.read_eio++;
    }
    if (rep.wait == 0) {
        hvc_vm_read(vm, TR_BAD, &rep.bad, 8);
        hvc_vm_read(vm, TR_VISITS, &rep.visits, 8);
    }
    migt_write_all(report, &rep, sizeof(rep));
    /* The first qword of every page, as it is now. */
    uint64_t first[TR_NPAGES];
    for (uint32_t i = 0; rep.wait == 0 && i < TR_NPAGES; i++)
        hvc_vm_read(vm, TR_BASE + i * 4096ull, &first[i], 8);
    if (rep.wait == 0)
        migt_write_all(report, first, sizeof(first));
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    _exit(0);
}

/* A source VM running passes over its pages, at least two done. */
void pct_touch_source(hvc_hypervisor **hv, hvc_vm **vm, struct pct_runner *run)
{
    hvc_vcpu *v;
    pct_touch_open(hv, vm, &v);
    pct_start_runner(run, v);
    uint64_t passes = 0;
    for (int i = 0; i < 2000 && passes < 2; i++) {
        migt_sleep_ms(5);
        HVT_OK(hvc_vm_read(*vm, TR_PASSES, &passes, 8));
    }
    cr_assert_geq(passes, 2, "the guest made %llu passes",
                  (unsigned long long)passes);
}
