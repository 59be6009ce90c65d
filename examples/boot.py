#!/usr/bin/env python3
"""A mini hvrun: boots an ELF (PVH or plain), bzImage kernel with a 16550
console on stdout, ACPI tables and a debug-exit port at 0xf4.
Usage: boot.py KERNEL [CMDLINE [MEM_MIB]]   (exit status: the guest's)"""
import sys

import hvcore

kernel = sys.argv[1]
cmdline = sys.argv[2] if len(sys.argv) > 2 else "console=ttyS0"
mem_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 64
console = sys.stdout.buffer

with hvcore.Hypervisor() as hv, hv.create_vm() as vm:
    vm.add_memory(0, mem_mib << 20)
    vm.add_serial(output=lambda data: console.write(data) and console.flush())
    vm.add_debug_exit(0xF4)
    vm.add_i8042()
    vm.add_cmos()
    vm.add_port80()
    rsdp = vm.build_acpi([hvcore.AcpiDevice("PNP0501", "pio", 0x3F8, 8, 4)])
    info = vm.load_kernel(kernel, cmdline=cmdline, acpi_rsdp=rsdp)
    vcpu = vm.vcpu(0)
    vcpu.boot(info)
    while True:  # unclaimed port/MMIO accesses float, as on a real bus
        exit = vcpu.run()
        if exit.reason == hvcore.ExitReason.POWEROFF:
            status = exit.code & 0xFF if exit.handled else 0
            break
        if exit.reason in (hvcore.ExitReason.RESET,
                           hvcore.ExitReason.SHUTDOWN):
            status = 0 if exit.reason == hvcore.ExitReason.RESET else 2
            break
console.flush()
sys.exit(status)
