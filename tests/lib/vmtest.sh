# shellcheck shell=bash
# Shared by the engine's VM suites (sourced, not run; tests/vm/run-kernel-tests
# runs them as root in the dm-crypt VM): the common start of a suite.
# Also sources checks.sh (check, check_fails, the Vault double).

# shellcheck source=tests/lib/checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

# vm_test_init SRCDIR BUILDDIR NAME: PATH with the build's wrapctl first,
# H (tests/engine/convhelper.py), W (scratch dir /tmp/NAME.*) and K (0700 dir
# for volume keys, NAME-vk.*, on tmpfs when there is one).
vm_test_init() {
	export PATH="$2:$PATH:/sbin:/usr/sbin"
	# shellcheck disable=SC2034  # H is the suites'
	H="/usr/bin/python3 $1/tests/engine/convhelper.py"
	W=$(mktemp -d "/tmp/$3.XXXXXX")
	K=$(mktemp -d "/dev/shm/$3-vk.XXXXXX" 2>/dev/null || mktemp -d "/tmp/$3-vk.XXXXXX")
	chmod 700 "$K"
}

# vm_kernel_setup SRCDIR: loopback up (the Vault double listens there), the
# dm-crypt and loop modules, $W/mnt, and the Vault double (sets vault_pid).
vm_kernel_setup() {
	ip link set lo up 2>/dev/null || true
	modprobe dm-crypt 2>/dev/null || true
	modprobe loop 2>/dev/null || true
	mkdir -p "$W/mnt"
	start_vault_double "$1" "$W"
}
