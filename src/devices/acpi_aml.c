/* The byte buffer and AML encoder declared in acpi_aml.h. Opcode values and
 * descriptor layouts are from the ACPI 6.x specification (sections 20.2 and
 * 6.4); each function names the ASL it produces. */
#include "acpi_aml.h"

#include <stdlib.h>
#include <string.h>

#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP 0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR '\\'

/* Resource descriptor tags (6.4.2 small, 6.4.3 large). */
#define RES_IO 0x47          /* small item 0x08, length 7 */
#define RES_END_TAG 0x79     /* small item 0x0f, length 1 */
#define RES_MEM32_FIXED 0x86 /* large item 0x06 */
#define RES_WORD_SPACE 0x88  /* large item 0x08 */
#define RES_EXT_IRQ 0x89     /* large item 0x09 */
#define RES_QWORD_SPACE 0x8a /* large item 0x0a */

/* Address space descriptor fields. */
#define SPACE_MEMORY 0
#define SPACE_IO 1
/* General flags: consumer, min and max fixed (a fixed range, not a window
 * the OS may place), positive decode. */
#define SPACE_FIXED_CONSUMER 0x0d
#define IO_RANGE_ENTIRE 0x03
#define MEM_READ_WRITE 0x01 /* and non-cacheable, AddressRangeMemory */
/* Extended interrupt flags: consumer, edge-triggered, active-high,
 * exclusive, as ISA-style device lines are. */
#define IRQ_CONSUMER_EDGE_HIGH 0x03

/* PkgLength tops out at 28 bits. */
#define AML_MAX_PKG_LENGTH ((size_t)1 << 28)

void hvi_bytes_free(struct hvi_bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* Makes room for @p n more bytes; false (and failed set) when it cannot. */
static bool reserve(struct hvi_bytes *b, size_t n)
{
    if (b->failed)
        return false;
    if (n <= b->cap - b->len)
        return true;
    if (n > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void hvi_bytes_put(struct hvi_bytes *b, const void *p, size_t n)
{
    if (n == 0 || !reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void hvi_bytes_le(struct hvi_bytes *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    hvi_le(tmp, v, n);
    hvi_bytes_put(b, tmp, n);
}

size_t hvi_bytes_zero(struct hvi_bytes *b, size_t n)
{
    size_t at = b->len;
    if (n == 0 || !reserve(b, n))
        return at;
    memset(b->data + b->len, 0, n);
    b->len += n;
    return at;
}

void hvi_bytes_align(struct hvi_bytes *b, size_t align)
{
    hvi_bytes_zero(b, (align - (b->len & (align - 1))) & (align - 1));
}

/* Inserts @p n bytes at offset @p at, moving what follows. */
static void insert(struct hvi_bytes *b, size_t at, const uint8_t *p, size_t n)
{
    if (!reserve(b, n) || at > b->len)
        return;
    memmove(b->data + at + n, b->data + at, b->len - at);
    memcpy(b->data + at, p, n);
    b->len += n;
}

/* Encodes a PkgLength for @p content bytes into @p out; returns its size
 * (1-4), or 0 when it cannot be encoded. The length counts its own bytes:
 * one byte holds up to 63; otherwise the lead byte holds the count of
 * following bytes and the low nibble, each following byte 8 more bits. */
static size_t pkg_length(size_t content, uint8_t out[4])
{
    if (content + 1 <= 0x3f) {
        out[0] = (uint8_t)(content + 1);
        return 1;
    }
    for (size_t n = 2; n <= 4; n++) {
        size_t total = content + n;
        if (total < ((size_t)1 << (4 + 8 * (n - 1)))) {
            out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
            for (size_t i = 1; i < n; i++)
                out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
            return n;
        }
    }
    return 0;
}

static size_t integer_bytes(uint64_t v, uint8_t out[9])
{
    if (v <= 1) {
        out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
        return 1;
    }
    unsigned n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    out[0] = n == 1   ? AML_BYTE_PREFIX
             : n == 2 ? AML_WORD_PREFIX
             : n == 4 ? AML_DWORD_PREFIX
                      : AML_QWORD_PREFIX;
    hvi_le(out + 1, v, n);
    return 1 + n;
}

/* Inserts @p prefix and a PkgLength covering it and everything from
 * @p mark to the end, at @p mark. */
static void close_package(struct hvi_bytes *b, size_t mark,
                          const uint8_t *prefix, size_t prefix_len)
{
    if (b->failed)
        return;
    uint8_t head[4 + 9];
    size_t content = b->len - mark + prefix_len;
    size_t n = content < AML_MAX_PKG_LENGTH ? pkg_length(content, head) : 0;
    if (n == 0) {
        b->failed = true;
        return;
    }
    if (prefix_len)
        memcpy(head + n, prefix, prefix_len);
    insert(b, mark, head, n + prefix_len);
}

/* A NameString: an optional root prefix and one NameSeg. The callers pass
 * constants or names they built as 4 characters. */
static void name_string(struct hvi_bytes *b, const char *path)
{
    if (path[0] == AML_ROOT_CHAR)
        hvi_bytes_put(b, path++, 1);
    if (strlen(path) != 4) {
        b->failed = true;
        return;
    }
    hvi_bytes_put(b, path, 4);
}

static size_t open_package(struct hvi_bytes *b, const uint8_t *op, size_t n,
                           const char *path)
{
    hvi_bytes_put(b, op, n);
    size_t mark = b->len;
    name_string(b, path);
    return mark;
}

size_t hvi_aml_scope(struct hvi_bytes *b, const char *path)
{
    static const uint8_t op[] = {AML_SCOPE_OP};
    return open_package(b, op, sizeof(op), path);
}

size_t hvi_aml_device(struct hvi_bytes *b, const char *path)
{
    static const uint8_t op[] = {AML_EXT_OP_PREFIX, AML_DEVICE_OP};
    return open_package(b, op, sizeof(op), path);
}

void hvi_aml_end(struct hvi_bytes *b, size_t mark)
{
    close_package(b, mark, NULL, 0);
}

void hvi_aml_name(struct hvi_bytes *b, const char *seg)
{
    hvi_bytes_le(b, AML_NAME_OP, 1);
    name_string(b, seg);
}

void hvi_aml_integer(struct hvi_bytes *b, uint64_t v)
{
    uint8_t tmp[9];
    hvi_bytes_put(b, tmp, integer_bytes(v, tmp));
}

void hvi_aml_string(struct hvi_bytes *b, const char *s)
{
    hvi_bytes_le(b, AML_STRING_PREFIX, 1);
    hvi_bytes_put(b, s, strlen(s) + 1); /* with its NullChar */
}

static bool is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

bool hvi_aml_eisaid(const char *id, uint32_t *out)
{
    if (strlen(id) != 7)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z')
            return false;
        v = v << 5 | (uint32_t)(id[i] - 'A' + 1); /* 'A' is 1 */
    }
    for (int i = 3; i < 7; i++) {
        if (!is_upper_hex(id[i]))
            return false;
        v = v << 4 | (uint32_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'A' + 10);
    }
    /* The compressed id is stored most significant byte first, so the AML
     * integer is its byte swap. */
    *out = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | v << 24;
    return true;
}

size_t hvi_aml_resources(struct hvi_bytes *b)
{
    hvi_bytes_le(b, AML_BUFFER_OP, 1);
    return b->len;
}

void hvi_aml_resources_end(struct hvi_bytes *b, size_t mark)
{
    /* A zero checksum byte means "the descriptors are not checksummed",
     * which is what iasl emits. */
    static const uint8_t end[] = {RES_END_TAG, 0};
    hvi_bytes_put(b, end, sizeof(end));
    if (b->failed)
        return;
    uint8_t size[9];
    close_package(b, mark, size, integer_bytes(b->len - mark, size));
}

void hvi_aml_res_io(struct hvi_bytes *b, uint16_t base, uint8_t length)
{
    uint8_t d[8] = {RES_IO, 0x01 /* 16-bit decode */};
    hvi_le(d + 2, base, 2); /* minimum */
    hvi_le(d + 4, base, 2); /* maximum */
    d[6] = 1;               /* alignment: moot for a fixed range */
    d[7] = length;
    hvi_bytes_put(b, d, sizeof(d));
}

void hvi_aml_res_word_io(struct hvi_bytes *b, uint16_t base, uint16_t length)
{
    uint8_t d[16] = {RES_WORD_SPACE, 13, 0, SPACE_IO, SPACE_FIXED_CONSUMER,
                     IO_RANGE_ENTIRE};
    /* granularity 0 at 6, then minimum, maximum, translation, length */
    hvi_le(d + 8, base, 2);
    hvi_le(d + 10, (uint16_t)(base + length - 1), 2);
    hvi_le(d + 14, length, 2);
    hvi_bytes_put(b, d, sizeof(d));
}

void hvi_aml_res_mem32(struct hvi_bytes *b, uint32_t base, uint32_t length)
{
    uint8_t d[12] = {RES_MEM32_FIXED, 9, 0, 0x01 /* read-write */};
    hvi_le(d + 4, base, 4);
    hvi_le(d + 8, length, 4);
    hvi_bytes_put(b, d, sizeof(d));
}

void hvi_aml_res_mem64(struct hvi_bytes *b, uint64_t base, uint64_t length)
{
    uint8_t d[46] = {RES_QWORD_SPACE, 43, 0, SPACE_MEMORY, SPACE_FIXED_CONSUMER,
                     MEM_READ_WRITE};
    /* granularity 0 at 6, then minimum, maximum, translation, length */
    hvi_le(d + 14, base, 8);
    hvi_le(d + 22, base + length - 1, 8);
    hvi_le(d + 38, length, 8);
    hvi_bytes_put(b, d, sizeof(d));
}

void hvi_aml_res_irq(struct hvi_bytes *b, uint32_t gsi, bool level,
                     bool active_low)
{
    /* bit 0 consumer, bit 1 edge (1) or level (0), bit 2 active-low */
    uint8_t flags = (uint8_t)(IRQ_CONSUMER_EDGE_HIGH & ~(level ? 0x02 : 0)) |
                    (active_low ? 0x04 : 0);
    uint8_t d[9] = {RES_EXT_IRQ, 6, 0, flags, 1 /* count */};
    hvi_le(d + 5, gsi, 4);
    hvi_bytes_put(b, d, sizeof(d));
}
