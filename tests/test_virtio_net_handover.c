/* A hand-over (--handover-to) of an hvrun whose guest is exchanging
 * traffic over --net tap=NAME, to a new hvrun --incoming: the tap's
 * descriptor itself travels (virtio-net's handover_fds), the old process
 * exits, and the traffic goes on through the same tap from the new one.
 * The guest is tests/virtio/vnet.c built with its own command
 * (vnet_hvrun.c: a datagram to the host about every 2 ms, answering ARP
 * and echo), its device in the fourth virtio slot (three small disks
 * before it), where the library suites place it. */
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
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifdef HVT_HVRUN

TestSuite(virtio_net_handover, .init = netns_up, .fini = vnt_fini,
          .timeout = 240);

/* The transmit holding queue's bound (src/devices/virtio/net.h). */
#define HOLD_BOUND 256u

/* Gratuitous ARP (sender address = target address) or RARP frames,
 * broadcast, from the guest's MAC, read off @sock so far. */
static int cap_fd = -1, grat_total;

static void read_capture(void)
{
    for (;;) {
        uint8_t f[256];
        ssize_t k = recv(cap_fd, f, sizeof(f), MSG_DONTWAIT);
        if (k < 0)
            return;
        if (k < 42)
            continue;
        static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
        const uint8_t *a = f + 14;
        bool grat = type == 0x8035 ||
                    (type == 0x0806 && memcmp(a + 14, a + 24, 4) == 0);
        if (grat && memcmp(f, bcast, 6) == 0 &&
            memcmp(f + 6, guest_mac, 6) == 0 &&
            memcmp(a + 8, guest_mac, 6) == 0)
            grat_total++;
    }
}

static int capture(void)
{
    int cap = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    cr_assert_geq(cap, 0);
    struct sockaddr_ll a = {.sll_family = AF_PACKET,
                            .sll_protocol = htons(ETH_P_ALL),
                            .sll_ifindex = (int)if_nametoindex(TAP)};
    cr_assert_eq(bind(cap, (struct sockaddr *)&a, sizeof(a)), 0);
    int big = 1 << 22;
    setsockopt(cap, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    return cap;
}

/* Drains @s into @c for @ms. */
static void drain_for(int s, struct udp_count *c, int ms)
{
    for (double end = now() + ms / 1000.0; now() < end;) {
        struct pollfd p = {s, POLLIN, 0};
        poll(&p, 1, 20);
        udp_drain(s, c);
        read_capture();
    }
}

/* hvrun without CAP_NET_ADMIN (dropped from the bounding set): it may not
 * open a tap another user owns by name (test_virtio_net_hvrun.c's
 * tap_without_permission), only use a descriptor it is given. */
static pid_t spawn_unprivileged(const struct scratch *s, const char *tag,
                                const char *const *args)
{
    char out[128], err[128];
    snprintf(out, sizeof(out), "%s/%s.out", s->dir, tag);
    snprintf(err, sizeof(err), "%s/%s.err", s->dir, tag);
    const char *argv[32] = {"setpriv", "--bounding-set", "-net_admin", "--",
                            HVT_HVRUN};
    int n = 5;
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, "/usr/bin/setpriv", &fa, NULL,
                             (char **)argv, environ),
                 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* The destination runs without CAP_NET_ADMIN and the tap is another
 * user's: it cannot open the tap by name, so traffic after the hand-over
 * proves the descriptor itself came over. */
Test(virtio_net_handover, tap_travels_and_traffic_goes_on)
{
    sh("ip tuntap del dev " TAP " mode tap");
    sh("ip tuntap add dev " TAP " mode tap user 65534");
    sh("ip addr add " HOST_IP "/24 dev " TAP);
    sh("ip link set " TAP " up");
    struct scratch s;
    scratch_open(&s);
    const char *image = HVT_GUEST_DIR "/vnet_hvrun.bin";
    static const uint8_t zero[4096];
    const char *disks[3] = {in(&s, "d0"), in(&s, "d1"), in(&s, "d2")};
    for (int i = 0; i < 3; i++)
        write_bytes(disks[i], zero, sizeof(zero));
    int cap = cap_fd = capture();
    int udp = udp_rx_sock();

    const char *sock = in(&s, "ho.sock");
    char to[160];
    snprintf(to, sizeof(to), "unix:%s", sock);
    const char *dst[] = {"--incoming", to, "--serial", "none", NULL};
    pid_t d = spawn_unprivileged(&s, "dst", dst);
    wait_for_path(sock);
    const char *src[] = {"--kernel",
                         image,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--serial",
                         "none",
                         "--disk",
                         disks[0],
                         "--disk",
                         disks[1],
                         "--disk",
                         disks[2],
                         "--net",
                         "tap=" TAP ",mac=52:54:00:12:34:56",
                         "--handover-to",
                         to,
                         "--handover-after-ms",
                         "3000",
                         NULL};
    pid_t o = spawn_hvrun(&s, "src", NULL, src);

    /* before: the guest's stream reaches the host, and it answers pings */
    struct udp_count c = {0};
    for (double end = now() + 20; c.n < 50;) {
        if (now() >= end) {
            char *err = output(&s, "src", "err");
            cr_assert_fail("no stream from the guest before the hand-over "
                           "(%u datagrams); source stderr: %s",
                           c.n, err);
        }
        drain_for(udp, &c, 100);
    }
    cr_assert_geq(host_ping(3, 2000), 1, "no echo reply before");
    drain_for(udp, &c, 20);
    int grat_before = grat_total;
    /* the old hvrun hands over and exits */
    for (double end = now() + WAIT_S;;) {
        if (now() >= end) {
            char *e1 = output(&s, "src", "err"), *e2 = output(&s, "dst", "err");
            kill(o, SIGKILL);
            kill(d, SIGKILL);
            cr_assert_fail("the source did not hand over and exit; source "
                           "stderr: %s; destination stderr: %s",
                           e1, e2);
        }
        int st;
        pid_t w = waitpid(o, &st, WNOHANG);
        if (w == o) {
            char *err = output(&s, "src", "err");
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "source status 0x%x: %s", st, err);
            free(err);
            break;
        }
        drain_for(udp, &c, 20);
    }
    uint32_t at_switch = c.n;
    drain_for(udp, &c, 200);
    /* after: the stream goes on through the same tap, the guest still
     * answers the host, and no datagram went missing beyond the bound */
    for (double end = now() + WAIT_S; c.n < at_switch + 100;) {
        cr_assert(now() < end,
                  "the stream stopped at the hand-over: %u before, %u "
                  "after",
                  at_switch, c.n - at_switch);
        drain_for(udp, &c, 100);
    }
    int pongs = host_ping(3, 2000);
    drain_for(udp, &c, 100);
    uint32_t lost = c.max - c.n;
    int grat = grat_total - grat_before;
    cr_log_info("hand-over with traffic: %u datagrams (%u after the "
                "switch), %u lost, %u gaps, %d gratuitous ARP, %d/3 echo "
                "replies after",
                c.n, c.n - at_switch, lost, c.gaps, grat, pongs);
    fprintf(stderr,
            "hand-over with traffic: %u datagrams (%u after the switch), %u "
            "lost, %u gaps, %d gratuitous ARP, %d/3 echo replies after\n",
            c.n, c.n - at_switch, lost, c.gaps, grat, pongs);
    cr_assert_eq(grat_before, 0, "a gratuitous ARP before the hand-over");
    cr_assert_geq(grat, 1, "no gratuitous ARP for the guest after the "
                           "hand-over");
    cr_assert_geq(pongs, 1, "the guest stopped answering pings");
    cr_assert_leq(lost, HOLD_BOUND, "%u datagrams lost", lost);

    kill(d, SIGTERM);
    int st = wait_exit(d, WAIT_S);
    char *err = output(&s, "dst", "err");
    cr_assert(WIFEXITED(st), "status 0x%x: %s", st, err);
    cr_assert_str_empty(err, "destination stderr: %s", err);
    free(err);
    close(udp);
    close(cap);
    scratch_close(&s);
}

#endif
