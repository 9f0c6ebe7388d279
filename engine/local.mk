# engine module build rules (owned by the engine module).
libwrapd_a_SOURCES += engine/engine.h engine/internal.h engine/xts.c engine/io.c \
	engine/pipeline.c engine/fsprobe.c engine/records.c engine/plan.c engine/execute.c \
	engine/recover.c engine/convert.c engine/online.c
EXTRA_DIST += engine/README.md

check_PROGRAMS += tests/engine/host_engine
TESTS += tests/engine/host_engine
tests_engine_host_engine_SOURCES = tests/engine/host_engine.c tests/engine/engine_testlib.h
tests_engine_host_engine_CFLAGS = $(UNIT_CFLAGS)
tests_engine_host_engine_LDADD = $(UNIT_LIBS)

check_PROGRAMS += tests/engine/host_engine_crash
TESTS += tests/engine/host_engine_crash
tests_engine_host_engine_crash_SOURCES = tests/engine/host_engine_crash.c tests/engine/engine_testlib.h
tests_engine_host_engine_crash_CFLAGS = $(UNIT_CFLAGS)
tests_engine_host_engine_crash_LDADD = $(UNIT_LIBS)
dist_noinst_SCRIPTS += tests/crash/run-crash-full

# The online rekey's protocol against a simulated live mapping: SIGKILL (with
# the guardian) and power loss at random ops and driver steps.
check_PROGRAMS += tests/engine/host_engine_online
TESTS += tests/engine/host_engine_online
tests_engine_host_engine_online_SOURCES = tests/engine/host_engine_online.c tests/engine/engine_testlib.h
tests_engine_host_engine_online_CFLAGS = $(UNIT_CFLAGS)
tests_engine_host_engine_online_LDADD = $(UNIT_LIBS)

TESTS += tests/engine/host_convert_refusals.sh
dist_noinst_SCRIPTS += tests/engine/host_convert_refusals.sh

# wrapctl encrypt/rekey/decrypt/resume end to end against the Vault double,
# checked by an independent AES-XTS decryption (convhelper.py); interruptions,
# sealed Vault, loop-held files.
TESTS += tests/engine/host_convert_cli.sh
dist_noinst_SCRIPTS += tests/engine/host_convert_cli.sh
EXTRA_DIST += tests/engine/convhelper.py

# bench/convert (a script, not a test) drives this helper.
noinst_PROGRAMS += bench/convert-bench
bench_convert_bench_SOURCES = bench/convert_bench.c
bench_convert_bench_LDADD = $(WRAPD_LIBS)
dist_noinst_SCRIPTS += bench/convert

# Real-kernel suite of the conversions (dm-crypt reads what the engine wrote):
# run by tests/vm/run-kernel-tests, not by make check.
dist_noinst_SCRIPTS += tests/engine/vm_convert.sh

# The durable records (park descriptor, journal slot): layout, corruption, torn writes.
check_PROGRAMS += tests/engine/unit_engine_records
TESTS += tests/engine/unit_engine_records
tests_engine_unit_engine_records_SOURCES = tests/engine/unit_engine_records.c tests/engine/engine_testlib.h
tests_engine_unit_engine_records_CFLAGS = $(UNIT_CFLAGS)
tests_engine_unit_engine_records_LDADD = $(UNIT_LIBS)

# The engine asks blockdev/ (root, loop devices): refusals by name, and a loop
# device attached during a conversion stops it at a checkpoint (the loop race).
check_PROGRAMS += tests/engine/host_engine_blockdev
TESTS += tests/engine/host_engine_blockdev
tests_engine_host_engine_blockdev_SOURCES = tests/engine/host_engine_blockdev.c tests/engine/engine_testlib.h tests/lib/loop.h
tests_engine_host_engine_blockdev_CFLAGS = $(UNIT_CFLAGS)
tests_engine_host_engine_blockdev_LDADD = $(UNIT_LIBS)

# Issue 10 item 4 in the VM: SIGSEGV during a conversion writes no core with
# key bytes (changes kernel.core_pattern, so only in the guest).
dist_noinst_SCRIPTS += tests/engine/vm_coredump.sh
dist_noinst_SCRIPTS += tests/engine/vm_online_rekey.sh
# Power loss mid online rekey: two VM boots on one virtio disk (run on the
# host side by tests/vm/run-kernel-tests).
dist_noinst_SCRIPTS += tests/engine/vmboot_online_powerloss.sh
# bench/online-rekey (a script, not a test).
dist_noinst_SCRIPTS += bench/online-rekey
