/* Guest memory into MEMORY runs. Memory that was never written is found
 * without touching it (hvi_memory_next_data: holes of the memfd, absent
 * pages of anonymous memory) and written as zero runs unread: reading it
 * would allocate it. What may hold data is planned into runs by a cheap
 * scan (a non-zero page is told by its first non-zero cache line, so it
 * is seldom read whole before it is sent), and the runs' CRC32C, the one
 * costly pass over the pages, is computed on a second thread while this
 * one writes the runs before it: the CRC then costs no time when the
 * writes are the bottleneck, which they are on every file system. */
#include "stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Within a region, a raw run stops at a zero page; in a page-aligned
 * stream (a snapshot file), zero gaps shorter than this are written raw,
 * since a padding section and another mapping would cost more. */
#define ALIGNED_GAP_PAGES 16u
/* Runs planned (and checksummed ahead) at a time. */
#define BATCH 4096u

struct run {
    uint64_t gpa, pages;
    const uint8_t *data; /* NULL: zero pages */
    uint32_t crc;
};

struct batch {
    struct run v[BATCH];
    size_t n;
    /* The checksum thread's progress, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t done;
    bool stop;
};

/* Plans runs of @p reg from page *pg until page @p pages (the end of what
 * may hold data) or until the batch is full. */
static void plan(const struct hvi_out *o, const hvc_memory_region *reg,
                 uint64_t *pg_io, uint64_t pages, struct batch *b)
{
    const uint64_t max_run = o->crypt ? HVI_SEALED_RUN_PAGES : HVI_RUN_PAGES;
    uint64_t pg = *pg_io;
    while (pg < pages && b->n < BATCH) {
        const uint8_t *base = reg->hva + pg * HVI_PAGE;
        struct run *r = &b->v[b->n++];
        r->gpa = reg->gpa + pg * HVI_PAGE;
        r->crc = 0;
        uint64_t n = 1;
        if (hvi_page_zero(base)) {
            while (pg + n < pages && n < HVI_MAX_RUN_PAGES &&
                   hvi_page_zero(base + n * HVI_PAGE))
                n++;
            r->data = NULL;
            r->pages = n;
            pg += n;
            continue;
        }
        /* A raw run; in an aligned stream it swallows short zero gaps. */
        uint64_t end = 1; /* pages up to the last non-zero one */
        while (pg + n < pages && n < max_run) {
            if (!hvi_page_zero(base + n * HVI_PAGE)) {
                end = ++n;
                continue;
            }
            if (!o->align)
                break;
            uint64_t gap = 1;
            while (gap < ALIGNED_GAP_PAGES && pg + n + gap < pages &&
                   n + gap < max_run &&
                   hvi_page_zero(base + (n + gap) * HVI_PAGE))
                gap++;
            if (gap >= ALIGNED_GAP_PAGES || pg + n + gap >= pages ||
                n + gap >= max_run)
                break;
            n += gap;
        }
        r->data = base;
        r->pages = end;
        pg += end;
    }
    *pg_io = pg;
}

static void *checksum(void *arg)
{
    struct batch *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        struct run *r = &b->v[i];
        uint32_t crc =
            r->data ? hvi_crc32c(0, r->data, r->pages * HVI_PAGE) : 0;
        pthread_mutex_lock(&b->lock);
        r->crc = crc;
        b->done = i + 1;
        bool stop = b->stop;
        pthread_cond_signal(&b->cond);
        pthread_mutex_unlock(&b->lock);
        if (stop)
            break;
    }
    return NULL;
}

static int write_batch(struct hvi_out *o, struct batch *b)
{
    pthread_t t;
    b->done = 0;
    b->stop = false;
    bool threaded = pthread_create(&t, NULL, checksum, b) == 0;
    if (!threaded)
        checksum(b); /* no thread: the same work, in line */
    int r = 0;
    for (size_t i = 0; i < b->n && r == 0; i++) {
        pthread_mutex_lock(&b->lock);
        while (b->done <= i)
            pthread_cond_wait(&b->cond, &b->lock);
        uint32_t crc = b->v[i].crc;
        pthread_mutex_unlock(&b->lock);
        r = hvi_put_memory(o, b->v[i].gpa, b->v[i].pages, b->v[i].data, crc);
    }
    if (threaded) {
        pthread_mutex_lock(&b->lock);
        b->stop = true;
        pthread_mutex_unlock(&b->lock);
        pthread_join(t, NULL);
    }
    return r;
}

/* One region: zero runs for what was never written, planned runs for the
 * rest, a batch at a time. */
static int save_region(struct hvi_out *o, const hvc_memory_region *reg,
                       struct batch *b)
{
    struct hvi_os_memory_walk *w;
    int r = hvi_memory_walk_open(reg, &w);
    if (r < 0)
        return r;
    const uint64_t pages = reg->len / HVI_PAGE;
    uint64_t pg = 0, data_end = 0; /* [pg, data_end) may hold data */
    while (r == 0 && pg < pages) {
        b->n = 0;
        while (r == 0 && pg < pages && b->n < BATCH) {
            if (pg < data_end) {
                plan(o, reg, &pg, data_end, b);
                continue;
            }
            uint64_t start, end;
            if ((r = hvi_memory_next_data(w, pg * HVI_PAGE, &start, &end)) < 0)
                break;
            start /= HVI_PAGE;
            if (start > pg) { /* never written: a zero run, unread */
                uint64_t n = start - pg;
                struct run *z = &b->v[b->n++];
                z->gpa = reg->gpa + pg * HVI_PAGE;
                z->pages = n < HVI_MAX_RUN_PAGES ? n : HVI_MAX_RUN_PAGES;
                z->data = NULL;
                z->crc = 0;
                pg += z->pages;
                continue;
            }
            data_end = end / HVI_PAGE;
        }
        if (r == 0)
            r = write_batch(o, b);
    }
    hvi_memory_walk_close(w);
    return r;
}

int hvi_save_memory(struct hvi_out *o, hvc_vm *vm)
{
    hvc_memory_region **regs;
    size_t n;
    int r = hvi_memory_snapshot(vm, &regs, &n);
    if (r < 0)
        return r;
    struct batch *b = calloc(1, sizeof(*b));
    if (!b) {
        free(regs);
        return hvi_error(-ENOMEM, "out of memory saving guest memory");
    }
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = save_region(o, regs[i], b);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
    free(regs);
    return r;
}
