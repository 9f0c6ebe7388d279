#!/bin/bash
# Real-kernel suite of wrapctl open/close/status/rewrap/erase (volume/), run
# as root on a kernel with dm-crypt (tests/vm/run-kernel-tests boots ONE VM
# when the host has none). The Vault double runs here too, on 127.0.0.1.
#
# usage: vm_volume.sh SRCDIR BUILDDIR
# Prints "ok - ..." / "not ok - ..." per check; exit 1 if any failed.
set -u
S=${1:?srcdir}
B=${2:?builddir}
export PATH="$B:$PATH"
H="/usr/bin/python3 $S/tests/lib/vhelper.py"
W=$(mktemp -d /tmp/wrapd-kvol.XXXXXX)
. "$S/tests/lib/checks.sh"
vault_pid=


cleanup() {
	set +e
	mountpoint -q "$W/mnt" && umount "$W/mnt"
	for n in $(dmsetup ls 2>/dev/null | awk '{print $1}'); do
		case $n in kv-*|kall-*|kcs-*) dmsetup remove "$n" 2>/dev/null ;; esac
	done
	stop_vault_double
	rm -rf "$W"
}
trap cleanup EXIT

nothing_left() { # FILE UUID NAME: no mapping, no loop, no key
	local f=$1 uuid=$2 name=$3
	if dmsetup info "$name" >/dev/null 2>&1; then echo "mapping $name left"; return 1; fi
	if [ -n "$(losetup -j "$f" -n -O NAME)" ]; then echo "loop left: $(losetup -j "$f")"; return 1; fi
	if grep -q "wrapd:$uuid" /proc/keys; then echo "key left"; return 1; fi
	return 0
}
uuid_of() { blkid -p -s UUID -o value "$1"; }

ip link set lo up 2>/dev/null || true
modprobe dm-crypt 2>/dev/null || true
mkdir -p "$W/mnt"
start_vault_double "$S" "$W"

A=$W/a.img
truncate -s 64M "$A"
check "format A" wrapctl format "$A"
UA=$(uuid_of "$A")

# ---- open, table, keys, cryptsetup status -------------------------------
check "open A as kv-a" wrapctl open "$A" kv-a
check "/dev/mapper/kv-a exists (no udev: nodes made by libdevmapper)" test -b /dev/mapper/kv-a
check "open is idempotent (same device, same name)" wrapctl open "$A" kv-a
check_fails "same name on another device is refused" bash -c "truncate -s 64M $W/x.img && wrapctl format $W/x.img >/dev/null && wrapctl open $W/x.img kv-a"
dmsetup table --showkeys kv-a >"$W/table" 2>&1
check "dm table names the keyring key :64:logon:wrapd:$UA" grep -q ":64:logon:wrapd:$UA " "$W/table"
check_fails "dm table never holds the key hex" $H keyhex-grep "$A" "$W/table"
check "dm UUID is CRYPT-LUKS2-<uuid>-kv-a" bash -c "dmsetup info -c --noheadings -o uuid kv-a | grep -qx 'CRYPT-LUKS2-${UA//-/}-kv-a'"
check "table has no_read/no_write_workqueue and sector_size:4096" bash -c "grep -q 'no_read_workqueue no_write_workqueue sector_size:4096' $W/table"
check_fails "no wrapd key left in /proc/keys after open" grep -q "wrapd:" /proc/keys
check "cryptsetup status recognises the mapping" bash -c "cryptsetup status kv-a | grep -q 'type:    LUKS2'"
check "wrapctl status kv-a shows the vault key version" bash -c "wrapctl status kv-a | grep -q 'vault key:    version 1'"
check "wrapctl status --json" bash -c "wrapctl status --json | grep -q '\"name\": \"kv-a\"'"

# ---- use it: ext4, files, close, reopen, verify ---------------------------
check "mkfs.ext4" mkfs.ext4 -q /dev/mapper/kv-a
check "mount" mount /dev/mapper/kv-a "$W/mnt"
seq 1 50000 >"$W/mnt/numbers.txt"
head -c 2M /dev/urandom >"$W/mnt/blob.bin"
(cd "$W/mnt" && sha256sum numbers.txt blob.bin >"$W/sums")
check "umount" umount "$W/mnt"
check_fails "close refuses a name that does not exist" wrapctl close kv-nope
check "close" wrapctl close kv-a
check "close leaves no mapping, loop or key" nothing_left "$A" "$UA" kv-a
check "reopen" wrapctl open "$A" kv-a
check "files verify after reopen" bash -c "mount /dev/mapper/kv-a $W/mnt && (cd $W/mnt && sha256sum -c --quiet $W/sums); rc=\$?; umount $W/mnt; exit \$rc"
check "close (2)" wrapctl close kv-a

# ---- read-only ------------------------------------------------------------
check "open --read-only" wrapctl open --read-only "$A" kv-a
check "mapping is read-only" bash -c "[ \$(blockdev --getro /dev/mapper/kv-a) = 1 ]"
check_fails "writes to a read-only mapping fail" dd if=/dev/zero of=/dev/mapper/kv-a bs=4096 count=1 oflag=direct conv=notrunc
check "close (ro)" wrapctl close kv-a

# ---- Vault down or sealed: fails cleanly ------------------------------------
check_fails "open with Vault down fails" env VAULT_ADDR=http://127.0.0.1:1 wrapctl open "$A" kv-a
check "Vault down: no mapping, loop or key left" nothing_left "$A" "$UA" kv-a
$H seal
check_fails "open with Vault sealed fails" wrapctl open "$A" kv-a
$H unseal
check "Vault sealed: no mapping, loop or key left" nothing_left "$A" "$UA" kv-a

# ---- rotate, rewrap, raise min_decryption_version -------------------------
V=$($H rotate)
check "rewrap after rotation (to v$V)" wrapctl rewrap "$A"
check "token key_version is $V" bash -c "[ \$($H token $A key_version) = $V ]"
$H min-decrypt "$V"
check "open after rewrap + min_decryption_version=$V" wrapctl open "$A" kv-a
check "rewrap is safe while open" bash -c "$H rotate >/dev/null && wrapctl rewrap $A"
check "status shows the new key version" bash -c "wrapctl status kv-a | grep -q 'vault key:    version $((V + 1))'"
check "close (rewrap)" wrapctl close kv-a

# ---- another volume's token is refused --------------------------------------
Bv=$W/b.img
truncate -s 64M "$Bv"
wrapctl format "$Bv" >/dev/null
UB=$(uuid_of "$Bv")
tid=$($H token-id "$Bv")
$H token-export "$A" >"$W/tokA.json"
check "import A's token into B (cryptsetup token import)" cryptsetup token import --token-id "$tid" --token-replace --json-file "$W/tokA.json" "$Bv"
check_fails "B with A's token is refused (context)" wrapctl open "$Bv" kv-b
grep -q "bound to another volume" "$W/out" && ok "  ... and says the token is bound to another volume" || bad "  ... message names the context"
truncate -s 64M "$W/c.img"; wrapctl format "$W/c.img" >/dev/null
$H rewrap-foreign "$A" "$W/c.img" >"$W/tokC.json"
cryptsetup token import --token-id "$($H token-id "$W/c.img")" --token-replace --json-file "$W/tokC.json" "$W/c.img"
check_fails "C with A's key wrapped under C's context is refused (digest)" wrapctl open "$W/c.img" kv-c
grep -q "does not match the header's digest" "$W/out" && ok "  ... and says the digest does not match" || bad "  ... message names the digest"
check "refusals left nothing behind (B)" nothing_left "$Bv" "$UB" kv-b
check "refusals left nothing behind (C)" nothing_left "$W/c.img" "$(uuid_of "$W/c.img")" kv-c

# ---- no lock-in: cryptsetup open with the VK from Vault ------------------------
K=/dev/shm/wrapd-test-vk
$H decrypt-to "$A" "$K"
check "cryptsetup open --volume-key-file (VK from Vault)" cryptsetup open --volume-key-file "$K" --key-size 512 "$A" kcs-a
rm -f "$K"
check "files read back through cryptsetup's mapping" bash -c "mount -o ro /dev/mapper/kcs-a $W/mnt && (cd $W/mnt && sha256sum -c --quiet $W/sums); rc=\$?; umount $W/mnt; exit \$rc"
check "cryptsetup close" cryptsetup close kcs-a
check "header intact after cryptsetup: wrapctl opens it again" bash -c "wrapctl open $A kv-a && wrapctl close kv-a"
check_fails "close refuses cryptsetup's own mapping without --force" bash -c "K2=/dev/shm/wk2; $H decrypt-to $A \$K2; cryptsetup open --volume-key-file \$K2 --key-size 512 $A kcs-a; rm -f \$K2; wrapctl close kcs-a"
check "... and cryptsetup closes it" cryptsetup close kcs-a

# ---- erase --------------------------------------------------------------------
check "erase refuses while open" bash -c "wrapctl open $A kv-a && ! wrapctl erase --yes $A; rc=\$?; wrapctl close kv-a; exit \$rc"
check "erase" wrapctl erase --yes "$A"
check_fails "open after erase fails" wrapctl open "$A" kv-a
grep -q "crypto-erased" "$W/out" && ok "  ... with a clear message" || bad "  ... message says crypto-erased"
check "cryptsetup still reads the erased header" cryptsetup isLuks "$A"

# ---- the volume table: open --all (ONE decrypt) / close --all --------------------
: >"$W/volumes"
for i in $(seq -w 1 20); do
	truncate -s 20M "$W/t$i.img"
	wrapctl format "$W/t$i.img" >/dev/null || bad "format t$i"
	echo "kall-$i $W/t$i.img discard" >>"$W/volumes"
done
echo "kall-noauto $W/t01.img noauto" >>"$W/volumes"
read -r before _ < <($H count-decrypt)
check "open --all (20 volumes)" wrapctl open --all --table "$W/volumes"
read -r after bs < <($H count-decrypt)
check "open --all made exactly ONE decrypt request ($((after - before)), batch of $bs)" test "$((after - before))" = 1 -a "$bs" = 20
check "20 mappings with allow_discards" bash -c "[ \$(dmsetup table | grep -c '^kall-.*allow_discards') = 20 ]"
check "open --all again is idempotent (no new decrypt)" bash -c "wrapctl open --all --table $W/volumes && [ \"\$($H count-decrypt | cut -d' ' -f1)\" = $after ]"
check "close --all" wrapctl close --all --table "$W/volumes"
check "close --all left no mapping and no loop" bash -c "! dmsetup ls | grep -q kall- && [ -z \"\$(losetup -a | grep $W/t)\" ]"
echo "bad line here /dev/x" >"$W/badtable"
check_fails "a broken table is refused with its line number" wrapctl open --all --table "$W/badtable"
grep -q "badtable:1:" "$W/out" && ok "  ... naming file:line" || bad "  ... naming file:line"

# ---- UUID= in the table, and close --deferred ------------------------------
U=$W/u.img
truncate -s 20M "$U"
wrapctl format "$U" >/dev/null || bad "format u"
LU=$(losetup -f --show "$U")
UU=$(uuid_of "$U")
echo "kv-uuid UUID=$UU ro" >"$W/utable"
check "open --all resolves UUID=$UU to the block device $LU" wrapctl open --all --table "$W/utable"
check "  ... the mapping sits on $LU" bash -c "dmsetup deps -o devname kv-uuid | grep -q '(${LU#/dev/})'"
check "  ... and is read-only as the table says" bash -c "wrapctl status kv-uuid | grep -q 'mode: *read-only'"
check "close --all (UUID= table)" wrapctl close --all --table "$W/utable"
losetup -d "$LU"
check "open for the deferred close" wrapctl open "$U" kv-def
exec 9</dev/mapper/kv-def
check "close --deferred while the device is held open" wrapctl close --deferred kv-def
check "  ... the mapping stays while it is held" dmsetup info kv-def
exec 9<&-
# The kernel removes it from a workqueue after the last close: wait for that
# event (bounded), the pass criterion is only that it happens.
for _ in $(seq 300); do dmsetup info kv-def >/dev/null 2>&1 || break; sleep 0.1; done
check "  ... and goes once the last user closes it, leaving no loop or key" nothing_left "$U" "$(uuid_of "$U")" kv-def

echo "$pass passed, $fail failed (vm_volume)"
[ "$fail" = 0 ]
