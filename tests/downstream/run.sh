#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds tests/downstream's
# VMM as a user would, with pkg-config and with find_package (shared and
# static), moves the prefix (the install must be relocatable), and runs each
# build on the demo guest.
#   run.sh BUILD_DIR GUEST.bin C_COMPILER
set -euo pipefail
build=$1 guest=$2 cc=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
mv "$tmp/prefix" "$tmp/moved"
prefix=$tmp/moved
libdir=$(dirname "$(find "$prefix" -name hvcore.pc)")/..

PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH
"$cc" -std=c99 -pedantic -Wall -Wextra -Werror "$here/vmm.c" -o "$tmp/vmm_pc" \
    $(pkg-config --cflags --libs hvcore) -Wl,-rpath,"$libdir"
cmake -S "$here" -B "$tmp/cmake" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
cmake --build "$tmp/cmake" >/dev/null

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
    if [ "${HVCORE_REQUIRE_KVM:-0}" = 1 ]; then
        echo "FAIL: HVCORE_REQUIRE_KVM=1 but /dev/kvm is not usable" >&2
        exit 1
    fi
    echo "built all three; /dev/kvm is not usable, so none was run"
    exit 77
fi
for vmm in vmm_pc cmake/vmm_shared cmake/vmm_static; do
    out=$("$tmp/$vmm" "$guest")
    grep -q 'Hello from a libhvcore guest!' <<<"$out" ||
        { echo "FAIL: $vmm printed: $out" >&2; exit 1; }
    echo "ok: $vmm ran the guest"
done
