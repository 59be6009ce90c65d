/* CRC32C against a bit-by-bit reference: the constant byte table of the
 * portable path entry by entry, and hvi_crc32c() (the SSE4.2 lanes where
 * the host has them) over lengths that cross the three-lane block, from
 * many threads at once, since the first call once raced to fill the table.
 *
 * White-box: it reads src/core/internal.h, so it links the static library. */
#include "internal.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

#define POLY 0x82f63b78u

static uint32_t ref_crc(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (POLY & (0u - (crc & 1)));
    }
    return ~crc;
}

Test(crc32c, table_is_the_polynomial)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        cr_assert_eq(hvi_crc32c_table[i], c, "entry %u", i);
    }
}

Test(crc32c, check_value)
{
    /* The standard check value of CRC-32C (RFC 3720, B.4). */
    cr_assert_eq(hvi_crc32c(0, "123456789", 9), 0xe3069283u);
    cr_assert_eq(hvi_crc32c(0, "", 0), 0u);
}

static uint8_t *pattern(size_t n)
{
    uint8_t *b = malloc(n);
    cr_assert_not_null(b);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (uint8_t)(x >> 16);
    }
    return b;
}

Test(crc32c, long_buffers_match_reference)
{
    /* 3 * 8192 is one three-lane block: below, at, across and past two. */
    static const size_t lens[] = {1,         7,         8,         4095,
                                  24575,     24576,     24577,     49152,
                                  49152 + 9, 3 * 24576, 100000 + 3};
    uint8_t *b = pattern(100003);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        cr_assert_eq(hvi_crc32c(0, b, lens[i]), ref_crc(0, b, lens[i]),
                     "length %zu", lens[i]);
        /* chaining: crc(a || b) == crc(crc(a), b) */
        uint32_t half = hvi_crc32c(0, b, lens[i] / 2);
        cr_assert_eq(hvi_crc32c(half, b + lens[i] / 2, lens[i] - lens[i] / 2),
                     ref_crc(0, b, lens[i]), "chained, length %zu", lens[i]);
    }
    free(b);
}

struct job {
    const uint8_t *buf;
    size_t len;
    uint32_t crc;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    j->crc = hvi_crc32c(0, j->buf, j->len);
    return NULL;
}

Test(crc32c, concurrent_first_calls)
{
    enum { N = 8, LEN = 3 * 24576 + 5 };
    uint8_t *b = pattern(LEN);
    uint32_t want = ref_crc(0, b, LEN);
    pthread_t th[N];
    struct job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){b, LEN, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(jobs[i].crc, want, "thread %d", i);
    }
    free(b);
}
