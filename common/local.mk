# common: small shared helpers every module uses.
libwrapd_a_SOURCES += common/common.h common/config.h common/config.c common/werr.c common/secmem.c \
	common/b64.c common/fileio.c common/log.c common/names.c

check_PROGRAMS += tests/common/unit_common
TESTS += tests/common/unit_common
tests_common_unit_common_SOURCES = tests/common/unit_common.c
tests_common_unit_common_CFLAGS = $(UNIT_CFLAGS)
tests_common_unit_common_LDADD = $(UNIT_LIBS)

# The wrapd.conf parser (common/config.c): syntax and value types.
check_PROGRAMS += tests/common/unit_config
TESTS += tests/common/unit_config
tests_common_unit_config_SOURCES = tests/common/unit_config.c
tests_common_unit_config_CFLAGS = $(UNIT_CFLAGS)
tests_common_unit_config_LDADD = $(UNIT_LIBS)
