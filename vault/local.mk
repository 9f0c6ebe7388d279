# vault module build rules (owned by the vault module).
libwrapd_a_SOURCES += vault/vault.h vault/vault_int.h vault/config.c vault/http.c \
	vault/auth.c vault/transit.c
EXTRA_DIST += vault/README.md

# Pure parts: config parsing, error formatting, retry decisions, secret extraction.
check_PROGRAMS += tests/unit/test_vault_unit
TESTS += tests/unit/test_vault_unit
tests_unit_test_vault_unit_SOURCES = tests/unit/test_vault_unit.c
tests_unit_test_vault_unit_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_vault_unit_LDADD = $(UNIT_LIBS)

# The client over real HTTP and HTTPS against the Vault double: the harness
# starts the double(s) with a fresh test CA, runs test_vault_client and
# `wrapctl vault status`, and stops them. It fails (never skips) when python3
# or python3-cryptography is missing.
check_PROGRAMS += tests/unit/test_vault_client
tests_unit_test_vault_client_SOURCES = tests/unit/test_vault_client.c
tests_unit_test_vault_client_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_vault_client_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/vault-client.sh
dist_noinst_SCRIPTS += tests/unit/vault-client.sh
