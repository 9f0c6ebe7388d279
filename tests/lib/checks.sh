# shellcheck shell=bash
# Shared by the shell test suites (sourced, not run): TAP-like check helpers
# and the Vault dev-server double. Callers set W, their scratch directory,
# before calling check or check_fails.

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "not ok - $*"; }
# check WHAT CMD...: CMD must succeed; its output is shown when it does not.
check() {
	local what=$1; shift
	if "$@" >"$W/out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/    /' "$W/out"; fi
}
# check_fails WHAT CMD...: CMD must fail; the first lines of its message are shown.
check_fails() {
	local what=$1; shift
	if "$@" >"$W/out" 2>&1; then
		bad "$what (unexpected success)"; sed 's/^/    /' "$W/out"
	else
		ok "$what"; sed 's/^/    # /' "$W/out" | head -3
	fi
}

# shellcheck source=tests/lib/vault-double.sh
. "$(dirname "${BASH_SOURCE[0]}")/vault-double.sh"

# start_vault_double SRCDIR DIR: the double (tests/lib/vault-double.sh) with
# a derived Transit key "wrapd"; sets vault_pid and exports VAULT_ADDR,
# VAULT_TOKEN (root) and VAULT_MAX_RETRIES=0. Exits the test if it fails to start.
start_vault_double() {
	vault_double_start "$1" "$2" vault --root-token root --create-key wrapd 2>&1 ||
		{ echo "not ok - the Vault double did not start"; exit 1; }
	vault_pid=$vault_double_pid
	export VAULT_ADDR="http://127.0.0.1:$vault_double_port" VAULT_TOKEN=root VAULT_MAX_RETRIES=0
}
stop_vault_double() {
	vault_double_stop
	vault_pid=
}
