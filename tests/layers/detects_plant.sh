#!/usr/bin/env bash
# check_layers.sh must fail on a copy of the tree with one violation of
# each rule planted, and name every planted line.
set -euo pipefail
src=${1:?usage: detects_plant.sh SRC_DIR}
here=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/src"
echo '#include <sys/epoll.h> /* planted */' >>"$tmp/src/core/vm.c"
echo 'int planted_numa(void) { return hvi_numa_bind(0); }' >>"$tmp/src/core/memory.c"
echo 'int planted_op(hvc_vm *vm) { return vm->ops->vm_irq_line(vm->priv, 24); }' \
    >>"$tmp/src/devices/serial.c"
if out=$(bash "$here/check_layers.sh" "$tmp/src"); then
    echo "detects_plant: check_layers.sh passed a tree with planted violations" >&2
    exit 1
fi
echo "$out"
for want in 'sys/epoll.h' 'hvi_numa_bind' 'vm->ops->vm_irq_line' \
    'interrupt-line count'; do
    grep -qF "$want" <<<"$out" || {
        echo "detects_plant: the report does not name $want" >&2
        exit 1
    }
done
echo "detects_plant: all four planted violations were reported"
