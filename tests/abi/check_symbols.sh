#!/usr/bin/env bash
# The exported symbols of libhvcore.so, the version script and the public
# headers must name the same functions, each way.
#   check_symbols.sh LIBRARY VERSION_SCRIPT INCLUDE_DIR
set -euo pipefail
lib=$1 map=$2 inc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
    sort -u >"$tmp/exported"
sed -n 's/^[[:space:]]*\(hvc_[a-z0-9_]*\);.*/\1/p' "$map" | sort -u >"$tmp/map"
grep -rhoz 'HVC_EXTERN[^;]*;' "$inc" | tr '\0\n' '  ' |
    grep -o 'hvc_[a-z0-9_]*[[:space:]]*(' | tr -d ' (' | sort -u >"$tmp/headers"

rc=0
if grep -v '^hvc_' "$tmp/exported"; then
    echo "FAIL: symbols above are exported but are not hvc_*" >&2
    rc=1
fi
compare() { # compare A B what
    if ! diff -u "$tmp/$1" "$tmp/$2" >"$tmp/diff"; then
        echo "FAIL: $3 differ ('-' only in $1, '+' only in $2):" >&2
        grep '^[-+]hv' "$tmp/diff" >&2
        rc=1
    fi
}
compare map exported "the version script and the library's exports"
compare map headers "the version script and the HVC_EXTERN declarations"
n=$(wc -l <"$tmp/exported")
[ "$rc" -eq 0 ] && echo "ok: $n symbols, the same in library, version script and headers"
exit "$rc"
