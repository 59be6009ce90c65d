/* An invalid opcode with no IDT: a triple fault, hvrun exits 124. */
#include "guest.h"
    .code64
    .globl _start
_start:
    ud2
