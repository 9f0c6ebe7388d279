# agent: the wrapd node daemon (agent/agent.h says what each file owns).
# agent/settings.c is in the library: wrapctl checks the agent's keys of the
# shared wrapd.conf and asks a running agent for its status.
libwrapd_a_SOURCES += agent/settings.h agent/settings.c
sbin_PROGRAMS += wrapd
wrapd_SOURCES = agent/agent.h agent/main.c agent/config.c agent/log.c agent/loop.c \
	agent/worker.c agent/state.c agent/table_watch.c agent/status.c agent/hooks.c \
	agent/notify.h agent/notify.c agent/metrics.h agent/metrics.c agent/httpd.h agent/httpd.c \
	agent/kmode.h agent/kube_mode.c agent/discovery.c agent/kubelet_watch.c agent/kube_jobs.c
wrapd_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS)
wrapd_LDADD = $(WRAPD_LIBS) $(MHD_LIBS) -lm
EXTRA_DIST += systemd/wrapd.service daemonset/wrapd.yaml
# Real-kernel suite (dm-crypt, the Vault double): run by
# tests/vm/run-kernel-tests, not by make check.
dist_noinst_SCRIPTS += tests/agent/vm_agent.sh tests/agent/vm_agent_rekey.sh tests/agent/vm_kube.sh tests/agent/vm_kube_convert.sh \
	tests/agent/vm_systemd.sh
EXTRA_DIST += tests/agent/agentq.py bench/agent

# On this host, against the Vault double (no dm-crypt needed).
TESTS += tests/agent/host_agent.sh
dist_noinst_SCRIPTS += tests/agent/host_agent.sh

# Kubernetes mode: the config keys and --check-config (no server).
TESTS += tests/agent/host_kube_config.sh
dist_noinst_SCRIPTS += tests/agent/host_kube_config.sh

# The notify protocol against listeners of the test's own; the metrics
# registry and its text format. The sources are the agent's (not in libwrapd).
check_PROGRAMS += tests/agent/unit_notify tests/agent/unit_metrics
TESTS += tests/agent/unit_notify tests/agent/unit_metrics
tests_agent_unit_notify_SOURCES = tests/agent/unit_notify.c agent/notify.c agent/notify.h
tests_agent_unit_notify_CFLAGS = $(UNIT_CFLAGS)
tests_agent_unit_notify_LDADD = $(UNIT_LIBS)
tests_agent_unit_metrics_SOURCES = tests/agent/unit_metrics.c agent/metrics.c agent/metrics.h
tests_agent_unit_metrics_CFLAGS = $(UNIT_CFLAGS)
tests_agent_unit_metrics_LDADD = $(UNIT_LIBS) -lm

# The HTTP endpoint (metrics_listen) against the Vault double, parsed with
# python3-prometheus-client.
TESTS += tests/agent/host_agent_metrics.sh
dist_noinst_SCRIPTS += tests/agent/host_agent_metrics.sh
EXTRA_DIST += tests/agent/metricsq.py
# Kubernetes mode on this host against the API and Vault doubles (no dm: discovery,
# readiness, reconcile of orphan PVs, idle).
TESTS += tests/agent/host_kube_agent.sh
dist_noinst_SCRIPTS += tests/agent/host_kube_agent.sh
# convert_existing on this host: an interrupted in-place encryption resumed by
# the agent, ConvertStarted before ConvertDone (the engine converts offline).
TESTS += tests/agent/host_kube_convert.sh
dist_noinst_SCRIPTS += tests/agent/host_kube_convert.sh
