# keyring module build rules (owned by the keyring module).
libwrapd_a_SOURCES += keyring/keyring.h keyring/keyring.c

check_PROGRAMS += tests/keyring/host_keyring
TESTS += tests/keyring/host_keyring
tests_keyring_host_keyring_SOURCES = tests/keyring/host_keyring.c
tests_keyring_host_keyring_CFLAGS = $(UNIT_CFLAGS)
tests_keyring_host_keyring_LDADD = $(UNIT_LIBS)
