/* 64-bit long mode: writes every 4 KiB page of the range the host put at
 * DATA_IN (base, then length, as qwords), each page getting its own
 * address in its first qword, so that the guest is the first to touch
 * them (tests/test_topology.c then asks the kernel where they went). */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov DATA_IN, %rdi
    mov DATA_IN + 8, %rcx
    add %rdi, %rcx
1:  cmp %rcx, %rdi
    jae 2f
    mov %rdi, (%rdi)
    add $4096, %rdi
    jmp 1b
2:  DONE(0x7c)
    jmp .
