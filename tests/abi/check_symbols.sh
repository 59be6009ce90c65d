#!/usr/bin/env bash
# The exported symbols of libhvcore.so, the version script and the public
# headers must name the same functions, each way; and the library exports
# nothing outside hvc_ (every defined dynamic symbol but the version nodes'
# own), so that no internal name, and nothing in Hypervisor.framework's hv_
# namespace, can leak into a program's symbol table.
#   check_symbols.sh LIBRARY VERSION_SCRIPT INCLUDE_DIR
set -euo pipefail
lib=$1 map=$2 inc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "name<TAB>type" for every defined dynamic symbol, less the absolute
# symbols that name the version nodes (HVCORE_1.0, ...).
nm -D --defined-only "$lib" |
    awk '{ sub(/@.*/, "", $3) }
         !($2 == "A" && $3 ~ /^HVCORE_[0-9.]+$/) { print $3 "\t" $2 }' |
    sort -u >"$tmp/symbols"
cut -f1 "$tmp/symbols" | sort -u >"$tmp/exported"
sed -n 's/^[[:space:]]*\(hvc_[a-z0-9_]*\);.*/\1/p' "$map" | sort -u >"$tmp/map"
grep -rhoz 'HVC_EXTERN[^;]*;' "$inc" | tr '\0\n' '  ' |
    grep -o 'hvc_[a-z0-9_]*[[:space:]]*(' | tr -d ' (' | sort -u >"$tmp/headers"

rc=0
while IFS=$'\t' read -r sym type; do
    case $sym in
    hvc_*) ;;
    hv_* | HV_*)
        echo "FAIL: ${lib##*/} exports $sym (nm type $type): not hvc_*, and" \
            "hv_ is Hypervisor.framework's namespace" >&2
        rc=1
        ;;
    *)
        echo "FAIL: ${lib##*/} exports $sym (nm type $type): not hvc_*" >&2
        rc=1
        ;;
    esac
done <"$tmp/symbols"
compare() { # compare A B what
    if ! diff -u "$tmp/$1" "$tmp/$2" >"$tmp/diff"; then
        echo "FAIL: $3 differ ('-' only in $1, '+' only in $2):" >&2
        sed -n '/^[-+][^-+]/p' "$tmp/diff" >&2
        rc=1
    fi
}
compare map exported "the version script and the library's exports"
compare map headers "the version script and the HVC_EXTERN declarations"
n=$(wc -l <"$tmp/exported")
[ "$rc" -eq 0 ] && echo "ok: $n symbols, the same in library, version script and headers"
exit "$rc"
