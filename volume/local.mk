# volume: open/close/status/rewrap/erase/doctor orchestration, loop devices,
# the host volume table.
libwrapd_a_SOURCES += volume/volume.h volume/internal.h volume/table.c volume/loop.c \
	volume/util.c volume/open.c volume/close.c volume/rewrap.c volume/erase.c volume/erase_plan.c volume/doctor.c \
	volume/vaultcfg.c volume/format.c volume/keys.c volume/convert.c volume/header.c \
	volume/inspect.c volume/status_json.c volume/online.c volume/dmtable.c

check_PROGRAMS += tests/volume/unit_volume_table tests/volume/host_volume_loop
TESTS += tests/volume/unit_volume_table tests/volume/host_volume_loop
check_PROGRAMS += tests/volume/unit_volume_docs tests/volume/unit_volume_status
TESTS += tests/volume/unit_volume_docs tests/volume/unit_volume_status
tests_volume_unit_volume_status_SOURCES = tests/volume/unit_volume_status.c
tests_volume_unit_volume_status_CFLAGS = $(UNIT_CFLAGS)
tests_volume_unit_volume_status_LDADD = $(UNIT_LIBS)
tests_volume_unit_volume_docs_SOURCES = tests/volume/unit_volume_docs.c
tests_volume_unit_volume_docs_CFLAGS = $(UNIT_CFLAGS)
tests_volume_unit_volume_docs_LDADD = $(UNIT_LIBS)
tests_volume_unit_volume_table_SOURCES = tests/volume/unit_volume_table.c
tests_volume_unit_volume_table_CFLAGS = $(UNIT_CFLAGS)
tests_volume_unit_volume_table_LDADD = $(UNIT_LIBS)
tests_volume_host_volume_loop_SOURCES = tests/volume/host_volume_loop.c
tests_volume_host_volume_loop_CFLAGS = $(UNIT_CFLAGS)
tests_volume_host_volume_loop_LDADD = $(UNIT_LIBS)

# Against the Vault double (started by the test): open without dm, batching,
# foreign tokens, sealed Vault, rewrap, erase.
check_PROGRAMS += tests/volume/host_volume_vault
TESTS += tests/volume/host_volume_vault.sh
dist_noinst_SCRIPTS += tests/volume/host_volume_vault.sh
tests_volume_host_volume_vault_SOURCES = tests/volume/host_volume_vault.c tests/lib/loop.h
tests_volume_host_volume_vault_CFLAGS = $(UNIT_CFLAGS)
tests_volume_host_volume_vault_LDADD = $(UNIT_LIBS)

# Real-kernel suite (dm-crypt): run by tests/vm/run-kernel-tests (one VM boot
# when this kernel has no dm-crypt), not by make check.
dist_noinst_SCRIPTS += tests/volume/vm_volume.sh
EXTRA_DIST += bench/open

# erase of a volume whose encrypt/rekey/decrypt was interrupted (issue 10
# item 1): no marker of the plaintext and no wrapped key left anywhere.
TESTS += tests/volume/host_erase_converting.sh tests/volume/unit_erase_plan
check_PROGRAMS += tests/volume/unit_erase_plan
tests_volume_unit_erase_plan_SOURCES = tests/volume/unit_erase_plan.c
tests_volume_unit_erase_plan_CFLAGS = $(UNIT_CFLAGS)
tests_volume_unit_erase_plan_LDADD = $(UNIT_LIBS)
dist_noinst_SCRIPTS += tests/volume/host_erase_converting.sh

# libFuzzer target for the volume table parser, built like
# tests/fuzz/fuzz_luks2 (format/local.mk); `tests/fuzz/run-fuzz SECONDS
# tests/fuzz/fuzz_volume_table`.
if HAVE_FUZZ_CC
FUZZ_VOLUME_TABLE_SRCS = $(srcdir)/tests/fuzz/fuzz_volume_table.c $(srcdir)/volume/table.c \
	$(srcdir)/common/config.c $(srcdir)/dm/table.c $(FUZZ_FORMAT_SRCS)
tests/fuzz/fuzz_volume_table$(EXEEXT): $(FUZZ_VOLUME_TABLE_SRCS) $(srcdir)/volume/volume.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CC)$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -I$(top_srcdir) \
		-I$(top_builddir) -include config.h $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS) \
		-o $@ $(FUZZ_VOLUME_TABLE_SRCS) $(JANSSON_LIBS) $(CRYPTO_LIBS)
CLEANFILES += tests/fuzz/fuzz_volume_table$(EXEEXT)
check_SCRIPTS += tests/fuzz/fuzz_volume_table$(EXEEXT)
endif
EXTRA_DIST += tests/fuzz/fuzz_volume_table.c

# wrapctl's Vault overrides, applied in one place (volume_vault_config).
TESTS += tests/volume/host_vault_overrides.sh
dist_noinst_SCRIPTS += tests/volume/host_vault_overrides.sh
