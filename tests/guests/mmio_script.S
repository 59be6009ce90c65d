/* Performs a list of MMIO operations the host wrote at DATA_IN, then
 * reports done. Each entry: u64 address, u64 value, u32 size (1/2/4/8),
 * u32 op (0 write, 1 read into the entry's value field, 2 end, 3 spin until
 * the 16-bit word at address equals value, bounded). Lets host-side tests
 * drive a device's registers exactly as a driver would. */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov $DATA_IN, %rbx
next:
    mov 20(%rbx), %eax          /* op */
    cmp $2, %eax
    je done
    mov (%rbx), %rdi            /* address */
    mov 8(%rbx), %rsi           /* value */
    mov 16(%rbx), %ecx          /* size */
    cmp $1, %eax
    je read
    cmp $3, %eax
    je wait
    cmp $1, %ecx
    je w1
    cmp $2, %ecx
    je w2
    cmp $4, %ecx
    je w4
    mov %rsi, (%rdi)
    jmp advance
w1: mov %sil, (%rdi)
    jmp advance
w2: mov %si, (%rdi)
    jmp advance
w4: mov %esi, (%rdi)
    jmp advance
read:
    cmp $1, %ecx
    je r1
    cmp $2, %ecx
    je r2
    cmp $4, %ecx
    je r4
    mov (%rdi), %rax
    jmp store
r1: movzbq (%rdi), %rax
    jmp store
r2: movzwq (%rdi), %rax
    jmp store
r4: mov (%rdi), %eax
store:
    mov %rax, 8(%rbx)
    jmp advance
wait:
    mov $20000000, %rcx
1:  movzwl (%rdi), %eax
    cmp %si, %ax
    je advance
    pause
    dec %rcx
    jnz 1b
    movq $0xdead, 8(%rbx)       /* timed out: mark the entry */
advance:
    add $24, %rbx
    jmp next
done:
    DONE(0x5c)
    jmp .
