#!/bin/sh
# make check: the header fuzzer for 10 seconds from the generated corpus.
# (CI runs `tests/fuzz/run-fuzz 60` separately.)
srcdir=${srcdir:-$(dirname "$0")/../..}
FUZZ_ARTIFACTS=${FUZZ_ARTIFACTS:-$(pwd)/fuzz-artifacts} exec "$srcdir/tests/fuzz/run-fuzz" 10 tests/fuzz/fuzz_luks2
