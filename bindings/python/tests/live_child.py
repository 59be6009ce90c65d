"""A new process that receives a running counter64 VM and lets it count on.

Run by test_live.py as ``python live_child.py HOW FD EXTRA`` with
PYTHONPATH and HVCORE_LIBRARY set: HOW is "migrate"
(``VM.migrate_receive()``) or "handover" (``VM.handover_receive()``,
taking the UART's output descriptor with ``vm.handover_fd()``), FD the
inherited socket. Once received, every vCPU counts EXTRA more. Prints one
JSON object: the user data, the count when received, each vCPU's counter
state at the end, what the guest printed on COM1 here, and the errno of
taking a descriptor slot the sender had none for.
"""

import json
import os
import struct
import sys

import hvcore

DATA_IN = 0x20000
STATE = 0x30000 + 0x100
PORT_DONE = 0xF4


def main():
    how, fd, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    console = []
    seen = {"taken_fds": []}

    def setup(vm, user_data):
        seen["user_data"] = user_data.decode()
        output_fd = None
        if how == "handover":
            output_fd = vm.handover_fd("com1", 0)
            seen["taken_fds"].append(output_fd)
            try:
                vm.handover_fd("com1", 1)  # the source had no input fd
            except hvcore.HvError as err:
                seen["empty_slot_errno"] = err.errno
        vm.add_serial(name="com1", output=console.append,
                      output_fd=output_fd)

    with hvcore.Hypervisor("kvm") as hv:
        if how == "migrate":
            vm = hvcore.VM.migrate_receive(hv, fd, setup=setup)
        else:
            vm = hvcore.VM.handover_receive(hv, fd, setup=setup)
        os.close(fd)
        start = [struct.unpack("<Q", vm.read(STATE + 0x40 * v.id, 8))[0]
                 for v in vm.vcpus]
        vm.write(DATA_IN, struct.pack("<Q", max(start) + extra))
        states = []
        for vcpu in vm.vcpus:
            exit = vcpu.run()
            assert exit.reason == hvcore.ExitReason.PIO, exit
            assert exit.port == PORT_DONE, exit
            assert exit.data[0] == 0x60 + vcpu.id, exit
            states.append(struct.unpack(
                "<3Q", vm.read(STATE + 0x40 * vcpu.id, 24)))
        seen.update(start=start, states=states,
                    console=b"".join(console).decode())
        vm.close()
    for taken in seen["taken_fds"]:
        os.close(taken)
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main()
