# kube: the Kubernetes API client (kube/kube.h says what it owns).
libwrapd_a_SOURCES += kube/kube.h kube/kube_int.h kube/json.c kube/client.c kube/watch.c
EXTRA_DIST += kube/NOTES.md

# The JSON side: PV/Event documents, the name rule, PVs, lists, Status, the
# watch stream and its line splitter.
check_PROGRAMS += tests/kube/unit_kube
TESTS += tests/kube/unit_kube
tests_kube_unit_kube_SOURCES = tests/kube/unit_kube.c
tests_kube_unit_kube_CFLAGS = $(UNIT_CFLAGS)
tests_kube_unit_kube_LDADD = $(UNIT_LIBS)

# libFuzzer target for everything that reads API-server answers, built like
# tests/fuzz/fuzz_luks2 (format/local.mk); `tests/fuzz/run-fuzz SECONDS
# tests/fuzz/fuzz_kube_json`.
if HAVE_FUZZ_CC
FUZZ_KUBE_SRCS = $(srcdir)/tests/fuzz/fuzz_kube_json.c $(srcdir)/kube/json.c $(srcdir)/common/werr.c
tests/fuzz/fuzz_kube_json$(EXEEXT): $(FUZZ_KUBE_SRCS) $(srcdir)/kube/kube.h $(srcdir)/kube/kube_int.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CC)$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -I$(top_srcdir) \
		-I$(top_builddir) -include config.h $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS) \
		-o $@ $(FUZZ_KUBE_SRCS) $(JANSSON_LIBS) $(CRYPTO_LIBS)
CLEANFILES += tests/fuzz/fuzz_kube_json$(EXEEXT)
check_SCRIPTS += tests/fuzz/fuzz_kube_json$(EXEEXT)
endif
EXTRA_DIST += tests/fuzz/fuzz_kube_json.c

# The client over HTTP against the Kubernetes API-server double.
check_PROGRAMS += tests/kube/host_kube_client
tests_kube_host_kube_client_SOURCES = tests/kube/host_kube_client.c
tests_kube_host_kube_client_CFLAGS = $(UNIT_CFLAGS)
tests_kube_host_kube_client_LDADD = $(UNIT_LIBS)
TESTS += tests/kube/host_kube_client.sh
dist_noinst_SCRIPTS += tests/kube/host_kube_client.sh
