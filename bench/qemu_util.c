#define _GNU_SOURCE /* program_invocation_short_name */
#include "qemu_util.h"

#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

bool qmp_open(struct qmp *q, const char *path)
{
    q->len = 0;
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        fprintf(stderr, "%s: connecting to QMP at %s: %s\n",
                program_invocation_short_name, path, strerror(errno));
        return false;
    }
    if (!qmp_line(q)) { /* the greeting */
        fprintf(stderr, "%s: no QMP greeting\n",
                program_invocation_short_name);
        return false;
    }
    qmp_cmd(q, "{\"execute\":\"qmp_capabilities\"}\n");
    return true;
}

char *qmp_line(struct qmp *q)
{
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->len);
        if (nl) {
            static char line[sizeof(q->buf)];
            size_t n = (size_t)(nl - q->buf);
            memcpy(line, q->buf, n);
            line[n] = 0;
            memmove(q->buf, nl + 1, q->len - n - 1);
            q->len -= n + 1;
            return line;
        }
        if (q->len == sizeof(q->buf))
            q->len = 0;
        ssize_t r = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
        if (r <= 0)
            return NULL;
        q->len += (size_t)r;
    }
}

char *qmp_cmd(struct qmp *q, const char *json)
{
    size_t n = strlen(json);
    if (write(q->fd, json, n) != (ssize_t)n)
        bench_die("writing to QMP");
    for (;;) {
        char *l = qmp_line(q);
        if (!l) {
            fprintf(stderr, "%s: QMP closed\n", program_invocation_short_name);
            exit(1);
        }
        if (strstr(l, "\"error\"")) {
            fprintf(stderr, "%s: QMP: %s\n", program_invocation_short_name, l);
            exit(1);
        }
        if (strstr(l, "\"return\""))
            return l;
    }
}

double qmp_number(const char *line, const char *key, double dflt)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return dflt;
    char *end;
    double v = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? dflt : v;
}

bool bench_wait_for(const char *what, bool (*ready)(void *), void *arg,
                    double secs, pid_t *pid)
{
    double end = bench_now_s() + secs;
    while (bench_now_s() < end) {
        if (ready(arg))
            return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        int st;
        if (pid && *pid > 0 && waitpid(*pid, &st, WNOHANG) == *pid) {
            *pid = -1;
            fprintf(stderr, "%s: the child exited while waiting for %s\n",
                    program_invocation_short_name, what);
            return false;
        }
    }
    fprintf(stderr, "%s: timed out waiting for %s\n",
            program_invocation_short_name, what);
    return false;
}

bool bench_file_nonempty(void *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

bool bench_path_exists(void *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

long bench_rss_kib(const char *pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%s/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        bench_die(path);
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

uint8_t *bench_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        bench_die(path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n)
        bench_die(path);
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}
