#!/bin/bash
# The Vault overrides (--vault-addr, --vault-mount, --vault-key) mean the same
# for every wrapctl command and are applied in one place (volume_vault_config),
# with the config file's validation. Against the Vault double:
#   - `wrapctl --vault-key other format` records "other" in the token (format
#     used to ignore the global option), and so does the per-command option;
#     the one after the command wins
#   - an invalid override is refused before any Vault request and before the
#     device is touched, for format and for the volume commands
#   - --vault-addr is honoured (a dead address fails; a bad URL is refused)
set -u
srcdir=${WRAPD_SRCDIR:-$(dirname "$0")/../..}
builddir=${WRAPD_BUILDDIR:-$(pwd)}
. "$srcdir/tests/lib/checks.sh"
wrapctl="$builddir/wrapctl"
W=$(mktemp -d /tmp/wrapd-vo.XXXXXX) || exit 1
trap 'stop_vault_double; rm -rf "$W"' EXIT
start_vault_double "$srcdir" "$W"
: >"$W/empty.conf"
wctl() { "$wrapctl" -c "$W/empty.conf" "$@"; }
api() { curl -sf -H "X-Vault-Token: root" "$@"; }
jget() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); exec("print("+sys.argv[1]+")")' "$1"; }
token_key() { wctl inspect --json "$1" | jget 'd["wrapd"]["vault_mount"]+"/"+d["wrapd"]["vault_key"]'; }
datakeys() { api "$VAULT_ADDR/_double/log" | jget 'sum(1 for r in d["requests"] if "/datakey/" in r["path"])'; }

api -X POST -d '{"derived":true}' "$VAULT_ADDR/v1/transit/keys/other" >/dev/null ||
	{ echo "not ok - cannot create the key 'other' in the double"; exit 1; }
for v in a b c d e; do truncate -s 32M "$W/$v.img"; done

check "global --vault-key other: format" wctl --vault-key other format "$W/a.img"
[ "$(token_key "$W/a.img")" = transit/other ] && ok "the token records transit/other" ||
	bad "the token records $(token_key "$W/a.img"), not transit/other"
check "format --vault-key other" wctl format --vault-key other "$W/b.img"
[ "$(token_key "$W/b.img")" = transit/other ] && ok "per-command: transit/other" || bad "per-command: $(token_key "$W/b.img")"
check "the option after the command wins" wctl --vault-key other format --vault-key wrapd "$W/c.img"
[ "$(token_key "$W/c.img")" = transit/wrapd ] && ok "later option: transit/wrapd" || bad "later option: $(token_key "$W/c.img")"

n0=$(datakeys)
check_fails "format refuses --vault-key ../sys" wctl --vault-key ../sys format "$W/d.img"
grep -q -- "--vault-key: vault_key '../sys' may hold only" "$W/out" && ok "the refusal names the option" || bad "message: $(cat "$W/out")"
check_fails "format refuses --vault-mount a//b" wctl format --vault-mount a//b "$W/d.img"
check_fails "format refuses --vault-addr ftp://x" wctl --vault-addr ftp://x format "$W/d.img"
grep -q "must start with https:// or http://" "$W/out" && ok "bad address explained" || bad "message: $(cat "$W/out")"
[ "$(datakeys)" = "$n0" ] && ok "no datakey request for a refused override" || bad "datakey requests: $n0 -> $(datakeys)"
cmp -s "$W/d.img" "$W/e.img" && ok "a refused format leaves the device untouched" || bad "d.img changed"

check_fails "format with --vault-addr of a dead port" env VAULT_MAX_RETRIES=0 "$wrapctl" -c "$W/empty.conf" --vault-addr http://127.0.0.1:1 format "$W/d.img"
grep -q "127.0.0.1 port 1" "$W/out" && ok "the dead address is the one used" || bad "message: $(cat "$W/out")"
cmp -s "$W/d.img" "$W/e.img" && ok "a failed format leaves the device untouched" || bad "d.img changed"

# The volume commands validate the same way, through the same function.
check_fails "rewrap refuses --vault-key ../sys" wctl rewrap --vault-key ../sys "$W/a.img"
grep -q -- "--vault-key: vault_key '../sys' may hold only" "$W/out" && ok "rewrap: same message" || bad "message: $(cat "$W/out")"
check_fails "vault status refuses --vault-mount /x" wctl --vault-mount /x vault status
grep -q -- "--vault-mount: vault_mount '/x' may hold only" "$W/out" && ok "vault status: same message" || bad "message: $(cat "$W/out")"
check "rewrap with the token's key (no override)" wctl rewrap "$W/a.img"

echo "host_vault_overrides.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
