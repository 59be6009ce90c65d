/* Self-describing state records: a fixed header, then tagged and typed
 * fields. Devices write them; the migration stream carries them. Readers
 * treat a record as hostile: every length is checked before use. */
#include "internal.h"

#include <errno.h>
#include <string.h>

#define FIELD_HDR 8 /* u16 tag, u16 kind, u32 length */
#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

static void put(struct hvi_rec_writer *w, uint16_t tag, uint16_t kind,
                const void *p, uint32_t n)
{
    size_t need = FIELD_HDR + ALIGN8(n);
    if (w->len + need > w->cap || !w->buf) {
        w->len += need; /* keep counting: the caller learns the size */
        w->overflow = true;
        return;
    }
    uint8_t *o = w->buf + w->len;
    memcpy(o, &tag, 2);
    memcpy(o + 2, &kind, 2);
    memcpy(o + 4, &n, 4);
    memcpy(o + FIELD_HDR, p, n);
    memset(o + FIELD_HDR + n, 0, ALIGN8(n) - n);
    w->len += need;
}

void hvi_rec_u64(struct hvi_rec_writer *w, uint16_t tag, uint64_t v)
{
    put(w, tag, HVI_REC_U64, &v, 8);
}

void hvi_rec_bytes(struct hvi_rec_writer *w, uint16_t tag, const void *p,
                   uint32_t n)
{
    put(w, tag, HVI_REC_BYTES, p, n);
}

/* Walks to a field; -ENOENT when absent, -EBADMSG when the walk finds a
 * length that runs past the record. */
static int find(const struct hvi_rec_reader *r, uint16_t tag, uint16_t kind,
                const uint8_t **data, uint32_t *len)
{
    size_t off = 0;
    while (off < r->len) {
        if (r->len - off < FIELD_HDR)
            return hvi_error(-EBADMSG,
                             "%s state: truncated field header at "
                             "byte %zu",
                             r->what, off);
        uint16_t t, k;
        uint32_t n;
        memcpy(&t, r->buf + off, 2);
        memcpy(&k, r->buf + off + 2, 2);
        memcpy(&n, r->buf + off + 4, 4);
        if (ALIGN8((size_t)n) > r->len - off - FIELD_HDR)
            return hvi_error(-EBADMSG,
                             "%s state: field %u at byte %zu has length %u, "
                             "past the record's end",
                             r->what, t, off, n);
        if (t == tag) {
            if (k != kind || (kind == HVI_REC_U64 && n != 8))
                return hvi_error(-EBADMSG,
                                 "%s state: field %u has kind %u length %u",
                                 r->what, t, k, n);
            *data = r->buf + off + FIELD_HDR;
            *len = n;
            return 0;
        }
        off += FIELD_HDR + ALIGN8((size_t)n);
    }
    return hvi_error(-EBADMSG, "%s state: field %u is missing", r->what, tag);
}

int hvi_rec_get_u64(const struct hvi_rec_reader *r, uint16_t tag, uint64_t *v)
{
    const uint8_t *p;
    uint32_t n;
    int e = find(r, tag, HVI_REC_U64, &p, &n);
    if (e == 0)
        memcpy(v, p, 8);
    return e;
}

int hvi_rec_get_bytes(const struct hvi_rec_reader *r, uint16_t tag,
                      const void **p, uint32_t *n)
{
    const uint8_t *d;
    int e = find(r, tag, HVI_REC_BYTES, &d, n);
    if (e == 0)
        *p = d;
    return e;
}
