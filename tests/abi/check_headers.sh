#!/usr/bin/env bash
# Every public header compiles on its own, as strict C99 and as C++.
#   check_headers.sh INCLUDE_DIR C_COMPILER CXX_COMPILER
set -euo pipefail
inc=$1 cc=$2 cxx=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0 n=0
while IFS= read -r h; do
    rel=${h#"$inc"/}
    printf '#include <%s>\n#include <%s>\nint hvc_header_check;\n' "$rel" "$rel" \
        >"$tmp/tu.c"
    if ! "$cc" -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only \
        -I"$inc" "$tmp/tu.c"; then
        echo "FAIL: $rel as C99" >&2
        rc=1
    fi
    if ! "$cxx" -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror \
        -fsyntax-only -I"$inc" "$tmp/tu.c"; then
        echo "FAIL: $rel as C++" >&2
        rc=1
    fi
    n=$((n + 1))
done < <(find "$inc" -name '*.h' | sort)
[ "$rc" -eq 0 ] && echo "ok: $n headers compile alone as C99 and C++ (included twice)"
exit "$rc"
