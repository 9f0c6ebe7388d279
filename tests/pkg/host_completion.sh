#!/bin/bash
# The bash completion for wrapctl, run by bash itself: source bash-completion
# and completion/wrapctl, set COMP_WORDS/COMP_CWORD as readline would, call
# the function and compare COMPREPLY. A fake dmsetup on PATH stands for
# device-mapper; a temporary volume table and files stand for the host.
# The list of commands and of each command's options is checked against
# `wrapctl --help` and `wrapctl CMD --help`, so a new command or option that
# the completion misses fails here.
set -u
src=${WRAPD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${WRAPD_BUILDDIR:-.}
bc=/usr/share/bash-completion/bash_completion
if [ ! -r "$bc" ]; then
	echo "FAIL: $bc missing: apt-get install bash-completion (scripts/deps test)"
	exit 1
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/imgs"
: >"$tmp/imgs/disk-a.img"
: >"$tmp/imgs/disk-b.img"
: >"$tmp/imgs/other.hdr"
cat >"$tmp/volumes" <<'EOF'
# name   device             options
pgdata   /dev/disk/by-id/x  discard
  pgwal  UUID=0b5e0a4c-3f1e-4d7b-9c55-2a7d3f1e4c10 ro
scratch  /var/lib/a.img     noauto
EOF
cat >"$tmp/volumes2" <<'EOF'
other /dev/sdz
EOF
# `dmsetup table --target crypt` as root: two wrapd mappings, a cryptsetup
# LUKS2 mapping (passphrase key in the kernel keyring, not wrapd's) and a
# plain one.
cat >"$tmp/bin/dmsetup" <<'EOF'
#!/bin/sh
[ "$1 $2 $3" = "table --target crypt" ] || exit 1
cat <<'T'
pgdata: 0 2048 crypt aes-xts-plain64 :64:logon:wrapd:0b5e0a4c-3f1e-4d7b-9c55-2a7d3f1e4c10 0 7:0 32768 1 no_read_workqueue
web-1: 0 2048 crypt aes-xts-plain64 :64:logon:wrapd:1b5e0a4c-3f1e-4d7b-9c55-2a7d3f1e4c10 0 7:1 32768
luks-home: 0 4096 crypt aes-xts-plain64 :64:logon:cryptsetup:0c5e0a4c-3f1e-4d7b-9c55-2a7d3f1e4c10-d0 0 8:3 32768
plain: 0 4096 crypt aes-cbc-essiv:sha256 0000000000000000000000000000000000000000000000000000000000000000 0 8:4 0
T
EOF
chmod +x "$tmp/bin/dmsetup"

wrapctl=$build/wrapctl
[ -x "$wrapctl" ] || { echo "FAIL: $wrapctl not built"; exit 1; }
# Commands and per-command options as wrapctl itself lists them.
commands=$("$wrapctl" --help | awk '/^Commands:/ {c = 1; next} c && /^  [a-z]/ {print $1}' | sort | tr '\n' ' ')
opts_of() { # cmd -> sorted long options from its --help
	local h
	if [ "$1" = vault ]; then h=$("$wrapctl" vault --help); else h=$("$wrapctl" "$1" --help); fi
	printf '%s\n' "$h" | grep -oE -- '--[a-z][a-z-]*' | sort -u | tr '\n' ' '
}

export PATH="$tmp/bin:$PATH" HOME=$tmp TMPDIR=$tmp WRAPCTL="$wrapctl" SRC=$src
export COMMANDS=$commands T=$tmp
for c in $commands; do export "OPTS_$c=$(opts_of "$c")"; done

bash --norc --noprofile <<'EOF'
fail=0 n=0
. /usr/share/bash-completion/bash_completion
. "$SRC/completion/wrapctl"
complete -p wrapctl >/dev/null || { echo "FAIL: no completion registered for wrapctl"; exit 1; }
# comp WORD... : complete the last word of the command line WORD...
comp() {
	COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
	COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_wrapctl wrapctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
check() { # name expected actual
	n=$((n + 1))
	if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected '$2', got '$3'"; fail=1; fi
}
has() { # name word actual
	n=$((n + 1))
	case " $3 " in *" $2 "*) echo "ok   $1" ;; *) echo "FAIL $1: '$2' not in '$3'"; fail=1 ;; esac
}

check "commands = wrapctl --help's list" "$(echo $COMMANDS)" "$(comp wrapctl '')"
check "command prefix" "rekey resume rewrap" "$(comp wrapctl re)"
check "command after global options" "close" "$(comp wrapctl -v --config /x cl)"
check "command after --vault-addr URL" "close" "$(comp wrapctl --vault-addr https://v:8200 cl)"
check "no completion for --vault-addr's value" "" "$(comp wrapctl open --vault-addr '')"
has "global options" "--config" "$(comp wrapctl --)"
has "global options" "--version" "$(comp wrapctl --)"
for c in $COMMANDS; do
	want=$(eval echo "\$OPTS_$c")
	got=$(comp wrapctl "$c" --)
	for o in $want; do has "$c offers $o" "$o" "$got"; done
done
check "open: table volumes" "pgdata pgwal scratch" "$(comp wrapctl open --table "$T/volumes" '')"
check "open: --table=FILE" "pgdata pgwal" "$(comp wrapctl open --table="$T/volumes" pg)"
check "open: table after the name's place" "other" "$(comp wrapctl open --table "$T/volumes2" o)"
check "open: device path" "$T/imgs/disk-a.img $T/imgs/disk-b.img" "$(comp wrapctl open "$T/imgs/d")"
check "open: no second-argument guess" "" "$(comp wrapctl open "$T/imgs/disk-a.img" '')"
printf '# wrapd.conf\nvault_addr = https://v:8200\n  volume_table = "%s"\n' "$T/volumes2" >"$T/wrapd.conf"
check "open: volume_table from --config" "other" "$(comp wrapctl --config "$T/wrapd.conf" open '')"
check "open: --table wins over volume_table" "pgdata pgwal scratch" "$(comp wrapctl -c "$T/wrapd.conf" open --table "$T/volumes" '')"
check "open --all: nothing" "" "$(comp wrapctl open --all --table "$T/volumes" '')"
check "close: wrapd mappings only" "pgdata web-1" "$(comp wrapctl close '')"
check "close: prefix" "web-1" "$(comp wrapctl close --deferred w)"
check "close: one name only" "" "$(comp wrapctl close pgdata '')"
check "status: mappings" "pgdata web-1" "$(comp wrapctl status --json '')"
check "inspect: files" "$T/imgs/disk-a.img $T/imgs/disk-b.img" "$(comp wrapctl inspect "$T/imgs/disk")"
has "format: /dev/ when empty" "/dev/null" "$(comp wrapctl format '')"
check "format: option value not a device" "" "$(comp wrapctl format --label '')"
check "encrypt: --header value is a file" "$T/imgs/other.hdr" "$(comp wrapctl encrypt --header "$T/imgs/ot")"
check "encrypt: device after --header FILE" "$T/imgs/disk-a.img" "$(comp wrapctl encrypt --header x.hdr "$T/imgs/disk-a")"
check "encrypt: --sector-size values" "1024 2048 4096 512" "$(comp wrapctl encrypt --sector-size '')"
check "header: subcommands" "backup restore" "$(comp wrapctl header '')"
check "header backup: device" "$T/imgs/disk-b.img" "$(comp wrapctl header backup "$T/imgs/disk-b")"
check "header backup: file" "$T/imgs/other.hdr" "$(comp wrapctl header backup /dev/sda "$T/imgs/o")"
check "vault: status" "status" "$(comp wrapctl vault s)"
check "--config FILE" "$T/volumes $T/volumes2" "$(comp wrapctl --config "$T/vol")"
# Without root's dmsetup, mappings come from sysfs: no dm here, no names,
# and no error output.
rm "$T/bin/dmsetup"; printf '#!/bin/sh\nexit 1\n' >"$T/bin/dmsetup"; chmod +x "$T/bin/dmsetup"
out=$(comp wrapctl close '' 2>&1)
if [ -d /sys/block ] && ! ls -d /sys/block/dm-* >/dev/null 2>&1; then
	check "close: sysfs fallback, no dm devices" "" "$out"
else
	n=$((n + 1)); echo "ok   close: sysfs fallback ran ($out)"
fi
echo "$n checks"
exit $fail
EOF
