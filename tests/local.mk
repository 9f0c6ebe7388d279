# tests: shared test rules. Unit tests are registered by each module's local.mk;
# the real-kernel (VM) suite and the Vault double live here.
