#!/bin/bash
# kube/ over HTTP against the Kubernetes API-server double: PV create (409 on
# ours and on someone else's), get/patch/delete (uid precondition), list by
# label selector, Events, the watch (events, relist on compaction and on a
# double restart, back-off on 429/503, bookmarks then resume without a
# relist, no request and no wake-up at idle), token rotation and 401.
set -u
S=${WRAPD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${WRAPD_BUILDDIR:-.}
W=$(mktemp -d)
. "${KUBE_DOUBLE_SRCDIR:-$S}/tests/lib/kube-double.sh"
trap 'kube_double_stop; rm -rf "$W"' EXIT
kube_double_start "${KUBE_DOUBLE_SRCDIR:-$S}" "$W" kube --bookmark-interval 3600 || exit 1
KUBE_URL=$kube_double_url KUBE_TOKEN_FILE=$kube_double_token_file "$B/tests/kube/host_kube_client"
