#!/bin/bash
# The agent in Kubernetes mode on this host (no dm-crypt: nothing opens, so
# nothing is published; tests/agent/vm_kube.sh has the whole story), against
# the API double and the Vault double: discovery (a blank loop device is
# formatted — its open then fails for want of dm —, an ext4 one is left alone
# with a ForeignDevice Event, a bad name is refused), readiness (a foreign
# device is reported, not a failure), reconcile (an Available PV of this node
# whose device is not in discovery is deleted, a Bound one kept with a
# DeviceGone Warning; another node's PV untouched), an entry that appears
# later, and idle (no request but the watch, no wake-up).
set -u
S=${WRAPD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${WRAPD_BUILDDIR:-.}
PY=${WRAPD_PYTHON:-/usr/bin/python3}
[ "$(id -u)" = 0 ] && [ -e /dev/loop-control ] || { echo "SKIP: needs root and loop devices"; exit 77; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
W=$(mktemp -d /tmp/wrapd-hkube.XXXXXX)
SOCK=$W/run/wrapd.sock
Q="$PY $S/tests/agent/agentq.py $SOCK"
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
mkdir -p "$W/run" "$W/disc" "$W/kubelet"
start_vault_double "$S" "$W"
KUBE_DOUBLE_NO_TOKEN=1 kube_double_start "$S" "$W" kube --node node-1 --bookmark-interval 3600 ||
	{ echo "not ok - the API double did not start"; exit 1; }
api() { local p=$1; shift; curl -sS "$@" "$kube_double_url$p"; }
until_ok() {
	local what=$1; shift
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && { ok "$what"; return 0; }; sleep 0.1; done
	bad "$what (not within 30 s)"; return 1
}
event_seen() { api /api/v1/namespaces/default/events | jq -e --arg r "$1" --arg t "$2" \
	'[.items[] | select(.reason == $r and (.message | contains($t)))] | length > 0'; }
pv_absent() { ! curl -sSf "$kube_double_url/api/v1/persistentvolumes/$1" >/dev/null 2>&1; }
new_pv() { # NAME NODE VOLUME
	api /api/v1/persistentvolumes -H 'Content-Type: application/json' -d "$(jq -nc --arg n "$1" \
		--arg node "$2" --arg v "$3" '{apiVersion: "v1", kind: "PersistentVolume",
		metadata: {name: $n, labels: {"app.kubernetes.io/managed-by": "wrapd", "wrapd.io/node": $node},
		annotations: {"pv.kubernetes.io/provisioned-by": "wrapd.io/wrapd"}},
		spec: {capacity: {storage: "1Gi"}, accessModes: ["ReadWriteOnce"],
		persistentVolumeReclaimPolicy: "Delete", storageClassName: "encrypted",
		local: {path: ("/dev/mapper/" + $v)}, nodeAffinity: {required: {nodeSelectorTerms:
		[{matchExpressions: [{key: "kubernetes.io/hostname", operator: "In", values: [$node]}]}]}}}}')" >/dev/null
}
new_loop() { # NAME SIZE
	truncate -s "$2" "$W/$1.img"
	local l
	l=$(losetup -f --show "$W/$1.img") || { bad "losetup $1"; return 1; }
	LOOPS="$LOOPS $l"
	eval "LOOP_$1=$l"
}

new_loop blank 64M
new_loop legacy 64M
mkfs.ext4 -q "$LOOP_legacy"
ln -s "$LOOP_blank" "$W/disc/blank"
ln -s "$LOOP_legacy" "$W/disc/legacy"
ln -s "$LOOP_blank" "$W/disc/Not_A_Name"
# PVs from before: this node's for devices that are gone (one Available, one
# Bound to a claim), and another node's.
new_pv wrapd-node-1-gone node-1 gone
new_pv wrapd-node-1-bound node-1 bound
api /api/v1/namespaces/default/persistentvolumeclaims -H 'Content-Type: application/json' -d \
	'{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}},"storageClassName":"encrypted","volumeName":"wrapd-node-1-bound"}}' >/dev/null
new_pv wrapd-node-2-other node-2 other
until_ok "the claim binds the old PV (the double's PV controller)" sh -c \
	"curl -sS $kube_double_url/api/v1/persistentvolumes/wrapd-node-1-bound | jq -e '.status.phase == \"Bound\"'"

cat >"$W/wrapd.conf" <<CONF
vault_addr = $VAULT_ADDR
volume_table = $W/volumes
status_socket = $SOCK
metrics_listen =
kubernetes = yes
node_name = node-1
kube_api_url = $kube_double_url
discovery_dir = $W/disc
kubelet_dir = $W/kubelet
CONF
chmod 600 "$W/wrapd.conf"
"$B/wrapd" -c "$W/wrapd.conf" >>"$W/agent.log" 2>&1 &
agent_pid=$!

check "the blank device is formatted (then its open fails: no dm here)" $Q wait \
	"v['blank']['kubernetes']['class'] == 'blank' and v['blank']['state'] in ('open', 'failed')" 60
check "it holds a wrapd header now" cryptsetup isLuks "$LOOP_blank"
check "the ext4 device is foreign and untouched" $Q wait \
	"v['legacy']['kubernetes']['class'] == 'foreign' and 'wrapctl encrypt' in v['legacy']['kubernetes']['detail']" 60
check "... still ext4" [ "$(blkid -o value -s TYPE "$LOOP_legacy")" = ext4 ]
check "a bad entry name is not a volume" $Q wait "'Not_A_Name' not in v and s['agent']['kubernetes']['listed']" 30
grep -q "entry 'Not_A_Name' is not a valid volume name" "$W/agent.log" && ok "... and is named in the log" ||
	bad "the bad name is not in the log"
until_ok "ForeignDevice Event" event_seen ForeignDevice "wrapctl encrypt"
until_ok "this node's Available PV without a device is deleted" pv_absent wrapd-node-1-gone
until_ok "a DeviceGone Event says so" event_seen DeviceGone wrapd-node-1-gone
until_ok "the Bound one is kept, with a DeviceGone Warning" event_seen DeviceGone wrapd-node-1-bound
check "... still there" curl -sSf "$kube_double_url/api/v1/persistentvolumes/wrapd-node-1-bound" -o /dev/null
check "another node's PV is untouched" curl -sSf "$kube_double_url/api/v1/persistentvolumes/wrapd-node-2-other" -o /dev/null
# Readiness: here the blank volume fails (no dm) and makes the agent not
# ready; the foreign one is reported, never counted as a failure.
why=$($Q get | jq -r '.agent.not_ready_because // ""')
case $why in
"1 volume(s) failed; blank: "*) ok "a foreign device is reported, not a readiness failure ($why)" ;;
*) bad "readiness counts the foreign device: $why" ;;
esac

# An entry that appears later joins (inotify, no timer).
new_loop late 64M
ln -s "$LOOP_late" "$W/disc/late"
check "a later entry is discovered and formatted" $Q wait "'late' in v and v['late']['kubernetes']['class'] == 'blank'" 60

# Idle: nothing but the open watch, and no wake-up.
$Q wait "all(x['state'] in ('open', 'failed') for x in s['volumes'])" 60 >/dev/null
sleep 1
kube_double_ctl POST log/clear >/dev/null
vcsw() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }
# settled PID: every thread asleep (state S), so the last status request has
# let the loop go back to epoll_wait (as host_agent.sh). Bounded: 30 s.
settled() {
	local st
	for _ in $(seq 300); do
		st=$(cat /proc/"$1"/task/*/stat 2>/dev/null | sed 's/^.*) //' | cut -d' ' -f1 | sort -u | tr -d '\n')
		[ "$st" = S ] && return 0
		sleep 0.1
	done
	return 1
}
threads() { for t in /proc/"$1"/task/*; do echo "$(cat "$t/comm")=$(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status")"; done | tr '\n' ' '; }
check "the agent settles with no timer armed" $Q wait "s['agent']['next_timer_in_ms'] is None" 30
# The window counts only when this host's mount table did not change in it:
# the agent watches it (kubelet's mounts), and other tests or engineers on
# the same host mount and unmount. A change means: measure again (3 tries).
# watch_timer_only BEFORE AFTER: the only change between two thread lists is
# one wake-up of the watch thread (wrapd-kwatch): the connect-timeout timer
# libcurl leaves armed ~10 s after a watch starts (kube/NOTES.md, to be fixed).
watch_timer_only() {
	local d
	d=$(diff <(tr ' ' '\n' <<<"$1") <(tr ' ' '\n' <<<"$2") | grep '^[<>]' || true)
	[ "$(grep -c . <<<"$d")" = 2 ] || return 1
	local a b
	a=$(grep '^< wrapd-kwatch' <<<"$d" | sed 's/.*=//') b=$(grep '^> wrapd-kwatch' <<<"$d" | sed 's/.*=//')
	[ -n "$a" ] && [ -n "$b" ] && [ $((b - a)) = 1 ]
}
mounts() { md5sum </proc/self/mountinfo; }
for try in 1 2 3; do
	settled "$agent_pid"
	m0=$(mounts); c0=$(vcsw "$agent_pid"); t0=$(threads "$agent_pid")
	sleep 5
	c1=$(vcsw "$agent_pid"); t1=$(threads "$agent_pid"); m1=$(mounts)
	if [ "$m0" = "$m1" ]; then
		watch_timer_only "$t0" "$t1" || break
		echo "    # idle window $try: only the watch thread woke, once (libcurl's connect-timeout timer ~10 s after a watch starts, kube/NOTES.md): measuring again"
	else
		echo "    # the mount table changed during idle window $try: measuring again"
	fi
done
check "idle 5 s: no request but the watch" [ "$(kube_double_ctl GET log | jq '[.requests[] | select(.watch | not)] | length')" = 0 ]
check "idle 5 s: no wake-up ($c0 → $c1)" [ "$c0" = "$c1" ]
[ "$c0" = "$c1" ] || printf '    # threads before: %s\n    # threads after:  %s\n' "$t0" "$t1"
kill -TERM "$agent_pid"; wait "$agent_pid"; agent_pid=
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || { tail -n 30 "$W/agent.log"; exit 1; }
