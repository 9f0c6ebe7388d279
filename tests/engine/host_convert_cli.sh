#!/bin/bash
# wrapctl encrypt/rekey/decrypt/resume end to end on the host, against the
# Vault double (no dm-crypt needed: the volumes are files).
#
# Everything wrapctl writes is checked independently: the VK comes straight
# from the double's Transit decrypt (wrapped key and context read with
# cryptsetup luksDump), the data segment is decrypted with
# python3-cryptography's AES-XTS per sector (tests/engine/convhelper.py),
# and compared with the original bytes. The VK lives only in a 0600 file in
# a private directory of this test (tmpfs when /dev/shm exists).
#
# Interruptions are deterministic: wrapctl --json writes its first progress
# line into a full pipe, so it is frozen mid-conversion when the signal is
# sent; the volume must then show a conversion in progress.
#
# Prints "ok - ..." / "not ok - ..." and "N passed, M failed, K skipped".
set -u
B=${WRAPD_BUILDDIR:-.}
S=${WRAPD_SRCDIR:-${srcdir:-.}}
. "$S/tests/lib/checks.sh"
PY=${WRAPD_PYTHON:-/usr/bin/python3}
WRAPCTL=$B/wrapctl
H="$PY $S/tests/engine/convhelper.py"

for t in cryptsetup mkfs.ext4 e2fsck; do
	command -v $t >/dev/null || PATH=$PATH:/sbin:/usr/sbin
	command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
$PY -c 'from cryptography.hazmat.primitives.ciphers import modes; modes.XTS' 2>/dev/null ||
	{ echo "SKIP: python3-cryptography missing"; exit 77; }

W=$(mktemp -d /tmp/wrapd-conv-cli.XXXXXX)
K=$(mktemp -d /dev/shm/wrapd-conv-vk.XXXXXX 2>/dev/null || mktemp -d /tmp/wrapd-conv-vk.XXXXXX)
chmod 700 "$K"
vault_pid=
loops=()
cleanup() {
	set +e
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
	stop_vault_double
	rm -rf "$W" "$K"
}
trap cleanup EXIT

skipped=0
skip() { skipped=$((skipped + 1)); echo "ok - # SKIP $*"; }

# refuse NAME PATTERN FILE... -- CMD...: CMD fails, says PATTERN, every FILE unchanged.
refuse() {
	local name=$1 pat=$2; shift 2
	local files=()
	while [ "$1" != -- ]; do files+=("$1"); shift; done; shift
	local before after out rc
	before=$(sha256sum "${files[@]}" 2>/dev/null)
	out=$("$@" 2>&1 </dev/null); rc=$?
	after=$(sha256sum "${files[@]}" 2>/dev/null)
	if [ $rc -eq 0 ]; then bad "$name: succeeded"; return; fi
	if ! grep -qi -- "$pat" <<<"$out"; then bad "$name: message lacks '$pat':"; sed 's/^/    /' <<<"$out"; return; fi
	if [ "$before" != "$after" ]; then bad "$name: device changed"; return; fi
	ok "$name"
	sed 's/^/    # /' <<<"$out" | head -2
}

start_vault_double "$S" "$W"
unset VAULT_NAMESPACE VAULT_AGENT_ADDR WRAPD_CONFIG

MiB=$((1 << 20))
# Known files for the filesystems.
mkdir -p "$W/files/sub"
seq 1 200000 >"$W/files/numbers.txt"
head -c $((3 * MiB)) /dev/urandom >"$W/files/blob.bin"
head -c 12345 /dev/urandom >"$W/files/sub/odd.bin"
echo hello >"$W/files/sub/hello.txt"

# mkimg FILE SIZE_MIB FS_MIB [mkfs args...]: ext4 of FS_MIB holding the files,
# the rest of the file random (so the shifted tail is really compared).
mkimg() {
	local f=$1 size=$2 fs=$3; shift 3
	head -c $((size * MiB)) /dev/urandom >"$f"
	mkfs.ext4 -q -F -E nodiscard -d "$W/files" "$@" "$f" "${fs}M" >/dev/null 2>&1
}
sha_head() { head -c "$2" "$1" | sha256sum | cut -d' ' -f1; }
json_field() { # FILE-OR-DEV FIELD [--header H]: from wrapctl inspect --json
	local dev=$1 f=$2; shift 2
	"$WRAPCTL" inspect --json "$@" "$dev" | $PY -c '
import json, sys
j = json.load(sys.stdin); w = j.get("wrapd") or {}
f = sys.argv[1]
v = w[f] if f in w else j.get(f)
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$f"
}
in_progress() { [ "$(json_field "$@" conversion_in_progress)" = true ]; }
export -f json_field
export WRAPCTL PY

# verify NAME HDR IMG ORIG LEN: independently decrypt IMG's data segment
# (offset, sector size and token from HDR, the header's home) and compare its
# first LEN bytes with ORIG's.
verify() {
	local name=$1 hdr=$2 img=$3 orig=$4 len=$5 off ss
	off=$(json_field "$hdr" data_offset) ss=$(json_field "$hdr" sector_size)
	rm -f "$K/vk" "$W/dec"
	if ! $H vk "$hdr" "$K/vk" >"$W/out" 2>&1; then bad "$name: VK from the double"; sed 's/^/    /' "$W/out"; return 1; fi
	if ! $H xts-decrypt "$img" "$off" "$ss" "$K/vk" "$W/dec" >"$W/out" 2>&1; then
		bad "$name: XTS decrypt"; sed 's/^/    /' "$W/out"; return 1
	fi
	rm -f "$K/vk"
	if [ "$(sha_head "$W/dec" "$len")" = "$(sha_head "$orig" "$len")" ]; then
		ok "$name (independent AES-XTS decrypt, offset $off, sector $ss, $((len / MiB)) MiB)"
	else
		bad "$name: decrypted data differs from the original"; cmp "$W/dec" "$orig" | head -2; return 1
	fi
}

# ===== shifted: encrypt, inspect, verify, refusals, rekey, decrypt ==========
A=$W/a.img
mkimg "$A" 64 40
cp "$A" "$W/a.orig"
U=$(((64 - 17) * MiB))        # user data that moves: device - 16 MiB - 1 MiB park
"$WRAPCTL" encrypt "$A" --json >"$W/enc.json" 2>"$W/enc.err"
rc=$?
if [ $rc = 0 ] && grep -q '"event":"done"' "$W/enc.json"; then ok "encrypt (shift) ext4 with files: done"
else bad "encrypt (shift): exit $rc"; cat "$W/enc.json" "$W/enc.err" | sed 's/^/    /'; fi
check "--json printed progress lines" grep -q '"event":"progress","op":"encrypt"' "$W/enc.json"
"$WRAPCTL" inspect "$A" >"$W/insp" 2>&1
check "inspect: a wrapd volume" grep -q "Volume: *wrapd volume" "$W/insp"
check "inspect: Transit key version 1" grep -q "Transit key: *transit/wrapd, version 1" "$W/insp"
check "inspect: no conversion" grep -q "Conversion: *none" "$W/insp"
check "inspect --json: key_version 1, no conversion, data offset 16 MiB" bash -c \
	"[ \"\$(json_field $A key_version)\" = 1 ] && [ \"\$(json_field $A conversion_in_progress)\" = false ] && [ \"\$(json_field $A data_offset)\" = $((16 * MiB)) ]"
check "cryptsetup luksDump reads it" cryptsetup luksDump "$A"
verify "shift encrypt: ciphertext decrypts to the original first $((U / MiB)) MiB" "$A" "$A" "$W/a.orig" "$U"
check "shift encrypt: the park region decrypts to zeros" cmp -n "$MiB" -i "$U:0" "$W/dec" /dev/zero
ct1=$($H token "$A" ciphertext)

refuse "encrypt on an encrypted volume is refused" "already a LUKS" "$A" -- "$WRAPCTL" encrypt "$A"
refuse "encrypt --header on an encrypted volume is refused" "already a LUKS" "$A" -- "$WRAPCTL" encrypt "$A" --header "$W/never.hdr"
refuse "rekey --zone-size 3M (not a power of two) is refused" "power of two from 256K to 64M" "$A" -- "$WRAPCTL" rekey "$A" --zone-size 3M
refuse "rekey --zone-size 128M (over the range) is refused" "power of two from 256K to 64M" "$A" -- "$WRAPCTL" rekey "$A" --zone-size 128M
refuse "resume --zone-size 128K (under the range) is refused" "power of two from 256K to 64M" "$A" -- "$WRAPCTL" resume "$A" --zone-size 128K
refuse "encrypt --zone-size is refused" "rekey and resume only" "$A" -- "$WRAPCTL" encrypt "$A" --zone-size 4M
refuse "rekey --zone-size of a volume that is not open (offline) is refused" "only to an online rekey" "$A" -- "$WRAPCTL" rekey "$A" --zone-size 4M
[ -e "$W/never.hdr" ] && bad "refused encrypt --header left a header file"

if [ "$(id -u)" = 0 ] && L=$(losetup -f --show "$A" 2>/dev/null); then
	loops+=("$L")
	refuse "rekey with a loop device on the file is refused as held" "held by loop" "$A" -- "$WRAPCTL" rekey "$A"
	losetup -d "$L"
else
	skip "loop devices need root"
fi

seg_sha() { tail -c +$((16 * MiB + 1)) "$1" | sha256sum | cut -d' ' -f1; }
s1=$(seg_sha "$A")
check "rekey (shift)" "$WRAPCTL" rekey "$A"
ct2=$($H token "$A" ciphertext)
check "rekey: token ciphertext changed" test "$ct1" != "$ct2"
check "rekey: the data segment changed" test "$s1" != "$(seg_sha "$A")"
check "rekey: one wrapd-vault token, one digest, no conversion" bash -c \
	"cryptsetup luksDump --dump-json-metadata $A | $PY -c 'import json,sys; m=json.load(sys.stdin); assert len(m[\"tokens\"])==1 and len(m[\"digests\"])==1, m' && [ \"\$(json_field $A conversion_in_progress)\" = false ]"
verify "rekey: new VK decrypts to the original" "$A" "$A" "$W/a.orig" "$U"

check "decrypt (shift)" "$WRAPCTL" decrypt "$A"
check "decrypt: the first $((U / MiB)) MiB are byte-identical (sha256)" test "$(sha_head "$A" "$U")" = "$(sha_head "$W/a.orig" "$U")"
check "decrypt: e2fsck -fn clean" e2fsck -fn "$A"
check "decrypt: no LUKS header left" bash -c "! cryptsetup isLuks $A"

# ===== detached header: 4096-byte sectors, whole device ======================
D=$W/d.img HD=$W/d.hdr
mkimg "$D" 48 48 -b 4096
cp "$D" "$W/d.orig"
check "encrypt --header FILE (detached)" "$WRAPCTL" encrypt "$D" --header "$HD"
check "inspect --header file: wrapd volume, version 1, no conversion" bash -c \
	"$WRAPCTL inspect $HD | grep -q 'Volume: *wrapd volume' && $WRAPCTL inspect $HD | grep -q 'Conversion: *none'"
check "detached: data offset 0, sector 4096" bash -c "[ \$(json_field $HD data_offset) = 0 ] && [ \$(json_field $HD sector_size) = 4096 ]"
check "detached: no LUKS header on the device" bash -c "! cryptsetup isLuks $D"
verify "detached encrypt: ciphertext decrypts to the original (all 48 MiB)" "$HD" "$D" "$W/d.orig" $((48 * MiB))
dct1=$($H token "$HD" ciphertext)
ds1=$(sha256sum <"$D")
refuse "encrypt --header on a volume whose header file exists is refused" "exists\|already" "$D" "$HD" -- "$WRAPCTL" encrypt "$D" --header "$HD"
check "rekey --header" "$WRAPCTL" rekey "$D" --header "$HD"
check "detached rekey: token ciphertext and data changed" bash -c "[ '$dct1' != \"\$($H token $HD ciphertext)\" ] && [ '$ds1' != \"\$(sha256sum <$D)\" ]"
verify "detached rekey: new VK decrypts to the original" "$HD" "$D" "$W/d.orig" $((48 * MiB))
check "decrypt --header" "$WRAPCTL" decrypt "$D" --header "$HD"
check "detached decrypt: the device is byte-identical (sha256)" test "$(sha256sum <"$D")" = "$(sha256sum <"$W/d.orig")"
check "detached decrypt: e2fsck -fn clean" e2fsck -fn "$D"
check "detached decrypt: the header file no longer opens anything" bash -c "! cryptsetup isLuks $HD"

# ===== held by a loop device (the file itself, plain) ========================
P=$W/p.img
mkimg "$P" 40 20
if [ "$(id -u)" = 0 ] && L=$(losetup -f --show "$P" 2>/dev/null); then
	loops+=("$L")
	refuse "encrypt of a file with a loop device attached is refused as held" "held by loop" "$P" -- "$WRAPCTL" encrypt "$P"
	refuse "encrypt --header of such a file is refused too" "held by loop" "$P" -- "$WRAPCTL" encrypt "$P" --header "$W/p.hdr"
	[ -e "$W/p.hdr" ] && bad "refused encrypt --header left a header file"
	losetup -d "$L"
	# A loop with an offset into the file holds it just the same.
	if L=$(losetup -f --show -o $MiB "$P" 2>/dev/null); then
		loops+=("$L")
		refuse "a loop device at an offset into the file holds it too" "held by loop" "$P" -- "$WRAPCTL" encrypt "$P"
		losetup -d "$L"
	fi
else
	skip "loop devices need root"
fi

# ===== interruptions: frozen mid-conversion, signalled, resumed ==============
# interrupt NAME SIG DEV HDRARGS -- CMD...: CMD stopped by SIG must exit 3,
# print an "interrupted" line and leave a conversion in progress.
interrupt() {
	local name=$1 sig=$2 dev=$3; shift 3
	local hdr=()
	while [ "$1" != -- ]; do hdr+=("$1"); shift; done; shift
	$H interrupt "$sig" "$@" >"$W/int.json" 2>"$W/int.err"
	local rc=$?
	if [ $rc = 3 ] && grep -q '"event":"interrupted"' "$W/int.json" &&
		grep -q "wrapctl resume" "$W/int.err" && in_progress "$dev" "${hdr[@]}"; then
		ok "$name: $sig mid-conversion -> exit 3, resume hint, conversion in progress"
		return 0
	fi
	bad "$name: $sig (exit $rc)"; cat "$W/int.json" "$W/int.err" | sed 's/^/    /'
	return 1
}

# Shift encrypt interrupted by SIGINT; a larger volume if the first was too
# small to stop in the middle (never a vacuous pass: in_progress is checked).
for size in 64 256; do
	I=$W/i.img
	mkimg "$I" $size 40
	cp "$I" "$W/i.orig"
	UI=$(((size - 17) * MiB))
	if interrupt "shift encrypt ($size MiB)" SIGINT "$I" -- "$WRAPCTL" encrypt "$I" --json; then
		check "inspect shows the conversion IN PROGRESS" bash -c "$WRAPCTL inspect $I | grep -q 'Conversion: *IN PROGRESS'"
		check_open=$(cryptsetup luksDump --dump-json-metadata "$I" | grep -c wrapd-reencrypt)
		check "the header carries the wrapd-reencrypt requirement" test "$check_open" -gt 0
		check "resume finishes the encrypt" "$WRAPCTL" resume "$I"
		check "after resume: no conversion" bash -c "[ \"\$(json_field $I conversion_in_progress)\" = false ]"
		verify "interrupted+resumed shift encrypt decrypts to the original" "$I" "$I" "$W/i.orig" "$UI"
		break
	fi
	[ $size = 256 ] || echo "# retrying with a larger volume"
done

# Rekey interrupted by SIGTERM, resumed by rerunning rekey.
if interrupt "rekey" SIGTERM "$I" -- "$WRAPCTL" rekey "$I" --json; then
	"$WRAPCTL" rekey "$I" --json >"$W/rr.json" 2>&1
	check "rerunning rekey resumes it" grep -q '"event":"done","op":"rekey".*"resumed":true' "$W/rr.json"
	verify "interrupted+resumed rekey decrypts to the original" "$I" "$I" "$W/i.orig" "$UI"
fi

# Shift decrypt interrupted by SIGTERM (the bubble is in flight), resumed.
if interrupt "shift decrypt" SIGTERM "$I" -- "$WRAPCTL" decrypt "$I" --json; then
	check "resume finishes the decrypt" "$WRAPCTL" resume "$I"
	check "interrupted+resumed decrypt: first $((UI / MiB)) MiB byte-identical" test "$(sha_head "$I" "$UI")" = "$(sha_head "$W/i.orig" "$UI")"
	check "interrupted+resumed decrypt: e2fsck -fn clean" e2fsck -fn "$I"
fi

# Detached encrypt interrupted by SIGINT, resumed with resume --header.
J=$W/j.img HJ=$W/j.hdr
mkimg "$J" 64 64 -b 4096
cp "$J" "$W/j.orig"
if interrupt "detached encrypt" SIGINT "$HJ" -- "$WRAPCTL" encrypt "$J" --header "$HJ" --json; then
	check "resume --header finishes the detached encrypt" "$WRAPCTL" resume "$J" --header "$HJ"
	verify "interrupted+resumed detached encrypt decrypts to the original" "$HJ" "$J" "$W/j.orig" $((64 * MiB))
fi

# ===== Vault sealed: fails cleanly, nothing changed ==========================
V=$W/v.img
mkimg "$V" 40 20
$H seal
refuse "encrypt with Vault sealed fails" "seal" "$V" -- "$WRAPCTL" encrypt "$V"
refuse "encrypt --header with Vault sealed fails" "seal" "$V" -- "$WRAPCTL" encrypt "$V" --header "$W/v.hdr"
check "no header file left behind" test ! -e "$W/v.hdr"
refuse "rekey with Vault sealed fails" "seal" "$J" "$HJ" -- "$WRAPCTL" rekey "$J" --header "$HJ"
refuse "decrypt with Vault sealed fails" "seal" "$J" "$HJ" -- "$WRAPCTL" decrypt "$J" --header "$HJ"
$H unseal
check "after unseal, encrypt works" "$WRAPCTL" encrypt "$V"

echo "$pass passed, $fail failed, $skipped skipped"
[ $fail -eq 0 ]
