/* What every benchmark needs: failing with a message, a monotonic clock,
 * and the median (with min and max) of a set of samples. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>

struct bench_stats {
    double median, min, max;
};

/* Prints "<program>: <what>: <strerror(errno)>" and exits with 1. */
void bench_die(const char *what);
/* When @p r < 0: prints "<program>: <what>: <hvc_last_error()>", exits 1. */
void bench_check_hv(int r, const char *what);
/* CLOCK_MONOTONIC in seconds. */
double bench_now_s(void);
/* Sorts @p v in place and returns its median, min and max. */
struct bench_stats bench_summarise(double *v, size_t n);
/* The median of @p n samples, left in their order. */
double bench_median(const double *v, size_t n);
/* The median of the per-sample ratios a[i] / b[i]. */
double bench_ratio_median(const double *a, const double *b, size_t n);

#endif
