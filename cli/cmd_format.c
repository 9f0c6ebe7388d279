/*
 * wrapctl format DEVICE: a new wrapd volume. The flow (refusals, the VK from
 * Vault's datakey, the header write) is volume_format(); this file turns
 * arguments into its request and the result into text.
 */
#include "cli/cli.h"
#include "format/format.h"
#include "vault/vault.h"
#include "volume/volume.h"

#include <getopt.h>

static void format_usage(FILE *out)
{
	fprintf(out,
		"Usage: wrapctl format [OPTIONS] DEVICE\n"
		"\n"
		"Write a new wrapd header (LUKS2, no keyslots, VK wrapped by Vault Transit).\n"
		"DEVICE is a block device or an image file. All data on it is lost.\n"
		"\n"
		"  --name NAME          volume name (recorded in the wrapd token)\n"
		"  --label LABEL        LUKS2 label (at most 47 bytes)\n"
		"  --sector-size N      encryption sector size: 512, 1024, 2048 or 4096 (default 4096)\n"
		"  --data-offset BYTES  where the data starts (default 16777216 = 16 MiB)\n"
		"  --vault-mount PATH   Transit mount (default from config, else \"transit\")\n"
		"  --vault-key NAME     Transit key (default from config, else \"wrapd\")\n"
		"  --vault-addr URL     Vault address (default VAULT_ADDR, else the config file)\n"
		"  --force              overwrite existing signatures (filesystem, LUKS, RAID, ...)\n");
}

static int run_format(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	enum { O_NAME = 256, O_LABEL, O_SECTOR, O_OFFSET, O_FORCE };
	static const struct option opts[] = {
		{"name", required_argument, NULL, O_NAME},
		{"label", required_argument, NULL, O_LABEL},
		{"sector-size", required_argument, NULL, O_SECTOR},
		{"data-offset", required_argument, NULL, O_OFFSET},
		{"force", no_argument, NULL, O_FORCE},
		{"help", no_argument, NULL, 'h'},
		CLI_VAULT_LONGOPTS,
		{0},
	};
	struct volume_format_req rq = {.sector_size = WRAPD_DEFAULT_SECTOR_SIZE,
				       .data_offset = WRAPD_DEFAULT_DATA_OFFSET};
	uint64_t sector;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (cli_vault_option(ctx, c, optarg))
			continue;
		switch (c) {
		case O_NAME: rq.name = optarg; break;
		case O_LABEL: rq.label = optarg; break;
		case O_SECTOR:
			if (parse_u64(optarg, &sector) < 0 || sector < 512 || sector > 4096 ||
			    (sector & (sector - 1)))
				return cli_fail(ctx, "format: --sector-size '%s' is invalid; use 512, 1024, 2048 or 4096",
						optarg);
			rq.sector_size = (uint32_t)sector;
			break;
		case O_OFFSET:
			if (parse_u64(optarg, &rq.data_offset) < 0 || !rq.data_offset)
				return cli_fail(ctx, "format: --data-offset '%s' is not a positive number of bytes",
						optarg);
			break;
		case O_FORCE: rq.force = true; break;
		case 'h': format_usage(stdout); return 0;
		default: format_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		format_usage(stderr);
		return 2;
	}
	rq.device = argv[optind];

	struct vault_config cfg;
	if (cli_vault_config(ctx, &cfg))
		return 1;
	struct volume_ctx vctx = {.log = &ctx->log, .vcfg = &cfg, .udev = -1};
	struct volume_format_result res;
	struct werr err = {0};
	int rc = volume_format(&vctx, &rq, &res, &err);
	vault_config_free(&cfg);
	if (rc < 0)
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	if (ctx->log.level >= WLOG_WARN)
		printf("%s: formatted as a wrapd volume\nUUID: %s\nVault key: %s/%s (version %u)\n",
		       rq.device, res.uuid, res.vault_mount, res.vault_key, res.key_version);
	return 0;
}

const struct wrapctl_cmd cmd_format = {
	.name = "format",
	.summary = "write a new wrapd header (VK from Vault) on a device or image",
	.run = run_format,
};
