/* 64-bit long mode: sums count qwords at DATA_IN (count first), stores the
 * sum at DATA_OUT and sum * 3 at DATA_OUT + 8, leaves the sum in rax and a
 * marker in r15; pushes and pops through the stack to prove it works. */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov $DATA_IN, %rsi
    mov (%rsi), %rcx
    add $8, %rsi
    xor %rax, %rax
1:  test %rcx, %rcx
    jz 2f
    add (%rsi), %rax
    add $8, %rsi
    dec %rcx
    jmp 1b
2:  mov %rax, DATA_OUT
    push %rax
    lea (%rax,%rax,2), %rbx
    mov %rbx, DATA_OUT + 8
    pop %rax
    mov $0x1122334455667788, %r15
    mov %rax, %rbx
    DONE(0x64)
    jmp .
