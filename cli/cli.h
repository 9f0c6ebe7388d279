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

/* cli/cmd_format.c, cli/cmd_inspect.c, cli/cmd_header.c */
extern const struct wrapctl_cmd cmd_format, cmd_inspect, cmd_header;

#endif
