/* tests/guests/emulfail64.S in 32-bit protected mode, paging off (hvrun
 * --raw-mode 32): XSAVE to MMIO_UNCLAIMED, which KVM cannot emulate, at
 * GUEST_LOAD + 0x40. */
#include "guest.h"
    .code32
    .globl _start
_start:
    mov %cr4, %eax
    or $(1 << 18), %eax /* CR4.OSXSAVE */
    mov %eax, %cr4
    xor %ecx, %ecx
    xor %edx, %edx
    mov $1, %eax /* XCR0 = x87 */
    xsetbv
    mov $MMIO_UNCLAIMED, %edi
    mov $1, %eax
    jmp 1f
    .org 0x40
1:  xsave (%edi)
    DONE(0x32) /* not reached */
    jmp .
