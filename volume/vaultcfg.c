/*
 * Vault settings for one operation: on top of the config file and VAULT_*
 * (loaded by the caller, who knows which wrapd.conf sections it parses), the
 * caller's overrides, each validated as the config file's value would be.
 * Every wrapctl command goes through here, so an override means the same
 * thing (and is refused the same way) whatever the command.
 */
#include "volume/internal.h"

int volume_vault_apply(struct vault_config *cfg, const struct volume_vault_opts *o,
		       struct werr *err)
{
	if (!o)
		return 0;
	const struct {
		const char *option, *setting, *value;
	} ov[] = {
		{"--vault-addr", "vault_addr", o->addr},
		{"--vault-mount", "vault_mount", o->mount},
		{"--vault-key", "vault_key", o->key},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ov); i++) {
		int rc;
		if (ov[i].value && (rc = vault_config_set(cfg, ov[i].setting, ov[i].value, err)) < 0)
			return werr_prefix(err, rc, "%s", ov[i].option);
	}
	return 0;
}

bool volume_vault_opts_key_explicit(const struct volume_vault_opts *o)
{
	return o && (o->mount || o->key);
}
