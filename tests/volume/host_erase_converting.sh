#!/bin/bash
# erase of a half-converted volume (issue 10 item 1), on this host: the
# volumes are files (and, as root, a loop device), the conversions run
# through io_uring against the Vault double; no dm-crypt is needed.
#
# The oracle is a scan of the whole device (and detached header file) for
# what must be gone: 80 distinct plaintext marker lines, one at the start of
# each file of an ext4 filesystem, and every wrapped key recorded from the
# header before the erase (the token's ciphertext and, during a rekey, the
# new one in the conversion state). Afterwards `inspect --json` must show no
# conversion and no wrapped key.
#
# Interruptions are deterministic (tests/engine/convhelper.py interrupt): the
# command's stdout is a full pipe, so it is frozen writing its first line
# (a conversion's first progress line; erase's notice, printed once the keys
# are destroyed and before the overwrite) when the signal is sent.
#
# Prints "ok - ..." / "not ok - ..." and "N passed, M failed, K skipped".
set -u
B=${WRAPD_BUILDDIR:-.}
S=${WRAPD_SRCDIR:-${srcdir:-.}}
. "$S/tests/lib/checks.sh"
PY=${WRAPD_PYTHON:-/usr/bin/python3}
WRAPCTL=$B/wrapctl
H="$PY $S/tests/engine/convhelper.py"

for t in cryptsetup mkfs.ext4; do
	command -v $t >/dev/null || PATH=$PATH:/sbin:/usr/sbin
	command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
$PY -c 'import cryptography' 2>/dev/null || { echo "SKIP: python3-cryptography missing"; exit 77; }

W=$(mktemp -d /tmp/wrapd-erase-conv.XXXXXX)
vault_pid=
loops=()
cleanup() {
	set +e
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
	stop_vault_double
	rm -rf "$W"
}
trap cleanup EXIT
skipped=0
skip() { skipped=$((skipped + 1)); echo "ok - # SKIP $*"; }

start_vault_double "$S" "$W"
unset VAULT_NAMESPACE VAULT_AGENT_ADDR WRAPD_CONFIG

MiB=$((1 << 20))
# 80 files of 512 KiB (40 MiB, so every conversion's first hotzone leaves
# some in each form), each starting with its own marker line.
mkdir -p "$W/files"
for i in $(seq -w 1 80); do
	{ printf 'WRAPD-ERASE-MARKER-%s-%s\n' "$i" "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	  head -c $((512 * 1024 - 40)) /dev/urandom; } >"$W/files/f$i"
done
MARK='WRAPD-ERASE-MARKER-[0-9]\{2\}-[0-9a-f]\{16\}'
# mkimg FILE: 128 MiB, ext4 of 100 MiB holding the files (17 MiB tail free).
mkimg() {
	head -c $((128 * MiB)) /dev/zero >"$1"
	mkfs.ext4 -q -F -E nodiscard -b 4096 -d "$W/files" "$1" 100M >/dev/null 2>&1
}
# markers FILE...: how many distinct markers the files hold.
markers() { cat "$@" | grep -a -o "$MARK" | sort -u | wc -l; }
# wrapped FILE: every wrapped key in FILE's header (token and conversion state).
wrapped() {
	cryptsetup luksDump --dump-json-metadata "$1" | $PY -c '
import json, sys
for t in json.load(sys.stdin)["tokens"].values():
    if t.get("ciphertext"):
        print(t["ciphertext"])
    nt = (t.get("state") or {}).get("new_token") or {}
    if nt.get("ciphertext"):
        print(nt["ciphertext"])'
}
json_field() { # DEV-OR-HEADER-FILE FIELD: from wrapctl inspect --json
	local dev=$1 f=$2
	"$WRAPCTL" inspect --json "$dev" | $PY -c '
import json, sys
j = json.load(sys.stdin); w = j.get("wrapd") or {}
f = sys.argv[1]
v = w[f] if f in w else j.get(f)
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$f"
}
in_progress() { [ "$(json_field "$@" conversion_in_progress)" = true ]; }

# interrupt NAME SIG HOME -- CMD...: CMD stopped by SIG mid-run leaves a
# conversion in progress in HOME (the device, or the detached header file).
interrupt() {
	local name=$1 sig=$2 dev=$3; shift 3
	while [ "$1" != -- ]; do shift; done; shift
	$H interrupt "$sig" "$@" >"$W/int.out" 2>"$W/int.err"
	local rc=$?
	if [ $rc = 3 ] && in_progress "$dev"; then
		ok "$name: $sig mid-conversion -> exit 3, conversion in progress"
		return 0
	fi
	bad "$name: $sig (exit $rc)"; cat "$W/int.out" "$W/int.err" | sed 's/^/    /'
	return 1
}

# erase_check NAME DEV [--header H] -- ERASE-ARGS...: records the markers
# and wrapped keys, erases, and checks that none is left anywhere.
erase_check() {
	local name=$1 dev=$2; shift 2
	local hdr=() files=("$dev")
	while [ "$1" != -- ]; do hdr+=("$1"); shift; done; shift
	[ ${#hdr[@]} -gt 0 ] && files+=("${hdr[1]}")
	local hp=${hdr[1]:-$dev} m0 keys k n=0 m1
	m0=$(markers "${files[@]}")
	keys=$(wrapped "$hp")
	echo "# $name: before erase: $m0 of 80 markers in clear, $(wc -l <<<"$keys") wrapped key(s) in the header"
	if "$WRAPCTL" erase --yes "${hdr[@]}" "$@" "$dev" >"$W/erase.out" 2>&1; then
		ok "$name: erase exit 0"; sed 's/^/    # /' "$W/erase.out"
	else
		bad "$name: erase failed"; sed 's/^/    /' "$W/erase.out"; return
	fi
	m1=$(markers "${files[@]}")
	echo "# $name: after erase: $m1 of 80 markers"
	if [ "$m1" = 0 ]; then ok "$name: no plaintext marker left on the device"
	else bad "$name: $m1 plaintext markers left"; fi
	while read -r k; do
		[ -n "$k" ] || continue
		if grep -a -q -F -- "$k" "${files[@]}"; then n=$((n + 1)); fi
	done <<<"$keys"
	if [ "$n" = 0 ]; then ok "$name: none of the $(wc -l <<<"$keys") wrapped keys recorded before is anywhere on the device"
	else bad "$name: $n wrapped keys still on the device"; fi
	check "$name: inspect shows no conversion" test "$(json_field "$hp" conversion_in_progress)" = false
	check "$name: inspect shows no wrapped key" test "$(json_field "$hp" key_version)" = null
	check "$name: no wrapped key in the header JSON" test -z "$(wrapped "$hp")"
	check "$name: the header is still LUKS2" cryptsetup isLuks "$hp"
	erased_m0=$m0
}

# ===== shift encrypt interrupted, default erase (discard) =====================
A=$W/a.img
mkimg "$A"
check "the image holds 80 markers" test "$(markers "$A")" = 80
if interrupt "shift encrypt" SIGINT "$A" -- "$WRAPCTL" encrypt "$A" --json; then
	erase_check "shift encrypt, erase" "$A" --
	check "shift encrypt: markers were in clear before the erase" test "$erased_m0" -gt 0
	check "erase said what it overwrote" grep -q "plaintext regions: *overwrote" "$W/erase.out"
	check "erase said what it found" grep -q "conversion found: *encrypt (shift)" "$W/erase.out"
	check "a second erase is a no-op success" "$WRAPCTL" erase --yes "$A"
fi

# ===== shift encrypt, erase --no-discard: the overwrite alone ================
# (A file's punched holes read as zeros, which would hide a region erase
# forgot; without the discard only the overwrite removes plaintext.)
mkimg "$A"
if interrupt "shift encrypt" SIGINT "$A" -- "$WRAPCTL" encrypt "$A" --json; then
	top=$(tail -c $((24 * MiB)) "$A" | head -c $((4 * MiB)) | tr -d '\0' | wc -c)
	erase_check "shift encrypt, erase --no-discard" "$A" -- --no-discard
	check "--no-discard left the converted (encrypted) part in place" test \
		"$(tail -c $((24 * MiB)) "$A" | head -c $((4 * MiB)) | tr -d '\0' | wc -c)" = "$top"
fi

# ===== an erase interrupted after the keys: rerun finishes it ================
mkimg "$A"
if interrupt "shift encrypt" SIGINT "$A" -- "$WRAPCTL" encrypt "$A" --json; then
	m0=$(markers "$A") keys=$(wrapped "$A")
	$H interrupt SIGKILL "$WRAPCTL" erase --yes --no-discard "$A" >"$W/ek.out" 2>"$W/ek.err"
	grep -q "blocked writing" "$W/ek.err" && ok "erase frozen at its notice, then killed" ||
		{ bad "erase never blocked at its notice"; sed 's/^/    /' "$W/ek.out" "$W/ek.err"; }
	check "killed erase: the wrapped key is already gone from the device" bash -c "! grep -a -q -F -- '$keys' '$A'"
	check "killed erase: the plaintext is still there ($m0 markers), so the keys went first" test "$(markers "$A")" = "$m0"
	check "killed erase: inspect shows the erase in progress" bash -c "$WRAPCTL inspect $A | grep -q 'Conversion: *IN PROGRESS.*\"op\":\"erase\"'"
	check_fails "killed erase: resume refuses it" "$WRAPCTL" resume "$A"
	cp "$W/out" "$W/resume.out"
	check "... and says to run erase again" grep -q "wrapctl erase --yes" "$W/resume.out"
	erase_check "rerun of the interrupted erase" "$A" -- --no-discard
fi

# ===== rekey interrupted: the old and the new wrapped key =====================
R=$W/r.img
mkimg "$R"
check "encrypt (for the rekey)" "$WRAPCTL" encrypt "$R"
if interrupt "rekey" SIGTERM "$R" -- "$WRAPCTL" rekey "$R" --json; then
	check "the rekey state holds a second wrapped key" test "$(wrapped "$R" | sort -u | wc -l)" = 2
	erase_check "rekey, erase" "$R" --
	check "erase counted both wrapped keys" grep -q "2 in all" "$W/erase.out"
fi

# ===== shift decrypt interrupted ===============================================
D=$W/d.img
mkimg "$D"
check "encrypt (for the decrypt)" "$WRAPCTL" encrypt "$D"
if interrupt "shift decrypt" SIGTERM "$D" -- "$WRAPCTL" decrypt "$D" --json; then
	erase_check "shift decrypt, erase" "$D" --
	check "shift decrypt: markers were in clear before the erase" test "$erased_m0" -gt 0
fi

# ===== detached encrypt interrupted ============================================
J=$W/j.img HJ=$W/j.hdr
mkimg "$J"
if interrupt "detached encrypt" SIGINT "$HJ" -- "$WRAPCTL" encrypt "$J" --header "$HJ" --json; then
	erase_check "detached encrypt, erase --no-discard" "$J" --header "$HJ" -- --no-discard
	check "detached encrypt: markers were in clear before the erase" test "$erased_m0" -gt 0
fi

# ===== detached decrypt interrupted ============================================
K=$W/k.img HK=$W/k.hdr
mkimg "$K"
check "detached encrypt (for the decrypt)" "$WRAPCTL" encrypt "$K" --header "$HK"
if interrupt "detached decrypt" SIGTERM "$HK" -- "$WRAPCTL" decrypt "$K" --header "$HK" --json; then
	erase_check "detached decrypt, erase --no-discard" "$K" --header "$HK" -- --no-discard
	check "detached decrypt: markers were in clear before the erase" test "$erased_m0" -gt 0
fi

# ===== a loop device (a block device: O_EXCL, BLKDISCARD) =====================
L=$W/l.img
mkimg "$L"
if interrupt "shift encrypt (for the loop)" SIGINT "$L" -- "$WRAPCTL" encrypt "$L" --json; then
	if [ "$(id -u)" = 0 ] && LD=$(losetup -f --show "$L" 2>/dev/null); then
		loops+=("$LD")
		erase_check "shift encrypt on $LD, erase --no-discard" "$LD" -- --no-discard
		losetup -d "$LD" && loops=()
		check "the file under the loop device holds no marker" test "$(markers "$L")" = 0
	else
		skip "loop devices need root"
	fi
fi

echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
