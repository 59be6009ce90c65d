#!/usr/bin/env bash
# Proves check_foreign_names.sh catches a collision: plants a declaration of
# hv_vcpu_run (Hypervisor.framework's name) into a copy of the public
# headers, runs the check on the copy and expects it to fail naming it.
#   plant_foreign_names.sh C_COMPILER INCLUDE_DIR FOREIGN_DIRS
set -euo pipefail
cc=$1 inc=$2 foreign=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cp -R "$inc" "$tmp/include"
h=$tmp/include/hvcore/vcpu.h
sed 's|^#endif /\* HVCORE_VCPU_H \*/|HVC_EXTERN int hv_vcpu_run(hvc_vcpu *vcpu, const hvc_exit **exit);\n&|' \
    "$inc/hvcore/vcpu.h" >"$h"
if ! grep -q '^HVC_EXTERN int hv_vcpu_run(' "$h"; then
    echo "FAIL: could not plant hv_vcpu_run into hvcore/vcpu.h" >&2
    exit 1
fi

set +e
out=$("$here/check_foreign_names.sh" "$cc" "$tmp/include" "$foreign" 2>&1)
rc=$?
set -e
printf '%s\n' "$out" | sed "s|$tmp|<copy>|g"
if [ "$rc" -eq 0 ]; then
    echo "FAIL: check_foreign_names.sh passed with hv_vcpu_run planted" >&2
    exit 1
fi
for want in 'declares hv_vcpu_run, which Hypervisor.framework declares too' \
    "conflicting types for .*hv_vcpu_run" \
    'do not compile together (hvcore first)' \
    'do not compile together (framework first)'; do
    if ! grep -q -- "$want" <<<"$out"; then
        echo "FAIL: the check failed, but its output lacks: $want" >&2
        exit 1
    fi
done
echo "ok: check_foreign_names.sh refused the planted hv_vcpu_run (status $rc)"
