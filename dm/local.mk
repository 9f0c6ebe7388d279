# dm module build rules (owned by the dm module).
libwrapd_a_SOURCES += dm/dm.h dm/table.c dm/dm.c

check_PROGRAMS += tests/dm/unit_dm
TESTS += tests/dm/unit_dm
tests_dm_unit_dm_SOURCES = tests/dm/unit_dm.c
tests_dm_unit_dm_CFLAGS = $(UNIT_CFLAGS)
tests_dm_unit_dm_LDADD = $(UNIT_LIBS)

# Real-kernel tests: built by `make check`, run by tests/vm/run-kernel-tests
# (natively where the kernel has dm-crypt, else in one VM), not as host tests.
check_PROGRAMS += tests/dm/vm_dm_crypt
tests_dm_vm_dm_crypt_SOURCES = tests/dm/vm_dm_crypt.c
tests_dm_vm_dm_crypt_CFLAGS = $(UNIT_CFLAGS)
tests_dm_vm_dm_crypt_LDADD = $(UNIT_LIBS)
