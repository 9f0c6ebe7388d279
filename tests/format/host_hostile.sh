#!/bin/bash
# Hostile headers end to end (issue 10, items 2, 3 and 9), against the Vault
# double: a header edited on the raw disk (checksums fixed, as an attacker
# would) is refused by inspect, open, rewrap and rekey with a one-line error,
# and the double's request log shows that no request was made for it:
#   - a wrapd-vault token whose vault_key / vault_mount leave the Transit API
#     ("../../sys/seal", "transit/../sys")
#   - a segment cipher other than aes-xts-plain64 (cipher_null-ecb)
#   - a digest demanding INT32_MAX pbkdf2 iterations
# and a token whose vault_addr names another listener (ours, on loopback):
# rewrap, rekey and open work with the configured Vault, and nothing at all
# reaches that listener.
set -u

srcdir=${srcdir:-$(dirname "$0")/../..}
builddir=$(pwd)
WC="$builddir/wrapctl"
PY=/usr/bin/python3
EDIT="$srcdir/tests/format/luks2-edit.py"
. "$srcdir/tests/lib/checks.sh"

[ -x "$WC" ] || { echo "not ok - $WC not built"; exit 1; }
W=$(mktemp -d /tmp/wrapd-hostile.XXXXXX) || exit 1
lpid=
cleanup() {
	stop_vault_double
	[ -n "$lpid" ] && kill "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
start_vault_double "$srcdir" "$W"
unset VAULT_NAMESPACE
: >"$W/none.conf"
wctl() { "$WC" -c "$W/none.conf" "$@"; }
ctl() { "$PY" - "$VAULT_ADDR" "$@" <<'PYEOF'
import json, sys, urllib.request
addr, op = sys.argv[1], sys.argv[2]
if op == "clear":
    urllib.request.urlopen(urllib.request.Request(addr + "/_double/log/clear", data=b"{}", method="POST")).read()
else:  # count: /v1/ requests since the last clear, one "METHOD path" per line
    for r in json.load(urllib.request.urlopen(addr + "/_double/log"))["requests"]:
        print(r["method"], r["path"])
PYEOF
}
# no_requests WHAT: the double saw no request since the last clear.
no_requests() {
	ctl list >"$W/log"
	if [ -s "$W/log" ]; then bad "$1: no Vault request"; sed 's/^/    /' "$W/log"; else ok "$1: no Vault request"; fi
}
# refused WHAT NEEDLE CMD...: CMD fails, its error is one line holding NEEDLE,
# and Vault saw no request. (stdout is kept in $W/stdout.)
refused() {
	local what=$1 needle=$2; shift 2
	ctl clear
	if "$@" >"$W/stdout" 2>"$W/out"; then
		bad "$what refused (unexpected success)"; sed 's/^/    /' "$W/out"
	elif [ "$(wc -l <"$W/out")" -ne 1 ] || ! grep -qF -- "$needle" "$W/out"; then
		bad "$what: one line naming '$needle'"; sed 's/^/    /' "$W/out"
	else
		ok "$what refused: $(head -c 160 "$W/out")"
	fi
	no_requests "$what"
}

fresh() { # fresh IMG: a new wrapd volume
	rm -f "$1"; truncate -s 24M "$1"
	wctl format "$1" >"$W/fmt.out" 2>&1 || { bad "format $1"; cat "$W/fmt.out"; exit 1; }
}
img="$W/v.img"

# ---- item 2: Vault path fields of the token --------------------------------
for edit in 'wtok(j)["vault_key"] = "../../sys/seal"|vault_key "../../sys/seal" is not a Transit key name' \
	'wtok(j)["vault_mount"] = "transit/../sys"|vault_mount "transit/../sys" is not a Transit mount path' \
	'wtok(j)["vault_key"] = "a/../../sys/seal"|vault_key "a/../../sys/seal" is not a Transit key name'; do
	fresh "$img"
	check "edit: ${edit%%|*}" "$PY" "$EDIT" "$img" "${edit%%|*}"
	for cmd in "inspect" "open" "rewrap" "rekey"; do
		refused "$cmd with ${edit%%|*}" "${edit#*|}" wctl $cmd "$img"
	done
done

# ---- item 3: the cipher --------------------------------------------------------
fresh "$img"
check "edit: cipher_null-ecb" "$PY" "$EDIT" "$img" 'j["segments"]["0"]["encryption"] = "cipher_null-ecb"'
for cmd in "inspect" "open" "rewrap" "rekey" "decrypt"; do
	refused "$cmd with cipher_null-ecb" 'cipher "cipher_null-ecb" is not allowed in a wrapd volume' wctl $cmd "$img"
done
refused "inspect --json with cipher_null-ecb" 'cipher "cipher_null-ecb" is not allowed' wctl inspect --json "$img"
check "inspect --json says valid: false and why" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is False and "cipher_null-ecb" in d["copies"][0]["why"], d' "$W/stdout"
fresh "$img"
check "edit: aes-xts-plain64 with a 256-bit keyslot" "$PY" "$EDIT" "$img" '
j["keyslots"]["0"] = {"type": "luks2", "key_size": 32, "area": {"type": "raw", "offset": "32768", "size": "4096", "encryption": "aes-xts-plain64", "key_size": 32}, "kdf": {"type": "pbkdf2", "hash": "sha256", "iterations": 1000, "salt": "AAAA"}, "af": {"type": "luks1", "stripes": 4000, "hash": "sha256"}, "priority": 1}
j["digests"]["0"]["keyslots"] = ["0"]'
refused "open with a 256-bit key" "a keyslot gives it a key that is not 512 bits" wctl open "$img"

# ---- item 9: digest iterations ------------------------------------------------
fresh "$img"
check "edit: iterations INT32_MAX" "$PY" "$EDIT" "$img" 'j["digests"]["0"]["iterations"] = 2147483647'
refused "open with INT32_MAX iterations" '"iterations" 2147483647 is out of range (1..2000000)' wctl open "$img"
refused "rewrap with INT32_MAX iterations" '"iterations" 2147483647 is out of range' wctl rewrap "$img"

# ---- item 2: a foreign vault_addr gets nothing --------------------------------
# Our own listener on loopback records every connection (and any bytes sent).
"$PY" - "$W/lport" "$W/listener.log" <<'PYEOF' &
import os, socket, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
tmp = sys.argv[1] + ".tmp"; open(tmp, "w").write(str(s.getsockname()[1])); os.rename(tmp, sys.argv[1])
def serve(c):
    c.settimeout(2)
    try: data = c.recv(65536)
    except OSError: data = b""
    with open(sys.argv[2], "ab") as f: f.write(b"CONNECTION " + data[:200] + b"\n")
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF
lpid=$!
for _ in $(seq 100); do [ -s "$W/lport" ] && break; sleep 0.1; done
[ -s "$W/lport" ] || { bad "the foreign listener did not start"; exit 1; }
foreign="http://127.0.0.1:$(cat "$W/lport")"
fresh "$img"
check "edit: vault_addr = $foreign" "$PY" "$EDIT" "$img" "wtok(j)[\"vault_addr\"] = \"$foreign\""
check "inspect shows the foreign vault_addr" sh -c "'$WC' -c '$W/none.conf' inspect --json '$img' | grep -qF '$foreign'"
# rotate so that rewrap has work to do
check "rotate the Transit key" "$PY" -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('$VAULT_ADDR/v1/transit/keys/wrapd/rotate', data=b'{}', headers={'X-Vault-Token':'root'}, method='POST')).read()"
ctl clear
check "rewrap with a foreign vault_addr works against the configured Vault" wctl rewrap "$img"
ctl list >"$W/log"
if grep -q "transit/rewrap/wrapd" "$W/log"; then ok "rewrap: the configured Vault got the rewrap"; else bad "rewrap: the configured Vault got the rewrap"; sed 's/^/    /' "$W/log"; fi
ctl clear
check "rekey with a foreign vault_addr works against the configured Vault" wctl rekey "$img"
ctl list >"$W/log"
if grep -q "transit/decrypt/wrapd" "$W/log" && grep -q "transit/datakey" "$W/log"; then ok "rekey: the configured Vault got decrypt and datakey"; else bad "rekey: the configured Vault got decrypt and datakey"; sed 's/^/    /' "$W/log"; fi
wctl inspect --json "$img" | grep -qF "$foreign" && echo "# rekey kept the header's vault_addr (still foreign)" ||
	echo "# rekey replaced the header's vault_addr with the configured one"
ctl clear
wctl open "$img" hostile-$$ >"$W/out" 2>&1 || true   # no dm-crypt on a build host: may fail after Vault
wctl close hostile-$$ >/dev/null 2>&1 || true
ctl list >"$W/log"
if grep -q "transit/decrypt/wrapd" "$W/log"; then ok "open: the configured Vault got the decrypt"; else bad "open: the configured Vault got the decrypt"; sed 's/^/    /' "$W/out" "$W/log"; fi
if [ -s "$W/listener.log" ]; then bad "nothing reached the foreign vault_addr"; sed 's/^/    /' "$W/listener.log"
else ok "nothing reached the foreign vault_addr $foreign"; fi

echo "host_hostile.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
