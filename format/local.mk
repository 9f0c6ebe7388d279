# format: the LUKS2-compatible volume header (owned by the format module).
# (the same list is in FUZZ_LUKS2_SRCS below)
libwrapd_a_SOURCES += format/format.h format/internal.h format/luks2.c format/validate.c \
	format/uuid.c format/digest.c format/new.c format/segments.c format/token.c \
	format/requirements.c format/conversion.c format/lock.c format/device.c

check_PROGRAMS += tests/format/unit_format
TESTS += tests/format/unit_format
tests_format_unit_format_SOURCES = tests/format/unit_format.c
tests_format_unit_format_CFLAGS = $(UNIT_CFLAGS)
tests_format_unit_format_LDADD = $(UNIT_LIBS)

# wrapctl format/inspect/header against real cryptsetup, blkid and the Vault double.
TESTS += tests/format/host_interop.sh
dist_noinst_SCRIPTS += tests/format/host_interop.sh tests/fuzz/run-fuzz

# Hostile headers (Vault path fields, cipher, digest bounds, a foreign
# vault_addr) refused before any Vault request, end to end with the double.
TESTS += tests/format/host_hostile.sh
dist_noinst_SCRIPTS += tests/format/host_hostile.sh tests/format/luks2-edit.py

# libFuzzer target for the header parser, built with $(FUZZ_CC) (clang) when
# configure found one. Compiled from sources (not libwrapd.a) so that gcc's and
# clang's sanitizer runtimes never mix. `tests/fuzz/run-fuzz SECONDS` runs it.
if HAVE_FUZZ_CC
# FUZZ_FORMAT_SRCS: the format module and common, for fuzz targets that need them.
FUZZ_FORMAT_SRCS = $(srcdir)/format/luks2.c \
	$(srcdir)/format/validate.c $(srcdir)/format/uuid.c $(srcdir)/format/digest.c \
	$(srcdir)/format/new.c $(srcdir)/format/segments.c $(srcdir)/format/token.c \
	$(srcdir)/format/requirements.c $(srcdir)/format/conversion.c $(srcdir)/format/lock.c \
	$(srcdir)/format/device.c $(srcdir)/common/werr.c $(srcdir)/common/secmem.c \
	$(srcdir)/common/b64.c $(srcdir)/common/fileio.c $(srcdir)/common/log.c \
	$(srcdir)/common/names.c
FUZZ_LUKS2_SRCS = $(srcdir)/tests/fuzz/fuzz_luks2.c $(FUZZ_FORMAT_SRCS)
tests/fuzz/fuzz_luks2$(EXEEXT): $(FUZZ_LUKS2_SRCS) $(srcdir)/format/format.h $(srcdir)/format/internal.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CC)$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -I$(top_srcdir) \
		-I$(top_builddir) -include config.h $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS) \
		-o $@ $(FUZZ_LUKS2_SRCS) $(JANSSON_LIBS) $(CRYPTO_LIBS)
CLEANFILES += tests/fuzz/fuzz_luks2$(EXEEXT)
# CI smoke: a short bounded run of the fuzzer as part of make check.
TESTS += tests/fuzz/fuzz-smoke.sh
dist_noinst_SCRIPTS += tests/fuzz/fuzz-smoke.sh
# Built before the tests run (a .log prerequisite would replace automake's rule).
check_SCRIPTS = tests/fuzz/fuzz_luks2$(EXEEXT)
endif
EXTRA_DIST += tests/fuzz/fuzz_luks2.c

# Real-kernel test (dm-crypt, loop device): run by tests/vm/run-kernel-tests
# (one VM boot when this kernel has no dm-crypt), not by make check.
dist_noinst_SCRIPTS += tests/format/vm_format.sh

# luks2_device_open: the one open + lock + read header (on blockdev/).
libwrapd_a_SOURCES += format/devopen.c
check_PROGRAMS += tests/format/host_format_device
TESTS += tests/format/host_format_device
tests_format_host_format_device_SOURCES = tests/format/host_format_device.c
tests_format_host_format_device_CFLAGS = $(UNIT_CFLAGS)
tests_format_host_format_device_LDADD = $(UNIT_LIBS)

# The one header commit through a writer (the engine's path): order, checks.
check_PROGRAMS += tests/format/unit_format_commit
TESTS += tests/format/unit_format_commit
tests_format_unit_format_commit_SOURCES = tests/format/unit_format_commit.c
tests_format_unit_format_commit_CFLAGS = $(UNIT_CFLAGS)
tests_format_unit_format_commit_LDADD = $(UNIT_LIBS)
