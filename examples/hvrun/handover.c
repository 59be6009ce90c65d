/* hvrun's hand-over (hvcore/handover.h): --handover-to unix:PATH gives the
 * running VM, its memory and its console and disk descriptors to the
 * hvrun listening there with --incoming (on SIGUSR2 or after
 * --handover-after-ms); --upgrade-exec BINARY does the same on SIGHUP to
 * BINARY, started here with one end of a socket pair (--incoming fd:N) and
 * this hvrun's --accel.
 * The receiving side tells a hand-over from a migration stream by the
 * first bytes on the socket. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Hands the VM over on @p fd; prints one line either way. */
static int send_vm(struct machine *m, int fd, const char *to)
{
    uint8_t *user;
    size_t length;
    if (hvrun_config_encode(m->opt, &user, &length) < 0) {
        fprintf(stderr, "hvrun: hand-over: cannot record hvrun's "
                        "configuration; the VM runs on\n");
        return -ENOMEM;
    }
    hvc_handover_options ho = HVC_HANDOVER_OPTIONS_INIT;
    ho.user_data = user;
    ho.user_data_length = length;
    hvc_handover_stats st = HVC_HANDOVER_STATS_INIT;
    int r = hvc_vm_handover_send(m->vm, fd, &ho, &st);
    free(user);
    if (r < 0) {
        const char *why = hvc_last_error();
        if (strncmp(why, "hand-over: ", 11) == 0)
            why += 11;
        fprintf(stderr, "hvrun: hand-over to %s: %s\n", to, hvrun_esc(why));
        return r;
    }
    fprintf(stderr,
            "hvrun: handed over to %s: pause %.3f ms (vCPU stop %.3f, save "
            "%.3f, transfer %.3f, load %.3f), %u regions (%llu MiB not "
            "copied, mapped in %.3f ms before the pause), %u device "
            "descriptors\n",
            to, (double)st.pause_us / 1000.0, (double)st.vcpu_stop_us / 1000.0,
            (double)st.save_us / 1000.0, (double)st.transfer_us / 1000.0,
            (double)st.load_us / 1000.0, st.regions,
            (unsigned long long)(st.memory_bytes >> 20),
            (double)st.map_us / 1000.0, st.device_fds);
    return 0;
}

int hvrun_handover(struct machine *m)
{
    const char *path = m->opt->handover.to;
    char to[300];
    snprintf(to, sizeof(to), "'%s'", hvrun_esc(path));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = fd < 0 ? -errno : 0;
    if (r == 0 && strlen(path) >= sizeof(a.sun_path))
        r = -ENAMETOOLONG;
    if (r == 0) {
        memcpy(a.sun_path, path, strlen(path) + 1);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
            r = -errno;
    }
    if (r < 0) {
        fprintf(stderr,
                "hvrun: --handover-to %s: cannot connect: %s; the VM runs "
                "on\n",
                to, strerror(-r));
        if (fd >= 0)
            close(fd);
        return r;
    }
    r = send_vm(m, fd, to);
    close(fd);
    return r;
}

int hvrun_upgrade_exec(struct machine *m)
{
    const struct handover_opts *h = &m->opt->handover;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        fprintf(stderr,
                "hvrun: --upgrade-exec: socketpair: %s; the VM runs "
                "on\n",
                strerror(errno));
        return -errno;
    }
    /* Everything the child needs, before the fork: it only execs. */
    char in[32], handover[4200];
    snprintf(in, sizeof(in), "fd:%d", sv[1]);
    const char *argv[10];
    int n = 0;
    argv[n++] = h->upgrade_exec;
    argv[n++] = "--accel"; /* the same accelerator, not the default */
    argv[n++] = hvc_hypervisor_backend(m->hv);
    argv[n++] = "--incoming";
    argv[n++] = in;
    argv[n++] = "--upgrade-exec"; /* and again, later */
    argv[n++] = h->upgrade_exec;
    if (h->to) {
        snprintf(handover, sizeof(handover), "unix:%s", h->to);
        argv[n++] = "--handover-to";
        argv[n++] = handover;
    }
    argv[n] = NULL;
    sigset_t none;
    sigemptyset(&none);
    pid_t pid = fork();
    if (pid == 0) {
        fcntl(sv[1], F_SETFD, 0); /* kept across exec */
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        execv(h->upgrade_exec, (char *const *)argv);
        static const char msg[] = "hvrun: --upgrade-exec: exec failed\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(HVRUN_EXIT_USAGE);
    }
    int e = errno;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        fprintf(stderr, "hvrun: --upgrade-exec: fork: %s; the VM runs on\n",
                strerror(e));
        return -e;
    }
    char to[300];
    snprintf(to, sizeof(to), "'%s' (pid %d)", hvrun_esc(h->upgrade_exec),
             (int)pid);
    int r = send_vm(m, sv[0], to);
    close(sv[0]);
    if (r < 0) /* the new hvrun refused or died: reap it */
        for (int i = 0; i < 200 && waitpid(pid, NULL, WNOHANG) == 0; i++) {
            struct timespec t = {0, 5000000};
            nanosleep(&t, NULL);
        }
    return r;
}

int hvrun_receive_any(hvc_hypervisor *hv, int fd, const hvc_restore_options *ro,
                      hvc_vm **vm)
{
    char magic[8];
    ssize_t n;
    do
        n = recv(fd, magic, sizeof(magic), MSG_PEEK | MSG_WAITALL);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(magic) &&
        memcmp(magic, HVC_HANDOVER_MAGIC, sizeof(magic)) == 0) {
        hvc_restore_options h = *ro;
        h.key = NULL; /* a hand-over is never encrypted */
        h.passphrase = NULL;
        h.flags = 0;
        return hvc_vm_handover_receive(hv, fd, &h, vm);
    }
    return hvc_vm_migrate_receive(hv, fd, ro, vm);
}

int hvrun_handover_fd(hvc_vm *vm, const char *device, uint32_t slot)
{
    int fd;
    return hvc_vm_handover_fd(vm, device, slot, &fd) == 0 ? fd : -1;
}
