/* hvrun: boot a kernel with libhvcore. Shared between the option parser
 * (options.c), the VM runner (hvrun.c), snapshots (snapshot.c, config.c,
 * progress.c), the virtio devices (virtio.c), --list-host (host.c) and
 * --audit-sharing (audit.c). */
#ifndef HVRUN_H
#define HVRUN_H

#include <hvcore.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses other than the guest's own debug-exit value. A snapshot
 * that cannot be restored (missing, damaged, truncated, wrong key, another
 * host's) is a usage error; a snapshot that cannot be saved is internal. */
#define HVRUN_EXIT_USAGE 2
#define HVRUN_EXIT_TRIPLE_FAULT 124
#define HVRUN_EXIT_INTERNAL 125
#define HVRUN_EXIT_INTERRUPTED 130

enum serial_mode { SERIAL_STDIO, SERIAL_FILE, SERIAL_NONE };

#define HVRUN_MAX_DISKS 8
#define HVRUN_MAX_NETS 4

/* --net tap=NAME[,mac=MAC][,queues=N][,dma=GPA+LEN] (net.c). */
struct net_opt {
    const char *tap;
    uint8_t mac[6]; /* all zero: the library picks one */
    uint32_t queues;
    /* as for --disk: not guest-visible, not in the snapshot's config */
    uint64_t dma_gpa, dma_len;
};

/* Host-side migration settings (migrate.c), kept across --incoming. */
struct migrate_opts {
    const char *tls_cert, *tls_key, *tls_ca; /* --tls-*: PEM files */
    uint32_t bandwidth_mib;                  /* --bandwidth-mib; 0: none */
    bool auto_converge;                      /* --auto-converge */
    const char *stats_path;                  /* --migration-stats FILE */
    bool postcopy;                           /* --postcopy */
    uint32_t postcopy_after_rounds;          /* --postcopy-after-rounds N */
};

struct options {
    const char *kernel;
    const char *initrd;
    const char *cmdline;
    uint64_t mem_mib;
    uint32_t cpus;
    enum serial_mode serial;
    const char *serial_path;
    bool raw;
    uint64_t raw_address;
    uint32_t raw_mode;
    int32_t numa_node; /* -1: no placement */
    bool list_host;
    bool json;
    const char *disks[HVRUN_MAX_DISKS];
    bool disk_readonly[HVRUN_MAX_DISKS];
    /* ,dma=GPA+LEN: the guest memory the disk may reach (length 0: all
     * RAM, the default). Not guest-visible, so not in the snapshot's
     * config: the device's state record carries it. */
    uint64_t disk_dma_gpa[HVRUN_MAX_DISKS];
    uint64_t disk_dma_len[HVRUN_MAX_DISKS];
    uint32_t nr_disks;
    struct net_opt nets[HVRUN_MAX_NETS];
    uint32_t nr_nets;
    bool rng;
    bool virtio_console;
    bool virtio_cmdline; /* announce virtio on the command line, not ACPI */
    /* Given on the command line (not defaults): a restore checks them
     * against the snapshot. */
    bool mem_given, cpus_given, serial_given;
    /* Snapshots (snapshot.c). */
    const char *snapshot;       /* --snapshot FILE */
    bool snapshot_timed;        /* --snapshot-after-ms given */
    bool snapshot_live;         /* --live: pre-copy into the file */
    uint64_t snapshot_after_ms; /* after the vCPUs start */
    bool keep_running;          /* resume after a snapshot, do not exit */
    bool audit_sharing;         /* --audit-sharing: report at exit, SIGUSR1 */
    const char *restore;        /* --restore FILE */
    bool restore_mmap;          /* --restore-mode mmap */
    const char *key_file;
    const char *passphrase_file;
    bool have_key; /* key[] holds --key-file's bytes */
    uint8_t key[HVC_STREAM_KEY_SIZE];
    char *passphrase; /* the first line of --passphrase-file */
    /* Live migration (migrate.c). --incoming also sets restore to its
     * path, so that the option checks and the merge are those of a
     * restore. */
    const char *incoming;   /* --incoming unix:PATH or tcp:HOST:PORT */
    const char *migrate_to; /* --migrate-to unix:PATH or tcp:HOST:PORT */
    bool migrate_timed;
    uint64_t migrate_after_ms;
    uint32_t max_downtime_ms; /* 0: the library's default */
    struct migrate_opts mig;
    /* Hand-over (handover.c); kept across a restore like the migration
     * settings. */
    struct handover_opts {
        const char *to;           /* --handover-to unix:PATH: the PATH */
        bool timed;               /* --handover-after-ms given */
        uint64_t after_ms;        /* after the vCPUs start */
        const char *upgrade_exec; /* --upgrade-exec BINARY */
        int incoming_fd;          /* --incoming fd:N: N; else -1 */
    } handover;
    /* core17: --accel NAME, the backend to open; NULL: the first compiled
     * in that opens. Not guest-visible: a snapshot taken under one restores
     * under another. */
    const char *accel;
};

/* The running machine, shared by the runner and the snapshot code. */
struct machine {
    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_vcpu **vcpus;
    uint32_t nr_vcpus;
    hvc_boot_info boot;
    const struct options *opt; /* what the VM is, as a snapshot records */
    atomic_int stopping;
    atomic_int status; /* exit status, first writer wins */
};

/* Parses argv; on a usage error prints one line and exits 2; --help and
 * --version print and exit 0. */
void hvrun_parse(int argc, char **argv, struct options *o);
/* net.c: one --net value into o->nets (a usage error exits 2), and the
 * devices: each in the next virtio slot, described in acpi[]; a tap that
 * is missing, busy or not permitted exits 2 with one line. */
void hvrun_parse_net(struct options *o, char *arg);
size_t hvrun_add_nets(hvc_vm *vm, const struct options *o, size_t first,
                      hvc_acpi_device *acpi);
/* After a successful --incoming: attach the devices whose tap the source
 * still held (created detached) once it is free; and stop trying, before
 * the VM is destroyed. */
void hvrun_nets_attach_later(void);
void hvrun_nets_stop(void);

/* Adds the virtio devices the options ask for (virtio.c), each a window
 * from 0xd0000000 with its own GSI from 5 up, and describes them in
 * acpi[] (up to 16 entries); console_fd_in/out give the virtio console's
 * stdio. Returns the number of ACPI entries written. */
size_t hvrun_add_virtio(hvc_vm *vm, const struct options *o, int console_in,
                        hvc_acpi_device *acpi);

/* Adds COM1 and the platform and virtio devices the options ask for
 * (hvrun.c); a restore adds the same ones, named alike, and appends to a
 * --serial file instead of truncating it. */
void hvrun_add_devices(hvc_vm *vm, const struct options *o, bool restoring);

/* The first stop signal that arrived (SIGINT, SIGTERM, SIGHUP, SIGQUIT),
 * or 0. */
int hvrun_interrupted(void);
/* "SIGTERM", ... */
const char *hvrun_signal_name(int sig);

/* diagnose.c: prints one line for an ::HVC_EXIT_INTERNAL_ERROR of vCPU
 * @id: the reason decoded for @backend ("kvm"), RIP, the paging mode and
 * the instruction bytes at RIP. */
void hvrun_report_internal(hvc_vcpu *v, const hvc_exit *e, uint32_t id,
                           const char *backend);

/* escape.c: @s with control characters, backslash and bytes that are
 * not printable UTF-8 escaped, for a message; in one of a few
 * thread-local buffers that the next calls reuse (several may appear in
 * one printf), cut short with "..." past 4 KiB. */
const char *hvrun_esc(const char *s);

/* audit.c: prints one line on stderr: the sharing audit of the VM's
 * guest RAM (hvc_vm_audit_sharing()), or what kept it from running, with
 * @when ("at exit", "on SIGUSR1"). */
void hvrun_audit_report(hvc_vm *vm, const char *when);

/* snapshot.c: reads --key-file / --passphrase-file into @o and checks that
 * --snapshot's directory is writable; on a problem prints one line and
 * exits 2. */
void hvrun_snapshot_prepare(struct options *o);
/* Pauses the VM and saves it to --snapshot atomically, with the options
 * as user data; the VM stays paused. 0, or a negative errno after printing
 * one line. */
int hvrun_snapshot(struct machine *m);
/* Restores --restore (or, with --incoming, receives a migrated VM on that
 * unix socket) into m->vm, re-attaching the devices the snapshot's
 * hvrun configuration names (checked against, or overridden by, @o, which
 * then holds the merged configuration) and fills m->vcpus. On failure
 * prints one line and exits (2, 125, or 130 when interrupted). */
void hvrun_restore(struct machine *m, struct options *o);
/* migrate.c: checks the form of a migration address (one line and exit 2
 * when wrong); returns @arg. */
const char *hvrun_migrate_address(const char *flag, const char *arg,
                                  bool listening);
/* The migration options agree with each other (else one line, exit 2). */
void hvrun_migrate_check(const struct options *o);
/* --incoming: listens, accepts one connection and receives the VM over
 * it (with TLS when asked); the library's result. Exits 2 when it cannot
 * listen. */
int hvrun_receive(hvc_hypervisor *hv, const struct options *o,
                  hvc_restore_options *ro, hvc_vm **vm);
/* --migrate-to: migrates the running VM. 0 when the destination has it
 * (the VM stays paused for good), a negative errno after printing one
 * line (the VM runs on), or 1 after printing one line when post-copy
 * failed after the switchover (the guest is lost on both sides). */
int hvrun_migrate(struct machine *m);

/* handover.c: --handover-to: hands the running VM over to the hvrun
 * listening there. 0 when it has the guest (the VM stays paused for
 * good), or a negative errno after printing one line (the VM runs on). */
int hvrun_handover(struct machine *m);
/* --upgrade-exec: the same to BINARY, started here with --incoming fd:N. */
int hvrun_upgrade_exec(struct machine *m);
/* --incoming: a hand-over or a migration stream, whichever @p fd
 * carries. */
int hvrun_receive_any(hvc_hypervisor *hv, int fd, const hvc_restore_options *ro,
                      hvc_vm **vm);
/* In a restore's setup: the descriptor a hand-over passed for @p device's
 * @p slot, or -1. */
int hvrun_handover_fd(hvc_vm *vm, const char *device, uint32_t slot);
/* postcopy.c: on a destination that received a VM by post-copy, a thread
 * that prints one line when every page arrived (with the faults and their
 * service time) or when post-copy failed. */
void hvrun_postcopy_watch(struct machine *m);
void hvrun_postcopy_unwatch(void);

/* config.c: hvrun's configuration in a snapshot's user data. */
int hvrun_config_encode(const struct options *o, uint8_t **out, size_t *len);
/* Decodes untrusted bytes into @stored (strings malloc'ed); 0, or -1 with
 * a message in err[]. */
int hvrun_config_decode(const void *buf, size_t len, struct options *stored,
                        char *err, size_t errlen);
/* Merges the command line @o into the snapshot's @stored: host-side
 * settings (disk paths, --serial) override, guest-visible ones must agree.
 * 0, or -1 with a message in err[]. */
int hvrun_config_merge(struct options *stored, const struct options *o,
                       char *err, size_t errlen);

/* progress.c: a progress line on stderr when it is a terminal. */
struct hvrun_progress {
    const char *what; /* "saving 'FILE'" */
    double start;     /* seconds, CLOCK_MONOTONIC */
    double last;      /* last line drawn */
    uint64_t done;    /* bytes so far */
    bool tty, drawn;
};
void hvrun_progress_begin(struct hvrun_progress *p, const char *what);
/* An hvc_progress_fn; -ECANCELED once interrupted. */
int hvrun_progress(void *opaque, uint64_t done, uint64_t total);
/* Ends the line (if one was drawn), with the totals when @ok: @bytes, or
 * the last count reported if that is more. */
void hvrun_progress_end(struct hvrun_progress *p, bool ok, uint64_t bytes);

/* Reads a whole file; on failure prints one line and exits 2. */
void *hvrun_read_file(const char *what, const char *path, uint64_t *size);

/* host.c: --list-host prints the host's NUMA nodes and PCI devices as a
 * table or as JSON, and returns the exit status. */
int hvrun_list_host(bool json);
/* Exits 2 with one line unless the host has node @node with CPUs. */
void hvrun_check_numa_node(uint32_t node);

#endif
