/* The demo guest: freestanding 64-bit C, entered in long mode with a stack.
 * It writes to the debug console port 0xe9 and reports its exit status on
 * port 0xf4, the two conventions examples/hello.c serves. */
#include <stdint.h>

#define CONSOLE_PORT 0xe9
#define EXIT_PORT 0xf4

__asm__(".section .text.entry, \"ax\"\n"
        ".globl _start\n"
        "_start:\n"
        "    call guest_main\n"
        "    out %al, $0xf4\n" /* guest_main's return value */
        "1:  hlt\n"
        "    jmp 1b\n"
        ".previous\n");

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static void put(const char *s)
{
    while (*s)
        outb(CONSOLE_PORT, (uint8_t)*s++);
}

static void put_dec(uint64_t v)
{
    char buf[21];
    int i = 20;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(&buf[i]);
}

static void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c,
                  uint32_t *d)
{
    __asm__ volatile("cpuid"
                     : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
                     : "a"(leaf), "c"(0));
}

int guest_main(void);

int guest_main(void)
{
    put("Hello from a libhvcore guest!\n");

    uint32_t a, b, c, d;
    char vendor[13];
    cpuid(0, &a, &b, &c, &d);
    __builtin_memcpy(vendor, &b, 4);
    __builtin_memcpy(vendor + 4, &d, 4);
    __builtin_memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    put("  CPU vendor seen by the guest: ");
    put(vendor);
    put("\n");

    uint64_t f0 = 0, f1 = 1;
    for (int i = 0; i < 90; i++) {
        uint64_t n = f0 + f1;
        f0 = f1;
        f1 = n;
    }
    put("  fib(90) computed in 64-bit long mode: ");
    put_dec(f0);
    put("\n  Goodbye.\n");
    return 0;
}
