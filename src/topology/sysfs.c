/* Kernel CPU lists, as /sys writes them. */
#define _GNU_SOURCE
#include "topo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hvi_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int parse_id(const char **s, uint32_t *out)
{
    char *end;
    errno = 0;
    if (**s < '0' || **s > '9')
        return -1;
    unsigned long v = strtoul(*s, &end, 10);
    if (errno || v > UINT32_MAX - 1)
        return -1;
    *s = end;
    *out = (uint32_t)v;
    return 0;
}

int hvi_parse_cpulist(const char *s, uint32_t **cpus, size_t *n)
{
    uint32_t *v = NULL;
    size_t len = 0, cap = 0;
    const char *p = s;
    while (*p && *p != '\n') {
        uint32_t lo, hi;
        if (parse_id(&p, &lo) < 0)
            goto bad;
        hi = lo;
        if (*p == '-' && (p++, parse_id(&p, &hi) < 0 || hi < lo))
            goto bad;
        if (*p == ',')
            p++;
        else if (*p && *p != '\n')
            goto bad;
        for (uint64_t c = lo; c <= hi; c++) {
            if (len == cap) {
                cap = cap ? cap * 2 : 64;
                uint32_t *g = realloc(v, cap * sizeof(*v));
                if (!g) {
                    free(v);
                    return hvi_error(-ENOMEM, "out of memory reading a CPU "
                                              "list");
                }
                v = g;
            }
            v[len++] = (uint32_t)c;
        }
    }
    if (len)
        qsort(v, len, sizeof(*v), hvi_cmp_u32);
    *cpus = v;
    *n = len;
    return 0;
bad:
    free(v);
    return hvi_error(-EIO, "cannot parse the CPU list '%.64s'", s);
}

int hvi_online_cpus(uint32_t **cpus, size_t *n)
{
    static const char path[] = "/sys/devices/system/cpu/online";
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    if (!f || getline(&line, &cap, f) < 0) {
        int e = errno;
        if (f)
            fclose(f);
        free(line);
        return hvi_error(-EIO, "cannot read %s: %s", path,
                         hvc_strerror(e ? -e : -EIO));
    }
    fclose(f);
    int r = hvi_parse_cpulist(line, cpus, n);
    free(line);
    return r;
}

int hvi_cpu_in(const uint32_t *cpus, size_t n, uint32_t cpu)
{
    return n && bsearch(&cpu, cpus, n, sizeof(*cpus), hvi_cmp_u32) != NULL;
}
