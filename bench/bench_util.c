#define _GNU_SOURCE /* program_invocation_short_name */
#include "bench_util.h"

#include <errno.h>
#include <hvcore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void bench_die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
            strerror(errno));
    exit(1);
}

void bench_check_hv(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
                hvc_last_error());
        exit(1);
    }
}

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct bench_stats bench_summarise(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    struct bench_stats s = {v[n / 2], v[0], v[n - 1]};
    if (n % 2 == 0)
        s.median = (v[n / 2 - 1] + v[n / 2]) / 2;
    return s;
}

double bench_median(const double *v, size_t n)
{
    double *s = malloc(n * sizeof(*v));
    if (!s)
        bench_die("malloc");
    memcpy(s, v, n * sizeof(*v));
    double m = bench_summarise(s, n).median;
    free(s);
    return m;
}

double bench_ratio_median(const double *a, const double *b, size_t n)
{
    double *r = malloc(n * sizeof(*r));
    if (!r)
        bench_die("malloc");
    for (size_t i = 0; i < n; i++)
        r[i] = a[i] / b[i];
    double m = bench_summarise(r, n).median;
    free(r);
    return m;
}
