/* tests/guests/emulfail64.S behind page tables of the guest's own, where
 * the failing XSAVE's linear address is not its physical one: the page at
 * GUEST_LOAD also appears at linear 0x400000000 (16 GiB), and the guest
 * jumps there, so that RIP is 0x400000100 while the bytes are at physical
 * 0x8100; hvrun must walk these tables to print them. The tables, at
 * 0x300000 in fresh (zero) RAM:
 *   PML4[0] -> PDPT; PDPT[0] -> PD0 (2 MiB pages: 0-4 MiB identity),
 *   PDPT[3] -> PD3 (the 2 MiB page at 0xe0000000, MMIO_UNCLAIMED),
 *   PDPT[16] -> PD16 -> PT; PT[0] = 0x8000. */
#include "guest.h"
#define PML4 0x300000
#define PDPT 0x301000
#define PD0 0x302000
#define PD3 0x303000
#define PD16 0x304000
#define PT 0x305000
#define ALIAS 0x400000000
    .code64
    .globl _start
_start:
    movq $(PDPT + 3), PML4
    movq $(PD0 + 3), PDPT
    movq $(PD3 + 3), PDPT + 3 * 8
    movq $(PD16 + 3), PDPT + 16 * 8
    movq $0x83, PD0               /* 0-2 MiB, present, writable, 2 MiB */
    movq $(0x200000 + 0x83), PD0 + 8
    mov $(MMIO_UNCLAIMED + 0x83), %eax
    mov %rax, PD3 + ((MMIO_UNCLAIMED - 0xc0000000) >> 21) * 8
    movq $(PT + 3), PD16
    movq $(GUEST_LOAD + 3), PT
    mov $PML4, %eax
    mov %rax, %cr3
    mov %cr4, %rax
    or $(1 << 18), %rax /* CR4.OSXSAVE */
    mov %rax, %cr4
    xor %ecx, %ecx
    xor %edx, %edx
    mov $1, %eax /* XCR0 = x87 */
    xsetbv
    mov $MMIO_UNCLAIMED, %edi
    mov $1, %eax
    movabs $(ALIAS + 0x100), %rbx
    jmp *%rbx
    .org 0x100
    xsave (%rdi)
    DONE(0x65) /* not reached */
    jmp .
