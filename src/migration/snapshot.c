/* Restore entry points, and snapshot files: atomic replacement on save,
 * reading or copy-on-write mapping on restore. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, mkostemp */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int restore_options(const hvc_restore_options *in,
                           hvc_restore_options *o)
{
    hvc_restore_options d = HVC_RESTORE_OPTIONS_INIT;
    *o = d;
    int r = 0;
    if (in && (r = hvi_copy_options(o, sizeof(*o), in,
                                    offsetof(hvc_restore_options, tls),
                                    "hvc_restore_options")) < 0)
        return r;
    if (o->flags & ~(HVC_RESTORE_MMAP | HVC_RESTORE_VERIFY_MEMORY))
        return hvi_error(-EINVAL, "hvc_restore_options: unknown flags 0x%x",
                         o->flags);
    if (o->key && o->passphrase)
        return hvi_error(-EINVAL, "hvc_restore_options: give a key or a "
                                  "passphrase, not both");
    return 0;
}

static int restore(hvc_hypervisor *hv, struct hvi_in *in,
                   const hvc_restore_options *opts, bool mapped, hvc_vm **out)
{
    hvc_restore_options o;
    int r = restore_options(opts, &o);
    if (r < 0)
        return r;
    in->progress = o.progress;
    in->opaque = o.opaque;
    in->verify_mapped = o.flags & HVC_RESTORE_VERIFY_MEMORY;
    r = hvi_restore(hv, in, &o, mapped, out);
    if (!in->plan) {
        hvi_crypt_free(in->crypt);
        in->crypt = NULL;
    }
    return r;
}

int hvi_restore_in(hvc_hypervisor *hv, struct hvi_in *in,
                   const hvc_restore_options *opts, hvc_vm **out)
{
    return restore(hv, in, opts, false, out);
}

int hvc_vm_restore(hvc_hypervisor *hv, const hvc_stream *stream,
                   const hvc_restore_options *opts, hvc_vm **out)
{
    if (!hv || !stream || !out)
        return hvi_error(-EINVAL, "hvc_vm_restore: NULL argument");
    struct hvi_in in = {.fd = -1};
    int r = hvi_copy_options(&in.s, sizeof(in.s), stream, sizeof(in.s),
                             "hvc_stream");
    if (r < 0)
        return r;
    if (!in.s.read)
        return hvi_error(-EINVAL, "hvc_vm_restore: the stream has no read "
                                  "callback");
    return restore(hv, &in, opts, false, out);
}

int hvc_vm_restore_fd(hvc_hypervisor *hv, int fd,
                      const hvc_restore_options *opts, hvc_vm **out)
{
    if (!hv || fd < 0 || !out)
        return hvi_error(-EINVAL, "hvc_vm_restore_fd: %s",
                         fd < 0 ? "negative descriptor" : "NULL argument");
    struct hvi_in in = {.fd = fd};
    return restore(hv, &in, opts, false, out);
}

int hvc_snapshot_restore(hvc_hypervisor *hv, const char *path,
                         const hvc_restore_options *opts, hvc_vm **out)
{
    if (!hv || !path || !out)
        return hvi_error(-EINVAL, "hvc_snapshot_restore: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hvi_error(-errno, "cannot open snapshot %s: %s", HVI_QUOTE(path),
                         hvc_strerror(-errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hvi_error(-EINVAL, "snapshot %s is not a regular file",
                         HVI_QUOTE(path));
    }
    struct hvi_in in = {.fd = fd, .total = (uint64_t)st.st_size};
    in.can_map = true;
    bool mapped = opts && opts->size >= offsetof(hvc_restore_options, key) &&
                  (opts->flags & HVC_RESTORE_MMAP);
    int r = restore(hv, &in, opts, mapped, out);
    /* Mappings keep the file; the descriptor is not needed any more. */
    close(fd);
    if (r < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        return hvi_error(r, "snapshot %s: %s", HVI_QUOTE(path), why);
    }
    return 0;
}

/* The directory of @p path, for the temporary file and the final fsync. */
static int dir_of(const char *path, char *dir, size_t cap)
{
    if (strlen(path) >= cap)
        return hvi_error(-ENAMETOOLONG, "snapshot path is too long: %s",
                         HVI_QUOTE(path));
    char tmp[PATH_MAX];
    strcpy(tmp, path);
    snprintf(dir, cap, "%s", dirname(tmp));
    return 0;
}

/* Writes a snapshot file atomically: @p write_fn fills a temporary file
 * next to @p path, which is synced and renamed over it; on any failure the
 * temporary file goes and a file already at @p path is kept. */
static int commit_file(const char *path, int (*write_fn)(int fd, void *arg),
                       void *arg)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 32];
    int r;
    if ((r = dir_of(path, dir, sizeof(dir))) < 0)
        return r;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp))
        return hvi_error(-ENAMETOOLONG, "snapshot path is too long: %s",
                         HVI_QUOTE(path));
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return hvi_error(-errno, "cannot create a temporary file for %s: %s",
                         HVI_QUOTE(path), hvc_strerror(-errno));
    r = write_fn(fd, arg);
    if (r == 0 && fsync(fd) < 0)
        r = hvi_error(-errno, "fsync of %s: %s", HVI_QUOTE(tmp),
                      hvc_strerror(-errno));
    if (close(fd) < 0 && r == 0)
        r = hvi_error(-errno, "closing %s: %s", HVI_QUOTE(tmp),
                      hvc_strerror(-errno));
    if (r == 0 && rename(tmp, path) < 0)
        r = hvi_error(-errno, "renaming %s to %s: %s", HVI_QUOTE(tmp),
                      HVI_QUOTE(path), hvc_strerror(-errno));
    if (r < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        unlink(tmp);
        return hvi_error(r,
                         "snapshot %s not written (an earlier one is "
                         "kept): %s",
                         HVI_QUOTE(path), why);
    }
    /* The rename is durable only once the directory is. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) < 0)
            r = hvi_error(-errno, "fsync of directory %s: %s", HVI_QUOTE(dir),
                          hvc_strerror(-errno));
        close(dfd);
    }
    return r;
}

struct paused_save {
    hvc_vm *vm;
    const hvc_save_options *opts;
};

static int write_paused(int fd, void *arg)
{
    struct paused_save *p = arg;
    struct hvi_out out = {.fd = fd};
    int r = hvi_save(p->vm, &out, p->opts);
    hvi_out_free(&out);
    return r;
}

int hvc_snapshot_save(hvc_vm *vm, const char *path,
                      const hvc_save_options *opts)
{
    if (!vm || !path || !path[0])
        return hvi_error(-EINVAL, "hvc_snapshot_save: NULL %s",
                         vm ? "path" : "VM");
    hvc_save_options o = HVC_SAVE_OPTIONS_INIT;
    int r = 0;
    if (opts && (r = hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                                      "hvc_save_options")) < 0)
        return r;
    o.flags |= HVC_SAVE_ALIGN_PAGES;
    struct paused_save p = {vm, &o};
    return commit_file(path, write_paused, &p);
}

struct live_save {
    hvc_vm *vm;
    const hvc_migrate_options *opts;
    hvc_migrate_stats *stats;
};

static int write_live(int fd, void *arg)
{
    struct live_save *l = arg;
    return hvi_live_send(l->vm, fd, l->opts, l->stats, true);
}

int hvc_snapshot_save_live(hvc_vm *vm, const char *path,
                           const hvc_migrate_options *opts,
                           hvc_migrate_stats *stats)
{
    if (!vm || !path || !path[0])
        return hvi_error(-EINVAL, "hvc_snapshot_save_live: NULL %s",
                         vm ? "path" : "VM");
    struct live_save l = {vm, opts, stats};
    return commit_file(path, write_live, &l);
}
