/* A hostile guest's notify storm (tests/test_malicious_guest.c): writes
 * the 32-bit value at DATA_IN + 16 to the address at DATA_IN + 8, as many
 * times as the u64 at DATA_IN says, then writes 0x5c to PORT_DONE. At a
 * virtio-mmio QueueNotify register each write rings the queue's doorbell. */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov DATA_IN, %rcx
    mov DATA_IN + 8, %rbx
    mov DATA_IN + 16, %eax
    test %rcx, %rcx
    jz 2f
1:  movl %eax, (%rbx)
    dec %rcx
    jnz 1b
2:  DONE(0x5c)
    jmp .
