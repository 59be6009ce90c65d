/* Pulls the i8042 reset line (0xfe to port 0x64): hvrun exits 0. */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov $0xfe, %al
    out %al, $0x64
    jmp .
