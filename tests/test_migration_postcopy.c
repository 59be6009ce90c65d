/* Post-copy live migration (HVC_MIGRATE_POSTCOPY) to a forked child over
 * a socket pair: the counter guest goes on with the next number and guest
 * RAM hashes the same on both sides; a guest touching pages in random
 * order on the destination finds every page as the source left it while
 * the rest arrives; a link cut during post-copy is reported on both sides
 * with the pages lost, and the destination's guest stops; a source that
 * sends a page outside the plan is refused. (Over TCP and TLS:
 * test_migration_postcopy_tcp.c.) */
#include "postcopy_util.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(migration_postcopy, .timeout = 120);

/* FNV-1a over guest memory [gpa, gpa+len), read through the host mapping
 * (on a post-copy destination, each missing page faults and is fetched). */
static uint64_t hash_range(hvc_vm *vm, uint64_t gpa, uint64_t len)
{
    hvc_memory_region *reg;
    if (hvc_vm_find_memory(vm, gpa, &reg) < 0)
        return 0;
    const uint64_t *p =
        (const uint64_t *)((uint8_t *)hvc_memory_region_hva(reg) +
                           (gpa - hvc_memory_region_guest_addr(reg)));
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t w = 0; w < len / 8; w++)
        h = (h ^ p[w]) * 0x100000001b3ull;
    return h;
}

/* --- the counter guest --- */

struct counter_report {
    uint64_t hash;
    int32_t wait;
    hvc_postcopy_stats st;
    size_t console_len;
};

static void counter_destination(int sock, int report, const uint8_t *key)
{
    static migt r;
    int e = migt_receive_fd(&r, sock, key, NULL);
    if (e != 0) {
        fprintf(stderr, "destination: %s\n", hvc_last_error());
        _exit(20);
    }
    struct counter_report rep = {0};
    /* Before any vCPU runs: every page it reads faults or has arrived. */
    hvc_memory_region *regs[8];
    size_t n = 0;
    hvc_vm_list_memory(r.vm, regs, 8, &n);
    for (size_t i = 0; i < n && i < 8; i++)
        rep.hash ^= hash_range(r.vm, hvc_memory_region_guest_addr(regs[i]),
                               hvc_memory_region_length(regs[i])) +
                    i;
    uint64_t most = 0;
    for (uint32_t i = 0; i < r.nr_vcpus; i++)
        if (migt_count(&r, i) > most)
            most = migt_count(&r, i);
    if (migt_run_until(&r, most + 5) || migt_check(&r, most + 5))
        _exit(21);
    rep.wait = hvc_vm_postcopy_wait(r.vm, 20000);
    rep.st.size = sizeof(rep.st);
    hvc_vm_postcopy_stats(r.vm, &rep.st);
    rep.console_len = r.console_len;
    migt_write_all(report, &rep, sizeof(rep));
    migt_write_all(report, r.console, r.console_len);
    _exit(0);
}

/* After the one pre-copy round: waits (up to 5 s) until vCPU 0 counted
 * on, so the guest has rewritten its pattern pages since the round's
 * dirty log was taken and post-copy has pages to bring, however little
 * CPU the vCPU threads got on a loaded host. */
static int counter_progress(void *opaque, const hvc_migrate_stats *st)
{
    migt *m = opaque;
    (void)st;
    uint64_t from = migt_count(m, 0);
    for (int i = 0; i < 5000 && migt_count(m, 0) < from + 2; i++)
        migt_sleep_ms(1);
    return 0;
}

static void counter(uint32_t nr_vcpus, const uint8_t *key)
{
    int sv[2], rep[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(pipe(rep), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        close(rep[0]);
        counter_destination(sv[1], rep[1], key);
    }
    close(sv[1]);
    close(rep[1]);

    static migt m;
    struct pct_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, nr_vcpus, NULL);
    for (uint32_t i = 0; i < nr_vcpus; i++)
        pct_start_runner(&run[i], m.vcpu[i]);
    migt_sleep_ms(30);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.key = key;
    o.flags = HVC_MIGRATE_POSTCOPY;
    o.postcopy_after_rounds = 1;
    o.progress = counter_progress;
    o.opaque = &m;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    HVT_OK(hvc_vm_migrate_send(m.vm, sv[0], &o, &st));
    cr_assert_eq(st.completed, 1);
    cr_assert_eq(st.postcopy, 1);
    cr_assert_gt(st.postcopy_pages, 0, "nothing was left for post-copy");
    cr_assert_eq(st.postcopy_pages,
                 st.postcopy_pages_pushed + st.postcopy_pages_requested);
    cr_assert_eq(st.postcopy_pages_lost, 0);
    cr_assert(hvc_vm_is_paused(m.vm));
    HVT_ERR(hvc_vm_resume(m.vm), -EPERM);

    hvc_memory_region *regs[8];
    size_t n = 0;
    uint64_t h = 0;
    HVT_OK(hvc_vm_list_memory(m.vm, regs, 8, &n));
    for (size_t i = 0; i < n && i < 8; i++)
        h ^= hash_range(m.vm, hvc_memory_region_guest_addr(regs[i]),
                        hvc_memory_region_length(regs[i])) +
             i;
    struct counter_report r;
    cr_assert_eq(migt_read_all(rep[0], &r, sizeof(r)), sizeof(r),
                 "the destination reported nothing");
    static char dcons[sizeof(m.console)];
    cr_assert_lt(r.console_len, sizeof(dcons));
    cr_assert_eq(migt_read_all(rep[0], dcons, r.console_len), r.console_len);
    dcons[r.console_len] = 0;
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "destination status 0x%x", status);
    pct_print_stats(key ? "counter, encrypted" : "counter", &st, &r.st);
    cr_assert_eq(r.wait, 0, "hvc_vm_postcopy_wait on the destination: %d",
                 r.wait);
    cr_assert_eq(r.st.state, HVC_POSTCOPY_COMPLETE);
    cr_assert_eq(r.st.pages, st.postcopy_pages);
    cr_assert_eq(r.st.pages_received, r.st.pages);
    cr_assert_eq(h, r.hash, "guest RAM differs at the switchover");

    /* The consoles, end to end, count on without a gap or a repeat. */
    static char all[2 * sizeof(m.console)];
    snprintf(all, sizeof(all), "%s%s", m.console, dcons);
    uint64_t want = 1;
    for (const char *p = all; *p; want++) {
        char line[64];
        int len = snprintf(line, sizeof(line), "count %llu\r\n",
                           (unsigned long long)want);
        cr_assert_eq(strncmp(p, line, (size_t)len), 0,
                     "console at count %llu: \"%.20s\"",
                     (unsigned long long)want, p);
        p += len;
    }
    cr_assert_geq(want - 1, migt_count(&m, 0) + 5);
    close(sv[0]);
    close(rep[0]);
}

Test(migration_postcopy, counter_continues)
{
    counter(1, NULL);
}

Test(migration_postcopy, counter_two_vcpus_encrypted)
{
    static const uint8_t key[HVC_STREAM_KEY_SIZE] = {7, 7, 7};
    counter(2, key);
}

/* --- the random-touch guest --- */

static pid_t fork_destination(int sock, int other, int report, int other_rep)
{
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(other);
        close(other_rep);
        pct_touch_destination(sock, report);
    }
    close(sock);
    close(report);
    return pid;
}

Test(migration_postcopy, random_touch)
{
    int sv[2], rp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(pipe(rp), 0);
    pid_t pid = fork_destination(sv[1], sv[0], rp[1], rp[0]);
    hvc_hypervisor *hv;
    hvc_vm *vm;
    static struct pct_runner run;
    pct_touch_source(&hv, &vm, &run);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.flags = HVC_MIGRATE_POSTCOPY;
    o.postcopy_after_rounds = 1;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    HVT_OK(hvc_vm_migrate_send(vm, sv[0], &o, &st));
    cr_assert_eq(st.postcopy, 1);
    cr_assert_geq(st.postcopy_pages, TR_NPAGES / 2,
                  "only %llu pages left for post-copy",
                  (unsigned long long)st.postcopy_pages);
    struct pct_touch_report r;
    cr_assert_eq(migt_read_all(rp[0], &r, sizeof(r)), sizeof(r));
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    pct_print_stats("random touch", &st, &r.st);
    cr_assert_eq(r.receive, 0, "receive: %s", r.why);
    cr_assert_eq(r.run, 0, "run: %s", r.why);
    cr_assert_eq(r.status, 0x7e);
    cr_assert_eq(r.wait, 0, "wait: %s", r.wait_why);
    cr_assert_eq(r.visits, 2 * TR_NPAGES);
    cr_assert_eq(r.bad, 0, "%llu pages held something else",
                 (unsigned long long)r.bad);
    /* Every page holds what the source left in it, except that the
     * destination finished the pass the pause cut short (from some page
     * on, one pass later), before its visits, which write back what they
     * read. */
    static uint64_t first[TR_NPAGES];
    cr_assert_eq(migt_read_all(rp[0], first, sizeof(first)), sizeof(first));
    uint64_t passes = 0;
    HVT_OK(hvc_vm_read(vm, TR_PASSES, &passes, 8));
    uint32_t cut = TR_NPAGES;
    for (uint32_t i = 0; i < TR_NPAGES; i++) {
        uint64_t src = 0;
        HVT_OK(hvc_vm_read(vm, TR_BASE + i * 4096ull, &src, 8));
        if (first[i] == src && cut == TR_NPAGES)
            continue;
        if (cut == TR_NPAGES)
            cut = i;
        cr_assert_eq(src, passes << 32 | i, "source page %u: 0x%llx", i,
                     (unsigned long long)src);
        cr_assert_eq(first[i], (passes + 1) << 32 | i,
                     "page %u: 0x%llx on the destination, 0x%llx on the "
                     "source (the pass was cut at page %u)",
                     i, (unsigned long long)first[i], (unsigned long long)src,
                     cut);
    }
    fprintf(stderr, "  the source's pass %llu was cut at page %u\n",
            (unsigned long long)passes + 1, cut);
    cr_assert_eq(r.st.state, HVC_POSTCOPY_COMPLETE);
    cr_assert_gt(r.st.faults, 0, "the guest never faulted");
    cr_assert_gt(r.st.pages_requested, 0);
    cr_assert_eq(st.postcopy_pages_requested + st.postcopy_pages_pushed,
                 st.postcopy_pages);
    cr_assert_eq(st.postcopy_fault_median_us, r.st.fault_median_us);
    close(sv[0]);
    close(rp[0]);
}

/* --- a relay between the two sides: cuts or forges the post-copy part --- */

struct relay {
    int src, dst;     /* its ends towards the source and the destination */
    size_t after_ack; /* source bytes passed on after the acknowledgement */
    bool forge;       /* then a forged run instead of the rest */
    bool drop_ack;    /* the acknowledgement never reaches the source */
    pthread_t t;
};

static void forged_run(int fd)
{
    /* A MEMORY section of one zero page at a guest address no region has:
     * well formed, with a right CRC (plain stream). */
    uint8_t s[24 + 24] = {0};
    s[0] = 2;                      /* MEMORY */
    s[2] = 1;                      /* required */
    s[4] = 1;                      /* version */
    s[8] = 24;                     /* payload: the descriptor */
    uint64_t gpa = 0x7f0000000ull; /* far above the 64 MiB of RAM */
    for (int i = 0; i < 8; i++)
        s[24 + i] = (uint8_t)(gpa >> (8 * i));
    s[24 + 8] = 1;  /* one page */
    s[24 + 16] = 1; /* zero */
    uint32_t crc = migt_crc32c(0, s, 20);
    crc = migt_crc32c(crc, s + 24, 24);
    for (int i = 0; i < 4; i++)
        s[20 + i] = (uint8_t)(crc >> (8 * i));
    migt_write_all(fd, s, sizeof(s));
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    static uint8_t buf[65536];
    bool acked = false;
    size_t passed = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = r->src, .events = POLLIN},
                              {.fd = r->dst, .events = POLLIN}};
        if (poll(p, 2, -1) < 0)
            break;
        if (p[1].revents) {
            ssize_t n = read(r->dst, buf, sizeof(buf));
            if (n <= 0)
                break;
            if (!acked && n >= 8 && memcmp(buf, "HVCMACK1", 8) == 0) {
                acked = true;
                if (r->drop_ack)
                    break;
            }
            migt_write_all(r->src, buf, (size_t)n);
        }
        if (p[0].revents) {
            size_t want = sizeof(buf);
            if (acked && r->after_ack - passed < want)
                want = r->after_ack - passed;
            if (acked && want == 0) {
                if (r->forge) {
                    /* Until the destination has refused it and gone. */
                    forged_run(r->dst);
                    while (read(r->dst, buf, sizeof(buf)) > 0)
                        ;
                }
                break;
            }
            /* recvmsg: the page channel post-copy opens (a descriptor
             * passed along) goes through. */
            union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int))];
            } ctl;
            struct iovec iov = {buf, want};
            struct msghdr m = {.msg_iov = &iov,
                               .msg_iovlen = 1,
                               .msg_control = ctl.b,
                               .msg_controllen = sizeof(ctl.b)};
            ssize_t n = recvmsg(r->src, &m, 0);
            if (n <= 0)
                break;
            if (m.msg_controllen) {
                iov.iov_len = (size_t)n;
                m.msg_flags = 0;
                if (sendmsg(r->dst, &m, 0) != n)
                    break;
                if (acked)
                    passed += (size_t)n;
                continue;
            }
            if (acked)
                passed += (size_t)n;
            migt_write_all(r->dst, buf, (size_t)n);
        }
    }
    /* The link goes down: both sides see it. */
    shutdown(r->src, SHUT_RDWR);
    if (!r->forge)
        shutdown(r->dst, SHUT_RDWR);
    return NULL;
}

static void relayed(size_t after_ack, bool forge, struct pct_touch_report *rep,
                    hvc_migrate_stats *st, int *send_r, char *send_why,
                    size_t why_len)
{
    int a[2], b[2], rp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    cr_assert_eq(pipe(rp), 0);
    pid_t pid = fork_destination(b[1], b[0], rp[1], rp[0]);
    static struct relay rl;
    rl.src = a[1];
    rl.dst = b[0];
    rl.after_ack = after_ack;
    rl.forge = forge;
    cr_assert_eq(pthread_create(&rl.t, NULL, relay_main, &rl), 0);
    hvc_hypervisor *hv;
    hvc_vm *vm;
    static struct pct_runner run;
    pct_touch_source(&hv, &vm, &run);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.flags = HVC_MIGRATE_POSTCOPY;
    o.postcopy_after_rounds = 1;
    *st = (hvc_migrate_stats)HVC_MIGRATE_STATS_INIT;
    *send_r = hvc_vm_migrate_send(vm, a[0], &o, st);
    snprintf(send_why, why_len, "%s", hvc_last_error());
    /* The source never runs the guest again, whatever happened after the
     * switchover. */
    cr_assert(hvc_vm_is_paused(vm));
    HVT_ERR(hvc_vm_resume(vm), -EPERM);
    cr_assert_eq(migt_read_all(rp[0], rep, sizeof(*rep)), sizeof(*rep));
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    pthread_join(rl.t, NULL);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(rp[0]);
}

Test(migration_postcopy, link_cut_during_postcopy)
{
    struct pct_touch_report r;
    hvc_migrate_stats st;
    int sr;
    char why[512];
    relayed(1u << 20, false, &r, &st, &sr, why, sizeof(why));
    fprintf(stderr, "link cut: source %d: %s\n", sr, why);
    fprintf(stderr, "link cut: destination run %d (%s), wait %d: %s\n", r.run,
            r.why, r.wait, r.wait_why);
    cr_assert_eq(st.postcopy, 1);
    cr_assert_lt(sr, 0, "the source saw no failure");
    cr_assert_eq(st.completed, 0);
    cr_assert_gt(st.postcopy_pages_lost, 0);
    cr_assert(strstr(why, "never reached the destination"), "%s", why);
    cr_assert_eq(r.receive, 0, "receive: %s", r.why);
    cr_assert_lt(r.wait, 0, "the destination saw no failure");
    cr_assert_eq(r.st.state, HVC_POSTCOPY_FAILED);
    cr_assert_gt(r.st.pages_lost, 0);
    cr_assert_eq(r.st.pages_lost + r.st.pages_received, r.st.pages);
    /* The destination's guest did not finish on zero pages: it stopped. */
    cr_assert_lt(r.run, 0, "the guest ran to its end (status 0x%x)", r.status);
    cr_assert(strstr(r.why, "post-copy"), "%s", r.why);
    cr_assert(strstr(r.wait_why, "pages never received"), "%s", r.wait_why);
    /* The library's accessors refuse the lost pages rather than read
     * zeros in their place. */
    cr_assert_gt(r.read_eio, 0);
    cr_assert_leq(r.read_eio, r.st.pages_lost);
}

Test(migration_postcopy, hostile_page_outside_plan)
{
    struct pct_touch_report r;
    hvc_migrate_stats st;
    int sr;
    char why[512];
    relayed(8, true, &r, &st, &sr, why, sizeof(why)); /* the channel record */
    fprintf(stderr, "forged page: destination wait %d: %s\n", r.wait,
            r.wait_why);
    fprintf(stderr, "forged page: source %d: %s\n", sr, why);
    cr_assert_eq(r.receive, 0, "receive: %s", r.why);
    cr_assert_eq(r.wait, -EBADMSG, "wait %d: %s", r.wait, r.wait_why);
    cr_assert(strstr(r.wait_why, "0x7f0000000"), "%s", r.wait_why);
    cr_assert_eq(r.st.state, HVC_POSTCOPY_FAILED);
    cr_assert_lt(r.run, 0);
    cr_assert_lt(sr, 0);
}

/* The link fails at the post-copy switchover, after the destination
 * sent its acknowledgement but before the source read it: the source has
 * not handed the guest over, so it runs on; the destination, whose pages
 * never come, stops its guest and says what it lost. */
Test(migration_postcopy, link_cut_at_switchover)
{
    int a[2], b[2], rp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    cr_assert_eq(pipe(rp), 0);
    pid_t pid = fork_destination(b[1], b[0], rp[1], rp[0]);
    static struct relay rl;
    rl = (struct relay){.src = a[1], .dst = b[0], .drop_ack = true};
    cr_assert_eq(pthread_create(&rl.t, NULL, relay_main, &rl), 0);
    hvc_hypervisor *hv;
    hvc_vm *vm;
    static struct pct_runner run;
    pct_touch_source(&hv, &vm, &run);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.flags = HVC_MIGRATE_POSTCOPY;
    o.postcopy_after_rounds = 1;
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    int r = hvc_vm_migrate_send(vm, a[0], &o, &st);
    fprintf(stderr, "cut at the switchover: source %d: %s\n", r,
            hvc_last_error());
    cr_assert_lt(r, 0);
    cr_assert(strstr(hvc_last_error(), "the VM runs on"), "%s",
              hvc_last_error());
    cr_assert_eq(st.completed, 0);
    /* Running, and writing its pages on. */
    cr_assert(!hvc_vm_is_paused(vm));
    uint64_t p0 = 0, p1 = 0;
    HVT_OK(hvc_vm_read(vm, TR_PASSES, &p0, 8));
    for (int i = 0; i < 2000 && p1 <= p0; i++) {
        migt_sleep_ms(5);
        HVT_OK(hvc_vm_read(vm, TR_PASSES, &p1, 8));
    }
    cr_assert_gt(p1, p0, "the source stopped after the failed switchover");
    struct pct_touch_report d;
    cr_assert_eq(migt_read_all(rp[0], &d, sizeof(d)), sizeof(d));
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    pthread_join(rl.t, NULL);
    fprintf(stderr, "cut at the switchover: destination wait %d: %s\n", d.wait,
            d.wait_why);
    cr_assert_eq(d.receive, 0, "receive: %s", d.why);
    cr_assert_lt(d.wait, 0);
    cr_assert_eq(d.st.state, HVC_POSTCOPY_FAILED);
    cr_assert_eq(d.st.pages_lost, d.st.pages);
    cr_assert_lt(d.run, 0, "the destination's guest ran on zero pages");
    atomic_store(&run.stop, 1);
    hvc_vcpu_kick(run.vcpu);
    pthread_join(run.t, NULL);
    cr_assert_eq(run.error, 0);
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(rp[0]);
}

/* Options: post-copy rounds without the flag, unknown flags. */
Test(migration_postcopy, bad_options)
{
    static migt m;
    migt_open(&m, 1, NULL);
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.postcopy_after_rounds = 2;
    HVT_ERR(hvc_vm_migrate_send(m.vm, 0, &o, NULL), -EINVAL);
    o.postcopy_after_rounds = 0;
    o.flags = 0x80;
    HVT_ERR(hvc_vm_migrate_send(m.vm, 0, &o, NULL), -EINVAL);
    /* a file has no destination */
    o.flags = HVC_MIGRATE_POSTCOPY;
    HVT_ERR(hvc_snapshot_save_live(m.vm, "/tmp/hvt-pc-never.snap", &o, NULL),
            -EINVAL);
    cr_assert(access("/tmp/hvt-pc-never.snap", F_OK) != 0);
    hvc_postcopy_stats ps = HVC_POSTCOPY_STATS_INIT;
    HVT_OK(hvc_vm_postcopy_stats(m.vm, &ps));
    cr_assert_eq(ps.state, HVC_POSTCOPY_NONE);
    HVT_OK(hvc_vm_postcopy_wait(m.vm, 0));
    HVT_ERR(hvc_vm_postcopy_stats(NULL, &ps), -EINVAL);
    migt_close(&m);
}
