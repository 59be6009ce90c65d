#!/usr/bin/env bash
# Writes the public ABI of a libhvcore build to stdout: exported functions
# and the types reachable from them, with the library's private structs
# (declared outside include/) left opaque, and no file paths, so dumps from
# different build trees compare equal.
#   abi_dump.sh LIBRARY INCLUDE_DIR
set -euo pipefail
abidw --headers-dir "$2" --drop-private-types --no-show-locs \
    --no-corpus-path --no-comp-dir-path "$1"
