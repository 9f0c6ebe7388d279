# engine module build rules (owned by the engine module).
