/* Post-copy, the destination's state (postcopy_recv.c runs its threads,
 * postcopy_query.c answers the accessors and the caller). */
#ifndef HVCORE_MIGRATION_POSTCOPY_RECV_H
#define HVCORE_MIGRATION_POSTCOPY_RECV_H

#include "postcopy.h"

#include <pthread.h>
#include <time.h>

#define MAX_SAMPLES (1u << 20)

struct pc_reg {
    uint8_t *hva;
    uint64_t gpa, len, pages;
    uint64_t *set;             /* the plan: pages that were left to come */
    _Atomic uint64_t *missing; /* of those, the ones not here yet */
    _Atomic uint64_t *asked;   /* per page: ns of the first request, 0 */
};

/* A stream's TLS session (t NULL: plain). Its reader and its writers are
 * different threads, and a session is not to be used by two at once:
 * each call into it holds lock, a leaf, and none waits for the socket
 * holding it (the socket is non-blocking; the waits are poll()s). */
struct pc_tls {
    struct hvi_tls *t;
    int fd;
    uint32_t timeout_ms; /* a read's limit on a stalled source; 0: none */
    pthread_mutex_t lock;
};

/* One stream the pages come on: the connection, or the page channel. */
struct pc_stream {
    struct pc_tls tls;
    struct hvi_in in;
    uint8_t buf[HVI_PC_RUN_PAGES * HVI_PAGE + HVI_MEM_DESC + HVI_TAG_SIZE];
};

struct hvi_postcopy {
    hvc_vm *vm;
    int fd, uffd, stop_fd;
    int pfd;           /* the page channel, or -1 */
    atomic_int ctl_fd; /* where requests go: pfd once known, else fd */
    struct pc_stream main, chan;
    pthread_t chan_thread;
    atomic_bool chan_started;
    struct pc_reg *r;
    size_t n;
    atomic_uint_fast64_t left;
    atomic_int waiters; /* threads in hvi_postcopy_fetch_slow() */
    atomic_int stopping;
    pthread_mutex_t lock;  /* leaf: state, why, samples, cond */
    pthread_mutex_t wlock; /* leaf: writes to fd */
    /* Placing pages (the receiver and the channel thread): the copy into
     * guest memory, missing, left, pushed/requested; taken before lock. */
    pthread_mutex_t place_lock;
    pthread_cond_t cond;
    int state, err;
    char why[512];
    uint32_t *samples;
    size_t nsamples, cap;
    uint64_t max_ns;
    atomic_uint_fast64_t pushed, requested, faults, zero_faults;
    uint64_t total, t0, t_end;
    pthread_t fault_thread, recv_thread;
    bool fault_started, recv_started;
    /* Over TCP the page channel connects (par_conn.c): a dup() of the
     * caller's listening socket until it came, and the session it must
     * name; -1 otherwise. */
    int listen_fd;
    uint8_t session[16];
    /* Over TLS: the receiver's options (copied: the channel comes after
     * the caller's call returned), and the connection's fcntl flags to
     * put back (it is non-blocking meanwhile; -1: untouched). */
    hvc_migrate_tls tls_opts;
    bool tls_on;
    int fd_flags;
    /* Code that must not wait (the event thread's device models) asks to
     * be called back when a range it needs is here
     * (hvi_postcopy_when_present()): wake_lock, a leaf, guards the list
     * and is held while a callback runs (a callback only signals); nwakes
     * lets place() skip the lock while the list is empty. */
    pthread_mutex_t wake_lock;
    struct pc_wake {
        uint64_t gpa, len;
        hvi_page_wake_fn fn;
        void *opaque;
        uint32_t arg;
    } * wakes;
    size_t wcap;
    atomic_size_t nwakes;
};

static inline uint64_t hvi_pc_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline bool hvi_pc_test(const uint64_t *bits, uint64_t pg)
{
    return bits[pg / 64] >> (pg % 64) & 1;
}

/* Whether page @p pg of @p r is still to come. */
static inline bool hvi_pc_missing(struct pc_reg *r, uint64_t pg)
{
    return atomic_load(&r->missing[pg / 64]) >> (pg % 64) & 1;
}

static inline struct pc_reg *hvi_pc_region(struct hvi_postcopy *pc,
                                           uint64_t gpa)
{
    for (size_t i = 0; i < pc->n; i++)
        if (gpa >= pc->r[i].gpa && gpa - pc->r[i].gpa < pc->r[i].len)
            return &pc->r[i];
    return NULL;
}

/* postcopy_link.c: writes a message to the source (a request, DONE,
 * FAILED) on the page channel once there is one, else the connection;
 * @p nowait (the VM's event thread): -EAGAIN, nothing written, when it
 * cannot go at once. */
int hvi_pc_send_msg(struct hvi_postcopy *pc, uint16_t kind, uint32_t a,
                    uint64_t b, uint32_t c, bool nowait);
/* Reads the record that opens post-copy and opens the page channel it
 * names (pc->pfd, pc->chan; -1 and untouched for none). */
int hvi_pc_open_channel(struct hvi_postcopy *pc);

/* Calls back the waiters whose range is here now (every one when @p all:
 * post-copy ended, either way). Any thread, holding no lock. */
void hvi_pc_fire_wakes(struct hvi_postcopy *pc, bool all);

/* Asks the source for page @p pg of @p r once (@p t: the fault's time);
 * a failed request fails post-copy. On the VM's event thread the request
 * is dropped (and left to ask again) when it cannot be written at once. */
int hvi_pc_ask(struct hvi_postcopy *pc, struct pc_reg *r, uint64_t pg,
               uint64_t t);

#endif
