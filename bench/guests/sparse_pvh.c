/* A sparse PVH guest for bench/sparse_snapshot.c: it fills TOUCH_PAGES
 * pages (1 MiB), spread evenly over its RAM above 4 MiB, with non-zero
 * bytes, writes 'R' to COM1 and halts. The same ELF boots under libhvcore
 * and under QEMU's microvm, so both save the same guest. */
#include "pvh_guest.h"

#define TOUCH_PAGES 256u
#define LOW (4u << 20)
#define COM1 0x3f8


void pvh_main(const struct hvm_start_info *si)
{
    uint64_t top = pvh_ram_top(si);
    uint32_t stride = top > LOW + TOUCH_PAGES * 4096u
                          ? (uint32_t)((top - LOW) / TOUCH_PAGES) & ~4095u
                          : 4096u;
    for (uint32_t i = 0; i < TOUCH_PAGES; i++) {
        volatile uint32_t *p =
            (volatile uint32_t *)(uintptr_t)(LOW + i * stride);
        for (uint32_t k = 0; k < 1024; k++)
            p[k] = (i << 16 | k) * 2654435761u | 1;
    }
    __asm__ volatile("outb %0, %1" : : "a"((uint8_t)'R'), "Nd"((uint16_t)COM1));
}
