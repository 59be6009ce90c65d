/* Guest for examples/device.c: adds 1..100 through the accumulator device
 * at port 0x510, reads the sum back, prints it on port 0xe9 and reports
 * whether it is right on port 0xf4. */
#include <stdint.h>

__asm__(".section .text.entry, \"ax\"\n"
        ".globl _start\n"
        "_start:\n"
        "    call guest_main\n"
        "    out %al, $0xf4\n"
        "1:  hlt\n"
        "    jmp 1b\n"
        ".previous\n");

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static void put(const char *s)
{
    while (*s)
        __asm__ volatile("outb %0, $0xe9" : : "a"(*s++));
}

int guest_main(void);

int guest_main(void)
{
    for (uint32_t i = 1; i <= 100; i++)
        outl(0x510, i);
    uint32_t sum = inl(0x510), count = inl(0x514);
    char text[] = "guest: sum of 1..100 through the device = 0000 (n=000)\n";
    for (int k = 0; k < 4; k++, sum /= 10)
        text[45 - k] = (char)('0' + sum % 10);
    for (int k = 0; k < 3; k++, count /= 10)
        text[52 - k] = (char)('0' + count % 10);
    put(text);
    return inl(0x510) == 5050 && inl(0x514) == 100 ? 0 : 1;
}
