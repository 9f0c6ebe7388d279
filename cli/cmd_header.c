/*
 * wrapctl header backup DEVICE FILE / header restore DEVICE FILE [--force]:
 * volume_header_backup/restore do the work (the image is the one cryptsetup's
 * luksHeaderBackup makes; it holds the wrapped VK, never the VK).
 */
#include "cli/cli.h"
#include "volume/volume.h"

#include <getopt.h>

static void header_usage(FILE *out)
{
	fprintf(out, "Usage: wrapctl header backup DEVICE FILE\n"
		     "       wrapctl header restore DEVICE FILE [--force]\n"
		     "\n"
		     "backup   save the header area (both copies and the keyslots area) to a new FILE\n"
		     "restore  validate FILE and write it back; refuses a FILE whose UUID differs from\n"
		     "         the device's header (or when the device has none) unless --force\n");
}

static int do_backup(struct wrapctl_ctx *ctx, const char *dev, const char *file)
{
	struct volume_ctx vctx = {.log = &ctx->log, .udev = -1};
	struct volume_header_info info;
	struct werr err = {0};
	int rc = volume_header_backup(&vctx, dev, file, &info, &err);
	if (rc < 0)
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	if (ctx->log.level >= WLOG_WARN)
		printf("%s: header (UUID %s, %llu bytes) saved to %s\n", dev, info.uuid,
		       (unsigned long long)info.bytes, file);
	return 0;
}

static int do_restore(struct wrapctl_ctx *ctx, const char *dev, const char *file, bool force)
{
	struct volume_ctx vctx = {.log = &ctx->log, .udev = -1};
	struct volume_header_info info;
	struct werr err = {0};
	int rc = volume_header_restore(&vctx, dev, file, force, &info, &err);
	if (rc < 0)
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	if (ctx->log.level >= WLOG_WARN)
		printf("%s: header restored from %s (UUID %s)\n", dev, file, info.uuid);
	return 0;
}

static int run_header(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool force = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': force = true; break;
		case 'h': header_usage(stdout); return 0;
		default: header_usage(stderr); return 2;
		}
	}
	if (argc - optind != 3) {
		header_usage(stderr);
		return 2;
	}
	const char *sub = argv[optind], *dev = argv[optind + 1], *file = argv[optind + 2];
	if (!strcmp(sub, "backup")) {
		if (force)
			return cli_fail(ctx, "header backup: --force applies to restore only");
		return do_backup(ctx, dev, file);
	}
	if (!strcmp(sub, "restore"))
		return do_restore(ctx, dev, file, force);
	return cli_fail(ctx, "header: unknown subcommand '%s'; use 'backup' or 'restore'", sub);
}

const struct wrapctl_cmd cmd_header = {
	.name = "header",
	.summary = "back up or restore a volume header (header backup|restore DEVICE FILE)",
	.run = run_header,
};
