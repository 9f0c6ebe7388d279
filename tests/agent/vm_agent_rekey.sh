#!/bin/bash
# The agent resumes an interrupted online rekey (issue 13's agent part), on a
# real dm-crypt kernel (tests/vm/run-kernel-tests), against the Vault double.
#
# A volume of 96 MiB of data (24 zones of 4 MiB, the default) is open; `wrapctl rekey` is
# SIGKILLed deterministically (its stdout a full pipe: frozen writing its
# first progress line, in the middle of the first zone; its guardian repairs).
# Then the agent starts while the test holds the header lock (shared): its
# resume waits on it, so the rekey in progress (a ratio strictly between 0 and
# 1, from the header's checkpoint) is seen in the status, in
# wrapd_rekey_progress_ratio and in `wrapctl status` however slow the machine.
# The lock released, the resume runs at rekey_max_rate = 1 MiB/s (a 4 s pause
# after each zone); once its own progress shows, SIGTERM: the agent exits at a
# checkpoint (done = the next zone's start), the mapping serves the same
# bytes, the header still holds the rekey. The volume is then closed in the
# middle; a second start (no rate limit) opens it with both keys in one Vault
# request and finishes the rekey: no rekey in the status, no metric, one
# target, the same bytes.
# Also the kernel view of the split table (`wrapctl status --kernel`): the
# whole size, both keys, the header's checkpoint.
#
# usage: vm_agent_rekey.sh SRCDIR BUILDDIR
set -u
S=${1:?srcdir}
B=${2:?builddir}
export PATH="$B:$PATH:/sbin:/usr/sbin"
W=$(mktemp -d /tmp/wrapd-ark.XXXXXX)
SOCK=$W/run/wrapd.sock
PORT=19843
Q="/usr/bin/python3 $S/tests/agent/agentq.py $SOCK"
M="/usr/bin/python3 $S/tests/agent/metricsq.py http://127.0.0.1:$PORT"
CH="/usr/bin/python3 $S/tests/engine/convhelper.py"
. "$S/tests/lib/checks.sh"
agent_pid= L=
t0=$SECONDS

cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null
	[ -n "$L" ] && flock -s "/run/cryptsetup/L_$(lsblk -dno MAJ:MIN "$L" | tr -d ' ')" true
	for n in $(dmsetup ls 2>/dev/null | awk '{print $1}'); do
		case $n in ark-*|wrapd-zone-*) dmsetup resume "$n" 2>/dev/null; dmsetup remove "$n" 2>/dev/null ;; esac
	done
	[ -n "$L" ] && losetup -d "$L" 2>/dev/null
	stop_vault_double
	rm -rf "$W"
}
trap cleanup EXIT

start_agent() {
	wrapd -c "$W/wrapd.conf" "$@" >>"$W/agent.log" 2>&1 9>&- &
	agent_pid=$!
}
# stop_agent: SIGTERM; prints the seconds it took to exit; status = wrapd's.
stop_agent() {
	local s=$SECONDS
	kill -TERM "$agent_pid"
	for _ in $(seq 900); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$agent_pid" 2>/dev/null && kill -KILL "$agent_pid"
	wait "$agent_pid"; local rc=$?
	agent_pid=
	echo $((SECONDS - s)) >"$W/stop.secs"
	return $rc
}
# decrypts [FROM]: the batch sizes of the double's decrypt requests (from the FROM-th), or
# without FROM how many there were.
decrypts() {
	/usr/bin/python3 -c "
import json, sys, urllib.request
ds = [r for r in json.loads(urllib.request.urlopen('$VAULT_ADDR/_double/log').read())['requests']
      if r['path'].endswith('/transit/decrypt/wrapd')]
if len(sys.argv) > 1:
    print(' '.join(str(r.get('batch_size') or 1) for r in ds[int(sys.argv[1]):]))
else:
    print(len(ds))" "$@"
}
kstatus() { wrapctl -c "$W/wrapd.conf" status --kernel --json ark-vol; }
kfield() { kstatus | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin)[0]; print(eval(sys.argv[1]))" "$1"; }
in_progress() { wrapctl inspect "$L" 2>/dev/null | grep -q 'Conversion: *IN PROGRESS'; }
not_suspended() { ! dmsetup info -c --noheadings -o attr ark-vol | grep -q s; }
RK="(v.get('ark-vol', {}).get('rekey') or {})"

ip link set lo up 2>/dev/null || true
modprobe dm-crypt 2>/dev/null || true
modprobe loop 2>/dev/null || true
start_vault_double "$S" "$W"
mkdir -p "$W/run"
cat >"$W/wrapd.conf" <<EOF
vault_addr = $VAULT_ADDR
volume_table = $W/volumes
status_socket = $SOCK
metrics_listen = 127.0.0.1:$PORT
rekey_max_rate = 1
EOF
chmod 600 "$W/wrapd.conf"

# 16 MiB of header + 96 MiB of data: 24 zones of 4 MiB (the default zone size).
truncate -s 112M "$W/v.img"
L=$(losetup -f --show "$W/v.img")
lock=/run/cryptsetup/L_$(lsblk -dno MAJ:MIN "$L" | tr -d ' ')
check "wrapctl format" wrapctl format "$L" --force
U=$(wrapctl inspect "$L" | awk '/^UUID:/ {print $2}')
check "wrapctl open" wrapctl open "$L" ark-vol
dd if=/dev/urandom of=/dev/mapper/ark-vol bs=1M count=3 seek=5 oflag=direct status=none
dd if=/dev/urandom of=/dev/mapper/ark-vol bs=1M count=3 seek=50 oflag=direct status=none
sum0=$(sha256sum </dev/mapper/ark-vol | cut -d' ' -f1)
echo "ark-vol $L" >"$W/volumes"; chmod 644 "$W/volumes"

# ---- wrapctl rekey killed in its first zone -----------------------------------------
$CH interrupt SIGKILL wrapctl rekey "$L" --json >"$W/int.out" 2>"$W/int.err"
grep -q "blocked writing progress; SIGKILL sent" "$W/int.err" &&
	ok "wrapctl rekey SIGKILLed while frozen on its first progress line" ||
	{ bad "the interruption"; sed 's/^/    /' "$W/int.err"; }
flock -s "$lock" true   # its guardian has made the mapping consistent
check "the rekey is in progress" in_progress
check "the mapping is not suspended" not_suspended
check "the mapping reads the same bytes" test "$(sha256sum </dev/mapper/ark-vol | cut -d' ' -f1)" = "$sum0"
dmsetup table ark-vol | sed 's/^/    table: /'
# The kernel view of the split table (volume_status_list).
check "status --kernel: the whole size (96 MiB, every target)" test "$(kfield "d['size']")" = $((96 << 20))
check "status --kernel: a rekey in progress, from the header's checkpoint" \
	test "$(kfield "d['rekey']['in_progress'] and d['rekey']['source']")" = header
check "status --kernel: online, split table ($(kfield "d['targets']") targets)" \
	test "$(kfield "d['rekey']['online'] and d['targets'] >= 2")" = True
check "status --kernel: the old key's reference" \
	test "$(kfield "(d['rekey']['key_ref_old'] or '').startswith(':64:logon:wrapd:$U-d')")" = True
wrapctl -c "$W/wrapd.conf" status --kernel ark-vol >"$W/kst.out"
check "status --kernel (text): 'rekey: IN PROGRESS (online)'" grep -q "rekey: *IN PROGRESS (online)" "$W/kst.out"
sed -n '/key:/p;/size:/p;/rekey:/p;/table:/p' "$W/kst.out" | sed 's/^/    /'
done0=$(kfield "d['rekey']['done']")

# ---- the agent resumes it --------------------------------------------------------------
# The test holds the header lock (shared, as a reader): the agent's resume waits for
# it, so what the agent shows before the rekey moves stays there while the test looks.
exec 9<>"$lock"
flock -s 9
start_agent
check "agent: the volume is open (adopted) with its rekey being resumed" $Q wait \
	"v.get('ark-vol', {}).get('state') == 'open' and $RK.get('running') is True" 300
check "agent status: a ratio strictly between 0 and 1 (the header's checkpoint)" $Q wait \
	"0 < $RK.get('ratio', 0) < 1 and $RK.get('source') == 'header'" 60
check "metric: 0 < wrapd_rekey_progress_ratio{volume=ark-vol} < 1" $M wait \
	"0 < (val('wrapd_rekey_progress_ratio', volume='ark-vol') or 0) < 1 and 'present only while a rekey is in progress' in text" 120
wrapctl -c "$W/wrapd.conf" status >"$W/st.out" 2>&1
check "wrapctl status (the agent's view) shows the rekey" grep -q "rekey: .*being resumed by the agent" "$W/st.out"
grep "rekey:" "$W/st.out" | sed 's/^/    /'
check "log: one line at the start (volume, from where)" grep -q "ark-vol.*resuming the online rekey from" "$W/agent.log"
check "the mapping serves while the agent rekeys" not_suspended
flock -u 9; exec 9>&-
# Now it moves, at 1 MiB/s: 4 MiB zones, each followed by a 4 s pause (about 90 s of run).
check "the resume moves (its own progress), not finished" $Q wait \
	"$RK.get('source') == 'resume' and 0 < $RK.get('ratio', 0) < 1 and $RK.get('running') is True" 300
echo "    ($((SECONDS - t0)) s)"

# ---- SIGTERM in the middle: stops at a checkpoint, the mapping serves ---------------------
check "SIGTERM: the agent exits with status 0" stop_agent
check "  ... quickly ($(cat "$W/stop.secs") s; at most one zone)" test "$(cat "$W/stop.secs")" -le 30
check "  ... the log says it stopped at a checkpoint" grep -q "stopped at a checkpoint" "$W/agent.log"
flock -s "$lock" true
check "  ... the rekey is still in progress (a checkpoint)" in_progress
done1=$(kfield "d['rekey']['done']")
check "  ... the checkpoint moved ($done0 -> $done1 of $((96 << 20)))" test "$done1" -gt "$done0" -a "$done1" -lt $((96 << 20))
check "  ... the mapping is not suspended" not_suspended
check "  ... and reads the same bytes" test "$(sha256sum </dev/mapper/ark-vol | cut -d' ' -f1)" = "$sum0"
check "  ... no zone device held" bash -c "! dmsetup info -c --noheadings -o attr wrapd-zone-$U 2>/dev/null | grep -q s"

# ---- closed in the middle; a second start opens it (both keys, one Vault request) and
# ---- finishes it
check "wrapctl close in the middle of the rekey" wrapctl close ark-vol
d0=$(decrypts)
start_agent -o rekey_max_rate=0
check "restart: the agent finishes the rekey" $Q wait \
	"v.get('ark-vol', {}).get('state') == 'open' and v['ark-vol']['rekey'] is None and 'finished' in open('$W/agent.log').read()" 180
check "metric: wrapd_rekey_progress_ratio{volume=ark-vol} is gone (its HELP says when it is there)" $M wait \
	"val('wrapd_rekey_progress_ratio', volume='ark-vol') is None and val('wrapd_volumes', state='open') == 1 and 'present only while a rekey is in progress' in text" 60
check "the open in the middle asked Vault for both keys in ONE request (decrypt batch sizes since: $(decrypts $d0))" \
	test "$(decrypts $d0 | cut -d' ' -f1)" = 2
check "log: opened in the middle (split table)" grep -q "ark-vol.*opened as /dev/mapper/ark-vol in the middle of an online rekey" "$W/agent.log"
check "log: one line at the end (throughput)" grep -q "ark-vol.*online rekey finished: .* MiB/s" "$W/agent.log"
grep -E "rekey|stopp" "$W/agent.log" | sed 's/^/    log: /'
check "no conversion left in the header" bash -c "wrapctl inspect $L | grep -q 'Conversion: *none'"
tbl=$(dmsetup table ark-vol)
[ "$(echo "$tbl" | wc -l)" = 1 ] && case $tbl in *":logon:wrapd:$U"*) true ;; *) false ;; esac &&
	ok "dmsetup table: one target, one key ($tbl)" || bad "dmsetup table: $tbl"
check "the zone device is gone" bash -c "! dmsetup info wrapd-zone-$U >/dev/null 2>&1"
check "the data verifies (same bytes through the new key)" \
	test "$(sha256sum </dev/mapper/ark-vol | cut -d' ' -f1)" = "$sum0"
check "status --kernel: no rekey, one target" test "$(kfield "d['rekey'] is None and d['targets']")" = 1
check "stop" stop_agent
check "wrapctl close" wrapctl close ark-vol
check "no key left in /proc/keys" bash -c "! grep -q 'wrapd:' /proc/keys"
echo "vm_agent_rekey: $((SECONDS - t0)) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
