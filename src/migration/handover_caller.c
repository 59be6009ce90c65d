/* A caller-supplied region in a hand-over: it can be passed when the
 * caller mapped a file shared (a memfd, a tmpfs or disk file), since the
 * new process can then map the same file. /proc/self/maps says which file
 * and where in it; /proc/self/map_files opens it (Linux 4.3 and later; it
 * needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE). A private mapping (of
 * anonymous memory or of a file, whose written pages are this process's
 * copies) cannot be passed: the message says which it is. */
#define _GNU_SOURCE
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct vma {
    uint64_t start, end, offset, inode;
    unsigned dev_major, dev_minor;
    char perms[5];
    char path[64];
};

static bool parse(const char *line, struct vma *v)
{
    int n = 0;
    v->path[0] = 0;
    if (sscanf(line,
               "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n",
               &v->start, &v->end, v->perms, &v->offset, &v->dev_major,
               &v->dev_minor, &v->inode, &n) < 7)
        return false;
    snprintf(v->path, sizeof(v->path), "%s", line + n);
    v->path[strcspn(v->path, "\n")] = 0;
    return true;
}

int hvi_ho_caller_file(const hvc_memory_region *g, int *fd, uint64_t *offset)
{
    uint64_t lo = (uintptr_t)g->hva, hi = lo + g->len;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return hvi_error(-errno, "hand-over: reading /proc/self/maps: %s",
                         hvc_strerror(-errno));
    char line[512];
    struct vma first = {0}, v;
    uint64_t at = lo; /* covered up to here, by one file, contiguously */
    const char *why = NULL;
    while (at < hi && fgets(line, sizeof(line), f)) {
        if (!parse(line, &v) || v.end <= at)
            continue;
        if (v.start > at) {
            why = "not mapped whole";
            break;
        }
        if (v.perms[3] != 's') {
            why = v.inode ? "a private mapping of a file (its written pages "
                            "are copies of this process's own)"
                          : "private anonymous memory";
            break;
        }
        if (!v.inode) {
            why = "a shared mapping without a file";
            break;
        }
        if (at == lo) {
            first = v;
        } else if (v.inode != first.inode || v.dev_major != first.dev_major ||
                   v.dev_minor != first.dev_minor ||
                   v.offset - first.offset != v.start - first.start) {
            why = "several files, or one file not in order";
            break;
        }
        at = v.end;
    }
    fclose(f);
    if (!why && at < hi)
        why = "not mapped whole";
    if (why)
        return hvi_error(-ENOTSUP,
                         "hand-over: memory region 0x%" PRIx64 "+0x%" PRIx64
                         ": the caller's mapping at %p is %s; only memory "
                         "that is a file mapped shared (a memfd, like the "
                         "library's own regions) can be handed over without "
                         "copying",
                         g->gpa, g->len, (void *)g->hva, why);
    char path[96];
    snprintf(path, sizeof(path), "/proc/self/map_files/%" PRIx64 "-%" PRIx64,
             first.start, first.end);
    int d = open(path, O_RDWR | O_CLOEXEC), e = errno;
    if (d < 0)
        return hvi_error(-e,
                         "hand-over: memory region 0x%" PRIx64 "+0x%" PRIx64
                         ": opening the file the caller mapped (%s) through "
                         "%s: %s (this needs CAP_SYS_ADMIN or "
                         "CAP_CHECKPOINT_RESTORE)",
                         g->gpa, g->len, HVI_QUOTE(first.path), path,
                         hvc_strerror(-e));
    *fd = d;
    *offset = first.offset + (lo - first.start);
    return 0;
}
