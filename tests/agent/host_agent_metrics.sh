#!/bin/bash
# The agent's HTTP endpoint (metrics_listen) on this host, against the Vault
# double: /metrics parsed by an independent parser (python3-prometheus-client)
# with its values checked against the double's request log and the agent's
# own status, /healthz, /readyz (503 and why while Vault is sealed, 200 when
# nothing waits or failed), 404/405, a bad metrics_listen and a port in use
# refused at start, IPv6, and an idle agent with metrics on: still 0 wake-ups.
# No dm-crypt here: table volumes end "failed" (tests/agent/vm_systemd.sh
# checks open volumes through the same page in the VM).
#
# Prints "ok - ..." / "not ok - ..." and "N passed, M failed".
set -u
B=${WRAPD_BUILDDIR:-.}
S=${WRAPD_SRCDIR:-${srcdir:-.}}
PY=${WRAPD_PYTHON:-/usr/bin/python3}
W=$(mktemp -d /tmp/wrapd-hmet.XXXXXX)
. "$S/tests/lib/checks.sh"
SOCK=$W/run/wrapd.sock
Q="$PY $S/tests/agent/agentq.py $SOCK"
H="$PY $S/tests/lib/vhelper.py"
agent_pid=

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (status socket, as host_agent.sh)"; exit 77; }
$PY -c 'import prometheus_client.parser' 2>/dev/null ||
	{ echo "not ok - python3-prometheus-client is missing (scripts/deps installs it)"; exit 1; }

cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null
	stop_vault_double
	rm -rf "$W"
}
trap cleanup EXIT

# start_agent ARGS...: starts wrapd and sets M to its endpoint's base URL
# (metrics_listen asks for port 0; the start line says which port it got).
start_agent() {
	: >"$W/agent.log"
	"$B/wrapd" -c "$W/wrapd.conf" "$@" >>"$W/agent.log" 2>&1 &
	agent_pid=$!
	M=
	for _ in $(seq 300); do
		M=$(sed -n 's|.*metrics and health on \(http://[^ ]*\)/metrics.*|\1|p' "$W/agent.log")
		[ -n "$M" ] && return 0
		kill -0 "$agent_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "no endpoint in the log:"; cat "$W/agent.log"
	return 1
}
stop_agent() {
	kill -TERM "$agent_pid"
	wait "$agent_pid"; local rc=$?
	agent_pid=
	return $rc
}
table_set() { chmod 644 "$1"; mv -f "$1" "$W/volumes"; }
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
mq() { $PY "$S/tests/agent/metricsq.py" "$M" "$@"; }

start_vault_double "$S" "$W"
cat >"$W/wrapd.conf" <<CONF
vault_addr = $VAULT_ADDR
volume_table = $W/volumes
status_socket = $SOCK
metrics_listen = 127.0.0.1:0
CONF
chmod 600 "$W/wrapd.conf"
for i in 1 2 3 4; do
	truncate -s 20M "$W/v$i.img"
	"$B/wrapctl" format "$W/v$i.img" >/dev/null || bad "format v$i"
done
printf 'hmet-1 %s\nhmet-2 %s\nhmet-3 %s\nhmet-n %s noauto\n' "$W/v1.img" "$W/v2.img" "$W/v3.img" \
	"$W/v4.img" >"$W/t"
table_set "$W/t"
curl -s -X POST "$VAULT_ADDR/_double/log/clear" >/dev/null   # only the agent's requests from here

# ---- the page, parsed, and its values checked against the double and the agent -----------
start_agent || bad "the agent starts with metrics_listen = 127.0.0.1:0"
check "first pass done (status socket)" $Q wait \
	"s['agent']['ready'] and all(x['state'] in ('open', 'failed') for x in s['volumes'] if not x['noauto'])"
# What the table volumes became on this host: "failed" without dm-crypt, "open" with it.
nfailed=$($Q get | $PY -c 'import json, sys; print(sum(v["state"] == "failed" for v in json.load(sys.stdin)["volumes"]))')
check "the page parses; every family has HELP and TYPE" mq wait \
	"all(f.documentation and f.type in ('counter','gauge','histogram') for f in fams.values()) and text.count('# HELP ') == len(fams) == text.count('# TYPE ')"
check "wrapd_volumes{state} lists every state, 0 included" mq wait \
	"sorted(s.labels['state'] for s in samples('wrapd_volumes')) == sorted(['open','opening','waiting for Vault','failed','closing','closed'])"
check "wrapd_volumes{state=\"failed\"} = the status socket's count ($nfailed)" mq wait \
	"val('wrapd_volumes', state='failed') == $nfailed"
check "wrapd_volumes{state=\"closed\"} = 1 (the noauto line)" mq wait "val('wrapd_volumes', state='closed') == 1"
check "wrapd_volumes sums to the 4 table volumes" mq wait "sum(s.value for s in samples('wrapd_volumes')) == 4"
check "the agent asked Vault for one batched decrypt" mq wait \
	"sum(1 for r in vlog if vop(r['path']) == 'decrypt') == 1"
check "wrapd_vault_requests_total{op=\"decrypt\",code=\"200\"} = the double's log count (1)" mq wait \
	"val('wrapd_vault_requests_total', op='decrypt', code='200') == sum(1 for r in vlog if vop(r['path']) == 'decrypt' and r['status'] == 200) == 1"
check "every (op, code) counter = the double's log, and nothing else is counted" mq wait "
(lambda want: {(s.labels['op'], s.labels['code']): s.value for s in samples('wrapd_vault_requests_total')} == want)(
  {k: float(sum(1 for r in vlog if (vop(r['path']), str(r['status'])) == k)) for k in {(vop(r['path']), str(r['status'])) for r in vlog}})"
check "request duration histogram: one observation per request, per op" mq wait "
all(val('wrapd_vault_request_duration_seconds_count', op=o) == sum(1 for r in vlog if vop(r['path']) == o) for o in {vop(r['path']) for r in vlog})"
check "histogram buckets are cumulative, end in +Inf = _count, _sum > 0" mq wait "
all((lambda b: [x.value for x in b] == sorted(x.value for x in b) and b[-1].labels['le'] == '+Inf'
      and b[-1].value == val('wrapd_vault_request_duration_seconds_count', op=o)
      and val('wrapd_vault_request_duration_seconds_sum', op=o) > 0)(
     sorted(samples('wrapd_vault_request_duration_seconds_bucket', op=o), key=lambda x: float(x.labels['le'])))
    for o in {vop(r['path']) for r in vlog})"
check "wrapd_volume_open_duration_seconds: one observation per volume opened (open count)" mq wait \
	"val('wrapd_volume_open_duration_seconds_count') == val('wrapd_volumes', state='open')"
ver=$("$B/wrapd" -V | awk '{print $2}')
check "wrapd_build_info{version=\"$ver\"} 1" mq wait "val('wrapd_build_info', version='$ver') == 1"
check "Content-Type is the text format 0.0.4" $PY -c "
import urllib.request; r = urllib.request.urlopen('$M/metrics')
assert r.headers['Content-Type'].startswith('text/plain; version=0.0.4'), r.headers['Content-Type']"

# ---- health, readiness, other paths and methods ------------------------------------------
check "/healthz: 200 ok" mq http GET /healthz 200 ok
check "HEAD /metrics: 200" mq http HEAD /metrics 200
check "/nothing: 404" mq http GET /nothing 404
check "POST /metrics: 405" mq http POST /metrics 405
check "DELETE /healthz: 405" mq http DELETE /healthz 405
if [ "$nfailed" -gt 0 ]; then
	check "/readyz: 503 naming a failed volume while $nfailed failed" mq http GET /readyz 503 "failed; hmet-"
fi
grep -v '^hmet-[123] ' "$W/volumes" >"$W/t"; table_set "$W/t"
check "only the noauto line left: /readyz 200" bash -c \
	"for i in \$(seq 300); do $PY $S/tests/agent/metricsq.py $M http GET /readyz 200 ok >/dev/null && exit 0; sleep 0.1; done; exit 1"
check "  ... and wrapd_volumes follows the table without a restart" mq wait \
	"val('wrapd_volumes', state='failed') == 0 and sum(s.value for s in samples('wrapd_volumes')) == 1"
check "  ... and wrapd_ready 1" mq wait "val('wrapd_ready') == 1"

# ---- idle with metrics on: no wake-ups after serving requests ----------------------------
mq page >/dev/null
settled "$agent_pid" || bad "the agent did not settle"
a=$(vcsw "$agent_pid"); sleep 10; b=$(vcsw "$agent_pid")
check "idle with metrics on, after requests: voluntary context switches did not grow over 10 s ($a -> $b)" \
	test "$a" = "$b"
check "stop" stop_agent

# ---- Vault sealed: /readyz 503 says why; 200 once unsealed and nothing failed -------------
printf 'hmet-n %s noauto\nhmet-1 %s\n' "$W/v4.img" "$W/v1.img" >"$W/t"; table_set "$W/t"
$H seal
start_agent -o agent_retry_min=100ms -o agent_retry_max=1s || bad "start (sealed)"
check "sealed: hmet-1 waits for Vault" $Q wait "v['hmet-1']['state'] == 'waiting for Vault'"
check "sealed: /readyz 503 saying Vault is sealed" mq http GET /readyz 503 "sealed"
check "sealed: wrapd_volumes{state=\"waiting for Vault\"} 1, wrapd_vault_up 0" mq wait \
	"val('wrapd_volumes', state='waiting for Vault') == 1 and val('wrapd_vault_up') == 0"
check "sealed: the refused requests are counted with the double's status (503)" mq wait \
	"sum(s.value for s in samples('wrapd_vault_requests_total', code='503')) == sum(1 for r in vlog if r['status'] == 503) >= 1"
$H unseal
check "unsealed: nothing waits for Vault any more, wrapd_vault_up 1" mq wait \
	"val('wrapd_volumes', state='waiting for Vault') == 0 and val('wrapd_vault_up') == 1"
if [ "$nfailed" -gt 0 ]; then  # no dm-crypt: hmet-1 failed; its line goes, and the agent is ready
	grep -v '^hmet-1 ' "$W/volumes" >"$W/t"; table_set "$W/t"
fi
check "unsealed: /readyz 200" bash -c \
	"for i in \$(seq 300); do $PY $S/tests/agent/metricsq.py $M http GET /readyz 200 ok >/dev/null && exit 0; sleep 0.1; done; exit 1"
check "stop (sealed part)" stop_agent

# ---- IPv6, off, bad values, a port in use ---------------------------------------------------
if $PY -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
	start_agent -o 'metrics_listen=[::1]:0' || bad "start on [::1]:0"
	check "[::1]:0: the endpoint is on IPv6 loopback ($M)" bash -c "case '$M' in 'http://[::1]:'*) ;; *) exit 1 ;; esac"
	check "  ... and /healthz answers there" mq http GET /healthz 200 ok
	check "stop (IPv6)" stop_agent
else
	echo "# no IPv6 loopback here: [::1] not tried"
fi
"$B/wrapd" -c "$W/wrapd.conf" -o metrics_listen= >"$W/off.log" 2>&1 &
agent_pid=$!
check "metrics_listen empty: the agent runs without an endpoint" $Q wait "s['agent']['ready']"
check "  ... and says nothing of one" bash -c "! grep -q 'metrics and health on' '$W/off.log'"
check "stop (off)" stop_agent
for bad_value in "localhost:9842" "127.0.0.1" "127.0.0.1:99999" "[::1]9842" "1.2.3.4.5:80"; do
	check_fails "metrics_listen = $bad_value is refused at start" "$B/wrapd" -c "$W/wrapd.conf" -o "metrics_listen=$bad_value"
	cp "$W/out" "$W/err"
	check "  ... in one error line naming the key and the value" bash -c \
		"[ \$(grep -c error '$W/err') = 1 ] && grep -qF 'error: start: metrics_listen = $bad_value: expected' '$W/err'"
done
$PY -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open("'"$W"'/busy.port", "w").write(str(s.getsockname()[1])); time.sleep(120)' &
busy_pid=$!
for _ in $(seq 100); do [ -s "$W/busy.port" ] && break; sleep 0.1; done
port=$(cat "$W/busy.port")
check_fails "a port in use is refused at start" "$B/wrapd" -c "$W/wrapd.conf" -o "metrics_listen=127.0.0.1:$port"
cp "$W/out" "$W/err"
check "  ... in one error line naming the key, the value and why" bash -c \
	"[ \$(grep -c error '$W/err') = 1 ] && grep -q 'error: start: metrics_listen = 127.0.0.1:$port: Address already in use' '$W/err'"
kill "$busy_pid"; wait "$busy_pid" 2>/dev/null

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
