/* The progress line of a snapshot save or restore: bytes so far (of about
 * how many: a save only estimates, as zero pages cost nothing) and the
 * rate, redrawn in place on stderr (at most ten times a second) when
 * stderr is a terminal, and drawn a last time with the totals, ended with a
 * newline; erased when the work failed or was cancelled. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void hvrun_progress_begin(struct hvrun_progress *p, const char *what)
{
    memset(p, 0, sizeof(*p));
    p->what = what;
    p->tty = isatty(STDERR_FILENO);
    p->start = seconds();
}

int hvrun_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct hvrun_progress *p = opaque;
    if (hvrun_interrupted())
        return -ECANCELED; /* Ctrl-C stops a long save or restore */
    if (!p->tty)
        return 0;
    p->done = done;
    double t = seconds();
    if (p->drawn && t - p->last < 0.1)
        return 0;
    p->last = t;
    double mb = (double)done / 1e6;
    double rate = t > p->start ? mb / (t - p->start) : 0;
    if (total > done)
        fprintf(stderr, "\rhvrun: %s: %.1f MB of about %.1f, %.1f MB/s   ",
                p->what, mb, (double)total / 1e6, rate);
    else
        fprintf(stderr, "\rhvrun: %s: %.1f MB, %.1f MB/s   ", p->what, mb,
                rate);
    p->drawn = true;
    return 0;
}

void hvrun_progress_end(struct hvrun_progress *p, bool ok, uint64_t bytes)
{
    if (!p->drawn)
        return;
    if (ok) {
        double t = seconds() - p->start;
        double mb = (double)(bytes > p->done ? bytes : p->done) / 1e6;
        fprintf(stderr,
                "\rhvrun: %s: %.1f MB in %.2f s, %.1f MB/s, done"
                "                \n",
                p->what, mb, t, t > 0 ? mb / t : 0);
    } else {
        /* Erased, so that the one line that says what went wrong is all
         * that stays. */
        fprintf(stderr, "\r%*s\r", 79, "");
    }
    p->drawn = false;
}
