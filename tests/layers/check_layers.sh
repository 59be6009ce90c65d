#!/usr/bin/env bash
# The layering rules of DESIGN.md §8, checked on the source tree:
#   - src/core includes no Linux-only header (<linux/*>, epoll, eventfd,
#     signalfd): those live in src/os/linux behind src/os/os.h;
#   - src/core calls no topology function (NUMA reaches a region through
#     the hooks topology provides; only the registry names them);
#   - no backend op (ops->vm_*, ops->vcpu_*, ...) is called outside
#     src/core and src/backends;
#   - no interrupt-line count is written as a literal 24 outside the KVM
#     backend and the architecture's own chip models (src/arch/x86, whose
#     IOAPIC has 24 pins by definition); the keyword must be on the line,
#     not in the file's name.
# Usage: check_layers.sh SRC_DIR. Prints every offending line; status 1 if
# there is one.
set -uo pipefail
shopt -s lastpipe # report runs in this shell, so it can set bad
src=${1:?usage: check_layers.sh SRC_DIR}
[ -d "$src/core" ] || { echo "check_layers: $src/core is not a directory" >&2; exit 2; }
bad=0
report() { # report RULE: prints the lines grep found on stdin, if any
    local rule=$1 lines
    lines=$(cat)
    if [ -n "$lines" ]; then
        echo "layers: $rule:"
        printf '  %s\n' "$lines"
        bad=1
    fi
}

grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(linux/|sys/epoll\.h|sys/eventfd\.h|sys/signalfd\.h)' \
    "$src/core" | report "src/core includes a Linux-only header"

# A call is the name followed by '('; the registry may name the hooks.
grep -rnE '\bhvi_(numa|topology)_[a-z0-9_]*[[:space:]]*\(' "$src/core" |
    report "src/core calls a topology function"
grep -rnE '#[[:space:]]*include[[:space:]]*"[^"]*topology/' "$src/core" |
    grep -v '/registry\.c:' | report "src/core includes a topology header"

grep -rnE '(->|\.)ops->[a-z_]+[[:space:]]*\(|\bops->(vm|vcpu)_[a-z_]+[[:space:]]*\(' "$src" \
    --include='*.c' --include='*.h' |
    grep -vE "^$src/(core|backends)/" |
    report "a backend op is called outside src/core and src/backends"

grep -rnE '\b24\b' "$src" --include='*.c' --include='*.h' |
    awk '{ c = $0; sub(/^[^:]+:[0-9]+:/, "", c) }
         tolower(c) ~ /irq|gsi|ioapic|lines/' |
    grep -vE "^$src/(backends/kvm|arch/x86)/" |
    grep -vE '^[^:]+:[0-9]+:[[:space:]]*(\*|/\*|//)' |
    report "an interrupt-line count is a literal outside the KVM backend"

[ $bad -eq 0 ] && echo "layers: src/core, src/os, src/arch and the backends keep to their layers"
exit $bad
