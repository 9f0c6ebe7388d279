# format: the LUKS2-compatible volume header (owned by the format module).
libwrapd_a_SOURCES += format/format.h format/internal.h format/luks2.c \
	format/validate.c format/wrapd.c format/lock.c format/device.c
