#!/usr/bin/env bash
# Regenerates abi/libhvcore.abi from a build with debug info:
#   tests/abi/update_baseline.sh [BUILD_DIR]     (default: build)
# Commit it together with an ABI.md change-log entry.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
# The same command check_abidiff.sh uses for the library under test, so the
# two dumps differ only where the ABI does.
"$top/tests/abi/abi_dump.sh" "$build/src/libhvcore.so" "$top/include" \
    >"$top/abi/libhvcore.abi"
echo "wrote $top/abi/libhvcore.abi"
