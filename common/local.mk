# common: small shared helpers every module uses.
libwrapd_a_SOURCES += common/common.h common/config.h common/config.c common/werr.c common/secmem.c \
	common/b64.c common/fileio.c common/log.c common/names.c

check_PROGRAMS += tests/unit/test_common
TESTS += tests/unit/test_common
tests_unit_test_common_SOURCES = tests/unit/test_common.c
tests_unit_test_common_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_common_LDADD = $(UNIT_LIBS)

# The wrapd.conf parser (common/config.c): syntax and value types.
check_PROGRAMS += tests/unit/test_config
TESTS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_LIBS)
