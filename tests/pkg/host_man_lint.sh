#!/bin/bash
# Every man page renders cleanly: mandoc -T lint reports no error (its
# warnings and style notes about scdoc's output are allowed), groff reports
# nothing (what lintian checks), lexgrog finds the NAME line, and man -l
# renders a page whose NAME and SYNOPSIS/DESCRIPTION are there. wrapctl(8)
# must name every command that `wrapctl --help` lists and every option that
# each command's --help lists; wrapd(8) every option of `wrapd --help`.
set -u
build=${WRAPD_BUILDDIR:-.}
src=${WRAPD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
fail=0 n=0
ok() { n=$((n + 1)); echo "ok   $*"; }
bad() { n=$((n + 1)); echo "FAIL $*"; fail=1; }
for tool in mandoc lexgrog man groff; do
	command -v $tool >/dev/null || { echo "FAIL: $tool missing (scripts/deps test installs mandoc, man-db, groff-base)"; exit 1; }
done

page() { # the built page, in the build tree or (release tarball) the source tree
	if [ -f "$build/man/$1" ]; then echo "$build/man/$1"; else echo "$src/man/$1"; fi
}
for p in wrapctl.8 wrapd.8 wrapd.conf.5 wrapd-volumes.5; do
	f=$(page $p)
	[ -s "$f" ] || { bad "$p: not built ($f)"; continue; }
	errs=$(mandoc -T lint -W error "$f" 2>&1)
	if [ -z "$errs" ]; then ok "$p: mandoc -T lint: no errors"; else bad "$p: mandoc -T lint: $errs"; fi
	g=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$f" 2>&1 >/dev/null)
	if [ -z "$g" ]; then ok "$p: groff warnings: none"; else bad "$p: groff: $g"; fi
	name=${p%.*}
	if lexgrog "$f" | grep -q ": \"$name - "; then ok "$p: lexgrog: NAME line"; else bad "$p: lexgrog: $(lexgrog "$f" 2>&1)"; fi
	txt=$(MANWIDTH=80 man -l "$f" 2>/dev/null | col -b)
	for sec in NAME DESCRIPTION "SEE ALSO"; do
		if printf '%s\n' "$txt" | grep -q "^$sec\$"; then ok "$p: section $sec"; else bad "$p: no section $sec"; fi
	done
	if printf '%s\n' "$txt" | grep -q '@VERSION@\|\\f[BIR]'; then bad "$p: unexpanded markup"; else ok "$p: no leftover markup"; fi
done

# wrapctl(8) documents every command and option that wrapctl offers.
w=$build/wrapctl
if [ -x "$w" ]; then
	txt=$(MANWIDTH=200 man -l "$(page wrapctl.8)" 2>/dev/null | col -b)
	for c in $("$w" --help | awk '/^Commands:/ {c = 1; next} c && /^  [a-z]/ {print $1}'); do
		if printf '%s\n' "$txt" | grep -qE "^   $c( |$)"; then ok "wrapctl.8: command $c"; else bad "wrapctl.8: command $c has no section"; fi
		# The command's own subsections of COMMANDS.
		sect=$(printf '%s\n' "$txt" | awk -v c="$c" '/^[A-Z]/ {in_cmds = ($0 == "COMMANDS")}
			in_cmds && /^   [a-z]/ {mine = ($1 == c)} in_cmds && mine')
		for o in $("$w" "$c" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
			if printf '%s\n' "$sect" | grep -qF -- "$o"; then ok "wrapctl.8: $c $o"; else bad "wrapctl.8: $c option $o undocumented in its section"; fi
		done
	done
	for o in $("$w" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
		if printf '%s\n' "$txt" | grep -qF -- "$o"; then ok "wrapctl.8: global $o"; else bad "wrapctl.8: global option $o undocumented"; fi
	done
else
	bad "wrapctl not built: $w"
fi
# wrapd(8) documents every option of wrapd --help.
d=$build/wrapd
if [ -x "$d" ]; then
	txt=$(MANWIDTH=200 man -l "$(page wrapd.8)" 2>/dev/null | col -b | awk '/^[A-Z]/ {o = ($0 == "OPTIONS")} o')
	for o in $("$d" --help | grep -oE -- '(^|[ ,])--?[a-zA-Z][a-z-]*' | tr -d ' ,' | sort -u); do
		if printf '%s\n' "$txt" | grep -qE -- "(^|[ ,])$o([ ,]|\$)"; then ok "wrapd.8: option $o"; else bad "wrapd.8: option $o undocumented in OPTIONS"; fi
	done
else
	bad "wrapd not built: $d"
fi
echo "$n checks"
exit $fail
