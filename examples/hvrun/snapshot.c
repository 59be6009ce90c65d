/* hvrun's snapshots: --snapshot saves the paused VM to a file atomically,
 * with hvrun's configuration (config.c) as the stream's user data;
 * --restore brings one back and re-attaches the devices that configuration
 * names; --key-file and --passphrase-file encrypt both ways. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PASSPHRASE 1024
#define MIB (1ull << 20)

/* The file name in a progress line: short, so that it fits a line. */
static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hvrun: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(HVRUN_EXIT_USAGE);
}

/* Up to @cap bytes of a file (a pipe too, as from <(...)); the count. */
static size_t read_secret(const char *flag, const char *path, void *buf,
                          size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        usage_error("%s: cannot read '%s': %s", flag, hvrun_esc(path),
                    strerror(errno));
    size_t n = 0;
    while (n < cap) {
        ssize_t k = read(fd, (char *)buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            usage_error("%s: cannot read '%s': %s", flag, hvrun_esc(path),
                        strerror(errno));
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    return n;
}

static void read_key(struct options *o)
{
    uint8_t buf[HVC_STREAM_KEY_SIZE + 1];
    size_t n = read_secret("--key-file", o->key_file, buf, sizeof(buf));
    struct stat st;
    if (n != HVC_STREAM_KEY_SIZE) {
        if (stat(o->key_file, &st) == 0 && S_ISREG(st.st_mode))
            usage_error("--key-file '%s' holds %lld bytes; a key is exactly "
                        "%d raw bytes",
                        hvrun_esc(o->key_file), (long long)st.st_size,
                        HVC_STREAM_KEY_SIZE);
        usage_error("--key-file '%s' holds %s%zu bytes; a key is exactly "
                    "%d raw bytes",
                    hvrun_esc(o->key_file),
                    n > HVC_STREAM_KEY_SIZE ? "more than " : "",
                    n > HVC_STREAM_KEY_SIZE ? (size_t)HVC_STREAM_KEY_SIZE : n,
                    HVC_STREAM_KEY_SIZE);
    }
    memcpy(o->key, buf, sizeof(o->key));
    o->have_key = true;
}

/* The first line, without its line end: 1..MAX_PASSPHRASE bytes. */
static void read_passphrase(struct options *o)
{
    static char buf[MAX_PASSPHRASE + 3];
    size_t n = read_secret("--passphrase-file", o->passphrase_file, buf,
                           sizeof(buf) - 1);
    buf[n] = 0;
    char *nl = memchr(buf, '\n', n);
    size_t len = nl ? (size_t)(nl - buf) : n;
    if (len && buf[len - 1] == '\r')
        len--;
    if (memchr(buf, 0, len))
        usage_error("--passphrase-file '%s': the passphrase holds a NUL byte",
                    hvrun_esc(o->passphrase_file));
    if (len == 0 || len > MAX_PASSPHRASE)
        usage_error("--passphrase-file '%s': the first line must hold 1 to "
                    "%d bytes",
                    hvrun_esc(o->passphrase_file), MAX_PASSPHRASE);
    buf[len] = 0;
    o->passphrase = buf;
}

/* hvc_snapshot_save() writes a temporary file next to FILE: say so now,
 * not after the guest ran for an hour. */
static void check_snapshot_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        usage_error("--snapshot '%s' is a directory", hvrun_esc(path));
    char *copy = strdup(path);
    if (!copy)
        usage_error("out of memory");
    const char *dir = dirname(copy);
    if (access(dir, W_OK | X_OK) < 0)
        usage_error("--snapshot '%s': cannot write in '%s': %s",
                    hvrun_esc(path), hvrun_esc(dir), strerror(errno));
    free(copy);
}

void hvrun_snapshot_prepare(struct options *o)
{
    if (o->key_file)
        read_key(o);
    if (o->passphrase_file)
        read_passphrase(o);
    if (o->snapshot)
        check_snapshot_path(o->snapshot);
}

/* --snapshot --live: the library's pre-copy into the file. Without
 * --keep-running the VM stays paused after it, so that the console ends
 * where the snapshot does. */
static int live_snapshot(struct machine *m, uint8_t *user, size_t length)
{
    const struct options *o = m->opt;
    hvc_migrate_options mo = HVC_MIGRATE_OPTIONS_INIT;
    mo.flags = o->keep_running ? 0 : HVC_MIGRATE_LEAVE_PAUSED;
    mo.key = o->have_key ? o->key : NULL;
    mo.passphrase = o->passphrase;
    mo.user_data = user;
    mo.user_data_length = length;
    mo.max_downtime_ms = o->max_downtime_ms;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    int r = hvc_snapshot_save_live(m->vm, o->snapshot, &mo, &st);
    free(user);
    if (r < 0) {
        if (!(r == -ECANCELED && hvrun_interrupted()))
            fprintf(stderr, "hvrun: snapshot '%s': %s\n",
                    hvrun_esc(o->snapshot), hvrun_esc(hvc_last_error()));
        return r;
    }
    if (!isatty(STDERR_FILENO)) /* as a paused snapshot: quiet */
        return 0;
    fprintf(stderr,
            "hvrun: live snapshot '%s': paused %.3f ms, total %llu ms, %u "
            "rounds, %llu bytes\n",
            hvrun_esc(o->snapshot), (double)st.downtime_us / 1000.0,
            (unsigned long long)st.total_ms, st.rounds,
            (unsigned long long)(st.bytes_initial + st.bytes_precopy +
                                 st.bytes_final));
    return 0;
}

int hvrun_snapshot(struct machine *m)
{
    const struct options *o = m->opt;
    uint8_t *user;
    size_t length;
    if (hvrun_config_encode(o, &user, &length) < 0) {
        fprintf(stderr,
                "hvrun: snapshot '%s': cannot record hvrun's configuration "
                "(a path is too long, or out of memory)\n",
                hvrun_esc(o->snapshot));
        return -ENOMEM;
    }
    if (o->snapshot_live)
        return live_snapshot(m, user, length);
    int r = hvc_vm_pause(m->vm);
    if (r < 0) {
        fprintf(stderr, "hvrun: pausing the VM for a snapshot: %s\n",
                hvrun_esc(hvc_last_error()));
        free(user);
        return r;
    }
    char what[300];
    snprintf(what, sizeof(what), "saving '%s'",
             hvrun_esc(base_of(o->snapshot)));
    struct hvrun_progress progress;
    hvrun_progress_begin(&progress, what);
    hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
    so.key = o->have_key ? o->key : NULL;
    so.passphrase = o->passphrase;
    so.user_data = user;
    so.user_data_length = length;
    so.progress = hvrun_progress;
    so.opaque = &progress;
    r = hvc_snapshot_save(m->vm, o->snapshot, &so);
    hvrun_progress_end(&progress, r == 0, 0);
    if (r < 0 && !(r == -ECANCELED && hvrun_interrupted()))
        fprintf(stderr, "hvrun: snapshot '%s': %s\n", hvrun_esc(o->snapshot),
                hvrun_esc(hvc_last_error()));
    free(user);
    return r;
}

/* What the restore's callbacks share (opaque of both): the progress state
 * first, so that hvrun_progress() can take the same pointer. */
struct restoring {
    struct hvrun_progress progress;
    const struct options *cmdline;
    bool setup_failed;
    char why[512];
};

/* The configuration of the restored VM; it lives as long as hvrun. */
static struct options restored;

/* The bytes of guest RAM: the regions the library restored. */
static uint64_t guest_ram(hvc_vm *vm)
{
    size_t n = 0;
    if (hvc_vm_list_memory(vm, NULL, 0, &n) < 0 || n == 0)
        return 0;
    hvc_memory_region **regs = calloc(n, sizeof(*regs));
    uint64_t total = 0;
    if (regs && hvc_vm_list_memory(vm, regs, n, &n) == 0)
        for (size_t i = 0; i < n; i++)
            total += hvc_memory_region_length(regs[i]);
    free(regs);
    return total;
}

/* The VM's RAM is what its regions hold, whatever hvrun's configuration
 * in the USER section says (a file anyone could have written): --mem is
 * checked against the regions, and the merged configuration (which a
 * later --snapshot records) takes their size. */
static int check_ram(struct restoring *st, hvc_vm *vm)
{
    uint64_t ram = guest_ram(vm);
    const struct options *o = st->cmdline;
    if (o->mem_given && o->mem_mib * MIB != ram) {
        if (ram % MIB)
            snprintf(st->why, sizeof(st->why),
                     "--mem %llu conflicts with the snapshot's %llu bytes "
                     "of RAM",
                     (unsigned long long)o->mem_mib, (unsigned long long)ram);
        else
            snprintf(st->why, sizeof(st->why),
                     "--mem %llu conflicts with the snapshot's %llu MiB",
                     (unsigned long long)o->mem_mib,
                     (unsigned long long)(ram / MIB));
        return -1;
    }
    restored.mem_mib = (ram + MIB - 1) / MIB;
    return 0;
}

static int setup(void *opaque, hvc_vm *vm, const void *user, size_t length)
{
    struct restoring *st = opaque;
    if (hvrun_config_decode(user, length, &restored, st->why, sizeof(st->why)) <
            0 ||
        check_ram(st, vm) < 0 ||
        hvrun_config_merge(&restored, st->cmdline, st->why, sizeof(st->why)) <
            0) {
        st->setup_failed = true;
        return -EINVAL;
    }
    hvrun_add_devices(vm, &restored, true);
    return 0;
}

/* A snapshot that cannot be restored is a usage error; a failing host
 * (memory, the backend) is internal. The library reports what the stream
 * asks of this host and cannot get (more RAM than it has, address bits,
 * CPU features) as -ENOTSUP, and values out of range in the TSC and
 * device records as -ERANGE or -EOVERFLOW, more regions than the backend
 * has memory slots as -ENOSPC (a restore writes no file, so that is not a
 * full disk); -ENOMEM is a shortage of the moment, hence internal. */
static int status_of(int r)
{
    if (r == -ECANCELED && hvrun_interrupted())
        return HVRUN_EXIT_INTERRUPTED;
    switch (r) {
    case -EBADMSG:
    case -ERANGE:
    case -EOVERFLOW:
    case -E2BIG:
    case -ENOSPC:
    case -EPROTO:
    case -EKEYREJECTED:
    case -ENODATA:
    case -ETIMEDOUT: /* the source stalled: as if it went away */
    case -ENOENT:
    case -ENOTSUP:
    case -EACCES:
    case -EPERM:
    case -EISDIR:
    case -ENOTDIR:
    case -ENAMETOOLONG:
    case -ELOOP:
    case -EINVAL: return HVRUN_EXIT_USAGE;
    default: return HVRUN_EXIT_INTERNAL;
    }
}

void hvrun_restore(struct machine *m, struct options *o)
{
    struct restoring st = {.cmdline = o};
    const char *flag = o->incoming ? "--incoming" : "--restore";
    char what[300];
    snprintf(what, sizeof(what), "%s '%s'",
             o->incoming ? "receiving on" : "restoring",
             hvrun_esc(base_of(o->restore)));
    hvrun_progress_begin(&st.progress, what);
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.flags = o->restore_mmap ? HVC_RESTORE_MMAP : 0;
    ro.key = o->have_key ? o->key : NULL;
    ro.passphrase = o->passphrase;
    ro.setup = setup;
    ro.progress = hvrun_progress;
    ro.opaque = &st;
    ro.timeout_ms = o->mig.incoming_timeout_ms; /* 0: the library's */
    hvc_vm *vm = NULL;
    int r = o->incoming ? hvrun_receive(m->hv, o, &ro, &vm)
                        : hvc_snapshot_restore(m->hv, o->restore, &ro, &vm);
    /* A restore that succeeded read the whole file (the library reports
     * progress only every 4 MiB). */
    struct stat fst;
    bool sized = r == 0 && !o->incoming && stat(o->restore, &fst) == 0 &&
                 fst.st_size > 0;
    hvrun_progress_end(&st.progress, r == 0, sized ? (uint64_t)fst.st_size : 0);
    if (r < 0) {
        if (r == -ECANCELED && hvrun_interrupted())
            exit(HVRUN_EXIT_INTERRUPTED);
        if (st.setup_failed) /* hvrun's own check */
            fprintf(stderr, "hvrun: %s '%s': %s\n", flag, hvrun_esc(o->restore),
                    hvrun_esc(st.why));
        else /* the library's message names the file */
            fprintf(stderr, "hvrun: %s: %s\n", flag,
                    hvrun_esc(hvc_last_error()));
        exit(st.setup_failed ? HVRUN_EXIT_USAGE : status_of(r));
    }
    uint32_t n = hvc_vm_vcpu_count(vm);
    if (n != restored.cpus) {
        fprintf(stderr,
                "hvrun: %s '%s': the VM has %u vCPUs; its hvrun "
                "configuration says %u\n",
                flag, hvrun_esc(o->restore), n, restored.cpus);
        exit(HVRUN_EXIT_USAGE);
    }
    m->vcpus = calloc(n, sizeof(*m->vcpus));
    if (!m->vcpus) {
        fprintf(stderr, "hvrun: out of memory\n");
        exit(HVRUN_EXIT_INTERNAL);
    }
    for (uint32_t i = 0; i < n; i++)
        if (hvc_vm_get_vcpu(vm, i, &m->vcpus[i]) < 0) {
            fprintf(stderr, "hvrun: %s '%s': %s\n", flag, hvrun_esc(o->restore),
                    hvrun_esc(hvc_last_error()));
            exit(HVRUN_EXIT_USAGE);
        }
    m->vm = vm;
    m->nr_vcpus = n;
    hvrun_nets_attach_later();
    /* The merged configuration is the stored one: keep this run's
     * host-side migration settings. */
    const char *incoming = o->incoming, *migrate_to = o->migrate_to;
    bool timed = o->migrate_timed;
    uint64_t after = o->migrate_after_ms;
    uint32_t downtime = o->max_downtime_ms;
    struct migrate_opts mig = o->mig;
    struct handover_opts handover = o->handover;
    *o = restored;
    o->mig = mig;
    o->handover = handover;
    o->incoming = incoming;
    o->migrate_to = migrate_to;
    o->migrate_timed = timed;
    o->migrate_after_ms = after;
    o->max_downtime_ms = downtime;
}
