/* Launch latency: hvrun against a raw-KVM launcher, measured in the same
 * run (DESIGN.md section 7: a ratio against a baseline).
 *
 * Both ways boot bench/guests/exit16.S, which writes to port 0xf4 at once,
 * from a fresh process: fork, exec, open /dev/kvm, build the VM, load the
 * image, run to the exit port, tear down, exit, waitpid. The baseline is
 * bench/launch_raw.c (raw ioctls, libc only); the subject is
 *   hvrun --kernel exit16.bin --raw 0x8000 --raw-mode real --mem 64
 *         --serial none
 * which also builds what hvrun always gives a guest (UART, debug-exit,
 * i8042, CMOS, ACPI tables). The two take turns, swapping which goes first
 * every round, after a few unmeasured warm-up launches of each.
 *
 * Exit status: 0 after reporting (the ratio is reported, not enforced), 2
 * for bad options, 77 (skip) when /dev/kvm cannot be opened, 1 on any
 * other failure.
 */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "launch"
#define GUEST BENCH_GUEST_DIR "/exit16.bin"
#define WARMUP 3
#define TARGET 1.10

static char *const raw_argv[] = {LAUNCH_RAW, GUEST, NULL};
static char *hvrun_argv[] = {HVRUN,    "--kernel",   GUEST,  "--raw",
                             "0x8000", "--raw-mode", "real", "--mem",
                             "64",     "--serial",   "none", NULL};

/* One launch, fork to waitpid, in seconds; the child's exit status, or
 * -1 when it died by a signal, in *status. */
static double launch(char *const *argv, int *status)
{
    double t0 = bench_now_s();
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork");
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            bench_die("waitpid");
    double t = bench_now_s() - t0;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return t;
}

static double checked(char *const *argv)
{
    int status;
    double t = launch(argv, &status);
    if (status == 77 && argv == raw_argv) {
        fprintf(stderr, PROG ": skipped: launch_raw cannot open /dev/kvm\n");
        exit(77);
    }
    if (status != 0) {
        fprintf(stderr, PROG ": %s exited with status %d, not 0\n", argv[0],
                status);
        exit(1);
    }
    return t;
}

static void report(const char *label, double *v, size_t n)
{
    struct bench_stats s = bench_summarise(v, n);
    printf("  %-16s: %.2f ms (min %.2f, max %.2f)\n", label, s.median * 1e3,
           s.min * 1e3, s.max * 1e3);
}

int main(int argc, char **argv)
{
    long runs = 30;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: " PROG " [--runs N] [--hvrun PATH]\n"
                   "  --runs N      launches of each way (default 30)\n"
                   "  --hvrun PATH  another hvrun build to measure (default "
                   "%s)\n",
                   HVRUN);
            return 0;
        }
        if (i + 1 == argc) {
            fprintf(stderr, PROG ": '%s' needs a value (try --help)\n",
                    argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--hvrun") == 0) {
            hvrun_argv[0] = argv[++i];
        } else if (strcmp(argv[i], "--runs") == 0) {
            char *end;
            runs = strtol(argv[++i], &end, 10);
            if (*end || runs < 1 || runs > 100000) {
                fprintf(stderr, PROG ": --runs: '%s' is not in 1..100000\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, PROG ": unknown option '%s' (try --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (access("/dev/kvm", R_OK | W_OK) < 0) {
        fprintf(stderr, PROG ": skipped: cannot open /dev/kvm: %s\n",
                strerror(errno));
        return 77;
    }
    size_t n = (size_t)runs;
    double *raw = calloc(n, sizeof(*raw));
    double *hv = calloc(n, sizeof(*hv));
    double *ratio = calloc(n, sizeof(*ratio));
    if (!raw || !hv || !ratio)
        bench_die("calloc");
    for (int i = 0; i < WARMUP; i++) {
        checked(raw_argv);
        checked(hvrun_argv);
    }
    for (size_t i = 0; i < n; i++) {
        if (i % 2) {
            hv[i] = checked(hvrun_argv);
            raw[i] = checked(raw_argv);
        } else {
            raw[i] = checked(raw_argv);
            hv[i] = checked(hvrun_argv);
        }
        ratio[i] = hv[i] / raw[i];
    }
    printf("launch: %zu launches each way, alternating; fork to waitpid\n", n);
    report("raw KVM", raw, n);
    report("hvrun", hv, n);
    double raw_median = bench_summarise(raw, n).median;
    double hv_median = bench_summarise(hv, n).median;
    struct bench_stats r = bench_summarise(ratio, n);
    printf("  %-16s: %.3f of medians; per-round median %.3f (target <= "
           "%.2f)\n",
           "ratio hvrun/raw", hv_median / raw_median, r.median, TARGET);
    free(raw);
    free(hv);
    free(ratio);
    return 0;
}
