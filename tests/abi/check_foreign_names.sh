#!/usr/bin/env bash
# libhvcore must be usable in one translation unit with Apple's
# Hypervisor.framework headers: the HVF backend includes both, and so may a
# VMM. The project's own declarations of the framework's documented API
# are the ones the HVF backend builds against on Linux,
# tests/hvf_host/include/Hypervisor/ (x86, included as
# <Hypervisor/Hypervisor.h>), and tests/abi/foreign/hvf_arm64.h (arm64,
# which nothing builds against). This check
#   - compiles <hvcore.h> with each of them, in both include orders, as C11
#     with -Wall -Wextra -Werror -pedantic;
#   - refuses any hv_* or HV_* identifier (declaration, macro, enumerator,
#     tag) in the headers <hvcore.h> pulls in from INCLUDE_DIRS, naming the
#     ones Hypervisor.framework declares as collisions: the framework owns
#     that namespace and keeps adding to it (DESIGN.md section 3); and any
#     of the framework's VMCS_*/VMX_* names;
#   - with LIBRARY, refuses any hv_* symbol that the library exports.
#   check_foreign_names.sh C_COMPILER INCLUDE_DIRS FOREIGN_DIRS [LIBRARY]
# INCLUDE_DIRS is a ':'-separated list (the build's include directories of
# the hvcore target). FOREIGN_DIRS too: in each, every hvf_*.h but
# hvf_common.h, and Hypervisor/Hypervisor.h where there is one, is a
# foreign API; each directory is an include directory of the checks.
set -euo pipefail
cc=$1 incs=$2 foreigns=$3 lib=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

IFS=: read -r -a inc_list <<<"$incs"
iflags=()
for d in "${inc_list[@]}"; do
    [ -n "$d" ] && iflags+=("-I$d")
done
cflags=(-std=c11 -pedantic -Wall -Wextra -Werror)
IFS=: read -r -a foreign_list <<<"$foreigns"
fflags=() headers=() fdirs=
for d in "${foreign_list[@]}"; do
    [ -n "$d" ] || continue
    d=$(cd "$d" && pwd -P)
    fflags+=("-I$d")
    fdirs+="${fdirs:+:}$d"
    for h in "$d"/hvf_*.h; do
        [ -e "$h" ] || continue
        case ${h##*/} in hvf_common.h) ;; *) headers+=("${h##*/}") ;; esac
    done
    [ -e "$d/Hypervisor/Hypervisor.h" ] && headers+=("Hypervisor/Hypervisor.h")
done
if [ "${#headers[@]}" -eq 0 ]; then
    echo "FAIL: no foreign headers in $foreigns" >&2
    exit 1
fi

# hv_/HV_/VMCS_/VMX_ identifiers in the preprocessed text (macros kept with -dD) that
# comes from files under the given directories, as "name<TAB>file".
# Line markers say which file each line comes from; system headers are
# skipped.
names_from() { # names_from TU DIR[:DIR...]
    "$cc" -std=c11 -E -dD "${iflags[@]}" "${fflags[@]}" "$1" |
        DIRS=$2 awk '
            BEGIN { n = split(ENVIRON["DIRS"], d, ":") }
            /^# [0-9]+ "/ {
                f = $3; gsub(/"/, "", f); keep = 0
                for (i = 1; i <= n; i++)
                    if (index(f, d[i] "/") == 1) keep = 1
                next
            }
            keep {
                s = $0
                while (match(s, /(^|[^A-Za-z0-9_])(hv|HV|VMCS|VMX)_[A-Za-z0-9_]*/)) {
                    t = substr(s, RSTART, RLENGTH)
                    sub(/^[^A-Za-z]/, "", t)
                    print t "\t" f
                    s = substr(s, RSTART + RLENGTH)
                }
            }'
}

rc=0
# Every name the foreign headers declare.
: >"$tmp/foreign"
for h in "${headers[@]}"; do
    printf '#include "%s"\n' "$h" >"$tmp/f.c"
    names_from "$tmp/f.c" "$fdirs" | cut -f1 >>"$tmp/foreign"
done
sort -u -o "$tmp/foreign" "$tmp/foreign"
if ! grep -qx hv_vcpu_run "$tmp/foreign"; then
    echo "FAIL: the foreign headers in $foreigns declare no hv_vcpu_run" >&2
    exit 1
fi

# Every such name libhvcore's headers bring in.
printf '#include <hvcore.h>\n' >"$tmp/h.c"
dirs=$incs
for d in "${inc_list[@]}"; do
    [ -n "$d" ] && dirs+=":$(cd "$d" && pwd -P)"
done
# The preprocessor names files as found through -I; match the real path too.
names_from "$tmp/h.c" "$dirs" | sort -u >"$tmp/ours"
while IFS=$'\t' read -r name file; do
    if grep -qx "$name" "$tmp/foreign"; then
        echo "FAIL: $file declares $name, which Hypervisor.framework" \
            "declares too" >&2
        rc=1
    elif [[ $name == hv_* || $name == HV_* ]]; then
        echo "FAIL: $file declares $name, in Hypervisor.framework's" \
            "hv_/HV_ namespace (use hvc_/HVC_, or hvi_ inside src/)" >&2
        rc=1
    fi # else a VMCS_/VMX_ name that the framework does not declare
done <"$tmp/ours"

# Both include orders, with each architecture's API.
for h in "${headers[@]}"; do
    for order in "hvcore first" "framework first"; do
        if [ "$order" = "hvcore first" ]; then
            printf '#include <hvcore.h>\n#include "%s"\n' "$h" >"$tmp/tu.c"
        else
            printf '#include "%s"\n#include <hvcore.h>\n' "$h" >"$tmp/tu.c"
        fi
        printf 'int hvc_foreign_check;\n' >>"$tmp/tu.c"
        if ! "$cc" "${cflags[@]}" -fsyntax-only "${iflags[@]}" "${fflags[@]}" \
            "$tmp/tu.c" 2>"$tmp/err"; then
            sed "s|$tmp/tu.c|<$order: $h>|" "$tmp/err" >&2
            echo "FAIL: <hvcore.h> and $h do not compile together" \
                "($order)" >&2
            rc=1
        fi
    done
done

# The library's exports.
if [ -n "$lib" ]; then
    nm -D --defined-only "$lib" | awk '{ sub(/@.*/, "", $3); print $3 }' |
        grep -E '^(hv|HV)_' >"$tmp/exported" || true
    while read -r sym; do
        if grep -qx "$sym" "$tmp/foreign"; then
            echo "FAIL: ${lib##*/} exports $sym, which Hypervisor.framework" \
                "defines" >&2
        else
            echo "FAIL: ${lib##*/} exports $sym, in Hypervisor.framework's" \
                "hv_ namespace" >&2
        fi
        rc=1
    done <"$tmp/exported"
fi

n=$(wc -l <"$tmp/foreign")
[ "$rc" -eq 0 ] && echo "ok: <hvcore.h> compiles with ${headers[*]} in both" \
    "orders and declares none of their $n hv_/HV_/VMCS_/VMX_ names, nor any" \
    "other hv_/HV_ name"
exit "$rc"
