# blockdev: one open per operation (fd identity) and the one "is this device
# in use?" answer (mounts, holders, loop devices, exclusive openers).
libwrapd_a_SOURCES += blockdev/blockdev.h blockdev/internal.h blockdev/open.c blockdev/users.c
EXTRA_DIST += blockdev/NOTES.md

# Units (no root needed): mountinfo parsing, identity, the symlink swapped
# between two opens, the error line.
check_PROGRAMS += tests/blockdev/unit_blockdev
TESTS += tests/blockdev/unit_blockdev
tests_blockdev_unit_blockdev_SOURCES = tests/blockdev/unit_blockdev.c
tests_blockdev_unit_blockdev_CFLAGS = $(UNIT_CFLAGS)
tests_blockdev_unit_blockdev_LDADD = $(UNIT_LIBS)

# On this host with real loop devices and an ext4 mount (skipped without root
# or /dev/loop-control).
check_PROGRAMS += tests/blockdev/host_blockdev
TESTS += tests/blockdev/host_blockdev
tests_blockdev_host_blockdev_SOURCES = tests/blockdev/host_blockdev.c
tests_blockdev_host_blockdev_CFLAGS = $(UNIT_CFLAGS)
tests_blockdev_host_blockdev_LDADD = $(UNIT_LIBS)
