#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds tests/downstream's
# VMM as a user would, with pkg-config and with find_package (shared and
# static), moves the prefix (the install must be relocatable), and runs each
# build on the demo guest. The installed bin/hvrun must run from the moved
# prefix too, with the libhvcore.so.1 installed next to it.
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

hvrun=$prefix/bin/hvrun
if ! [ -x "$hvrun" ]; then
    echo "FAIL: cmake --install did not install bin/hvrun" >&2
    exit 1
fi
if ! "$hvrun" --help >"$tmp/hvrun-help" 2>&1; then
    echo "FAIL: the installed hvrun --help exited non-zero:" >&2
    cat "$tmp/hvrun-help" >&2
    exit 1
fi
grep -q '^usage: hvrun' "$tmp/hvrun-help" ||
    { echo "FAIL: the installed hvrun --help printed no usage" >&2; exit 1; }
# Its RPATH, not the build tree or a system copy, must find the library.
found=$(ldd "$hvrun" | awk '$1 == "libhvcore.so.1" { print $3 }')
case $(realpath "$found" 2>/dev/null) in
"$(realpath "$prefix")"/*) echo "ok: bin/hvrun --help runs, with $found" ;;
*)
    echo "FAIL: the installed hvrun loads libhvcore.so.1 from '$found'," \
        "not from the installed prefix $prefix" >&2
    exit 1
    ;;
esac

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
