# volume: open/close/status/rewrap/erase/doctor orchestration, loop devices,
# the host volume table.
libwrapd_a_SOURCES += volume/volume.h volume/internal.h volume/table.c volume/loop.c \
	volume/util.c volume/open.c volume/close.c volume/rewrap.c volume/erase.c volume/doctor.c \
	volume/vaultcfg.c volume/format.c

check_PROGRAMS += tests/unit/test_volume_table tests/unit/test_volume_loop
TESTS += tests/unit/test_volume_table tests/unit/test_volume_loop
tests_unit_test_volume_table_SOURCES = tests/unit/test_volume_table.c
tests_unit_test_volume_table_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_volume_table_LDADD = $(UNIT_LIBS)
tests_unit_test_volume_loop_SOURCES = tests/unit/test_volume_loop.c
tests_unit_test_volume_loop_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_volume_loop_LDADD = $(UNIT_LIBS)

# Against the Vault double (started by the test): open without dm, batching,
# foreign tokens, sealed Vault, rewrap, erase.
check_PROGRAMS += tests/unit/test_volume_vault
TESTS += tests/unit/test_volume_vault
tests_unit_test_volume_vault_SOURCES = tests/unit/test_volume_vault.c
tests_unit_test_volume_vault_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_volume_vault_LDADD = $(UNIT_LIBS)

# Real-kernel suite (dm-crypt): built by make check, run by
# tests/vm/run-kernel-tests (one VM boot when this kernel has no dm-crypt).
check_PROGRAMS += tests/kernel/test_volume
tests_kernel_test_volume_SOURCES = tests/kernel/test_volume.c
tests_kernel_test_volume_CPPFLAGS = $(AM_CPPFLAGS) -DWRAPD_ABS_SRCDIR='"$(abs_top_srcdir)"' \
	-DWRAPD_ABS_BUILDDIR='"$(abs_top_builddir)"'
EXTRA_DIST += tests/kernel/test_volume.sh tests/kernel/vhelper.py bench/open

# wrapctl's Vault overrides, applied in one place (volume_vault_config).
TESTS += tests/unit/cli-vault-overrides.sh
dist_noinst_SCRIPTS += tests/unit/cli-vault-overrides.sh
