/* Run by several vCPUs at once; rdi = the vCPU's index, set by the host.
 * Each writes (index << 16 | i) to PORT_SMP for i = 0..999 and counts in
 * its own qword at DATA_OUT + 8 * index, then reports done with its index. */
#include "guest.h"
    .code64
    .globl _start
_start:
    xor %ecx, %ecx
    lea DATA_OUT(,%rdi,8), %rbx
1:  mov %edi, %eax
    shl $16, %eax
    or %ecx, %eax
    mov $PORT_SMP, %dx
    out %eax, %dx
    incq (%rbx)
    inc %ecx
    cmp $1000, %ecx
    jne 1b
    mov %edi, %eax
    out %al, $PORT_DONE
    jmp .
