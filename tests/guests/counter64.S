/* The snapshot guest (tests/test_migration.c, hvrun's snapshot test,
 * bench/snapshot). rdi = the vCPU's index, set by the host.
 *
 * Every iteration n (from 1) of vCPU i:
 *   - checks that each of its NPAGES pattern pages holds the value the
 *     previous iteration wrote, ((n-1) << 20 | i << 12 | page) in its first
 *     and last qword, counting mismatches in BAD (a restore that lost or
 *     misplaced a page shows up here);
 *   - rewrites the pattern for n;
 *   - reads the TSC (LFENCE; RDTSC) and counts readings below the previous
 *     one in BACK (a restore that moved time backwards shows up here);
 *   - vCPU 0 prints "count <n>\r\n" on COM1, waiting for THRE.
 * Everything lives in memory, so a saved and restored VM goes on counting.
 * When the qword at DATA_IN is non-zero, a vCPU stops after that many
 * iterations with DONE(0x60 + index). */
#include "guest.h"
#define COM1 0x3f8
#define LIMIT DATA_IN
#define STATE (DATA_OUT + 0x100) /* + 0x40 * index: */
#define N 0x00
#define BAD 0x08
#define BACK 0x10
#define LASTTSC 0x18
#define PATTERN 0x200000 /* + 0x40000 * index: NPAGES pages */
#define NPAGES 32

    .code64
    .globl _start
_start:
    mov %rdi, %r15
    mov %r15, %rbx
    shl $6, %rbx
    add $STATE, %rbx            /* rbx: this vCPU's state */
    mov %r15, %r14
    shl $18, %r14
    add $PATTERN, %r14          /* r14: this vCPU's pattern pages */
loop:
    mov N(%rbx), %r13           /* r13: n - 1 */
    /* check the previous pattern (none before the first iteration) */
    test %r13, %r13
    jz 2f
    xor %ecx, %ecx
1:  mov %r13, %rax
    shl $20, %rax
    mov %r15, %rdx
    shl $12, %rdx
    or %rdx, %rax
    or %rcx, %rax               /* expected value */
    mov %rcx, %rdx
    shl $12, %rdx
    add %r14, %rdx              /* page address */
    cmp (%rdx), %rax
    jne 9f
    cmp 4088(%rdx), %rax
    je 8f
9:  incq BAD(%rbx)
8:  inc %rcx
    cmp $NPAGES, %rcx
    jb 1b
2:  inc %r13                    /* r13: n */
    xor %ecx, %ecx
3:  mov %r13, %rax
    shl $20, %rax
    mov %r15, %rdx
    shl $12, %rdx
    or %rdx, %rax
    or %rcx, %rax
    mov %rcx, %rdx
    shl $12, %rdx
    add %r14, %rdx
    mov %rax, (%rdx)
    mov %rax, 4088(%rdx)
    inc %rcx
    cmp $NPAGES, %rcx
    jb 3b
    mov %r13, N(%rbx)
    /* the TSC never goes back */
    lfence
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    cmp LASTTSC(%rbx), %rax
    jae 4f
    incq BACK(%rbx)
4:  mov %rax, LASTTSC(%rbx)
    test %r15, %r15
    jnz 6f
    lea msg(%rip), %rsi
    call puts
    mov %r13, %rax
    call putdec
    lea eol(%rip), %rsi
    call puts
6:  mov LIMIT, %rax
    test %rax, %rax
    jz loop
    cmp %rax, %r13
    jb loop
    lea 0x60(%r15), %rax
    out %al, $PORT_DONE
    jmp loop

/* putc: al to COM1 once THR is empty; keeps every register but rax, rdx */
putc:
    push %rax
    mov $(COM1 + 5), %dx
1:  in %dx, %al
    test $0x20, %al
    jz 1b
    pop %rax
    mov $COM1, %dx
    out %al, %dx
    ret

/* puts: the NUL-terminated string at rsi */
puts:
    movb (%rsi), %al
    test %al, %al
    jz 1f
    call putc
    inc %rsi
    jmp puts
1:  ret

/* putdec: rax in decimal */
putdec:
    mov %rsp, %rdi
    sub $32, %rsp
    mov $10, %rcx
1:  xor %edx, %edx
    div %rcx
    add $'0', %dl
    dec %rdi
    mov %dl, (%rdi)
    test %rax, %rax
    jnz 1b
2:  movb (%rdi), %al
    call putc
    inc %rdi
    lea 32(%rsp), %rax
    cmp %rax, %rdi
    jb 2b
    add $32, %rsp
    ret

msg:
    .asciz "count "
eol:
    .asciz "\r\n"
