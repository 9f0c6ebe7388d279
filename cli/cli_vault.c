/*
 * The Vault options shared by every wrapctl command that talks to Vault:
 * --vault-mount and --vault-key (before the command, or among its own
 * options), applied on top of the config file and the VAULT_* environment.
 */
#include "cli/cli.h"

#include "vault/vault.h"

bool cli_vault_option(struct wrapctl_ctx *ctx, int c, const char *arg)
{
	switch (c) {
	case CLI_OPT_VAULT_MOUNT:
		ctx->vault_mount = arg;
		return true;
	case CLI_OPT_VAULT_KEY:
		ctx->vault_key = arg;
		return true;
	default:
		return false;
	}
}

int cli_vault_config(struct wrapctl_ctx *ctx, struct vault_config *cfg)
{
	struct werr err = {0};
	int rc = vault_config_load(cfg, ctx->config_path, &err);
	if (rc < 0)
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	if ((ctx->vault_mount && (rc = vault_config_set(cfg, "vault_mount", ctx->vault_mount, &err)) < 0) ||
	    (ctx->vault_key && (rc = vault_config_set(cfg, "vault_key", ctx->vault_key, &err)) < 0)) {
		vault_config_free(cfg);
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	}
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
