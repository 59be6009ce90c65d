/* Spins forever, counting at DATA_OUT; only a kick gets the host back. */
#include "guest.h"
    .code64
    .globl _start
_start:
    xor %rax, %rax
1:  inc %rax
    mov %rax, DATA_OUT
    jmp 1b
