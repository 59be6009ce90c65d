/* Real mode: arithmetic in 16-bit registers, a segment load, then done. */
#include "guest.h"
    .code16
    .globl _start
_start:
    mov $0x1234, %ax
    mov $0x5678, %bx
    mov %ax, %cx
    add %bx, %cx            /* cx = 0x68ac */
    mov $0x2000, %dx
    mov %dx, %ds            /* ds base 0x20000 = DATA_IN */
    mov (0), %si            /* si = first word the host wrote */
    DONE(0x16)
    jmp .
