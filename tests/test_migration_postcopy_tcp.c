/* Post-copy live migration over TCP to a forked child: the page channel
 * as a second connection named by the session, or requests and pages on
 * the connection alone; over TLS, both ways authenticated, the pages stay
 * inside TLS sessions; a destination that goes away right after the
 * switchover fails the source's post-copy with its VM paused. The guest
 * touches its pages in random order on the destination and finds each as
 * the source left it. */
#include "postcopy_util.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(migration_postcopy_tcp, .timeout = 120);

/* The source: a random-touch VM in this process that made its passes, a
 * connection to @p addr, and options for post-copy after one round over
 * @p tls (NULL: plain), with the page channel to @p addr when
 * @p channel. */
static int source_open(const char *addr, bool channel,
                       const hvc_migrate_tls *tls, hvc_vm **vm,
                       hvc_migrate_options *o)
{
    hvc_hypervisor *hv;
    static struct pct_runner run;
    pct_touch_source(&hv, vm, &run);
    int fd = hvc_migrate_connect(addr);
    cr_assert_geq(fd, 0, "%s", hvc_last_error());
    *o = (hvc_migrate_options)HVC_MIGRATE_OPTIONS_INIT;
    o->flags = HVC_MIGRATE_POSTCOPY;
    o->postcopy_after_rounds = 1;
    o->address = channel ? addr : NULL;
    o->tls = tls;
    return fd;
}

/* Over TCP to a child, with @p stls and @p dtls the two sides' TLS
 * (NULL: plain); @p channel: the page channel is a second connection to
 * the destination's address, named by the session (else requests and
 * pages share the connection). */
static void touch_tcp(const char *what, const hvc_migrate_tls *stls,
                      const hvc_migrate_tls *dtls, bool channel)
{
    char addr[64];
    int l = migt_listen_tcp(addr, sizeof(addr));
    int rp[2];
    cr_assert_eq(pipe(rp), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(rp[0]);
        int s = accept(l, NULL, NULL);
        pct_touch_listen = l;
        pct_touch_tls = dtls;
        pct_touch_destination(s, rp[1]);
    }
    close(rp[1]);
    close(l);
    hvc_vm *vm;
    hvc_migrate_options o;
    int fd = source_open(addr, channel, stls, &vm, &o);
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    HVT_OK(hvc_vm_migrate_send(vm, fd, &o, &st));
    cr_assert_eq(st.postcopy, 1);
    cr_assert_eq(st.tls, stls != NULL);
    cr_assert_eq(st.postcopy_channel, channel ? 2 : 0,
                 "page channel %u, not %u", st.postcopy_channel,
                 channel ? 2 : 0);
    struct pct_touch_report r;
    cr_assert_eq(migt_read_all(rp[0], &r, sizeof(r)), sizeof(r));
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    pct_print_stats(what, &st, &r.st);
    cr_assert_eq(r.receive, 0, "receive: %s", r.why);
    cr_assert_eq(r.run, 0, "run: %s", r.why);
    cr_assert_eq(r.status, 0x7e);
    cr_assert_eq(r.wait, 0, "wait: %s", r.wait_why);
    cr_assert_eq(r.visits, 2 * TR_NPAGES);
    cr_assert_eq(r.bad, 0);
    cr_assert_eq(r.st.state, HVC_POSTCOPY_COMPLETE);
    cr_assert_gt(r.st.faults, 0, "the guest never faulted");
    cr_assert_gt(r.st.pages_requested, 0);
    cr_assert_eq(st.postcopy_pages_requested + st.postcopy_pages_pushed,
                 st.postcopy_pages);
    close(fd);
    close(rp[0]);
}

Test(migration_postcopy_tcp, random_touch_tcp)
{
    touch_tcp("random touch over tcp", NULL, NULL, true);
}

/* Over TLS, both ways authenticated: the pushed and the asked-for pages
 * come through TLS sessions, on the connection and on the page channel
 * (a session of its own), or on the connection alone. */
static void touch_tls_both(const char *what, bool channel)
{
    migt_certs k;
    migt_make_certs(&k);
    hvc_migrate_tls dt, stl;
    migt_tls_options(&k, true, &stl, &dt);
    touch_tcp(what, &stl, &dt, channel);
    migt_drop_certs(&k);
}

Test(migration_postcopy_tcp, random_touch_tls)
{
    touch_tls_both("random touch over tls", true);
}

Test(migration_postcopy_tcp, random_touch_tls_one_connection)
{
    touch_tls_both("random touch over tls, one connection", false);
}

/* Over TLS, the destination process goes away right after the
 * switchover: the source's post-copy fails (it does not wait for
 * anything any more) with the pages it could not deliver, and its VM
 * stays paused; @p channel: while it opens the page channel, else while
 * it pushes on the connection. */
static void gone_over_tls(bool channel)
{
    migt_certs k;
    migt_make_certs(&k);
    hvc_migrate_tls dt, stl;
    migt_tls_options(&k, false, &stl, &dt);
    char addr[64];
    int l = migt_listen_tcp(addr, sizeof(addr));
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int s = accept(l, NULL, NULL);
        hvc_hypervisor *hv;
        hvc_vm *vm;
        if (s < 0 || hvc_hypervisor_open("kvm", &hv) < 0)
            _exit(30);
        hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
        ro.listen_fd = l;
        ro.tls = &dt;
        _exit(hvc_vm_migrate_receive(hv, s, &ro, &vm) == 0 ? 0 : 31);
    }
    close(l);
    hvc_vm *vm;
    hvc_migrate_options o;
    int fd = source_open(addr, channel, &stl, &vm, &o);
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    int r = hvc_vm_migrate_send(vm, fd, &o, &st);
    fprintf(stderr, "destination gone over tls: source %d: %s\n", r,
            hvc_last_error());
    cr_assert_lt(r, 0);
    cr_assert(strstr(hvc_last_error(), "after the switchover"), "%s",
              hvc_last_error());
    cr_assert_eq(st.postcopy, 1);
    cr_assert_eq(st.completed, 0);
    cr_assert_leq(st.postcopy_pages_lost, st.postcopy_pages);
    cr_assert(hvc_vm_is_paused(vm));
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the destination's receive: status 0x%x", status);
    close(fd);
    migt_drop_certs(&k);
}

Test(migration_postcopy_tcp, destination_gone_over_tls)
{
    gone_over_tls(true);
}

Test(migration_postcopy_tcp, destination_gone_over_tls_one_connection)
{
    gone_over_tls(false);
}

/* Over TLS, the source process dies right after the switchover: the
 * destination's receiver finds its session broken, post-copy fails with
 * the pages that never came, and the guest, touching them, is stopped
 * (hvc_vcpu_run() fails with -EIO) rather than left waiting; @p channel:
 * with the page channel's session as well. */
static void source_gone_over_tls(bool channel)
{
    migt_certs k;
    migt_make_certs(&k);
    hvc_migrate_tls dt, stl;
    migt_tls_options(&k, false, &stl, &dt);
    char addr[64];
    int l = migt_listen_tcp(addr, sizeof(addr));
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* the source, killed during post-copy */
        close(l);
        hvc_vm *vm;
        hvc_migrate_options o;
        int fd = source_open(addr, channel, &stl, &vm, &o);
        hvc_vm_migrate_send(vm, fd, &o, NULL);
        _exit(0);
    }
    int s = accept(l, NULL, NULL);
    cr_assert_geq(s, 0);
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.listen_fd = l;
    ro.tls = &dt;
    hvc_vm *vm;
    HVT_OK(hvc_vm_migrate_receive(hv, s, &ro, &vm));
    kill(pid, SIGKILL);
    close(s);
    close(l);
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    /* the guest's random visits (its input page may be lost already) */
    hvc_vcpu *v;
    HVT_OK(hvc_vm_get_vcpu(vm, 0, &v));
    uint64_t in[2] = {1, 0x5eed};
    int w = hvc_vm_write(vm, DATA_IN, in, sizeof(in));
    cr_assert(w == 0 || w == -EIO, "%d %s", w, hvc_last_error());
    const hvc_exit *e;
    int r = hvc_vcpu_run(v, &e);
    cr_assert_eq(r, -EIO, "the guest ran on: %d (%s)", r,
                 r ? hvc_last_error() : "an exit");
    r = hvc_vm_postcopy_wait(vm, 10000);
    fprintf(stderr, "source gone over tls%s: destination %d: %s\n",
            channel ? "" : ", one connection", r, hvc_last_error());
    cr_assert_lt(r, 0);
    hvc_postcopy_stats ps = HVC_POSTCOPY_STATS_INIT;
    HVT_OK(hvc_vm_postcopy_stats(vm, &ps));
    cr_assert_eq(ps.state, HVC_POSTCOPY_FAILED);
    cr_assert_gt(ps.pages_lost, 0);
    cr_assert_eq(ps.pages_lost + ps.pages_received, ps.pages);
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    migt_drop_certs(&k);
}

Test(migration_postcopy_tcp, source_gone_over_tls)
{
    source_gone_over_tls(true);
}

Test(migration_postcopy_tcp, source_gone_over_tls_one_connection)
{
    source_gone_over_tls(false);
}
