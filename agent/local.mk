# agent: the wrapd node daemon (agent/agent.h says what each file owns).
# agent/settings.c is in the library: wrapctl checks the agent's keys of the
# shared wrapd.conf and asks a running agent for its status.
libwrapd_a_SOURCES += agent/settings.h agent/settings.c
sbin_PROGRAMS += wrapd
wrapd_SOURCES = agent/agent.h agent/main.c agent/config.c agent/log.c agent/loop.c \
	agent/worker.c agent/state.c agent/table_watch.c agent/status.c agent/hooks.c
wrapd_LDADD = $(WRAPD_LIBS)
EXTRA_DIST += systemd/wrapd.service daemonset/wrapd.yaml
# Real-kernel suite (dm-crypt, the Vault double): run by
# tests/vm/run-kernel-tests, not by make check.
dist_noinst_SCRIPTS += tests/agent/vm_agent.sh
EXTRA_DIST += tests/agent/agentq.py bench/agent

# On this host, against the Vault double (no dm-crypt needed).
TESTS += tests/agent/host_agent.sh
dist_noinst_SCRIPTS += tests/agent/host_agent.sh

# Kubernetes mode: the config keys and --check-config (no server).
TESTS += tests/agent/host_kube_config.sh
dist_noinst_SCRIPTS += tests/agent/host_kube_config.sh
