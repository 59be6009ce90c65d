/* hvrun --net tap=NAME[,mac=MAC][,queues=N][,dma=GPA+LEN], in a network
 * namespace of the test's own with a tap (vnet_util.h): malformed values,
 * a missing tap, a busy one and one without permission end hvrun with one
 * line and status 2; a snapshot of a guest with a network device restores
 * with the tap opened again by name, and an announce for the guest's MAC
 * is seen on the tap after the restore. */
#include "hvrun_util.h"
#include "vnet_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HVT_HVRUN

TestSuite(virtio_net_hvrun, .init = netns_up, .fini = vnt_fini, .timeout = 240);

static void expect_usage(const struct scratch *s, const char *net,
                         const char *needle)
{
    const char *args[] = {"--kernel", COUNTER, "--raw", "0x8000", "--mem",
                          "64",       "--net", net,     NULL};
    int st = run_hvrun(s, "err", args);
    char *err = output(s, "err", "err");
    cr_assert_eq(st, 2, "--net %s: status %d; stderr %s", net, st, err);
    assert_one_line(err, needle);
    free(err);
}

Test(virtio_net_hvrun, bad_values_and_taps)
{
    struct scratch s;
    scratch_open(&s);
    expect_usage(&s, "vnt0", "is not tap=NAME");
    expect_usage(&s, "mac=52:54:00:00:00:01", "needs tap=NAME");
    expect_usage(&s, "tap=", "tap= needs an interface name");
    expect_usage(&s, "tap=abcdefghijklmnopq", "1..15 bytes");
    expect_usage(&s, "tap=vnt0,mac=01:00:5e:00:00:01", "multicast");
    expect_usage(&s, "tap=vnt0,mac=52:54:00", "six hex bytes");
    expect_usage(&s, "tap=vnt0,queues=2", "queues='2' is not 1");
    expect_usage(&s, "tap=vnt0,dma=0x1000", "is not dma=GPA+LEN");
    expect_usage(&s, "tap=vnt0,speed=10", "is not tap=NAME");
    expect_usage(&s, "tap=nosuchtap7", "nosuchtap7");
    expect_usage(&s, "tap=nosuchtap7", "no such interface");
    /* a tap this process holds is busy for hvrun */
    vt_open(&g.v, "vnet");
    add_net(&g, 0);
    expect_usage(&s, "tap=vnt0", "busy");
    scratch_close(&s);
}

/* A tap owned by another user, and hvrun without CAP_NET_ADMIN (dropped
 * from the bounding set before it runs, so root keeps /dev/kvm but may
 * not attach to a tap it does not own): one line naming the tap, status
 * 2. */
Test(virtio_net_hvrun, tap_without_permission)
{
    sh("ip tuntap add dev vnt1 mode tap user 65534");
    struct scratch s;
    scratch_open(&s);
    const char *err_path = in(&s, "perm.err");
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDWR);
        if (fd < 0 || null < 0)
            _exit(126);
        dup2(null, 0);
        dup2(null, 1);
        dup2(fd, 2);
        execl("/usr/bin/setpriv", "setpriv", "--bounding-set", "-net_admin",
              "--", HVT_HVRUN, "--kernel", COUNTER, "--raw", "0x8000", "--mem",
              "64", "--net", "tap=vnt1", (char *)NULL);
        _exit(127);
    }
    int st = wait_exit(pid, WAIT_S);
    char *err = slurp(err_path, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status 0x%x: %s", st,
              err);
    assert_one_line(err, "vnt1");
    cr_assert(strstr(err, "not permitted"), "%s", err);
    free(err);
    scratch_close(&s);
}

/* RARP or ARP frames on the tap whose sender hardware address is @mac. */
static int announces_seen(int sock, const uint8_t *mac)
{
    int n = 0;
    for (;;) {
        struct pollfd p = {sock, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            return n;
        uint8_t f[256];
        ssize_t k = recv(sock, f, sizeof(f), 0);
        uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
        if (k >= 42 && (type == 0x8035 || type == 0x0806) &&
            memcmp(f + 6, mac, 6) == 0 && memcmp(f + 14 + 8, mac, 6) == 0)
            n++;
    }
}

Test(virtio_net_hvrun, snapshot_restore_reopens_tap_and_announces)
{
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
    struct scratch s;
    scratch_open(&s);
    int cap = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    cr_assert_geq(cap, 0);
    struct sockaddr_ll a = {.sll_family = AF_PACKET,
                            .sll_protocol = htons(ETH_P_ALL),
                            .sll_ifindex = (int)if_nametoindex(TAP)};
    cr_assert_eq(bind(cap, (struct sockaddr *)&a, sizeof(a)), 0);
    const char *snap = in(&s, "net.snap");
    const char *net[] = {"--net", "tap=vnt0,mac=52:54:00:ab:cd:ef", NULL};
    char *tail;
    long k = snapshot_counter(&s, snap, "300", net, &tail);
    cr_assert_eq(announces_seen(cap, mac), 0, "an announce before any restore");
    /* no --net: the device and its tap come from the snapshot */
    restore_and_check(&s, snap, NULL, k, tail, SIGTERM);
    cr_assert_geq(announces_seen(cap, mac), 1,
                  "no announce for the guest's MAC after the restore");
    /* --net again, naming the tap */
    const char *again[] = {"--net", "tap=vnt0", NULL};
    restore_and_check(&s, snap, again, k, tail, SIGTERM);
    cr_assert_geq(announces_seen(cap, mac), 1);
    /* a count that differs from the snapshot's is refused */
    const char *two[] = {"--restore", snap,       "--net", "tap=vnt0",
                         "--net",     "tap=vnt0", NULL};
    int st = run_hvrun(&s, "two", two);
    char *err = output(&s, "two", "err");
    cr_assert_eq(st, 2, "status %d: %s", st, err);
    assert_one_line(err, "2 --net given; the snapshot has 1");
    free(err);
    free(tail);
    close(cap);
    scratch_close(&s);
}

/* A live migration between two hvrun processes on this host: the
 * destination finds the tap held by the source, creates the device
 * detached, attaches it once the source has exited, and announces the
 * guest's MAC on the tap; the guest counts on without a gap. */
Test(virtio_net_hvrun, live_migration_takes_the_tap_over)
{
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0x02};
    struct scratch s;
    scratch_open(&s);
    int cap = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    cr_assert_geq(cap, 0);
    struct sockaddr_ll a = {.sll_family = AF_PACKET,
                            .sll_protocol = htons(ETH_P_ALL),
                            .sll_ifindex = (int)if_nametoindex(TAP)};
    cr_assert_eq(bind(cap, (struct sockaddr *)&a, sizeof(a)), 0);
    const char *sock = in(&s, "mig.sock");
    char ser_dst[160], ser_src[160], to[160];
    snprintf(ser_dst, sizeof(ser_dst), "file:%s", in(&s, "dst.txt"));
    snprintf(ser_src, sizeof(ser_src), "file:%s", in(&s, "src.txt"));
    snprintf(to, sizeof(to), "unix:%s", sock);
    const char *dst[] = {"--incoming", to, "--serial", ser_dst, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    wait_for_path(sock);
    const char *src[] = {"--kernel",
                         COUNTER,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--serial",
                         ser_src,
                         "--net",
                         "tap=vnt0,mac=52:54:00:ab:cd:02",
                         "--migrate-to",
                         to,
                         "--migrate-after-ms",
                         "200",
                         NULL};
    cr_assert_eq(run_hvrun(&s, "src", src), 0);
    char *text = slurp(in(&s, "src.txt"), NULL);
    long last = last_count(text, NULL);
    free(text);
    cr_assert_gt(last, 0);
    wait_for_count(in(&s, "dst.txt"), last + 20, WAIT_S, d);
    int seen = 0;
    for (double end = now() + 10; !seen && now() < end;)
        seen = announces_seen(cap, mac);
    kill(d, SIGTERM);
    int st = wait_exit(d, WAIT_S);
    char *err = output(&s, "dst", "err");
    cr_assert_eq(WEXITSTATUS(st), 130, "status 0x%x: %s", st, err);
    cr_assert(seen,
              "no announce for the guest after the migration; "
              "destination stderr: %s",
              err);
    cr_assert_str_empty(err, "destination stderr: %s", err);
    free(err);
    close(cap);
    scratch_close(&s);
}

#endif
