# keyring module build rules (owned by the keyring module).
libwrapd_a_SOURCES += keyring/keyring.h keyring/keyring.c

check_PROGRAMS += tests/unit/test_keyring
TESTS += tests/unit/test_keyring
tests_unit_test_keyring_SOURCES = tests/unit/test_keyring.c
tests_unit_test_keyring_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_keyring_LDADD = $(UNIT_LIBS)
