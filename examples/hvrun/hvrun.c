/* hvrun: a small VMM in the spirit of `lkvm run`, built on libhvcore's
 * public API only. options.c parses the command line; this file builds the
 * machine (or has snapshot.c restore it) and runs one thread per vCPU. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MIB (1ull << 20)
#define LOW_RAM_TOP 0xc0000000ull /* RAM above 3 GiB continues at 4 GiB */
#define HIGH_RAM 0x100000000ull
/* docs/BOOT.md: a 64-bit boot's identity page tables (3 pages, then one
 * per GiB mapped) live in 0x10000-0x9efff, so the loader maps at most 140
 * GiB; RAM above 3 GiB continues at 4 GiB, which leaves 139 GiB of RAM. */
#define BOOT_TABLE_PAGES ((0x9f000ull - 0x10000ull) / 4096)
#define MAX_MAPPED_GIB (BOOT_TABLE_PAGES - 3)
#define MAX_LONG_MODE_MIB ((MAX_MAPPED_GIB - 1) * 1024)

static struct termios saved_tty;
static int tty_saved;
static atomic_int interrupted;
static atomic_int snapshot_requested; /* SIGUSR1 with --snapshot */
static atomic_int audit_requested;    /* SIGUSR1 with --audit-sharing */
static atomic_int migrate_requested;  /* SIGUSR2 with --migrate-to */
static atomic_int handover_requested; /* SIGUSR2 with --handover-to */
static atomic_int upgrade_requested;  /* SIGHUP with --upgrade-exec */

int hvrun_interrupted(void)
{
    return atomic_load(&interrupted);
}

static void restore_tty(void)
{
    if (tty_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
}

/* Keys go to the guest as typed; Ctrl-C still stops hvrun. */
static void raw_tty(void)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) < 0)
        return;
    struct termios t = saved_tty;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_iflag &= ~(tcflag_t)(ICRNL | IXON);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
        tty_saved = 1;
        atexit(restore_tty);
    }
}

static void fail(const char *what)
{
    fprintf(stderr, "hvrun: %s: %s\n", what, hvrun_esc(hvc_last_error()));
    exit(HVRUN_EXIT_INTERNAL);
}

static void check(int r, const char *what)
{
    if (r < 0)
        fail(what);
}

/* node >= 0: every page of guest RAM on that host node. */
static void add_ram(struct machine *m, uint64_t mib, int32_t node)
{
    uint64_t bytes = mib * MIB;
    uint32_t bind = (uint32_t)node;
    hvc_memory_options o = HVC_MEMORY_OPTIONS_INIT;
    if (node >= 0) {
        o.numa_policy = HVC_NUMA_BIND;
        o.numa_nodes = &bind;
        o.numa_node_count = 1;
    }
    o.length = bytes < LOW_RAM_TOP ? bytes : LOW_RAM_TOP;
    check(hvc_vm_add_memory(m->vm, &o, NULL), "adding RAM");
    if (bytes > LOW_RAM_TOP) {
        o.guest_addr = HIGH_RAM;
        o.length = bytes - LOW_RAM_TOP;
        check(hvc_vm_add_memory(m->vm, &o, NULL), "adding RAM above 4 GiB");
    }
}

/* stdin if it can be polled: a terminal, pipe or socket (not /dev/null or
 * a regular file, which epoll refuses); else -1. */
static int pollable_stdin(void)
{
    struct stat st;
    if (fstat(STDIN_FILENO, &st) == 0 &&
        (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
        (!S_ISCHR(st.st_mode) || isatty(STDIN_FILENO)))
        return STDIN_FILENO;
    return -1;
}

static hvc_acpi_device virtio_acpi[16];
static size_t nr_virtio_acpi;

void hvrun_add_devices(hvc_vm *vm, const struct options *opt, bool restoring)
{
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    /* A hand-over passed the old hvrun's console descriptors. */
    int passed_out = restoring ? hvrun_handover_fd(vm, "com1", 0) : -1;
    int passed_in = restoring ? hvrun_handover_fd(vm, "com1", 1) : -1;
    if (passed_out >= 0 || passed_in >= 0) {
        so.output_fd = passed_out;
        so.input_fd = passed_in;
        if (passed_in >= 0 && isatty(passed_in))
            raw_tty();
    } else if (opt->serial == SERIAL_STDIO && opt->virtio_console) {
        so.output_fd = STDOUT_FILENO; /* early boot messages; no input */
    } else if (opt->serial == SERIAL_STDIO) {
        so.output_fd = STDOUT_FILENO;
        so.input_fd = pollable_stdin();
        raw_tty();
    } else if (opt->serial == SERIAL_FILE) {
        /* A restored guest's console goes on where it was. */
        so.output_fd = open(opt->serial_path,
                            O_WRONLY | O_CREAT | O_CLOEXEC |
                                (restoring ? O_APPEND : O_TRUNC),
                            0644);
        if (so.output_fd < 0) {
            fprintf(stderr, "hvrun: cannot open serial output '%s': %s\n",
                    hvrun_esc(opt->serial_path), strerror(errno));
            exit(HVRUN_EXIT_USAGE);
        }
    }
    check(hvc_serial_create(vm, &so, NULL), "creating the UART");
    check(hvc_debug_exit_create(vm, 0xf4, NULL), "creating debug-exit");
    check(hvc_i8042_create(vm, NULL), "creating the i8042");
    check(hvc_cmos_create(vm, NULL), "creating the RTC");
    check(hvc_port80_create(vm, NULL), "creating the port 0x80 sink");
    if (opt->virtio_console)
        raw_tty();
    nr_virtio_acpi = hvrun_add_virtio(
        vm, opt, opt->virtio_console ? pollable_stdin() : -1, virtio_acpi);
}

static uint64_t add_acpi(struct machine *m, const struct options *opt)
{
    hvc_acpi_device devs[17] = {{.hid = "PNP0501",
                                 .space = HVC_IO_PIO,
                                 .irq = 4,
                                 .base = 0x3f8,
                                 .length = 8}};
    size_t n = 1;
    if (!opt->virtio_cmdline)
        for (size_t i = 0; i < nr_virtio_acpi; i++)
            devs[n++] = virtio_acpi[i];
    hvc_acpi_options ao = HVC_ACPI_OPTIONS_INIT;
    ao.nr_cpus = opt->cpus;
    ao.devices = devs;
    ao.nr_devices = (uint32_t)n;
    uint64_t rsdp = 0;
    check(hvc_acpi_build(m->vm, &ao, &rsdp), "building ACPI tables");
    return rsdp;
}

/* A 64-bit guest (a raw image in long mode, a 64-bit ELF or bzImage) gets
 * identity page tables for all its RAM, which the loader can only build up
 * to MAX_LONG_MODE_MIB; a 16-bit or 32-bit one is not bound by that. */
static void mem_too_large(const struct options *opt)
{
    fprintf(stderr,
            "hvrun: --mem %llu: the loader maps at most %llu MiB of RAM for "
            "a 64-bit guest (--mem 16..%llu)\n",
            (unsigned long long)opt->mem_mib,
            (unsigned long long)MAX_LONG_MODE_MIB,
            (unsigned long long)MAX_LONG_MODE_MIB);
    exit(HVRUN_EXIT_USAGE);
}

static void load(struct machine *m, const struct options *opt, uint64_t rsdp)
{
    hvc_boot_options bo = HVC_BOOT_OPTIONS_INIT;
    bo.kernel = hvrun_read_file("kernel", opt->kernel, &bo.kernel_size);
    if (opt->initrd)
        bo.initrd = hvrun_read_file("initrd", opt->initrd, &bo.initrd_size);
    bo.cmdline = opt->cmdline;
    char *full = NULL;
    size_t vlen = 0;
    if (opt->virtio_cmdline && hvc_virtio_cmdline(m->vm, NULL, 0, &vlen) == 0 &&
        vlen) {
        size_t cap = strlen(opt->cmdline) + vlen + 2;
        full = malloc(cap);
        if (!full) {
            fprintf(stderr, "hvrun: out of memory\n");
            exit(HVRUN_EXIT_INTERNAL);
        }
        int k =
            snprintf(full, cap, "%s%s", opt->cmdline, *opt->cmdline ? " " : "");
        check(hvc_virtio_cmdline(m->vm, full + k, cap - (size_t)k, &vlen),
              "writing the virtio command line");
        bo.cmdline = full;
    }
    bo.acpi_rsdp = rsdp;
    if (opt->raw) {
        bo.format = HVC_KERNEL_RAW;
        bo.raw_address = opt->raw_address;
        bo.raw_mode = opt->raw_mode;
    }
    int r = hvc_vm_load_kernel(m->vm, &bo, &m->boot);
    if (r < 0 && opt->mem_mib > MAX_LONG_MODE_MIB)
        mem_too_large(opt); /* the loader could not map it */
    if (r < 0) {
        fprintf(stderr, "hvrun: cannot load '%s': %s\n", hvrun_esc(opt->kernel),
                hvrun_esc(hvc_last_error()));
        exit(HVRUN_EXIT_USAGE);
    }
    free((void *)bo.kernel);
    free((void *)bo.initrd);
    free(full);
}

static void stop(struct machine *m, int status);

static int status_of(struct machine *m, const hvc_exit *e, uint32_t id)
{
    switch (e->reason) {
    case HVC_EXIT_POWEROFF:
        return (e->flags & HVC_EXIT_F_HANDLED) ? (int)(e->u.system.code & 0xff)
                                               : 0;
    case HVC_EXIT_RESET: return 0;
    case HVC_EXIT_SHUTDOWN:
        fprintf(stderr, "hvrun: vCPU %u: the guest triple-faulted\n", id);
        return HVRUN_EXIT_TRIPLE_FAULT;
    case HVC_EXIT_INTERNAL_ERROR:
        hvrun_report_internal(m->vcpus[id], e, id,
                              hvc_hypervisor_backend(m->hv));
        return HVRUN_EXIT_INTERNAL;
    default: return -1; /* not an end */
    }
}

struct runner {
    struct machine *m;
    uint32_t id;
};

static void *vcpu_thread(void *arg)
{
    struct runner *r = arg;
    struct machine *m = r->m;
    hvc_vcpu *v = m->vcpus[r->id];
    while (!atomic_load(&m->stopping)) {
        const hvc_exit *e;
        if (hvc_vcpu_run(v, &e) < 0) {
            fprintf(stderr, "hvrun: vCPU %u: %s\n", r->id,
                    hvrun_esc(hvc_last_error()));
            stop(m, HVRUN_EXIT_INTERNAL);
            break;
        }
        if (e->reason == HVC_EXIT_KICK)
            continue; /* the loop condition decides */
        int status = status_of(m, e, r->id);
        if (status >= 0) {
            stop(m, status);
        } else if (e->reason == HVC_EXIT_PIO || e->reason == HVC_EXIT_MMIO) {
            /* Nothing is there: reads float high (the library's default)
             * and writes are dropped, as on a real bus. */
        } else if (e->reason == HVC_EXIT_HLT) {
            continue;
        } else {
            fprintf(stderr, "hvrun: vCPU %u: unexpected exit %u\n", r->id,
                    e->reason);
            stop(m, HVRUN_EXIT_INTERNAL);
        }
    }
    return NULL;
}

static struct machine *the_machine;
/* The controller (main, once the vCPUs run) sleeps on ctl_cond until a
 * vCPU stops the machine, a signal arrives or the snapshot timer is due. */
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ctl_cond;
static atomic_int running; /* the vCPUs exist: a signal may stop them */

static void wake_controller(void)
{
    pthread_mutex_lock(&ctl_lock);
    pthread_cond_broadcast(&ctl_cond);
    pthread_mutex_unlock(&ctl_lock);
}

/* The first vCPU to finish decides the status and stops the others. */
static void stop(struct machine *m, int status)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&m->stopping, &expected, 1))
        return;
    atomic_store(&m->status, status);
    for (uint32_t i = 0; i < m->nr_vcpus; i++)
        hvc_vcpu_kick(m->vcpus[i]);
    wake_controller();
}

const char *hvrun_signal_name(int sig)
{
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGQUIT: return "SIGQUIT";
    default: return "a signal";
    }
}

/* Every thread blocks these (main blocks them before it starts any, and
 * threads inherit the mask); this one thread takes them with sigwaitinfo,
 * so nothing polls and nothing runs in a signal handler. SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT stop the guest (status 130, also while a snapshot is
 * being saved or restored: the progress callback then cancels it);
 * SIGUSR1 asks for a snapshot when --snapshot is given, and for a sharing
 * report with --audit-sharing --keep-running (both when both are given). */
static void *signal_thread(void *arg)
{
    const sigset_t *set = arg;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(set, &si);
        if (sig < 0)
            continue; /* EINTR: a stop/continue of the process */
        if (sig == SIGUSR2) {
            if (the_machine->opt->handover.to)
                atomic_store(&handover_requested, 1);
            else
                atomic_store(&migrate_requested, 1);
            wake_controller();
            continue;
        }
        if (sig == SIGHUP && the_machine->opt->handover.upgrade_exec &&
            atomic_load(&running)) {
            atomic_store(&upgrade_requested, 1);
            wake_controller();
            continue;
        }
        if (sig == SIGUSR1) {
            const struct options *o = the_machine->opt;
            if (o->snapshot)
                atomic_store(&snapshot_requested, 1);
            if (o->audit_sharing && o->keep_running)
                atomic_store(&audit_requested, 1);
            wake_controller();
            continue;
        }
        int first = 0;
        atomic_compare_exchange_strong(&interrupted, &first, sig);
        /* a live snapshot or a migration in progress stops first (the
         * file keeps what it held; the VM was not handed over) */
        if (atomic_load(&running) && the_machine->vm)
            hvc_vm_migrate_cancel(the_machine->vm);
        if (atomic_load(&running))
            stop(the_machine, HVRUN_EXIT_INTERRUPTED);
        wake_controller();
    }
    return NULL;
}

static void start_signal_thread(const struct options *o)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    if (o->snapshot || (o->audit_sharing && o->keep_running))
        sigaddset(&set, SIGUSR1);
    if (o->migrate_to || o->handover.to)
        sigaddset(&set, SIGUSR2);
    pthread_t t;
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        pthread_create(&t, NULL, signal_thread, &set) != 0) {
        fprintf(stderr, "hvrun: cannot start the signal thread\n");
        exit(HVRUN_EXIT_INTERNAL);
    }
    pthread_detach(t);
}

/* A snapshot on the controller: without --keep-running the VM stays
 * paused and hvrun exits 0 (the kicks take the parked vCPU threads out of
 * hvc_vcpu_run() without entering the guest, so the console ends exactly
 * where the snapshot does); with it, the VM resumes, even after a failed
 * save (which printed its line). A stop signal during the save cancels it
 * (the file keeps what it held) and hvrun exits 130 after one line. */
static void take_snapshot(struct machine *m)
{
    int r = hvrun_snapshot(m);
    int sig = atomic_load(&interrupted);
    if (sig) {
        if (r == -ECANCELED)
            fprintf(stderr,
                    "hvrun: snapshot '%s' cancelled by %s; the file is as it "
                    "was before\n",
                    hvrun_esc(m->opt->snapshot), hvrun_signal_name(sig));
        else if (r == 0)
            fprintf(stderr,
                    "hvrun: %s arrived as snapshot '%s' was completed; it "
                    "is saved\n",
                    hvrun_signal_name(sig), hvrun_esc(m->opt->snapshot));
        stop(m, HVRUN_EXIT_INTERRUPTED);
    } else if (!m->opt->keep_running) {
        stop(m, r < 0 ? HVRUN_EXIT_INTERNAL : 0);
    } else if (hvc_vm_is_paused(m->vm) && hvc_vm_resume(m->vm) < 0) {
        fprintf(stderr, "hvrun: resuming after the snapshot: %s\n",
                hvrun_esc(hvc_last_error()));
        stop(m, HVRUN_EXIT_INTERNAL);
    }
}

static struct timespec deadline_after_ms(uint64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static bool passed(const struct timespec *t)
{
    struct timespec n;
    clock_gettime(CLOCK_MONOTONIC, &n);
    return n.tv_sec > t->tv_sec ||
           (n.tv_sec == t->tv_sec && n.tv_nsec >= t->tv_nsec);
}

/* Until the machine stops: sleeps, and takes the snapshots that SIGUSR1
 * and --snapshot-after-ms ask for, and prints the sharing reports SIGUSR1
 * asks for (after the snapshot, when it asked for both). */
static void control(struct machine *m)
{
    const struct options *o = m->opt;
    struct timespec deadline = deadline_after_ms(o->snapshot_after_ms);
    bool timer = o->snapshot && o->snapshot_timed;
    /* --migrate-to: --migrate-after-ms after the start (once), and on
     * each SIGUSR2 (again after a failure). */
    struct timespec migrate_at = deadline_after_ms(o->migrate_after_ms);
    bool migrate = o->migrate_to && o->migrate_timed;
    /* --handover-to with --handover-after-ms: the same, once. */
    bool handover = o->handover.to && o->handover.timed;
    if (handover) {
        migrate_at = deadline_after_ms(o->handover.after_ms);
        migrate = true;
    }
    pthread_mutex_lock(&ctl_lock);
    while (!atomic_load(&m->stopping)) {
        bool due = timer && passed(&deadline);
        bool asked = atomic_exchange(&migrate_requested, 0) != 0;
        bool hand = atomic_exchange(&handover_requested, 0) != 0;
        bool upgrade = atomic_exchange(&upgrade_requested, 0) != 0;
        if (hand || upgrade || (handover && passed(&migrate_at))) {
            handover = migrate = false;
            pthread_mutex_unlock(&ctl_lock);
            /* Handed over: exit 0 (as after a migration). Not: run on. */
            if ((upgrade ? hvrun_upgrade_exec(m) : hvrun_handover(m)) == 0)
                stop(m, 0);
            pthread_mutex_lock(&ctl_lock);
        } else if (asked || (migrate && passed(&migrate_at))) {
            migrate = false;
            pthread_mutex_unlock(&ctl_lock);
            /* Moved: exit 0 (the kicks take the parked vCPU threads out
             * without entering the guest). Not moved: run on. */
            int mr = hvrun_migrate(m);
            if (mr >= 0) /* moved, or lost by a post-copy failure */
                stop(m, mr == 0 ? 0 : HVRUN_EXIT_INTERNAL);
            pthread_mutex_lock(&ctl_lock);
        } else if (due || atomic_exchange(&snapshot_requested, 0)) {
            timer = timer && !due; /* the timer fires once */
            pthread_mutex_unlock(&ctl_lock);
            take_snapshot(m);
            pthread_mutex_lock(&ctl_lock);
        } else if (atomic_exchange(&audit_requested, 0)) {
            pthread_mutex_unlock(&ctl_lock);
            hvrun_audit_report(m->vm, "on SIGUSR1");
            pthread_mutex_lock(&ctl_lock);
        } else if (migrate) {
            const struct timespec *t = &migrate_at;
            if (timer && (deadline.tv_sec < t->tv_sec ||
                          (deadline.tv_sec == t->tv_sec &&
                           deadline.tv_nsec < t->tv_nsec)))
                t = &deadline;
            pthread_cond_timedwait(&ctl_cond, &ctl_lock, t);
        } else if (timer) {
            pthread_cond_timedwait(&ctl_cond, &ctl_lock, &deadline);
        } else {
            pthread_cond_wait(&ctl_cond, &ctl_lock);
        }
    }
    pthread_mutex_unlock(&ctl_lock);
}

/* Builds the VM from the options and loads the kernel: vCPU 0 starts at
 * its entry, the others wait for the guest's INIT/SIPI. */
static void boot(struct machine *m, const struct options *opt)
{
    if (opt->raw && opt->raw_mode == HVC_X86_MODE_LONG64 &&
        opt->mem_mib > MAX_LONG_MODE_MIB)
        mem_too_large(opt); /* before allocating it */
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    vo.max_vcpus = opt->cpus;
    check(hvc_vm_create(m->hv, &vo, &m->vm), "creating the VM");
    add_ram(m, opt->mem_mib, opt->numa_node);
    hvrun_add_devices(m->vm, opt, false);
    uint64_t rsdp = add_acpi(m, opt);
    load(m, opt, rsdp);
    m->nr_vcpus = opt->cpus;
    m->vcpus = calloc(opt->cpus, sizeof(*m->vcpus));
    if (!m->vcpus) {
        fprintf(stderr, "hvrun: out of memory\n");
        exit(HVRUN_EXIT_INTERNAL);
    }
    for (uint32_t i = 0; i < opt->cpus; i++)
        check(hvc_vcpu_create(m->vm, i, &m->vcpus[i]), "creating a vCPU");
    check(hvc_vcpu_boot(m->vcpus[0], &m->boot), "setting up the boot vCPU");
    /* A raw image gets its vCPU's index in rdi: 0 for the boot vCPU. */
    if (opt->raw)
        check(hvc_vcpu_set_reg(m->vcpus[0], HVC_X86_RDI, 0),
              "setting up the boot vCPU");
}

/* The library prints nothing itself; a VMM decides where its messages go.
 * Any thread (a vCPU's, the event thread), hence one fprintf per message. */
static void on_log(void *opaque, int level, const char *message)
{
    (void)opaque;
    static const char *const names[] = {"?", "error", "warning", "info",
                                        "debug"};
    fprintf(stderr, "hvrun: libhvcore %s: %s\n",
            level >= HVC_LOG_ERROR && level <= HVC_LOG_DEBUG ? names[level]
                                                             : "?",
            message);
}

int main(int argc, char **argv)
{
    static struct options opt; /* m.opt, as long as m */
    hvrun_parse(argc, argv, &opt);
    hvc_set_log(HVC_LOG_WARN, on_log, NULL);
    if (opt.list_host)
        return hvrun_list_host(opt.json);
    /* Pinned before anything is created: the kernel then allocates the
     * VM's and vCPUs' own structures on the node too, and every thread
     * started from here on (vCPUs, the event thread) inherits the CPUs. */
    if (opt.numa_node >= 0)
        check(hvc_thread_pin_node((uint32_t)opt.numa_node),
              "pinning to the NUMA node");

    hvrun_snapshot_prepare(&opt);

    /* Static: the signal thread may read it while the process exits. */
    static struct machine m;
    m.opt = &opt;
    the_machine = &m;
    /* Before a restore, so that Ctrl-C can stop a long one, and before
     * any other thread (the library's included) exists. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ctl_cond, &ca);
    pthread_condattr_destroy(&ca);
    start_signal_thread(&opt);
    int r = hvc_hypervisor_open(opt.accel, &m.hv);
    if (r < 0 && opt.accel) {
        /* Asked for by name: not opening is the caller's problem. */
        fprintf(stderr, "hvrun: --accel %s: cannot open it here: %s\n",
                opt.accel, hvrun_esc(hvc_last_error()));
        return HVRUN_EXIT_USAGE;
    }
    if (r == -EACCES || r == -EPERM || r == -ENOENT || r == -ENODEV ||
        r == -ENXIO) {
        /* Not hvrun's failure: this user or host has no KVM to offer. */
        fprintf(stderr, "hvrun: cannot use the hypervisor: %s\n",
                hvrun_esc(hvc_last_error()));
        return HVRUN_EXIT_USAGE;
    }
    check(r, "opening the hypervisor");
    if (opt.restore)
        hvrun_restore(&m, &opt); /* continues where the snapshot stopped */
    else
        boot(&m, &opt);
    opt.cpus = m.nr_vcpus;

    struct runner *runners = calloc(opt.cpus, sizeof(*runners));
    pthread_t *threads = calloc(opt.cpus, sizeof(*threads));
    if (!runners || !threads) {
        fprintf(stderr, "hvrun: out of memory\n");
        return HVRUN_EXIT_INTERNAL;
    }
    /* From here a stop signal stops the vCPUs; one that came earlier does
     * it now (the signal thread sets the flag, then reads running). */
    atomic_store(&running, 1);
    if (hvrun_interrupted())
        stop(&m, HVRUN_EXIT_INTERRUPTED);
    for (uint32_t i = 0; i < opt.cpus; i++) {
        runners[i] = (struct runner){&m, i};
        if (pthread_create(&threads[i], NULL, vcpu_thread, &runners[i])) {
            fprintf(stderr, "hvrun: cannot start vCPU thread %u\n", i);
            stop(&m, HVRUN_EXIT_INTERNAL);
            opt.cpus = i;
            break;
        }
    }
    if (opt.incoming)
        hvrun_postcopy_watch(&m);
    control(&m);
    for (uint32_t i = 0; i < opt.cpus; i++)
        pthread_join(threads[i], NULL);
    hvrun_postcopy_unwatch();
    fflush(stdout);
    if (opt.audit_sharing) /* the guest's RAM as it ended */
        hvrun_audit_report(m.vm, "at exit");
    hvrun_nets_stop();
    hvc_vm_destroy(m.vm);
    hvc_hypervisor_close(m.hv);
    free(m.vcpus);
    free(runners);
    free(threads);
    return atomic_load(&m.status);
}
