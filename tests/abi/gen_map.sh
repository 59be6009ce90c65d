#!/usr/bin/env bash
# Writes src/hvcore.map with every HVC_EXTERN function of include/ in the
# HVCORE_1.0 node. Only while 1.0 is unreleased (ABI.md): after the release,
# new symbols go into a new node by hand and this script must not be used.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
{
    echo "/* libhvcore exported symbols. One node per minor release that adds symbols;"
    echo " * a symbol, once listed, stays in its node forever (see ABI.md). */"
    echo "HVCORE_1.0 {"
    echo "  global:"
    grep -rhoz 'HVC_EXTERN[^;]*;' "$top/include" | tr '\0\n' '  ' |
        grep -o 'hvc_[a-z0-9_]*[[:space:]]*(' | tr -d ' (' | sort -u |
        sed 's/^/    /; s/$/;/'
    echo "  local:"
    echo "    *;"
    echo "};"
} >"$top/src/hvcore.map"
