/* MEMORY sections into the new VM's regions: read into place, or mapped
 * from the snapshot file copy-on-write. A later run replaces an earlier
 * one, so the pages each run wrote are tracked per region. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, mkostemp */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct hvi_mem_state {
    hvc_vm *vm;
    bool mapped;
    size_t n;
    hvc_memory_region **regs;
    uint8_t **written; /* one bit per page, per region */
};

int hvi_mem_state_new(hvc_vm *vm, bool mapped, struct hvi_mem_state **out)
{
    struct hvi_mem_state *m = calloc(1, sizeof(*m));
    if (!m)
        return hvi_error(-ENOMEM, "out of memory");
    m->vm = vm;
    m->mapped = mapped;
    int r = hvi_memory_snapshot(vm, &m->regs, &m->n);
    if (r == 0 && !(m->written = calloc(m->n + 1, sizeof(*m->written))))
        r = hvi_error(-ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < m->n; i++) {
        uint64_t pages = m->regs[i]->len / HVI_PAGE;
        if (!(m->written[i] = calloc(pages / 8 + 1, 1)))
            r = hvi_error(-ENOMEM, "out of memory");
    }
    if (r < 0) {
        hvi_mem_state_free(m);
        return r;
    }
    *out = m;
    return 0;
}

void hvi_mem_state_free(struct hvi_mem_state *m)
{
    if (!m)
        return;
    for (size_t i = 0; m->written && i < m->n; i++)
        free(m->written[i]);
    free(m->written);
    free(m->regs);
    free(m);
}

/* Zeroes the pages of [first, first+count) an earlier run wrote, and marks
 * them as written (or not) for the next one. */
static void mark(struct hvi_mem_state *m, size_t ri, uint64_t first,
                 uint64_t count, bool zero)
{
    uint8_t *bits = m->written[ri];
    uint8_t *hva = m->regs[ri]->hva;
    for (uint64_t pg = first; pg < first + count; pg++) {
        uint8_t bit = (uint8_t)(1u << (pg & 7));
        if (zero) {
            if (bits[pg / 8] & bit)
                memset(hva + pg * HVI_PAGE, 0, HVI_PAGE);
            bits[pg / 8] &= (uint8_t)~bit;
        } else {
            bits[pg / 8] |= bit;
        }
    }
}

/* A snapshot file writes short zero gaps inside raw runs (the page-aligned
 * layout); read into a fresh memfd they would allocate pages that read as
 * zero anyway, so they are given back. Best effort: the contents are
 * right either way. */
static void give_back_zero_pages(hvc_memory_region *reg, uint64_t off,
                                 uint64_t bytes)
{
    if (reg->fd < 0 || !reg->owned || (reg->flags & HVC_MEMORY_HUGETLB))
        return;
    uint64_t zero_from = bytes; /* start of the zero span, or none */
    for (uint64_t at = 0; at <= bytes; at += HVI_PAGE) {
        bool z = at < bytes && hvi_page_zero(reg->hva + off + at);
        if (z && zero_from == bytes)
            zero_from = at;
        else if (!z && zero_from != bytes) {
            hvi_memory_discard(reg, off + zero_from, at - zero_from);
            zero_from = bytes;
        }
    }
}

static int read_raw(struct hvi_in *in, const struct hvi_sec *s, uint8_t *dst,
                    uint64_t bytes, uint32_t want_crc)
{
    uint32_t crc = 0;
    for (uint64_t done = 0; done < bytes;) {
        size_t n = bytes - done > CHUNK ? CHUNK : (size_t)(bytes - done);
        int r = hvi_in_read(in, s, dst + done, n);
        if (r < 0)
            return r;
        crc = hvi_crc32c(crc, dst + done, n);
        done += n;
    }
    if (crc != want_crc)
        return hvi_fail(s, -EBADMSG,
                        "page data CRC mismatch (stored 0x%08x, computed "
                        "0x%08x)",
                        want_crc, crc);
    return 0;
}

static int map_raw(struct hvi_in *in, const struct hvi_sec *s, uint8_t *dst,
                   uint64_t bytes, uint32_t want_crc)
{
    if (in->off + bytes > in->total)
        return hvi_fail(s, -ENODATA,
                        "the file ends at byte %llu, inside the run's pages",
                        (unsigned long long)in->total);
    void *p = mmap(dst, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                   in->fd, (off_t)in->off);
    if (p == MAP_FAILED)
        return hvi_fail(s, -errno, "mapping %" PRIu64 " bytes at byte %llu: %s",
                        bytes, (unsigned long long)in->off,
                        hvc_strerror(-errno));
    if (lseek(in->fd, (off_t)bytes, SEEK_CUR) < 0)
        return hvi_fail(s, -errno, "seeking past the pages: %s",
                        hvc_strerror(-errno));
    in->off += bytes;
    if (in->verify_mapped) {
        uint32_t crc = hvi_crc32c(0, dst, bytes);
        if (crc != want_crc)
            return hvi_fail(s, -EBADMSG,
                            "page data CRC mismatch (stored 0x%08x, "
                            "computed 0x%08x)",
                            want_crc, crc);
    }
    return hvi_in_progress(in);
}

int hvi_read_memory(struct hvi_in *in, const struct hvi_sec *s,
                    struct hvi_mem_state *m, uint64_t *raw, uint64_t *zero)
{
    bool sealed = s->flags & HVI_F_ENCRYPTED;
    uint8_t d[HVI_MEM_DESC];
    uint8_t *sealed_buf = NULL;
    int r;
    if (sealed) {
        size_t n;
        if ((r = hvi_read_payload(in, s, &sealed_buf, &n)) < 0)
            return r;
        if (n < HVI_MEM_DESC) {
            free(sealed_buf);
            return hvi_fail(s, -EBADMSG, "payload of %zu bytes", n);
        }
        memcpy(d, sealed_buf, HVI_MEM_DESC);
    } else {
        if (s->length < HVI_MEM_DESC)
            return hvi_fail(s, -EBADMSG, "payload of %llu bytes",
                            (unsigned long long)s->length);
        if ((r = hvi_in_read(in, s, d, sizeof(d))) < 0)
            return r;
        uint32_t crc = hvi_crc32c(hvi_crc32c(0, s->raw, 20), d, sizeof(d));
        if (crc != s->crc)
            return hvi_fail(s, -EBADMSG,
                            "CRC mismatch (stored 0x%08x, computed 0x%08x)",
                            s->crc, crc);
    }
    uint64_t gpa = hvi_get64(d), pages = hvi_get64(d + 8);
    uint32_t enc = hvi_get32(d + 16), dcrc = hvi_get32(d + 20);
    uint64_t payload = sealed ? s->length - HVI_TAG_SIZE : s->length;
    r = 0;
    if (enc > HVI_MEM_ZERO)
        r = hvi_fail(s, -EBADMSG, "unknown page encoding %u", enc);
    else if (gpa % HVI_PAGE || !pages || pages > HVI_MAX_RUN_PAGES)
        r = hvi_fail(s, -EBADMSG,
                     "run of %" PRIu64 " pages at 0x%" PRIx64 " is malformed",
                     pages, gpa);
    else if (payload !=
             HVI_MEM_DESC + (enc == HVI_MEM_RAW ? pages * HVI_PAGE : 0))
        r = hvi_fail(s, -EBADMSG,
                     "payload of %" PRIu64 " bytes for %" PRIu64 " %s pages",
                     payload, pages, enc ? "zero" : "raw");
    size_t ri = 0;
    while (
        r == 0 && ri < m->n &&
        !(gpa >= m->regs[ri]->gpa && gpa - m->regs[ri]->gpa < m->regs[ri]->len))
        ri++;
    uint64_t bytes = pages * HVI_PAGE;
    if (r == 0 &&
        (ri == m->n || bytes > m->regs[ri]->len - (gpa - m->regs[ri]->gpa)))
        r = hvi_fail(s, -EBADMSG,
                     "run 0x%" PRIx64 "+0x%" PRIx64
                     " is not inside one memory region",
                     gpa, bytes);
    if (r < 0) {
        free(sealed_buf);
        return r;
    }
    hvc_memory_region *reg = m->regs[ri];
    uint64_t first = (gpa - reg->gpa) / HVI_PAGE;
    uint8_t *dst = reg->hva + (gpa - reg->gpa);
    if (enc == HVI_MEM_ZERO) {
        mark(m, ri, first, pages, true);
        *zero += pages;
    } else if (sealed) {
        memcpy(dst, sealed_buf + HVI_MEM_DESC, bytes);
        give_back_zero_pages(reg, gpa - reg->gpa, bytes);
        mark(m, ri, first, pages, false);
        *raw += pages;
    } else {
        bool map = m->mapped && in->can_map && in->off % HVI_PAGE == 0;
        r = map ? map_raw(in, s, dst, bytes, dcrc)
                : read_raw(in, s, dst, bytes, dcrc);
        if (r == 0 && !map)
            give_back_zero_pages(reg, gpa - reg->gpa, bytes);
        mark(m, ri, first, pages, false);
        *raw += pages;
    }
    free(sealed_buf);
    return r;
}
