/* Where a guest region's memory holds data, found without touching it: a
 * save that read every page to find the zero ones would allocate every
 * page of a memfd it read (shmem has no shared zero page), so a 2 GiB
 * guest that wrote 1 MiB would cost 2 GiB of RSS and seconds to save.
 *
 * A memfd answers with SEEK_DATA/SEEK_HOLE: a hole was never written.
 * Memory the caller mapped has no file we know of. For private anonymous
 * memory the page map (/proc/self/pagemap) tells which pages exist, in
 * RAM or in swap; a page that is neither was never written and reads as
 * zero. mincore() would be cheaper but calls a swapped-out page "not
 * resident", and skipping it would lose its data. Any other kind of
 * mapping (a file, shared memory) may hold data in pages this process
 * never mapped, so it is reported as data throughout. */
#define _GNU_SOURCE /* SEEK_DATA, SEEK_HOLE */
#include "os_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE HVC_PAGE_SIZE
/* Page-map entries read at a time (32 KiB: 16 MiB of guest memory). */
#define WINDOW 4096u
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)

enum walk_kind { WALK_FILE, WALK_PAGEMAP, WALK_ALL };

/* A run of the region's mappings, up to byte end of the region: private
 * anonymous (the page map decides) or not (all data). */
struct segment {
    uint64_t end;
    bool anon;
};

struct hvi_os_memory_walk {
    uint64_t va_page; /* first host virtual page of the region */
    uint64_t pages;
    int fd; /* WALK_FILE: the memfd; WALK_PAGEMAP: /proc/self/pagemap */
    enum walk_kind kind;
    uint64_t first, count; /* the window: region pages [first, +count) */
    struct segment *seg;
    size_t nseg, segcap, cur; /* cur: the segment of the last page asked */
    uint64_t entry[WINDOW];
};

/* Whether a /proc/self/maps mapping is private anonymous memory: no file,
 * private, and not one of the kernel's special mappings. */
static bool private_anonymous(const char *perms, uint64_t inode,
                              const char *path)
{
    if (perms[3] != 'p' || inode != 0)
        return false;
    return !path[0] || !strcmp(path, "[heap]") || !strcmp(path, "[stack]") ||
           !strncmp(path, "[anon:", 6);
}

static int add_segment(hvi_os_memory_walk *w, uint64_t end, bool anon)
{
    if (w->nseg && w->seg[w->nseg - 1].anon == anon) {
        w->seg[w->nseg - 1].end = end;
        return 0;
    }
    if (w->nseg == w->segcap) {
        size_t cap = w->segcap ? 2 * w->segcap : 16;
        struct segment *p = realloc(w->seg, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        w->seg = p;
        w->segcap = cap;
    }
    w->seg[w->nseg].end = end;
    w->seg[w->nseg].anon = anon;
    w->nseg++;
    return 0;
}

/* Splits the region into the mappings that cover it (a restore maps file
 * pieces over anonymous memory, for instance), in region pages. False
 * when the mappings cannot be read: then nothing is skipped. */
static bool read_mappings(hvi_os_memory_walk *w)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    uint64_t va = w->va_page * PAGE, end = va + w->pages * PAGE, at = va;
    bool bad = false;
    while (at < end && !bad && getline(&line, &cap, f) > 0) {
        uint64_t lo, hi, inode;
        char perms[5];
        int n = 0;
        if (sscanf(line,
                   "%" SCNx64 "-%" SCNx64 " %4s %*x %*x:%*x %" SCNu64 " %n",
                   &lo, &hi, perms, &inode, &n) < 4 ||
            n == 0 || hi <= at)
            continue;
        if (lo > at && add_segment(w, (lo < end ? lo : end) - va, false) < 0)
            bad = true; /* a hole in the mappings: leave it to the reader */
        char *path = line + n;
        path[strcspn(path, "\n")] = 0;
        at = hi < end ? hi : end;
        if (lo < end &&
            add_segment(w, at - va, private_anonymous(perms, inode, path)) < 0)
            bad = true;
    }
    if (!bad && at < end && add_segment(w, end - va, false) < 0)
        bad = true;
    free(line);
    fclose(f);
    return !bad;
}

int hvi_os_memory_walk_open(const void *hva, uint64_t len, int fd,
                            hvi_os_memory_walk **out)
{
    hvi_os_memory_walk *w = calloc(1, sizeof(*w));
    if (!w)
        return hvi_error(-ENOMEM, "out of memory walking guest memory");
    w->va_page = (uint64_t)(uintptr_t)hva / PAGE;
    w->pages = len / PAGE;
    w->fd = -1;
    w->kind = WALK_ALL;
    if (fd >= 0) {
        w->fd = fd;
        w->kind = WALK_FILE;
    } else if (read_mappings(w) && (w->fd = open("/proc/self/pagemap",
                                                 O_RDONLY | O_CLOEXEC)) >= 0) {
        w->kind = WALK_PAGEMAP;
    }
    *out = w;
    return 0;
}

void hvi_os_memory_walk_close(hvi_os_memory_walk *w)
{
    if (!w)
        return;
    if (w->kind == WALK_PAGEMAP)
        close(w->fd);
    free(w->seg);
    free(w);
}

/* The extent of a memory file: holes were never written. This moves the
 * file's offset, which nobody uses: guest memory files are only mapped. */
static void file_next(hvi_os_memory_walk *w, uint64_t pg, uint64_t *start,
                      uint64_t *end)
{
    off_t d = lseek(w->fd, (off_t)(pg * PAGE), SEEK_DATA);
    if (d < 0) {
        /* ENXIO: no data past pg. Anything else (a file system without
         * SEEK_DATA): the rest is data. */
        *start = errno == ENXIO ? w->pages : pg;
        *end = w->pages;
        return;
    }
    uint64_t s = (uint64_t)d / PAGE;
    off_t h = lseek(w->fd, d, SEEK_HOLE);
    uint64_t e = h < 0 ? w->pages : ((uint64_t)h + PAGE - 1) / PAGE;
    *start = s < w->pages ? s : w->pages;
    *end = e < w->pages ? e : w->pages;
}

/* The page-map entry of region page pg, through the window; false when it
 * cannot be read (then the walk gives up on telling). */
static bool entry(hvi_os_memory_walk *w, uint64_t pg, uint64_t *e)
{
    if (pg < w->first || pg >= w->first + w->count) {
        uint64_t n = w->pages - pg < WINDOW ? w->pages - pg : WINDOW;
        ssize_t got = pread(w->fd, w->entry, n * sizeof(uint64_t),
                            (off_t)((w->va_page + pg) * sizeof(uint64_t)));
        if (got < (ssize_t)sizeof(uint64_t))
            return false;
        w->first = pg;
        w->count = (uint64_t)got / sizeof(uint64_t);
    }
    *e = w->entry[pg - w->first];
    return true;
}

/* Whether region page pg may hold data: it exists (in RAM or swap), or it
 * is not private anonymous memory. Pages are asked in ascending order
 * within a call, so the segment cursor only moves forward, except when a
 * new call starts lower. */
static bool may_hold_data(hvi_os_memory_walk *w, uint64_t pg, uint64_t e)
{
    if (w->cur >= w->nseg || (w->cur && w->seg[w->cur - 1].end > pg * PAGE))
        w->cur = 0;
    while (w->cur < w->nseg && w->seg[w->cur].end <= pg * PAGE)
        w->cur++;
    if (w->cur == w->nseg || !w->seg[w->cur].anon)
        return true;
    return e & (PM_PRESENT | PM_SWAPPED);
}

static void pagemap_next(hvi_os_memory_walk *w, uint64_t pg, uint64_t *start,
                         uint64_t *end)
{
    uint64_t e;
    uint64_t s = pg;
    while (s < w->pages) {
        if (!entry(w, s, &e)) {
            w->kind = WALK_ALL;
            *start = pg;
            *end = w->pages;
            return;
        }
        if (may_hold_data(w, s, e))
            break;
        s++;
    }
    uint64_t x = s;
    while (x < w->pages) {
        if (!entry(w, x, &e)) {
            w->kind = WALK_ALL;
            x = w->pages;
            break;
        }
        if (!may_hold_data(w, x, e))
            break;
        x++;
    }
    *start = s;
    *end = x;
}

int hvi_os_guest_memory_next_data(hvi_os_memory_walk *w, uint64_t off,
                                  uint64_t *start, uint64_t *end)
{
    uint64_t pg = off / PAGE, s = w->pages, e = w->pages;
    if (pg < w->pages) {
        switch (w->kind) {
        case WALK_FILE: file_next(w, pg, &s, &e); break;
        case WALK_PAGEMAP: pagemap_next(w, pg, &s, &e); break;
        case WALK_ALL: s = pg; break;
        }
    }
    if (s >= e)
        s = e = w->pages;
    *start = s * PAGE;
    *end = e * PAGE;
    return 0;
}

int hvi_os_memory_discard(void *hva, uint64_t off, uint64_t len, int fd)
{
    int r = fd >= 0 ? fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                (off_t)off, (off_t)len)
                    : madvise((uint8_t *)hva + off, len, MADV_DONTNEED);
    if (r < 0)
        return hvi_error(-errno,
                         "giving back 0x%" PRIx64 " bytes of guest "
                         "memory: %s",
                         len, hvc_strerror(-errno));
    return 0;
}
