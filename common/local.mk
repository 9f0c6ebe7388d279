# common: small shared helpers every module uses.
libwrapd_a_SOURCES += common/common.h common/werr.c common/secmem.c \
	common/b64.c common/fileio.c common/log.c

check_PROGRAMS += tests/unit/test_common
TESTS += tests/unit/test_common
tests_unit_test_common_SOURCES = tests/unit/test_common.c
tests_unit_test_common_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_common_LDADD = $(UNIT_LIBS)
