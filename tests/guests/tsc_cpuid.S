/* Reads the CPUID leaves that tell the guest its TSC frequency and stores
 * EAX, EBX, ECX, EDX of each at DATA_OUT + 16 * i, in the order of the
 * list below (tests/test_tsc.c). */
#include "guest.h"
    .code64
    .globl _start
_start:
    lea leaves(%rip), %rsi
    mov $DATA_OUT, %rdi
1:  mov (%rsi), %eax
    cmp $0xffffffff, %eax
    je 2f
    xor %ecx, %ecx
    cpuid
    mov %eax, (%rdi)
    mov %ebx, 4(%rdi)
    mov %ecx, 8(%rdi)
    mov %edx, 12(%rdi)
    add $4, %rsi
    add $16, %rdi
    jmp 1b
2:  DONE(0x15)
    jmp .

leaves:
    .long 0, 0x15, 0x16, 0x40000000, 0x40000010, 0x80000007, 0x80000001
    .long 0xffffffff
