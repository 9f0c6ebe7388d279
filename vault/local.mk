# vault module build rules (owned by the vault module).
libwrapd_a_SOURCES += vault/vault.h vault/vault_int.h vault/config.c vault/http.c \
	vault/extract.c vault/auth.c vault/transit.c vault/status.c
EXTRA_DIST += vault/README.md

# Pure parts: config parsing, error formatting, retry decisions, secret extraction.
check_PROGRAMS += tests/vault/unit_vault
TESTS += tests/vault/unit_vault
tests_vault_unit_vault_SOURCES = tests/vault/unit_vault.c
tests_vault_unit_vault_CFLAGS = $(UNIT_CFLAGS)
tests_vault_unit_vault_LDADD = $(UNIT_LIBS)

# The client over real HTTP and HTTPS against the Vault double: the harness
# starts the double(s) with a fresh test CA, runs test_vault_client and
# `wrapctl vault status`, and stops them. It fails (never skips) when python3
# or python3-cryptography is missing.
check_PROGRAMS += tests/vault/host_vault_client
tests_vault_host_vault_client_SOURCES = tests/vault/host_vault_client.c
tests_vault_host_vault_client_CFLAGS = $(UNIT_CFLAGS)
tests_vault_host_vault_client_LDADD = $(UNIT_LIBS)
TESTS += tests/vault/host_vault_client.sh
dist_noinst_SCRIPTS += tests/vault/host_vault_client.sh

# libFuzzer targets for the wrapd.conf parser (every module's section) and the
# Vault response parser (secret extraction, jansson, what each call reads),
# built like tests/fuzz/fuzz_luks2 (format/local.mk); run by
# `tests/fuzz/run-fuzz SECONDS tests/fuzz/fuzz_config` (or fuzz_vault_response).
if HAVE_FUZZ_CC
FUZZ_CONFIG_SRCS = $(srcdir)/tests/fuzz/fuzz_config.c $(srcdir)/common/config.c \
	$(srcdir)/vault/config.c $(srcdir)/volume/table.c $(srcdir)/agent/settings.c $(srcdir)/kube/json.c \
	$(srcdir)/dm/table.c $(FUZZ_FORMAT_SRCS)
tests/fuzz/fuzz_config$(EXEEXT): $(FUZZ_CONFIG_SRCS) $(srcdir)/common/config.h \
		$(srcdir)/vault/vault.h $(srcdir)/vault/vault_int.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CC)$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -I$(top_srcdir) \
		-I$(top_builddir) -include config.h $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS) \
		-o $@ $(FUZZ_CONFIG_SRCS) $(JANSSON_LIBS) $(CRYPTO_LIBS)
FUZZ_VAULT_SRCS = $(srcdir)/tests/fuzz/fuzz_vault_response.c $(srcdir)/vault/http.c \
	$(srcdir)/vault/extract.c \
	$(srcdir)/vault/auth.c $(srcdir)/vault/transit.c $(srcdir)/vault/config.c \
	$(srcdir)/common/config.c $(FUZZ_FORMAT_SRCS)
tests/fuzz/fuzz_vault_response$(EXEEXT): $(FUZZ_VAULT_SRCS) $(srcdir)/vault/vault.h \
		$(srcdir)/vault/vault_int.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CC)$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -I$(top_srcdir) \
		-I$(top_builddir) -include config.h $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS) \
		-o $@ $(FUZZ_VAULT_SRCS) $(CURL_LIBS) $(JANSSON_LIBS) $(CRYPTO_LIBS)
CLEANFILES += tests/fuzz/fuzz_config$(EXEEXT) tests/fuzz/fuzz_vault_response$(EXEEXT)
check_SCRIPTS += tests/fuzz/fuzz_config$(EXEEXT) tests/fuzz/fuzz_vault_response$(EXEEXT)
endif
EXTRA_DIST += tests/fuzz/fuzz_config.c tests/fuzz/fuzz_vault_response.c

# A Vault answer's TTL as a huge JSON real (1e300) is clamped, not converted
# with undefined behaviour (issue 10 item 9).
TESTS += tests/vault/host_vault_ttl.sh
dist_noinst_SCRIPTS += tests/vault/host_vault_ttl.sh
