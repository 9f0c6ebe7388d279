#!/bin/bash
# The wrapd agent on a real dm-crypt kernel (tests/vm/run-kernel-tests boots
# ONE VM when the host has none), against the Vault double on 127.0.0.1.
# Every wait is for a state seen through the status socket, with a generous
# deadline; no sleep is an assertion.
#
# usage: vm_agent.sh SRCDIR BUILDDIR
# Prints "ok - ..." / "not ok - ..." per check; exit 1 if any failed.
set -u
S=${1:?srcdir}
B=${2:?builddir}
export PATH="$B:$PATH"
H="/usr/bin/python3 $S/tests/lib/vhelper.py"
W=$(mktemp -d /tmp/wrapd-kagt.XXXXXX)
SOCK=$W/run/wrapd.sock
Q="/usr/bin/python3 $S/tests/agent/agentq.py $SOCK"
. "$S/tests/lib/checks.sh"
vault_pid= agent_pid=

cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null
	mountpoint -q "$W/mnt" && umount "$W/mnt"
	mountpoint -q "$W/mnt8" && umount "$W/mnt8"
	for n in $(dmsetup ls 2>/dev/null | awk '{print $1}'); do
		case $n in kagt-*) dmsetup remove "$n" 2>/dev/null ;; esac
	done
	stop_vault_double
	rm -rf "$W"
}
trap cleanup EXIT

# start_agent [ARGS...]: wrapd in the background, its log in $W/agent.log.
start_agent() {
	wrapd -c "$W/wrapd.conf" --table "$W/volumes" --status-socket "$SOCK" "$@" \
		>>"$W/agent.log" 2>&1 &
	agent_pid=$!
}
# stop_agent: SIGTERM, then wait (bounded) for the process to end.
stop_agent() {
	kill -TERM "$agent_pid"
	for _ in $(seq 300); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$agent_pid" 2>/dev/null; then
		bad "wrapd did not exit within 30 s of SIGTERM"; kill -KILL "$agent_pid"
	fi
	wait "$agent_pid"; local rc=$?
	agent_pid=
	return $rc
}
# table_set FILE: install FILE as the table by rename (as an editor does).
table_set() { chmod 644 "$1"; mv -f "$1" "$W/volumes"; }
ndecrypt() { $H count-decrypt | cut -d' ' -f1; }
nrequests() { /usr/bin/python3 -c "
import json, urllib.request
print(len(json.loads(urllib.request.urlopen('$VAULT_ADDR/_double/log').read())['requests']))"; }
# voluntary context switches of every thread of PID, summed
# settled PID: every thread of PID is asleep (state S), so a status request
# that just ended has let the loop go back to epoll_wait (the count only
# moves when a thread goes to sleep). Bounded: 30 s.
settled() {
	local st
	for _ in $(seq 300); do
		st=$(cat /proc/"$1"/task/*/stat 2>/dev/null | sed 's/^.*) //' | cut -d' ' -f1 | sort -u | tr -d '\n')
		[ "$st" = S ] && return 0
		sleep 0.1
	done
	return 1
}
vcsw() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }
idle_check() { # WHAT: over 10 s of nothing to do, no thread of the agent wakes up
	local a b
	settled "$agent_pid" || bad "the agent did not settle"
	a=$(vcsw "$agent_pid")
	sleep 10
	b=$(vcsw "$agent_pid")
	check "idle ($1): voluntary context switches did not grow over 10 s ($a -> $b)" test "$a" = "$b"
}
mapped() { dmsetup info "$1" >/dev/null 2>&1; }
n_mapped() { dmsetup ls 2>/dev/null | grep -c '^kagt-'; }

ip link set lo up 2>/dev/null || true
modprobe dm-crypt 2>/dev/null || true
mkdir -p "$W/mnt"
start_vault_double "$S" "$W"
echo "vault_addr = $VAULT_ADDR" >"$W/wrapd.conf"
chmod 600 "$W/wrapd.conf"

# ---- 20 volumes: all open with ONE decrypt request --------------------------------
: >"$W/t"
for i in $(seq -w 1 23); do
	truncate -s 20M "$W/v$i.img"
	wrapctl format "$W/v$i.img" >/dev/null || bad "format v$i"
done
for i in $(seq -w 1 20); do echo "kagt-$i $W/v$i.img" >>"$W/t"; done
echo "kagt-noauto $W/v21.img noauto" >>"$W/t"
table_set "$W/t"
d0=$(ndecrypt)
start_agent
check "20 volumes open (status socket)" $Q wait "s['agent']['ready'] and sum(x['state'] == 'open' for x in s['volumes']) == 20"
read -r d1 bs < <($H count-decrypt)
check "the first pass made exactly ONE decrypt request ($((d1 - d0)), batch of $bs)" test "$((d1 - d0))" = 1 -a "$bs" = 20
check "20 kagt- mappings in dm" test "$(n_mapped)" = 20
check "noauto volume stays closed" $Q wait "v['kagt-noauto']['state'] == 'closed'"
check "status shows device, mapping and key version" $Q wait \
	"v['kagt-01']['device'] == '$W/v01.img' and v['kagt-01']['mapping'] == '/dev/mapper/kagt-01' and v['kagt-01']['key_version'] == 1"
check "status: Vault reachable, token TTL known, no timer" $Q wait \
	"s['agent']['vault']['reachable'] is True and s['agent']['vault']['token_ttl'] == 0 and s['agent']['vault']['upkeep_in_ms'] is None"
check "status socket is a socket, mode 0600, owned by root" \
	bash -c "[ -S $SOCK ] && [ \"\$(stat -c '%a %u' $SOCK)\" = '600 0' ]"
chmod 755 "$W" "$W/run"   # nobody reaches the socket; its own mode decides
check "a non-root peer cannot connect (mode 0600)" $Q as-nobody mode
chmod 666 "$SOCK"   # now only the agent itself can refuse
check "a non-root peer is refused by SO_PEERCRED (socket opened to all for the test)" $Q as-nobody peer
grep -q "root only" "$W/out" && ok "  ... with a refusal, not the status" || bad "  ... with a refusal, not the status"
chmod 600 "$SOCK"; chmod 700 "$W"
idle_check "20 volumes"

# ---- table changes, no restart ---------------------------------------------------
r0=$(nrequests)
cp "$W/volumes" "$W/t" && echo "kagt-22 $W/v22.img" >>"$W/t" && table_set "$W/t"
check "a line added is opened without restart" $Q wait "v.get('kagt-22', {}).get('state') == 'open'"
check "  ... with exactly ONE Vault request, a decrypt (steady state: no lookup-self, no GET keys)" \
	test "$(nrequests)" = "$((r0 + 1))" -a "$(ndecrypt)" = "$((d1 + 1))"
check "  ... /dev/mapper/kagt-22 exists" test -b /dev/mapper/kagt-22
grep -v '^kagt-05 ' "$W/volumes" >"$W/t" && table_set "$W/t"
check "a line removed is closed" $Q wait "'kagt-05' not in v"
check_fails "  ... the mapping kagt-05 is gone" mapped kagt-05
check "mkfs + mount kagt-06" bash -c "mkfs.ext4 -q /dev/mapper/kagt-06 && mount /dev/mapper/kagt-06 $W/mnt"
grep -v '^kagt-06 ' "$W/volumes" >"$W/t" && table_set "$W/t"
check "a mounted volume's line removed: kept open and reported" \
	$Q wait "v.get('kagt-06', {}).get('kept') is True and v['kagt-06']['state'] == 'open'"
check "  ... the mapping kagt-06 is still there" mapped kagt-06
check "  ... and the log says why" grep -q "kagt-06.*kept" "$W/agent.log"
sed 's|^\(kagt-07 .*\)$|\1 ro|' "$W/volumes" >"$W/t" && table_set "$W/t"
check "a changed line of an idle volume is applied (close + open read-only)" $Q wait \
	"v['kagt-07']['state'] == 'open' and not v['kagt-07']['changed']"
check "  ... the mapping is read-only now" bash -c "[ \$(blockdev --getro /dev/mapper/kagt-07) = 1 ]"
check "mount kagt-08" bash -c "mkfs.ext4 -q /dev/mapper/kagt-08 && mkdir -p $W/mnt8 && mount /dev/mapper/kagt-08 $W/mnt8"
sed 's|^\(kagt-08 .*\)$|\1 ro|' "$W/volumes" >"$W/t" && table_set "$W/t"
check "a changed line of a mounted volume is reported and not applied" bash -c \
	"$Q wait \"v['kagt-08']['state'] == 'open'\" && grep -q 'kagt-08.*in use' $W/agent.log"
check "  ... the mapping is still read-write" bash -c "[ \$(blockdev --getro /dev/mapper/kagt-08) = 0 ]"
umount "$W/mnt8"
umount "$W/mnt"

# ---- SIGTERM leaves every mapping open; a restart adopts them with no decrypt -------
before=$(n_mapped)
check "SIGTERM: wrapd exits with status 0" stop_agent
check "SIGTERM: every mapping is still open ($before)" test "$(n_mapped)" = "$before"
check "SIGTERM: the status socket is removed" test ! -e "$SOCK"
d2=$(ndecrypt)
start_agent
check "restart: ready, every table volume open" $Q wait \
	"s['agent']['ready'] and all(x['state'] == 'open' for x in s['volumes'] if x['in_table'] and not x['noauto'])"
check "restart: adopted, not reopened" $Q wait "v['kagt-01']['adopted'] is True"
check "restart: ZERO decrypt requests ($d2 -> $(ndecrypt))" test "$(ndecrypt)" = "$d2"
check "restart: kagt-06 (unlisted, open) is shown and left alone" $Q wait \
	"v['kagt-06']['in_table'] is False and v['kagt-06']['state'] == 'open'"
check "  ... still mapped" mapped kagt-06
check "stop again" stop_agent

# ---- Vault sealed at start: the agent waits, says why, and opens after unseal -------
cp "$W/volumes" "$W/t" && echo "kagt-23 $W/v23.img" >>"$W/t" && echo "kagt-05 $W/v05.img" >>"$W/t" && table_set "$W/t"
$H seal
start_agent -o agent_retry_min=200ms -o agent_retry_max=2s
check "sealed: the new volumes wait for Vault" $Q wait \
	"v['kagt-23']['state'] == 'waiting for Vault' and v['kagt-05']['state'] == 'waiting for Vault'"
check "sealed: status says why" $Q wait "'sealed' in (v['kagt-23']['last_error'] or '').lower()"
check "sealed: Vault not reachable in the agent's state" $Q wait "s['agent']['vault']['reachable'] is False"
check "sealed: the open volumes stay open" $Q wait "v['kagt-01']['state'] == 'open'"
check "sealed: a retry is scheduled" $Q wait "s['agent']['retry_in_ms'] is not None"
$H unseal
check "unsealed: the waiting volumes open without a restart" $Q wait \
	"v['kagt-23']['state'] == 'open' and v['kagt-05']['state'] == 'open'"
check "unsealed: Vault reachable again, nothing scheduled" $Q wait \
	"s['agent']['vault']['reachable'] is True and s['agent']['retry_in_ms'] is None and s['agent']['vault']['upkeep_in_ms'] is None"
idle_check "$(n_mapped) volumes"
check "final stop" stop_agent
check "final: no key left in /proc/keys" bash -c "! grep -q 'wrapd:' /proc/keys"
check "the agent's log holds no key material" bash -c "! $H keyhex-grep $W/v01.img $W/agent.log"

echo "--- agent log (tail)"
tail -n 15 "$W/agent.log" | sed 's/^/    /'
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
