# format module build rules (owned by the format module).
