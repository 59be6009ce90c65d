/* hvrun's own configuration inside a snapshot (hvc_save_options::user_data):
 * what a restore needs to attach the same devices. The bytes come back from
 * a file anyone could have written, so the decoder trusts nothing.
 *
 * Format, version 1 or 2, little-endian:
 *   8 bytes   magic "HVRUNCFG"
 *   u16       version (2 when a NET field follows, else 1, so that an
 *             hvrun without --net reads it); a reader refuses another
 *   u16       number of fields that follow, then each field:
 *   u16 tag, u16 length, length bytes of value:
 *     1 MEM      u64 guest RAM in MiB (16..1048576)          exactly once
 *     2 CPUS     u32 vCPUs (1..255)                          exactly once
 *     3 SERIAL   u8 mode (0 stdio, 1 file, 2 none), then for
 *                a file its path (1..4095 bytes, no NUL)     exactly once
 *     4 DISK     u8 flags (bit 0: read-only), path as above  0..8 times
 *     5 RNG      u8 0 or 1                                   at most once
 *     6 VCONSOLE u8 0 or 1 (virtio-console on stdio)         at most once
 *     7 NET      u8 queues (1), 6 bytes MAC (all zero: the     0..4 times,
 *                device's own), tap name (1..15 bytes,        version 2
 *                no NUL or '/')
 * Nothing may follow the last field. An unknown tag is refused: a later
 * hvrun that adds one raises the version. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "HVRUNCFG"
#define MAGIC_LEN 8
#define VERSION 1
#define VERSION_NET 2
#define MAX_PATH_BYTES 4095
#define MAX_FIELDS 64

enum { F_MEM = 1, F_CPUS, F_SERIAL, F_DISK, F_RNG, F_VCONSOLE, F_NET, F_LAST };

struct buf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_le(struct buf *b, uint64_t v, size_t bytes)
{
    uint8_t le[8];
    for (size_t i = 0; i < bytes; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    put(b, le, bytes);
}

static void field(struct buf *b, uint16_t tag, const void *v, size_t n)
{
    put_le(b, tag, 2);
    put_le(b, n, 2);
    put(b, v, n);
}

/* A field of one byte and a path: absolute when the file exists, so that
 * a restore from another directory finds it. */
static void path_field(struct buf *b, uint16_t tag, uint8_t head,
                       const char *path)
{
    char *abs = realpath(path, NULL);
    const char *p = abs ? abs : path;
    size_t n = strlen(p);
    if (n > MAX_PATH_BYTES) {
        b->failed = true;
    } else {
        uint8_t v[1 + MAX_PATH_BYTES];
        v[0] = head;
        memcpy(v + 1, p, n);
        field(b, tag, v, n + 1);
    }
    free(abs);
}

int hvrun_config_encode(const struct options *o, uint8_t **out, size_t *len)
{
    struct buf b = {0};
    put(&b, MAGIC, MAGIC_LEN);
    put_le(&b, o->nr_nets ? VERSION_NET : VERSION, 2);
    put_le(&b, 5 + o->nr_disks + o->nr_nets, 2);
    uint8_t v[8];
    for (int i = 0; i < 8; i++)
        v[i] = (uint8_t)(o->mem_mib >> (8 * i));
    field(&b, F_MEM, v, 8);
    for (int i = 0; i < 4; i++)
        v[i] = (uint8_t)(o->cpus >> (8 * i));
    field(&b, F_CPUS, v, 4);
    if (o->serial == SERIAL_FILE) {
        path_field(&b, F_SERIAL, 1, o->serial_path);
    } else {
        v[0] = o->serial == SERIAL_STDIO ? 0 : 2;
        field(&b, F_SERIAL, v, 1);
    }
    for (uint32_t i = 0; i < o->nr_disks; i++)
        path_field(&b, F_DISK, o->disk_readonly[i] ? 1 : 0, o->disks[i]);
    v[0] = o->rng;
    field(&b, F_RNG, v, 1);
    v[0] = o->virtio_console;
    field(&b, F_VCONSOLE, v, 1);
    for (uint32_t i = 0; i < o->nr_nets; i++) {
        uint8_t nv[7 + 15];
        size_t k = strlen(o->nets[i].tap);
        nv[0] = (uint8_t)o->nets[i].queues;
        memcpy(nv + 1, o->nets[i].mac, 6);
        memcpy(nv + 7, o->nets[i].tap, k);
        field(&b, F_NET, nv, 7 + k);
    }
    if (b.failed) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

static uint64_t get_le(const uint8_t *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A path value: 1..MAX_PATH_BYTES bytes without NUL; malloc'ed copy. */
static char *path_of(const uint8_t *p, size_t n)
{
    if (n == 0 || n > MAX_PATH_BYTES || memchr(p, 0, n))
        return NULL;
    return strndup((const char *)p, n);
}

static int decode_field(struct options *s, uint16_t tag, const uint8_t *v,
                        uint16_t n, char *err, size_t errlen)
{
    switch (tag) {
    case F_MEM:
        if (n != 8)
            break;
        s->mem_mib = get_le(v, 8);
        if (s->mem_mib < 16 || s->mem_mib > (1u << 20))
            return bad(err, errlen, "RAM of %llu MiB is out of range",
                       (unsigned long long)s->mem_mib);
        return 0;
    case F_CPUS:
        if (n != 4)
            break;
        s->cpus = (uint32_t)get_le(v, 4);
        if (s->cpus < 1 || s->cpus > 255)
            return bad(err, errlen, "%u vCPUs is out of range", s->cpus);
        return 0;
    case F_SERIAL:
        if (n < 1 || v[0] > 2 || (v[0] != 1 && n != 1))
            break;
        s->serial = v[0] == 0   ? SERIAL_STDIO
                    : v[0] == 1 ? SERIAL_FILE
                                : SERIAL_NONE;
        if (v[0] == 1 && !(s->serial_path = path_of(v + 1, n - 1u)))
            break;
        return 0;
    case F_DISK:
        if (n < 2 || v[0] > 1)
            break;
        if (s->nr_disks == HVRUN_MAX_DISKS)
            return bad(err, errlen, "more than %d disks", HVRUN_MAX_DISKS);
        if (!(s->disks[s->nr_disks] = path_of(v + 1, n - 1u)))
            break;
        s->disk_readonly[s->nr_disks++] = v[0] == 1;
        return 0;
    case F_NET: {
        if (n < 8 || n > 7 + 15 || v[0] != 1 || (v[1] & 1) ||
            memchr(v + 7, 0, n - 7u) || memchr(v + 7, '/', n - 7u))
            break;
        if (s->nr_nets == HVRUN_MAX_NETS)
            return bad(err, errlen, "more than %d network devices",
                       HVRUN_MAX_NETS);
        struct net_opt *c = &s->nets[s->nr_nets];
        if (!(c->tap = strndup((const char *)v + 7, n - 7u)))
            break;
        c->queues = v[0];
        memcpy(c->mac, v + 1, 6);
        s->nr_nets++;
        return 0;
    }
    case F_RNG:
    case F_VCONSOLE:
        if (n != 1 || v[0] > 1)
            break;
        if (tag == F_RNG)
            s->rng = v[0];
        else
            s->virtio_console = v[0];
        return 0;
    default: return bad(err, errlen, "unknown field %u", tag);
    }
    return bad(err, errlen, "malformed field %u (%u bytes)", tag, n);
}

int hvrun_config_decode(const void *buf, size_t len, struct options *s,
                        char *err, size_t errlen)
{
    const uint8_t *p = buf;
    memset(s, 0, sizeof(*s));
    s->numa_node = -1;
    if (!buf || len == 0)
        return bad(err, errlen,
                   "the snapshot holds no hvrun configuration (was it saved "
                   "by hvrun?)");
    if (len < MAGIC_LEN + 4 || memcmp(p, MAGIC, MAGIC_LEN) != 0)
        return bad(err, errlen,
                   "the snapshot's user data is not an hvrun configuration");
    unsigned version = (unsigned)get_le(p + MAGIC_LEN, 2);
    if (version != VERSION && version != VERSION_NET)
        return bad(err, errlen,
                   "hvrun configuration version %u; this hvrun reads %u "
                   "and %u",
                   version, VERSION, VERSION_NET);
    unsigned count = (unsigned)get_le(p + MAGIC_LEN + 2, 2);
    if (count > MAX_FIELDS)
        return bad(err, errlen, "hvrun configuration of %u fields", count);
    size_t off = MAGIC_LEN + 4;
    unsigned seen[F_LAST] = {0};
    for (unsigned i = 0; i < count; i++) {
        if (len - off < 4)
            return bad(err, errlen, "hvrun configuration truncated at %zu",
                       off);
        uint16_t tag = (uint16_t)get_le(p + off, 2);
        uint16_t n = (uint16_t)get_le(p + off + 2, 2);
        off += 4;
        if (len - off < n)
            return bad(err, errlen,
                       "hvrun configuration field %u of %u bytes passes "
                       "the end at %zu",
                       tag, n, off);
        if (tag > 0 && tag < F_LAST && tag != F_DISK && tag != F_NET &&
            seen[tag])
            return bad(err, errlen, "hvrun configuration field %u twice", tag);
        if (tag == F_NET && version < VERSION_NET)
            return bad(err, errlen,
                       "hvrun configuration version %u has a network "
                       "field",
                       version);
        if (decode_field(s, tag, p + off, n, err, errlen) < 0)
            return -1;
        seen[tag]++;
        off += n;
    }
    if (off != len)
        return bad(err, errlen,
                   "%zu stray bytes after the hvrun "
                   "configuration",
                   len - off);
    if (!seen[F_MEM] || !seen[F_CPUS] || !seen[F_SERIAL])
        return bad(err, errlen,
                   "the hvrun configuration lacks RAM size, "
                   "vCPU count or serial set-up");
    return 0;
}

int hvrun_config_merge(struct options *s, const struct options *o, char *err,
                       size_t errlen)
{
    if (o->mem_given && o->mem_mib != s->mem_mib)
        return bad(
            err, errlen, "--mem %llu conflicts with the snapshot's %llu MiB",
            (unsigned long long)o->mem_mib, (unsigned long long)s->mem_mib);
    if (o->cpus_given && o->cpus != s->cpus)
        return bad(err, errlen, "--cpus %u conflicts with the snapshot's %u",
                   o->cpus, s->cpus);
    if (o->rng && !s->rng)
        return bad(err, errlen, "--rng: the snapshot has no virtio-rng");
    if (o->virtio_console && !s->virtio_console)
        return bad(err, errlen,
                   "--virtio-console: the snapshot has no virtio-console");
    if (o->nr_disks && o->nr_disks != s->nr_disks)
        return bad(err, errlen,
                   "%u --disk given; the snapshot has %u (give all or none)",
                   o->nr_disks, s->nr_disks);
    for (uint32_t i = 0; i < o->nr_disks; i++) {
        if (o->disk_readonly[i] != s->disk_readonly[i])
            return bad(err, errlen, "--disk %s: disk %u of the snapshot is %s",
                       o->disks[i], i + 1,
                       s->disk_readonly[i] ? "read-only (,ro)"
                                           : "writable (no ,ro)");
        free((char *)s->disks[i]);
        s->disks[i] = o->disks[i];
        /* a window given now holds until the device's record (if it
         * carries grants) replaces it */
        s->disk_dma_gpa[i] = o->disk_dma_gpa[i];
        s->disk_dma_len[i] = o->disk_dma_len[i];
    }
    if (o->nr_nets && o->nr_nets != s->nr_nets)
        return bad(err, errlen,
                   "%u --net given; the snapshot has %u (give all or none)",
                   o->nr_nets, s->nr_nets);
    static const uint8_t zero[6];
    for (uint32_t i = 0; i < o->nr_nets; i++) {
        const struct net_opt *c = &o->nets[i];
        struct net_opt *t = &s->nets[i];
        if (memcmp(c->mac, zero, 6) != 0 && memcmp(t->mac, zero, 6) != 0 &&
            memcmp(c->mac, t->mac, 6) != 0)
            return bad(err, errlen,
                       "--net tap=%s: mac= differs from the snapshot's "
                       "device %u",
                       c->tap, i + 1);
        free((char *)t->tap);
        t->tap = c->tap; /* the host side may change: opened by name */
        t->dma_gpa = c->dma_gpa;
        t->dma_len = c->dma_len;
    }
    if (o->serial_given) {
        free((char *)s->serial_path);
        s->serial = o->serial;
        s->serial_path = o->serial_path;
    }
    /* What is not part of the guest comes from this command line. */
    s->numa_node = o->numa_node;
    s->snapshot = o->snapshot;
    s->snapshot_timed = o->snapshot_timed;
    s->snapshot_after_ms = o->snapshot_after_ms;
    s->keep_running = o->keep_running;
    s->audit_sharing = o->audit_sharing;
    s->restore = o->restore;
    s->incoming = o->incoming; /* --net: a busy tap is attached later */
    s->restore_mmap = o->restore_mmap;
    s->key_file = o->key_file;
    s->passphrase_file = o->passphrase_file;
    s->have_key = o->have_key;
    memcpy(s->key, o->key, sizeof(s->key));
    s->passphrase = o->passphrase;
    s->cmdline = o->cmdline;
    return 0;
}
