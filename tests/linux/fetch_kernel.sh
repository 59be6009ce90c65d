#!/usr/bin/env bash
# Fetches Debian's cloud kernel (the package linux-image-cloud-amd64
# depends on) with apt-get download and keeps its bzImage as
# CACHE_DIR/vmlinuz. Exit 77 (skip) with the reason when it cannot be had.
#   fetch_kernel.sh CACHE_DIR
set -uo pipefail
cache=$1
[ -s "$cache/vmlinuz" ] && { echo "cached: $(cat "$cache/package")"; exit 0; }
skip() { echo "SKIP: cannot fetch Debian's kernel: $*"; exit 77; }
command -v apt-get >/dev/null || skip "no apt-get on this machine"
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$pkg" ] || skip "apt-cache knows no linux-image-cloud-amd64 (run apt-get update?)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt's _apt user downloads into it
(cd "$tmp" && apt-get download -q "$pkg" >"$tmp/log" 2>&1) ||
    skip "apt-get download $pkg failed: $(tail -n 1 "$tmp/log")"
dpkg-deb -x "$tmp"/*.deb "$tmp/x" || skip "dpkg-deb could not unpack $pkg"
img=$(ls "$tmp"/x/boot/vmlinuz-* 2>/dev/null | head -n 1)
[ -n "$img" ] || skip "$pkg has no /boot/vmlinuz-*"
mkdir -p "$cache"
cp "$img" "$cache/vmlinuz.tmp" && mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
echo "$pkg" >"$cache/package"
echo "fetched $pkg"
