#!/bin/bash
# Issue 10 item 4: a crash while a conversion holds the volume key writes no
# core with key bytes. Run as root in the dm-crypt VM (tests/vm), where
# changing kernel.core_pattern touches only the guest.
#
#   - cores enabled (ulimit -c unlimited, core_pattern into $W/cores);
#   - control: a dumpable process that holds the VK and SIGSEGVs itself does
#     leave a core, and the search below finds the key in it (the test can
#     fail);
#   - wrapctl decrypt of a volume whose VK we know (from the Vault double) is
#     frozen mid-conversion on its first --json progress line (a full pipe,
#     no timing), then gets SIGSEGV: either no core is written, or no core
#     contains either half of the key (16-byte prefixes: OpenSSL's encrypt
#     and decrypt key schedules both hold them literally).
#
# usage: vm_coredump.sh SRCDIR BUILDDIR
set -u
S=${1:?srcdir}
B=${2:?builddir}
export PATH="$B:$PATH:/sbin:/usr/sbin"
H="/usr/bin/python3 $S/tests/engine/convhelper.py"
W=$(mktemp -d /tmp/wrapd-kcore.XXXXXX)
K=$(mktemp -d /dev/shm/wrapd-kcore-vk.XXXXXX 2>/dev/null || mktemp -d /tmp/wrapd-kcore-vk.XXXXXX)
chmod 700 "$K"
. "$S/tests/lib/checks.sh"
old_pattern=$(cat /proc/sys/kernel/core_pattern)

cleanup() {
	set +e
	echo "$old_pattern" >/proc/sys/kernel/core_pattern
	stop_vault_double
	rm -rf "$W" "$K"
}
trap cleanup EXIT

if [ "${WRAPD_VM:-}" != 1 ]; then
	echo "vm_coredump: runs only in the VM (it changes kernel.core_pattern)"
	exit 77
fi
ip link set lo up 2>/dev/null || true
start_vault_double "$S" "$W"
mkdir -p "$W/cores" "$W/files"
head -c $((3 << 20)) /dev/urandom >"$W/files/blob.bin"
echo "$W/cores/core.%e.%p" >/proc/sys/kernel/core_pattern
echo 0 >/proc/sys/fs/suid_dumpable
ulimit -c unlimited
# Sanitizer builds: let the kernel write the core (ASan would catch SIGSEGV
# and disable cores itself); the shadow stays out of it (MADV_DONTDUMP).
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}disable_coredump=0:handle_segv=0:use_madv_dontdump=1:detect_leaks=0
export UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}handle_segv=0

# has_key FILE: 0 when FILE holds a 16-byte prefix of either VK half.
has_key() {
	/usr/bin/python3 - "$K/vk" "$1" <<'PY'
import sys
vk = open(sys.argv[1], "rb").read()
data = open(sys.argv[2], "rb").read()
hits = [i for i, h in enumerate((vk[0:16], vk[32:48])) if h in data]
print("    # %s: %d bytes, key halves found: %s" % (sys.argv[2], len(data), hits or "none"))
sys.exit(0 if hits else 1)
PY
}

I=$W/v.img
truncate -s 64M "$I"
mkfs.ext4 -q -F -E nodiscard -b 4096 -d "$W/files" "$I" 40M >/dev/null 2>&1
check "wrapctl encrypt (the volume whose key we will know)" wrapctl encrypt "$I"
check "VK from the double" $H vk "$I" "$K/vk"

# Control: a dumpable process holding the key leaves a core that has_key finds.
/usr/bin/python3 -c '
import os, signal, sys
key = open(sys.argv[1], "rb").read()
os.kill(os.getpid(), signal.SIGSEGV)' "$K/vk" 2>/dev/null
ctl=$(ls "$W"/cores/core.* 2>/dev/null | head -1)
if [ -n "$ctl" ] && has_key "$ctl"; then
	ok "control: a dumpable process with the key leaves a core with the key in it"
else
	bad "control: no core, or the key not found in it (core_pattern $(cat /proc/sys/kernel/core_pattern))"
fi
rm -f "$W"/cores/core.*

# The real thing: SIGSEGV to a running decrypt (frozen on its progress pipe).
$H interrupt SIGSEGV wrapctl decrypt "$I" --json >"$W/seg.json" 2>"$W/seg.err"
rc=$?
if grep -q "SIGSEGV sent" "$W/seg.err"; then
	ok "wrapctl decrypt got SIGSEGV mid-conversion ($(tail -1 "$W/seg.err"))"
else
	bad "wrapctl decrypt was not interrupted (exit $rc)"; sed 's/^/    /' "$W/seg.err"
fi
cores=$(ls "$W"/cores/ 2>/dev/null | wc -l)
leak=0
for c in "$W"/cores/*; do
	[ -e "$c" ] || continue
	has_key "$c" && leak=1
done
if [ "$cores" = 0 ]; then
	ok "no core written for the crashed conversion"
elif [ "$leak" = 0 ]; then
	ok "$cores core(s) written, none holds key bytes"
else
	bad "a core of the crashed conversion holds key bytes"
fi
check "wrapctl inspect: the decrypt is in progress" bash -c "wrapctl inspect '$I' | grep -q 'Conversion: *IN PROGRESS'"
check "wrapctl resume finishes it" wrapctl resume "$I"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
