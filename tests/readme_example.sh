#!/usr/bin/env bash
# The C example of README.md runs as printed: takes the program between the
# "readme_example: program" and "readme_example: output" markers verbatim,
# compiles it against the build (-Wall -Wextra -Werror -pedantic, C11), runs
# it with a timeout and compares what it prints with the block after
# "readme_example: output".
#   readme_example.sh README.md C_COMPILER INCLUDE_DIRS LIBRARY
# INCLUDE_DIRS is a ':'-separated list.
set -euo pipefail
readme=$1 cc=$2 incs=$3 lib=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The first fenced block after each marker.
block() { # block MARKER
    awk -v m="<!-- readme_example: $1 -->" '
        $0 == m { found = 1; next }
        found && !inside && /^```/ { inside = 1; next }
        inside && /^```$/ { exit }
        inside { print }' "$readme"
}
block program >"$tmp/example.c"
block output >"$tmp/expected"
if ! [ -s "$tmp/example.c" ] || ! [ -s "$tmp/expected" ]; then
    echo "FAIL: $readme has no readme_example program and output blocks" >&2
    exit 1
fi

iflags=()
IFS=: read -r -a inc_list <<<"$incs"
for d in "${inc_list[@]}"; do
    [ -n "$d" ] && iflags+=("-I$d")
done
if ! "$cc" -std=c11 -pedantic -Wall -Wextra -Werror "${iflags[@]}" \
    "$tmp/example.c" -o "$tmp/example" "$lib" \
    -Wl,-rpath,"$(dirname "$lib")"; then
    echo "FAIL: the README's example does not compile as printed" >&2
    exit 1
fi

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
    if [ "${HVCORE_REQUIRE_KVM:-0}" = 1 ]; then
        echo "FAIL: HVCORE_REQUIRE_KVM=1 but /dev/kvm is not usable" >&2
        exit 1
    fi
    echo "compiled the README's example; /dev/kvm is not usable, so not run"
    exit 77
fi
set +e
(cd "$tmp" && timeout 20 ./example) >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
if [ "$rc" -eq 124 ]; then
    echo "FAIL: the README's example hung (killed after 20 s); it printed:" >&2
    cat "$tmp/out" "$tmp/err" >&2
    exit 1
fi
if [ "$rc" -ne 0 ] || ! cmp -s "$tmp/expected" "$tmp/out"; then
    echo "FAIL: the README's example exited $rc; output against README:" >&2
    diff -u "$tmp/expected" "$tmp/out" >&2 || true
    cat "$tmp/err" >&2
    exit 1
fi
echo "ok: the README's example ran as printed:"
cat "$tmp/out"
