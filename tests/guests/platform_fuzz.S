/* A hostile guest against the platform devices (tests/
 * test_malicious_guest.c). DATA_IN: u64 seed (non-zero), u64 count.
 * For count rounds, a xorshift64 step picks one of the UART's eight ports,
 * the CMOS index and data ports, the i8042's two ports or port 0x80, a
 * value, and an access: mostly a byte OUT, else a byte IN, or a 2- or
 * 4-byte OUT or IN (which may straddle a device's range and leave the
 * guest unclaimed). 0xfe to port 0x64 pulls the reset line; the host runs
 * the guest on. Reports the rounds done at DATA_OUT and the xor of every
 * value read at DATA_OUT + 8, then writes 0x5c to PORT_DONE. */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov DATA_IN, %r8            /* PRNG state */
    mov DATA_IN + 8, %r9        /* rounds */
    xor %r10d, %r10d            /* rounds done */
    xor %r11d, %r11d            /* xor of the values read */
round:
    cmp %r9, %r10
    je done
    mov %r8, %rax               /* xorshift64 */
    shl $13, %rax
    xor %rax, %r8
    mov %r8, %rax
    shr $7, %rax
    xor %rax, %r8
    mov %r8, %rax
    shl $17, %rax
    xor %rax, %r8
    mov %r8, %rax
    shr $8, %rax
    and $15, %eax
    movzwl ports(,%rax,2), %edx
    mov %r8, %rax
    shr $16, %rax               /* the value: bits 16.. */
    mov %r8, %rcx
    shr $48, %rcx
    and $15, %ecx               /* the access */
    inc %r10
    cmp $10, %ecx
    jb outb
    cmp $12, %ecx
    jb inb
    cmp $13, %ecx
    je outw
    cmp $14, %ecx
    je inw
    test $1, %r8b
    jz outl
    in %dx, %eax
    xor %eax, %r11d
    jmp round
outb:
    out %al, %dx
    jmp round
inb:
    in %dx, %al
    movzbl %al, %eax
    xor %eax, %r11d
    jmp round
outw:
    out %ax, %dx
    jmp round
inw:
    in %dx, %ax
    movzwl %ax, %eax
    xor %eax, %r11d
    jmp round
outl:
    out %eax, %dx
    jmp round
done:
    mov %r10, DATA_OUT
    mov %r11, DATA_OUT + 8
    DONE(0x5c)
    jmp .
ports:
    .word 0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff
    .word 0x70, 0x71, 0x70, 0x71, 0x60, 0x64, 0x64, 0x80
