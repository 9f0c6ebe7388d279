# vault module build rules (owned by the vault module).
