/* The POSTCOPY section (docs/MIGRATION.md, "Post-copy"): for each memory
 * region, the bitmap of the pages the source has not sent at the
 * switchover. Payload: u32 region count, u32 0, then per region u64 gpa,
 * u64 pages and (pages + 63) / 64 little-endian u64 words, bit i of word
 * w set when page 64 w + i is still to come. */
#include "postcopy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static uint64_t words(uint64_t pages)
{
    return (pages + 63) / 64;
}

int hvi_pc_put_plan(struct hvi_out *o, hvc_memory_region *const *regs, size_t n,
                    uint64_t *const *pending, uint64_t *total)
{
    size_t len = 8;
    for (size_t i = 0; i < n; i++)
        len += 16 + words(regs[i]->len / HVI_PAGE) * 8;
    if (len > HVI_MAX_SECTION)
        return hvi_error(-E2BIG,
                         "post-copy: the page bitmap of %zu bytes is larger "
                         "than a stream section may be",
                         len);
    uint8_t *p = calloc(1, len), *q = p + 8;
    if (!p)
        return hvi_error(-ENOMEM, "out of memory");
    hvi_put32(p, (uint32_t)n);
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t pages = regs[i]->len / HVI_PAGE;
        hvi_put64(q, regs[i]->gpa);
        hvi_put64(q + 8, pages);
        q += 16;
        for (uint64_t w = 0; w < words(pages); w++, q += 8) {
            hvi_put64(q, pending[i][w]);
            *total += (uint64_t)__builtin_popcountll(pending[i][w]);
        }
    }
    int r = hvi_put_section(o, HVI_POSTCOPY, 0, p, len);
    free(p);
    return r;
}

void hvi_pc_plan_free(struct hvi_pc_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->r[i].bits);
    free(p->r);
    free(p);
}

static int decode(const struct hvi_sec *s, const uint8_t *p, size_t len,
                  hvc_memory_region *const *regs, size_t n,
                  struct hvi_pc_plan *plan)
{
    if (len < 8 || hvi_get32(p) != n || hvi_get32(p + 4) != 0)
        return hvi_fail(s, -EBADMSG, "a bitmap for %u regions; the VM has %zu",
                        len < 8 ? 0 : hvi_get32(p), n);
    size_t at = 8;
    if (!(plan->r = calloc(n + 1, sizeof(*plan->r))))
        return hvi_error(-ENOMEM, "out of memory");
    plan->n = n;
    for (size_t i = 0; i < n; i++) {
        struct hvi_pc_plan_region *r = &plan->r[i];
        if (len - at < 16)
            return hvi_fail(s, -EBADMSG, "region %zu's bitmap is cut short", i);
        r->gpa = hvi_get64(p + at);
        r->pages = hvi_get64(p + at + 8);
        at += 16;
        if (r->gpa != regs[i]->gpa || r->pages != regs[i]->len / HVI_PAGE)
            return hvi_fail(
                s, -EBADMSG,
                "bitmap %zu is for 0x%" PRIx64 " pages at 0x%" PRIx64
                "; the region there is 0x%" PRIx64 " pages at 0x%" PRIx64,
                i, r->pages, r->gpa, regs[i]->len / HVI_PAGE, regs[i]->gpa);
        uint64_t nw = words(r->pages);
        if ((len - at) / 8 < nw)
            return hvi_fail(s, -EBADMSG, "region %zu's bitmap is cut short", i);
        if (!(r->bits = calloc(nw + 1, 8)))
            return hvi_error(-ENOMEM, "out of memory");
        for (uint64_t w = 0; w < nw; w++, at += 8) {
            r->bits[w] = hvi_get64(p + at);
            plan->total += (uint64_t)__builtin_popcountll(r->bits[w]);
        }
        if (r->pages % 64 && (r->bits[nw - 1] >> (r->pages % 64)))
            return hvi_fail(s, -EBADMSG,
                            "region %zu's bitmap has pages past its end", i);
        for (uint64_t w = 0; (regs[i]->flags & HVC_MEMORY_READONLY) && w < nw;
             w++)
            if (r->bits[w])
                return hvi_fail(s, -EBADMSG,
                                "read-only region %zu has pages left for "
                                "post-copy",
                                i);
    }
    if (at != len)
        return hvi_fail(s, -EBADMSG, "%zu bytes after the bitmaps", len - at);
    return 0;
}

int hvi_pc_read_plan(struct hvi_in *in, const struct hvi_sec *s, hvc_vm *vm,
                     struct hvi_pc_plan **out)
{
    uint8_t *p = NULL;
    size_t len;
    hvc_memory_region **regs = NULL;
    size_t n = 0;
    struct hvi_pc_plan *plan = calloc(1, sizeof(*plan));
    if (!plan)
        return hvi_error(-ENOMEM, "out of memory");
    int r = hvi_read_payload(in, s, &p, &len);
    if (r == 0)
        r = hvi_memory_snapshot(vm, &regs, &n);
    if (r == 0)
        r = decode(s, p, len, regs, n, plan);
    free(p);
    free(regs);
    if (r < 0) {
        hvi_pc_plan_free(plan);
        return r;
    }
    *out = plan;
    return 0;
}
