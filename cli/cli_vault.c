/*
 * The Vault options shared by every wrapctl command that talks to Vault:
 * --vault-addr, --vault-mount and --vault-key (before the command, or among
 * its own options). They are collected here and applied by the library
 * (volume_vault_config), on top of the config file and VAULT_*.
 */
#include "cli/cli.h"

#include "agent/settings.h"
#include "vault/vault.h"
#include "volume/volume.h"

#define CLI_DEFAULT_CONFIG "/etc/wrapd/wrapd.conf"

/*
 * wrapd.conf is shared by every module and by both programs: wrapctl parses
 * the whole file, storing the sections it uses and checking the others, so a
 * key the file may hold is never refused as unknown by one program only.
 * The agent's section is checked only (base NULL).
 */
int cli_config_load(const struct wrapctl_ctx *ctx, struct vault_config *vcfg,
		    struct volume_settings *vs, struct werr *err)
{
	struct volume_settings scratch = {0};
	struct config_section vol = volume_config_section(vs ? vs : &scratch);
	if (!vs)
		vol.base = NULL;
	struct config_section agent = agent_config_section(NULL);
	if (vcfg) {
		const struct config_section *const others[] = {&vol, &agent, NULL};
		return vault_config_load_ex(vcfg, ctx->config_path, others, err);
	}
	struct config_section vault = vault_config_section(NULL);
	const struct config_section *const all[] = {&vault, &vol, &agent, NULL};
	int rc = config_load(ctx->config_path ? ctx->config_path : CLI_DEFAULT_CONFIG,
			     !ctx->config_path, all, err);
	if (rc < 0 && vs)
		volume_settings_free(vs);
	return rc;
}

int cli_table_path(const struct wrapctl_ctx *ctx, const char *opt, char **path, struct werr *err)
{
	*path = NULL;
	if (opt) {
		*path = strdup(opt);
		return *path ? 0 : werr_set(err, -ENOMEM, "out of memory");
	}
	struct volume_settings vs = {0};
	int rc = cli_config_load(ctx, NULL, &vs, err);
	if (rc < 0)
		return rc;
	*path = vs.table ? vs.table : strdup(VOLUME_TABLE_DEFAULT);
	return *path ? 0 : werr_set(err, -ENOMEM, "out of memory");
}

bool cli_vault_option(struct wrapctl_ctx *ctx, int c, const char *arg)
{
	switch (c) {
	case CLI_OPT_VAULT_MOUNT:
		ctx->vault_mount = arg;
		return true;
	case CLI_OPT_VAULT_KEY:
		ctx->vault_key = arg;
		return true;
	case CLI_OPT_VAULT_ADDR:
		ctx->vault_addr = arg;
		return true;
	default:
		return false;
	}
}

void cli_vault_opts(const struct wrapctl_ctx *ctx, struct volume_vault_opts *o)
{
	*o = (struct volume_vault_opts){
		.addr = ctx->vault_addr,
		.mount = ctx->vault_mount,
		.key = ctx->vault_key,
	};
}

int cli_vault_config(struct wrapctl_ctx *ctx, struct vault_config *cfg)
{
	struct werr err = {0};
	struct volume_vault_opts o;
	cli_vault_opts(ctx, &o);
	int rc = cli_config_load(ctx, cfg, NULL, &err);
	if (rc == 0 && (rc = volume_vault_apply(cfg, &o, &err)) < 0)
		vault_config_free(cfg);
	if (rc < 0)
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	return 0;
}

int cli_vault_connect(struct wrapctl_ctx *ctx, struct vault_config *cfg, struct vault_client **vc)
{
	*vc = NULL;
	if (cli_vault_config(ctx, cfg))
		return 1;
	struct werr err = {0};
	int rc = vault_client_new(cfg, &ctx->log, vc, &err);
	if (rc < 0) {
		vault_config_free(cfg);
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	}
	return 0;
}
