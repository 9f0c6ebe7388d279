/*
 * vault_status_check(): health, token, key, in that order, each step kept
 * with its own error, so a person debugging a node sees every answer Vault
 * gave and the first thing that is wrong. And its JSON document.
 */
#include "vault/vault.h"

#include <string.h>

int vault_status_check(struct vault_client *vc, struct vault_status *st)
{
	memset(st, 0, sizeof(*st));
	st->token_rc = st->key_rc = -ECANCELED;
	st->health_rc = vault_health(vc, &st->health, &st->health_err);
	if (st->health_rc < 0)
		return st->health_rc;
	st->token_rc = vault_token_lookup(vc, &st->token, &st->token_err);
	if (st->token_rc < 0)
		return st->token_rc;
	st->key_rc = vault_key_info(vc, &st->key, &st->key_err);
	if (st->key_rc < 0)
		return st->key_rc;
	if (st->health.sealed || !st->health.initialized)
		return -EAGAIN;
	if (!st->key.exists || !st->key.derived)
		return -EPERM;
	st->ok = true;
	return 0;
}

static json_t *policies_json(const char *csv)
{
	json_t *pol = json_array();
	char tmp[sizeof(((struct vault_token_info *)0)->policies)];
	snprintf(tmp, sizeof(tmp), "%s", csv);
	for (char *save = NULL, *p = strtok_r(tmp, ",", &save); p; p = strtok_r(NULL, ",", &save))
		json_array_append_new(pol, json_string(p));
	return pol;
}

json_t *vault_status_json(const struct vault_status *st, const struct vault_config *cfg)
{
	json_t *o = json_object(), *errs = json_array();
	const struct vault_health *h = &st->health;
	const struct vault_token_info *ti = &st->token;
	const struct vault_key_info *ki = &st->key;
	json_object_set_new(o, "addr", json_string(cfg->addr));
	if (st->health_rc >= 0)
		json_object_set_new(o, "server",
				    json_pack("{s:I,s:b,s:b,s:b,s:b,s:s,s:s}", "status", (json_int_t)h->status,
					      "initialized", h->initialized, "sealed", h->sealed, "standby",
					      h->standby, "performance_standby", h->performance_standby,
					      "version", h->version, "cluster_name", h->cluster_name));
	else
		json_array_append_new(errs, json_string(werr_str(&st->health_err, st->health_rc)));
	if (st->token_rc >= 0)
		json_object_set_new(o, "token",
				    json_pack("{s:s,s:s,s:o,s:I,s:b}", "auth_method", ti->auth_method,
					      "display_name", ti->display_name, "policies",
					      policies_json(ti->policies), "ttl", (json_int_t)ti->ttl,
					      "renewable", ti->renewable));
	else if (st->token_rc != -ECANCELED)
		json_array_append_new(errs, json_string(werr_str(&st->token_err, st->token_rc)));
	if (st->key_rc >= 0)
		json_object_set_new(o, "key",
				    json_pack("{s:s,s:s,s:b,s:b,s:s,s:I,s:I}", "mount", cfg->mount, "name",
					      cfg->key, "exists", ki->exists, "derived", ki->derived, "type",
					      ki->type, "latest_version", (json_int_t)ki->latest_version,
					      "min_decryption_version",
					      (json_int_t)ki->min_decryption_version));
	else if (st->key_rc != -ECANCELED)
		json_array_append_new(errs, json_string(werr_str(&st->key_err, st->key_rc)));
	json_object_set_new(o, "ok", json_boolean(st->ok));
	json_object_set_new(o, "errors", errs);
	return o;
}
