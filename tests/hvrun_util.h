/* Helpers shared by the hvrun snapshot suites (test_hvrun_snapshot.c,
 * test_hvrun_hostile.c, test_hvrun_migration.c): a scratch directory,
 * hvrun started and waited for, its output, and the counter guest
 * snapshotted and restored. */
#ifndef HVRUN_UTIL_H
#define HVRUN_UTIL_H

#include "hvtest.h"

#include <stddef.h>
#include <sys/types.h>

#ifdef HVT_HVRUN /* built with the examples */

#define COUNTER HVT_GUEST_DIR "/counter64.bin"
#define WAIT_S 60.0 /* for anything hvrun should do in a second or two */

/* A test's scratch directory and the files in it. */
struct scratch {
    char dir[64];
};

/* CLOCK_MONOTONIC, in seconds. */
double now(void);

/* A new /tmp/hvt-snap-XXXXXX, removed by scratch_close(). */
void scratch_open(struct scratch *s);

/* <dir>/<name>, in one of 16 rotating static buffers. */
const char *in(const struct scratch *s, const char *name);

void scratch_close(struct scratch *s);

/* Starts hvrun with args (NULL-terminated): stdin /dev/null, stdout to
 * <dir>/<tag>.out, stderr to <dir>/<tag>.err or to @err_path. */
pid_t spawn_hvrun(const struct scratch *s, const char *tag,
                  const char *err_path, const char *const *args);

/* The wait status; SIGKILL and fail when hvrun takes over @secs. */
int wait_exit(pid_t pid, double secs);

/* Whole file, NUL-terminated, malloc'ed ("" when missing). */
char *slurp(const char *path, size_t *len);

/* <dir>/<tag>.<what> (out or err), as slurp() returns it. */
char *output(const struct scratch *s, const char *tag, const char *what);

/* hvrun's stderr is exactly one line "hvrun: ..." (containing @needle
 * when not NULL). */
void assert_one_line(const char *err, const char *needle);

/* Runs hvrun to its end; its exit status (it must not die by a signal). */
int run_hvrun(const struct scratch *s, const char *tag,
              const char *const *args);

/* The number of the last complete "count N\r\n" line in @text (0: none);
 * @tail receives what follows it (a line the snapshot cut short). */
long last_count(const char *text, const char **tail);

/* Every line of @text is "count N\r\n", from @first on, without a gap
 * (the last line may be cut short); the last complete N. */
long assert_consecutive(const char *text, long first);

/* Waits until the file holds "count @n\r\n". */
void wait_for_count(const char *path, long n, double secs, pid_t pid);

/* Waits (WAIT_S) until @p path exists: an --incoming socket listens. */
void wait_for_path(const char *path);

/* Waits (WAIT_S) for a complete line on <dir>/<tag>.err and returns that
 * file's text (malloc'ed). */
char *wait_line(const struct scratch *s, const char *tag);

/* The files at @p first and @p then, one after the other, are "count N"
 * lines from 1 on without a gap (assert_consecutive()); returns the last
 * number. A migration's source console, whose last line the switchover
 * may cut, goes on in the destination's. */
long assert_consecutive_across(const char *first, const char *then);

/* Boots the counter guest with @extra args and --snapshot @snap
 * --snapshot-after-ms @ms; checks it exits 0 with @snap written and
 * nothing else left next to it; the last complete count and the console
 * text after it (*tail, malloc'ed). */
long snapshot_counter(const struct scratch *s, const char *snap, const char *ms,
                      const char *const *extra, char **tail);

/* Restores @snap (with @extra args) in a new hvrun, waits for count
 * @k + @more, stops it with @sig and checks status 130 and that the console
 * (after the cut-short line @tail of the saving run) goes on from k + 1. */
void restore_and_check(const struct scratch *s, const char *snap,
                       const char *const *extra, long k, const char *tail,
                       int sig);

void write_bytes(const char *path, const void *buf, size_t n);

#endif /* HVT_HVRUN */
#endif
