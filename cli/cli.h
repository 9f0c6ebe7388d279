/*
 * cli: wrapctl, the administrator's tool. This header owns the command table
 * contract: each command family lives in its own cli/cmd_*.c and exports one
 * `const struct wrapctl_cmd`, listed in wrapctl.c.
 */
#ifndef WRAPD_CLI_H
#define WRAPD_CLI_H

#include "common/common.h"

/* What every command gets: options that precede the command name. */
struct wrapctl_ctx {
	struct wlog log;
	const char *config_path;   /* --config, NULL = default /etc/wrapd/wrapd.conf */
	bool json;                 /* --json given before the command */
	const char *vault_mount;   /* --vault-mount, NULL = config/default */
	const char *vault_key;     /* --vault-key, NULL = config/default */
	const char *vault_addr;    /* --vault-addr, NULL = config/VAULT_ADDR */
};

struct wrapctl_cmd {
	const char *name;
	const char *summary;       /* one line for `wrapctl --help` */
	/* argv[0] is the command name; returns a process exit code. */
	int (*run)(struct wrapctl_ctx *ctx, int argc, char **argv);
};

/* Prints "wrapctl: <msg>" to stderr; returns 1 for convenient `return`. */
int cli_fail(const struct wrapctl_ctx *ctx, const char *fmt, ...) _printf_(2, 3);

/* cli/cmd_volume.c */
extern const struct wrapctl_cmd cmd_open, cmd_close, cmd_status, cmd_rewrap, cmd_erase,
	cmd_doctor;

/* cli/cmd_status_agent.c: wrapctl status from a running agent's socket
 * (status_socket of the config). 0 printed, 1 no agent answers (show the
 * kernel's view), -1 failed (message printed). */
int cli_status_from_agent(struct wrapctl_ctx *ctx, const char *name, bool json);

/* cli/cmd_format.c, cli/cmd_inspect.c, cli/cmd_header.c */
extern const struct wrapctl_cmd cmd_format, cmd_inspect, cmd_header;

/* cli/cli_vault.c: --vault-addr, --vault-mount and --vault-key, before the
 * command or among its own options (the later one wins). Put
 * CLI_VAULT_LONGOPTS in the command's getopt table and offer each option to
 * cli_vault_option first. The overrides are applied in one place, the
 * library's volume_vault_config (config file, then VAULT_*, then these, each
 * validated). cli_vault_config and cli_vault_connect print the error and
 * return 1 (an exit code) on failure, 0 on success. */
struct vault_config;
struct vault_client;
struct volume_vault_opts;
#define CLI_OPT_VAULT_MOUNT 0x1001
#define CLI_OPT_VAULT_KEY 0x1002
#define CLI_OPT_VAULT_ADDR 0x1003
#define CLI_VAULT_LONGOPTS \
	{"vault-mount", required_argument, NULL, CLI_OPT_VAULT_MOUNT}, \
	{"vault-key", required_argument, NULL, CLI_OPT_VAULT_KEY}, \
	{"vault-addr", required_argument, NULL, CLI_OPT_VAULT_ADDR}
bool cli_vault_option(struct wrapctl_ctx *ctx, int c, const char *arg);
void cli_vault_opts(const struct wrapctl_ctx *ctx, struct volume_vault_opts *o);
int cli_vault_config(struct wrapctl_ctx *ctx, struct vault_config *cfg);
int cli_vault_connect(struct wrapctl_ctx *ctx, struct vault_config *cfg, struct vault_client **vc);

/* The whole wrapd.conf (--config, else /etc/wrapd/wrapd.conf if it exists):
 * the vault settings into vcfg (defaults, file, VAULT_* environment), the
 * volume settings into vs; either may be NULL (checked, not stored). */
struct volume_settings;
int cli_config_load(const struct wrapctl_ctx *ctx, struct vault_config *vcfg,
		    struct volume_settings *vs, struct werr *err);
/* The volume table: --table when given, else volume_table from the config,
 * else /etc/wrapd/volumes. *path is malloc'ed. */
int cli_table_path(const struct wrapctl_ctx *ctx, const char *opt, char **path, struct werr *err);

/* cli/cmd_vault.c */
extern const struct wrapctl_cmd cmd_vault;

/* cli/cmd_convert.c: in-place conversions (engine/) */
extern const struct wrapctl_cmd cmd_encrypt, cmd_rekey, cmd_decrypt, cmd_resume;

#endif
