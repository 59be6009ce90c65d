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

static inline void put_dec(uint64_t v)
{
    char b[21];
    int i = 20;
    b[i] = 0;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
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
