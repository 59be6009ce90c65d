/* Port I/O and MMIO of every size, string I/O, and unclaimed accesses. The
 * host's handlers and checks are in tests/test_io.c. */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov $PORT_DATA, %dx
    /* OUT of 1, 2, 4 bytes (handled) */
    mov $0x11, %al
    out %al, %dx
    mov $0x2222, %ax
    out %ax, %dx
    mov $0x33333333, %eax
    out %eax, %dx
    /* IN of 1, 2, 4 bytes (handled), results to DATA_OUT */
    in %dx, %al
    mov %al, DATA_OUT
    in %dx, %ax
    mov %ax, DATA_OUT + 2
    in %dx, %eax
    mov %eax, DATA_OUT + 4
    /* rep outsb: 16 bytes from DATA_IN; rep insb: 16 bytes to DATA_OUT+16 */
    cld
    mov $PORT_STRING, %dx
    mov $DATA_IN, %rsi
    mov $16, %rcx
    rep outsb
    mov $DATA_OUT + 16, %rdi
    mov $16, %rcx
    rep insb
    /* MMIO writes of 1, 2, 4, 8 bytes (handled) */
    mov $MMIO_HANDLED, %rbx
    movb $0x44, (%rbx)
    movw $0x5555, 2(%rbx)
    movl $0x66666666, 4(%rbx)
    mov $0x7777777777777777, %rax
    mov %rax, 8(%rbx)
    /* MMIO reads of 1, 2, 4, 8 bytes (handled), results to DATA_OUT+32 */
    movb (%rbx), %al
    mov %al, DATA_OUT + 32
    movw 2(%rbx), %ax
    mov %ax, DATA_OUT + 34
    movl 4(%rbx), %eax
    mov %eax, DATA_OUT + 36
    mov 8(%rbx), %rax
    mov %rax, DATA_OUT + 40
    /* Unclaimed: each returns to the caller. */
    mov $0xa5, %al
    out %al, $PORT_UNCLAIMED_OUT
    in $PORT_UNCLAIMED_IN, %ax
    mov %ax, DATA_OUT + 48
    mov $MMIO_UNCLAIMED, %rbx
    mov (%rbx), %rax
    mov %rax, DATA_OUT + 56
    movl $0xdeadbeef, (%rbx)
    /* an unclaimed read nobody completes reads as all-ones */
    in $PORT_UNCLAIMED_IN, %eax
    mov %eax, DATA_OUT + 64
    DONE(0x10)
    jmp .
