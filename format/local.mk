# format: the LUKS2-compatible volume header (owned by the format module).
libwrapd_a_SOURCES += format/format.h format/internal.h format/luks2.c \
	format/validate.c format/wrapd.c format/lock.c format/device.c

check_PROGRAMS += tests/unit/test_format
TESTS += tests/unit/test_format
tests_unit_test_format_SOURCES = tests/unit/test_format.c
tests_unit_test_format_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_format_LDADD = $(UNIT_LIBS)
