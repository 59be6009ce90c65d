/* The stream writer: sections in order, never seeking. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPORT_EVERY (4u << 20)

int hvi_out_progress(struct hvi_out *o, bool final)
{
    if (!o->progress || (!final && o->off < o->next_report))
        return 0;
    o->next_report = o->off + REPORT_EVERY;
    int r = o->progress(o->opaque, o->off, o->total > o->off ? o->total : 0);
    if (r < 0)
        return hvi_error(r,
                         "the save was stopped by its progress callback "
                         "(%s)",
                         hvc_strerror(r));
    return 0;
}

int hvi_out_write(struct hvi_out *o, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        int64_t n;
        if (o->fd >= 0) {
            n = hvi_os_write_nosigpipe(o->fd, p,
                                       len > (1u << 30) ? (1u << 30) : len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                n = -errno;
        } else {
            n = o->s.write(o->s.opaque, p, len);
        }
        if (n < 0)
            return hvi_error((int)n,
                             "writing the stream at byte %llu failed: %s",
                             (unsigned long long)o->off, hvc_strerror((int)n));
        if (n == 0 || (uint64_t)n > len)
            return hvi_error(-EIO,
                             "the stream's write callback returned %lld for "
                             "%zu bytes",
                             (long long)n, len);
        p += n;
        len -= (size_t)n;
        o->off += (uint64_t)n;
    }
    return hvi_out_progress(o, false);
}

static bool required(uint16_t id)
{
    return id != HVI_PAD && id != HVI_USER;
}

/* The first 20 bytes of a section header; the CRC goes in bytes 20-23. */
static void header(uint8_t h[HVI_SEC_HEADER], uint16_t id, uint16_t flags,
                   uint64_t length, uint32_t instance)
{
    hvi_put16(h, id);
    hvi_put16(h + 2, flags);
    hvi_put32(h + 4, HVI_VERSION);
    hvi_put64(h + 8, length);
    hvi_put32(h + 16, instance);
}

static int grow_scratch(struct hvi_out *o, size_t need)
{
    if (o->scratch_cap >= need)
        return 0;
    uint8_t *p = realloc(o->scratch, need);
    if (!p)
        return hvi_error(-ENOMEM, "out of memory sealing a %zu-byte section",
                         need);
    o->scratch = p;
    o->scratch_cap = need;
    return 0;
}

/* Writes a section whose payload is @p a then @p b (either may be empty):
 * sealed when the stream is encrypted. @p crc_len: how many payload bytes
 * the section CRC covers when not sealed (all, or the MEMORY descriptor). */
static int put(struct hvi_out *o, uint16_t id, uint32_t instance, const void *a,
               size_t alen, const void *b, size_t blen, size_t crc_len)
{
    uint8_t h[HVI_SEC_HEADER];
    uint16_t flags = required(id) ? HVI_F_REQUIRED : 0;
    size_t len = alen + blen;
    if (o->crypt && id != HVI_PAD) {
        int r = grow_scratch(o, 2 * len + HVI_TAG_SIZE);
        if (r < 0)
            return r;
        uint8_t *plain = o->scratch + len + HVI_TAG_SIZE;
        if (alen)
            memcpy(plain, a, alen);
        if (blen)
            memcpy(plain + alen, b, blen);
        header(h, id, flags | HVI_F_ENCRYPTED, len + HVI_TAG_SIZE, instance);
        if ((r = hvi_seal(o->crypt, o->off, h, plain, len, o->scratch)) < 0)
            return r;
        uint32_t crc = hvi_crc32c(0, h, 20);
        crc = hvi_crc32c(crc, o->scratch, len + HVI_TAG_SIZE);
        hvi_put32(h + 20, crc);
        o->sections++;
        o->payload_bytes += len + HVI_TAG_SIZE;
        if ((r = hvi_out_write(o, h, sizeof(h))) < 0)
            return r;
        return hvi_out_write(o, o->scratch, len + HVI_TAG_SIZE);
    }
    header(h, id, flags, len, instance);
    uint32_t crc = hvi_crc32c(0, h, 20);
    size_t ca = crc_len < alen ? crc_len : alen;
    crc = hvi_crc32c(crc, a, ca);
    if (crc_len > alen)
        crc = hvi_crc32c(crc, b, crc_len - alen);
    hvi_put32(h + 20, crc);
    o->sections++;
    o->payload_bytes += len;
    int r = hvi_out_write(o, h, sizeof(h));
    if (r == 0 && alen)
        r = hvi_out_write(o, a, alen);
    if (r == 0 && blen)
        r = hvi_out_write(o, b, blen);
    return r;
}

int hvi_put_section(struct hvi_out *o, uint16_t id, uint32_t instance,
                    const void *payload, size_t len)
{
    return put(o, id, instance, payload, len, NULL, 0, len);
}

int hvi_put_section2(struct hvi_out *o, uint16_t id, uint32_t instance,
                     const void *a, size_t alen, const void *b, size_t blen)
{
    return put(o, id, instance, a, alen, b, blen, alen + blen);
}

/* A PAD section so that @p ahead bytes from now the stream is at a page
 * boundary. */
static int pad(struct hvi_out *o, size_t ahead)
{
    uint64_t at = (o->off + ahead) % HVI_PAGE;
    if (at == 0)
        return 0;
    size_t gap = HVI_PAGE - at;
    while (gap < HVI_SEC_HEADER)
        gap += HVI_PAGE;
    static const uint8_t zeros[2 * HVI_PAGE];
    return put(o, HVI_PAD, 0, zeros, gap - HVI_SEC_HEADER, NULL, 0,
               gap - HVI_SEC_HEADER);
}

int hvi_put_memory(struct hvi_out *o, uint64_t gpa, uint64_t pages,
                   const uint8_t *data, uint32_t data_crc)
{
    uint8_t d[HVI_MEM_DESC];
    size_t bytes = data ? pages * HVI_PAGE : 0;
    hvi_put64(d, gpa);
    hvi_put64(d + 8, pages);
    hvi_put32(d + 16, data ? HVI_MEM_RAW : HVI_MEM_ZERO);
    hvi_put32(d + 20, data ? data_crc : 0);
    if (data)
        o->raw_pages += pages;
    else
        o->zero_pages += pages;
    int r;
    if (data && o->align && !o->crypt &&
        (r = pad(o, HVI_SEC_HEADER + HVI_MEM_DESC)) < 0)
        return r;
    /* Unsealed, the section CRC covers the descriptor and the descriptor's
     * CRC the pages, so a restore that maps the pages checks the rest at
     * once and the pages when it is asked to. */
    return put(o, HVI_MEMORY, 0, d, sizeof(d), data, bytes, sizeof(d));
}

int hvi_put_end(struct hvi_out *o)
{
    uint8_t p[32];
    /* The END section counts itself. */
    hvi_put64(p, o->sections + 1);
    hvi_put64(p + 8, o->raw_pages);
    hvi_put64(p + 16, o->zero_pages);
    hvi_put64(p + 24,
              o->payload_bytes + sizeof(p) + (o->crypt ? HVI_TAG_SIZE : 0));
    int r = hvi_put_section(o, HVI_END, 0, p, sizeof(p));
    return r < 0 ? r : hvi_out_progress(o, true);
}

void hvi_out_free(struct hvi_out *o)
{
    hvi_crypt_free(o->crypt);
    free(o->scratch);
    o->crypt = NULL;
    o->scratch = NULL;
}
