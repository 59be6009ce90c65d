/* A hostile guest's MMIO storm (tests/test_malicious_guest.c): the number
 * of accesses at DATA_IN (u64), alternately a 4-byte write and a 4-byte
 * read, to addresses in the unclaimed page at MMIO_UNCLAIMED. Every access
 * leaves the guest; reads nobody completes return all-ones. Reports the
 * accesses done at DATA_OUT and the sum of what the reads returned (32
 * bits) at DATA_OUT + 8, then writes 0x5c to PORT_DONE. */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov DATA_IN, %rcx
    mov $MMIO_UNCLAIMED, %rbx
    xor %edx, %edx              /* accesses done */
    xor %r8d, %r8d              /* sum of the values read */
1:  cmp %rcx, %rdx
    je 3f
    mov %edx, %eax
    shl $3, %eax
    and $0xff8, %eax            /* walk the page, 8 bytes at a time */
    test $1, %dl
    jnz 2f
    movl %edx, (%rbx,%rax)
    inc %rdx
    jmp 1b
2:  mov (%rbx,%rax), %esi
    add %esi, %r8d
    inc %rdx
    jmp 1b
3:  mov %rdx, DATA_OUT
    mov %r8, DATA_OUT + 8
    DONE(0x5c)
    jmp .
