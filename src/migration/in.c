/* The stream reader. Every byte is hostile: lengths are bounded before they
 * size anything, and every message names the section and its offset. */
#include "stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPORT_EVERY (4u << 20)

const char *hvi_section_name(uint16_t id)
{
    switch (id) {
    case HVI_CONFIG: return "CONFIG";
    case HVI_MEMORY: return "MEMORY";
    case HVI_VCPU: return "VCPU";
    case HVI_IRQCHIP: return "IRQCHIP";
    case HVI_TSC: return "TSC";
    case HVI_DEVICE: return "DEVICE";
    case HVI_PAD: return "PAD";
    case HVI_USER: return "USER";
    case HVI_FDS: return "FDS";
    case HVI_POSTCOPY: return "POSTCOPY";
    case HVI_POSTCOPY_DONE: return "POSTCOPY_DONE";
    case HVI_END: return "END";
    default: return "unknown";
    }
}

int hvi_fail(const struct hvi_sec *s, int err, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!s)
        return hvi_error(err, "stream header: %s", msg);
    return hvi_error(err,
                     "stream section %s (id %u, instance %u) at byte %llu: %s",
                     hvi_section_name(s->id), s->id, s->instance,
                     (unsigned long long)s->offset, msg);
}

int hvi_in_progress(struct hvi_in *in)
{
    if (!in->progress || in->off < in->next_report)
        return 0;
    in->next_report = in->off + REPORT_EVERY;
    int r = in->progress(in->opaque, in->off, in->total);
    if (r < 0)
        return hvi_error(r,
                         "the restore was stopped by its progress "
                         "callback (%s)",
                         hvc_strerror(r));
    return 0;
}

int hvi_in_read(struct hvi_in *in, const struct hvi_sec *s, void *buf,
                size_t len)
{
    uint8_t *p = buf;
    while (len) {
        int64_t n;
        if (in->fd >= 0) {
            n = read(in->fd, p, len > (1u << 30) ? (1u << 30) : len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                n = -errno;
        } else {
            n = in->s.read(in->s.opaque, p, len);
        }
        if (n < 0)
            return hvi_fail(s, (int)n, "reading at byte %llu failed: %s",
                            (unsigned long long)in->off, hvc_strerror((int)n));
        if (n == 0)
            return hvi_fail(s, -ENODATA,
                            "the stream ends at byte %llu, %zu bytes short",
                            (unsigned long long)in->off, len);
        if ((uint64_t)n > len)
            return hvi_fail(s, -EIO,
                            "the stream's read callback returned %lld for "
                            "%zu bytes",
                            (long long)n, len);
        p += n;
        len -= (size_t)n;
        in->off += (uint64_t)n;
    }
    return hvi_in_progress(in);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    while (n--)
        if (*p++)
            return false;
    return true;
}

int hvi_read_header(struct hvi_in *in, const char *backend, const uint8_t *key,
                    const char *passphrase)
{
    uint8_t h[HVI_HEADER_SIZE];
    int r = hvi_in_read(in, NULL, h, sizeof(h));
    if (r < 0)
        return r;
    if (memcmp(h, HVI_MAGIC, 8) != 0)
        return hvi_fail(NULL, -EBADMSG,
                        "not a libhvcore stream (magic %02x %02x %02x %02x "
                        "%02x %02x %02x %02x, want HVCORESN)",
                        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
    uint32_t crc = hvi_get32(h + 76);
    if (hvi_crc32c(0, h, 76) != crc)
        return hvi_fail(NULL, -EBADMSG, "CRC mismatch (stored 0x%08x)", crc);
    uint16_t major = hvi_get16(h + 8), minor = hvi_get16(h + 10);
    if (major < HVC_STREAM_FORMAT_MAJOR)
        return hvi_fail(NULL, -EPROTO,
                        "format %u.%u, an old one (format 1 stored KVM's own "
                        "structs for the vCPUs and interrupt controllers); "
                        "this library reads format %u.0 to %u.%u "
                        "(architectural state)",
                        major, minor, HVC_STREAM_FORMAT_MAJOR,
                        HVC_STREAM_FORMAT_MAJOR, HVC_STREAM_FORMAT_MINOR);
    if (major != HVC_STREAM_FORMAT_MAJOR || minor > HVC_STREAM_FORMAT_MINOR)
        return hvi_fail(NULL, -EPROTO,
                        "format %u.%u; this library reads %u.0 to %u.%u", major,
                        minor, HVC_STREAM_FORMAT_MAJOR, HVC_STREAM_FORMAT_MAJOR,
                        HVC_STREAM_FORMAT_MINOR);
    char arch[17] = {0}, be[9] = {0};
    memcpy(arch, h + 16, 16);
    memcpy(be, h + 32, 8);
    if (strcmp(arch, "x86_64") != 0)
        return hvi_fail(NULL, -EPROTO,
                        "the stream is for architecture \"%s\", not "
                        "x86_64",
                        HVI_QUOTE_N(arch, 16));
    /* The backend's name is information (the state is architectural since
     * format 2), but it is still text a message may show. */
    size_t be_len = strlen(be);
    bool printable = all_zero(h + 32 + be_len, 8 - be_len);
    for (size_t i = 0; i < be_len; i++)
        printable = printable && be[i] > 0x20 && be[i] < 0x7f;
    if (!printable)
        return hvi_fail(NULL, -EBADMSG,
                        "backend name \"%s\" is not NUL-padded printable "
                        "ASCII",
                        HVI_QUOTE_N(be, 8));
    snprintf(in->backend, sizeof(in->backend), "%s", be);
    if (strcmp(be, backend) != 0)
        hvi_log(HVC_LOG_INFO,
                "restoring a stream written under backend \"%s\" on \"%s\"", be,
                backend);
    uint32_t page = hvi_get32(h + 40);
    if (page != HVI_PAGE)
        return hvi_fail(NULL, -EPROTO, "page size %u, not %u", page, HVI_PAGE);
    uint32_t flags = hvi_get32(h + 44);
    if (flags & ~(HVI_HDR_ENCRYPTED | HVI_HDR_PASSPHRASE | HVI_HDR_MEMFD) ||
        (flags & (HVI_HDR_ENCRYPTED | HVI_HDR_PASSPHRASE)) ==
            HVI_HDR_PASSPHRASE ||
        ((flags & HVI_HDR_MEMFD) && (flags & HVI_HDR_ENCRYPTED)) ||
        !all_zero(h + 64, 12) ||
        (!(flags & HVI_HDR_ENCRYPTED) && !all_zero(h + 48, 16)))
        return hvi_fail(NULL, -EBADMSG,
                        "flags 0x%x or reserved bytes are not ones this "
                        "library writes",
                        flags);
    in->header_flags = flags;
    /* Guest memory by descriptor needs the descriptors: only a hand-over
     * receive has them, and it takes nothing else. */
    if ((flags & HVI_HDR_MEMFD) && !in->ho)
        return hvi_fail(NULL, -EPROTO,
                        "a hand-over stream (guest memory passed as file "
                        "descriptors); receive it with "
                        "hvc_vm_handover_receive()");
    if (!(flags & HVI_HDR_MEMFD) && in->ho)
        return hvi_fail(NULL, -EPROTO,
                        "not a hand-over stream (header flags 0x%x)", flags);
    if (!(flags & HVI_HDR_ENCRYPTED))
        return 0;
    bool want_pass = flags & HVI_HDR_PASSPHRASE;
    if (!key && !passphrase)
        return hvi_fail(NULL, -EKEYREJECTED,
                        "the stream is encrypted; give its %s",
                        want_pass ? "passphrase" : "key");
    if (want_pass && !passphrase)
        return hvi_fail(NULL, -EKEYREJECTED,
                        "the stream was encrypted with a passphrase, not a "
                        "key");
    if (!want_pass && !key)
        return hvi_fail(NULL, -EKEYREJECTED,
                        "the stream was encrypted with a key, not a "
                        "passphrase");
    return hvi_crypt_new(want_pass ? NULL : key, passphrase, h + 48,
                         &in->crypt);
}

int hvi_next_section(struct hvi_in *in, struct hvi_sec *s)
{
    memset(s, 0, sizeof(*s));
    s->offset = in->off;
    s->id = 0;
    int r = hvi_in_read(in, s, s->raw, sizeof(s->raw));
    if (r < 0)
        return r;
    s->id = hvi_get16(s->raw);
    s->flags = hvi_get16(s->raw + 2);
    s->version = hvi_get32(s->raw + 4);
    s->length = hvi_get64(s->raw + 8);
    s->instance = hvi_get32(s->raw + 16);
    s->crc = hvi_get32(s->raw + 20);
    if (s->flags & ~(HVI_F_REQUIRED | HVI_F_ENCRYPTED))
        return hvi_fail(s, -EBADMSG, "unknown section flags 0x%x", s->flags);
    bool sealed = s->flags & HVI_F_ENCRYPTED;
    if (sealed != (in->crypt != NULL) && s->id != HVI_PAD)
        return hvi_fail(s, -EBADMSG, "the section is %sencrypted in a%s stream",
                        sealed ? "" : "not ",
                        in->crypt ? "n encrypted" : " plain");
    uint64_t max = s->id == HVI_MEMORY
                       ? HVI_MEM_DESC + (uint64_t)HVI_MAX_RUN_PAGES * HVI_PAGE +
                             HVI_TAG_SIZE
                       : HVI_MAX_SECTION + HVI_TAG_SIZE;
    if (s->length > max)
        return hvi_fail(s, -EBADMSG,
                        "payload length %llu exceeds the bound %llu",
                        (unsigned long long)s->length, (unsigned long long)max);
    if (sealed && s->length < HVI_TAG_SIZE)
        return hvi_fail(s, -EBADMSG,
                        "encrypted payload of %llu bytes has no room for "
                        "its tag",
                        (unsigned long long)s->length);
    return 0;
}

int hvi_read_payload(struct hvi_in *in, const struct hvi_sec *s, uint8_t **out,
                     size_t *len)
{
    if (s->length > HVI_MAX_SECTION + HVI_TAG_SIZE)
        return hvi_fail(s, -EBADMSG, "payload of %llu bytes is too large",
                        (unsigned long long)s->length);
    size_t n = (size_t)s->length;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        return hvi_fail(s, -ENOMEM, "out of memory for %zu bytes", n);
    int r = hvi_in_read(in, s, p, n);
    if (r == 0) {
        uint32_t crc = hvi_crc32c(hvi_crc32c(0, s->raw, 20), p, n);
        if (crc != s->crc)
            r = hvi_fail(s, -EBADMSG,
                         "CRC mismatch (stored 0x%08x, computed 0x%08x)",
                         s->crc, crc);
    }
    if (r == 0 && (s->flags & HVI_F_ENCRYPTED)) {
        r = hvi_unseal(in->crypt, s->offset, s->raw, p, n);
        if (r == -EKEYREJECTED)
            r = hvi_fail(s, r,
                         "authentication failed: wrong key or passphrase, "
                         "or altered data");
        else if (r < 0)
            r = hvi_fail(s, r, "decryption failed");
        n -= HVI_TAG_SIZE;
    }
    if (r < 0) {
        free(p);
        return r;
    }
    *out = p;
    *len = n;
    return 0;
}

int hvi_skip_payload(struct hvi_in *in, const struct hvi_sec *s)
{
    /* Checked in pieces, so a large unknown section costs no memory. */
    uint8_t buf[16384];
    uint64_t left = s->length;
    uint32_t crc = hvi_crc32c(0, s->raw, 20);
    while (left) {
        size_t n = left > sizeof(buf) ? sizeof(buf) : (size_t)left;
        int r = hvi_in_read(in, s, buf, n);
        if (r < 0)
            return r;
        crc = hvi_crc32c(crc, buf, n);
        left -= n;
    }
    if (crc != s->crc)
        return hvi_fail(s, -EBADMSG,
                        "CRC mismatch (stored 0x%08x, computed 0x%08x)", s->crc,
                        crc);
    return 0;
}
