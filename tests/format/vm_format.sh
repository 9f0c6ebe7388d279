#!/bin/bash
# Real-kernel test of `wrapctl format` on a loop device (issue 4, "VM"):
# cryptsetup opens the wrapd volume with --volume-key-file K, K taken from the
# Vault double (the no-lock-in promise); data written through the mapping
# reads back; cryptsetup close leaves the header intact. Also: the block
# device paths of format/inspect/header (O_EXCL, /run/cryptsetup lock files,
# blkid on a block device).
#
# usage: vm_format.sh SRCDIR BUILDDIR; prints ok/not ok; exit 1 on failure.
set -u
S=${1:?srcdir}
B=${2:?builddir}
export PATH="$B:$PATH"
H="/usr/bin/python3 $S/tests/lib/vhelper.py"
W=$(mktemp -d /tmp/wrapd-kfmt.XXXXXX)
pass=0 fail=0
loop=

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@" >"$W/out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/    /' "$W/out"; fi; }
check_fails() { local what=$1; shift; if "$@" >"$W/out" 2>&1; then bad "$what (unexpected success)"; sed 's/^/    /' "$W/out"; else ok "$what"; sed 's/^/    # /' "$W/out" | head -3; fi; }

cleanup() {
	set +e
	dmsetup info kfmt-a >/dev/null 2>&1 && cryptsetup close kfmt-a
	[ -n "$loop" ] && losetup -d "$loop"
	vault_double_stop
	rm -f /dev/shm/wrapd-kfmt-vk
	rm -rf "$W"
}
trap cleanup EXIT

for t in cryptsetup losetup blkid dmsetup; do
	command -v $t >/dev/null || { echo "not ok - $t missing (apt-get install cryptsetup-bin util-linux dmsetup)"; exit 1; }
done
ip link set lo up 2>/dev/null || true
modprobe dm-crypt 2>/dev/null || true
modprobe loop 2>/dev/null || true
. "$S/tests/lib/vault-double.sh"
vault_double_start "$S" "$W" vault --root-token root --create-key wrapd ||
	{ echo "not ok - the Vault double did not start"; exit 1; }
export VAULT_ADDR="http://127.0.0.1:$vault_double_port" VAULT_TOKEN=root

truncate -s 96M "$W/a.img"
loop=$(losetup -f --show "$W/a.img") || { echo "not ok - losetup"; exit 1; }
check "wrapctl format on a loop device" wrapctl format --label kfmt "$loop"
check "a lock file was used (/run/cryptsetup exists)" test -d /run/cryptsetup
check "blkid -p sees crypto_LUKS on the loop device" bash -c "blkid -p -o export $loop | grep -qx TYPE=crypto_LUKS"
check "cryptsetup isLuks" cryptsetup isLuks "$loop"
U=$(blkid -p -s UUID -o value "$loop")
check "wrapctl inspect (block device)" bash -c "wrapctl inspect $loop | grep -q 'Transit key:  transit/wrapd, version 1'"
K=/dev/shm/wrapd-kfmt-vk
check "VK from the Vault double (decrypt of the token)" $H decrypt-to "$loop" "$K"
check "the VK is 64 bytes" test "$(stat -c %s "$K")" = 64
check "cryptsetup open --volume-key-file K --key-size 512" cryptsetup open --volume-key-file "$K" --key-size 512 "$loop" kfmt-a
rm -f "$K"
check "the mapping is 80 MiB (96 MiB - 16 MiB offset)" test "$(blockdev --getsize64 /dev/mapper/kfmt-a)" = $((80 << 20))
check "the mapping uses 4096-byte sectors" bash -c "dmsetup table kfmt-a | grep -q 'sector_size:4096'"
head -c $((8 << 20)) /dev/urandom >"$W/data"
check "write data through the mapping" dd if="$W/data" of=/dev/mapper/kfmt-a bs=1M oflag=direct status=none
check "cryptsetup close" cryptsetup close kfmt-a
check "the data on disk is ciphertext" bash -c "! cmp -s -n $((8 << 20)) $W/data <(dd if=$loop bs=1M skip=16 count=8 status=none)"
check "VK again" $H decrypt-to "$loop" "$K"
check "reopen" cryptsetup open --volume-key-file "$K" --key-size 512 "$loop" kfmt-a
rm -f "$K"
check "data reads back" cmp -n $((8 << 20)) "$W/data" /dev/mapper/kfmt-a
check_fails "format refuses a device in use (mapped)" wrapctl format --force "$loop"
check_fails "header restore refuses a device in use" bash -c "wrapctl header backup $loop $W/bk && wrapctl header restore $loop $W/bk"
check "cryptsetup close again" cryptsetup close kfmt-a
check "header intact: luksDump shows the token" bash -c "cryptsetup luksDump $loop | grep -q '0: wrapd-vault'"
check "header intact: both copies ok, same UUID, epoch 1" bash -c "wrapctl inspect --json $loop | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"uuid\"]==\"$U\" and d[\"seqid\"]==1 and [c[\"status\"] for c in d[\"copies\"]]==[\"ok\",\"ok\"], d'"
check "header restore on the loop device (same UUID)" wrapctl header restore "$loop" "$W/bk"
read -r maj min < <(stat -c '%t %T' "$loop")
check "no stale lock file left" test ! -e "/run/cryptsetup/L_$(printf '%d:%d' 0x$maj 0x$min)"

echo "# $pass passed, $fail failed"
[ $fail = 0 ]
