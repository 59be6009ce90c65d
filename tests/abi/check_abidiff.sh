#!/usr/bin/env bash
# Compares the built library's ABI with the committed baseline
# (abi/libhvcore.abi). Any difference fails: an incompatible one always, a
# compatible one (say, an added function) until the baseline is regenerated
# with `tests/abi/update_baseline.sh BUILD_DIR` together with an ABI.md
# change-log entry. Also checks, in a git checkout, that the last commit that
# changed the baseline changed ABI.md too.
#   check_abidiff.sh LIBRARY BASELINE INCLUDE_DIR
set -euo pipefail
lib=$1 base=$2 inc=$3
here=$(cd "$(dirname "$0")" && pwd)
cur=$(mktemp)
trap 'rm -f "$cur"' EXIT
"$here/abi_dump.sh" "$lib" "$inc" >"$cur"
set +e
out=$(abidiff --no-show-locs "$base" "$cur" 2>&1)
rc=$?
set -e
if [ $((rc & 8)) -ne 0 ]; then
    echo "$out" >&2
    echo "FAIL: incompatible ABI change against $base" >&2
    exit 1
elif [ $((rc & 4)) -ne 0 ]; then
    echo "$out" >&2
    echo "FAIL: the ABI changed (compatibly). Regenerate the baseline with" \
        "tests/abi/update_baseline.sh and add an ABI.md entry." >&2
    exit 1
elif [ "$rc" -ne 0 ]; then
    echo "$out" >&2
    echo "FAIL: abidiff could not compare (status $rc)" >&2
    exit 1
fi
top=$(cd "$(dirname "$base")/.." && git rev-parse --show-toplevel 2>/dev/null || true)
if [ -n "$top" ]; then
    last=$(git -C "$top" log -1 --format=%H -- "$base")
    if [ -n "$last" ] &&
        ! git -C "$top" show --name-only --format= "$last" | grep -qx 'ABI.md'; then
        echo "FAIL: commit ${last:0:12} changed the ABI baseline without an" \
            "ABI.md entry" >&2
        exit 1
    fi
fi
echo "ok: ABI identical to $base"
