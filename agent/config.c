/*
 * The agent's settings: one pass over the shared wrapd.conf for the vault
 * keys (vault/), volume_table (volume/) and the agent's own keys
 * (agent/settings.h), then command-line overrides with the same validation.
 */
#include "agent/agent.h"
#include "kube/kube.h"

#include <ctype.h>

static void finish(struct agent_config *c)
{
	c->volume_table = c->vol.table ? c->vol.table : VOLUME_TABLE_DEFAULT;
	c->status_socket = agent_status_socket(&c->s);
	c->metrics_listen = c->s.metrics_listen ? c->s.metrics_listen : AGENT_METRICS_LISTEN_DEFAULT;
	c->log_json = c->s.log_format == AGENT_LOG_JSON;
	c->retry_max_ms = c->s.retry_max_ms;
	c->retry_min_ms = c->s.retry_min_ms < c->retry_max_ms ? c->s.retry_min_ms : c->retry_max_ms;
	c->stop_timeout_ms = c->s.stop_timeout_ms;
	c->rekey_max_rate = (uint64_t)c->s.rekey_max_rate << 20;
	const struct agent_settings *s = &c->s;
	c->kubernetes = s->kubernetes & 1;
	c->discovery_dir = s->discovery_dir ? s->discovery_dir : AGENT_DISCOVERY_DIR_DEFAULT;
	c->kubelet_dir = s->kubelet_dir ? s->kubelet_dir : AGENT_KUBELET_DIR_DEFAULT;
	c->storage_class = s->storage_class ? s->storage_class : AGENT_STORAGE_CLASS_DEFAULT;
	c->fs_type = s->fs_type ? s->fs_type : AGENT_FS_TYPE_DEFAULT;
	c->event_namespace = s->event_namespace ? s->event_namespace : AGENT_EVENT_NAMESPACE_DEFAULT;
	c->kube_api_url = s->kube_api_url ? s->kube_api_url : "";
	c->kube_token_file = s->kube_token_file;
	c->kube_ca_file = s->kube_ca_file;
	c->convert_existing = s->convert_existing & 1;
	c->block_mode = s->volume_mode == AGENT_MODE_BLOCK;
	c->retain = s->reclaim_policy == AGENT_RECLAIM_RETAIN;
}

int agent_node_name(const struct agent_config *c, const char *(*get)(const char *),
		    char out[254], struct werr *err)
{
	const char *from = "node_name";
	const char *v = c->s.node_name && *c->s.node_name ? c->s.node_name : NULL;
	char host[256];
	if (!v) {
		from = "NODE_NAME";
		v = get ? get("NODE_NAME") : getenv("NODE_NAME");
	}
	if (!v || !*v) {
		from = "the host name";
		if (gethostname(host, sizeof(host)) < 0)
			return werr_set(err, -errno, "cannot read the host name: %s; set node_name",
					strerror(errno));
		host[sizeof(host) - 1] = '\0';
		for (char *p = host; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		v = host;
	}
	if (strlen(v) > 253 || !kube_dns1123_subdomain(v))
		return werr_set(err, -EINVAL,
				"the node name from %s ('%.64s') is not a DNS-1123 subdomain; set node_name to the node's name",
				from, v);
	snprintf(out, 254, "%s", v);
	return 0;
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
