#!/bin/bash
# convert_existing on this host (no dm-crypt: the engine converts offline;
# the open that follows fails for want of dm, which is not what is tested
# here; tests/agent/vm_kube_convert.sh has the whole story), against the API
# and Vault doubles:
#   - an in-place encryption interrupted (SIGKILL of `wrapctl encrypt` while
#     it is blocked writing its first progress line: the state is the
#     engine's, as an agent killed mid-conversion leaves it) is resumed by the
#     agent at its start: ConvertStarted (Normal, "was interrupted"), the
#     engine's resume, ConvertDone; no conversion left in the header, the
#     file system intact once decrypted again;
#   - a plaintext ext4 device: ConvertStarted before ConvertDone.
set -u
S=${WRAPD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${WRAPD_BUILDDIR:-.}
PY=${WRAPD_PYTHON:-/usr/bin/python3}
[ "$(id -u)" = 0 ] && [ -e /dev/loop-control ] || { echo "SKIP: needs root and loop devices"; exit 77; }
for t in debugfs mkfs.ext4; do command -v $t >/dev/null || PATH=$PATH:/sbin:/usr/sbin; done
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
W=$(mktemp -d /tmp/wrapd-hkconv.XXXXXX)
SOCK=$W/run/wrapd.sock
Q="$PY $S/tests/agent/agentq.py $SOCK"
H="$PY $S/tests/engine/convhelper.py"
WRAPCTL=$B/wrapctl
. "$S/tests/lib/checks.sh"
. "$S/tests/lib/kube-double.sh"
agent_pid= LOOPS=
cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null
	for l in $LOOPS; do losetup -d "$l"; done
	kube_double_stop
	stop_vault_double
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/run" "$W/disc" "$W/kubelet" "$W/files"
start_vault_double "$S" "$W"
KUBE_DOUBLE_NO_TOKEN=1 kube_double_start "$S" "$W" kube --node node-1 --bookmark-interval 3600 ||
	{ echo "not ok - the API double did not start"; exit 1; }
api() { curl -sS "$kube_double_url$1"; }
until_ok() {
	local what=$1; shift
	for _ in $(seq 600); do "$@" >/dev/null 2>&1 && { ok "$what"; return 0; }; sleep 0.1; done
	bad "$what (not within 60 s)"; return 1
}
events() { api /api/v1/namespaces/default/events | jq -c --arg r "$1" --arg t "$2" \
	'[.items[] | select(.reason == $r and (.message | contains($t)))]'; }
event_seen() { [ "$(events "$1" "$2" | jq length)" -gt 0 ]; }
new_loop() { # NAME: 128 MiB, ext4 of 96 MiB with a file (room for the header at the end)
	truncate -s 128M "$W/$1.img"
	mkfs.ext4 -q -F -E nodiscard -b 4096 -d "$W/files" "$W/$1.img" 96M >/dev/null 2>&1
	local l
	l=$(losetup -f --show "$W/$1.img") || { bad "losetup $1"; return 1; }
	LOOPS="$LOOPS $l"
	eval "LOOP_$1=$l"
}
in_progress() { [ "$("$WRAPCTL" inspect --json "$1" | jq -r '.wrapd.conversion_in_progress')" = true ]; }

for i in $(seq 200); do echo "line $i of the file written before the conversion"; done >"$W/files/file"
new_loop half
new_loop plain
# The interrupted conversion: frozen on its first progress line, then killed.
$H interrupt SIGKILL "$WRAPCTL" encrypt "$LOOP_half" --json >"$W/int.out" 2>"$W/int.err"
rc=$?
if [ $rc = 137 ] || in_progress "$LOOP_half"; then
	check "wrapctl encrypt killed mid-conversion: a conversion in progress (rc $rc)" in_progress "$LOOP_half"
else
	bad "wrapctl encrypt was not interrupted (rc $rc)"; cat "$W/int.err" | sed 's/^/    /'
fi
ln -s "$LOOP_half" "$W/disc/half"
ln -s "$LOOP_plain" "$W/disc/plain"

cat >"$W/wrapd.conf" <<CONF
vault_addr = $VAULT_ADDR
volume_table = $W/volumes
status_socket = $SOCK
metrics_listen =
kubernetes = yes
convert_existing = yes
node_name = node-1
kube_api_url = $kube_double_url
discovery_dir = $W/disc
kubelet_dir = $W/kubelet
CONF
chmod 600 "$W/wrapd.conf"
"$B/wrapd" -c "$W/wrapd.conf" >>"$W/agent.log" 2>&1 &
agent_pid=$!

check "the interrupted conversion is finished by the agent (the engine's resume)" $Q wait \
	"v['half']['kubernetes']['class'] == 'wrapd' and 'interrupted encryption finished' in v['half']['kubernetes']['detail']" 120
check "the plaintext one is encrypted in place" $Q wait \
	"v['plain']['kubernetes']['class'] == 'wrapd' and 'encrypted in place' in v['plain']['kubernetes']['detail']" 120
until_ok "ConvertStarted (Normal) for the interrupted one says so" event_seen ConvertStarted "was interrupted"
check "... of type Normal" [ "$(events ConvertStarted "$W/disc/half" | jq -r '.[0].type')" = Normal ]
until_ok "ConvertDone for it" event_seen ConvertDone "$W/disc/half"
until_ok "ConvertStarted for the plaintext one" event_seen ConvertStarted "holds ext4: encrypting it in place"
until_ok "ConvertDone for it" event_seen ConvertDone "$W/disc/plain"
# (the double's sequence: a later object has a higher resourceVersion)
started=$(events ConvertStarted "$W/disc/plain" | jq -r '.[0].metadata.resourceVersion')
done_at=$(events ConvertDone "$W/disc/plain" | jq -r '.[0].metadata.resourceVersion')
check "ConvertStarted was posted before ConvertDone (resourceVersion $started < $done_at)" test "$started" -lt "$done_at"
check "one ConvertStarted and one ConvertDone per device" [ "$(events ConvertStarted "" | jq length)/$(events ConvertDone "" | jq length)" = 2/2 ]
check "no conversion left in the resumed header" [ "$("$WRAPCTL" inspect --json "$LOOP_half" | jq -r '.wrapd.conversion_in_progress')" = false ]
kill -TERM "$agent_pid"; wait "$agent_pid"; agent_pid=
# The file system is intact: decrypted again (offline), the file reads back.
check "the resumed volume decrypts back to plaintext" "$WRAPCTL" decrypt "$LOOP_half"
check "... and its file is intact" cmp -s "$W/files/file" <(debugfs -R "cat /file" "$LOOP_half" 2>/dev/null)
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || { tail -n 30 "$W/agent.log"; exit 1; }
