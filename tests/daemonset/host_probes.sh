#!/bin/bash
# The DaemonSet's probes against the real agent, as kubelet would send them: wrapd
# runs with the ConfigMap's wrapd.conf, laid out as a ConfigMap volume is (the file a
# symlink through ..data), only the host paths moved under a scratch root and
# vault_addr pointed at the Vault double; the API server is the Kubernetes double over
# HTTPS, reached through KUBERNETES_SERVICE_HOST/PORT as in a pod. All of it in a
# network namespace of its own (unshare -n, root only), so metrics_listen 0.0.0.0:9842
# is private to the test. Then the liveness and readiness probes of the DaemonSet
# (path and port read from wrapd.yaml) must answer 200.
set -u
S=${WRAPD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${WRAPD_BUILDDIR:-.}
PY=${WRAPD_PYTHON:-/usr/bin/python3}
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
	echo "SKIP: needs root, unshare and ip (a network namespace of its own)"
	exit 77
fi
if [ -z "${WRAPD_PROBES_NETNS:-}" ]; then
	exec unshare -n env WRAPD_PROBES_NETNS=1 bash "$0" "$@"
fi
ip link set lo up || { echo "not ok - lo up in the test's network namespace"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
W=$(mktemp -d)
agent=
cleanup() {
	[ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
	vault_double_stop
	kube_double_stop
	rm -rf "$W"
}
trap cleanup EXIT
. "$S/tests/lib/checks.sh"
. "$S/tests/lib/kube-double.sh"

# What the manifest says: the config, the args, the probes.
"$PY" - "$S/daemonset/wrapd.yaml" "$W" <<'EOF' || { echo "not ok - reading wrapd.yaml"; exit 1; }
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
w = sys.argv[2]
cm = [d for d in docs if d["kind"] == "ConfigMap"][0]
ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
c = ds["spec"]["template"]["spec"]["containers"][0]
open(w + "/wrapd.conf.in", "w").write(cm["data"]["wrapd.conf"])
open(w + "/args", "w").write("\n".join(c["args"]) + "\n")
with open(w + "/probes", "w") as f:
    for p in ("livenessProbe", "readinessProbe"):
        g = c[p]["httpGet"]
        f.write("%s %s %s\n" % (p, g["port"], g["path"]))
EOF
config=$(sed -n '/^--config$/{n;p}' "$W/args")
check "the DaemonSet names its config file ($config)" test -n "$config"

# The ConfigMap volume: <mount>/wrapd.conf -> ..data/wrapd.conf, ..data -> ..<timestamp>
mkdir -p "$W/cm/..2026_11_30" "$W/discovery" "$W/kubelet/pods" "$W/run" "$W/vault"
sed -e "s|^discovery_dir = .*|discovery_dir = $W/discovery|" \
	-e "s|^kubelet_dir = .*|kubelet_dir = $W/kubelet|" \
	-e "s|^status_socket = .*|status_socket = $W/run/wrapd.sock|" \
	-e "s|^vault_jwt_file = .*|vault_jwt_file = $W/vault/token|" \
	-e "s|^vault_addr = .*|vault_addr = VAULT_ADDR_HERE|" \
	"$W/wrapd.conf.in" >"$W/cm/..2026_11_30/$(basename "$config")"
ln -s ..2026_11_30 "$W/cm/..data"
ln -s "..data/$(basename "$config")" "$W/cm/$(basename "$config")"
chmod 0400 "$W/cm/..2026_11_30/$(basename "$config")"

# Vault as vault-setup.sh leaves it, and the pod's projected token registered with it.
vault_double_start "$S" "$W" vault --root-token root ||
	{ echo "not ok - the Vault double did not start"; exit 1; }
vault="http://127.0.0.1:$vault_double_port"
sed -i "s|VAULT_ADDR_HERE|$vault|" "$W/cm/..2026_11_30/$(basename "$config")"
check "vault-setup.sh" env VAULT_ADDR="$vault" VAULT_TOKEN=root sh "$S/daemonset/vault-setup.sh"
(umask 077 && echo "projected-jwt-$$" >"$W/vault/token")
check "the pod's Vault token registered" curl -sSf -X POST -d \
	"{\"jwt\":\"projected-jwt-$$\",\"service_account_name\":\"wrapd\",\"namespace\":\"wrapd\"}" \
	"$vault/_double/k8s/jwt"

# The API server over HTTPS, in-cluster style.
sh "$S/tests/vault-double/make-test-ca" "$W/ca" >/dev/null
kube_double_start "$S" "$W" api --node node-a --tls-cert "$W/ca/server.crt" \
	--tls-key "$W/ca/server.key" || { echo "not ok - the API double did not start"; exit 1; }

KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$kube_double_port NODE_NAME=node-a \
	"$B/wrapd" --config "$W/cm/$(basename "$config")" \
	-o "kube_token_file=$kube_double_token_file" -o "kube_ca_file=$W/ca/ca.crt" \
	>"$W/agent.log" 2>&1 &
agent=$!

# kubelet's probes: GET http://<pod IP>:<port><path>, success = 2xx/3xx.
probe() { # PORT PATH: bounded wait (60 s) for a 200
	local code
	for _ in $(seq 1 600); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2")
		[ "$code" = 200 ] && return 0
		kill -0 "$agent" 2>/dev/null || { echo "the agent exited:"; tail -5 "$W/agent.log"; return 1; }
		sleep 0.1
	done
	echo "last answer $code"
	return 1
}
while read -r what port path; do
	check "$what: GET :$port$path answers 200 from the agent" probe "$port" "$path"
done <"$W/probes"
check "the agent is still running" kill -0 "$agent"
[ "$fail" -ne 0 ] && sed 's/^/    # /' "$W/agent.log" | tail -20

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
