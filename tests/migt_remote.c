/* The client side of migtest's remote destination (design: migt_remote.h):
 * starting the helper, one request/response per call, stopping it. */
#include "migt_remote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static _Thread_local char remote_err[4096];
static _Thread_local int remote_err_set;
static const char *remote_backend; /* migt_remote_backend() */

void migt_remote_error_clear(void)
{
    remote_err_set = 0;
}

void migt_remote_error_set(const char *text)
{
    snprintf(remote_err, sizeof(remote_err), "%s", text);
    remote_err_set = 1;
}

const char *migt_last_error(void)
{
    return remote_err_set ? remote_err : hvc_last_error();
}

void migt_remote_backend(const char *name)
{
    remote_backend = name;
}

static const char *other_backend(void)
{
    if (remote_backend)
        return remote_backend;
    const char *e = getenv("HVT_REMOTE_BACKEND");
    return e && *e ? e : NULL;
}

int migt_remote_wanted(void)
{
    if (getenv("MIGT_REMOTE_SERVER"))
        return 0;
    if (other_backend())
        return 1;
    /* A destination is remote only when this process already holds a VM
     * (a process that holds none, a forked receiver, keeps it here). */
    if (migt_local_vms <= 0)
        return 0;
    /* Asked once per process: the answer cannot change. */
    static int cached = -1;
    if (cached < 0) {
        hvc_hypervisor *hv;
        uint64_t max = 0;
        if (hvc_hypervisor_open(hvt_backend(), &hv) == 0) {
            if (hvc_hypervisor_get_cap(hv, HVC_CAP_MAX_VMS, &max) < 0)
                max = 0;
            hvc_hypervisor_close(hv);
        }
        cached = max == 1;
    }
    return cached;
}

static int fail(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(remote_err, sizeof(remote_err), fmt, ap);
    va_end(ap);
    remote_err_set = 1;
    return err;
}

int migt_remote_start(migt *m)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return fail(-errno, "remote destination: socketpair: %s",
                    strerror(errno));
    const char *backend = other_backend();
    if (!backend)
        backend = hvt_backend();
    char *argv[] = {(char *)MIGT_REMOTE, (char *)backend, NULL};
    /* The environment without Criterion's worker variables (BXFI_*): the
     * helper links the Criterion library, whose start-up would take it for
     * a test worker and abort. */
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof(*env));
    if (!env) {
        close(sv[0]);
        close(sv[1]);
        return fail(-ENOMEM, "remote destination: no memory");
    }
    for (size_t i = 0, j = 0; i < n; i++)
        if (strncmp(environ[i], "BXFI", 4) != 0)
            env[j++] = environ[i];
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(env);
        close(sv[0]);
        close(sv[1]);
        return fail(-e, "remote destination: fork: %s", strerror(e));
    }
    if (pid == 0) {
        /* async-signal-safe calls only until exec */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (sv[1] == 3)
            fcntl(3, F_SETFD, 0);
        else if (dup2(sv[1], 3) < 0)
            _exit(127);
        execve(MIGT_REMOTE, argv, env);
        _exit(127);
    }
    free(env);
    close(sv[1]);
    m->remote_pid = pid;
    m->remote_fd = sv[0];
    return 0;
}

int migt_send_all(int sock, const void *p, size_t n, int fd)
{
    const uint8_t *b = p;
    while (n) {
        struct iovec iov = {(void *)b, n};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        char ctl[CMSG_SPACE(sizeof(int))];
        if (fd >= 0) {
            memset(ctl, 0, sizeof(ctl));
            mh.msg_control = ctl;
            mh.msg_controllen = sizeof(ctl);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EPIPE;
        fd = -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int migt_recv_all(int sock, void *p, size_t n, int *fd)
{
    uint8_t *b = p;
    if (fd)
        *fd = -1;
    while (n) {
        struct iovec iov = {b, n};
        char ctl[CMSG_SPACE(sizeof(int))];
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl,
                            .msg_controllen = sizeof(ctl)};
        ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EPIPE;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
             c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int got;
                memcpy(&got, CMSG_DATA(c), sizeof(int));
                if (fd && *fd < 0)
                    *fd = got;
                else
                    close(got);
            }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reaps the remote within @p ms, else kills and reaps it; a line on
 * stderr when it did not end with status 0. */
static void reap(migt *m, unsigned ms)
{
    int st = 0;
    pid_t w = 0;
    for (unsigned i = 0; i < ms / 10 && w == 0; i++) {
        w = waitpid(m->remote_pid, &st, WNOHANG);
        if (w == 0)
            migt_sleep_ms(10);
    }
    if (w == 0) {
        kill(m->remote_pid, SIGKILL);
        w = waitpid(m->remote_pid, &st, 0);
    }
    if (w == m->remote_pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fprintf(stderr, "remote destination %d ended with status 0x%x\n",
                m->remote_pid, st);
}

static int gone(migt *m, int err)
{
    int pid = m->remote_pid;
    close(m->remote_fd);
    m->remote_fd = -1;
    reap(m, 1000);
    m->remote_pid = 0;
    return fail(err < 0 ? err : -EPIPE,
                "the remote destination (pid %d) went away: %s", pid,
                strerror(-err));
}

int migt_remote_call(migt *m, struct migt_req *q, const void *payload, int fd,
                     void **data, size_t *dlen, uint64_t *value)
{
    if (data)
        *data = NULL;
    if (dlen)
        *dlen = 0;
    if (m->remote_pid <= 0)
        return fail(-ENOTCONN, "the remote destination is not running");
    q->has_fd = fd >= 0;
    int r = migt_send_all(m->remote_fd, q, sizeof(*q), fd);
    if (r == 0 && q->len)
        r = migt_send_all(m->remote_fd, payload, q->len, -1);
    struct migt_rsp a;
    if (r == 0)
        r = migt_recv_all(m->remote_fd, &a, sizeof(a), NULL);
    if (r < 0)
        return gone(m, r);
    /* error text, data, console: one buffer */
    if (a.err_len > (1u << 16) || a.data_len > (1ull << 31) ||
        a.console_len > sizeof(m->console))
        return gone(m, -EPROTO);
    size_t total = a.err_len + a.data_len + a.console_len;
    uint8_t *buf = malloc(total + 1);
    if (!buf)
        return fail(-ENOMEM, "remote destination: no memory");
    if ((r = migt_recv_all(m->remote_fd, buf, total, NULL)) < 0) {
        free(buf);
        return gone(m, r);
    }
    if (a.console_len)
        migt_console_append(m, buf + a.err_len + a.data_len, a.console_len);
    m->nr_vcpus = a.nr_vcpus;
    if (value)
        *value = a.value;
    if (a.rc != 0) {
        buf[a.err_len] = 0;
        fail(a.rc, "%s", (char *)buf);
    }
    if (data && a.data_len) {
        uint8_t *d = malloc(a.data_len);
        if (d)
            memcpy(d, buf + a.err_len, a.data_len);
        *data = d;
        if (dlen)
            *dlen = d ? a.data_len : 0;
    }
    free(buf);
    return a.rc;
}

void migt_remote_stop(migt *m)
{
    if (m->remote_pid <= 0)
        return;
    struct migt_req q = {.op = MIGT_OP_CLOSE};
    struct migt_rsp a;
    if (migt_send_all(m->remote_fd, &q, sizeof(q), -1) == 0) {
        struct pollfd p = {m->remote_fd, POLLIN, 0};
        if (poll(&p, 1, 5000) == 1)
            (void)migt_recv_all(m->remote_fd, &a, sizeof(a), NULL);
    }
    close(m->remote_fd);
    m->remote_fd = -1;
    reap(m, 5000);
    m->remote_pid = 0;
}
