"""A new process that restores a counter64 VM and lets it count on.

Run by test_migration.py as ``python migration_child.py SOURCE LIMIT
[--mmap] [--verify] [--key HEX] [--passphrase TEXT]`` with PYTHONPATH and
HVCORE_LIBRARY set: SOURCE is a snapshot path, "fd" (restore from the
descriptor stdin) or "file" (from sys.stdin.buffer, a file object). It
prints one JSON object: the user data, the vCPU ids, each vCPU's counter
state after counting to LIMIT, and what vCPU 0 printed on COM1.
"""

import argparse
import json
import struct
import sys

import hvcore

DATA_IN = 0x20000
STATE = 0x30000 + 0x100
PORT_DONE = 0xF4


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("limit", type=int)
    parser.add_argument("--mmap", action="store_true")
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--key")
    parser.add_argument("--passphrase")
    args = parser.parse_args()
    if args.source == "fd":
        source = sys.stdin.fileno()
    elif args.source == "file":
        source = sys.stdin.buffer
    else:
        source = args.source
    console = []
    seen = {}

    def setup(vm, user_data):
        seen["user_data"] = user_data.decode()
        seen["vcpus_in_setup"] = [v.id for v in vm.vcpus]
        vm.add_serial(name="com1", output=console.append)

    with hvcore.Hypervisor("kvm") as hv:
        vm = hvcore.VM.restore(
            hv, source, setup=setup, mmap=args.mmap,
            verify_memory=args.verify,
            key=bytes.fromhex(args.key) if args.key else None,
            passphrase=args.passphrase)
        vm.write(DATA_IN, struct.pack("<Q", args.limit))
        states = []
        for vcpu in vm.vcpus:
            exit = vcpu.run()
            assert exit.reason == hvcore.ExitReason.PIO, exit
            assert exit.port == PORT_DONE, exit
            assert exit.data[0] == 0x60 + vcpu.id, exit
            states.append(struct.unpack(
                "<3Q", vm.read(STATE + 0x40 * vcpu.id, 24)))
        seen.update(vcpus=[v.id for v in vm.vcpus], states=states,
                    console=b"".join(console).decode())
        vm.close()
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main()
