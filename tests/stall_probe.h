/* Measures of "no thread held up" for tests that must show a vCPU or the
 * VM's event thread is never blocked for long (test_virtio_net_postcopy.c),
 * on a host whose scheduler adds its own delays:
 *
 *   - a thread's time split into on-CPU, waiting on a run queue (the
 *     scheduler's delay, /proc/self/task/TID/schedstat) and the rest,
 *     asleep: for a thread that never sleeps of its own (a vCPU whose
 *     guest polls), time asleep is time blocked (on a page, a lock);
 *   - a probe of the event thread: a watched pipe written every period
 *     with the time; its callback's lateness, less the run-queue wait the
 *     event thread had meanwhile.
 *
 * No Criterion asserts here (the destination side of a test is a forked
 * child). */
#ifndef STALL_PROBE_H
#define STALL_PROBE_H

#include <hvcore.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

uint64_t sp_mono_ns(void);

/* A thread's wall, CPU and run-queue time at one moment. */
struct sp_times {
    uint64_t wall, cpu, run_delay;
};
/* The calling thread's times (its tid into *tid, its CPU clock into *clk
 * when not NULL); 0 or -errno. */
int sp_self(struct sp_times *t, pid_t *tid, clockid_t *clk);
/* Thread @p tid's (in this process) times, its CPU time from @p clk. */
int sp_thread(pid_t tid, clockid_t clk, struct sp_times *t);
/* Time asleep between two snapshots: wall - CPU - run-queue wait. */
uint64_t sp_asleep(const struct sp_times *a, const struct sp_times *b);

/* A watch on one thread that never sleeps of its own (a polling vCPU):
 * every period it takes the thread's times; a window's time asleep is
 * wall - CPU - run-queue wait. A block of the thread covers the windows
 * it spans (each of them shows it asleep for its share), so the longest
 * block is at most the largest sum over consecutive windows asleep at
 * least SP_ASLEEP_MIN_NS (and the window that ends them), plus two such
 * thresholds for its ends. */
#define SP_ASLEEP_MIN_NS 200000ull
struct sp_watch {
    pid_t tid;
    clockid_t clk;
    unsigned period_us;
    atomic_int stop;
    pthread_t th;
    struct sp_times first, last;
    uint64_t windows;
    uint64_t block_max_ns; /* the bound above */
    int64_t chain_ns;      /* the current run of windows asleep */
    bool in_chain;
    int err;
};
int sp_watch_start(struct sp_watch *w, pid_t tid, clockid_t clk,
                   unsigned period_us);
/* Stops it; w->first..w->last is what it saw. */
void sp_watch_stop(struct sp_watch *w);

/* The event-thread probe. */
struct sp_probe {
    hvc_vm *vm;
    int fd[2]; /* the pipe: the prober writes [1], the event thread reads [0] */
    unsigned period_us;
    atomic_int stop;
    pthread_t th;
    /* the callback's (the event thread's) */
    uint64_t prev_rd;     /* its run-queue time at the end of the last call */
    uint64_t n;           /* calls that read a stamp */
    uint64_t late_max_ns; /* largest lateness of a stamp */
    uint64_t net_max_ns;  /* largest lateness less run-queue wait */
    uint64_t late_rd_ns;  /* the run-queue wait that came with late_max */
    int err;
};
/* Watches the pipe on @p vm's event thread and starts the prober. */
int sp_probe_start(struct sp_probe *p, hvc_vm *vm, unsigned period_us);
/* Stops the prober, unwatches and closes the pipe. */
void sp_probe_stop(struct sp_probe *p);

#endif
