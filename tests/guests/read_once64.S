/* One unclaimed port read, whose value it stores at DATA_OUT, then done:
 * the host completes (or does not complete) the read around a save. */
#include "guest.h"
    .code64
    .globl _start
_start:
    in $PORT_UNCLAIMED_IN, %al
    mov %al, DATA_OUT
    DONE(0x11)
    jmp .
