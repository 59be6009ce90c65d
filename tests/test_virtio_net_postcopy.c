/* Post-copy live migration of a guest taking UDP datagrams from the host
 * (issue 16): the source's device sits on tap vnt0, the destination's (a
 * forked child, restoring through the library) on vnt1, both ports of a
 * bridge that carries the host's address. After the one pre-copy round,
 * the host's datagrams land in every receive buffer of the source's
 * guest, so those pages are missing on the destination; then the guest's
 * MAC is pinned to vnt1 and the host sends on, so the destination's
 * device finds its datagrams waiting as it starts, while pages are still
 * missing.
 *
 * The receive buffers sit at the top of guest memory, so the source's
 * push (in address order) reaches them last, and the push pauses after
 * each run (post-copy's test knob, hvi_pc_test_push_pause_us): the device
 * meets buffers whose pages have not come, sets them aside (faulty-buffer
 * events, asserted > 0), asks for them and goes on. Asserted: nothing
 * dropped (fewer datagrams than the host queue holds), the guest sees
 * every datagram in order, and no vCPU or event thread is held up 10 ms
 * or more (see "Held up" below for how that is told from the noise of a
 * loaded host). */
#include "stall_probe.h"
#include "vnet_util.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(virtio_net_postcopy, .init = netns_up, .fini = vnt_fini,
          .timeout = 240);

#define TAP2 "vnt1"
#define BEFORE 20u /* datagrams before the migration */
#define ROUND 64u  /* after the pre-copy round: two rings' worth */
#define AFTER 128u /* to the destination: below the host queue's 256 */
#define TOTAL (BEFORE + ROUND + AFTER)
/* The receive buffers at the top of the guest's 4 MiB, and below them,
 * above the rings (0x200000), pages the host dirties after the round, so
 * that post-copy's push (in address order) reaches the buffers last. */
#define RX_BASE 0x3f0000u
#define FILL_BASE 0x2b0000u
#define FILL_LEN (RX_BASE - FILL_BASE)
/* The push pauses this long after each run of 4 pages: ~340 pages go in
 * ~90 ms, so the buffers' pages (the last) come well after the device
 * started on the waiting datagrams. Requested pages are not delayed. */
#define PUSH_PAUSE_US 1000u
#define HELD_UP_NS 10000000ull /* 10 ms */

/* Post-copy's test knob (src/migration/postcopy_send.c; this suite links
 * the static library). */
extern unsigned hvi_pc_test_push_pause_us;

struct report {
    int receive, done;
    char why[256];
    struct vn_out o;
    hvc_virtio_net_stats s;
    hvc_postcopy_stats pc;
    /* held up: the vCPU thread's times over the measure */
    uint64_t vcpu_wall, vcpu_cpu, vcpu_rq, vcpu_asleep;
    uint64_t vcpu_windows, vcpu_block_max; /* the 1 ms watch */
    /* the event-thread probe */
    uint64_t ev_n, ev_late_max, ev_late_rq, ev_net_max;
    int probe_err;
};

static void bridge_up(void)
{
    sh("ip addr del " HOST_IP "/24 dev " TAP);
    sh("ip tuntap add dev " TAP2 " mode tap");
    sh("ip link add br0 type bridge stp_state 0");
    sh("ip link set " TAP " master br0");
    sh("ip link set " TAP2 " master br0");
    sh("ip addr add " HOST_IP "/24 dev br0");
    sh("ip link set " TAP2 " up");
    sh("ip link set br0 up");
}

static int dst_setup(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)user, (void)len;
    hvc_virtio_net_options o = HVC_VIRTIO_NET_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){VN_BASE, VN_IRQ, 0};
    o.tap = TAP2;
    o.name = "net0";
    return hvc_virtio_net_create(vm, &o, (hvc_device **)opaque);
}

static void put_all(int fd, const void *p, size_t n)
{
    for (size_t k = 0; k < n;) {
        ssize_t w = write(fd, (const char *)p + k, n - k);
        if (w <= 0)
            _exit(40);
        k += (size_t)w;
    }
}

/* Whether @dev has a carrier: a tap has one while a descriptor holds it.
 * (Not through /sys, which shows the namespace it was mounted in.) */
static bool carrier(const char *dev)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    struct ethtool_value v = {.cmd = ETHTOOL_GLINK};
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
    ifr.ifr_data = (char *)&v;
    bool up = ioctl(s, SIOCETHTOOL, &ifr) == 0 && v.data;
    close(s);
    return up;
}

static void dst_log(void *opaque, int level, const char *msg)
{
    (void)opaque, (void)level;
    fprintf(stderr, "destination: %s\n", msg);
}

struct dvcpu {
    hvc_vcpu *v;
    int done;
    atomic_int quit;
    /* the thread's own, set before it runs the guest */
    pid_t tid;
    clockid_t clk;
    struct sp_times t0;
    int err;
    atomic_int ready;
};

static void *dst_run(void *arg)
{
    struct dvcpu *d = arg;
    d->err = sp_self(&d->t0, &d->tid, &d->clk);
    atomic_store(&d->ready, 1);
    for (;;) {
        const hvc_exit *e;
        if (hvc_vcpu_run(d->v, &e) < 0)
            return NULL;
        if (e->reason == HVC_EXIT_KICK && atomic_load(&d->quit))
            return NULL;
        if (e->reason == HVC_EXIT_PIO && e->u.io.is_write &&
            e->u.io.port == PORT_DONE) {
            d->done = *(uint8_t *)e->u.io.data;
            return NULL;
        }
    }
}

/* The destination (a child: no Criterion asserts): receives, runs the
 * guest until it counted TOTAL datagrams (or 30 s), reports. */
static void destination(int sock, int rep_fd)
{
    struct report r = {0};
    r.s.size = sizeof(r.s);
    r.pc.size = sizeof(r.pc);
    r.done = -1;
    hvc_hypervisor *hv;
    hvc_vm *vm = NULL;
    hvc_device *net = NULL;
    if (hvc_hypervisor_open("kvm", &hv) < 0)
        _exit(30);
    hvc_set_log(HVC_LOG_ERROR, dst_log, NULL);
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = dst_setup;
    ro.opaque = &net;
    r.receive = hvc_vm_migrate_receive(hv, sock, &ro, &vm);
    if (r.receive < 0) {
        snprintf(r.why, sizeof(r.why), "%s", hvc_last_error());
        put_all(rep_fd, &r, sizeof(r));
        _exit(0);
    }
    /* The guest's loop-gap measure starts over here (not across the
     * switchover's downtime), before its vCPU runs. */
    uint32_t epoch = 1;
    hvc_vm_write(vm, VT_DATA_IN + offsetof(struct vn_cmd, gap_epoch), &epoch,
                 4);
    struct sp_probe probe;
    r.probe_err = sp_probe_start(&probe, vm, 2000);
    struct dvcpu d = {0};
    d.done = -1;
    pthread_t th;
    if (hvc_vm_get_vcpu(vm, 0, &d.v) < 0 ||
        pthread_create(&th, NULL, dst_run, &d) != 0)
        _exit(31);
    while (!atomic_load(&d.ready))
        usleep(100);
    struct sp_watch watch;
    if (d.err < 0 || sp_watch_start(&watch, d.tid, d.clk, 1000) < 0)
        r.probe_err = -EIO;
    for (int t = 0; t < 3000; t++) {
        hvc_vm_read(vm, VT_DATA_OUT, &r.o, sizeof(r.o));
        if (r.o.udp_rx >= TOTAL)
            break;
        usleep(10000);
    }
    hvc_vm_postcopy_wait(vm, 30000);
    /* The measure ends here: post-copy is over and the datagrams in. */
    struct sp_times t1;
    if (r.probe_err == 0) {
        sp_watch_stop(&watch);
        r.vcpu_windows = watch.windows;
        r.vcpu_block_max = watch.block_max_ns;
        if (watch.err < 0)
            r.probe_err = watch.err;
    }
    if (d.err < 0 || sp_thread(d.tid, d.clk, &t1) < 0)
        r.probe_err = -EIO;
    r.vcpu_wall = t1.wall - d.t0.wall;
    r.vcpu_cpu = t1.cpu - d.t0.cpu;
    r.vcpu_rq = t1.run_delay - d.t0.run_delay;
    r.vcpu_asleep = sp_asleep(&d.t0, &t1);
    if (r.probe_err == 0) {
        sp_probe_stop(&probe);
        r.probe_err = probe.err;
        r.ev_n = probe.n;
        r.ev_late_max = probe.late_max_ns;
        r.ev_late_rq = probe.late_rd_ns;
        r.ev_net_max = probe.net_max_ns;
    }
    uint32_t one = 1;
    hvc_vm_write(vm, VT_DATA_IN + offsetof(struct vn_cmd, stop), &one, 4);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    if (pthread_timedjoin_np(th, NULL, &dl) != 0) {
        atomic_store(&d.quit, 1);
        hvc_vcpu_kick(d.v);
        pthread_join(th, NULL);
    }
    r.done = d.done;
    hvc_vm_read(vm, VT_DATA_OUT, &r.o, sizeof(r.o));
    hvc_virtio_net_get_stats(net, &r.s);
    hvc_vm_postcopy_stats(vm, &r.pc);
    put_all(rep_fd, &r, sizeof(r));
    _exit(0);
}

struct host {
    int tx;
    uint32_t seq;
    atomic_int switching; /* the round's datagrams are in */
};

/* After the pre-copy round (the source's guest still runs): ROUND
 * datagrams into the source's guest, until it counted them, so that every
 * receive buffer is written after the round sent it. */
static int after_round(void *opaque, const hvc_migrate_stats *st)
{
    struct host *h = opaque;
    (void)st;
    if (h->seq != BEFORE)
        return 0;
    for (uint32_t i = 0; i < ROUND; i++) {
        udp_send(h->tx, ++h->seq);
        usleep(1000);
    }
    struct vn_out o;
    for (int w = 0; w < 5000; w += 10) {
        hvc_vm_read(g.v.t.vm, VT_DATA_OUT, &o, sizeof(o));
        if (o.udp_rx >= h->seq)
            break;
        usleep(10000);
    }
    static uint8_t fill[FILL_LEN];
    memset(fill, 0xa5, sizeof(fill));
    if (hvc_vm_write(g.v.t.vm, FILL_BASE, fill, sizeof(fill)) < 0 ||
        hvc_vm_mark_dirty(g.v.t.vm, FILL_BASE, sizeof(fill)) < 0)
        return -EIO;
    /* from now on the guest's frames go to the destination's tap only,
     * where they wait for its device */
    sh("bridge fdb replace 52:54:00:12:34:56 dev " TAP2 " master static");
    atomic_store(&h->switching, 1);
    return 0;
}

/* The host's datagrams to the destination: AFTER of them, from the end
 * of the pre-copy round on, into the destination's tap (its device was
 * created when the stream began, and reads it once its state loaded). */
static void *to_destination(void *arg)
{
    struct host *h = arg;
    for (int t = 0; t < 30000 && !atomic_load(&h->switching); t++)
        usleep(1000);
    for (uint32_t i = 0; i < AFTER; i++) {
        udp_send(h->tx, ++h->seq);
        usleep(200);
    }
    return NULL;
}

Test(virtio_net_postcopy, receive_traffic_across_the_switchover)
{
    bridge_up();
    cr_assert(!carrier(TAP2), "vnt1 has a carrier before anyone holds it");
    int sv[2], rep[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(pipe(rep), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        close(rep[0]);
        destination(sv[1], rep[1]);
    }
    close(sv[1]);
    close(rep[1]);

    struct host h = {0};
    h.tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(h.tx, 0);
    open_guest(&g, VN_TRAFFIC, VN_F_MAC | VN_F_MRG_RXBUF | VN_F_STATUS, 0,
               3000, 0);
    g.cmd.rx_base = RX_BASE;
    HVT_OK(hvc_vm_write(g.v.t.vm, VT_DATA_IN, &g.cmd, sizeof(g.cmd)));
    start(&g);
    struct vn_out o;
    for (uint32_t i = 0; i < BEFORE; i++) {
        udp_send(h.tx, ++h.seq);
        usleep(2000);
    }
    WAIT_GUEST(&g, o, 30000, o.udp_rx >= BEFORE);
    cr_assert_eq(o.udp_rx, BEFORE, "the source's guest got %u of %u",
                 o.udp_rx, BEFORE);

    hvc_migrate_options mo = HVC_MIGRATE_OPTIONS_INIT;
    mo.flags = HVC_MIGRATE_POSTCOPY;
    mo.postcopy_after_rounds = 1;
    mo.progress = after_round;
    mo.opaque = &h;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    hvi_pc_test_push_pause_us = PUSH_PAUSE_US;
    pthread_t sender;
    cr_assert_eq(pthread_create(&sender, NULL, to_destination, &h), 0);
    int r = hvc_vm_migrate_send(g.v.t.vm, sv[0], &mo, &st);
    hvi_pc_test_push_pause_us = 0;
    pthread_join(sender, NULL);
    cr_assert_eq(r, 0, "migrate_send: %s", hvc_last_error());
    cr_assert_eq(st.postcopy, 1);
    cr_assert_eq(h.seq, TOTAL, "the host sent %u datagrams", h.seq);

    struct report d;
    ssize_t k = read(rep[0], &d, sizeof(d));
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert_eq(k, (ssize_t)sizeof(d), "the destination reported nothing "
                                        "(status 0x%x)",
                 status);
    cr_assert_eq(d.receive, 0, "receive: %s", d.why);
    double hz = (double)tsc_hz();
    double gap_ms = (double)d.o.gap_max * 1e3 / hz;
    fprintf(stderr,
            "post-copy with receive traffic: %llu pages left for post-copy "
            "(%llu requested, %llu pushed), %llu ms; destination device: "
            "%llu faulty-buffer events, %llu resolved, wait max %llu us, "
            "%llu rx drops, %llu queued; guest: %u of %u datagrams, %u "
            "gaps (done %d, dev rx %llu)\n",
            (unsigned long long)st.postcopy_pages,
            (unsigned long long)st.postcopy_pages_requested,
            (unsigned long long)st.postcopy_pages_pushed,
            (unsigned long long)st.postcopy_ms,
            (unsigned long long)d.s.faulty_events,
            (unsigned long long)d.s.faulty_resolved,
            (unsigned long long)d.s.faulty_wait_ns_max / 1000,
            (unsigned long long)d.s.rx_dropped,
            (unsigned long long)d.s.rx_queued, d.o.udp_rx, TOTAL,
            d.o.udp_rx_gaps, d.done, (unsigned long long)d.s.rx_packets);
    fprintf(stderr,
            "held up: page waits max %llu us (median %llu, p99 %llu, %llu "
            "faults); vCPU thread over %.1f ms: %.2f ms on CPU, %.2f ms on "
            "a run queue, %.2f ms asleep, its longest block at most %.2f ms "
            "(%llu windows); guest loop gap max %.2f ms (pass "
            "%u of %u); event thread: %llu probes, latest %.2f ms (%.2f ms "
            "of it on a run queue), %.2f ms net of the run queue\n",
            (unsigned long long)d.pc.fault_max_us,
            (unsigned long long)d.pc.fault_median_us,
            (unsigned long long)d.pc.fault_p99_us,
            (unsigned long long)d.pc.faults, d.vcpu_wall / 1e6,
            d.vcpu_cpu / 1e6, d.vcpu_rq / 1e6, d.vcpu_asleep / 1e6,
            d.vcpu_block_max / 1e6, (unsigned long long)d.vcpu_windows, gap_ms,
            d.o.gap_max_loop, d.o.gap_loops, (unsigned long long)d.ev_n,
            d.ev_late_max / 1e6, d.ev_late_rq / 1e6, d.ev_net_max / 1e6);
    cr_assert_eq(d.pc.state, HVC_POSTCOPY_COMPLETE);
    cr_assert_eq(d.done, VT_OK, "the destination's guest ended with %d",
                 d.done);
    /* The device met buffers whose pages had not come (the push reaches
     * them last, and late), set them aside, and every one was resolved. */
    cr_assert_gt(d.s.faulty_events, 0,
                 "no receive buffer was missing when the device took it");
    cr_assert_eq(d.s.faulty_resolved, d.s.faulty_events);
    /* AFTER (128) datagrams is below the host queue's 256: none dropped,
     * and the guest saw every one, in order. */
    cr_assert_lt(AFTER, 256u);
    cr_assert_eq(d.s.rx_dropped, 0);
    cr_assert_eq(d.o.udp_rx, TOTAL, "the guest saw %u of %u datagrams",
                 d.o.udp_rx, TOTAL);
    cr_assert_eq(d.o.udp_rx_gaps, 0);
    cr_assert_eq(d.o.udp_rx_max, TOTAL);

    /* Held up. This host is loaded (2 cores shared with builds), so a
     * thread may wait on a run queue for 10 ms or more without anything
     * of ours holding it; each measure below takes the scheduler's part
     * out, so what is asserted is blocking (on a page, a lock), not
     * noise:
     *  1. pages: the library's post-copy statistics time every page of
     *     the set from its first request (a fault, an accessor, the
     *     device's question) to it being in place; a thread waiting on a
     *     page (a vCPU or the event thread inside a userfault, a worker
     *     or accessor in hvi_postcopy_fetch) asked no earlier than that
     *     first request, so fault_max bounds every such wait;
     *  2. the vCPU: its guest polls and never halts, so its thread sleeps
     *     only when blocked; wall - CPU - run-queue time is its time
     *     asleep. Over the whole measure that bounds its longest block;
     *     so does the watch's (stall_probe.h: 1 ms windows, a block
     *     bounded by the run of windows it kept asleep), which stays
     *     tight when many short blocks add up; the smaller is asserted;
     *  3. the event thread: a watched pipe written every 2 ms with the
     *     time; the callback's lateness less the event thread's run-queue
     *     wait since its previous call (the prober's own delay between
     *     taking the time and writing stays in: it only errs high);
     *  4. the guest's own view, its longest gap between two passes of
     *     its loop: that includes the vCPU thread's run-queue waits, so
     *     the bound is 10 ms plus all of them (a gap cannot hold more run
     *     queue wait than there was), plus one pass's own work. */
    cr_assert_eq(d.probe_err, 0, "a probe failed");
    cr_assert_gt(d.pc.faults, 0, "no page was waited for");
    cr_assert_lt(d.pc.fault_max_us * 1000, HELD_UP_NS,
                 "a page was waited for %llu us",
                 (unsigned long long)d.pc.fault_max_us);
    cr_assert_gt(d.vcpu_windows, 10);
    uint64_t block =
        d.vcpu_asleep < d.vcpu_block_max ? d.vcpu_asleep : d.vcpu_block_max;
    cr_assert_lt(block, HELD_UP_NS,
                 "the vCPU thread may have been blocked %.2f ms (asleep "
                 "%.2f ms in all)",
                 block / 1e6, d.vcpu_asleep / 1e6);
    cr_assert_gt(d.ev_n, 10, "the event-thread probe ran %llu times",
                 (unsigned long long)d.ev_n);
    cr_assert_lt(d.ev_net_max, HELD_UP_NS,
                 "the event thread was held up %.2f ms beyond its run-"
                 "queue wait",
                 d.ev_net_max / 1e6);
    cr_assert_gt(d.o.gap_loops, 100);
    cr_assert_lt(gap_ms, 10.0 + d.vcpu_rq / 1e6 + 2.0,
                 "the guest went %.2f ms without a pass of its loop", gap_ms);
    close(h.tx);
    close(sv[0]);
    close(rep[0]);
}
