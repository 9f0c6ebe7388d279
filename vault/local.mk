# vault module build rules (owned by the vault module).
libwrapd_a_SOURCES += vault/vault.h vault/vault_int.h vault/config.c vault/http.c \
	vault/auth.c vault/transit.c

# Pure parts: config parsing, error formatting, retry decisions, secret extraction.
check_PROGRAMS += tests/unit/test_vault_unit
TESTS += tests/unit/test_vault_unit
tests_unit_test_vault_unit_SOURCES = tests/unit/test_vault_unit.c
tests_unit_test_vault_unit_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_vault_unit_LDADD = $(UNIT_LIBS)
