#!/bin/bash
# The wrapd agent on this host, against the Vault double: its loop, status
# socket, table watch, Vault back-off, signals and log formats. No dm-crypt is
# needed: on a kernel without it the volumes end "failed" with the library's
# "no device-mapper" line, which is as good a terminal state for these checks
# as "open" (tests/agent/vm_agent.sh checks the mappings themselves).
# Every wait is for a state seen through the status socket, with a generous
# deadline; no sleep is an assertion.
#
# Prints "ok - ..." / "not ok - ..." and "N passed, M failed".
set -u
B=${WRAPD_BUILDDIR:-.}
S=${WRAPD_SRCDIR:-${srcdir:-.}}
PY=${WRAPD_PYTHON:-/usr/bin/python3}
W=$(mktemp -d /tmp/wrapd-hagt.XXXXXX)
. "$S/tests/lib/checks.sh"
SOCK=$W/run/wrapd.sock
Q="$PY $S/tests/agent/agentq.py $SOCK"
H="$PY $S/tests/lib/vhelper.py"
vault_pid= agent_pid=

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (status socket peer checks, loop devices)"; exit 77; }

cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null
	stop_vault_double
	rm -rf "$W"
}
trap cleanup EXIT

start_agent() { # the table and socket come from wrapd.conf
	"$B/wrapd" -c "$W/wrapd.conf" "$@" >>"$W/agent.log" 2>&1 &
	agent_pid=$!
}
stop_agent() {
	kill -TERM "$agent_pid"
	for _ in $(seq 300); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$agent_pid" 2>/dev/null && { echo "still running 30 s after SIGTERM"; kill -KILL "$agent_pid"; }
	wait "$agent_pid"; local rc=$?
	agent_pid=
	return $rc
}
table_set() { chmod 644 "$1"; mv -f "$1" "$W/volumes"; }
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
DONE="x['state'] in ('open', 'failed')"   # a finished open, with or without dm

start_vault_double "$S" "$W"
cat >"$W/wrapd.conf" <<CONF
# shared by wrapd and wrapctl
vault_addr = $VAULT_ADDR
volume_table = $W/volumes
status_socket = $SOCK
log_format = text
agent_retry_max = 5m
# metrics on (the idle check counts its fd too), on a port of its own
metrics_listen = 127.0.0.1:0
CONF
chmod 600 "$W/wrapd.conf"
for i in 1 2 3 4; do
	truncate -s 20M "$W/v$i.img"
	"$B/wrapctl" format "$W/v$i.img" >/dev/null || bad "format v$i"
done
printf 'hagt-1 %s\nhagt-2 %s\nhagt-n %s noauto\n' "$W/v1.img" "$W/v2.img" "$W/v4.img" >"$W/t"
table_set "$W/t"

# ---- start, status, socket ---------------------------------------------------------
start_agent
check "ready; both auto volumes tried" $Q wait \
	"s['agent']['ready'] and all($DONE for x in s['volumes'] if not x['noauto'])"
check "noauto volume: closed, never opened" $Q wait "v['hagt-n']['state'] == 'closed'"
check "a failed volume says why" $Q wait \
	"all(x['state'] == 'open' or x['last_error'] for x in s['volumes'] if not x['noauto'])"
check "Vault reachable, root token TTL 0, no upkeep timer" $Q wait \
	"s['agent']['vault']['reachable'] is True and s['agent']['vault']['token_ttl'] == 0 and s['agent']['vault']['upkeep_in_ms'] is None"
check "status socket: mode 0600, owned by root" bash -c "[ \"\$(stat -c '%a %u %F' $SOCK)\" = '600 0 socket' ]"
chmod 755 "$W" "$W/run"   # nobody reaches the socket; its own mode decides
check "a non-root peer cannot connect (mode)" $Q as-nobody mode
chmod 666 "$SOCK"   # now only the agent itself can refuse
check "a non-root peer is refused by SO_PEERCRED" $Q as-nobody peer
grep -q "root only" "$W/out" && ok "  ... given a refusal, not the status" || bad "  ... given a refusal, not the status"
chmod 600 "$SOCK"; chmod 700 "$W"
check "the refusal is logged" grep -q "refused a status request from uid 65534" "$W/agent.log"
check_fails "a second agent on the same socket refuses to start" "$B/wrapd" -c "$W/wrapd.conf"
grep -q "another wrapd agent is running" "$W/out" && ok "  ... saying why" || bad "  ... saying why"

# ---- wrapctl status: the agent's view while it runs, the kernel's otherwise -----------
check "wrapctl status shows the agent's view" bash -c "'$B/wrapctl' -c '$W/wrapd.conf' status | grep -q '^wrapd agent (pid $agent_pid)'"
"$B/wrapctl" -c "$W/wrapd.conf" status >"$W/status.txt" 2>&1
check "  ... listing each volume with its state" grep -q "^hagt-n *closed" "$W/status.txt"
check "wrapctl status --json NAME: the agent's document for that volume" bash -c \
	"'$B/wrapctl' -c '$W/wrapd.conf' status --json hagt-n | $PY -c 'import json,sys; d=json.load(sys.stdin); assert [x[\"name\"] for x in d[\"volumes\"]] == [\"hagt-n\"] and d[\"agent\"][\"pid\"] == $agent_pid'"
check "wrapctl status --kernel: the kernel's view" bash -c "'$B/wrapctl' -c '$W/wrapd.conf' status --kernel | grep -v -q '^wrapd agent'"
check "wrapctl accepts the agent's keys in the shared wrapd.conf" "$B/wrapctl" -c "$W/wrapd.conf" status --kernel

# ---- idle: no wake-ups ------------------------------------------------------------------
settled "$agent_pid" || bad "the agent did not settle"
a=$(vcsw "$agent_pid"); sleep 10; b=$(vcsw "$agent_pid")
check "idle: voluntary context switches did not grow over 10 s ($a -> $b)" test "$a" = "$b"

# ---- table changes ------------------------------------------------------------------------
cp "$W/volumes" "$W/t"; echo "hagt-3 $W/v3.img" >>"$W/t"; table_set "$W/t"
check "a line added (atomic rename) is acted on without restart" $Q wait \
	"'hagt-3' in v and (lambda x: $DONE)(v['hagt-3'])"
grep -v '^hagt-3 ' "$W/volumes" >"$W/t"; table_set "$W/t"
check "a line removed leaves the status" $Q wait "'hagt-3' not in v"
echo "hagt-3 $W/v3.img" >>"$W/volumes"
check "a line added by an in-place write is seen too" $Q wait "'hagt-3' in v and (lambda x: $DONE)(v['hagt-3'])"
sed 's|^\(hagt-3 .*\)$|\1 discard|' "$W/volumes" >"$W/t"; table_set "$W/t"
check "a changed line is reported and tried again" bash -c \
	"$Q wait \"(lambda x: $DONE)(v['hagt-3'])\" && grep -q 'hagt-3 .*changed: table line' $W/agent.log"
echo "this is not a table line" >>"$W/volumes"
check "a broken table is refused and the volumes are kept" $Q wait "'hagt-3' in v and 'hagt-1' in v"
check "  ... and the log names file:line" grep -q "volumes:5:" "$W/agent.log"
grep -v 'not a table' "$W/volumes" >"$W/t"; table_set "$W/t"
check "SIGHUP: config and table reread" bash -c "kill -HUP $agent_pid && $Q wait \"'hagt-3' in v\" && grep -q 'SIGHUP' $W/agent.log"
check "SIGTERM: exit status 0" stop_agent
check "SIGTERM: the socket is removed" test ! -e "$SOCK"
check "no agent: wrapctl status shows the kernel's view" bash -c "! '$B/wrapctl' -c '$W/wrapd.conf' status | grep -q '^wrapd agent'"

# ---- Vault sealed: wait with back-off, then go on without a restart ---------------------
$H seal
start_agent -o agent_retry_min=100ms -o agent_retry_max=1s
check "sealed: volumes wait for Vault" $Q wait \
	"all(x['state'] == 'waiting for Vault' for x in s['volumes'] if not x['noauto'])"
check "sealed: the status says why" $Q wait "'sealed' in (v['hagt-1']['last_error'] or '').lower()"
check "sealed: the agent says why it is not ready" $Q wait \
	"s['agent']['healthy_volumes'] is False and 'wait for Vault' in s['agent']['not_ready_because'] and 'sealed' in s['agent']['not_ready_because']"
check "sealed: Vault unreachable, a retry scheduled" $Q wait \
	"s['agent']['vault']['reachable'] is False and s['agent']['retry_in_ms'] is not None"
check "sealed: retries keep coming (back-off, not a single try)" $Q wait \
	"s['agent']['retry_in_ms'] is not None and open('$W/agent.log').read().count('wait for Vault; next try') >= 3" 120
$H unseal
check "unsealed: no volume waits any more, without a restart" $Q wait \
	"all($DONE for x in s['volumes'] if not x['noauto']) and s['agent']['vault']['reachable'] is True"
check "unsealed: nothing scheduled" $Q wait \
	"s['agent']['retry_in_ms'] is None and s['agent']['vault']['upkeep_in_ms'] is None"
check "stop" stop_agent

# ---- token upkeep on a timer; a token file that changes is used at once -------------
vapi() { # METHOD PATH [JSON]: the double's API as root
	$PY - "$VAULT_ADDR" "$@" <<'PYEOF'
import json, sys, urllib.request
addr, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(addr + path, data=body, method=method,
                             headers={"X-Vault-Token": "root", "Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(req).read().decode())
except urllib.error.HTTPError as e:
    print(e.read().decode()); sys.exit(1)
PYEOF
}
# seen N PATH TOKENPREFIX: the double's log holds at least N requests to PATH with that token (waits)
seen() {
	$PY - "$VAULT_ADDR" "$@" <<'PYEOF'
import json, sys, time, urllib.request
addr, n, path, tok = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
deadline = time.monotonic() + 120
while True:
    reqs = json.loads(urllib.request.urlopen(addr + "/_double/log").read())["requests"]
    c = sum(1 for r in reqs if r["path"] == path and (r.get("token") or "").startswith(tok[:8]))
    if c >= n:
        sys.exit(0)
    if time.monotonic() > deadline:
        print("only", c, "of", n, path, "with", tok); sys.exit(1)
    time.sleep(0.2)
PYEOF
}
vapi POST /v1/auth/token/create '{"id": "tokA-aaaaaaaa", "ttl": "15s", "renewable": true, "policies": ["root"]}' >/dev/null
vapi POST /v1/auth/token/create '{"id": "tokB-bbbbbbbb", "ttl": "1h", "renewable": true, "policies": ["root"]}' >/dev/null
echo tokA-aaaaaaaa >"$W/token"; chmod 600 "$W/token"
sed 's/^agent_retry_max.*//' "$W/wrapd.conf" >"$W/tok.conf"
echo "vault_token_file = $W/token" >>"$W/tok.conf"
chmod 600 "$W/tok.conf"
(unset VAULT_TOKEN; exec "$B/wrapd" -c "$W/tok.conf" >>"$W/agent.log" 2>&1) &
agent_pid=$!
check "token with a 15 s TTL: the agent knows it and schedules upkeep" $Q wait \
	"s['agent']['vault']['token_ttl'] in range(1, 16) and s['agent']['vault']['upkeep_in_ms'] is not None"
check "  ... and renews it on the timer, again (renew-self x2, no open needed)" \
	seen 2 /v1/auth/token/renew-self tokA-aaaaaaaa
echo tokB-bbbbbbbb >"$W/token.new"; chmod 600 "$W/token.new"; mv "$W/token.new" "$W/token"
check "a new token file (atomic rename) is used at once" seen 1 /v1/auth/token/lookup-self tokB-bbbbbbbb
check "  ... the status shows its TTL" $Q wait "s['agent']['vault']['token_ttl'] > 3000"
check "  ... and the log says so" grep -q "token file changed" "$W/agent.log"
check "stop (token file)" stop_agent

# ---- SIGTERM while a Vault call hangs: out within the stop timeout -------------------
vapi POST /_double/fault '{"latency_ms": 60000, "path": "/v1/transit/decrypt", "count": 1}' >/dev/null
start_agent -o agent_stop_timeout=1s
check "a decrypt that hangs (60 s): the volumes show 'opening'" $Q wait "v['hagt-1']['state'] == 'opening'"
kill -TERM "$agent_pid"
for _ in $(seq 100); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
check "SIGTERM: out within 10 s although the Vault call would take 60 s" bash -c "! kill -0 $agent_pid 2>/dev/null"
wait "$agent_pid"; rc=$?; agent_pid=
check "  ... with status 0" test "$rc" = 0
check "  ... saying a job was still running" grep -q "job was still running" "$W/agent.log"
vapi DELETE /_double/fault >/dev/null

# ---- JSON log lines ------------------------------------------------------------------------
: >"$W/agent.log"
start_agent --log-format json -o rekey_max_rate=3
check "json: ready" $Q wait "s['agent']['ready'] and all($DONE for x in s['volumes'] if not x['noauto'])"
check "rekey_max_rate 3 (MiB/s) in the status, in bytes/s; no volume with a rekey" $Q wait \
	"s['agent']['rekey_max_rate'] == 3 << 20 and all(x['rekey'] is None for x in s['volumes'])"
check "json: stop" stop_agent
check "json: every stderr line is one JSON object with time, level and msg" $PY -c "
import json, sys
n = 0
for line in open('$W/agent.log'):
    o = json.loads(line); n += 1
    assert {'time', 'level', 'msg'} <= o.keys(), line
assert n >= 3, n
"
check "json: a volume's lines carry its name and device" $PY -c "
import json
ls = [json.loads(l) for l in open('$W/agent.log')]
vs = [o for o in ls if o.get('volume') == 'hagt-1']
assert vs and all(o.get('device') == '$W/v1.img' for o in vs), vs
"

# ---- rekey_max_rate: checked as the file's other keys ---------------------------------------
for bad_rate in -1 x 1048577; do
	check_fails "rekey_max_rate = $bad_rate is refused" "$B/wrapd" -c "$W/wrapd.conf" -o "rekey_max_rate=$bad_rate" --check-config
	grep -q "rekey_max_rate" "$W/out" && ok "  ... naming the key" || bad "  ... naming the key"
done
check "rekey_max_rate = 0 (no limit) is valid" "$B/wrapd" -c "$W/wrapd.conf" -o rekey_max_rate=0 --check-config

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
