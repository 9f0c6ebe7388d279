# tests: shared test rules. The tests of module M live in tests/M/ and are
# registered by M/local.mk; the layer is the file-name prefix:
#   unit_*  cmocka, pure (no kernel facility, no network)
#   host_*  on this host: keyring, io_uring, loop devices, the Vault double
#   vm_*    real dm-crypt; run by tests/vm/run-kernel-tests, not by make check
# Shared helpers are in tests/lib/; the VM harness, the Vault double, the
# fuzzer and the crash runner have their own folders.
#
# Every test gets these in its environment:
#   WRAPD_SRCDIR    the source tree (read-only in CI and distcheck)
#   WRAPD_BUILDDIR  the build tree (wrapctl, test programs)
#   WRAPD_TESTDATA  the shared LUKS2 fixtures (../shared/testdata beside the checkout)
#   WRAPD_PYTHON    the Python with python3-cryptography, for the Vault double
AM_TESTS_ENVIRONMENT = \
	WRAPD_SRCDIR='$(abs_top_srcdir)'; export WRAPD_SRCDIR; \
	WRAPD_BUILDDIR='$(abs_top_builddir)'; export WRAPD_BUILDDIR; \
	WRAPD_TESTDATA="$${WRAPD_TESTDATA:-$(abs_top_srcdir)/../shared/testdata}"; export WRAPD_TESTDATA; \
	WRAPD_PYTHON="$${WRAPD_PYTHON:-/usr/bin/python3}"; export WRAPD_PYTHON; \
	ASAN_OPTIONS="$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"; export ASAN_OPTIONS; \
	UBSAN_OPTIONS="$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"; export UBSAN_OPTIONS;

EXTRA_DIST += scripts/deps scripts/build scripts/test .ci/run HACKING.md

# The build itself: configure names the Debian package of a missing dependency.
TESTS += tests/build/host_configure_missing_dep.sh
EXTRA_DIST += tests/build/host_configure_missing_dep.sh

# The Vault dev-server double and its own tests.
TEST_EXTENSIONS = .py
PY_LOG_COMPILER = $(SHELL) -c 'exec "$${WRAPD_PYTHON:-/usr/bin/python3}" "$$0" "$$@"'
TESTS += tests/vault-double/test_double.py
EXTRA_DIST += tests/vault-double/vault-double tests/vault-double/make-test-ca \
	tests/vault-double/test_double.py tests/vault-double/README.md

# The Kubernetes API-server double and its own tests (kubectl checks skip without kubectl).
TESTS += tests/kube-double/test_double.py
EXTRA_DIST += tests/kube-double/kube-double tests/kube-double/test_double.py \
	tests/kube-double/README.md

# The real-kernel harness ships too, so a dist tarball can run the VM suite.
EXTRA_DIST += tests/vm/README.md tests/vm/guest-init tests/vm/have-dm \
	tests/vm/run-kernel-tests tests/vm/vm-lib.sh tests/vm/vm-run \
	tests/vm/systemd/wrapd-vm.target tests/vm/systemd/wrapd-vm-cmd.service \
	tests/vm/systemd/run-cmd tests/vm/systemd/mask \
	scripts/demo scripts/demo-flow

# `make check-kernel`: the dm-crypt suite, natively or in one VM boot.
check-kernel: $(check_PROGRAMS) $(sbin_PROGRAMS)
	WRAPD_BUILD='$(abs_top_builddir)' WRAPD_SRCDIR='$(abs_top_srcdir)' \
		$(SHELL) '$(srcdir)/tests/vm/run-kernel-tests'
.PHONY: check-kernel

# The fuzzer's log and any crash inputs (tests/fuzz/run-fuzz) live here.
clean-local:
	-rm -rf fuzz-artifacts

# Shared helpers: cmocka glue (unit.h), shell check helpers, the one Vault-double
# starter, and the Python helper of the volume/format VM suites.
EXTRA_DIST += tests/lib/unit.h tests/lib/checks.sh tests/lib/vault-double.sh \
	tests/lib/kube-double.sh tests/lib/vmtest.sh \
	tests/lib/vhelper.py
