# blockdev: one open per operation (fd identity) and the one "is this device
# in use?" answer (mounts, holders, loop devices, exclusive openers).
libwrapd_a_SOURCES += blockdev/blockdev.h blockdev/internal.h blockdev/open.c blockdev/users.c
EXTRA_DIST += blockdev/NOTES.md

# Units (no root needed): mountinfo parsing, identity, the symlink swapped
# between two opens, the error line.
check_PROGRAMS += tests/unit/test_blockdev
TESTS += tests/unit/test_blockdev
tests_unit_test_blockdev_SOURCES = tests/unit/test_blockdev.c
tests_unit_test_blockdev_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_blockdev_LDADD = $(UNIT_LIBS)

# On this host with real loop devices and an ext4 mount (skipped without root
# or /dev/loop-control).
check_PROGRAMS += tests/unit/test_blockdev_host
TESTS += tests/unit/test_blockdev_host
tests_unit_test_blockdev_host_SOURCES = tests/unit/test_blockdev_host.c
tests_unit_test_blockdev_host_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_blockdev_host_LDADD = $(UNIT_LIBS)
