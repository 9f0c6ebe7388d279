#!/bin/bash
# wrapd --check-config and the Kubernetes-mode keys (no server needed): the
# manifest tests use --check-config on the DaemonSet's ConfigMap.
set -u
S=${WRAPD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${WRAPD_BUILDDIR:-.}
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
. "$S/tests/lib/checks.sh"
wrapd=$B/wrapd

conf() { printf '%s\n' "$@" >"$W/c.conf"; chmod 0600 "$W/c.conf"; }
valid() { # WHAT LINES...
	local what=$1; shift
	conf "$@"
	check "$what" env -u NODE_NAME "$wrapd" --config "$W/c.conf" --check-config
}
invalid() { # WHAT EXPECTED-TEXT LINES...
	local what=$1 want=$2; shift 2
	conf "$@"
	if out=$(env -u NODE_NAME "$wrapd" --config "$W/c.conf" --check-config 2>&1); then
		bad "$what (accepted)"
	elif [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && printf '%s' "$out" | grep -qF -- "$want"; then
		ok "$what: $out"
	else
		bad "$what: $out"
	fi
}

# Every key of the contract, with its documented values.
valid "every Kubernetes key" "kubernetes = yes" "discovery_dir = /var/lib/wrapd/discovery" \
	"kubelet_dir = /var/lib/kubelet" "storage_class = encrypted" "node_name = node-1.example" \
	"kube_api_url = https://10.96.0.1:443" \
	"kube_token_file = /var/run/secrets/kubernetes.io/serviceaccount/token" \
	"kube_ca_file = /var/run/secrets/kubernetes.io/serviceaccount/ca.crt" \
	"convert_existing = no" "volume_mode = Block" "fs_type = xfs" "reclaim_policy = Retain" \
	"event_namespace = wrapd-system" "vault_auth = kubernetes" "vault_role = wrapd"
valid "true/false too" "kubernetes = true" "convert_existing = false" "node_name = n"
valid "empty node_name and kube_api_url" "kubernetes = no" "node_name =" "kube_api_url ="
invalid "a bad yes/no" "kubernetes: 'maybe' is not one of" "kubernetes = maybe"
invalid "a bad volume_mode" "volume_mode: 'block' is not one of" "volume_mode = block"
invalid "a bad reclaim_policy" "reclaim_policy" "reclaim_policy = Recycle"
invalid "a storage class that is no DNS name" "storage_class 'Fast_SSD' must be a DNS-1123 subdomain" \
	"storage_class = Fast_SSD"
invalid "a node name that is no DNS name" "node_name 'Node_1' must be a DNS-1123 subdomain" "node_name = Node_1"
invalid "an event namespace that is no label" "event_namespace 'a.b' must be a DNS-1123 label" \
	"event_namespace = a.b"
invalid "fs_type with a slash" "fs_type '../x' must be a file system type" "fs_type = ../x"
invalid "kube_api_url without a scheme" "must be an https:// URL" "kube_api_url = 10.0.0.1:6443"
invalid "relative discovery_dir" "discovery_dir" "discovery_dir = discovery"
invalid "an unknown key" "unknown key 'discovery_folder'" "discovery_folder = /x"
invalid "a key set twice" "'storage_class' set twice" "storage_class = a" "storage_class = b"

# node_name resolution: the key, then NODE_NAME, then the host name.
conf "kubernetes = yes"
check "NODE_NAME is used when node_name is empty" env NODE_NAME=worker-7 "$wrapd" --config "$W/c.conf" --check-config
if out=$(env NODE_NAME=Worker_7 "$wrapd" --config "$W/c.conf" --check-config 2>&1); then
	bad "a NODE_NAME that is no DNS name accepted"
else
	printf '%s' "$out" | grep -q "node name from NODE_NAME ('Worker_7')" && ok "a bad NODE_NAME is named: $out" ||
		bad "a bad NODE_NAME: $out"
fi
# Outside Kubernetes mode the node name is not needed.
conf "kubernetes = no"
check "no node name needed outside Kubernetes mode" env NODE_NAME=Bad_Name "$wrapd" --config "$W/c.conf" --check-config
# The example config, defaults uncommented, passes.
sed -e 's/^#\([a-z0-9_]* = .\)/\1/' -e "/^volume_table = /d" "$S/examples/wrapd.conf" >"$W/ex.conf"
chmod 0600 "$W/ex.conf"
check "examples/wrapd.conf with its defaults" "$wrapd" --config "$W/ex.conf" --check-config

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
