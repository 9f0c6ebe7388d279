#!/bin/sh
# The Vault client against the Vault double, over real HTTP and HTTPS.
#
# Starts two doubles on ephemeral loopback ports with a fresh test CA:
#   D1: HTTPS, with an HTTPS redirect listener (a followed 307)
#   D2: HTTPS, with a plain-HTTP redirect listener (an https->http 307 that
#       must be refused; the HTTP listener also serves the plain-HTTP tests)
# then runs tests/vault/host_vault_client and checks `wrapctl vault status`.
# Missing python3 or python3-cryptography is a FAILURE, never a skip.
set -u

srcdir=${srcdir:-$(dirname "$0")/../..}
builddir=$(pwd)
double="$srcdir/tests/vault-double/vault-double"
mkca="$srcdir/tests/vault-double/make-test-ca"
. "$srcdir/tests/lib/vault-double.sh"
PY=/usr/bin/python3

fail() { echo "host_vault_client.sh: FAIL: $*" >&2; exit 1; }

[ -x "$PY" ] || fail "$PY not found: the Vault double needs it (apt-get install python3 python3-cryptography)"
"$PY" -c 'import cryptography' 2>/dev/null ||
	fail "python3-cryptography is missing: the Vault double needs it (apt-get install python3-cryptography)"
command -v openssl >/dev/null || fail "openssl CLI not found: make-test-ca needs it (apt-get install openssl)"
[ -f "$double" ] || fail "$double not found"
[ -x "$builddir/tests/vault/host_vault_client" ] || fail "$builddir/tests/vault/host_vault_client not built"
[ -x "$builddir/wrapctl" ] || fail "$builddir/wrapctl not built"

T=$(mktemp -d /tmp/wrapd-vault-test.XXXXXX) || fail "mktemp"
cleanup() {
	vault_double_stop
	if [ "${keep:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap "exit 1" HUP INT TERM PIPE

"$mkca" "$T/ca" >"$T/mkca.log" 2>&1 || { cat "$T/mkca.log" >&2; fail "make-test-ca failed"; }

# start NAME EXTRA-ARGS...: starts a double (tests/lib/vault-double.sh), waits
# (bounded) for its port file; the redirect listener's port is in NAME.rport.
start() {
	name=$1; shift
	vault_double_start "$srcdir" "$T" "$name" \
		--tls-cert "$T/ca/server.crt" --tls-key "$T/ca/server.key" \
		--redirect-listen 127.0.0.1:0 --redirect-port-file "$T/$name.rport" \
		--root-token root-token-for-tests --create-key wrapd --create-key plain:nonderived \
		--log "$T/$name.log" "$@" || fail "the Vault double $name did not start"
}
start d1 --redirect-tls
start d2

export VT_D1="https://127.0.0.1:$(cat "$T/d1.port")"
export VT_D1_REDIRECT="https://127.0.0.1:$(cat "$T/d1.rport")"
export VT_D2="https://127.0.0.1:$(cat "$T/d2.port")"
export VT_D2_HTTP="http://127.0.0.1:$(cat "$T/d2.rport")"
export VT_CA="$T/ca/ca.crt"
export VT_OTHER_CA="$T/ca/other-ca.crt"
export VT_ROOT=root-token-for-tests
export VT_TMP="$T"
# The client must not pick up the caller's Vault settings.
unset VAULT_ADDR VAULT_TOKEN VAULT_NAMESPACE VAULT_CACERT VAULT_CAPATH VAULT_CLIENT_CERT \
	VAULT_CLIENT_KEY VAULT_SKIP_VERIFY VAULT_TLS_SERVER_NAME VAULT_CLIENT_TIMEOUT VAULT_MAX_RETRIES

rc=0
"$builddir/tests/vault/host_vault_client" || rc=1
# Where the acceptance note's sequences come from.
for f in retry-sequence relogin-sequence; do
	[ -f "$T/$f.txt" ] && { echo "--- $f"; cat "$T/$f.txt"; }
done

# ---- wrapctl vault status against D2 (its key was never rotated) ----
wrapctl="$builddir/wrapctl"
check() { # description, command output file, pattern
	if ! grep -q -- "$3" "$2"; then
		echo "--- output:" >&2; cat "$2" >&2
		echo "host_vault_client.sh: FAIL: $1: no '$3'" >&2
		rc=1
	else
		echo "ok: $1"
	fi
}
printf 'vault_addr = %s\nvault_cacert = %s\n' "$VT_D2" "$VT_CA" >"$T/wrapd.conf"
VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" vault status >"$T/st.out" 2>&1
st=$?
[ $st = 0 ] || { cat "$T/st.out" >&2; echo "host_vault_client.sh: FAIL: wrapctl vault status exited $st" >&2; rc=1; }
check "status: server" "$T/st.out" "^  sealed: *no"
check "status: version" "$T/st.out" "^  version: *1.15.0-double"
check "status: token" "$T/st.out" "^  display name: *root"
check "status: policies" "$T/st.out" "^  policies: *root"
check "status: ttl" "$T/st.out" "^  ttl: *never expires"
check "status: key" "$T/st.out" "^  key: *transit/keys/wrapd"
check "status: derived" "$T/st.out" "^  derived: *yes"
check "status: versions" "$T/st.out" "^  latest version: *1"
check "status: min decryption" "$T/st.out" "^  min decryption version: *1"

VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" vault status --json >"$T/st.json" 2>"$T/st.err" ||
	{ cat "$T/st.err" >&2; echo "host_vault_client.sh: FAIL: wrapctl vault status --json" >&2; rc=1; }
"$PY" - "$T/st.json" <<'EOF' || rc=1
import json, sys
d = json.load(open(sys.argv[1]))
assert d["server"]["sealed"] is False and d["server"]["version"] == "1.15.0-double", d
assert d["server"]["standby"] is False, d
assert d["token"]["display_name"] == "root" and d["token"]["policies"] == ["root"], d
assert d["key"] == {"mount": "transit", "name": "wrapd", "exists": True, "derived": True,
                    "type": "aes256-gcm96", "latest_version": 1, "min_decryption_version": 1}, d["key"]
print("ok: status --json")
EOF

# A non-derived key is reported as such, and the command fails.
VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" vault status --vault-key plain >"$T/st2.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: status with a non-derived key succeeded" >&2; rc=1; }
check "status: non-derived" "$T/st2.out" "^  derived: *NO"
# A missing key, chosen with the global option before the command.
VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" --vault-key nokey vault status >"$T/st3.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: status with a missing key succeeded" >&2; rc=1; }
check "status: missing key" "$T/st3.out" "^  exists: *NO"
# A bad config line is reported with file and line.
printf 'vault_addr = %s\nvault_kye = x\n' "$VT_D2" >"$T/bad.conf"
"$wrapctl" --config "$T/bad.conf" vault status >"$T/st4.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: a bad config was accepted" >&2; rc=1; }
check "status: bad config" "$T/st4.out" "bad.conf:2: unknown key 'vault_kye'"
# One wrapd.conf for every module: the volume module's key is accepted by
# the Vault commands and used by the table commands (an empty table here).
printf 'vault_addr = %s\nvault_cacert = %s\nvolume_table = %s\n' "$VT_D2" "$VT_CA" "$T/vt" >"$T/shared.conf"
: >"$T/vt"
VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/shared.conf" vault status >"$T/st6.out" 2>&1 ||
	{ cat "$T/st6.out" >&2; echo "host_vault_client.sh: FAIL: volume_table refused by vault status" >&2; rc=1; }
rm -f "$T/vt"
"$wrapctl" --config "$T/shared.conf" close --all >"$T/st7.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: close --all with a missing configured table succeeded" >&2; rc=1; }
check "close --all reads volume_table" "$T/st7.out" "$T/vt"
printf 'volume_table = rel/tab\n' >"$T/bad2.conf"
"$wrapctl" --config "$T/bad2.conf" close --all >"$T/st8.out" 2>&1
check "volume_table is checked" "$T/st8.out" "bad2.conf:1: volume_table: 'rel/tab' is not an absolute path"
# A config that others can write is refused, with the fix (issue 10 item 7).
chmod g+w "$T/wrapd.conf"
VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" vault status >"$T/st9.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: a group-writable config was accepted" >&2; rc=1; }
check "group-writable config refused" "$T/st9.out" "wrapd.conf: is group-writable; .*run 'chown root:root $T/wrapd.conf && chmod go-w $T/wrapd.conf'"
chmod go-w "$T/wrapd.conf"
# StrictModes covers the directories above wrapd.conf and the TLS files
# (issue 10, weak points left by session 2).
mkdir -p "$T/open"
cp "$T/wrapd.conf" "$T/open/wrapd.conf"
chmod 0777 "$T/open"
VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/open/wrapd.conf" vault status >"$T/st11.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: a config in a world-writable directory was accepted" >&2; rc=1; }
check "config in a world-writable directory refused" "$T/st11.out" "wrapd.conf: its directory $T/open is world-writable.*chmod go-w $T/open"
cp "$VT_CA" "$T/ca-gw.crt"
chmod g+w "$T/ca-gw.crt"
VAULT_CACERT=$T/ca-gw.crt VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" vault status >"$T/st12.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: a group-writable CA file was accepted" >&2; rc=1; }
check "group-writable CA file refused" "$T/st12.out" "vault: vault_cacert: $T/ca-gw.crt: is group-writable"
cp "$VT_CA" "$T/open/ca.crt"
chmod 0644 "$T/open/ca.crt"
VAULT_CACERT=$T/open/ca.crt VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" vault status >"$T/st13.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: a CA file in a world-writable directory was accepted" >&2; rc=1; }
check "CA file in a world-writable directory refused" "$T/st13.out" "vault: vault_cacert: $T/open/ca.crt: its directory $T/open is world-writable"
printf 'x' >"$T/open/client.key"
chmod 0600 "$T/open/client.key"
VAULT_CLIENT_CERT=$VT_CA VAULT_CLIENT_KEY=$T/open/client.key VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" vault status >"$T/st14.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: a client key in a world-writable directory was accepted" >&2; rc=1; }
check "client key in a world-writable directory refused" "$T/st14.out" "vault: vault_client_key: $T/open/client.key: its directory $T/open is world-writable"
chmod 0755 "$T/open"
# -q (errors only) does not hide that TLS verification is off (issue 10 item 8).
VAULT_SKIP_VERIFY=true VAULT_TOKEN=$VT_ROOT "$wrapctl" -q --config "$T/wrapd.conf" vault status >"$T/st10.out" 2>&1
check "-q keeps the skip-verify warning" "$T/st10.out" "warning: vault: VAULT_SKIP_VERIFY is set"
# The wrong CA: a clear TLS error, not a hang or a retry loop.
VAULT_CACERT=$VT_OTHER_CA VAULT_TOKEN=$VT_ROOT "$wrapctl" --config "$T/wrapd.conf" vault status >"$T/st5.out" 2>&1
[ $? -ne 0 ] || { echo "host_vault_client.sh: FAIL: wrong CA accepted" >&2; rc=1; }
check "status: wrong CA" "$T/st5.out" "certificate"
# The token never appears in any output.
if grep -q "$VT_ROOT" "$T"/st*.out "$T"/st.json "$T"/st*.err 2>/dev/null; then
	echo "host_vault_client.sh: FAIL: the token appears in wrapctl output" >&2; rc=1
fi

[ $rc = 0 ] || keep=1
exit $rc
