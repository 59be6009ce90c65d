#!/usr/bin/env python3
"""examples/hello.c in Python: runs a flat 64-bit guest with a console on
port 0xe9 and an exit port at 0xf4.  Usage: hello.py [GUEST.bin]"""
import os
import sys

import hvcore

lib_build = os.path.dirname(os.path.dirname(hvcore.library_path))
builds = [os.environ.get("HVCORE_BUILD_DIR", ""), lib_build,
          os.path.join(os.path.dirname(os.path.abspath(__file__)), "../build")]
guests = [os.path.join(b, "examples/guests/hello.bin") for b in builds if b]
path = sys.argv[1] if len(sys.argv) > 1 else next(
    (g for g in guests if os.path.exists(g)), guests[0])
status = []

with open(path, "rb") as f, hvcore.Hypervisor() as hv, hv.create_vm() as vm:
    vm.add_memory(0, 2 << 20)
    vm.write(0x8000, f.read())
    vm.add_io_handler("pio", 0xe9, 1, lambda cpu, off, data, size, is_write:
                      sys.stdout.write(chr(data[0])) if is_write else 0)
    vm.add_io_handler("pio", 0xf4, 1, lambda cpu, off, data, size, is_write:
                      status.append(data[0]) or hvcore.IO_EXIT)
    vcpu = vm.vcpu(0)
    vcpu.set_mode("long64", entry=0x8000, stack=0x8000, tables=0x100000)
    if not vcpu.run().handled:
        status[:] = [1]  # stopped on something else than the exit port
print(f"hello: guest exited with status {status[0]}", flush=True)
sys.exit(status[0])
