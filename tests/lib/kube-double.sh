# shellcheck shell=sh
# The one way to start the Kubernetes API-server double (tests/kube-double/)
# from shell: the agent's Kubernetes tests (host and VM guest) and the manifest
# tests. Sourced (POSIX sh or bash), not run.
#
# kube_double_start SRCDIR DIR NAME [ARG...]
#   Starts SRCDIR/tests/kube-double/kube-double on an ephemeral loopback port
#   with a fresh random bearer token in DIR/NAME.token (reread by the double at
#   each request: rewrite it to rotate the token), the request log in
#   DIR/NAME.log (JSON lines), and ARG... appended (--node NAME, --tls-cert C
#   --tls-key K, --bookmark-interval S, --rbac-rules F, --no-controllers ...).
#   Its port lands in DIR/NAME.port, its stdout and stderr in DIR/NAME.out.
#   Waits for the port file (readiness, not timing; bounded at about 60 s, and
#   given up at once if the double exits).
#   With KUBE_DOUBLE_NO_TOKEN=1 no token file is used (no authentication; for
#   kubectl over plain http, which never sends a bearer token there).
#   On success sets kube_double_pid, kube_double_port, kube_double_url
#   (http or https, 127.0.0.1), kube_double_token_file, kube_double_log, adds
#   the pid to kube_double_pids and returns 0. Otherwise prints the double's
#   output to stderr and returns 1; the caller decides how to fail.
#   Python: $WRAPD_PYTHON, else /usr/bin/python3.
# kube_double_ctl METHOD PATH [JSON]
#   Calls the control API of the double started last (/_double/PATH), prints
#   the JSON answer; returns 1 on a non-200. With --tls-cert, set
#   kube_double_ca to the CA file first. Uses curl.
# kube_double_rbac_rules SRCDIR OUT
#   Writes the rules of daemonset/wrapd.yaml's ClusterRole to OUT as JSON, for
#   kube_double_start ... --rbac-rules OUT: the token may then do exactly what
#   the DaemonSet's service account may (403 Forbidden otherwise), so a test
#   of the agent fails when it uses a verb the manifest does not grant.
#   Needs python3-yaml.
# kube_double_stop
#   Stops (and reaps) every double this shell started.

kube_double_pids=

kube_double_start() {
	_kd_src=$1 _kd_dir=$2 _kd_name=$3
	shift 3
	_kd_scheme=http
	for _kd_a in "$@"; do
		[ "$_kd_a" = --tls-cert ] && _kd_scheme=https
	done
	rm -f "$_kd_dir/$_kd_name.port"
	if [ "${KUBE_DOUBLE_NO_TOKEN:-0}" = 1 ]; then
		kube_double_token_file=
		set -- "$@"
	else
		kube_double_token_file=$_kd_dir/$_kd_name.token
		(umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$kube_double_token_file")
		set -- --token-file "$kube_double_token_file" "$@"
	fi
	kube_double_log=$_kd_dir/$_kd_name.log
	"${WRAPD_PYTHON:-/usr/bin/python3}" "$_kd_src/tests/kube-double/kube-double" \
		--listen 127.0.0.1:0 --port-file "$_kd_dir/$_kd_name.port" \
		--log "$kube_double_log" "$@" >"$_kd_dir/$_kd_name.out" 2>&1 &
	kube_double_pid=$!
	kube_double_pids="$kube_double_pids $kube_double_pid"
	_kd_i=0
	while [ ! -s "$_kd_dir/$_kd_name.port" ]; do
		_kd_i=$((_kd_i + 1))
		if [ "$_kd_i" -gt 600 ] || ! kill -0 "$kube_double_pid" 2>/dev/null; then
			echo "the Kubernetes API double ($_kd_name) did not start:" >&2
			cat "$_kd_dir/$_kd_name.out" >&2
			return 1
		fi
		sleep 0.1
	done
	kube_double_port=$(cat "$_kd_dir/$_kd_name.port")
	kube_double_url=$_kd_scheme://127.0.0.1:$kube_double_port
}

kube_double_ctl() {
	_kd_out=$(curl -sS -X "$1" ${kube_double_ca:+--cacert "$kube_double_ca"} \
		-H 'Content-Type: application/json' ${3:+--data "$3"} \
		-w '\n%{http_code}' "$kube_double_url/_double/$2") || return 1
	printf '%s\n' "$_kd_out" | sed '$d'
	[ "$(printf '%s\n' "$_kd_out" | tail -n 1)" = 200 ]
}

kube_double_rbac_rules() {
	"${WRAPD_PYTHON:-/usr/bin/python3}" - "$1/daemonset/wrapd.yaml" "$2" <<'EOF'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
(role,) = [d for d in docs if d["kind"] == "ClusterRole"]
with open(sys.argv[2], "w") as f:
    json.dump(role["rules"], f)
EOF
}

kube_double_stop() {
	for _kd_p in $kube_double_pids; do kill "$_kd_p" 2>/dev/null; done
	for _kd_p in $kube_double_pids; do wait "$_kd_p" 2>/dev/null; done
	kube_double_pids=
	return 0
}
