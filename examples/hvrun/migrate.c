/* hvrun's live migration: --incoming and --migrate-to over unix:PATH or
 * tcp:HOST:PORT (the library's hvc_migrate_listen/connect), TLS
 * (--tls-cert/--tls-key/--tls-ca), --bandwidth-mib, --auto-converge,
 * --migration-stats FILE (JSON, written atomically on success and on
 * failure), and a progress line on a terminal. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(const char *flag, const char *arg, const char *why)
{
    if (*arg)
        fprintf(stderr, "hvrun: %s: '%s' %s\n", flag, hvrun_esc(arg), why);
    else
        fprintf(stderr, "hvrun: %s %s\n", flag, why);
    exit(HVRUN_EXIT_USAGE);
}

/* "unix:PATH" or "tcp:HOST:PORT" in form; the library checks the rest
 * when it listens or connects (and hvrun exits 2 then, too). */
const char *hvrun_migrate_address(const char *flag, const char *arg,
                                  bool listening)
{
    for (const char *c = arg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            usage(flag, arg, "has a control character");
    if (strncmp(arg, "unix:", 5) == 0 && arg[5])
        return arg;
    const char *colon = strrchr(arg, ':');
    if (strncmp(arg, "tcp:", 4) != 0 || colon == arg + 3 || colon == arg + 4)
        usage(flag, arg, "is not unix:PATH or tcp:HOST:PORT");
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || colon[1] < '0' || colon[1] > '9' ||
        port > 65535 || (port == 0 && !listening))
        usage(flag, arg, "has no port from 1 to 65535");
    return arg;
}

static void readable(const char *flag, const char *path)
{
    if (access(path, R_OK) < 0) {
        fprintf(stderr, "hvrun: %s '%s': %s\n", flag, hvrun_esc(path),
                strerror(errno));
        exit(HVRUN_EXIT_USAGE);
    }
}

void hvrun_migrate_check(const struct options *o)
{
    const struct migrate_opts *m = &o->mig;
    bool tls = m->tls_cert || m->tls_key || m->tls_ca;
    if (tls && !o->incoming && !o->migrate_to)
        usage("--tls-cert/--tls-key/--tls-ca", "",
              "go with --incoming or "
              "--migrate-to");
    if ((m->bandwidth_mib || m->auto_converge || m->stats_path) &&
        !o->migrate_to)
        usage("--bandwidth-mib/--auto-converge/--migration-stats", "",
              "go with --migrate-to");
    if (!m->tls_cert != !m->tls_key)
        usage("--tls-cert/--tls-key", "", "go together");
    if (tls && o->incoming && !m->tls_cert)
        usage("--incoming", o->incoming,
              "with TLS needs --tls-cert and "
              "--tls-key");
    if (tls && o->migrate_to && !o->incoming && !m->tls_ca)
        usage("--migrate-to", o->migrate_to,
              "with TLS needs --tls-ca (the "
              "destination's CA)");
    if (m->tls_cert)
        readable("--tls-cert", m->tls_cert);
    if (m->tls_key)
        readable("--tls-key", m->tls_key);
    if (m->tls_ca)
        readable("--tls-ca", m->tls_ca);
}

/* The TLS options for @addr (the host of tcp:HOST:PORT is the name the
 * destination's certificate must carry); NULL without TLS. */
static const hvc_migrate_tls *tls_of(const struct options *o, const char *addr,
                                     bool receiver, hvc_migrate_tls *t,
                                     char *host, size_t hostlen)
{
    const struct migrate_opts *m = &o->mig;
    if (!m->tls_cert && !m->tls_ca)
        return NULL;
    hvc_migrate_tls d = HVC_MIGRATE_TLS_INIT;
    *t = d;
    t->cert = m->tls_cert;
    t->key = m->tls_key;
    t->ca = m->tls_ca;
    if (receiver && m->tls_ca)
        t->flags = HVC_MIGRATE_TLS_VERIFY_PEER; /* mutual */
    if (!receiver && strncmp(addr, "tcp:", 4) == 0) {
        const char *h = addr + 4, *colon = strrchr(h, ':');
        size_t n = (size_t)(colon - h);
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
            h++;
            n -= 2;
        }
        if (n < hostlen) {
            memcpy(host, h, n);
            host[n] = 0;
            t->server_name = host;
        }
    }
    return t;
}

int hvrun_receive(hvc_hypervisor *hv, const struct options *o,
                  hvc_restore_options *ro, hvc_vm **vm)
{
    const char *addr = o->incoming;
    if (o->handover.incoming_fd >= 0) { /* --incoming fd:N (--upgrade-exec) */
        int r = hvrun_receive_any(hv, o->handover.incoming_fd, ro, vm);
        close(o->handover.incoming_fd);
        return r;
    }
    int l = hvc_migrate_listen(addr);
    if (l < 0) {
        fprintf(stderr, "hvrun: --incoming: %s\n", hvrun_esc(hvc_last_error()));
        exit(HVRUN_EXIT_USAGE);
    }
    int fd;
    do
        fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR && !hvrun_interrupted());
    int e = errno;
    if (fd < 0) {
        close(l);
        if (strncmp(addr, "unix:", 5) == 0)
            unlink(addr + 5);
        if (hvrun_interrupted())
            exit(HVRUN_EXIT_INTERRUPTED);
        fprintf(stderr, "hvrun: --incoming: accepting on '%s': %s\n",
                hvrun_esc(addr), strerror(e));
        exit(HVRUN_EXIT_INTERNAL);
    }
    hvc_migrate_tls t;
    ro->tls = tls_of(o, addr, true, &t, NULL, 0);
    /* the source's extra connections (--migrate-connections, post-copy's
     * page channel over TCP) come to the same socket */
    ro->listen_fd = l;
    /* a hand-over (unix only, never under TLS) or a migration */
    int r = hvrun_receive_any(hv, fd, ro, vm);
    ro->listen_fd = -1;
    close(fd);
    close(l);
    if (strncmp(addr, "unix:", 5) == 0)
        unlink(addr + 5);
    return r;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct progress {
    bool tty, drawn;
    double start;
};

/* After each round: Ctrl-C stops the migration; on a terminal, one line
 * redrawn in place. */
static int on_round(void *opaque, const hvc_migrate_stats *s)
{
    struct progress *p = opaque;
    if (hvrun_interrupted())
        return -ECANCELED;
    if (!p->tty)
        return 0;
    double mb = (double)(s->bytes_initial + s->bytes_precopy) / 1e6;
    double rate = (double)s->throughput_bps / 1e6;
    double dirty = (double)s->dirty_pages_per_s * 4096 / 1e6;
    double eta = s->throughput_bps ? (double)s->remaining_pages * 4096 /
                                         (double)s->throughput_bps
                                   : 0;
    fprintf(stderr,
            "\rhvrun: migrating: round %u, %.1f MB sent, %.1f MB/s, dirty "
            "%.1f MB/s, %llu pages left, ETA %.2f s",
            s->rounds, mb, rate, dirty, (unsigned long long)s->remaining_pages,
            eta);
    if (s->throttle_percent)
        fprintf(stderr, ", throttle %u%%", s->throttle_percent);
    fputs("   ", stderr);
    p->drawn = true;
    return 0;
}

/* --migration-stats: the JSON, with a newline, through a temporary file
 * renamed over @path; a failure is one more line (the stats are not the
 * migration). */
static void write_stats(const char *path, const hvc_migrate_stats *st, int r)
{
    char json[4096], text[4400];
    if (hvc_migrate_stats_json(st, json, sizeof(json)) < 0)
        return;
    /* The outcome joins the library's object. */
    json[strlen(json) - 1] = 0;
    int n = snprintf(text, sizeof(text), "%s,\"ok\":%s,\"error\":%d}\n", json,
                     r == 0 ? "true" : "false", r);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    bool ok = fd >= 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (ok && rename(tmp, path) == 0)
        return;
    int e = errno;
    if (fd >= 0)
        unlink(tmp);
    fprintf(stderr, "hvrun: --migration-stats '%s': %s\n", hvrun_esc(path),
            strerror(e));
}

int hvrun_migrate(struct machine *m)
{
    const struct options *o = m->opt;
    uint8_t *user;
    size_t length;
    if (hvrun_config_encode(o, &user, &length) < 0) {
        fprintf(stderr, "hvrun: --migrate-to: cannot record hvrun's "
                        "configuration; the VM runs on\n");
        return -ENOMEM;
    }
    int fd = hvc_migrate_connect(o->migrate_to);
    if (fd < 0) {
        fprintf(stderr, "hvrun: --migrate-to: %s; the VM runs on\n",
                hvrun_esc(hvc_last_error()));
        free(user);
        return fd;
    }
    struct progress p = {.tty = isatty(STDERR_FILENO), .start = seconds()};
    hvc_migrate_tls t;
    char host[256];
    hvc_migrate_options mo = HVC_MIGRATE_OPTIONS_INIT;
    mo.key = o->have_key ? o->key : NULL;
    mo.passphrase = o->passphrase;
    mo.user_data = user;
    mo.user_data_length = length;
    mo.max_downtime_ms = o->max_downtime_ms;
    mo.progress = on_round;
    mo.opaque = &p;
    mo.tls = tls_of(o, o->migrate_to, false, &t, host, sizeof(host));
    mo.bandwidth_mib = o->mig.bandwidth_mib;
    mo.flags = (o->mig.auto_converge ? HVC_MIGRATE_AUTO_CONVERGE : 0) |
               (o->mig.postcopy ? HVC_MIGRATE_POSTCOPY : 0);
    mo.postcopy_after_rounds = o->mig.postcopy_after_rounds;
    mo.connections = o->mig.connections;
    mo.address = o->migrate_to; /* extra connections, the page channel */
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    int r = hvc_vm_migrate_send(m->vm, fd, &mo, &st);
    close(fd);
    free(user);
    if (p.drawn)
        fprintf(stderr, "\r%*s\r", 130, "");
    if (o->mig.stats_path)
        write_stats(o->mig.stats_path, &st, r);
    if (r < 0) {
        fprintf(stderr, "hvrun: --migrate-to '%s': %s\n",
                hvrun_esc(o->migrate_to), hvrun_esc(hvc_last_error()));
        /* Failed after a post-copy switchover: nothing runs here again. */
        return st.postcopy && hvc_vm_is_paused(m->vm) ? 1 : r;
    }
    if (st.postcopy) {
        fprintf(stderr,
                "hvrun: migrated to '%s' by post-copy: downtime %.3f ms, "
                "total %llu ms, %u rounds, %llu pages after the switchover "
                "(%llu pushed, %llu on faults) in %llu ms, fault service "
                "median %llu us, p99 %llu us\n",
                hvrun_esc(o->migrate_to), (double)st.downtime_us / 1000.0,
                (unsigned long long)st.total_ms, st.rounds,
                (unsigned long long)st.postcopy_pages,
                (unsigned long long)st.postcopy_pages_pushed,
                (unsigned long long)st.postcopy_pages_requested,
                (unsigned long long)st.postcopy_ms,
                (unsigned long long)st.postcopy_fault_median_us,
                (unsigned long long)st.postcopy_fault_p99_us);
        return 0;
    }
    fprintf(stderr,
            "hvrun: migrated to '%s': downtime %.3f ms, total %llu ms, %u "
            "rounds, %llu pages, %llu bytes%s, %u connection%s\n",
            hvrun_esc(o->migrate_to), (double)st.downtime_us / 1000.0,
            (unsigned long long)st.total_ms, st.rounds,
            (unsigned long long)(st.pages_initial + st.pages_precopy +
                                 st.pages_final),
            (unsigned long long)(st.bytes_initial + st.bytes_precopy +
                                 st.bytes_final),
            st.tls ? ", TLS" : "", st.connections,
            st.connections == 1 ? "" : "s");
    return 0;
}
