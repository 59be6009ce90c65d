/* Helpers of the post-copy suites (test_migration_postcopy*.c): a vCPU
 * runner thread, the statistics line, and the random-touch guest
 * (tests/guests/touchrand64.S) on both sides. */
#ifndef HVT_POSTCOPY_UTIL_H
#define HVT_POSTCOPY_UTIL_H

#include "migtest.h"

#include <pthread.h>
#include <stdatomic.h>

/* tests/guests/touchrand64.S */
#define TR_BASE 0x400000u
#define TR_NPAGES 8192u
#define TR_MEM (64u << 20)
#define TR_PASSES (DATA_OUT + 0x00)
#define TR_BAD (DATA_OUT + 0x08)
#define TR_VISITS (DATA_OUT + 0x10)

/* Runs a vCPU on its own thread until stop (or an error). */
struct pct_runner {
    hvc_vcpu *vcpu;
    atomic_int stop;
    int error;
    pthread_t t;
};
void pct_start_runner(struct pct_runner *r, hvc_vcpu *v);

/* One line on stderr: the source's post-copy figures and the
 * destination's. */
void pct_print_stats(const char *what, const hvc_migrate_stats *st,
                     const hvc_postcopy_stats *ds);

/* What the random-touch destination reports through its pipe. */
struct pct_touch_report {
    int32_t receive, run, wait;
    uint32_t status;
    uint64_t bad, visits;
    uint64_t read_eio; /* after a failure: pages hvc_vm_read refused */
    hvc_postcopy_stats st;
    char why[256];      /* of the receive or the run */
    char wait_why[256]; /* of hvc_vm_postcopy_wait() */
};

/* A kvm VM with the random-touch guest loaded, vCPU 0 ready. */
void pct_touch_open(hvc_hypervisor **hv, hvc_vm **vm, hvc_vcpu **v);
/* The destination's listening socket (a TCP page channel's) and TLS, set
 * in the child before pct_touch_destination(). */
extern int pct_touch_listen;
extern const hvc_migrate_tls *pct_touch_tls;
/* The destination, in a child (never returns): receives on @p sock,
 * switches the guest to its random visits at once, runs them, waits for
 * post-copy to end, and writes a struct pct_touch_report, then (when it
 * completed) the first qword of every page, to @p report. */
void pct_touch_destination(int sock, int report);
/* A source VM running passes over its pages, at least two done. */
void pct_touch_source(hvc_hypervisor **hv, hvc_vm **vm, struct pct_runner *run);

#endif
