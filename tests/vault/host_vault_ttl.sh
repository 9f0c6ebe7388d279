#!/bin/bash
# A Vault answer whose TTL is a JSON real far outside long long's range
# (lookup-self "ttl": 1e300, -1e300) is clamped to 100 years; it used to be
# cast to long long (undefined behaviour: -9223372036854775808 on x86-64,
# which the client took for "never expires").
set -u
srcdir=${srcdir:-$(dirname "$0")/../..}
WC="$(pwd)/wrapctl"
PY=/usr/bin/python3
. "$srcdir/tests/lib/checks.sh"
[ -x "$WC" ] || { echo "not ok - $WC not built"; exit 1; }
W=$(mktemp -d /tmp/wrapd-ttl.XXXXXX) || exit 1
trap 'stop_vault_double; rm -rf "$W"' EXIT INT TERM
start_vault_double "$srcdir" "$W"
: >"$W/none.conf"
# ttl_of VALUE: the TTL `wrapctl vault status --json` reports when lookup-self says VALUE.
ttl_of() {
	"$PY" - "$VAULT_ADDR" "$1" <<'PYEOF' || return 1
import json, sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/_double/fault", method="DELETE")).read()
body = {"status": 200, "path": "/v1/auth/token/lookup-self", "count": 10,
        "body": {"data": {"ttl": float(sys.argv[2]), "renewable": True, "policies": ["root"],
                          "display_name": "t", "id": "root"}}}
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/_double/fault",
                       data=json.dumps(body).encode(), method="POST")).read()
PYEOF
	"$WC" -c "$W/none.conf" vault status --json 2>"$W/err" |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"]["ttl"])'
}
for v in 1e300:3153600000 -1e300:-3153600000 3600.5:3600; do
	got=$(ttl_of "${v%%:*}")
	if [ "$got" = "${v#*:}" ]; then ok "ttl ${v%%:*} reported as $got"
	else bad "ttl ${v%%:*}: reported '$got', wanted ${v#*:}"; sed 's/^/    /' "$W/err"; fi
done
echo "host_vault_ttl.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
