#!/bin/bash
# Power loss in the middle of an online rekey, on a real disk: two VM boots
# on one virtio disk image (tests/vm/vm-run --disk).
#
#   boot 1: format the disk, open, ext4, a writer that records every file it
#           has written AND fsynced (acknowledged) on the results share, an
#           online `wrapctl rekey`; once it has moved data (and a little
#           more), a hard reset (sysrq b) - no shutdown, no flush.
#   boot 2: the same Vault double (keys from the same seed), `wrapctl open`
#           in the middle of the rekey (both keys, split table), mount (the
#           journal replays), every acknowledged file verifies, `wrapctl
#           resume` online, verify again, then cryptsetup with the new VK
#           reads them all and e2fsck is clean.
#
# usage: vmboot_online_powerloss.sh SRCDIR BUILDDIR      (on the host: boots)
#        vmboot_online_powerloss.sh SRCDIR BUILDDIR boot1|boot2 DIR  (in the guest)
# Run by tests/vm/run-kernel-tests on the host side (vmboot_* tests boot
# their own VMs); prints ok/not ok lines and "N passed, M failed".
set -u
S=${1:?srcdir}
B=${2:?builddir}
phase=${3:-host}
D=${4:-}
. "$S/tests/lib/checks.sh"
SEED=wrapd-online-powerloss-test
PORT=18213

if [ "$phase" = host ]; then
	D=$(mktemp -d /tmp/wrapd-vmboot-pl.XXXXXX)
	trap 'rm -rf "$D"' EXIT
	truncate -s 64M "$D/disk.img"
	vmrun="$S/tests/vm/vm-run"
	rc=0
	bash "$vmrun" --timeout 900 --disk "$D/disk.img" --out "$D/out1" -- bash "$0" "$S" "$B" boot1 "$D" >"$D/boot1.out" 2>"$D/boot1.err" || rc=$?
	cat "$D/boot1.out"
	if [ $rc != 0 ] || ! grep -q "the guest reset itself" "$D/boot1.err"; then
		echo "not ok - boot 1 did not end in a hard reset (vm-run exit $rc)"; sed 's/^/    /' "$D/boot1.err"
		echo "0 passed, 1 failed"; exit 1
	fi
	bash "$vmrun" --timeout 900 --disk "$D/disk.img" -- bash "$0" "$S" "$B" boot2 "$D"
	exit $?
fi

export PATH="$B:$PATH:/sbin:/usr/sbin"
H="/usr/bin/python3 $S/tests/engine/convhelper.py"
W=$(mktemp -d /tmp/wrapd-pl.XXXXXX)
mkdir -p "$W/mnt"
ip link set lo up 2>/dev/null || true
modprobe dm-crypt 2>/dev/null || true
vault_double_start "$S" "$W" vault --root-token root --create-key wrapd --key-seed "$SEED" \
	--listen 127.0.0.1:$PORT || { echo "not ok - the Vault double did not start"; exit 1; }
export VAULT_ADDR="http://127.0.0.1:$vault_double_port" VAULT_TOKEN=root VAULT_MAX_RETRIES=0
V=/dev/vda
[ -b $V ] || { echo "not ok - no $V in the guest"; exit 1; }

if [ "$phase" = boot1 ]; then
	check "wrapctl format $V" wrapctl format $V --force
	check "wrapctl open" wrapctl open $V pl
	check "mkfs.ext4" mkfs.ext4 -q -F -E nodiscard /dev/mapper/pl
	mount /dev/mapper/pl "$W/mnt" || bad "mount"
	# The writer: a file, fsynced, then (only then) its sum on the results
	# share (9p: on the host at once; it survives the reset).
	O=${WRAPD_VM_OUT:?}
	: >"$O/acked"
	(
		i=0
		while :; do
			i=$((i + 1))
			head -c $((8192 + i * 512)) /dev/urandom >"$W/mnt/f$i" && sync "$W/mnt/f$i" &&
				(cd "$W/mnt" && sha256sum "f$i") >>"$O/acked" && sync "$O/acked"
		done
	) &
	sleep 2
	# --max-rate 4: the zones after the first wait their turn, so the rekey of
	# the 48 MiB data area lasts at least 8 s and the reset below lands in it
	# however fast the machine is (unthrottled, an idle host finished it first).
	wrapctl rekey $V --json --max-rate 4 >"$O/rekey.out" 2>&1 &
	n=0
	while ! grep -q '"progress"' "$O/rekey.out" && [ $n -lt 900 ]; do sleep 0.2; n=$((n + 1)); done
	sleep 1.7
	echo "ok - boot 1: $(wc -l <"$O/acked") files acknowledged; hard reset during the online rekey"
	: >/run/wrapd-vm/reset
	echo b >/proc/sysrq-trigger
	sleep 60
	exit 1
fi

# ===== boot 2 ==================================================================
cleanup() {
	set +e
	mountpoint -q "$W/mnt" && umount "$W/mnt"
	dmsetup remove pl 2>/dev/null; dmsetup remove pl-cs 2>/dev/null
	for n in $(dmsetup ls 2>/dev/null | awk '/^wrapd-zone-/ {print $1}'); do dmsetup remove "$n"; done
	vault_double_stop
	rm -rf "$W"
}
trap cleanup EXIT
A=$D/out1/acked
n_acked=$(wc -l <"$A")
[ "$n_acked" -gt 0 ] && ok "boot 2: $n_acked acknowledged files to find" || bad "no acknowledged file"
wrapctl inspect $V >"$W/insp" 2>&1
if grep -q 'Conversion: *IN PROGRESS' "$W/insp"; then ok "the rekey is in progress after the reset"; else
	bad "no rekey in progress after the reset"; sed 's/^/    /' "$W/insp"; fi
check "wrapctl open in the middle of the rekey (both keys)" wrapctl open $V pl
dmsetup table pl | sed 's/^/    table: /'
[ "$(dmsetup table pl | grep -c ':logon:wrapd:')" -ge 1 ] && ok "split table built from the header" || bad "table"
verify_acked() {
	if (cd "$W/mnt" && sha256sum -c --quiet "$A") >"$W/out" 2>&1; then
		ok "$1: all $n_acked acknowledged files verify"
	else
		bad "$1"; head -20 "$W/out" | sed 's/^/    /'
	fi
}
if mount /dev/mapper/pl "$W/mnt"; then
	verify_acked "through the split table"
	check "wrapctl resume finishes it online (mounted)" bash -c "wrapctl resume $V 2>&1 | tee $W/res | grep -q 'online rekey'"
	sed 's/^/    /' "$W/res"
	sync; echo 3 >/proc/sys/vm/drop_caches
	verify_acked "after the resume"
	umount "$W/mnt"
else
	bad "mount after the reset"
fi
check "one target, the new key" bash -c "[ \$(dmsetup table pl | wc -l) = 1 ] && dmsetup table pl | grep -q ':logon:wrapd:.*-d'"
check "wrapctl close" wrapctl close pl
check "no conversion left" bash -c "wrapctl inspect $V | grep -q 'Conversion: *none'"
check "the new VK from the double" bash -c "$H vk $V $W/vk"
check "cryptsetup opens it with the new VK" cryptsetup open --readonly --volume-key-file "$W/vk" --key-size 512 $V pl-cs
check "e2fsck -fn clean" e2fsck -fn /dev/mapper/pl-cs
if mount -o ro /dev/mapper/pl-cs "$W/mnt"; then verify_acked "through cryptsetup"; umount "$W/mnt"; fi
rm -f "$W/vk"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
