/* A minimal Linux bzImage, built from this file: a setup header (boot
 * protocol 2.15, 64-bit entry) and a protected-mode "kernel" whose 64-bit
 * entry (load address + 0x200) prints the command line it finds through
 * boot_params (RSI) on COM1 and exits with 0x42 through port 0xf4. All
 * code is position-independent: the loader picks the load address. */
#define COM1 0x3f8

    .code16
    .globl _start
_start:
    .org 0x1f1
setup_sects:    .byte 1              /* setup = 2 sectors (1 KiB) */
root_flags:     .word 0
syssize:        .long 0
ram_size:       .word 0
vid_mode:       .word 0
root_dev:       .word 0
boot_flag:      .word 0xaa55
jump:           .byte 0xeb, hdr_end - header
header:         .ascii "HdrS"
version:        .word 0x020f
realmode_swtch: .long 0
start_sys_seg:  .word 0
kernel_version: .word 0
type_of_loader: .byte 0
loadflags:      .byte 0x01           /* LOADED_HIGH */
setup_move_size: .word 0
code32_start:   .long 0x100000
ramdisk_image:  .long 0
ramdisk_size:   .long 0
bootsect_kludge: .long 0
heap_end_ptr:   .word 0
ext_loader_ver: .byte 0
ext_loader_type: .byte 0
cmd_line_ptr:   .long 0
initrd_addr_max: .long 0x7fffffff
kernel_alignment: .long 0x200000
relocatable_kernel: .byte 0
min_alignment:  .byte 0
xloadflags:     .word 0x0001         /* XLF_KERNEL_64 */
cmdline_size:   .long 0x7ff
hardware_subarch: .long 0
hardware_subarch_data: .quad 0
payload_offset: .long 0
payload_length: .long 0
setup_data:     .quad 0
pref_address:   .quad 0x100000
init_size:      .long 0x10000
handover_offset: .long 0
kernel_info_offset: .long 0
hdr_end:
    .org 0x400                       /* end of setup: the kernel proper */
kernel:
    .code64
    .org 0x600                       /* kernel + 0x200: the 64-bit entry */
entry64:
    mov %rsi, %rbx                   /* boot_params */
    lea msg(%rip), %rdi
    call puts
    mov 0x228(%rbx), %edi            /* cmd_line_ptr */
    call puts
    lea msg_end(%rip), %rdi
    call puts
    mov $0x42, %al
    out %al, $0xf4
1:  hlt
    jmp 1b

/* puts(rdi): polled COM1 output of a NUL-terminated string */
puts:
    mov $COM1 + 5, %dx
2:  in %dx, %al
    test $0x20, %al
    jz 2b
    movb (%rdi), %al
    test %al, %al
    jz 3f
    mov $COM1, %dx
    out %al, %dx
    inc %rdi
    jmp puts
3:  ret

msg:     .asciz "bzImage: cmdline: ["
msg_end: .asciz "]\n"
