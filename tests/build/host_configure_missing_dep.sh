#!/bin/bash
# configure must stop with one clear line naming the Debian package when a
# dependency is missing. We hide jansson.pc from pkg-config and check.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/pc" "$tmp/build"
for d in $(pkg-config --variable pc_path pkg-config | tr : ' '); do
	[ -d "$d" ] && cp -a "$d"/*.pc "$tmp/pc/" 2>/dev/null || true
done
rm -f "$tmp/pc/jansson.pc"
[ -f "$tmp/pc/libcurl.pc" ] || { echo "FAIL: could not collect .pc files"; exit 1; }
cd "$tmp/build"
if PKG_CONFIG_LIBDIR="$tmp/pc" PKG_CONFIG_PATH= "$WRAPD_SRCDIR/configure" -q >out 2>&1; then
	echo "FAIL: configure succeeded without jansson"; exit 1
fi
expected="configure: error: jansson not found: install the Debian package 'libjansson-dev' (apt-get install libjansson-dev)"
if ! grep -qxF "$expected" out; then
	echo "FAIL: expected the line: $expected"; echo "got:"; cat out; exit 1
fi
echo "ok: $expected"
