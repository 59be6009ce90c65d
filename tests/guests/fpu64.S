/* Two entries for the FPU state test: at GUEST_LOAD, load xmm0 and xmm7
 * from DATA_IN; at GUEST_LOAD + 0x100, store them to DATA_OUT. */
#include "guest.h"
    .code64
    .globl _start
_start:
    movdqu DATA_IN, %xmm0
    movdqu DATA_IN + 16, %xmm7
    DONE(0x01)
    jmp .
    .org 0x100
store:
    movdqu %xmm0, DATA_OUT
    movdqu %xmm7, DATA_OUT + 16
    DONE(0x02)
    jmp .
