#!/bin/bash
# wrapctl encrypt/rekey/decrypt/resume refusals: each must fail with a clear
# message and leave the device (and any header file) byte-identical. All of
# these refuse before Vault is asked for anything, so no Vault is needed.
set -u
WRAPCTL=${WRAPCTL:-./wrapctl}
srcdir=${srcdir:-.}
T=$(mktemp -d /tmp/wrapd-refuse-XXXXXX)
trap 'cleanup' EXIT
LOOP=
cleanup() {
	[ -n "$LOOP" ] && { umount "$T/mnt" 2>/dev/null; losetup -d "$LOOP" 2>/dev/null; }
	rm -rf "$T"
}
pass=0 fail=0 skipped=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "not ok - $*"; }
skip() { skipped=$((skipped + 1)); echo "ok - # SKIP $*"; }

# refuse NAME PATTERN FILE... -- CMD...: CMD must fail, print PATTERN, and
# leave every FILE unchanged.
refuse() {
	local name=$1 pat=$2; shift 2
	local files=()
	while [ "$1" != -- ]; do files+=("$1"); shift; done; shift
	local before after out
	before=$(sha256sum "${files[@]}" 2>/dev/null)
	out=$("$@" 2>&1 </dev/null); local rc=$?
	after=$(sha256sum "${files[@]}" 2>/dev/null)
	if [ $rc -eq 0 ]; then bad "$name: succeeded"; return; fi
	if ! grep -qi -- "$pat" <<<"$out"; then bad "$name: message '$out' lacks '$pat'"; return; fi
	if [ "$before" != "$after" ]; then bad "$name: device changed"; return; fi
	ok "$name ($out)"
}

head -c $((40 << 20)) /dev/urandom > "$T/raw.img"
refuse "raw data needs --tail-is-free" "tail-is-free" "$T/raw.img" -- \
	$WRAPCTL encrypt "$T/raw.img"

truncate -s 40M "$T/full.img"; mkfs.ext4 -q -F "$T/full.img" >/dev/null 2>&1
refuse "filesystem reaches into the tail" "17 MiB" "$T/full.img" -- \
	$WRAPCTL encrypt "$T/full.img"

head -c $((8 << 20)) /dev/urandom > "$T/small.img"
refuse "too small" "too small" "$T/small.img" -- \
	$WRAPCTL encrypt --tail-is-free "$T/small.img"

if command -v cryptsetup >/dev/null; then
	truncate -s 40M "$T/luks.img"; head -c 64 /dev/urandom > "$T/key"
	cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
		--key-file "$T/key" "$T/luks.img" >/dev/null 2>&1
	refuse "already LUKS (encrypt)" "already a LUKS" "$T/luks.img" -- \
		$WRAPCTL encrypt --tail-is-free "$T/luks.img"
	refuse "already LUKS (encrypt --header)" "already a LUKS" "$T/luks.img" -- \
		$WRAPCTL encrypt --header "$T/new.hdr" "$T/luks.img"
	[ -e "$T/new.hdr" ] && bad "refused encrypt left a header file behind"
	refuse "not a wrapd volume (decrypt)" "wrapd-vault token" "$T/luks.img" -- \
		$WRAPCTL decrypt "$T/luks.img"
else
	skip "cryptsetup not installed"
fi

refuse "resume with nothing to resume" "no interrupted conversion" "$T/raw.img" -- \
	$WRAPCTL resume "$T/raw.img"
refuse "rekey on a plain device" "not a wrapd volume" "$T/raw.img" -- \
	$WRAPCTL rekey "$T/raw.img"

echo "not a header" > "$T/exists.hdr"
refuse "header file exists and is not ours" "exists" "$T/raw.img" "$T/exists.hdr" -- \
	$WRAPCTL encrypt --header "$T/exists.hdr" "$T/raw.img"

req=$srcdir/../shared/testdata/luks2/luks2_header_requirements.tar.xz
[ -e "$req" ] || req=/work/shared/testdata/luks2/luks2_header_requirements.tar.xz
if [ -e "$req" ]; then
	mkdir -p "$T/req" && tar -C "$T/req" -xJf "$req"
	img=$(find "$T/req" -type f -name '*requirements*' ! -name '*free*' | head -1)
	if [ -n "$img" ]; then
		for c in rekey decrypt resume encrypt; do
			refuse "unknown mandatory requirement ($c)" "requirement\|already a LUKS" "$img" -- \
				$WRAPCTL $c "$img"
		done
	else
		skip "no requirements image in $req"
	fi
else
	skip "cryptsetup's requirements test image not found"
fi

# Mounted: a loop device holding a mounted ext4.
truncate -s 40M "$T/m.img"; mkfs.ext4 -q -F "$T/m.img" 20M >/dev/null 2>&1
mkdir -p "$T/mnt"
if LOOP=$(losetup -f --show "$T/m.img" 2>/dev/null) && mount "$LOOP" "$T/mnt" 2>/dev/null; then
	refuse "mounted device" "in use\|mounted" "$T/m.img" -- $WRAPCTL encrypt "$LOOP"
	umount "$T/mnt"
	# "held" (a dm mapping in /sys/.../holders) needs device-mapper: see the VM tests.
else
	skip "cannot mount a loop device here"
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	LOOP=
fi

echo "$pass passed, $fail failed, $skipped skipped"
[ $fail -eq 0 ]
