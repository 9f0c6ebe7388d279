#!/bin/bash
# The installed examples and wrapd.conf(5) agree with the code:
#  - every key that a module declares (vault/config.c, volume/table.c,
#    agent/*.c: the config_key tables) is documented in wrapd.conf(5) and
#    present (commented, with its default) in examples/wrapd.conf, and the
#    example holds no key that the code does not know;
#  - examples/wrapd.conf with every default uncommented is accepted by wrapctl
#    (the shared parser checks every section's keys);
#  - examples/volumes with its lines uncommented parses as a volume table.
set -u
src=${WRAPD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${WRAPD_BUILDDIR:-.}
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
fail=0 n=0
ok() { n=$((n + 1)); echo "ok   $*"; }
bad() { n=$((n + 1)); echo "FAIL $*"; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Keys the code declares: K("name", ...) in vault/config.c, .name = "name" in
# the other modules' config_key tables.
code_keys=$(cd "$src" && {
	grep -ohE 'K\("[a-z0-9_]+"' vault/config.c | sed 's/K("//; s/"//'
	grep -ohE '\.name = "[a-z0-9_]+", \.type = CONFIG_' volume/*.c agent/*.c 2>/dev/null |
		sed 's/.name = "//; s/".*//'
} | sort -u)
[ -n "$code_keys" ] || { echo "FAIL: no config keys found in the sources"; exit 1; }
ex_keys=$(sed -n 's/^#\([a-z0-9_]*\) =.*/\1/p' "$src/examples/wrapd.conf" | sort -u)
for k in $code_keys; do
	[ "$k" = vault_token ] && continue # environment only (VAULT_TOKEN), refused in a file
	grep -qF "*$k*" "$src/man/wrapd.conf.5.scd" && ok "wrapd.conf(5) documents $k" ||
		bad "wrapd.conf(5) lacks $k"
	printf '%s\n' $ex_keys | grep -qx "$k" && ok "examples/wrapd.conf has $k" ||
		bad "examples/wrapd.conf lacks $k"
done
for k in $ex_keys; do
	printf '%s\n' $code_keys | grep -qx "$k" && ok "example key $k is known to the code" ||
		bad "examples/wrapd.conf has $k, which no module declares"
done

# The example, defaults uncommented (keys with an empty default stay
# commented), is accepted: `close --all` loads the whole file for
# volume_table, which points at an empty table here.
: >"$tmp/empty-table"
sed -e 's/^#\([a-z0-9_]* = .\)/\1/' -e "s|^volume_table = .*|volume_table = $tmp/empty-table|" \
	"$src/examples/wrapd.conf" >"$tmp/wrapd.conf"
out=$("$build/wrapctl" --config "$tmp/wrapd.conf" close --all 2>&1)
rc=$?
[ $rc -eq 0 ] && [ -z "$out" ] && ok "wrapctl accepts examples/wrapd.conf with its defaults set" ||
	bad "examples/wrapd.conf refused (rc $rc): $out"
# ... and the check can fail: a misspelt key is refused.
printf 'vault_adr = https://x\n' >>"$tmp/wrapd.conf"
out=$("$build/wrapctl" --config "$tmp/wrapd.conf" close --all 2>&1)
[ $? -ne 0 ] && printf '%s' "$out" | grep -q "unknown key 'vault_adr'" && ok "a misspelt key is refused" ||
	bad "a misspelt key was accepted: $out"

sed 's/^#\([a-z]\)/\1/' "$src/examples/volumes" >"$tmp/volumes"
[ "$(grep -cvE '^(#|$)' "$tmp/volumes")" -ge 3 ] && ok "examples/volumes has example lines" || bad "examples/volumes: no example lines"
# Opening a name that is not in the table parses the whole table and stops
# there, touching nothing; a parse error would name file:line instead.
out=$("$build/wrapctl" open --table "$tmp/volumes" no-such-volume 2>&1)
printf '%s' "$out" | grep -q "'no-such-volume' is neither a device path nor a volume in $tmp/volumes" &&
	ok "examples/volumes, uncommented, parses" || bad "examples/volumes refused: $out"
printf 'bad line\n' >>"$tmp/volumes"
out=$("$build/wrapctl" open --table "$tmp/volumes" no-such-volume 2>&1)
printf '%s' "$out" | grep -q "$tmp/volumes:[0-9]*: " && ok "a bad table line is refused with file:line" ||
	bad "a bad table line was not refused: $out"
echo "$n checks"
exit $fail
