# daemonset: the Kubernetes deployment (manifests, Vault setup, the seed example)
# and the Containerfile of the image it runs; nothing is built from them here.
# Their checks: tests/daemonset/host_manifests.py (parse, kubectl against the
# API-server double, the real config parser, RBAC, the Vault policy against the
# Vault double, the Containerfile's runtime packages against the binaries).
EXTRA_DIST += daemonset/README.md daemonset/wrapd.yaml daemonset/vault-policy.hcl \
	daemonset/vault-setup.sh daemonset/example/my-database.yaml \
	Containerfile .dockerignore
TESTS += tests/daemonset/host_manifests.py
EXTRA_DIST += tests/daemonset/host_manifests.py

# The DaemonSet's liveness/readiness probes against the real agent started with the
# ConfigMap's wrapd.conf (in a network namespace of its own; root only, else a skip).
# With kubernetes = yes the volume table (and its folder) is optional.
TESTS += tests/daemonset/host_probes.sh
EXTRA_DIST += tests/daemonset/host_probes.sh
