/* HLT (returned as HVC_EXIT_HLT without an in-kernel irqchip), then done;
 * then ud2, which without an IDT becomes a triple fault (shutdown). */
#include "guest.h"
    .code64
    .globl _start
_start:
    hlt
    DONE(0x48)
    ud2
