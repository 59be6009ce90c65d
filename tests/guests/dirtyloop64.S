/* 64-bit long mode: keeps rewriting the pages of the range the host put
 * at DATA_IN (base, then page count, as qwords), each pass storing its
 * pass number at the start of every page and at an offset that moves with
 * it, until the host sets the qword at DATA_IN + 16; then reports done.
 * tests/test_memory_dirty.c copies what each fetch reports meanwhile, as a
 * live migration would, and checks that its copy ends up equal. */
#include "guest.h"
    .code64
    .globl _start
_start:
    xor %rax, %rax
1:  inc %rax
    mov DATA_IN, %rdi
    mov DATA_IN + 8, %rcx
    mov %rax, %rdx
    and $511, %rdx
    shl $3, %rdx
2:  test %rcx, %rcx
    jz 3f
    mov %rax, (%rdi)
    mov %rax, (%rdi,%rdx)
    add $4096, %rdi
    dec %rcx
    jmp 2b
3:  cmpq $0, DATA_IN + 16
    je 1b
    DONE(0x6c)
    jmp .
