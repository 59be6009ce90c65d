/* Guest memory over several connections (docs/MIGRATION.md, "Parallel
 * connections"), the receiver's side. When restore.c reads PARALLEL on
 * the main connection it accepts the extra connections on the listening
 * socket (par_conn.c: each must name this migration's session) and starts
 * one thread per connection. Each thread reads MEMORY_ROUND records up to
 * its CONN_END and places them; restore.c places the main connection's
 * own. A page takes a record's data only when the record's round is newer
 * than the round it holds, so records may arrive on any connection in any
 * order. PARALLEL_END on the main connection joins the threads and checks
 * every connection's totals before anything later (POSTCOPY, the vCPUs)
 * is read: the guest starts only from memory that all arrived.
 *
 * Locks: one of PAGE_LOCKS mutexes per page (by page index), leaves,
 * held only to compare a page's round and copy it. */
#define _GNU_SOURCE
#include "par.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAGE_LOCKS 256u
#define RECORD_MAX                                                             \
    (HVI_ROUND_DESC + (size_t)HVI_PAR_RUN_PAGES * HVI_PAGE + HVI_TAG_SIZE)
/* The highest round a record may carry. */
#define ROUND_MAX (1u << 30)

struct rconn {
    struct hvi_par_in *p;
    uint32_t index;
    int fd;
    struct hvi_tls *tls;
    struct hvi_in in;
    struct hvi_conn_totals tot;
    bool ended;
    int err;
    uint64_t err_seq; /* the order in which the connections failed */
    char why[512];
    uint8_t *buf;
    pthread_t thread;
    bool started;
};

struct hvi_par_in {
    hvc_memory_region **regs;
    size_t n;
    uint32_t **rounds; /* per region, per page: the round it holds */
    pthread_mutex_t locks[PAGE_LOCKS];
    uint32_t extra;
    struct rconn c[HVI_PAR_MAX]; /* c[0]: the main connection's records */
    _Atomic bool stopping;
    _Atomic uint64_t failures;
    bool joined, ended;
};

static int64_t tls_read(void *opaque, void *buf, size_t len)
{
    for (;;) {
        int64_t n = hvi_tls_read(opaque, buf, len, NULL);
        if (n != -EAGAIN)
            return n;
    }
}

/* Reads a record's payload into c->buf, checks it and decrypts it. */
static int read_record(struct rconn *c, struct hvi_in *in,
                       const struct hvi_sec *s, size_t *len)
{
    if (s->version != HVI_VERSION || !(s->flags & HVI_F_REQUIRED))
        return hvi_fail(s, -EBADMSG, "version %u, flags 0x%x", s->version,
                        s->flags);
    if (s->length > RECORD_MAX)
        return hvi_fail(s, -EBADMSG, "a record of %llu bytes; at most %zu",
                        (unsigned long long)s->length, (size_t)RECORD_MAX);
    size_t n = (size_t)s->length;
    int r = hvi_in_read(in, s, c->buf, n);
    if (r < 0)
        return r;
    uint32_t crc = hvi_crc32c(hvi_crc32c(0, s->raw, 20), c->buf, n);
    if (crc != s->crc)
        return hvi_fail(s, -EBADMSG,
                        "CRC mismatch (stored 0x%08x, computed 0x%08x)", s->crc,
                        crc);
    if (s->flags & HVI_F_ENCRYPTED) {
        if ((r = hvi_unseal(in->crypt, s->offset, s->raw, c->buf, n)) < 0)
            return hvi_fail(s, r,
                            r == -EKEYREJECTED
                                ? "authentication failed: wrong key or "
                                  "altered data"
                                : "decryption failed");
        n -= HVI_TAG_SIZE;
    }
    *len = n;
    return 0;
}

/* Places one record: each page takes it only over an older round. */
static int place(struct rconn *c, const struct hvi_sec *s, size_t len)
{
    struct hvi_par_in *p = c->p;
    const uint8_t *d = c->buf;
    if (len < HVI_ROUND_DESC)
        return hvi_fail(s, -EBADMSG, "payload of %zu bytes", len);
    uint64_t gpa = hvi_get64(d), pages = hvi_get64(d + 8);
    uint32_t enc = hvi_get32(d + 16), round = hvi_get32(d + 20);
    if (enc > HVI_MEM_ZERO)
        return hvi_fail(s, -EBADMSG, "unknown page encoding %u", enc);
    if (gpa % HVI_PAGE || !pages || pages > HVI_PAR_RUN_PAGES)
        return hvi_fail(s, -EBADMSG,
                        "run of %" PRIu64 " pages at 0x%" PRIx64
                        " is malformed",
                        pages, gpa);
    if (len != HVI_ROUND_DESC + (enc == HVI_MEM_RAW ? pages * HVI_PAGE : 0))
        return hvi_fail(s, -EBADMSG,
                        "payload of %zu bytes for %" PRIu64 " %s pages", len,
                        pages, enc ? "zero" : "raw");
    if (round == 0 || round > ROUND_MAX || round < c->tot.last_round)
        return hvi_fail(s, -EBADMSG,
                        "round %u (this connection was at round %u)", round,
                        c->tot.last_round);
    size_t ri = 0;
    while (ri < p->n && !(gpa >= p->regs[ri]->gpa &&
                          gpa - p->regs[ri]->gpa < p->regs[ri]->len))
        ri++;
    uint64_t bytes = pages * HVI_PAGE;
    if (ri == p->n || bytes > p->regs[ri]->len - (gpa - p->regs[ri]->gpa) ||
        (p->regs[ri]->flags & HVC_MEMORY_READONLY))
        return hvi_fail(s, -EBADMSG,
                        "run 0x%" PRIx64 "+0x%" PRIx64
                        " is not inside one writable memory region",
                        gpa, bytes);
    hvc_memory_region *reg = p->regs[ri];
    uint64_t first = (gpa - reg->gpa) / HVI_PAGE;
    for (uint64_t i = 0; i < pages; i++) {
        uint64_t pg = first + i;
        pthread_mutex_t *m = &p->locks[(pg + ri * 7) % PAGE_LOCKS];
        pthread_mutex_lock(m);
        uint32_t held = p->rounds[ri][pg];
        if (held == round) {
            pthread_mutex_unlock(m);
            return hvi_fail(s, -EBADMSG,
                            "page 0x%" PRIx64 " a second time in round %u",
                            gpa + i * HVI_PAGE, round);
        }
        if (held < round) {
            uint8_t *dst = reg->hva + pg * HVI_PAGE;
            if (enc == HVI_MEM_RAW)
                memcpy(dst, d + HVI_ROUND_DESC + i * HVI_PAGE, HVI_PAGE);
            else if (held)
                memset(dst, 0, HVI_PAGE);
            p->rounds[ri][pg] = round;
        }
        pthread_mutex_unlock(m);
    }
    c->tot.records++;
    c->tot.bytes += s->length;
    if (enc == HVI_MEM_RAW)
        c->tot.raw_pages += pages;
    else
        c->tot.zero_pages += pages;
    c->tot.last_round = round;
    return 0;
}

static bool same(const struct hvi_conn_totals *a,
                 const struct hvi_conn_totals *b)
{
    return a->records == b->records && a->raw_pages == b->raw_pages &&
           a->zero_pages == b->zero_pages && a->bytes == b->bytes &&
           a->last_round == b->last_round;
}

static int totals_fail(const struct hvi_sec *s, uint32_t k,
                       const struct hvi_conn_totals *said,
                       const struct hvi_conn_totals *got)
{
    return hvi_fail(
        s, -EBADMSG,
        "connection %u: totals %llu records, %llu raw and %llu "
        "zero pages, %llu bytes, last round %u; it carried %llu, "
        "%llu, %llu, %llu, %u",
        k, (unsigned long long)said->records,
        (unsigned long long)said->raw_pages,
        (unsigned long long)said->zero_pages, (unsigned long long)said->bytes,
        said->last_round, (unsigned long long)got->records,
        (unsigned long long)got->raw_pages, (unsigned long long)got->zero_pages,
        (unsigned long long)got->bytes, got->last_round);
}

/* One extra connection: records up to CONN_END. */
static int conn_read(struct rconn *c)
{
    for (;;) {
        struct hvi_sec s;
        int r = hvi_next_section(&c->in, &s);
        if (r < 0)
            return r;
        if (s.id == HVI_MEMORY_ROUND) {
            size_t len;
            if ((r = read_record(c, &c->in, &s, &len)) < 0 ||
                (r = place(c, &s, len)) < 0)
                return r;
            continue;
        }
        if (s.id != HVI_CONN_END)
            return hvi_fail(&s, -EBADMSG,
                            "not a memory record on memory "
                            "connection %u",
                            c->index);
        uint8_t *p;
        size_t len;
        if ((r = hvi_read_payload(&c->in, &s, &p, &len)) < 0)
            return r;
        struct hvi_conn_totals t = {0};
        if (len == HVI_CONN_TOTALS)
            hvi_totals_decode(p, &t);
        free(p);
        if (len != HVI_CONN_TOTALS || s.instance != c->index)
            return hvi_fail(&s, -EBADMSG,
                            "an end of %zu bytes for connection %u on "
                            "connection %u",
                            len, s.instance, c->index);
        if (!same(&t, &c->tot))
            return totals_fail(&s, c->index, &t, &c->tot);
        c->ended = true;
        return 0;
    }
}

static void *conn_main(void *arg)
{
    struct rconn *c = arg;
    int r = conn_read(c);
    if (r < 0 && !atomic_load(&c->p->stopping)) {
        c->err = r;
        c->err_seq = atomic_fetch_add(&c->p->failures, 1);
        snprintf(c->why, sizeof(c->why), "%s", hvc_last_error());
        shutdown(c->fd, SHUT_RDWR); /* the source sees it and stops */
    }
    return NULL;
}

int hvi_par_in_begin(struct hvi_in *in, const struct hvi_sec *s, hvc_vm *vm)
{
    if (!in->live || in->ho)
        return hvi_fail(s, -EBADMSG,
                        "parallel connections in a stream that "
                        "is not a live migration");
    uint8_t *pl;
    size_t len;
    int r = hvi_read_payload(in, s, &pl, &len);
    if (r < 0)
        return r;
    uint32_t extra = len == HVI_PAR_SECTION ? hvi_get32(pl) : 0;
    uint32_t flags = len == HVI_PAR_SECTION ? hvi_get32(pl + 4) : 0;
    if (len == HVI_PAR_SECTION)
        memcpy(in->session, pl + 8, 16);
    free(pl);
    if (len != HVI_PAR_SECTION)
        return hvi_fail(s, -EBADMSG, "payload of %zu bytes, not %u", len,
                        HVI_PAR_SECTION);
    if (extra >= HVI_PAR_MAX || (flags & ~HVI_PAR_F_PAGE_CHANNEL))
        return hvi_fail(s, -EBADMSG,
                        "%u extra connections (at most %u), "
                        "flags 0x%x",
                        extra, HVI_PAR_MAX - 1, flags);
    if (extra && in->listen_fd < 0)
        return hvi_fail(s, -ENOTSUP,
                        "the source opens %u more connections, and this "
                        "receiver has no listening socket for them "
                        "(hvc_restore_options::listen_fd)",
                        extra);
    in->has_session = true;
    in->channel_connects = flags & HVI_PAR_F_PAGE_CHANNEL;
    struct hvi_par_in *p = calloc(1, sizeof(*p));
    if (!p)
        return hvi_error(-ENOMEM, "out of memory");
    in->par = p;
    p->extra = extra;
    for (unsigned i = 0; i < PAGE_LOCKS; i++)
        pthread_mutex_init(&p->locks[i], NULL);
    for (uint32_t k = 0; k < HVI_PAR_MAX; k++)
        p->c[k].fd = -1;
    if ((r = hvi_memory_snapshot(vm, &p->regs, &p->n)) < 0)
        return r;
    if (!(p->rounds = calloc(p->n + 1, sizeof(*p->rounds))))
        return hvi_error(-ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n; i++)
        if (!(p->rounds[i] = calloc(p->regs[i]->len / HVI_PAGE + 1, 4)))
            return hvi_error(-ENOMEM, "out of memory");
    if (!(p->c[0].buf = malloc(RECORD_MAX)))
        return hvi_error(-ENOMEM, "out of memory");
    p->c[0].p = p;
    uint32_t taken = 0;
    hvi_par_accept_watch(in->main_fd);
    for (uint32_t i = 0; i < extra; i++) {
        int fd;
        struct hvi_tls *tls;
        uint32_t k;
        if ((r = hvi_par_accept(in->listen_fd, in->tls, in->session, 1, extra,
                                &taken, HVI_PAR_ACCEPT_MS, &fd, &tls, &k)) < 0)
            break;
        r = 0;
        struct rconn *c = &p->c[k];
        c->p = p;
        c->index = k;
        c->fd = fd;
        c->tls = tls;
        c->in.fd = tls ? -1 : fd;
        if (tls) {
            c->in.s = (hvc_stream)HVC_STREAM_INIT;
            c->in.s.read = tls_read;
            c->in.s.opaque = tls;
        }
        c->in.off = HVI_PAR_OFFSET(k);
        c->in.live = true;
        c->in.listen_fd = -1;
        if (in->crypt && (r = hvi_crypt_clone(in->crypt, &c->in.crypt)) < 0)
            return r;
        if (!(c->buf = malloc(RECORD_MAX)))
            return hvi_error(-ENOMEM, "out of memory");
        int e = pthread_create(&c->thread, NULL, conn_main, c);
        if (e)
            return hvi_error(-e, "cannot start a thread: %s", hvc_strerror(-e));
        c->started = true;
    }
    hvi_par_accept_watch(-1);
    return r;
}

int hvi_par_in_record(struct hvi_in *in, const struct hvi_sec *s)
{
    struct hvi_par_in *p = in->par;
    if (!p || p->ended)
        return hvi_fail(s, -EBADMSG, "a round-tagged record %s",
                        p ? "after PARALLEL_END" : "without PARALLEL");
    size_t len;
    int r = read_record(&p->c[0], in, s, &len);
    return r < 0 ? r : place(&p->c[0], s, len);
}

/* The connection that failed first (the others may have failed because
 * the source stopped them all), or NULL. */
static struct rconn *first_failed(struct hvi_par_in *p)
{
    struct rconn *f = NULL;
    for (uint32_t k = 1; k < HVI_PAR_MAX; k++)
        if (p->c[k].err && (!f || p->c[k].err_seq < f->err_seq))
            f = &p->c[k];
    return f;
}

static void join(struct hvi_par_in *p)
{
    for (uint32_t k = 1; k < HVI_PAR_MAX; k++)
        if (p->c[k].started) {
            pthread_join(p->c[k].thread, NULL);
            p->c[k].started = false;
        }
    p->joined = true;
}

int hvi_par_in_end(struct hvi_in *in, const struct hvi_sec *s)
{
    struct hvi_par_in *p = in->par;
    if (!p || p->ended)
        return hvi_fail(s, -EBADMSG, "%s", p ? "repeated" : "without PARALLEL");
    uint8_t *pl;
    size_t len;
    int r = hvi_read_payload(in, s, &pl, &len);
    if (r < 0)
        return r;
    uint32_t n = p->extra + 1;
    if (len != 8 + (size_t)n * HVI_CONN_TOTALS || hvi_get32(pl) != n) {
        free(pl);
        return hvi_fail(s, -EBADMSG,
                        "payload of %zu bytes; %u connections need %zu", len, n,
                        8 + (size_t)n * HVI_CONN_TOTALS);
    }
    uint32_t last = hvi_get32(pl + 4);
    /* Every connection's end before anything of the switchover. */
    join(p);
    struct rconn *f = first_failed(p);
    if (f)
        r = hvi_error(f->err, "memory connection %u: %s", f->index, f->why);
    for (uint32_t k = 0; r == 0 && k < n; k++) {
        struct rconn *c = &p->c[k];
        struct hvi_conn_totals t;
        hvi_totals_decode(pl + 8 + (size_t)k * HVI_CONN_TOTALS, &t);
        if (k && !c->ended)
            r = hvi_fail(s, -EBADMSG, "connection %u did not end", k);
        else if (!same(&t, &c->tot))
            r = totals_fail(s, k, &t, &c->tot);
        else if (c->tot.last_round > last)
            r = hvi_fail(s, -EBADMSG,
                         "connection %u carried round %u, after the last "
                         "round %u",
                         k, c->tot.last_round, last);
    }
    free(pl);
    p->ended = r == 0;
    return r;
}

int hvi_par_in_stop(struct hvi_in *in, int err)
{
    struct hvi_par_in *p = in->par;
    if (!p || p->joined)
        return err;
    atomic_store(&p->stopping, true);
    /* a thread's own error came first when it is already recorded */
    for (uint32_t k = 1; k < HVI_PAR_MAX; k++)
        if (p->c[k].fd >= 0 && !p->c[k].err)
            shutdown(p->c[k].fd, SHUT_RDWR);
    join(p);
    bool link = err == -ENODATA || err == -ECONNABORTED || err == -ECONNRESET ||
                err == -EPIPE;
    struct rconn *f = link ? first_failed(p) : NULL;
    if (f)
        return hvi_error(f->err, "memory connection %u: %s", f->index, f->why);
    return err;
}

void hvi_par_in_free(struct hvi_in *in)
{
    struct hvi_par_in *p = in->par;
    if (!p)
        return;
    hvi_par_in_stop(in, 0);
    for (uint32_t k = 0; k < HVI_PAR_MAX; k++) {
        struct rconn *c = &p->c[k];
        hvi_crypt_free(c->in.crypt);
        hvi_tls_free(c->tls);
        if (c->fd >= 0)
            close(c->fd);
        free(c->buf);
    }
    for (size_t i = 0; p->rounds && i < p->n; i++)
        free(p->rounds[i]);
    free(p->rounds);
    free(p->regs);
    for (unsigned i = 0; i < PAGE_LOCKS; i++)
        pthread_mutex_destroy(&p->locks[i]);
    free(p);
    in->par = NULL;
}
