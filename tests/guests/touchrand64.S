/* The post-copy guest (tests/test_migration_postcopy.c), 64-bit long
 * mode, with at least BASE + NPAGES pages of RAM.
 *
 * Mode 0 (the qword at DATA_IN is 0): passes over NPAGES pages from BASE,
 * pass n (from 1) writing (n << 32 | page) into each page's first qword,
 * then counting the pass at DATA_OUT; for ever, so that every page is
 * dirty again when a live migration fetches the log.
 *
 * Mode 1 (the host wrote 1 at DATA_IN, on the destination): 2 * NPAGES
 * visits of pages in a pseudo-random order (an LCG seeded from DATA_IN +
 * 8), each checking that the page's first qword is (n << 32 | page) with
 * n the count of completed passes or the one after (the pass the pause
 * cut short), and writing it back; mismatches are counted at DATA_OUT +
 * 8, visits at DATA_OUT + 0x10. Then DONE(0x7e).
 *
 * Memory the host reads and writes: DATA_IN (mode, seed), DATA_OUT
 * (passes, mismatches, visits). */
#include "guest.h"
#define BASE 0x400000
#define NPAGES 8192
#define PASSES (DATA_OUT + 0x00)
#define BAD (DATA_OUT + 0x08)
#define VISITS (DATA_OUT + 0x10)

    .code64
    .globl _start
_start:
    cmpq $0, DATA_IN
    jne check
    mov PASSES, %r13
    inc %r13                     /* r13: this pass */
    mov %r13, %rax
    shl $32, %rax                /* rax: n << 32 */
    mov $BASE, %rdi
    xor %ecx, %ecx
1:  mov %rax, %rdx
    or %rcx, %rdx
    mov %rdx, (%rdi)
    add $4096, %rdi
    inc %rcx
    cmp $NPAGES, %rcx
    jb 1b
    mov %r13, PASSES
    jmp _start

check:
    mov DATA_IN + 8, %r12        /* r12: the LCG state */
    mov PASSES, %r13             /* r13: completed passes */
    mov $2 * NPAGES, %r11        /* r11: visits left */
    movabs $6364136223846793005, %r10
2:  imul %r10, %r12
    movabs $1442695040888963407, %rax
    add %rax, %r12
    mov %r12, %rcx
    shr $33, %rcx
    and $NPAGES - 1, %rcx        /* rcx: the page */
    mov %rcx, %rdi
    shl $12, %rdi
    add $BASE, %rdi
    mov (%rdi), %rdx             /* the visit: may fault on the destination */
    mov %rdx, (%rdi)
    mov %edx, %eax               /* low half: the page */
    cmp %rax, %rcx
    jne 8f
    shr $32, %rdx                /* high half: the pass */
    cmp %r13, %rdx
    je 9f
    lea 1(%r13), %rax
    cmp %rax, %rdx
    je 9f
8:  incq BAD
9:  incq VISITS
    dec %r11
    jnz 2b
    DONE(0x7e)
    jmp check
