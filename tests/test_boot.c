/* Booting through examples/hvrun: the ELF (PVH and plain), raw loaders and
 * the platform devices, checked on console output and exit status. */
#include "hvtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct run {
    int status;
    char out[16384]; /* the guest's serial console */
    char err[4096];  /* hvrun's stderr */
    char std[16384]; /* hvrun's stdout (--list-host) */
};

static void slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Runs hvrun with args (NULL-terminated), the console going to a file. */
static void hvrun(struct run *r, const char *const *args)
{
    char dir[] = "/tmp/hvt-boot-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char console[64], errf[64], outf[64], serial[80];
    snprintf(console, sizeof(console), "%s/console", dir);
    snprintf(errf, sizeof(errf), "%s/stderr", dir);
    snprintf(outf, sizeof(outf), "%s/stdout", dir);
    snprintf(serial, sizeof(serial), "file:%s", console);
    const char *argv[32] = {HVT_HVRUN, "--serial", serial};
    int n = 3;
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, outf, O_WRONLY | O_CREAT, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, errf, O_WRONLY | O_CREAT, 0600);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    cr_assert_eq(
        posix_spawn(&pid, HVT_HVRUN, &fa, NULL, (char **)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "hvrun died by signal %d", WTERMSIG(st));
    r->status = WEXITSTATUS(st);
    slurp(console, r->out, sizeof(r->out));
    slurp(errf, r->err, sizeof(r->err));
    slurp(outf, r->std, sizeof(r->std));
    unlink(console);
    unlink(errf);
    unlink(outf);
    rmdir(dir);
}

#define HAS(r, s)                                                              \
    cr_assert(strstr((r)->out, (s)), "console lacks \"%s\":\n%s\nstderr: %s",  \
              (s), (r)->out, (r)->err)

static const char *write_file(const char *name, const char *content)
{
    static char path[128];
    snprintf(path, sizeof(path), "/tmp/hvt-%d-%s", getpid(), name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
    return path;
}

Test(boot, pvh_elf32_gets_start_info)
{
    hvt_require_kvm();
    const char *initrd = write_file("initrd", "INITRD-CONTENTS!and more");
    struct run r;
    const char *args[] = {"--kernel",  HVT_GUEST_DIR "/pvh32.elf",
                          "--cmdline", "console=ttyS0 hello pvh",
                          "--initrd",  initrd,
                          "--mem",     "64",
                          NULL};
    hvrun(&r, args);
    unlink(initrd);
    cr_assert_eq(r.status, 33, "status %d; stderr: %s\n%s", r.status, r.err,
                 r.out);
    HAS(&r, "magic ok version 1");
    HAS(&r, "pvh: cmdline: [console=ttyS0 hello pvh]");
    HAS(&r, "pvh: rsdp 0xe0000 signature ok");
    HAS(&r, "pvh: modules 1 size 24 first bytes [INITRD-CONTENTS!]");
    /* 64 MiB less the legacy hole 0x9fc00-0x100000 */
    HAS(&r, "pvh: ram KiB 65151");
    HAS(&r, "0x9fc00+0x60400:res");
}

Test(boot, elf64_gets_boot_params)
{
    hvt_require_kvm();
    const char *initrd = write_file("initrd64", "ramdisk-bytes-0123456789");
    struct run r;
    const char *args[] = {"--kernel",  HVT_GUEST_DIR "/linux64.elf",
                          "--cmdline", "root=/dev/vda quiet",
                          "--initrd",  initrd,
                          "--mem",     "128",
                          NULL};
    hvrun(&r, args);
    unlink(initrd);
    cr_assert_eq(r.status, 64, "status %d; stderr: %s\n%s", r.status, r.err,
                 r.out);
    HAS(&r, "HdrS ok loader 0xff");
    HAS(&r, "linux64: cmdline: [root=/dev/vda quiet]");
    HAS(&r, "linux64: rsdp 0xe0000");
    HAS(&r, "linux64: initrd 24 bytes [ramdisk-bytes-01]");
    HAS(&r, "linux64: ram KiB 130687"); /* 128 MiB - 0x60400 */
}

Test(boot, bzimage_64bit_entry)
{
    hvt_require_kvm();
    struct run r;
    const char *args[] = {"--kernel", HVT_GUEST_DIR "/bzimage64.bin",
                          "--cmdline", "console=ttyS0 bz test", NULL};
    hvrun(&r, args);
    cr_assert_eq(r.status, 0x42, "status %d; stderr: %s\n%s", r.status, r.err,
                 r.out);
    HAS(&r, "bzImage: cmdline: [console=ttyS0 bz test]");
}

Test(boot, smp_guest_starts_its_aps)
{
    hvt_require_kvm();
    struct run r;
    const char *args[] = {"--kernel", HVT_GUEST_DIR "/smp32.elf", "--cpus", "4",
                          NULL};
    hvrun(&r, args);
    cr_assert_eq(r.status, 4, "status %d; stderr: %s\n%s", r.status, r.err,
                 r.out);
    HAS(&r, "smp: MADT lists 4 CPUs");
    HAS(&r, "smp: CPU 1 online");
    HAS(&r, "smp: CPU 2 online");
    HAS(&r, "smp: CPU 3 online");
    HAS(&r, "smp: 4 of 4 CPUs up");
}

Test(boot, raw_image_and_platform_exits)
{
    hvt_require_kvm();
    struct run r;
    const char *raw[] = {"--kernel", HVT_GUEST_DIR "/long64.bin", "--raw",
                         "0x8000", NULL};
    hvrun(&r, raw);
    cr_assert_eq(r.status, 0x64, "debug-exit status; stderr: %s", r.err);
    const char *reset[] = {"--kernel", HVT_GUEST_DIR "/reset64.bin", "--raw",
                           "0x8000", NULL};
    hvrun(&r, reset);
    cr_assert_eq(r.status, 0, "an i8042 reset is a clean end; stderr: %s",
                 r.err);
    const char *fault[] = {"--kernel", HVT_GUEST_DIR "/fault64.bin", "--raw",
                           "0x8000", NULL};
    hvrun(&r, fault);
    cr_assert_eq(r.status, 124, "triple fault; stderr: %s", r.err);
    cr_assert(strstr(r.err, "triple-fault"), "%s", r.err);
    const char *real[] = {"--kernel",   HVT_GUEST_DIR "/real16.bin",
                          "--raw",      "0x8000",
                          "--raw-mode", "real",
                          NULL};
    hvrun(&r, real);
    cr_assert_eq(r.status, 0x16, "real-mode raw image; stderr: %s", r.err);
}

static void expect_usage_error(const char *const *args, const char *needle)
{
    struct run r;
    hvrun(&r, args);
    cr_assert_eq(r.status, 2, "status %d for %s; stderr: %s", r.status, args[0],
                 r.err);
    cr_assert(strstr(r.err, needle), "stderr lacks \"%s\": %s", needle, r.err);
    cr_assert(strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
              "not one line: %s", r.err);
}

Test(boot, hvrun_rejects_bad_input)
{
    hvt_require_kvm();
    const char *a1[] = {"--bogus", NULL};
    expect_usage_error(a1, "unknown option '--bogus'");
    const char *a2[] = {"--mem", "64", NULL};
    expect_usage_error(a2, "--kernel FILE is required");
    const char *a3[] = {"--kernel", "/nonexistent/vmlinuz", NULL};
    expect_usage_error(a3, "cannot read kernel '/nonexistent/vmlinuz'");
    const char *a4[] = {"--kernel", "/etc/hostname", "--mem", "lots", NULL};
    expect_usage_error(a4, "--mem: 'lots' is not a number");
    const char *a5[] = {"--kernel", "/etc/hostname", "--cpus", "0", NULL};
    expect_usage_error(a5, "--cpus");
    const char *a6[] = {"--kernel", "/etc/hostname", "--serial", "tcp:1", NULL};
    expect_usage_error(a6, "--serial");
    const char *garbage = write_file("garbage", "this is not a kernel\n");
    const char *a7[] = {"--kernel", garbage, NULL};
    expect_usage_error(a7, "neither ELF nor a Linux bzImage");
    unlink(garbage);
    const char *a8[] = {"--kernel", HVT_GUEST_DIR "/long64.bin", "--raw",
                        "0x7ffff000", NULL};
    expect_usage_error(a8, "not inside guest RAM");
    const char *a9[] = {"--kernel",    HVT_GUEST_DIR "/long64.bin",
                        "--raw",       "0x8000",
                        "--numa-node", "4096",
                        NULL};
    expect_usage_error(a9, "--numa-node: node 4096 does not exist");
    const char *a10[] = {"--json", NULL};
    expect_usage_error(a10, "--json goes with --list-host");
    const char *a11[] = {"--kernel", "/etc/hostname", "--numa-node", "-1",
                         NULL};
    expect_usage_error(a11, "--numa-node");
}

Test(boot, hvrun_numa_node)
{
    hvt_require_kvm();
    struct run r;
    const char *args[] = {"--kernel",    HVT_GUEST_DIR "/long64.bin",
                          "--raw",       "0x8000",
                          "--numa-node", "0",
                          NULL};
    hvrun(&r, args);
    cr_assert_eq(r.status, 0x64, "status %d; stderr: %s", r.status, r.err);
}

Test(boot, hvrun_lists_the_host) /* no guest: needs no KVM */
{
    struct run r;
    const char *table[] = {"--list-host", NULL};
    hvrun(&r, table);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.std, "NODE") && strstr(r.std, "DISTANCES") &&
                  strstr(r.std, "PCI ADDRESS"),
              "%s", r.std);
    cr_assert(strstr(r.std, "\n0 "), "node 0 has a row:\n%s", r.std);
    DIR *d = opendir("/sys/bus/pci/devices");
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            cr_assert(strstr(r.std, e->d_name), "%s is not listed:\n%s",
                      e->d_name, r.std);
    closedir(d);

    const char *json[] = {"--list-host", "--json", NULL};
    hvrun(&r, json);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.std, "\"nodes\": [") &&
                  strstr(r.std, "\"pci_devices\": ["),
              "%s", r.std);
    const char *path = write_file("host.json", r.std);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "python3 -m json.tool %s >/dev/null", path);
    cr_assert_eq(system(cmd), 0, "not valid JSON:\n%s", r.std);
    unlink(path);
}

Test(boot, hvrun_help_documents_every_flag)
{
    hvt_require_kvm();
    FILE *p = popen(HVT_HVRUN " --help", "r");
    cr_assert_not_null(p);
    static char buf[1 << 16];
    size_t n = 0, got;
    while (n < sizeof(buf) - 1 &&
           (got = fread(buf + n, 1, sizeof(buf) - 1 - n, p)) > 0)
        n += got;
    buf[n] = 0;
    cr_assert_eq(pclose(p), 0, "hvrun --help failed (or its text outgrew "
                               "the buffer)");
    const char *flags[] = {
        "--kernel",         "--initrd",        "--cmdline", "--mem",
        "--cpus",           "--serial",        "--raw",     "--raw-mode",
        "--numa-node",      "--list-host",     "--json",    "--help",
        "--version",        "Exit status",     "--disk",    "--rng",
        "--virtio-console", "--virtio-cmdline"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        cr_assert(strstr(buf, flags[i]), "--help lacks %s", flags[i]);
    /* snapshots (tests/test_hvrun_snapshot.c) */
    const char *snapshot_flags[] = {"--snapshot",        "--snapshot-after-ms",
                                    "--keep-running",    "--restore FILE",
                                    "--restore-mode",    "--key-file",
                                    "--passphrase-file", "SIGUSR1",
                                    "--live"};
    for (size_t i = 0; i < sizeof(snapshot_flags) / sizeof(*snapshot_flags);
         i++)
        cr_assert(strstr(buf, snapshot_flags[i]), "--help lacks %s",
                  snapshot_flags[i]);
    /* migration, hand-over and network devices */
    const char *more[] = {"--net",           "--audit-sharing",
                          "--incoming",      "--migrate-to",
                          "--migrate-after-ms", "--max-downtime-ms",
                          "--bandwidth-mib", "--auto-converge",
                          "--migration-stats", "--tls-cert",
                          "--tls-key",       "--tls-ca",
                          "--handover-to",   "--handover-after-ms",
                          "--upgrade-exec",  "SIGUSR2"};
    for (size_t i = 0; i < sizeof(more) / sizeof(*more); i++)
        cr_assert(strstr(buf, more[i]), "--help lacks %s", more[i]);
}

Test(boot, hvrun_virtio_devices_on_the_command_line)
{
    hvt_require_kvm();
    char disk[] = "/tmp/hvt-vdisk-XXXXXX";
    int fd = mkstemp(disk);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 1 << 20), 0);
    close(fd);
    char ro[64];
    snprintf(ro, sizeof(ro), "%s,ro", disk);
    struct run r;
    const char *args[] = {"--kernel",  HVT_GUEST_DIR "/linux64.elf",
                          "--cmdline", "console=ttyS0",
                          "--disk",    disk,
                          "--disk",    ro,
                          "--rng",     "--virtio-cmdline",
                          NULL};
    hvrun(&r, args);
    cr_assert_eq(r.status, 64, "status %d; stderr: %s", r.status, r.err);
    HAS(&r, "cmdline: [console=ttyS0 virtio_mmio.device=512@0xd0000000:5 "
            "virtio_mmio.device=512@0xd0000200:6 "
            "virtio_mmio.device=512@0xd0000400:7]");
    /* without --virtio-cmdline they go to ACPI and the command line stays */
    const char *acpi[] = {"--kernel",  HVT_GUEST_DIR "/linux64.elf",
                          "--cmdline", "console=ttyS0",
                          "--disk",    disk,
                          "--rng",     NULL};
    hvrun(&r, acpi);
    cr_assert_eq(r.status, 64, "status %d; stderr: %s", r.status, r.err);
    HAS(&r, "cmdline: [console=ttyS0]");
    unlink(disk);
    const char *bad[] = {"--kernel", HVT_GUEST_DIR "/linux64.elf", "--disk",
                         "/nonexistent/disk.img", NULL};
    expect_usage_error(bad, "cannot open '/nonexistent/disk.img'");
    const char *badopt[] = {"--kernel", HVT_GUEST_DIR "/linux64.elf", "--disk",
                            "/tmp/x,rw", NULL};
    expect_usage_error(badopt, "is not PATH[,ro][,dma=GPA+LEN]");
}
