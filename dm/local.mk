# dm module build rules (owned by the dm module).
