/* Launch guest (bench/launch.c): real mode, linked at 0x8000. It writes 0
 * to port 0xf4 at once: hvrun's debug-exit port (exit status 0), and the
 * port bench/launch_raw.c runs to. Real mode, because that is what a
 * raw-KVM launcher gets without building page tables: both ways then do
 * the same work. */
#define PORT_DONE 0xf4 /* raw_kvm.h says the same */

    .code16
    .globl _start
_start:
    mov $0, %al
    out %al, $PORT_DONE
    hlt
