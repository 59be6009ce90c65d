/* See stall_probe.h. */
#include "stall_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

uint64_t sp_mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The second field of a schedstat file: time spent waiting on a run
 * queue, ns (CONFIG_SCHED_INFO). */
static int run_delay(const char *path, uint64_t *rd)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char b[128];
    ssize_t k = read(fd, b, sizeof(b) - 1);
    close(fd);
    if (k <= 0)
        return -EIO;
    b[k] = 0;
    unsigned long long cpu, d;
    if (sscanf(b, "%llu %llu", &cpu, &d) != 2)
        return -EIO;
    *rd = d;
    return 0;
}

static uint64_t clock_ns(clockid_t c)
{
    struct timespec t;
    if (clock_gettime(c, &t) < 0)
        return 0;
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int sp_self(struct sp_times *t, pid_t *tid, clockid_t *clk)
{
    if (tid)
        *tid = gettid();
    if (clk && pthread_getcpuclockid(pthread_self(), clk) != 0)
        return -EINVAL;
    t->wall = sp_mono_ns();
    /* CLOCK_THREAD_CPUTIME_ID brings the running slice in (schedstat's
     * first field lags it by up to a tick) */
    t->cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    return run_delay("/proc/thread-self/schedstat", &t->run_delay);
}

int sp_thread(pid_t tid, clockid_t clk, struct sp_times *t)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
    t->wall = sp_mono_ns();
    t->cpu = clock_ns(clk);
    return run_delay(path, &t->run_delay);
}

uint64_t sp_asleep(const struct sp_times *a, const struct sp_times *b)
{
    uint64_t busy = (b->cpu - a->cpu) + (b->run_delay - a->run_delay);
    uint64_t wall = b->wall - a->wall;
    return wall > busy ? wall - busy : 0;
}

static void close_chain(struct sp_watch *w)
{
    int64_t b = w->chain_ns + 2 * (int64_t)SP_ASLEEP_MIN_NS;
    if (w->in_chain && b > 0 && (uint64_t)b > w->block_max_ns)
        w->block_max_ns = (uint64_t)b;
}

static void *watcher(void *arg)
{
    struct sp_watch *w = arg;
    struct sp_times prev = w->first;
    while (!atomic_load(&w->stop)) {
        usleep(w->period_us);
        struct sp_times t;
        if (sp_thread(w->tid, w->clk, &t) < 0) {
            w->err = -EIO;
            break;
        }
        /* Signed: a run-queue wait still going on at a sample is only
         * counted once the thread runs, so it first shows as time asleep
         * and is taken back (a negative share) in the window where it
         * ends. A run ends with the first window not asleep, whose share
         * (that correction, or a little sleep) goes into it. */
        int64_t a = (int64_t)(t.wall - prev.wall) -
                    (int64_t)(t.cpu - prev.cpu) -
                    (int64_t)(t.run_delay - prev.run_delay);
        w->windows++;
        w->chain_ns += a;
        if (a < (int64_t)SP_ASLEEP_MIN_NS) {
            close_chain(w);
            w->chain_ns = 0;
            w->in_chain = false;
        } else {
            w->in_chain = true;
        }
        prev = w->last = t;
    }
    if (w->in_chain)
        close_chain(w);
    return NULL;
}

int sp_watch_start(struct sp_watch *w, pid_t tid, clockid_t clk,
                   unsigned period_us)
{
    memset(w, 0, sizeof(*w));
    w->tid = tid;
    w->clk = clk;
    w->period_us = period_us;
    int r = sp_thread(tid, clk, &w->first);
    if (r < 0)
        return r;
    w->last = w->first;
    if (pthread_create(&w->th, NULL, watcher, w) != 0)
        return -EAGAIN;
    return 0;
}

void sp_watch_stop(struct sp_watch *w)
{
    atomic_store(&w->stop, 1);
    pthread_join(w->th, NULL);
}

static void on_stamp(void *opaque, int fd, uint32_t events)
{
    struct sp_probe *p = opaque;
    (void)events;
    uint64_t now = sp_mono_ns(), rd = 0, first = 0;
    if (run_delay("/proc/thread-self/schedstat", &rd) < 0)
        p->err = -EIO;
    uint64_t s;
    while (read(fd, &s, sizeof(s)) == (ssize_t)sizeof(s))
        if (!first)
            first = s;
    if (first) {
        /* The oldest stamp waited longest. The run-queue wait since the
         * last call is the scheduler's part of it (the event thread was
         * asleep in epoll before the write, so almost all of that wait
         * falls after it). */
        uint64_t late = now > first ? now - first : 0;
        uint64_t q = p->n ? rd - p->prev_rd : 0;
        uint64_t net = late > q ? late - q : 0;
        p->n++;
        if (late > p->late_max_ns) {
            p->late_max_ns = late;
            p->late_rd_ns = q;
        }
        if (net > p->net_max_ns)
            p->net_max_ns = net;
    }
    if (run_delay("/proc/thread-self/schedstat", &p->prev_rd) < 0)
        p->err = -EIO;
}

static void *prober(void *arg)
{
    struct sp_probe *p = arg;
    while (!atomic_load(&p->stop)) {
        uint64_t s = sp_mono_ns();
        if (write(p->fd[1], &s, sizeof(s)) != (ssize_t)sizeof(s))
            p->err = -EIO;
        usleep(p->period_us);
    }
    return NULL;
}

int sp_probe_start(struct sp_probe *p, hvc_vm *vm, unsigned period_us)
{
    memset(p, 0, sizeof(*p));
    p->vm = vm;
    p->period_us = period_us;
    if (pipe2(p->fd, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    int r = hvc_vm_watch_fd(vm, p->fd[0], HVC_FD_READABLE, on_stamp, p);
    if (r < 0)
        return r;
    if (pthread_create(&p->th, NULL, prober, p) != 0) {
        hvc_vm_unwatch_fd(vm, p->fd[0]);
        return -EAGAIN;
    }
    return 0;
}

void sp_probe_stop(struct sp_probe *p)
{
    atomic_store(&p->stop, 1);
    pthread_join(p->th, NULL);
    hvc_vm_unwatch_fd(p->vm, p->fd[0]);
    close(p->fd[0]);
    close(p->fd[1]);
}
