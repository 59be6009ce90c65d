/* What the benchmarks that run QEMU beside libhvcore share: a QMP client,
 * waiting on a condition while watching a child, and a process's RSS. */
#ifndef BENCH_QEMU_UTIL_H
#define BENCH_QEMU_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qmp {
    int fd;
    size_t len;
    char buf[1 << 16];
};

/* Connects to the QMP socket at @p path, reads the greeting and enters
 * command mode; false (with a message) when it cannot. */
bool qmp_open(struct qmp *q, const char *path);
/* One line of QMP output, or NULL at the end. */
char *qmp_line(struct qmp *q);
/* Sends a command and returns its reply line (events are skipped); an
 * error reply or a closed connection prints a message and exits 1. */
char *qmp_cmd(struct qmp *q, const char *json);
/* The number after "\"key\":" in @p line, or @p dflt. */
double qmp_number(const char *line, const char *key, double dflt);

/* Polls @p ready every millisecond for up to @p secs seconds; false with
 * a message when it timed out or when @p *pid (when > 0) exited meanwhile
 * (then *pid is set to -1). */
bool bench_wait_for(const char *what, bool (*ready)(void *), void *arg,
                    double secs, pid_t *pid);
/* Whether the file at @p path (a const char *) exists and is not empty. */
bool bench_file_nonempty(void *path);
/* Whether anything exists at @p path (a const char *). */
bool bench_path_exists(void *path);

/* VmRSS of a process, in KiB ("self" or a pid). */
long bench_rss_kib(const char *pid);
/* The whole file at @p path, NUL-terminated; exits 1 when unreadable. */
uint8_t *bench_read_file(const char *path, size_t *len);

#endif
