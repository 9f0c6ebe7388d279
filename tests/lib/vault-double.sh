# shellcheck shell=sh
# The one way to start the Vault dev-server double (tests/vault-double/) from
# shell: the test suites (host and VM guest), bench/ and scripts/demo-flow.
# Sourced (POSIX sh or bash), not run.
#
# vault_double_start SRCDIR DIR NAME [ARG...]
#   Starts SRCDIR/tests/vault-double/vault-double in dev mode on an ephemeral
#   loopback port, with ARG... appended (--root-token, --create-key, TLS and
#   redirect options...). Its port lands in DIR/NAME.port, its stdout and
#   stderr in DIR/NAME.out. Waits for the port file (readiness, not timing;
#   bounded at about 60 s, and given up at once if the double exits).
#   On success: sets vault_double_pid and vault_double_port, adds the pid to
#   vault_double_pids, returns 0. Otherwise prints the double's output to
#   stderr and returns 1; the caller decides how to fail.
#   Python: $WRAPD_PYTHON, else /usr/bin/python3.
# vault_double_stop
#   Stops (and reaps) every double this shell started.

vault_double_pids=

vault_double_start() {
	_vd_src=$1 _vd_dir=$2 _vd_name=$3
	shift 3
	# A port file left from an earlier double in this folder would be taken as ready.
	rm -f "$_vd_dir/$_vd_name.port"
	"${WRAPD_PYTHON:-/usr/bin/python3}" "$_vd_src/tests/vault-double/vault-double" --dev \
		--listen 127.0.0.1:0 --port-file "$_vd_dir/$_vd_name.port" "$@" \
		>"$_vd_dir/$_vd_name.out" 2>&1 &
	vault_double_pid=$!
	vault_double_pids="$vault_double_pids $vault_double_pid"
	_vd_i=0
	while [ ! -s "$_vd_dir/$_vd_name.port" ]; do
		_vd_i=$((_vd_i + 1))
		if [ "$_vd_i" -gt 600 ] || ! kill -0 "$vault_double_pid" 2>/dev/null; then
			echo "the Vault double ($_vd_name) did not start:" >&2
			cat "$_vd_dir/$_vd_name.out" >&2
			return 1
		fi
		sleep 0.1
	done
	vault_double_port=$(cat "$_vd_dir/$_vd_name.port")
}

vault_double_stop() {
	for _vd_p in $vault_double_pids; do kill "$_vd_p" 2>/dev/null; done
	for _vd_p in $vault_double_pids; do wait "$_vd_p" 2>/dev/null; done
	vault_double_pids=
	return 0
}
