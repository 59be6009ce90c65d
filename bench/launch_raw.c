/* The baseline of bench/launch.c: a whole launch by raw KVM ioctls, as
 * small as a launcher can be. The process starts (linked against libc
 * only, not libhvcore), opens /dev/kvm, creates a VM as libhvcore does on
 * KVM (raw_kvm.c: TSS, identity map, irqchip, PIT, memfd RAM, CPUID), loads
 * the flat image at 0x8000, runs vCPU 0 from there in real mode until the
 * guest writes to port 0xf4, tears it down and exits 0.
 *
 * usage: launch_raw IMAGE
 * Exit status: 0 when the guest reached port 0xf4, 77 when /dev/kvm cannot
 * be opened, 1 on any other failure (with a message).
 */
#define _GNU_SOURCE
#include "raw_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* raw_kvm.c's only need from bench_util.c, which would pull libhvcore in. */
void bench_die(const char *what)
{
    fprintf(stderr, BENCH_PROG ": %s: %s\n", what, strerror(errno));
    exit(1);
}

static void load(const char *path, struct guest *g)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bench_die(path);
    ssize_t n = read(fd, g->code, sizeof(g->code));
    if (n <= 0) {
        fprintf(stderr, BENCH_PROG ": %s: empty or unreadable\n", path);
        exit(1);
    }
    g->len = (size_t)n;
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: " BENCH_PROG " IMAGE\n");
        return 2;
    }
    static struct guest g;
    load(argv[1], &g);
    struct raw_kvm k;
    int r = raw_open(&k);
    if (r < 0) {
        fprintf(stderr, BENCH_PROG ": cannot open /dev/kvm: %s\n",
                strerror(-r));
        return 77;
    }
    struct raw_vm v;
    raw_vm_create(&k, &v, &g);
    raw_start(&v, 0);
    raw_run(&v);
    raw_vm_destroy(&v);
    raw_close(&k);
    return 0;
}
