# agent: the wrapd node daemon.
sbin_PROGRAMS += wrapd
wrapd_SOURCES = agent/main.c
wrapd_LDADD = $(WRAPD_LIBS)
EXTRA_DIST += systemd/wrapd.service daemonset/wrapd.yaml
