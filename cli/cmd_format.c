/*
 * wrapctl format DEVICE: a new wrapd volume. The VK comes from Vault's
 * datakey/plaintext (bound to the new UUID by the Transit context), stays in
 * locked memory, is digested into the header and wiped. Never printed.
 */
#include "cli/cli.h"
#include "format/format.h"
#include "vault/vault.h"

#include <blkid/blkid.h>
#include <getopt.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

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
		"  --force              overwrite existing signatures (filesystem, LUKS, RAID, ...)\n");
}

/* Names every signature libblkid finds ("ext4", "gpt", ...), or "" when none.
 * -EIO when probing itself failed. */
static int probe_signatures(int fd, char *names, size_t n)
{
	names[0] = '\0';
	blkid_probe pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	int rc = blkid_probe_set_device(pr, fd, 0, 0);
	if (rc == 0) {
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL |
							      BLKID_SUBLKS_MAGIC);
		blkid_probe_enable_partitions(pr, 1);
		blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
		while ((rc = blkid_do_probe(pr)) == 0) {
			const char *t = NULL;
			if (blkid_probe_lookup_value(pr, "TYPE", &t, NULL) &&
			    blkid_probe_lookup_value(pr, "PTTYPE", &t, NULL))
				t = "unknown";
			size_t l = strlen(names);
			if (l + strlen(t) + 3 < n)
				snprintf(names + l, n - l, "%s%s", l ? ", " : "", t);
		}
		rc = rc < 0 ? -EIO : 0;
	} else {
		rc = -EIO;
	}
	blkid_free_probe(pr);
	return rc;
}

/* Erases the magic of every signature libblkid finds (wipefs -a). */
static int wipe_signatures(int fd)
{
	blkid_probe pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	int rc = blkid_probe_set_device(pr, fd, 0, 0);
	if (rc == 0) {
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC);
		blkid_probe_enable_partitions(pr, 1);
		blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
		while ((rc = blkid_do_probe(pr)) == 0)
			if (blkid_do_wipe(pr, 0) < 0) {
				rc = -EIO;
				break;
			}
		rc = rc < 0 ? -EIO : 0;
	} else {
		rc = -EIO;
	}
	blkid_free_probe(pr);
	return rc;
}

static int zero_range(int fd, uint64_t len)
{
	static const uint8_t zero[65536];
	for (uint64_t off = 0; off < len;) {
		size_t n = len - off < sizeof(zero) ? (size_t)(len - off) : sizeof(zero);
		int rc = write_full_at(fd, zero, n, (off_t)off);
		if (rc < 0)
			return rc;
		off += n;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

static int replace_str(char **dst, const char *src)
{
	char *c = strdup(src);
	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

static int run_format(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	enum { O_NAME = 256, O_LABEL, O_SECTOR, O_OFFSET, O_VKEY, O_VMOUNT, O_FORCE };
	static const struct option opts[] = {
		{"name", required_argument, NULL, O_NAME},
		{"label", required_argument, NULL, O_LABEL},
		{"sector-size", required_argument, NULL, O_SECTOR},
		{"data-offset", required_argument, NULL, O_OFFSET},
		{"vault-key", required_argument, NULL, O_VKEY},
		{"vault-mount", required_argument, NULL, O_VMOUNT},
		{"force", no_argument, NULL, O_FORCE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *name = NULL, *label = NULL, *vkey = NULL, *vmount = NULL;
	uint64_t sector = WRAPD_DEFAULT_SECTOR_SIZE, offset = WRAPD_DEFAULT_DATA_OFFSET;
	bool force = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_NAME: name = optarg; break;
		case O_LABEL: label = optarg; break;
		case O_SECTOR:
			if (parse_u64(optarg, &sector) < 0 || sector < 512 || sector > 4096 ||
			    (sector & (sector - 1)))
				return cli_fail(ctx, "format: --sector-size '%s' is invalid; use 512, 1024, 2048 or 4096",
						optarg);
			break;
		case O_OFFSET:
			if (parse_u64(optarg, &offset) < 0 || !offset)
				return cli_fail(ctx, "format: --data-offset '%s' is not a positive number of bytes",
						optarg);
			break;
		case O_VKEY: vkey = optarg; break;
		case O_VMOUNT: vmount = optarg; break;
		case O_FORCE: force = true; break;
		case 'h': format_usage(stdout); return 0;
		default: format_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		format_usage(stderr);
		return 2;
	}
	const char *dev = argv[optind];
	if (label && strlen(label) >= LUKS2_LABEL_LEN)
		return cli_fail(ctx, "%s: --label is %zu bytes; at most 47 fit the LUKS2 header", dev,
				strlen(label));
	if (offset % sector || offset % 4096)
		return cli_fail(ctx, "%s: --data-offset %llu must be a multiple of 4096 and of the sector size %llu",
				dev, (unsigned long long)offset, (unsigned long long)sector);
	if (offset < 2 * WRAPD_DEFAULT_HDR_SIZE + 4096)
		return cli_fail(ctx, "%s: --data-offset %llu is too small; the header needs at least %u bytes",
				dev, (unsigned long long)offset, 2 * WRAPD_DEFAULT_HDR_SIZE + 4096);

	struct werr err = {0};
	_cleanup_close_ int fd = -1;
	uint64_t size;
	int rc = luks2_dev_open(dev, true, true, &fd, &size, &err);
	if (rc < 0)
		return cli_fail(ctx, "%s", err.msg);
	_cleanup_luks2_lock_ struct luks2_lock lk = LUKS2_LOCK_INIT;
	if ((rc = luks2_lock(fd, dev, true, &lk, &err)) < 0)
		return cli_fail(ctx, "%s", err.msg);
	if (size < offset + sector)
		return cli_fail(ctx, "%s: too small (%llu bytes) for a data offset of %llu bytes; use a larger device or a smaller --data-offset",
				dev, (unsigned long long)size, (unsigned long long)offset);
	if ((size - offset) % sector)
		return cli_fail(ctx, "%s: the data area (%llu bytes) is not a multiple of the sector size %llu; use --sector-size 512",
				dev, (unsigned long long)(size - offset), (unsigned long long)sector);
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
		int lbs = 0;
		if (ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs > 0 && (uint64_t)lbs > sector)
			return cli_fail(ctx, "%s: its logical sector size is %d; use --sector-size %d or more",
					dev, lbs, lbs);
	}

	char found[256];
	rc = probe_signatures(fd, found, sizeof(found));
	if (rc < 0)
		return cli_fail(ctx, "%s: libblkid could not probe it for signatures: %s", dev,
				strerror(-rc));
	if (found[0] && !force)
		return cli_fail(ctx, "%s: contains existing signatures (%s); formatting destroys them: check the device, then add --force",
				dev, found);

	/* Vault first: nothing on disk changes until we hold the new key. */
	char uuid[37];
	if (luks2_uuid_generate(uuid) < 0)
		return cli_fail(ctx, "%s: cannot generate a UUID (no random bytes)", dev);
	_cleanup_free_ char *context = NULL;
	if (vault_context_for_uuid(uuid, &context) < 0)
		return cli_fail(ctx, "%s: cannot build the Vault context", dev);
	struct vault_config cfg = {0};
	if ((rc = cli_config_load(ctx, &cfg, NULL, &err)) < 0) {
		vault_config_free(&cfg);
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	}
	if ((vmount && replace_str(&cfg.mount, vmount) < 0) ||
	    (vkey && replace_str(&cfg.key, vkey) < 0)) {
		vault_config_free(&cfg);
		return cli_fail(ctx, "out of memory");
	}
	struct vault_client *vc = NULL;
	_cleanup_secbuf_ struct secbuf vk = {0};
	_cleanup_free_ char *ciphertext = NULL;
	unsigned kver = 0;
	rc = vault_client_new(&cfg, &ctx->log, &vc, &err);
	if (rc == 0)
		rc = vault_require_derived_key(vc, &err);
	if (rc == 0)
		rc = vault_datakey(vc, context, 512, &vk, &ciphertext, &kver, &err);
	vault_client_free(vc);
	if (rc < 0) {
		vault_config_free(&cfg);
		return cli_fail(ctx, "%s: getting a volume key from Vault failed: %s", dev,
				werr_str(&err, rc));
	}
	if (vk.len != WRAPD_VK_BYTES) {
		vault_config_free(&cfg);
		return cli_fail(ctx, "%s: Vault returned a %zu-byte key, expected %d", dev, vk.len,
				WRAPD_VK_BYTES);
	}

	struct luks2_new_params p = {.uuid = uuid, .label = label, .sector_size = (uint32_t)sector,
				     .data_offset = offset};
	_cleanup_luks2_hdr_ struct luks2_hdr *hdr = NULL;
	rc = luks2_hdr_new(&p, &vk, &hdr, &err);
	struct wrapd_token tok = {
		.vault_addr = cfg.addr, .vault_namespace = cfg.namespace_ ? cfg.namespace_ : "",
		.vault_mount = cfg.mount, .vault_key = cfg.key, .key_version = kver,
		.ciphertext = ciphertext, .context = context,
	};
	if (rc == 0)
		rc = wrapd_token_set(hdr, &tok, &err);
	if (rc == 0 && name) {
		/* An extra field: the wrapd-vault contract allows additions. */
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(hdr->json, "tokens"), k, v)
		{
			const char *t = json_string_value(json_object_get(v, "type"));
			if (t && !strcmp(t, WRAPD_TOKEN_TYPE))
				json_object_set_new(v, "volume_name", json_string(name));
		}
		rc = luks2_hdr_validate(hdr, &err);
	}
	char mount_key[256];
	snprintf(mount_key, sizeof(mount_key), "%s/%s", cfg.mount, cfg.key);
	vault_config_free(&cfg);
	if (rc < 0)
		return cli_fail(ctx, "%s: %s", dev, werr_str(&err, rc));

	/* Destroy old signatures (anywhere, as wipefs -a), then zero the whole
	 * metadata and keyslots area, then write both copies. */
	if ((rc = wipe_signatures(fd)) < 0)
		return cli_fail(ctx, "%s: wiping old signatures failed: %s", dev, strerror(-rc));
	if ((rc = zero_range(fd, luks2_hdr_areas_size(hdr))) < 0)
		return cli_fail(ctx, "%s: clearing the header area failed: %s", dev, strerror(-rc));
	if ((rc = luks2_hdr_write(fd, hdr, dev, &err)) < 0)
		return cli_fail(ctx, "%s", err.msg);

	/* Read back and check the key against what is on disk. */
	_cleanup_luks2_hdr_ struct luks2_hdr *back = NULL;
	if ((rc = luks2_hdr_read(fd, dev, &back, NULL, &err)) < 0 ||
	    (rc = luks2_vk_verify(back, &vk, &err)) < 0)
		return cli_fail(ctx, "%s: the header did not read back correctly: %s", dev,
				werr_str(&err, rc));
	secbuf_free(&vk);
	if (ctx->log.level >= WLOG_WARN)
		printf("%s: formatted as a wrapd volume\nUUID: %s\nVault key: %s (version %u)\n", dev,
		       uuid, mount_key, kver);
	return 0;
}

const struct wrapctl_cmd cmd_format = {
	.name = "format",
	.summary = "write a new wrapd header (VK from Vault) on a device or image",
	.run = run_format,
};
