#!/bin/bash
# Kubernetes mode with convert_existing = yes on a real dm-crypt kernel
# (tests/vm/run-kernel-tests): a plaintext ext4 file system in the discovery
# folder is encrypted in place by the engine, opened and published, its files
# intact; one that fills its device (no room for the header) and one that is
# mounted are refused (ConvertFailed) and left exactly as they were.
# Small devices (the engine rewrites every byte of the file system: time in
# TCG goes with its size); an interrupted conversion resumed by the agent is
# tests/agent/host_kube_convert.sh (the engine needs no dm for it).
#
# usage: vm_kube_convert.sh SRCDIR BUILDDIR
set -u
S=${1:?srcdir}
B=${2:?builddir}
export PATH="$B:$PATH"
W=$(mktemp -d /tmp/wrapd-kconv.XXXXXX)
SOCK=$W/run/wrapd.sock
Q="/usr/bin/python3 $S/tests/agent/agentq.py $SOCK"
. "$S/tests/lib/checks.sh"
. "$S/tests/lib/kube-double.sh"
agent_pid=
LOOPS=

cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null
	mountpoint -q "$W/m" && umount "$W/m"
	mountpoint -q "$W/busy-mnt" && umount "$W/busy-mnt"
	for n in conv full busy; do dmsetup remove "$n" 2>/dev/null; done
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
	kube_double_stop
	stop_vault_double
	rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/run" "$W/disc" "$W/kubelet" "$W/m" "$W/busy-mnt"
start_vault_double "$S" "$W"
KUBE_DOUBLE_NO_TOKEN=1 kube_double_start "$S" "$W" kube --node node-1 --bookmark-interval 3600 ||
	{ echo "not ok - the Kubernetes API double did not start"; exit 1; }
api() { curl -sS "$kube_double_url$1"; }
event_seen() { api /api/v1/namespaces/default/events | jq -e --arg r "$1" --arg t "$2" \
	'[.items[] | select(.reason == $r and (.message | contains($t)))] | length > 0' >/dev/null; }
phase_is() { [ "$(api "/api/v1/persistentvolumes/$1" | jq -r .status.phase)" = "$2" ]; }
until_ok() {
	local what=$1; shift
	for _ in $(seq 600); do "$@" >/dev/null 2>&1 && { ok "$what"; return 0; }; sleep 0.1; done
	bad "$what (not within 60 s)"; return 1
}
new_loop() { # NAME SIZE
	truncate -s "$2" "$W/$1.img"
	local l
	l=$(losetup -f --show "$W/$1.img") || { bad "losetup $1"; return 1; }
	LOOPS="$LOOPS $l"
	eval "LOOP_$1=$l"
	ln -s "$l" "$W/disc/$1"
}

T0=$SECONDS
# conv: ext4 of 40 MiB on 64 MiB (room for the 17 MiB the engine needs at the end), with a file
new_loop conv 64M
mkfs.ext4 -q "$LOOP_conv" 40M
mount "$LOOP_conv" "$W/m" && echo "written before the conversion" >"$W/m/file" && umount "$W/m"
# full: ext4 filling its device (the engine needs the last 17 MiB)
new_loop full 32M
mkfs.ext4 -q "$LOOP_full"
SUM_full=$(sha256sum <"$LOOP_full" | cut -c1-16)
# busy: mounted while the agent starts
new_loop busy 64M
mkfs.ext4 -q "$LOOP_busy" 40M
mount "$LOOP_busy" "$W/busy-mnt"

cat >"$W/wrapd.conf" <<CONF
vault_addr = $VAULT_ADDR
volume_table = $W/volumes
status_socket = $SOCK
kubernetes = yes
convert_existing = yes
node_name = node-1
kube_api_url = $kube_double_url
discovery_dir = $W/disc
kubelet_dir = $W/kubelet
CONF
chmod 600 "$W/wrapd.conf"
wrapd -c "$W/wrapd.conf" >>"$W/agent.log" 2>&1 &
agent_pid=$!

check "the ext4 file system is encrypted in place and opened" $Q wait \
	"v['conv']['state'] == 'open' and v['conv']['kubernetes']['class'] == 'wrapd' and 'encrypted' in v['conv']['kubernetes']['detail']" 300
check "the full one is refused and reported" $Q wait \
	"v['full']['state'] == 'failed' and v['full']['kubernetes']['class'] == 'foreign' and 'last 17 MiB' in v['full']['kubernetes']['detail']" 120
check "the mounted one is refused (in use)" $Q wait \
	"v['busy']['state'] == 'failed' and 'in use' in v['busy']['last_error']" 120
echo "# time: $((SECONDS - T0)) s: conversions done"
check "the converted device is a wrapd volume now" cryptsetup isLuks "$LOOP_conv"
until_ok "ConvertStarted Event (Normal)" event_seen ConvertStarted "disc/conv holds ext4: encrypting it in place"
until_ok "ConvertDone Event" event_seen ConvertDone conv
until_ok "ConvertFailed Event for the full one" event_seen ConvertFailed full
until_ok "ConvertFailed Event for the mounted one" event_seen ConvertFailed busy
until_ok "its PV is published" phase_is wrapd-node-1-conv Available
check "capacity = the mapping" [ "$(api /api/v1/persistentvolumes/wrapd-node-1-conv | jq -r .spec.capacity.storage)" = \
	"$(blockdev --getsize64 /dev/mapper/conv)" ]
check "the file system is intact through the mapping" mount -o ro /dev/mapper/conv "$W/m"
check "... with its file" grep -q "written before the conversion" "$W/m/file"
umount "$W/m"
check "the plaintext is gone from the device" sh -c "! grep -q 'written before the conversion' '$LOOP_conv'"
check "the full device is unchanged" [ "$(sha256sum <"$LOOP_full" | cut -c1-16)" = "$SUM_full" ]
check "the mounted one is unchanged" sh -c "! cryptsetup isLuks '$LOOP_busy' && grep -q ext4 /proc/mounts"
check "no PV for the refused ones" sh -c "! curl -sSf $kube_double_url/api/v1/persistentvolumes/wrapd-node-1-full >/dev/null 2>&1"

# A restart: the converted volume is adopted, never converted again.
kill -TERM "$agent_pid"; wait "$agent_pid"; agent_pid=
wrapd -c "$W/wrapd.conf" >>"$W/agent.log" 2>&1 &
agent_pid=$!
check "restarted: adopted" $Q wait "v['conv']['state'] == 'open' and v['conv']['adopted']" 120
check "one ConvertDone only" [ "$(api /api/v1/namespaces/default/events | jq '[.items[] | select(.reason == "ConvertDone")] | length')" = 1 ]
kill -TERM "$agent_pid"; wait "$agent_pid"; agent_pid=
echo "# time: $((SECONDS - T0)) s: end"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "--- agent log (tail)"; tail -n 40 "$W/agent.log"; exit 1; }
