/* --incoming with a source that switched over to post-copy: one line when
 * every page arrived, with the faults the guest took on missing pages and
 * how long each took to serve, or one line when post-copy failed (the
 * vCPUs then stop, and hvrun exits 125). */
#include "hvrun.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

static pthread_t watcher;
static bool watching;
static atomic_int unwatch;

static void *watch(void *arg)
{
    struct machine *m = arg;
    int r;
    do
        r = hvc_vm_postcopy_wait(m->vm, 200);
    while (r == -ETIMEDOUT && !atomic_load(&unwatch));
    if (r == -ETIMEDOUT)
        return NULL;
    if (r < 0) {
        fprintf(stderr, "hvrun: --incoming: %s\n", hvrun_esc(hvc_last_error()));
        return NULL;
    }
    hvc_postcopy_stats st = HVC_POSTCOPY_STATS_INIT;
    if (hvc_vm_postcopy_stats(m->vm, &st) == 0 &&
        st.state == HVC_POSTCOPY_COMPLETE)
        fprintf(stderr,
                "hvrun: post-copy complete in %" PRIu64 " ms: %" PRIu64
                " pages (%" PRIu64 " pushed, %" PRIu64 " fetched on %" PRIu64
                " faults), fault service median %" PRIu64 " us, p99 %" PRIu64
                " us, max %" PRIu64 " us\n",
                st.elapsed_ms, st.pages, st.pages_pushed, st.pages_requested,
                st.faults, st.fault_median_us, st.fault_p99_us,
                st.fault_max_us);
    return NULL;
}

void hvrun_postcopy_watch(struct machine *m)
{
    hvc_postcopy_stats st = HVC_POSTCOPY_STATS_INIT;
    if (hvc_vm_postcopy_stats(m->vm, &st) < 0 || st.state == HVC_POSTCOPY_NONE)
        return;
    watching = pthread_create(&watcher, NULL, watch, m) == 0;
}

void hvrun_postcopy_unwatch(void)
{
    atomic_store(&unwatch, 1);
    if (watching)
        pthread_join(watcher, NULL);
    watching = false;
}
