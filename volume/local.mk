# volume module build rules (owned by the volume module).
