/* Freestanding helpers for the boot test guests (32- and 64-bit): port I/O,
 * a polled 16550 console on COM1, and the debug-exit port. */
#ifndef BOOT_LIB_H
#define BOOT_LIB_H

#include <stddef.h>
#include <stdint.h>

#define COM1 0x3f8
#define LSR_THRE 0x20
#define DEBUG_EXIT 0xf4

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void putc_(char c)
{
    while (!(inb(COM1 + 5) & LSR_THRE))
        ;
    outb(COM1, (uint8_t)c);
}

static inline void puts_(const char *s)
{
    while (*s)
        putc_(*s++);
}

/* v / 10 with shifts and adds: a 32-bit guest has no libgcc, and clang
 * (unlike gcc) calls __udivdi3 for a 64-bit division by a constant. */
static inline uint64_t div10(uint64_t n)
{
    uint64_t q = (n >> 1) + (n >> 2);
    q += q >> 4;
    q += q >> 8;
    q += q >> 16;
    q += q >> 32;
    q >>= 3;
    uint64_t r = n - ((q << 2) + q) * 2;
    return q + (r > 9);
}

static inline void put_dec(uint64_t v)
{
    char b[21];
    int i = 20;
    b[i] = 0;
    do {
        uint64_t q = div10(v);
        b[--i] = (char)('0' + (v - q * 10));
        v = q;
    } while (v);
    puts_(&b[i]);
}

static inline void put_hex(uint64_t v)
{
    char b[19];
    b[0] = '0';
    b[1] = 'x';
    int n = 0;
    for (int s = 60; s >= 0; s -= 4)
        if ((v >> s) & 0xf || n || s == 0)
            b[2 + n++] = "0123456789abcdef"[(v >> s) & 0xf];
    b[2 + n] = 0;
    puts_(b);
}

static inline __attribute__((noreturn)) void exit_(uint8_t status)
{
    for (;;)
        outb(DEBUG_EXIT, status);
}

static inline int memeq(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return 0;
    return 1;
}

#endif
