/* hvc_migrate_stats as one JSON object: each field the caller's size
 * covers, by its C name, in declaration order. */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct field {
    const char *name;
    size_t offset;
    bool wide; /* uint64_t, else uint32_t */
};

#define F32(n)                                                                 \
    {                                                                          \
#n, offsetof(hvc_migrate_stats, n), false                              \
    }
#define F64(n)                                                                 \
    {                                                                          \
#n, offsetof(hvc_migrate_stats, n), true                               \
    }

static const struct field fields[] = {
    F32(dirty_mode),
    F32(rounds),
    F32(completed),
    F64(setup_ms),
    F64(total_ms),
    F64(downtime_us),
    F64(bytes_initial),
    F64(pages_initial),
    F64(bytes_precopy),
    F64(pages_precopy),
    F64(bytes_final),
    F64(pages_final),
    F64(throughput_bps),
    F64(dirty_pages_per_s),
    F64(remaining_pages),
    F64(expected_downtime_us),
    F64(pause_us),
    F64(final_send_us),
    F64(ack_wait_us),
    F32(throttle_percent),
    F32(tls),
    F32(postcopy),
    F64(postcopy_pages),
    F64(postcopy_pages_pushed),
    F64(postcopy_pages_requested),
    F64(postcopy_bytes),
    F64(postcopy_fault_median_us),
    F64(postcopy_fault_p99_us),
    F64(postcopy_pages_lost),
    F64(postcopy_ms),
    F32(connections),
    F32(postcopy_channel),
};

/* Appends to buf like snprintf, keeping count of the whole length. */
static void put(char *buf, size_t len, size_t *at, const char *fmt, ...)
    HVI_PRINTF(4, 5);
static void put(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*at < len ? buf + *at : NULL, *at < len ? len - *at : 0,
                      fmt, ap);
    va_end(ap);
    if (n > 0)
        *at += (size_t)n;
}

static const char *mode_name(uint32_t mode)
{
    if (mode & HVC_DIRTY_RING)
        return "ring";
    if (mode & HVC_DIRTY_BITMAP)
        return "bitmap";
    return "none";
}

int hvc_migrate_stats_json(const hvc_migrate_stats *st, char *buf, size_t len)
{
    if (!st || (!buf && len))
        return hvi_error(-EINVAL, "hvc_migrate_stats_json: NULL %s",
                         st ? "buffer" : "statistics");
    if (st->size < offsetof(hvc_migrate_stats, throttle_percent))
        return hvi_error(-EINVAL,
                         "hvc_migrate_stats_json: size %u is not "
                         "one this library knows",
                         st->size);
    if (len)
        buf[0] = 0;
    size_t at = 0;
    put(buf, len, &at, "{");
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const struct field *f = &fields[i];
        if (f->offset + (f->wide ? 8 : 4) > st->size)
            break;
        const uint8_t *p = (const uint8_t *)st + f->offset;
        uint64_t v;
        if (f->wide) {
            memcpy(&v, p, 8);
        } else {
            uint32_t w;
            memcpy(&w, p, 4);
            v = w;
        }
        put(buf, len, &at, "%s\"%s\":%" PRIu64, i ? "," : "", f->name, v);
        if (f->offset == offsetof(hvc_migrate_stats, dirty_mode))
            put(buf, len, &at, ",\"dirty_tracking\":\"%s\"",
                mode_name((uint32_t)v));
    }
    /* The per-connection figures as arrays, as many as there were. */
    if (st->size >= sizeof(hvc_migrate_stats)) {
        uint32_t n = st->connections < HVC_MIGRATE_CONNECTIONS_MAX
                         ? st->connections
                         : HVC_MIGRATE_CONNECTIONS_MAX;
        for (int a = 0; a < 2; a++) {
            const uint64_t *v = a ? st->connection_pages : st->connection_bytes;
            put(buf, len, &at, ",\"%s\":[",
                a ? "connection_pages" : "connection_bytes");
            for (uint32_t k = 0; k < n; k++)
                put(buf, len, &at, "%s%" PRIu64, k ? "," : "", v[k]);
            put(buf, len, &at, "]");
        }
    }
    put(buf, len, &at, "}");
    if (at > INT32_MAX)
        return hvi_error(-EOVERFLOW, "hvc_migrate_stats_json: too long");
    return (int)at;
}
