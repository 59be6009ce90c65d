/* Restore entry points, and snapshot files: atomic replacement on save,
 * reading or copy-on-write mapping on restore. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, mkostemp */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int restore_options(const hv_restore_options *in, hv_restore_options *o)
{
    hv_restore_options d = HV_RESTORE_OPTIONS_INIT;
    *o = d;
    int r = 0;
    if (in && (r = hvi_copy_options(o, sizeof(*o), in, sizeof(*o),
                                    "hv_restore_options")) < 0)
        return r;
    if (o->flags & ~(HV_RESTORE_MMAP | HV_RESTORE_VERIFY_MEMORY))
        return hvi_error(-EINVAL, "hv_restore_options: unknown flags 0x%x",
                         o->flags);
    if (o->key && o->passphrase)
        return hvi_error(-EINVAL, "hv_restore_options: give a key or a "
                                  "passphrase, not both");
    return 0;
}

static int restore(hv_hypervisor *hv, struct hvm_in *in,
                   const hv_restore_options *opts, bool mapped, hv_vm **out)
{
    hv_restore_options o;
    int r = restore_options(opts, &o);
    if (r < 0)
        return r;
    in->progress = o.progress;
    in->opaque = o.opaque;
    in->verify_mapped = o.flags & HV_RESTORE_VERIFY_MEMORY;
    r = hvm_restore(hv, in, &o, mapped, out);
    hvm_crypt_free(in->crypt);
    in->crypt = NULL;
    return r;
}

int hv_vm_restore(hv_hypervisor *hv, const hv_stream *stream,
                  const hv_restore_options *opts, hv_vm **out)
{
    if (!hv || !stream || !out)
        return hvi_error(-EINVAL, "hv_vm_restore: NULL argument");
    struct hvm_in in = {.fd = -1};
    int r = hvi_copy_options(&in.s, sizeof(in.s), stream, sizeof(in.s),
                             "hv_stream");
    if (r < 0)
        return r;
    if (!in.s.read)
        return hvi_error(-EINVAL, "hv_vm_restore: the stream has no read "
                                  "callback");
    return restore(hv, &in, opts, false, out);
}

int hv_vm_restore_fd(hv_hypervisor *hv, int fd, const hv_restore_options *opts,
                     hv_vm **out)
{
    if (!hv || fd < 0 || !out)
        return hvi_error(-EINVAL, "hv_vm_restore_fd: %s",
                         fd < 0 ? "negative descriptor" : "NULL argument");
    struct hvm_in in = {.fd = fd};
    return restore(hv, &in, opts, false, out);
}

int hv_snapshot_restore(hv_hypervisor *hv, const char *path,
                        const hv_restore_options *opts, hv_vm **out)
{
    if (!hv || !path || !out)
        return hvi_error(-EINVAL, "hv_snapshot_restore: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hvi_error(-errno, "cannot open snapshot %s: %s", path,
                         hv_strerror(-errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hvi_error(-EINVAL, "snapshot %s is not a regular file", path);
    }
    struct hvm_in in = {.fd = fd, .total = (uint64_t)st.st_size};
    in.can_map = true;
    bool mapped = opts && opts->size >= offsetof(hv_restore_options, key) &&
                  (opts->flags & HV_RESTORE_MMAP);
    int r = restore(hv, &in, opts, mapped, out);
    /* Mappings keep the file; the descriptor is not needed any more. */
    close(fd);
    if (r < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hv_last_error());
        return hvi_error(r, "snapshot %s: %s", path, why);
    }
    return 0;
}

/* The directory of @p path, for the temporary file and the final fsync. */
static int dir_of(const char *path, char *dir, size_t cap)
{
    if (strlen(path) >= cap)
        return hvi_error(-ENAMETOOLONG, "snapshot path is too long: %s", path);
    char tmp[PATH_MAX];
    strcpy(tmp, path);
    snprintf(dir, cap, "%s", dirname(tmp));
    return 0;
}

int hv_snapshot_save(hv_vm *vm, const char *path, const hv_save_options *opts)
{
    if (!vm || !path || !path[0])
        return hvi_error(-EINVAL, "hv_snapshot_save: NULL %s",
                         vm ? "path" : "VM");
    hv_save_options o = HV_SAVE_OPTIONS_INIT;
    int r = 0;
    if (opts && (r = hvi_copy_options(&o, sizeof(o), opts, sizeof(o),
                                      "hv_save_options")) < 0)
        return r;
    o.flags |= HV_SAVE_ALIGN_PAGES;
    char dir[PATH_MAX], tmp[PATH_MAX + 32];
    if ((r = dir_of(path, dir, sizeof(dir))) < 0)
        return r;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp))
        return hvi_error(-ENAMETOOLONG, "snapshot path is too long: %s", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return hvi_error(-errno, "cannot create a temporary file for %s: %s",
                         path, hv_strerror(-errno));
    struct hvm_out out = {.fd = fd};
    r = hvm_save(vm, &out, &o);
    hvm_out_free(&out);
    if (r == 0 && fsync(fd) < 0)
        r = hvi_error(-errno, "fsync of %s: %s", tmp, hv_strerror(-errno));
    if (close(fd) < 0 && r == 0)
        r = hvi_error(-errno, "closing %s: %s", tmp, hv_strerror(-errno));
    if (r == 0 && rename(tmp, path) < 0)
        r = hvi_error(-errno, "renaming %s to %s: %s", tmp, path,
                      hv_strerror(-errno));
    if (r < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hv_last_error());
        unlink(tmp);
        return hvi_error(r,
                         "snapshot %s not written (an earlier one is "
                         "kept): %s",
                         path, why);
    }
    /* The rename is durable only once the directory is. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) < 0)
            r = hvi_error(-errno, "fsync of directory %s: %s", dir,
                          hv_strerror(-errno));
        close(dfd);
    }
    return r;
}
