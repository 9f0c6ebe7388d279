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
#     and decrypt key schedules both hold them literally);
#   - the same with a pipe core_pattern and fs.suid_dumpable=2, as
#     systemd-coredump sets them up: a dumpable control reaches the helper,
#     the crashed conversion does not.
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
old_suid=$(cat /proc/sys/fs/suid_dumpable)
old_pipe_limit=$(cat /proc/sys/kernel/core_pipe_limit)

cleanup() {
	set +e
	echo "$old_pattern" >/proc/sys/kernel/core_pattern
	echo "$old_suid" >/proc/sys/fs/suid_dumpable
	echo "$old_pipe_limit" >/proc/sys/kernel/core_pipe_limit
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

# ---- A pipe core_pattern with fs.suid_dumpable=2 (systemd-coredump's setup).
# For a pipe the kernel ignores RLIMIT_CORE (only the limit 1 means "no
# core"), and suid_dumpable=2 asks it to dump even processes whose dumpable
# flag was lowered by a credential change; what stops a core of wrapd is
# PR_SET_DUMPABLE 0 (do_coredump gives up when the mm is not dumpable at all).
# core_pipe_limit=1 makes the kernel wait for the helper before the crashed
# process is reaped: the helper's file is complete when our wait returns.
check "wrapctl encrypt again (for the pipe case)" wrapctl encrypt "$I"
check "VK from the double (again)" $H vk "$I" "$K/vk"
mkdir -p "$W/pipe"
# The kernel starts the helper in its own root (kthreadd's): in this VM that
# is the initramfs (busybox), and our root is its /newroot (tests/vm/guest-init
# chroots there); on a normal host both are /.
: >"$W/catcore"
kpre=
if [ ! -e "/proc/2/root$W/catcore" ] && [ -e "/proc/2/root/newroot$W/catcore" ]; then
	kpre=/newroot
fi
cat >"$W/catcore" <<EOF2
#!/bin/sh
# core_pattern helper: the core arrives on stdin.
cat >"$kpre$W/pipe/core.\$1.\$2"
EOF2
chmod 755 "$W/catcore"
echo 2 >/proc/sys/fs/suid_dumpable
echo 1 >/proc/sys/kernel/core_pipe_limit
echo "|$kpre$W/catcore %e %p" >/proc/sys/kernel/core_pattern
/usr/bin/python3 -c '
import os, signal, sys
key = open(sys.argv[1], "rb").read()
os.kill(os.getpid(), signal.SIGSEGV)' "$K/vk" 2>/dev/null
ctl=$(ls "$W"/pipe/core.* 2>/dev/null | head -1)
if [ -n "$ctl" ] && has_key "$ctl"; then
	ok "pipe control: a dumpable process's core reaches the helper, key included"
else
	bad "pipe control: the helper got no core with the key (core_pattern $(cat /proc/sys/kernel/core_pattern))"
fi
rm -f "$W"/pipe/core.*
$H interrupt SIGSEGV wrapctl decrypt "$I" --json >"$W/seg2.json" 2>"$W/seg2.err"
if grep -q "SIGSEGV sent" "$W/seg2.err"; then
	ok "wrapctl decrypt got SIGSEGV mid-conversion, pipe core_pattern, suid_dumpable=2"
else
	bad "wrapctl decrypt was not interrupted"; sed 's/^/    /' "$W/seg2.err"
fi
pcores=$(ls "$W"/pipe/ 2>/dev/null | wc -l)
pleak=0
for c in "$W"/pipe/*; do
	[ -e "$c" ] || continue
	has_key "$c" && pleak=1
done
if [ "$pcores" = 0 ]; then
	ok "the core_pattern helper got nothing from the crashed conversion (PR_SET_DUMPABLE 0)"
elif [ "$pleak" = 0 ]; then
	ok "the helper got $pcores core(s), none with key bytes"
else
	bad "the helper got a core of the crashed conversion with key bytes"
fi
echo 0 >/proc/sys/kernel/core_pipe_limit
echo 0 >/proc/sys/fs/suid_dumpable
check "wrapctl resume finishes it (pipe case)" wrapctl resume "$I"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
