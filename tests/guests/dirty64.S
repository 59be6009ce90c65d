/* 64-bit long mode: writes the pages the host lists at DATA_IN (a count,
 * then that many guest-physical addresses, as qwords), storing each
 * address at itself, then reports done and starts over, so that the host
 * can hand it a new list and run it again (tests/test_memory_dirty.c). */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov DATA_IN, %rcx
    mov $DATA_IN + 8, %rsi
1:  test %rcx, %rcx
    jz 2f
    mov (%rsi), %rdi
    mov %rdi, (%rdi)
    add $8, %rsi
    dec %rcx
    jmp 1b
2:  DONE(0x5d)
    jmp _start
