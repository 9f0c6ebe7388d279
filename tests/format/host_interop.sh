#!/bin/bash
# wrapctl format / inspect / header backup|restore against real cryptsetup,
# blkid and the Vault double, both directions:
#   - wrapctl format (VK from the Vault double) -> cryptsetup luksDump, isLuks,
#     blkid -p accept it; luksDump shows the segment, digest and wrapd-vault token
#   - wrapctl inspect on every image in shared/testdata/luks2 and on headers
#     made by cryptsetup luksFormat (metadata 16 KiB ... 4 MiB, 512/4096 sectors,
#     labels, subsystems, several keyslots, imported tokens)
#   - round trip: format -> inspect -> header backup -> restore (UUID checks)
#   - damaged copies: inspect names the bad copy and why
#   - refusals: existing signatures without --force, bad options
# A missing tool is a FAILURE, never a skip.
set -u

srcdir=${srcdir:-$(dirname "$0")/../..}
builddir=$(pwd)
W="$builddir/wrapctl"
double="$srcdir/tests/vault-double/vault-double"
. "$srcdir/tests/lib/vault-double.sh"
testdata=${WRAPD_TESTDATA:-$srcdir/../shared/testdata}/luks2
PY=/usr/bin/python3

fail() { echo "host_interop.sh: FAIL: $*" >&2; exit 1; }
for t in cryptsetup blkid xz tar mkfs.ext4 truncate od; do
	command -v $t >/dev/null || fail "'$t' not found (apt-get install cryptsetup-bin util-linux xz-utils e2fsprogs coreutils)"
done
[ -x "$PY" ] || fail "$PY not found: the Vault double needs it"
[ -x "$W" ] || fail "$W not built"
[ -f "$double" ] || fail "$double not found"
[ -d "$testdata" ] || fail "test images not found in $testdata; set WRAPD_TESTDATA"

T=$(mktemp -d /tmp/wrapd-format-test.XXXXXX) || fail "mktemp"
cleanup() {
	vault_double_stop
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

vault_double_start "$srcdir" "$T" vault --root-token T0ken --create-key wrapd --create-key other/k2 ||
	fail "Vault double did not start"
export VAULT_ADDR="http://127.0.0.1:$vault_double_port" VAULT_TOKEN=T0ken
unset VAULT_NAMESPACE
cfg="$T/none.conf"
: >"$cfg"
wctl() { "$W" -c "$cfg" "$@"; }

jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print("+sys.argv[2]+")")' "$@"; }
ok=0
pass() { ok=$((ok + 1)); }

# ---- wrapctl format -> cryptsetup/blkid ------------------------------------
img="$T/w.img"
truncate -s 64M "$img"
wctl format --label wlabel --name vol1 "$img" >"$T/f.out" 2>&1 || { cat "$T/f.out"; fail "format failed"; }
grep -q "VK\|plaintext" "$T/f.out" && fail "format output mentions key material"
cryptsetup isLuks "$img" || fail "cryptsetup isLuks rejects a wrapd header"
cryptsetup luksDump "$img" >"$T/dump" 2>&1 || { cat "$T/dump"; fail "luksDump rejects a wrapd header"; }
grep -q "0: crypt" "$T/dump" || fail "luksDump does not show the crypt segment"
grep -q "offset: 16777216" "$T/dump" || fail "luksDump: wrong data offset"
grep -q "sector: 4096" "$T/dump" || fail "luksDump: wrong sector size"
grep -q "0: pbkdf2" "$T/dump" || fail "luksDump does not show the pbkdf2 digest"
grep -q "0: wrapd-vault" "$T/dump" || fail "luksDump does not show the wrapd-vault token"
grep -q "^Keyslots:$" "$T/dump" || fail "luksDump: keyslots section"
[ "$(grep -c 'luks2$' "$T/dump")" = 0 ] || fail "a wrapd header must have no keyslots"
blkid -p -o export "$img" >"$T/blkid" || fail "blkid -p does not recognise a wrapd header"
grep -q "^TYPE=crypto_LUKS$" "$T/blkid" || fail "blkid: TYPE is not crypto_LUKS"
grep -q "^VERSION=2$" "$T/blkid" || fail "blkid: VERSION"
grep -q "^LABEL=wlabel$" "$T/blkid" || fail "blkid: LABEL"
pass

# inspect (human and JSON) on it
wctl inspect "$img" >"$T/i.txt" || fail "inspect failed on a wrapd header"
grep -q "Transit key:  transit/wrapd, version 1" "$T/i.txt" || fail "inspect does not show the Vault key"
grep -q "Conversion:   none" "$T/i.txt" || fail "inspect: conversion"
wctl inspect --json "$img" >"$T/i.json" || fail "inspect --json"
uuid=$(jget "$T/i.json" 'd["uuid"]')
[ "$(jget "$T/i.json" 'd["wrapd"]["is_wrapd"], d["wrapd"]["vault_mount"], d["wrapd"]["vault_key"], d["wrapd"]["key_version"], d["activatable"]')" = "True transit wrapd 1 True" ] ||
	fail "inspect --json wrapd facts: $(cat "$T/i.json")"
[ "$(jget "$T/i.json" 'len(d["keyslots"]), d["segments"][0]["sector_size"], d["data_size"]')" = "0 4096 dynamic" ] || fail "inspect --json layout"
[ "$uuid" = "$(sed -n 's/^UUID=//p' "$T/blkid")" ] || fail "UUID differs between inspect and blkid"
cryptsetup luksDump "$img" | grep -q "$uuid" || fail "UUID differs between inspect and luksDump"
# The token's context is exactly Base64("wrapd-vk-v1:" + UUID), and --json
# shows the wrapped key for a break-glass unwrap.
[ "$(jget "$T/i.json" 'd["wrapd"]["context"]')" = "$(printf 'wrapd-vk-v1:%s' "$uuid" | base64 -w0)" ] ||
	fail "inspect --json: the context is not Base64(wrapd-vk-v1:<uuid>)"
case "$(jget "$T/i.json" 'd["wrapd"]["ciphertext"]')" in vault:v1:*) ;; *) fail "inspect --json: no vault:v1: ciphertext" ;; esac
pass

# options: another mount/key, 512-byte sectors, other offset
img2="$T/w2.img"
truncate -s 40M "$img2"
wctl format --vault-mount other --vault-key k2 --sector-size 512 --data-offset 2097152 "$img2" >/dev/null 2>"$T/e" || { cat "$T/e"; fail "format with options"; }
wctl inspect --json "$img2" >"$T/i2.json" || fail "inspect w2"
[ "$(jget "$T/i2.json" 'd["wrapd"]["vault_mount"], d["wrapd"]["vault_key"], d["sector_size"], d["data_offset"], d["keyslots_size"]')" = "other k2 512 2097152 2064384" ] ||
	fail "format options not honoured: $(cat "$T/i2.json")"
cryptsetup luksDump "$img2" | grep -q "sector: 512" || fail "luksDump w2"
pass

# ---- refusals ----------------------------------------------------------------
expect_fail() { # needle cmd...
	local needle=$1; shift
	if "$@" >"$T/o" 2>"$T/e"; then fail "should have failed: $*"; fi
	grep -q -- "$needle" "$T/e" || fail "'$*' error lacks '$needle': $(cat "$T/e")"
	[ "$(wc -l <"$T/e")" -le 3 ] || fail "'$*' error is not short: $(cat "$T/e")"
}
e4="$T/ext4.img"
truncate -s 64M "$e4"
mkfs.ext4 -q -F "$e4" >/dev/null 2>&1 || fail "mkfs.ext4"
expect_fail "ext4" wctl format "$e4"
expect_fail "crypto_LUKS" wctl format "$img"
expect_fail "sector-size" wctl format --sector-size 1000 "$e4"
expect_fail "data-offset" wctl format --data-offset 12345 "$e4"
expect_fail "too small" wctl format --force --data-offset 134217728 "$e4"
expect_fail "No such file" wctl format "$T/missing"
expect_fail "not a LUKS2 device" wctl inspect "$e4"
expect_fail "47" wctl format --label 0123456789012345678901234567890123456789012345678 "$e4"
blkid -p "$e4" | grep -q ext4 || fail "a refused format changed the device"
wctl format --force "$e4" >/dev/null 2>"$T/e" || { cat "$T/e"; fail "format --force over ext4"; }
blkid -p -o export "$e4" | grep -q "^TYPE=crypto_LUKS$" || fail "ext4 signature not replaced"
blkid -p -o export "$e4" | grep -q "=ext4$" && fail "old ext4 signature left behind"
pass

# ---- round trip: backup -> restore ----------------------------------------
wctl header backup "$img" "$T/bk" >/dev/null || fail "header backup"
[ "$(stat -c %s "$T/bk")" = 16777216 ] || fail "backup size"
[ "$(stat -c %a "$T/bk")" = 600 ] || fail "backup file mode"
expect_fail "already exists" wctl header backup "$img" "$T/bk"
cryptsetup isLuks "$T/bk" || fail "cryptsetup rejects the backup file"
# damage both copies, then restore
dd if=/dev/zero of="$img" bs=4096 count=8 conv=notrunc status=none
expect_fail "not a LUKS2 device" wctl inspect "$img"
expect_fail "--force" wctl header restore "$img" "$T/bk"
wctl header restore --force "$img" "$T/bk" >/dev/null || fail "restore --force"
[ "$(wctl inspect --json "$img" | jget /dev/stdin 'd["uuid"]')" = "$uuid" ] || fail "restored UUID"
cryptsetup luksDump "$img" | grep -q "wrapd-vault" || fail "luksDump after restore"
# same UUID: restore without --force
wctl header restore "$img" "$T/bk" >/dev/null || fail "restore onto the same volume"
# other UUID: refused without --force
expect_fail "has UUID" wctl header restore "$e4" "$T/bk"
# invalid backup files
head -c 20000 "$T/bk" >"$T/bk-short"
expect_fail "damaged backup" wctl header restore --force "$e4" "$T/bk-short"
echo garbage >"$T/bk-junk"
expect_fail "not a valid header backup" wctl header restore --force "$e4" "$T/bk-junk"
# cryptsetup can restore our backup, we can restore cryptsetup's
cryptsetup luksHeaderBackup "$img" --header-backup-file "$T/cs-bk" || fail "cryptsetup luksHeaderBackup of a wrapd header"
wctl header restore "$img" "$T/cs-bk" >/dev/null || fail "restore a cryptsetup backup"
pass

# ---- damaged copies: inspect says which and why ------------------------------
cp "$img" "$T/d.img"
printf 'X' | dd of="$T/d.img" bs=1 seek=5000 conv=notrunc status=none
wctl inspect "$T/d.img" >"$T/d.txt" || fail "inspect with a damaged primary"
grep -q "primary   at 0: bad-checksum - checksum mismatch" "$T/d.txt" || fail "inspect does not name the bad primary: $(cat "$T/d.txt")"
grep -q "secondary at 16384: ok (in use)" "$T/d.txt" || fail "inspect: secondary in use"
printf 'X' | dd of="$T/d.img" bs=1 seek=21000 conv=notrunc status=none
expect_fail "primary at 0: checksum mismatch (sha256); secondary at 16384: checksum mismatch" wctl inspect "$T/d.img"
wctl inspect --json "$T/d.img" >"$T/d.json" 2>/dev/null && fail "inspect --json must exit non-zero on a dead header"
[ "$(jget "$T/d.json" 'd["valid"], d["copies"][0]["status"], d["copies"][1]["status"]')" = "False bad-checksum bad-checksum" ] || fail "inspect --json damaged: $(cat "$T/d.json")"
pass

# ---- inspect on cryptsetup's test images ------------------------------------
mkdir -p "$T/td"
for f in "$testdata"/*.img.xz; do xz -dc "$f" >"$T/td/$(basename "$f" .xz)" || fail "xz $f"; done
for f in "$testdata"/*.tar.xz; do tar -xJf "$f" -C "$T/td" || fail "tar $f"; done
n=0
for f in "$T"/td/*; do
	wctl inspect "$f" >"$T/o" 2>"$T/e" || fail "inspect $(basename "$f"): $(cat "$T/e")"
	wctl inspect --json "$f" >"$T/o.json" 2>"$T/e" || fail "inspect --json $(basename "$f")"
	cu=$(cryptsetup luksUUID "$f") || fail "cryptsetup luksUUID $(basename "$f")"
	[ "$(jget "$T/o.json" 'd["uuid"]')" = "$cu" ] || fail "UUID of $(basename "$f")"
	n=$((n + 1))
done
[ $n -ge 14 ] || fail "expected at least 14 test images, found $n"
wctl inspect --json "$T/td/luks2_header_requirements" >"$T/r.json" || fail "inspect requirements image"
[ "$(jget "$T/r.json" 'd["activatable"], d["writable"], d["unknown_requirement"], d["requirements"]')" = "False False req0 ['req0', 'req1']" ] ||
	fail "requirements image: $(cat "$T/r.json")"
wctl inspect "$T/td/luks2_header_requirements" | grep -q 'unknown mandatory LUKS2 requirement "req0"' || fail "inspect does not explain req0"
wctl inspect --json "$T/td/luks2_header_requirements_free" | jget /dev/stdin 'd["activatable"]' | grep -q True || fail "requirements_free image"
for m in 16 32 64 128 256 512 1024 2048 4096; do
	[ "$(wctl inspect --json "$T/td/test_image_$m" | jget /dev/stdin 'd["metadata_size"]')" = $((m * 1024)) ] || fail "test_image_$m metadata size"
done
[ "$(wctl inspect --json "$T/td/luks2_valid_hdr.img" | jget /dev/stdin 'len(d["keyslots"]), d["seqid"], d["data_offset"]')" = "8 10 4194304" ] || fail "luks2_valid_hdr.img"
wctl inspect --json "$T/td/luks2_invalid_cipher.img" | jget /dev/stdin 'd["cipher"]' | grep -q '^capi:' || fail "invalid_cipher image"
pass

# ---- inspect on headers cryptsetup luksFormat makes --------------------------
csf() { # file size args...
	local f=$1 sz=$2; shift 2
	truncate -s "$sz" "$f"
	cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
		--key-file <(printf 'pass-one') "$@" "$f" >/dev/null 2>"$T/cs.err" || fail "luksFormat $*: $(cat "$T/cs.err")"
}
for md in 16k 32k 64k 128k 256k 512k 1m 2m 4m; do
	for ss in 512 4096; do
		f="$T/cs-$md-$ss"
		csf "$f" 32M --luks2-metadata-size $md --sector-size $ss --label "L-$md" --subsystem "S-$ss"
		wctl inspect --json "$f" >"$T/c.json" 2>"$T/e" || fail "inspect cryptsetup $md/$ss: $(cat "$T/e")"
		want=$(cryptsetup luksDump "$f" | sed -n 's/^Metadata area:[[:space:]]*\([0-9]*\).*/\1/p')
		[ "$(jget "$T/c.json" 'd["metadata_size"], d["sector_size"], d["label"], d["subsystem"], len(d["keyslots"]), d["keyslots"][0]["owner"], d["wrapd"]["is_wrapd"], d["activatable"]')" = "$want $ss L-$md S-$ss 1 other False True" ] ||
			fail "inspect cryptsetup $md/$ss: $(cat "$T/c.json")"
		rm -f "$f"
	done
done
f="$T/cs-multi"
csf "$f" 32M --label multi
for k in two three four; do
	cryptsetup luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file <(printf 'pass-one') "$f" <(printf "$k") || fail "luksAddKey"
done
printf '{"type":"some-tool","keyslots":["1"],"blob":{"a":[1,2,3]}}' | cryptsetup token import "$f" || fail "token import"
printf '{"type":"wrapd-vault","keyslots":[],"vault_addr":"","vault_namespace":"","vault_mount":"transit","vault_key":"wrapd","key_version":2,"ciphertext":"vault:v2:xyz","context":"eA=="}' |
	cryptsetup token import "$f" || fail "token import wrapd-vault"
cryptsetup token add --key-description "some:desc" --key-slot 2 "$f" || fail "token add keyring"
wctl inspect --json "$f" >"$T/m.json" || fail "inspect multi"
[ "$(jget "$T/m.json" 'len(d["keyslots"]), [t["type"] for t in d["tokens"]], [t["owner"] for t in d["tokens"]], d["tokens"][0]["keyslots"], d["wrapd"]["key_version"]')" = "4 ['some-tool', 'wrapd-vault', 'luks2-keyring'] ['other', 'wrapd', 'other'] [1] 2" ] ||
	fail "inspect multi: $(cat "$T/m.json")"
wctl inspect "$f" | grep -q "some-tool (not owned by wrapd)" || fail "inspect human: foreign token"
pass

echo "host_interop.sh: $ok groups passed"
