/*
 * wrapctl status, when the agent runs: its view (each volume's state,
 * device, key version, last error; the agent's view of Vault) from its status
 * socket, instead of the kernel's.
 */
#include "cli/cli.h"

#include "agent/settings.h"
#include "vault/vault.h"
#include "volume/volume.h"

#include <jansson.h>

static const char *str(json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : dflt;
}

static void print_text(json_t *doc, const char *name)
{
	json_t *ag = json_object_get(doc, "agent");
	json_t *vault = json_object_get(ag, "vault");
	json_t *reach = json_object_get(vault, "reachable");
	json_t *ttl = json_object_get(vault, "token_ttl");
	printf("wrapd agent (pid %lld): %s\n", (long long)json_integer_value(json_object_get(ag, "pid")),
	       str(ag, "summary", "?"));
	printf("  vault:        %s", json_is_true(reach) ? "reachable" : json_is_false(reach) ? "NOT reachable" : "not asked yet");
	if (json_is_integer(ttl))
		printf(json_integer_value(ttl) ? ", token TTL %lld s" : ", token never expires",
		       (long long)json_integer_value(ttl));
	printf("\n");
	if (json_is_false(reach))
		printf("  vault error:  %s\n", str(vault, "error", "?"));
	printf("  table:        %s\n\n", str(ag, "volume_table", "?"));
	printf("%-20s %-18s %-4s %s\n", "NAME", "STATE", "KEY", "DEVICE");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(doc, "volumes"), i, v) {
		if (name && strcmp(str(v, "name", ""), name))
			continue;
		json_t *kv = json_object_get(v, "key_version");
		char k[16] = "-";
		if (json_is_integer(kv))
			snprintf(k, sizeof(k), "v%lld", (long long)json_integer_value(kv));
		printf("%-20s %-18s %-4s %s\n", str(v, "name", "?"), str(v, "state", "?"), k,
		       str(v, "device", "(not in the table)"));
		json_t *rk = json_object_get(v, "rekey");
		if (json_is_object(rk)) {
			double r = json_real_value(json_object_get(rk, "ratio"));
			printf("%-20s   rekey: %.1f%% of %.1f MiB (%s)\n", "", 100.0 * r,
			       (double)json_integer_value(json_object_get(rk, "total")) / 1048576.0,
			       json_is_true(json_object_get(rk, "running")) ? "online, being resumed by the agent" :
			       json_is_true(json_object_get(rk, "failed")) ? "the agent's resume failed: see the error" :
			       "in progress");
		}
		if (json_string_value(json_object_get(v, "last_error")))
			printf("%-20s   error: %s\n", "", str(v, "last_error", ""));
		if (json_string_value(json_object_get(v, "note")))
			printf("%-20s   note:  %s\n", "", str(v, "note", ""));
	}
}

int cli_status_from_agent(struct wrapctl_ctx *ctx, const char *name, bool json)
{
	struct agent_settings as;
	agent_settings_defaults(&as);
	struct config_section vault = vault_config_section(NULL);
	struct config_section vol = volume_config_section(NULL);
	struct config_section ag = agent_config_section(&as);
	const struct config_section *const all[] = {&vault, &vol, &ag, NULL};
	struct werr err;
	werr_clear(&err);
	int r = config_load(ctx->config_path ? ctx->config_path : AGENT_CONFIG_PATH_DEFAULT,
			    !ctx->config_path, all, &err);
	if (r < 0) {
		agent_settings_free(&as);
		return 1; /* the kernel's view reports config trouble itself, if any */
	}
	_cleanup_free_ char *txt = NULL;
	r = agent_status_query(agent_status_socket(&as), &txt, &err);
	agent_settings_free(&as);
	if (r < 0) {
		wlog_debug(&ctx->log, "no agent answers (%s); showing the kernel's view", werr_str(&err, r));
		return 1;
	}
	json_error_t je;
	json_t *doc = json_loads(txt, 0, &je);
	if (!doc || json_object_get(doc, "error")) {
		wlog_debug(&ctx->log, "the agent's answer is not a status: %s",
			   doc ? str(doc, "error", "?") : je.text);
		json_decref(doc);
		return 1;
	}
	if (name) {
		json_t *keep = json_array();
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(doc, "volumes"), i, v)
			if (!strcmp(str(v, "name", ""), name))
				json_array_append(keep, v);
		if (!json_array_size(keep)) {
			json_decref(keep);
			json_decref(doc);
			cli_fail(ctx, "the agent knows no volume '%s'", name);
			return -1;
		}
		json_object_set_new(doc, "volumes", keep);
	}
	if (json) {
		char *out = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (out)
			printf("%s\n", out);
		free(out);
	} else {
		print_text(doc, name);
	}
	json_decref(doc);
	return 0;
}
