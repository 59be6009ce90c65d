#!/usr/bin/env bash
# Proves check_symbols.sh catches an export outside hvc_: links a tiny
# stand-in libhvcore.so that exports every function of the version script
# plus a planted hv_vcpu_run (Hypervisor.framework's name), runs the check on
# it with the real version script and headers, and expects it to fail naming
# the plant.
#   plant_symbols.sh C_COMPILER VERSION_SCRIPT INCLUDE_DIR
set -euo pipefail
cc=$1 map=$2 inc=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One empty function per symbol of the version script, and the plant; the
# version script exports the plant too (as a careless edit would).
sed -n 's/^[[:space:]]*\(hvc_[a-z0-9_]*\);.*/void \1(void);\nvoid \1(void) {}/p' \
    "$map" >"$tmp/stubs.c"
printf 'int hv_vcpu_run(unsigned vcpu);\n' >>"$tmp/stubs.c"
printf 'int hv_vcpu_run(unsigned vcpu) { return (int)vcpu; }\n' >>"$tmp/stubs.c"
sed '0,/global:/s//global:\n    hv_vcpu_run;/' "$map" >"$tmp/plant.map"
"$cc" -std=c11 -Wall -Wextra -Werror -shared -fPIC -o "$tmp/libhvcore.so" \
    "$tmp/stubs.c" -Wl,--version-script="$tmp/plant.map"
nm -D --defined-only "$tmp/libhvcore.so" >"$tmp/nm"
if ! grep -q ' hv_vcpu_run@' "$tmp/nm"; then
    echo "FAIL: the stand-in library does not export hv_vcpu_run" >&2
    exit 1
fi

set +e
out=$("$here/check_symbols.sh" "$tmp/libhvcore.so" "$map" "$inc" 2>&1)
rc=$?
set -e
printf '%s\n' "$out"
if [ "$rc" -eq 0 ]; then
    echo "FAIL: check_symbols.sh passed with hv_vcpu_run exported" >&2
    exit 1
fi
for want in 'libhvcore.so exports hv_vcpu_run (nm type T): not hvc_' \
    '^+hv_vcpu_run$'; do
    if ! grep -q -- "$want" <<<"$out"; then
        echo "FAIL: the check failed, but its output lacks: $want" >&2
        exit 1
    fi
done
extra=$(grep '^FAIL' <<<"$out" | grep -v hv_vcpu_run | grep -v 'differ (' ||
    true)
if [ -n "$extra" ]; then
    echo "FAIL: the check failed for more than the plant" >&2
    exit 1
fi
echo "ok: check_symbols.sh refused the exported hv_vcpu_run (status $rc)"
