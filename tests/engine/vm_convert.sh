#!/bin/bash
# Real-kernel suite of the in-place conversions (engine/): what wrapctl
# encrypt/rekey/decrypt write must be what dm-crypt reads and writes. Run as
# root on a kernel with dm-crypt (tests/vm/run-kernel-tests boots ONE VM when
# the host has none); no udev needed. The Vault double runs here too.
#
#   shift:    ext4 with files -> wrapctl encrypt -> wrapctl open, mount, verify,
#             write a file through dm-crypt -> close -> cryptsetup open
#             --volume-key-file (VK from the double) reads the same files ->
#             wrapctl decrypt -> the plain file mounts (loop), files verify
#   detached: wrapctl encrypt --header FILE -> wrapctl open --header, verify ->
#             cryptsetup open --header --volume-key-file, verify -> rekey ->
#             open, verify -> decrypt --header -> plain mount, verify
#
# usage: vm_convert.sh SRCDIR BUILDDIR
# Prints "ok - ..." / "not ok - ..." per check; exit 1 if any failed.
set -u
S=${1:?srcdir}
B=${2:?builddir}
. "$S/tests/lib/vmtest.sh"
vm_test_init "$S" "$B" wrapd-kconv
vault_pid=


cleanup() {
	set +e
	mountpoint -q "$W/mnt" && umount "$W/mnt"
	for n in $(dmsetup ls 2>/dev/null | awk '{print $1}'); do
		case $n in cv-*|cs-*) dmsetup remove "$n" 2>/dev/null ;; esac
	done
	for f in "$W"/*.img; do
		for l in $(losetup -j "$f" -n -O NAME 2>/dev/null); do losetup -d "$l"; done
	done
	stop_vault_double
	rm -rf "$W" "$K"
}
trap cleanup EXIT

vm_kernel_setup "$S"

MiB=$((1 << 20))
mkdir -p "$W/files/sub"
seq 1 100000 >"$W/files/numbers.txt"
head -c $((2 * MiB)) /dev/urandom >"$W/files/blob.bin"
head -c 7777 /dev/urandom >"$W/files/sub/odd.bin"
(cd "$W/files" && find . -type f -exec sha256sum {} + >"$W/sums")

# verify_mounted WHAT DEV [SUMS...]: mount DEV read-only, check the sums, unmount.
verify_mounted() {
	local what=$1 dev=$2; shift 2
	local rc=0 s
	if ! mount -o ro "$dev" "$W/mnt" >"$W/out" 2>&1; then bad "$what: mount failed"; sed 's/^/    /' "$W/out"; return; fi
	for s in "$W/sums" "$@"; do
		(cd "$W/mnt" && sha256sum -c --quiet "$s") >>"$W/out" 2>&1 || rc=1
	done
	umount "$W/mnt"
	if [ $rc = 0 ]; then ok "$what"; else bad "$what"; sed 's/^/    /' "$W/out"; fi
}
# verify_plain WHAT FILE [SUMS...]: the same through a loop device on FILE.
verify_plain() {
	local what=$1 f=$2 l; shift 2
	if ! l=$(losetup -f --show -r "$f" 2>"$W/out"); then bad "$what: losetup"; sed 's/^/    /' "$W/out"; return; fi
	verify_mounted "$what" "$l" "$@"
	losetup -d "$l"
}
vk_to() { rm -f "$2"; $H vk "$1" "$2"; }

# ===== shifted (data moves up by 16 MiB) =====================================
A=$W/a.img
truncate -s 64M "$A"
mkfs.ext4 -q -F -E nodiscard -d "$W/files" "$A" 40M >/dev/null 2>&1
verify_plain "shift: the plain file system holds the files" "$A"
check "wrapctl encrypt (shift)" wrapctl encrypt "$A"
check "wrapctl inspect: a wrapd volume, no conversion" bash -c "wrapctl inspect $A | grep -q 'Conversion: *none'"
check "wrapctl open" wrapctl open "$A" cv-a
check "/dev/mapper/cv-a exists" test -b /dev/mapper/cv-a
verify_mounted "shift: files verify through dm-crypt (wrapctl open)" /dev/mapper/cv-a
# The same data written by the kernel, read back by the engine's decrypt later.
if mount /dev/mapper/cv-a "$W/mnt" 2>"$W/out"; then
	head -c $((3 * MiB)) /dev/urandom >"$W/mnt/written-by-dm.bin"
	(cd "$W/mnt" && sha256sum ./written-by-dm.bin >"$W/sums-a2")
	umount "$W/mnt"
	ok "shift: a file written through dm-crypt"
else
	bad "shift: mount rw"; : >"$W/sums-a2"
fi
# Issue 13: a rekey of a volume whose wrapd mapping is open runs online now
# (it was refused before); the mapping stays and keeps reading the files.
check "rekey of the open volume's file runs online (the mapping stays)" wrapctl rekey "$A"
la=$(losetup -j "$A" -n -O NAME | head -1)
[ -n "$la" ] && check "rekey of its loop device runs online" wrapctl rekey "$la"
verify_mounted "shift: files verify through the mapping after the online rekeys" /dev/mapper/cv-a "$W/sums-a2"
check "wrapctl close" wrapctl close cv-a
check "VK from the double into a tmpfs file" vk_to "$A" "$K/vk"
check "cryptsetup open --volume-key-file K --key-size 512" \
	cryptsetup open --volume-key-file "$K/vk" --key-size 512 "$A" cs-a
verify_mounted "shift: cryptsetup reads the same files" /dev/mapper/cs-a "$W/sums-a2"
check "cryptsetup close" cryptsetup close cs-a
rm -f "$K/vk"
check "wrapctl rekey (shift)" wrapctl rekey "$A"
check "wrapctl open after rekey" wrapctl open "$A" cv-a
verify_mounted "shift: files verify after rekey" /dev/mapper/cv-a "$W/sums-a2"
check "wrapctl close" wrapctl close cv-a
check "wrapctl decrypt (shift back)" wrapctl decrypt "$A"
check "no LUKS header left" bash -c "! cryptsetup isLuks $A"
verify_plain "shift: after decrypt the plain file mounts and the files verify (with the one dm-crypt wrote)" "$A" "$W/sums-a2"
check "e2fsck -fn clean after decrypt" e2fsck -fn "$A"

# ===== shifted, 4096-byte sectors, interrupted (SIGTERM) and resumed =========
# convhelper freezes wrapctl on its first --json progress line (a full pipe),
# so the signal lands mid-conversion without any timing.
I=$W/i.img
truncate -s 64M "$I"
mkfs.ext4 -q -F -E nodiscard -b 4096 -d "$W/files" "$I" 40M >/dev/null 2>&1
$H interrupt SIGTERM wrapctl encrypt "$I" --json >"$W/int.json" 2>"$W/int.err"
rc=$?
if [ $rc = 3 ] && wrapctl inspect "$I" 2>&1 | grep -q "Conversion: *IN PROGRESS"; then
	ok "shift encrypt interrupted by SIGTERM: exit 3, conversion in progress"
else
	bad "shift encrypt interrupted by SIGTERM (exit $rc)"; cat "$W/int.json" "$W/int.err" | sed 's/^/    /'
fi
check_fails "wrapctl open refuses the half-converted volume" wrapctl open "$I" cv-i
check_fails "cryptsetup refuses it too (wrapd-reencrypt requirement)" bash -c \
	"$H vk $I $K/vk && cryptsetup open --volume-key-file $K/vk --key-size 512 $I cs-i"
rm -f "$K/vk"
check "wrapctl resume" wrapctl resume "$I"
check "sector size 4096" bash -c "wrapctl inspect $I | grep -q 'sector: 4096'"
check "wrapctl open after resume" wrapctl open "$I" cv-i
verify_mounted "interrupted+resumed encrypt: files verify through dm-crypt" /dev/mapper/cv-i
check "wrapctl close" wrapctl close cv-i

# ===== detached header, 4096-byte sectors, no shift ==========================
D=$W/d.img HD=$W/d.hdr
truncate -s 48M "$D"
mkfs.ext4 -q -F -E nodiscard -b 4096 -d "$W/files" "$D" >/dev/null 2>&1
check "wrapctl encrypt --header FILE" wrapctl encrypt "$D" --header "$HD"
check_fails "wrapctl open without the header file fails" wrapctl open "$D" cv-d
check "wrapctl open --header FILE" wrapctl open "$D" cv-d --header "$HD"
verify_mounted "detached: files verify through dm-crypt (wrapctl open --header)" /dev/mapper/cv-d
check "wrapctl close" wrapctl close cv-d
check "VK from the double (header file's token)" vk_to "$HD" "$K/vk"
check "cryptsetup open --header FILE --volume-key-file K --key-size 512" \
	cryptsetup open --header "$HD" --volume-key-file "$K/vk" --key-size 512 "$D" cs-d
verify_mounted "detached: cryptsetup reads the same files" /dev/mapper/cs-d
check "cryptsetup close" cryptsetup close cs-d
check "wrapctl rekey --header" wrapctl rekey "$D" --header "$HD"
check_fails "the old VK no longer opens it (cryptsetup: digest mismatch)" \
	cryptsetup open --header "$HD" --volume-key-file "$K/vk" --key-size 512 "$D" cs-d
rm -f "$K/vk"
check "wrapctl open --header after rekey" wrapctl open "$D" cv-d --header "$HD"
verify_mounted "detached: files verify after rekey" /dev/mapper/cv-d
check "wrapctl close" wrapctl close cv-d
check "VK after rekey" vk_to "$HD" "$K/vk"
check "cryptsetup open --header with the new VK" \
	cryptsetup open --header "$HD" --volume-key-file "$K/vk" --key-size 512 "$D" cs-d
verify_mounted "detached: cryptsetup reads the files after rekey" /dev/mapper/cs-d
check "cryptsetup close" cryptsetup close cs-d
rm -f "$K/vk"
check "wrapctl decrypt --header" wrapctl decrypt "$D" --header "$HD"
verify_plain "detached: after decrypt the plain file mounts and the files verify" "$D"
check "e2fsck -fn clean after detached decrypt" e2fsck -fn "$D"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
