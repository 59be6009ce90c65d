/* 32-bit flat protected mode: sums count dwords the host wrote at DATA_IN
 * (count first), stores the sum at DATA_OUT and leaves it in eax. */
#include "guest.h"
    .code32
    .globl _start
_start:
    mov $DATA_IN, %esi
    mov (%esi), %ecx
    add $4, %esi
    xor %eax, %eax
1:  test %ecx, %ecx
    jz 2f
    add (%esi), %eax
    add $4, %esi
    dec %ecx
    jmp 1b
2:  mov %eax, DATA_OUT
    mov %eax, %ebx
    DONE(0x32)
    jmp .
