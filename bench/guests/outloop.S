/* Exit-latency guest (bench/exit_latency.c): real mode, linked at 0x8000.
 * It reads the number of port writes from the dword the host put at
 * COUNT_ADDR (zero in fresh memory), does that many `out %al, $0x10`, each
 * one a VM exit, then writes 0 to port 0xf4, which ends the run. */
#define COUNT_ADDR 0x9000 /* bench/exit_latency.c says the same */
#define PORT_LOOP 0x10
#define PORT_DONE 0xf4

    .code16
    .globl _start
_start:
    xor %ax, %ax
    mov %ax, %ds
    movl (COUNT_ADDR), %ecx
    test %ecx, %ecx
    jz done
loop:
    out %al, $PORT_LOOP
    dec %ecx
    jnz loop
done:
    mov $0, %al
    out %al, $PORT_DONE
    jmp .
