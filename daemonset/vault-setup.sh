#!/bin/sh
# vault-setup.sh: configure Vault for the wrapd DaemonSet, once per cluster.
#
#   VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=<an admin token> \
#   [VAULT_CACERT=ca.pem] [KUBERNETES_HOST=https://<api-server>:6443] \
#   [KUBERNETES_CA_CERT=ca.crt] daemonset/vault-setup.sh
#
# Over Vault's HTTP API (curl; the same variables as the vault CLI), idempotent:
#  1. the transit secrets engine at transit/ (kept if it is there);
#  2. the Transit key "wrapd" with derived=true (an existing key must be derived);
#  3. the policy "wrapd" from vault-policy.hcl beside this script;
#  4. the kubernetes auth method at auth/kubernetes/ (kept if it is there), and,
#     with KUBERNETES_HOST, its config (Vault then uses its own service account
#     or the token reviewer it already has to check tokens);
#  5. the role "wrapd": service account wrapd in namespace wrapd, audience
#     "vault" (the DaemonSet's projected token), policy wrapd, 1 h tokens.
# The vault CLI equivalent of step 5:
#   vault write auth/kubernetes/role/wrapd bound_service_account_names=wrapd \
#     bound_service_account_namespaces=wrapd audience=vault token_policies=wrapd \
#     token_ttl=1h token_max_ttl=24h
set -eu

: "${VAULT_ADDR:?set VAULT_ADDR to your Vault, e.g. https://vault.example:8200}"
: "${VAULT_TOKEN:?set VAULT_TOKEN to a token that may mount engines and write policies}"
here=$(cd "$(dirname "$0")" && pwd)
policy_file=${WRAPD_VAULT_POLICY:-$here/vault-policy.hcl}
mount=${WRAPD_VAULT_MOUNT:-transit}
key=${WRAPD_VAULT_KEY:-wrapd}
auth=${WRAPD_VAULT_AUTH_MOUNT:-kubernetes}
role=${WRAPD_VAULT_ROLE:-wrapd}
namespace=${WRAPD_NAMESPACE:-wrapd}
account=${WRAPD_SERVICE_ACCOUNT:-wrapd}

# vault_call METHOD PATH [JSON] -> the body on stdout; the status in $status
vault_call() {
	out=$(curl -sS -X "$1" ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} \
		-H "X-Vault-Token: $VAULT_TOKEN" -H "X-Vault-Request: true" \
		${VAULT_NAMESPACE:+-H "X-Vault-Namespace: $VAULT_NAMESPACE"} \
		${3:+-H 'Content-Type: application/json' --data "$3"} \
		-w '\n%{http_code}' "$VAULT_ADDR/v1/$2") || {
		echo "vault-setup: cannot reach $VAULT_ADDR" >&2
		exit 1
	}
	status=$(printf '%s\n' "$out" | tail -n 1)
	body=$(printf '%s\n' "$out" | sed '$d')
}

need() { # WHAT OK-CODES...
	what=$1
	shift
	for c in "$@"; do
		[ "$status" = "$c" ] && return 0
	done
	echo "vault-setup: $what failed (HTTP $status): $body" >&2
	exit 1
}

# A JSON string from a file: backslashes, quotes, tabs and newlines escaped.
json_string() {
	printf '"'
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' "$1" | awk '{printf "%s\\n", $0}'
	printf '"'
}

[ -r "$policy_file" ] || { echo "vault-setup: $policy_file is missing" >&2; exit 1; }
sed_mount=$(printf '%s' "$mount" | sed 's/[][\.*^$/&]/\\&/g')
policy_tmp=$(mktemp)
trap 'rm -f "$policy_tmp"' EXIT
sed -e "s/\"transit\//\"$sed_mount\//" -e "s/\/wrapd\"/\/$key\"/" "$policy_file" >"$policy_tmp"

vault_call GET "sys/mounts"
need "listing the secrets engines" 200
case $(printf '%s' "$body" | tr -d ' \n') in
*"\"$mount/\":{"*) ;;
*)
	vault_call POST "sys/mounts/$mount" '{"type":"transit"}'
	need "enabling transit at $mount/" 200 204
	echo "transit enabled at $mount/"
	;;
esac

vault_call GET "$mount/keys/$key"
if [ "$status" = 404 ]; then
	vault_call POST "$mount/keys/$key" '{"type":"aes256-gcm96","derived":true}'
	need "creating the key $mount/keys/$key" 200 204
	echo "key $mount/keys/$key created (derived)"
else
	need "reading the key $mount/keys/$key" 200
	case $(printf '%s' "$body" | tr -d ' \n') in
	*'"derived":true'*) echo "key $mount/keys/$key exists (derived)" ;;
	*) echo "vault-setup: $mount/keys/$key exists and is not derived: wrapd refuses it; use another key name (WRAPD_VAULT_KEY)" >&2
		exit 1 ;;
	esac
fi

vault_call PUT "sys/policies/acl/$role" "{\"policy\":$(json_string "$policy_tmp")}"
need "writing the policy $role" 200 204
echo "policy $role written"

vault_call GET "sys/auth"
need "listing the auth methods" 200
case $(printf '%s' "$body" | tr -d ' \n') in
*"\"$auth/\":{"*) ;;
*)
	vault_call POST "sys/auth/$auth" '{"type":"kubernetes"}'
	need "enabling kubernetes auth at auth/$auth/" 200 204
	echo "kubernetes auth enabled at auth/$auth/"
	;;
esac

if [ -n "${KUBERNETES_HOST:-}" ]; then
	cfg="{\"kubernetes_host\":\"$KUBERNETES_HOST\""
	[ -n "${KUBERNETES_CA_CERT:-}" ] && cfg="$cfg,\"kubernetes_ca_cert\":$(json_string "$KUBERNETES_CA_CERT")"
	vault_call POST "auth/$auth/config" "$cfg}"
	need "configuring auth/$auth" 200 204
	echo "auth/$auth configured for $KUBERNETES_HOST"
fi

vault_call POST "auth/$auth/role/$role" "{\"bound_service_account_names\":[\"$account\"],\"bound_service_account_namespaces\":[\"$namespace\"],\"audience\":\"vault\",\"token_policies\":[\"$role\"],\"token_ttl\":\"1h\",\"token_max_ttl\":\"24h\"}"
need "writing the role auth/$auth/role/$role" 200 204
echo "role auth/$auth/role/$role written: $namespace/$account may unwrap with policy $role"
