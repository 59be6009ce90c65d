/* hvrun's command line. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE (1ull << 31)

static const char usage[] =
    "usage: hvrun --kernel FILE [options]\n"
    "       hvrun --restore FILE [options]\n"
    "       hvrun --list-host [--json]\n"
    "\n"
    "Boots a kernel on libhvcore: an ELF (PVH or plain ELF32/ELF64), a\n"
    "Linux bzImage, or a raw image (--raw). Every vCPU runs on its own\n"
    "thread; the guest gets a 16550A UART at 0x3f8 (IRQ 4), a debug-exit\n"
    "port at 0xf4, an i8042 reset line, a CMOS RTC and ACPI tables.\n"
    "\n"
    "  --kernel FILE        kernel image (required unless --restore)\n"
    "  --initrd FILE        initial ramdisk\n"
    "  --cmdline STR        kernel command line (default: console=ttyS0)\n"
    "  --mem MIB            guest RAM in MiB (default 256, 16..1048576;\n"
    "                       a 64-bit guest 16..142336, what the loader's\n"
    "                       identity page tables can map)\n"
    "  --cpus N             number of vCPUs (default 1, 1..255)\n"
    "  --accel NAME         the accelerator: kvm or hvf (default: the first\n"
    "                       compiled in that opens on this host)\n"
    "  --serial MODE        COM1 output: stdio (default), file:PATH, none\n"
    "  --raw ADDR           the kernel is a raw image loaded and entered at\n"
    "                       ADDR (hex with 0x, or decimal)\n"
    "  --raw-mode MODE      mode a raw image starts in: 64 (default), 32,\n"
    "                       real\n"
    "  --numa-node N        place the guest on host NUMA node N: its RAM\n"
    "                       bound to N, hvrun's threads (vCPUs included)\n"
    "                       on N's CPUs\n"
    "  --list-host          print the host's NUMA nodes (CPUs, memory,\n"
    "                       distances) and PCI devices (ids, class, node,\n"
    "                       names), then exit; needs no --kernel\n"
    "  --json               with --list-host: print JSON for scripts\n"
    "  --disk PATH[,ro][,dma=GPA+LEN]\n"
    "                       a virtio-blk disk backed by a file or block\n"
    "                       device (read-only with ,ro); repeatable, up to 8;\n"
    "                       dma= confines the device to that window of guest\n"
    "                       memory (its rings and buffers must lie there;\n"
    "                       requests outside it fail with an I/O error)\n"
    "  --net tap=NAME[,mac=MAC][,queues=N][,dma=GPA+LEN]\n"
    "                       a virtio-net device on the existing tap\n"
    "                       interface NAME (MAC as 52:54:00:12:34:56,\n"
    "                       default random; queues: 1); repeatable, up to\n"
    "                       4; dma= as for --disk. A missing, busy or\n"
    "                       forbidden tap ends hvrun with status 2\n"
    "  --rng                a virtio-rng device fed by getrandom(2)\n"
    "  --virtio-console     a virtio-console on stdio (the guest's hvc0)\n"
    "                       instead of the UART\n"
    "  --virtio-cmdline     announce virtio devices with virtio_mmio.device=\n"
    "                       on the kernel command line instead of in ACPI\n"
    "  --audit-sharing      at exit, print on stderr how many pages of\n"
    "                       guest RAM share a physical frame (KSM-merged,\n"
    "                       mapped by another process, the zero page) and\n"
    "                       where they are (resident, swapped, neither);\n"
    "                       with --keep-running, also on each SIGUSR1.\n"
    "                       The sharing counts need root (CAP_SYS_ADMIN);\n"
    "                       without it the line says so (docs/SHARING.md)\n"
    "  -h, --help           this text\n"
    "  -V, --version        the libhvcore version\n"
    "\n"
    "Snapshots (the file format is docs/MIGRATION.md):\n"
    "  --snapshot FILE      on SIGUSR1, or --snapshot-after-ms, pause the\n"
    "                       VM, save it to FILE (written aside, then renamed\n"
    "                       over FILE) and exit 0\n"
    "  --snapshot-after-ms N  take the snapshot N ms after the vCPUs start\n"
    "                       (SIGUSR1 still works; whichever comes first)\n"
    "  --live               with --snapshot: save while the guest runs\n"
    "                       (memory first, then again what it rewrote),\n"
    "                       pausing it only for the last pages and the\n"
    "                       state, at most --max-downtime-ms if it can\n"
    "  --keep-running       after a snapshot the VM goes on; each SIGUSR1\n"
    "                       takes another, replacing FILE atomically (with\n"
    "                       --audit-sharing, without --snapshot: SIGUSR1\n"
    "                       only prints the report)\n"
    "  --restore FILE       continue the VM saved in FILE instead of booting\n"
    "                       (no --kernel, --initrd, --cmdline, --raw,\n"
    "                       --raw-mode, --virtio-cmdline); the devices come\n"
    "                       from the snapshot: --disk PATH (as many, same\n"
    "                       ,ro), --net tap=NAME (as many; the tap is\n"
    "                       opened again by name, and the guest announced)\n"
    "                       and --serial may point them elsewhere;\n"
    "                       --mem, --cpus, --rng, --virtio-console must agree\n"
    "  --restore-mode MODE  read (default): read guest memory from FILE;\n"
    "                       mmap: map it copy-on-write, lazily (FILE must\n"
    "                       then not change; encrypted snapshots are read)\n"
    "  --key-file PATH      exactly 32 raw bytes: the AES-256-GCM key that\n"
    "                       --snapshot encrypts with and --restore decrypts\n"
    "                       with\n"
    "  --passphrase-file PATH  the first line of PATH as a passphrase\n"
    "                       (PBKDF2) instead of --key-file\n"
    "Saving and restoring show their progress on stderr when it is a\n"
    "terminal.\n"
    "\n"
    "Live migration (pre-copy; --key-file/--passphrase-file encrypt it):\n"
    "ADDR is unix:PATH or tcp:HOST:PORT (HOST a name, an IPv4 address or\n"
    "[an IPv6 address]).\n"
    "  --incoming ADDR      listen on ADDR, receive one VM and run it\n"
    "                       (instead of booting; the options are checked\n"
    "                       as for --restore)\n"
    "  --migrate-to ADDR    on SIGUSR2, or --migrate-after-ms, move the\n"
    "                       running VM to the hvrun listening there; on\n"
    "                       success exit 0, on failure print one line and\n"
    "                       run on (another SIGUSR2 tries again)\n"
    "  --migrate-after-ms N start migrating N ms after the vCPUs start\n"
    "  --max-downtime-ms N  the longest pause wanted (default 10)\n"
    "  --bandwidth-mib N    pre-copy writes at most N MiB/s (the paused\n"
    "                       final phase is not limited)\n"
    "  --auto-converge      throttle the vCPUs (20%, then 10 points more\n"
    "                       per round, up to 99%) when the guest dirties\n"
    "                       memory faster than the link carries it\n"
    "  --migration-stats FILE  write the statistics as JSON to FILE\n"
    "                       (atomically), on success and on failure\n"
    "  --tls-cert FILE, --tls-key FILE  PEM certificate and key: the\n"
    "                       destination's (required there for TLS), the\n"
    "                       source's when the destination asks for one\n"
    "  --tls-ca FILE        PEM CA certificates: the source verifies the\n"
    "                       destination (and its HOST) against them; given\n"
    "                       to --incoming, the source must present a\n"
    "                       certificate they signed (mutual TLS)\n"
    "  --postcopy           allow post-copy: when pre-copy does not\n"
    "                       converge, the destination runs the guest at\n"
    "                       once and pages follow (a fault fetches its page\n"
    "                       first); the destination prints one line when\n"
    "                       all arrived\n"
    "  --postcopy-after-rounds N  post-copy after N pre-copy rounds (1:\n"
    "                       right after the first pass); implies --postcopy\n"
    "The source shows the rounds on stderr when it is a terminal.\n"
    "\n"
    "Hand-over (same host; guest memory and the console and disk\n"
    "descriptors pass to the new hvrun, nothing is copied):\n"
    "  --handover-to unix:PATH  on SIGUSR2, or --handover-after-ms, hand the\n"
    "                       running VM to the hvrun listening there with\n"
    "                       --incoming unix:PATH; on success exit 0, on\n"
    "                       failure print one line and run on\n"
    "  --handover-after-ms N  hand over N ms after the vCPUs start\n"
    "  --upgrade-exec BINARY  on SIGHUP, start BINARY (a new hvrun) with\n"
    "                       --incoming fd:N on a socket pair and hand the VM\n"
    "                       over to it; exit 0 once it confirmed (the\n"
    "                       console and disks go on in BINARY)\n"
    "  --incoming fd:N      receive on the inherited socket N instead\n"
    "\n"
    "Exit status: the byte the guest wrote to port 0xf4; 0 when it powered\n"
    "off or reset, or after a --snapshot; 2 for a usage error, including a\n"
    "snapshot that cannot be restored (missing, damaged, truncated, wrong\n"
    "key, from an incompatible host, asking for more RAM than this host\n"
    "has) and a hypervisor this user cannot open (no access to\n"
    "/dev/kvm); 124 when it triple-faulted; 125 on an\n"
    "internal error (with a message: for the backend's own, its reason,\n"
    "RIP, paging mode and instruction bytes), including a failed --snapshot\n"
    "save (with --keep-running that only prints the message); 130 when\n"
    "interrupted (SIGINT, SIGTERM, SIGHUP without --upgrade-exec,\n"
    "SIGQUIT). A signal during a\n"
    "snapshot save cancels it, leaves FILE as it was, prints one line and\n"
    "exits 130.\n";

/* --handover-to takes unix:PATH only (descriptors cross unix sockets). */
static const char *unix_path(const char *flag, const char *arg)
{
    if (strncmp(arg, "unix:", 5) != 0 || !arg[5]) {
        fprintf(stderr, "hvrun: %s: '%s' is not unix:PATH\n", flag,
                hvrun_esc(arg));
        exit(HVRUN_EXIT_USAGE);
    }
    return arg + 5;
}

static void die_usage(const char *fmt, const char *arg);

static void die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "hvrun: ");
    fprintf(stderr, fmt, hvrun_esc(arg));
    fprintf(stderr, " (try --help)\n");
    exit(HVRUN_EXIT_USAGE);
}

static uint64_t number(const char *flag, const char *s, uint64_t lo,
                       uint64_t hi)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        die_usage("%s needs a non-negative number", flag);
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr,
                "hvrun: %s: '%s' is not a number in %llu..%llu (try "
                "--help)\n",
                flag, hvrun_esc(s), (unsigned long long)lo,
                (unsigned long long)hi);
        exit(HVRUN_EXIT_USAGE);
    }
    return v;
}

/* --accel: a backend compiled into this libhvcore (hvc_backend_name);
 * whether it opens on this host is known only when hvrun opens it. */
static const char *accel_name(const char *arg)
{
    char list[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < hvc_backend_count(); i++) {
        if (strcmp(hvc_backend_name(i), arg) == 0)
            return arg;
        if (used < sizeof(list))
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                     i ? ", " : "", hvc_backend_name(i));
    }
    fprintf(stderr,
            "hvrun: --accel: '%s' is not an accelerator of this libhvcore "
            "(it has: %s; try --help)\n",
            hvrun_esc(arg), used ? list : "none");
    exit(HVRUN_EXIT_USAGE);
}

static void check_handover(const struct options *o)
{
    const struct handover_opts *h = &o->handover;
    struct stat st;
    if (h->timed && !h->to)
        die_usage("%s", "--handover-after-ms goes with --handover-to "
                        "unix:PATH");
    if (h->to && o->migrate_to)
        die_usage("%s", "give --handover-to or --migrate-to, not both");
    if (h->upgrade_exec &&
        (stat(h->upgrade_exec, &st) < 0 || !S_ISREG(st.st_mode) ||
         access(h->upgrade_exec, X_OK) < 0))
        die_usage("--upgrade-exec: '%s' is not an executable file",
                  h->upgrade_exec);
    if (h->incoming_fd >= 0 &&
        (fstat(h->incoming_fd, &st) < 0 || !S_ISSOCK(st.st_mode)))
        die_usage("--incoming: '%s' is not an open socket", o->incoming);
}

void hvrun_parse(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {
        {"kernel", required_argument, NULL, 'k'},
        {"initrd", required_argument, NULL, 'i'},
        {"cmdline", required_argument, NULL, 'c'},
        {"mem", required_argument, NULL, 'm'},
        {"cpus", required_argument, NULL, 'n'},
        {"serial", required_argument, NULL, 's'},
        {"raw", required_argument, NULL, 'r'},
        {"raw-mode", required_argument, NULL, 'R'},
        {"numa-node", required_argument, NULL, 'N'},
        {"list-host", no_argument, NULL, 'L'},
        {"json", no_argument, NULL, 'J'},
        {"disk", required_argument, NULL, 'D'},
        {"rng", no_argument, NULL, 'G'},
        {"net", required_argument, NULL, 0x120},
        {"virtio-console", no_argument, NULL, 'C'},
        {"virtio-cmdline", no_argument, NULL, 'A'},
        {"snapshot", required_argument, NULL, 'S'},
        {"snapshot-after-ms", required_argument, NULL, 'T'},
        {"keep-running", no_argument, NULL, 'K'},
        {"restore", required_argument, NULL, 'X'},
        {"restore-mode", required_argument, NULL, 'M'},
        {"key-file", required_argument, NULL, 'Y'},
        {"passphrase-file", required_argument, NULL, 'P'},
        {"audit-sharing", no_argument, NULL, 'U'},
        {"incoming", required_argument, NULL, 0x100},
        {"migrate-to", required_argument, NULL, 0x101},
        {"migrate-after-ms", required_argument, NULL, 0x102},
        {"max-downtime-ms", required_argument, NULL, 0x103},
        {"bandwidth-mib", required_argument, NULL, 0x104},
        {"auto-converge", no_argument, NULL, 0x105},
        {"migration-stats", required_argument, NULL, 0x106},
        {"tls-cert", required_argument, NULL, 0x107},
        {"tls-key", required_argument, NULL, 0x108},
        {"tls-ca", required_argument, NULL, 0x109},
        {"live", no_argument, NULL, 0x10a},
        {"handover-to", required_argument, NULL, 0x10b},
        {"handover-after-ms", required_argument, NULL, 0x10c},
        {"upgrade-exec", required_argument, NULL, 0x10d},
        {"postcopy", no_argument, NULL, 0x10e},
        {"postcopy-after-rounds", required_argument, NULL, 0x10f},
        {"accel", required_argument, NULL, 0x160},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->cmdline = "console=ttyS0";
    o->mem_mib = 256;
    o->cpus = 1;
    o->raw_mode = HVC_X86_MODE_LONG64;
    o->numa_node = -1;
    o->handover.incoming_fd = -1;
    opterr = 0;
    /* Flags that only make sense when booting a kernel. */
    const char *boot_only = NULL;
    bool restore_mode = false;
    int c;
    while ((c = getopt_long(argc, argv, ":hV", longs, NULL)) != -1) {
        switch (c) {
        case 'k':
            o->kernel = optarg;
            boot_only = "--kernel";
            break;
        case 'i':
            o->initrd = optarg;
            boot_only = "--initrd";
            break;
        case 'c':
            o->cmdline = optarg;
            boot_only = "--cmdline";
            break;
        case 'm':
            o->mem_mib = number("--mem", optarg, 16, 1u << 20);
            o->mem_given = true;
            break;
        case 'n':
            o->cpus = (uint32_t)number("--cpus", optarg, 1, 255);
            o->cpus_given = true;
            break;
        case 's':
            o->serial_given = true;
            if (strcmp(optarg, "stdio") == 0)
                o->serial = SERIAL_STDIO;
            else if (strcmp(optarg, "none") == 0)
                o->serial = SERIAL_NONE;
            else if (strncmp(optarg, "file:", 5) == 0 && optarg[5]) {
                o->serial = SERIAL_FILE;
                o->serial_path = optarg + 5;
            } else
                die_usage("--serial: '%s' is not stdio, file:PATH or none",
                          optarg);
            break;
        case 'r':
            boot_only = "--raw";
            o->raw = true;
            o->raw_address = number("--raw", optarg, 0, UINT64_MAX - 1);
            break;
        case 'R':
            boot_only = "--raw-mode";
            if (strcmp(optarg, "64") == 0)
                o->raw_mode = HVC_X86_MODE_LONG64;
            else if (strcmp(optarg, "32") == 0)
                o->raw_mode = HVC_X86_MODE_PROTECTED32;
            else if (strcmp(optarg, "real") == 0)
                o->raw_mode = HVC_X86_MODE_REAL;
            else
                die_usage("--raw-mode: '%s' is not 64, 32 or real", optarg);
            break;
        case 'N':
            o->numa_node = (int32_t)number("--numa-node", optarg, 0, INT32_MAX);
            break;
        case 'L': o->list_host = true; break;
        case 'J': o->json = true; break;
        case 'D': {
            if (o->nr_disks == HVRUN_MAX_DISKS)
                die_usage("%s: at most 8 disks", "--disk");
            /* suffixes, from the end: ,ro and ,dma=GPA+LEN in any order */
            bool ro = false, dma = false;
            uint64_t gpa = 0, len = 0;
            for (char *comma; (comma = strrchr(optarg, ','));) {
                if (strcmp(comma, ",ro") == 0 && !ro)
                    ro = true;
                else if (strncmp(comma, ",dma=", 5) == 0 && !dma) {
                    char *plus = strchr(comma + 5, '+');
                    if (!plus)
                        die_usage("--disk: '%s' is not dma=GPA+LEN", comma + 1);
                    *plus = 0;
                    gpa =
                        number("--disk dma= address", comma + 5, 0, UINT64_MAX);
                    len = number("--disk dma= length", plus + 1, 1,
                                 UINT64_MAX - gpa + 1 ? UINT64_MAX - gpa + 1
                                                      : UINT64_MAX);
                    dma = true;
                } else
                    die_usage("--disk: '%s' is not PATH[,ro][,dma=GPA+LEN]",
                              optarg);
                *comma = 0;
            }
            if (!*optarg)
                die_usage("%s needs a path", "--disk");
            o->disk_dma_gpa[o->nr_disks] = gpa;
            o->disk_dma_len[o->nr_disks] = len;
            o->disk_readonly[o->nr_disks] = ro;
            o->disks[o->nr_disks++] = optarg;
            break;
        }
        case 'G': o->rng = true; break;
        case 0x120: hvrun_parse_net(o, optarg); break;
        case 'C': o->virtio_console = true; break;
        case 'A':
            o->virtio_cmdline = true;
            boot_only = "--virtio-cmdline";
            break;
        case 'S': o->snapshot = optarg; break;
        case 0x100:
            if (strncmp(optarg, "fd:", 3) == 0) {
                o->handover.incoming_fd =
                    (int)number("--incoming fd:", optarg + 3, 0, 1 << 20);
                o->incoming = optarg;
                break;
            }
            o->incoming = hvrun_migrate_address("--incoming", optarg, true);
            break;
        case 0x101:
            o->migrate_to =
                hvrun_migrate_address("--migrate-to", optarg, false);
            break;
        case 0x104:
            o->mig.bandwidth_mib =
                (uint32_t)number("--bandwidth-mib", optarg, 1, 1u << 24);
            break;
        case 0x105: o->mig.auto_converge = true; break;
        case 0x106: o->mig.stats_path = optarg; break;
        case 0x107: o->mig.tls_cert = optarg; break;
        case 0x108: o->mig.tls_key = optarg; break;
        case 0x109: o->mig.tls_ca = optarg; break;
        case 0x10b: o->handover.to = unix_path("--handover-to", optarg); break;
        case 0x10c:
            o->handover.after_ms =
                number("--handover-after-ms", optarg, 0, 1ull << 40);
            o->handover.timed = true;
            break;
        case 0x10d: o->handover.upgrade_exec = optarg; break;
        case 0x102:
            o->migrate_after_ms =
                number("--migrate-after-ms", optarg, 0, 1ull << 40);
            o->migrate_timed = true;
            break;
        case 0x103:
            o->max_downtime_ms =
                (uint32_t)number("--max-downtime-ms", optarg, 1, 1u << 30);
            break;
        case 0x10a: o->snapshot_live = true; break;
        case 0x10e: o->mig.postcopy = true; break;
        case 0x10f:
            o->mig.postcopy_after_rounds = (uint32_t)number(
                "--postcopy-after-rounds", optarg, 1, 1u << 20);
            o->mig.postcopy = true;
            break;
        case 'T':
            o->snapshot_after_ms =
                number("--snapshot-after-ms", optarg, 0, 1ull << 40);
            o->snapshot_timed = true;
            break;
        case 'K': o->keep_running = true; break;
        case 'X': o->restore = optarg; break;
        case 'M':
            restore_mode = true;
            if (strcmp(optarg, "mmap") == 0)
                o->restore_mmap = true;
            else if (strcmp(optarg, "read") == 0)
                o->restore_mmap = false;
            else
                die_usage("--restore-mode: '%s' is not read or mmap", optarg);
            break;
        case 'Y': o->key_file = optarg; break;
        case 'P': o->passphrase_file = optarg; break;
        case 'U': o->audit_sharing = true; break;
        case 0x160: o->accel = accel_name(optarg); break;
        case 'h': fputs(usage, stdout); exit(0);
        case 'V':
            printf("hvrun (libhvcore %s)\n", hvc_version_string());
            exit(0);
        case ':': die_usage("%s needs a value", argv[optind - 1]); break;
        default: die_usage("unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    if (o->json && !o->list_host)
        die_usage("%s", "--json goes with --list-host");
    if (o->list_host)
        return;
    if (o->migrate_timed && !o->migrate_to)
        die_usage("%s", "--migrate-after-ms goes with --migrate-to ADDR");
    if (o->max_downtime_ms && !o->migrate_to && !o->snapshot_live)
        die_usage("%s", "--max-downtime-ms goes with --migrate-to ADDR or "
                        "--snapshot FILE --live");
    if (o->snapshot_live && !o->snapshot)
        die_usage("%s", "--live goes with --snapshot FILE");
    hvrun_migrate_check(o);
    check_handover(o);
    if (o->mig.postcopy && !o->migrate_to)
        die_usage("%s", "--postcopy and --postcopy-after-rounds go with "
                        "--migrate-to ADDR");
    if (o->incoming && o->restore)
        die_usage("%s", "give --incoming or --restore, not both");
    if (o->incoming && boot_only)
        die_usage("%s cannot be combined with --incoming (the stream holds "
                  "the booted guest)",
                  boot_only);
    if (o->incoming)
        o->restore = o->incoming; /* the same checks and merge */
    if (o->snapshot_timed && !o->snapshot)
        die_usage("%s", "--snapshot-after-ms goes with --snapshot FILE");
    if (o->keep_running && !o->snapshot && !o->audit_sharing)
        die_usage("%s", "--keep-running goes with --snapshot FILE or "
                        "--audit-sharing");
    if (restore_mode && !o->restore)
        die_usage("%s", "--restore-mode goes with --restore FILE");
    if ((o->key_file || o->passphrase_file) && !o->snapshot && !o->restore &&
        !o->migrate_to)
        die_usage("%s", "--key-file and --passphrase-file go with --snapshot "
                        "or --restore");
    if (o->key_file && o->passphrase_file)
        die_usage("%s", "give --key-file or --passphrase-file, not both");
    if (o->restore && boot_only)
        die_usage("%s cannot be combined with --restore (the snapshot holds "
                  "the booted guest)",
                  boot_only);
    if (!o->restore && !o->kernel)
        die_usage("%s", "--kernel FILE is required (or --restore FILE)");
    if (o->numa_node >= 0)
        hvrun_check_numa_node((uint32_t)o->numa_node);
}

void *hvrun_read_file(const char *what, const char *path, uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0) {
        fprintf(stderr, "hvrun: cannot read %s '%s': %s\n", what,
                hvrun_esc(path), strerror(errno));
        exit(HVRUN_EXIT_USAGE);
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size > MAX_FILE) {
        fprintf(stderr,
                "hvrun: %s '%s' is not a regular file of 1 byte to "
                "2 GiB\n",
                what, hvrun_esc(path));
        exit(HVRUN_EXIT_USAGE);
    }
    void *buf = malloc((size_t)st.st_size);
    if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        fprintf(stderr, "hvrun: cannot read %s '%s': %s\n", what,
                hvrun_esc(path), buf ? "short read" : "out of memory");
        exit(HVRUN_EXIT_USAGE);
    }
    fclose(f);
    *size = (uint64_t)st.st_size;
    return buf;
}
