#!/usr/bin/env bash
# Boots Debian's cloud kernel (fetched by fetch_kernel.sh) under hvrun. On
# this project's hosts KVM has no hardware nesting and a stock kernel
# cannot boot all the way, so the test reads the console until the e820 map
# is printed, then stops the guest, and checks the banner, the command line
# (exactly as passed) and the e820 map against --mem.
#   boot_debian.sh HVRUN CACHE_DIR
set -uo pipefail
hvrun=$1 cache=$2
kernel=$cache/vmlinuz
if [ ! -s "$kernel" ]; then
    echo "SKIP: Debian's kernel was not fetched (see the debian_kernel_fetch test)"
    exit 77
fi
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
    [ "${HVCORE_REQUIRE_KVM:-0}" = 1 ] && { echo "FAIL: /dev/kvm unusable"; exit 1; }
    echo "SKIP: /dev/kvm is not usable"
    exit 77
fi
mem=384
cmdline="console=ttyS0 earlyprintk=ttyS0 hvcore.test=$$-$RANDOM quiet=0"
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$hvrun" --kernel "$kernel" --mem "$mem" --cmdline "$cmdline" \
    --serial "file:$tmp/console" </dev/null 2>"$tmp/stderr" &
pid=$!
start=$(date +%s)
# The decompressor alone takes a minute or two under shadow paging; the
# e820 map follows the banner at once. The line after the map ends it.
while kill -0 "$pid" 2>/dev/null; do
    if grep -q 'BIOS-e820' "$tmp/console" 2>/dev/null &&
        grep -A50 'BIOS-e820' "$tmp/console" | grep -qv 'BIOS-e820\|RAM map'; then
        break
    fi
    [ $(($(date +%s) - start)) -ge 480 ] && break
    sleep 1
done
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
elapsed=$(($(date +%s) - start))
out=$tmp/console
fail() {
    echo "FAIL: $*"
    echo "--- console (after ${elapsed}s) ---"
    head -c 4000 "$out"
    echo "--- hvrun stderr ---"
    cat "$tmp/stderr"
    exit 1
}
grep -q '^\[ *[0-9.]*\] Linux version [0-9]' "$out" || fail "no 'Linux version' banner"
grep -qF "Command line: $cmdline" "$out" || fail "the command line is not exactly '$cmdline'"
# The map hvrun gives: RAM below the legacy hole, the hole, RAM from 1 MiB.
top=$(printf '0x%016x' $((mem * 1024 * 1024 - 1)))
for want in "[mem 0x0000000000000000-0x000000000009fbff] usable" \
    "[mem 0x000000000009fc00-0x00000000000fffff] reserved" \
    "[mem 0x0000000000100000-$top] usable"; do
    grep -qF "BIOS-e820: $want" "$out" || fail "no e820 entry '$want'"
done
n=$(grep -c 'BIOS-e820:' "$out")
[ "$n" -eq 3 ] || fail "$n e820 entries, expected 3"
echo "ok: $(cat "$cache/package") printed its banner, '$cmdline' and the e820 map for ${mem} MiB after ${elapsed}s"
grep -m1 'Linux version' "$out"
