# keyring module build rules (owned by the keyring module).
