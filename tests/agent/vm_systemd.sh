#!/bin/bash
# vm: systemd
# The wrapd unit (systemd/wrapd.service) under real systemd as PID 1, in the
# dm-crypt VM (run-kernel-tests boots a VM of its own with vm-run --systemd
# for tests marked "# vm: systemd" above), against the Vault double:
# systemctl start returns after READY=1 with the table's volumes open,
# StatusText, /metrics on loopback, open and close under the hardening (and
# dm-crypt autoloaded under ProtectKernelModules=), reload, stop leaves the
# mappings, start/restart/a crash adopt them with no decrypt, the watchdog,
# idle wake-ups, systemd-analyze verify and security.
#
# usage: vm_systemd.sh SRCDIR BUILDDIR
set -u
S=${1:?srcdir}
B=${2:?builddir}
export PATH="$B:$PATH"
PY=/usr/bin/python3
H="$PY $S/tests/lib/vhelper.py"
W=$(mktemp -d /tmp/wrapd-ksd.XXXXXX)
. "$S/tests/lib/checks.sh"
U=/etc/systemd/system

[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] || {
	echo "SKIP: needs systemd as PID 1 (tests/vm/run-kernel-tests boots it for tests marked '# vm: systemd')"
	exit 77
}

loops=()
cleanup() {
	set +e
	systemctl stop wrapd 2>/dev/null
	journalctl -u wrapd --no-pager -o short-monotonic >"${WRAPD_VM_OUT:-$W}/vm_systemd.journal" 2>&1
	dmesg | tail -n 30 >>"${WRAPD_VM_OUT:-$W}/vm_systemd.journal"
	for n in $(dmsetup ls 2>/dev/null | awk '{print $1}'); do
		case $n in ksd-*) dmsetup remove "$n" 2>/dev/null ;; esac
	done
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
	stop_vault_double
	rm -rf "$W" /var/lib/wrapd-test
}
trap cleanup EXIT

mainpid() { systemctl show -p MainPID --value wrapd; }
prop() { systemctl show -p "$1" --value wrapd; }
ndecrypt() { $H count-decrypt | cut -d' ' -f1; }
n_mapped() { dmsetup ls 2>/dev/null | grep -c '^ksd-'; }
mapped() { dmsetup table "$1" 2>/dev/null | grep -q ' crypt '; }
Q="$PY $S/tests/agent/agentq.py /run/wrapd/wrapd.sock"
mq() { $PY "$S/tests/agent/metricsq.py" http://127.0.0.1:9842 "$@"; }
table_set() { chmod 644 "$1"; mv -f "$1" /etc/wrapd/volumes; }
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
# until SECONDS CMD...: CMD succeeds within SECONDS (polls; never an assertion by itself)
until_ok() { local n=$(($1 * 10)); shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; "$@"; }

ip link set lo up 2>/dev/null || true
start_vault_double "$S" "$W"

# ---- the unit, installed as a package would, with ExecStart on the build's wrapd ----------
# PrivateTmp= hides the build tree when it is under /tmp: the binary is copied out.
install -m 0755 "$B/wrapd" /usr/local/sbin/wrapd
sed 's|^ExecStart=/usr/sbin/wrapd |ExecStart=/usr/local/sbin/wrapd |' "$S/systemd/wrapd.service" >$U/wrapd.service
mkdir -p $U/wrapd.service.d /etc/wrapd /var/lib/wrapd-test
{
	echo "[Service]"
	echo "# a file-backed volume: its image directory made writable, as README says"
	echo "ReadWritePaths=/var/lib/wrapd-test"
	# LeakSanitizer's exit-time check stops threads with ptrace, which the
	# unit's ~@debug filter refuses: a sanitizer build runs without it here.
	if ldd /usr/local/sbin/wrapd | grep -q libasan; then
		echo "Environment=ASAN_OPTIONS=detect_leaks=0"
	fi
} >$U/wrapd.service.d/test.conf
systemctl daemon-reload
check "systemd-analyze verify: the unit is clean" bash -c \
	"out=\$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no $U/wrapd.service 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
systemd-analyze security wrapd.service >"$W/security" 2>&1
score=$(sed -n 's/.*Overall exposure level for wrapd.service: \([0-9.]*\).*/\1/p' "$W/security")
echo "# systemd-analyze security wrapd.service: overall exposure $score"
check "systemd-analyze security: exposure at most 3.0 ($score)" \
	awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 3.0) }'

# ---- volumes: five on loop devices, one file-backed, one noauto -------------------------
echo "vault_addr = $VAULT_ADDR" >/etc/wrapd/wrapd.conf
echo "vault_token_file = /etc/wrapd/token" >>/etc/wrapd/wrapd.conf
echo root >/etc/wrapd/token
chmod 600 /etc/wrapd/wrapd.conf /etc/wrapd/token
: >"$W/t"
for i in 1 2 3 7 8; do
	truncate -s 20M "$W/v$i.img"
	l=$(losetup -f --show "$W/v$i.img") || bad "losetup v$i"
	loops+=("$l")
	eval "dev$i=$l"
	wrapctl format "$l" >/dev/null || bad "format $l"
done
truncate -s 20M /var/lib/wrapd-test/v4.img
wrapctl format /var/lib/wrapd-test/v4.img >/dev/null || bad "format v4.img"
# shellcheck disable=SC2154
printf 'ksd-1 %s\nksd-2 %s\nksd-3 %s\nksd-4 %s\nksd-n %s noauto\n' \
	"$dev1" "$dev2" "$dev3" /var/lib/wrapd-test/v4.img "$dev7" >"$W/t"
table_set "$W/t"
# dm-crypt is loaded at boot; unloaded, the table load must autoload it under
# ProtectKernelModules= (the kernel runs its own modprobe).
rmmod dm_crypt 2>/dev/null
check "dm_crypt is not loaded before the start" bash -c "! grep -q '^dm_crypt ' /proc/modules"

# ---- start: returns after READY=1, with the volumes open ------------------------------
d0=$(ndecrypt)
check "systemctl start wrapd" timeout 120 systemctl start wrapd
n=$(n_mapped)
check "  ... returned with the 4 auto volumes already open ($n ksd- mappings right after)" test "$n" = 4
check_fails "  ... the noauto volume is not" mapped ksd-n
check "  ... dm_crypt was autoloaded under ProtectKernelModules=" grep -q '^dm_crypt ' /proc/modules
check "  ... active (running), Type=notify ($(prop ActiveState) $(prop SubState) $(prop Type))" \
	test "$(prop ActiveState) $(prop SubState) $(prop Type)" = "active running notify"
check "StatusText is the summary: '4 open, 1 closed' ($(prop StatusText))" test "$(prop StatusText)" = "4 open, 1 closed"
read -r d1 bs < <($H count-decrypt)
check "one batched decrypt ($((d1 - d0)), batch of $bs)" test "$((d1 - d0))" = 1 -a "$bs" = 4
check "the file-backed volume opened through the drop-in's ReadWritePaths" mapped ksd-4
check "/metrics on loopback: wrapd_volumes{state=\"open\"} 4, decrypt 200 = the double's log" mq wait \
	"val('wrapd_volumes', state='open') == 4 and val('wrapd_vault_requests_total', op='decrypt', code='200') == sum(1 for r in vlog if vop(r['path']) == 'decrypt' and r['status'] == 200) == 1"
check "/readyz 200" mq http GET /readyz 200 ok
check "status socket /run/wrapd/wrapd.sock (RuntimeDirectory=)" $Q wait "s['agent']['ready']"
pid=$(mainpid)
settled "$pid" || bad "the agent did not settle"
a=$(vcsw "$pid"); sleep 10; b=$(vcsw "$pid")
check "idle under systemd (no WatchdogSec): voluntary context switches did not grow over 10 s ($a -> $b)" test "$a" = "$b"

# ---- open and close under the hardening --------------------------------------------------
cp /etc/wrapd/volumes "$W/t"; echo "ksd-8 $dev8" >>"$W/t"; table_set "$W/t"
check "a line added: opened (under the unit)" until_ok 120 mapped ksd-8
check "  ... with one more decrypt" test "$(ndecrypt)" = "$((d1 + 1))"
check "  ... StatusText follows: '5 open, 1 closed'" until_ok 30 test "$(prop StatusText)" = "5 open, 1 closed"
grep -v '^ksd-3 ' /etc/wrapd/volumes >"$W/t"; table_set "$W/t"
check "a line removed: closed (under the unit)" until_ok 120 bash -c "! dmsetup info ksd-3 >/dev/null 2>&1"
check "systemctl reload wrapd (SIGHUP)" timeout 120 systemctl reload wrapd
check "  ... still active, same pid" bash -c "[ \"\$(systemctl show -p ActiveState --value wrapd)\" = active ] && [ \"\$(systemctl show -p MainPID --value wrapd)\" = $pid ]"
check "  ... the agent reread its config" until_ok 30 bash -c "journalctl -u wrapd --no-pager | grep -q SIGHUP"

# ---- stop leaves the mappings; start, restart and a crash adopt them with no decrypt -----
d2=$(ndecrypt)
check "systemctl stop wrapd" timeout 120 systemctl stop wrapd
check "  ... inactive, result success ($(prop ActiveState) $(prop Result))" \
	test "$(prop ActiveState) $(prop Result)" = "inactive success"
check "  ... every mapping still open (4)" test "$(n_mapped)" = 4
check "systemctl start wrapd again" timeout 120 systemctl start wrapd
check "  ... adopted all 4 with NO decrypt" test "$(ndecrypt)" = "$d2"
check "  ... status: adopted" $Q wait "all(v['ksd-%d' % i].get('adopted') for i in (1, 2, 4, 8))"
p1=$(mainpid)
check "systemctl restart wrapd" timeout 120 systemctl restart wrapd
check "  ... a new process ($p1 -> $(mainpid)), NO decrypt" bash -c "[ $(mainpid) != $p1 ] && [ $(ndecrypt) = $d2 ]"
check "  ... 4 mappings" test "$(n_mapped)" = 4
p2=$(mainpid); r0=$(prop NRestarts)
kill -KILL "$p2"
check "a crash (SIGKILL): Restart=always starts it again" until_ok 60 bash -c \
	"[ \"\$(systemctl show -p NRestarts --value wrapd)\" -gt $r0 ] && [ \"\$(systemctl show -p ActiveState --value wrapd)\" = active ]"
check "  ... and it adopts with NO decrypt" test "$(ndecrypt)" = "$d2"
check "  ... StatusText '4 open, 1 closed'" until_ok 30 test "$(prop StatusText)" = "4 open, 1 closed"

# ---- the watchdog: WATCHDOG=1 every WatchdogSec/2, only when asked --------------------------
printf '[Service]\nWatchdogSec=10s\n' >$U/wrapd.service.d/watchdog.conf
systemctl daemon-reload
check "WatchdogSec=10s: restart" timeout 120 systemctl restart wrapd
pw=$(mainpid); rw=$(prop NRestarts)
check "  ... the agent says it keeps the watchdog" until_ok 30 bash -c \
	"journalctl -u wrapd --no-pager | grep -q 'systemd watchdog: a keep-alive every 5000 ms'"
# 10 s, not less: a loaded TCG guest can starve a process for seconds
sleep 22
check "  ... 22 s later (> 2 x WatchdogSec) the same process, not restarted by the watchdog" bash -c \
	"[ $(mainpid) = $pw ] && [ $(prop NRestarts) = $rw ] && [ $(prop ActiveState) = active ]"
rm $U/wrapd.service.d/watchdog.conf
systemctl daemon-reload
check "stop" timeout 120 systemctl stop wrapd
check "  ... result success" bash -c \
	"[ \"\$(systemctl show -p Result --value wrapd)\" = success ]"
check "mappings still open after the last stop (4)" test "$(n_mapped)" = 4

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
