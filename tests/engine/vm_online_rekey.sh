#!/bin/bash
# Real-kernel test of the online rekey (engine/online.c, volume/online.c):
# ext4 on a wrapd mapping with fio writing and verifying (crc32c) the whole
# time; `wrapctl rekey` SIGKILLed at random points, each time the mapping
# checked (not suspended, readable to the end), then `wrapctl resume` (online)
# finishes. Then: fio saw no verify error, every file verifies, the table
# names only the new key, the old VK (unwrapped before) no longer opens the
# volume with cryptsetup and the new one does. Also: opening in the middle of
# a rekey (close, open with both keys: the split table), the refusals.
#
# usage: vm_online_rekey.sh SRCDIR BUILDDIR   (root, dm-crypt; run-kernel-tests)
set -u
S=${1:?srcdir}
B=${2:?builddir}
. "$S/tests/lib/vmtest.sh"
vm_test_init "$S" "$B" wrapd-online
fio_pid=

cleanup() {
	set +e
	[ -n "$fio_pid" ] && kill "$fio_pid" 2>/dev/null && wait "$fio_pid" 2>/dev/null
	mountpoint -q "$W/mnt" && umount "$W/mnt"
	for n in $(dmsetup ls 2>/dev/null | awk '{print $1}'); do
		case $n in or-*|os-*|wrapd-zone-*) dmsetup resume "$n" 2>/dev/null; dmsetup remove "$n" 2>/dev/null ;; esac
	done
	[ -n "${L:-}" ] && losetup -d "$L" 2>/dev/null
	stop_vault_double
	rm -rf "$W" "$K"
}
trap cleanup EXIT

vm_kernel_setup "$S"
MiB=$((1 << 20))

# The volume on a loop device (what a disk would be).
truncate -s 128M "$W/v.img"  # 64 MiB: the files + fio (24 MiB) fill ext4
L=$(losetup -f --show "$W/v.img")
majmin=$(lsblk -dno MAJ:MIN "$L" | tr -d ' ')
lock=/run/cryptsetup/L_$majmin
check "wrapctl format" wrapctl format "$L" --force
U=$(wrapctl inspect "$L" | awk '/^UUID:/ {print $2}')
check "wrapctl open" wrapctl open "$L" or-vol
check "mkfs.ext4 on the mapping" mkfs.ext4 -q -F -E nodiscard /dev/mapper/or-vol
mount /dev/mapper/or-vol "$W/mnt" || bad "mount"
mkdir -p "$W/mnt/files"
for i in 1 2 3 4 5 6; do head -c $((3 * MiB + i * 777)) /dev/urandom >"$W/mnt/files/f$i"; done
seq 1 200000 >"$W/mnt/files/numbers.txt"
(cd "$W/mnt/files" && sha256sum ./* >"$W/sums")
sync
check "the old VK from the double (before the rekey)" bash -c "$H vk $L $K/old"

# Refused before anything changes: a Transit key that is not derived.
curl -sf -H "X-Vault-Token: root" -X POST -d '{"derived":false}' "$VAULT_ADDR/v1/transit/keys/plain" >/dev/null || bad "create a non-derived key in the double"
printf 'vault_key = plain\n' >"$W/nd.conf"; chmod 600 "$W/nd.conf"
if wrapctl -c "$W/nd.conf" rekey "$L" >"$W/nd.out" 2>&1; then bad "rekey with a non-derived key was not refused"; else
	grep -qi "derived" "$W/nd.out" && ok "online rekey refuses a non-derived key: $(cat $W/nd.out)" || { bad "non-derived refusal"; cat "$W/nd.out"; }; fi
check "... and changed nothing" bash -c "wrapctl inspect $L | grep -q 'Conversion: *none' && [ \$(dmsetup table or-vol | wc -l) = 1 ]"

# The workload: fio writes random 4 KiB blocks with a crc32c header and
# verifies them as it goes (verify_backlog), until it is stopped.
fio --name=verify --filename="$W/mnt/fio.dat" --size=24M --rw=randwrite --bs=4k \
	--ioengine=psync --direct=1 --verify=crc32c --verify_backlog=16 --verify_fatal=1 \
	--time_based --runtime=3600 --output="$W/fio.out" >/dev/null 2>&1 &
fio_pid=$!

# wait_guardian: the guardian of a killed run holds the header lock until the
# mapping is consistent again.
wait_guardian() { flock -s "$lock" true; }
mapping_ok() {
	local what=$1
	wait_guardian
	local s z
	s=$(dmsetup info -c --noheadings -o attr or-vol 2>/dev/null)
	z=$(dmsetup info -c --noheadings -o attr "wrapd-zone-$U" 2>/dev/null)
	case "$s$z" in *s*) bad "$what: a device is still suspended ($s / $z)"; return ;; esac
	if timeout 120 dd if=/dev/mapper/or-vol of=/dev/null bs=1M iflag=direct status=none; then
		ok "$what: not suspended, every sector readable ($s${z:+ / zone $z})"
	else
		bad "$what: reading the mapping failed or hung"
	fi
	sync; echo 3 >/proc/sys/vm/drop_caches
	if (cd "$W/mnt/files" && timeout 120 sha256sum -c --quiet "$W/sums") >"$W/out" 2>&1; then
		ok "$what: every file reads back right (caches dropped)"
	else
		bad "$what: files"; sed 's/^/    /' "$W/out"
	fi
	dmsetup table or-vol | sed 's/^/    table: /' 
}

in_progress() { wrapctl inspect "$L" 2>/dev/null | grep -q 'Conversion: *IN PROGRESS'; }
# run_and_kill CMD DELAY: runs wrapctl CMD --json, waits until it has moved
# data (its first progress line), then DELAY seconds more, then SIGKILL.
# 0 when it was killed, 1 when it ended by itself first (status in $rc).
run_and_kill() {
	wrapctl "$1" "$L" --json >"$W/kill.out" 2>&1 &
	local p=$! n=0
	while kill -0 "$p" 2>/dev/null && ! grep -q '"progress"' "$W/kill.out" && [ $n -lt 600 ]; do
		sleep 0.2; n=$((n + 1))
	done
	sleep "$2"
	if kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null; then
		wait "$p" 2>/dev/null
		return 0
	fi
	wait "$p"; rc=$?
	return 1
}
finished=0
for delay in 0 1.3 2.9; do
	if in_progress; then cmd=resume; else cmd=rekey; fi
	if run_and_kill $cmd $delay; then
		mapping_ok "SIGKILL of wrapctl $cmd ${delay}s after its first progress line"
		if in_progress; then
			ok "... the rekey is in progress"
		elif [ "$(dmsetup table or-vol | wc -l)" = 1 ] && ! dmsetup info "wrapd-zone-$U" >/dev/null 2>&1; then
			# The kill landed after the final commit, while wrapctl was
			# cleaning up (an idle machine gets there within the delay).
			ok "... killed after the rekey had finished: nothing in progress, one target, no zone device"
			finished=1; break
		else
			bad "no rekey in progress after the kill, and not finished"
			dmsetup table | sed 's/^/    /'
		fi
	elif [ $rc = 0 ]; then
		ok "wrapctl $cmd finished before the kill: $(tail -1 $W/kill.out)"; finished=1; break
	else
		bad "wrapctl $cmd failed (exit $rc)"; sed 's/^/    /' "$W/kill.out"
	fi
done
if [ $finished = 0 ]; then
	if in_progress; then cmd=resume; else cmd=rekey; fi
	check "wrapctl $cmd finishes the rekey online" bash -c "wrapctl $cmd $L 2>&1 | tee $W/resume.out | grep -q 'online rekey'"
	sed 's/^/    /' "$W/resume.out"
fi
check "no conversion left" bash -c "wrapctl inspect $L | grep -q 'Conversion: *none'"
check "the zone device is gone" bash -c "! dmsetup info wrapd-zone-$U >/dev/null 2>&1"
check "fio still running" kill -0 "$fio_pid"
kill -INT "$fio_pid"; wait "$fio_pid"; fio_pid=
check "fio: no verify error" bash -c "! grep -Eqi 'verify fail|bad magic|crc32c|err= *[1-9]' $W/fio.out"
(cd "$W/mnt/files" && sha256sum -c --quiet "$W/sums") >"$W/out" 2>&1 && ok "every file verifies after the online rekey" || { bad "files after the online rekey"; cat "$W/out"; }
tbl=$(dmsetup table or-vol)
case "$tbl" in
*":logon:wrapd:$U-d"*) ok "dmsetup table: one new-key reference ($tbl)" ;;
*) bad "dmsetup table: $tbl" ;;
esac
[ "$(dmsetup table or-vol | wc -l)" = 1 ] && ok "dmsetup table: one target" || bad "table has several targets"
umount "$W/mnt"
check "wrapctl close" wrapctl close or-vol
check_fails "the old VK no longer opens it" cryptsetup open --readonly --volume-key-file "$K/old" --key-size 512 "$L" os-old
check "the new VK from the double" bash -c "$H vk $L $K/new"
check "the new VK opens it (cryptsetup)" cryptsetup open --readonly --volume-key-file "$K/new" --key-size 512 "$L" os-new
if mount -o ro /dev/mapper/os-new "$W/mnt"; then
	(cd "$W/mnt/files" && sha256sum -c --quiet "$W/sums") >"$W/out" 2>&1 && ok "cryptsetup with the new VK reads every file" || bad "files through cryptsetup"
	umount "$W/mnt"
fi
cryptsetup close os-new
# The old key: data under it no longer reads as the file system.
check "the old VK as a plain mapping does not show the file system" bash -c \
	"cryptsetup open --type plain --readonly --cipher aes-xts-plain64 --key-size 512 --key-file $K/old --offset 32768 --sector-size 4096 $L os-old && ! blkid -p /dev/mapper/os-old; r=\$?; cryptsetup close os-old; exit \$r"

# ===== opening in the middle of a rekey ======================================
check "wrapctl open" wrapctl open "$L" or-vol
run_and_kill rekey 0.5
wait_guardian
if in_progress; then
	check "wrapctl close in the middle" wrapctl close or-vol
	check_fails "cryptsetup refuses the half-rekeyed volume" cryptsetup open --readonly --volume-key-file "$K/new" --key-size 512 "$L" os-x
	check "wrapctl open in the middle (both keys, split table)" wrapctl open "$L" or-vol
	n=$(dmsetup table or-vol | wc -l)
	[ "$n" -ge 1 ] && ok "split table: $n target(s)" || bad "no table"
	mount -o ro /dev/mapper/or-vol "$W/mnt" && {
		(cd "$W/mnt/files" && sha256sum -c --quiet "$W/sums") >"$W/out" 2>&1 && ok "files verify through the split table" || bad "files through the split table"
		umount "$W/mnt"; }
	check "wrapctl resume (online) finishes it" wrapctl resume "$L"
else
	ok "the second rekey finished before the kill"
fi
mount -o ro /dev/mapper/or-vol "$W/mnt" && {
	(cd "$W/mnt/files" && sha256sum -c --quiet "$W/sums") >"$W/out" 2>&1 && ok "files verify after the second rekey" || bad "files after the second rekey"
	umount "$W/mnt"; }

# ===== refusals ==============================================================
check "wrapctl close" wrapctl close or-vol
check "the VK again" bash -c "rm -f $K/new; $H vk $L $K/new"
check "cryptsetup opens it (not a wrapd mapping)" cryptsetup open --volume-key-file "$K/new" --key-size 512 "$L" os-cs
if wrapctl rekey "$L" >"$W/ref.out" 2>&1; then bad "rekey of a cryptsetup mapping was not refused"; else
	grep -q "not a wrapd mapping" "$W/ref.out" && ok "rekey refuses a mapping that is not wrapd's: $(cat $W/ref.out)" || { bad "refusal message"; cat "$W/ref.out"; }; fi
cryptsetup close os-cs

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
