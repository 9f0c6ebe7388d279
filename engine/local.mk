# engine module build rules (owned by the engine module).
libwrapd_a_SOURCES += engine/engine.h engine/xts.c engine/io.c engine/pipeline.c \
	engine/fsprobe.c engine/convert.c
EXTRA_DIST += engine/README.md
