/* Guest memory over several connections (docs/MIGRATION.md, "Parallel
 * connections"), the sender's side. live.c queues each round's pages as
 * jobs of at most HVI_PAR_RUN_PAGES pages; one worker thread per extra
 * connection, and the calling thread on the main connection, take jobs in
 * turn, copy the pages out of guest memory and write them as MEMORY_ROUND
 * records tagged with the round. A round ends when every job is written.
 *
 * Each extra connection is its own stream of sections (no header) with
 * offsets, so encryption nonces, from HVI_PAR_OFFSET(index), and a key
 * context of its own; with TLS, a TLS session of its own.
 *
 * Locks: p->mu (a leaf) guards the round's start and end; the jobs are
 * taken with an atomic index. No VM lock is held by the workers. */
#define _GNU_SOURCE
#include "par.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Send buffer of an extra connection: what may wait in it when the VM
 * pauses, on each connection. */
#define SNDBUF (1 << 20)

struct job {
    const hvc_memory_region *reg;
    uint64_t pg, count;
};

struct conn {
    struct hvi_par *p;
    uint32_t index;
    int fd, fd_flags;
    struct hvi_tls *tls;
    struct hvi_out o;    /* extra connections' writer */
    struct hvi_out *out; /* &o, or the main connection's */
    uint8_t *copy;
    struct hvi_pacer pacer;
    struct hvi_conn_totals tot;
    pthread_t thread;
    bool started;
};

struct hvi_par {
    struct hvi_par_cfg cfg;
    uint8_t session[16];
    uint32_t n;
    struct conn c[HVI_PAR_MAX];
    struct job *jobs;
    size_t njobs, cap;
    _Atomic size_t next;
    uint32_t round;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;
    uint32_t running;
    bool quit;
    _Atomic int err;
    char why[512];
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The first error of any connection stops all of them. */
static int fail(struct hvi_par *p, int err)
{
    int zero = 0;
    if (atomic_compare_exchange_strong(&p->err, &zero, err)) {
        pthread_mutex_lock(&p->mu);
        snprintf(p->why, sizeof(p->why), "%s", hvc_last_error());
        pthread_mutex_unlock(&p->mu);
    }
    return err;
}

/* An extra connection's write callback: polls, so that a cancel, the
 * timeout or another connection's failure is seen, and reads the
 * destination's end of the connection (it never speaks on it) as its
 * refusal. */
static int64_t conn_write(void *opaque, const void *buf, size_t len)
{
    struct conn *c = opaque;
    struct hvi_par *p = c->p;
    for (;;) {
        if (atomic_load(&p->err))
            return -ECANCELED;
        if (p->cfg.cancel && atomic_load(p->cfg.cancel))
            return -ECANCELED;
        if (p->cfg.deadline && now_ns() > p->cfg.deadline)
            return -ETIMEDOUT;
        uint64_t wait = hvi_pacer_account(&c->pacer, 0, now_ns());
        if (wait) {
            struct timespec t = {0,
                                 (long)(wait < 50000000u ? wait : 50000000u)};
            nanosleep(&t, NULL);
            continue;
        }
        uint64_t cap = c->pacer.bps / 50 > 65536 ? c->pacer.bps / 50 : 65536;
        if (c->pacer.bps && len > cap)
            len = cap;
        struct pollfd f = {.fd = c->fd, .events = POLLOUT | POLLIN};
        int r = poll(&f, 1, 50);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        if (f.revents & (POLLIN | POLLHUP | POLLERR)) {
            char b;
            ssize_t k = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
            if (k >= 0 || (errno != EAGAIN && errno != EINTR))
                return hvi_error(-ECONNABORTED,
                                 "memory connection %u: the destination "
                                 "closed it",
                                 c->index);
        }
        int64_t n;
        if (c->tls) {
            short want;
            n = hvi_tls_write(c->tls, buf, len, &want);
            if (n == -EAGAIN)
                continue;
        } else {
            n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n < 0)
                n = -errno;
        }
        if (n > 0)
            hvi_pacer_account(&c->pacer, (uint64_t)n, now_ns());
        if (n < 0)
            return hvi_error((int)n, "memory connection %u: %s", c->index,
                             hvc_strerror((int)n));
        return n;
    }
}

/* One job: the pages copied out of guest memory, then cut into raw and
 * zero records. */
static int send_job(struct conn *c, const struct job *j, uint32_t round)
{
    const hvc_memory_region *reg = j->reg;
    memcpy(c->copy, reg->hva + j->pg * HVI_PAGE, j->count * HVI_PAGE);
    for (uint64_t i = 0; i < j->count;) {
        const uint8_t *pg = c->copy + i * HVI_PAGE;
        bool zero = hvi_page_zero(pg);
        uint64_t k = i + 1;
        while (k < j->count && hvi_page_zero(c->copy + k * HVI_PAGE) == zero)
            k++;
        uint8_t d[HVI_ROUND_DESC];
        hvi_put64(d, reg->gpa + (j->pg + i) * HVI_PAGE);
        hvi_put64(d + 8, k - i);
        hvi_put32(d + 16, zero ? HVI_MEM_ZERO : HVI_MEM_RAW);
        hvi_put32(d + 20, round);
        uint64_t before = c->out->payload_bytes;
        int r =
            hvi_put_section2(c->out, HVI_MEMORY_ROUND, 0, d, sizeof(d),
                             zero ? NULL : pg, zero ? 0 : (k - i) * HVI_PAGE);
        if (r < 0)
            return r;
        c->tot.records++;
        c->tot.bytes += c->out->payload_bytes - before;
        if (zero)
            c->tot.zero_pages += k - i;
        else
            c->tot.raw_pages += k - i;
        c->tot.last_round = round;
        i = k;
    }
    return 0;
}

static int do_jobs(struct conn *c)
{
    struct hvi_par *p = c->p;
    while (!atomic_load(&p->err)) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->njobs)
            return 0;
        int r = send_job(c, &p->jobs[i], p->round);
        if (r < 0 && c->index &&
            strncmp(hvc_last_error(), "memory connection", 17) != 0) {
            char why[480];
            snprintf(why, sizeof(why), "%s", hvc_last_error());
            r = hvi_error(r, "memory connection %u: %s", c->index, why);
        }
        if (r < 0)
            return fail(p, r);
    }
    return -ECANCELED;
}

static void *worker(void *arg)
{
    struct conn *c = arg;
    struct hvi_par *p = c->p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        do_jobs(c);
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0)
            pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

const uint8_t *hvi_par_session(const struct hvi_par *p)
{
    return p->session;
}

int hvi_par_open(const struct hvi_par_cfg *cfg, struct hvi_par **out)
{
    struct hvi_par *p = calloc(1, sizeof(*p));
    if (!p)
        return hvi_error(-ENOMEM, "out of memory");
    p->cfg = *cfg;
    p->n = cfg->connections;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (uint32_t k = 0; k < HVI_PAR_MAX; k++) {
        p->c[k].fd = -1;
        p->c[k].fd_flags = -1;
    }
    *out = p;
    int r = hvi_random(p->session, sizeof(p->session));
    if (r < 0)
        return r;
    uint8_t pl[HVI_PAR_SECTION];
    hvi_put32(pl, p->n - 1);
    hvi_put32(pl + 4, cfg->page_channel ? HVI_PAR_F_PAGE_CHANNEL : 0);
    memcpy(pl + 8, p->session, 16);
    if ((r = hvi_put_section(cfg->main, HVI_PARALLEL, 0, pl, sizeof(pl))) < 0)
        return r;
    uint64_t share = (uint64_t)cfg->opts->bandwidth_mib / p->n;
    if (cfg->opts->bandwidth_mib && !share)
        share = 1;
    uint64_t t = now_ns();
    for (uint32_t k = 0; k < p->n; k++) {
        struct conn *c = &p->c[k];
        c->p = p;
        c->index = k;
        hvi_pacer_init(&c->pacer, (uint32_t)share, t);
        if (!(c->copy = malloc(HVI_PAR_RUN_PAGES * HVI_PAGE)))
            return hvi_error(-ENOMEM, "out of memory");
        if (k == 0) {
            c->out = cfg->main;
            continue;
        }
        uint32_t ms = HVI_PAR_ACCEPT_MS;
        if (cfg->opts->timeout_ms && cfg->opts->timeout_ms < ms)
            ms = cfg->opts->timeout_ms;
        if ((r = hvi_par_connect(cfg->opts->address, cfg->opts->tls, k,
                                 p->session, ms, &c->fd, &c->tls)) < 0)
            return r;
        int buf = SNDBUF;
        setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
        c->fd_flags = fcntl(c->fd, F_GETFL);
        if (c->fd_flags >= 0)
            fcntl(c->fd, F_SETFL, c->fd_flags | O_NONBLOCK);
        c->o.fd = -1;
        c->o.s.size = sizeof(c->o.s);
        c->o.s.write = conn_write;
        c->o.s.opaque = c;
        c->o.off = HVI_PAR_OFFSET(k);
        if (cfg->main->crypt &&
            (r = hvi_crypt_clone(cfg->main->crypt, &c->o.crypt)) < 0)
            return r;
        c->out = &c->o;
        int e = pthread_create(&c->thread, NULL, worker, c);
        if (e)
            return hvi_error(-e, "cannot start a thread: %s", hvc_strerror(-e));
        c->started = true;
    }
    return 0;
}

int hvi_par_add(struct hvi_par *p, const hvc_memory_region *reg, uint64_t pg,
                uint64_t count)
{
    while (count) {
        uint64_t c = count > HVI_PAR_RUN_PAGES ? HVI_PAR_RUN_PAGES : count;
        if (p->njobs == p->cap) {
            size_t cap = p->cap ? 2 * p->cap : 1024;
            struct job *j = realloc(p->jobs, cap * sizeof(*j));
            if (!j)
                return hvi_error(-ENOMEM, "out of memory");
            p->jobs = j;
            p->cap = cap;
        }
        p->jobs[p->njobs++] = (struct job){reg, pg, c};
        pg += c;
        count -= c;
    }
    return 0;
}

/* Waits (at most DRAIN_NS) until the receiver took what the round put in
 * every connection's send queue: a round ends when its pages arrived, so
 * the throughput it measures is the link's, and the pause does not start
 * with megabytes still queued on several connections. */
#define DRAIN_NS 1000000000ull
static void drain(struct hvi_par *p)
{
    uint64_t end = now_ns() + DRAIN_NS;
    while (!atomic_load(&p->err) &&
           !(p->cfg.cancel && atomic_load(p->cfg.cancel)) && now_ns() < end) {
        bool empty = true;
        for (uint32_t k = 0; empty && k < p->n; k++) {
            int q = 0, fd = k ? p->c[k].fd : p->cfg.main_fd;
            if (ioctl(fd, SIOCOUTQ, &q) == 0 && q > 0)
                empty = false;
        }
        if (empty)
            return;
        struct timespec t = {0, 200000};
        nanosleep(&t, NULL);
    }
}

int hvi_par_run(struct hvi_par *p, uint32_t round)
{
    p->round = round;
    atomic_store(&p->next, 0);
    pthread_mutex_lock(&p->mu);
    p->running = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    do_jobs(&p->c[0]);
    pthread_mutex_lock(&p->mu);
    while (p->running)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    p->njobs = 0;
    drain(p);
    int err = atomic_load(&p->err);
    if (err < 0)
        return hvi_error(err, "%s", p->why);
    return 0;
}

int hvi_par_finish(struct hvi_par *p)
{
    size_t len = 8 + (size_t)p->n * HVI_CONN_TOTALS;
    uint8_t *pl = calloc(1, len);
    if (!pl)
        return hvi_error(-ENOMEM, "out of memory");
    hvi_put32(pl, p->n);
    hvi_put32(pl + 4, p->round);
    int r = 0;
    for (uint32_t k = 0; k < p->n; k++) {
        struct conn *c = &p->c[k];
        hvi_totals_encode(pl + 8 + (size_t)k * HVI_CONN_TOTALS, &c->tot);
        if (k && r == 0)
            r = hvi_put_section(&c->o, HVI_CONN_END, k,
                                pl + 8 + (size_t)k * HVI_CONN_TOTALS,
                                HVI_CONN_TOTALS);
    }
    if (r == 0)
        r = hvi_put_section(p->cfg.main, HVI_PARALLEL_END, 0, pl, len);
    free(pl);
    return r;
}

uint64_t hvi_par_sent(const struct hvi_par *p)
{
    uint64_t n = 0;
    for (uint32_t k = 1; k < p->n; k++)
        n += p->c[k].o.off - HVI_PAR_OFFSET(k);
    return n;
}

void hvi_par_stats(const struct hvi_par *p, hvc_migrate_stats *st)
{
    st->connections = p->n;
    for (uint32_t k = 0; k < p->n && k < HVI_PAR_MAX; k++) {
        const struct hvi_conn_totals *t = &p->c[k].tot;
        st->connection_bytes[k] = t->bytes + t->records * HVI_SEC_HEADER;
        st->connection_pages[k] = t->raw_pages + t->zero_pages;
    }
}

void hvi_par_free(struct hvi_par *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t k = 0; k < HVI_PAR_MAX; k++) {
        struct conn *c = &p->c[k];
        if (c->started)
            pthread_join(c->thread, NULL);
        if (k)
            hvi_out_free(&c->o);
        hvi_tls_free(c->tls);
        if (c->fd >= 0)
            close(c->fd);
        free(c->copy);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->jobs);
    free(p);
}
