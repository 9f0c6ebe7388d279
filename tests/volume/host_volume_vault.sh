#!/bin/bash
# Runs the cmocka program host_volume_vault against the Vault double, started
# the one shared way (tests/lib/checks.sh -> tests/lib/vault-double.sh); the
# program reads VAULT_ADDR/VAULT_TOKEN and drives the double's control API.
set -u
srcdir=${WRAPD_SRCDIR:-$(dirname "$0")/../..}
builddir=${WRAPD_BUILDDIR:-$(pwd)}
. "$srcdir/tests/lib/checks.sh"
W=$(mktemp -d /tmp/wrapd-vv.XXXXXX) || exit 1
trap 'stop_vault_double; rm -rf "$W"' EXIT
start_vault_double "$srcdir" "$W"
"$builddir/tests/volume/host_volume_vault"
