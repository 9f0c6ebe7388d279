/*
 * The agent's settings: one pass over the shared wrapd.conf for the vault
 * keys (vault/), volume_table (volume/) and the agent's own keys
 * (agent/settings.h), then command-line overrides with the same validation.
 */
#include "agent/agent.h"

static void finish(struct agent_config *c)
{
	c->volume_table = c->vol.table ? c->vol.table : VOLUME_TABLE_DEFAULT;
	c->status_socket = agent_status_socket(&c->s);
	c->metrics_listen = c->s.metrics_listen ? c->s.metrics_listen : AGENT_METRICS_LISTEN_DEFAULT;
	c->log_json = c->s.log_format == AGENT_LOG_JSON;
	c->retry_max_ms = c->s.retry_max_ms;
	c->retry_min_ms = c->s.retry_min_ms < c->retry_max_ms ? c->s.retry_min_ms : c->retry_max_ms;
	c->stop_timeout_ms = c->s.stop_timeout_ms;
}

int agent_config_load(struct agent_config *c, struct vault_config *vcfg, const char *path,
		      struct werr *err)
{
	memset(c, 0, sizeof(*c));
	agent_settings_defaults(&c->s);
	struct config_section vs = volume_config_section(&c->vol);
	struct config_section as = agent_config_section(&c->s);
	const struct config_section *const others[] = {&vs, &as, NULL};
	int r = vault_config_load_ex(vcfg, path, others, err);
	if (r < 0) {
		agent_config_free(c);
		return r;
	}
	finish(c);
	return 0;
}

int agent_config_set(struct agent_config *c, const char *key, const char *value, struct werr *err)
{
	struct config_section as = agent_config_section(&c->s);
	struct config_section vs = volume_config_section(&c->vol);
	int r = config_set(&as, key, value, err);
	if (r == -ENOENT)
		r = config_set(&vs, key, value, err);
	if (r == -ENOENT)
		return werr_set(err, -ENOENT, "'%s' is not a setting of the agent", key);
	if (r == 0)
		finish(c);
	return r;
}

void agent_config_free(struct agent_config *c)
{
	agent_settings_free(&c->s);
	volume_settings_free(&c->vol);
}
