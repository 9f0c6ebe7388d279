# dm module build rules (owned by the dm module).
libwrapd_a_SOURCES += dm/dm.h dm/table.c dm/dm.c

check_PROGRAMS += tests/unit/test_dm
TESTS += tests/unit/test_dm
tests_unit_test_dm_SOURCES = tests/unit/test_dm.c
tests_unit_test_dm_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_dm_LDADD = $(UNIT_LIBS)

# Real-kernel tests: built by `make check`, run by tests/vm/run-kernel-tests
# (natively where the kernel has dm-crypt, else in one VM), not as host tests.
check_PROGRAMS += tests/kernel/test_dm_crypt
tests_kernel_test_dm_crypt_SOURCES = tests/kernel/test_dm_crypt.c
tests_kernel_test_dm_crypt_CFLAGS = $(UNIT_CFLAGS)
tests_kernel_test_dm_crypt_LDADD = $(UNIT_LIBS)
