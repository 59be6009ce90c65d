/* An instruction KVM cannot emulate, on MMIO: XSAVE to MMIO_UNCLAIMED,
 * where no RAM is. The CPU exits to KVM for the access; KVM's emulator has
 * no XSAVE and gives up (KVM_EXIT_INTERNAL_ERROR, emulation failure) with
 * RIP at the XSAVE, which .org puts at GUEST_LOAD + 0x40 so that
 * tests/test_hvrun_errors.c knows its address and bytes (0f ae 27). */
#include "guest.h"
    .code64
    .globl _start
_start:
    mov %cr4, %rax
    or $(1 << 18), %rax /* CR4.OSXSAVE */
    mov %rax, %cr4
    xor %ecx, %ecx
    xor %edx, %edx
    mov $1, %eax /* XCR0 = x87 */
    xsetbv
    mov $MMIO_UNCLAIMED, %edi
    mov $1, %eax
    jmp 1f
    .org 0x40
1:  xsave (%rdi)
    DONE(0x64) /* not reached */
    jmp .
