/*
 * format: a new wrapd volume. The refusals come first (geometry, the
 * device's logical sector size, existing signatures), then Vault: the VK is
 * Vault's datakey/plaintext, bound to the new UUID by the Transit context.
 * Nothing on disk changes until the key is held. Then old signatures are
 * wiped (as wipefs -a), the header area zeroed, both header copies written
 * through format/, read back and checked against the VK, which is wiped.
 */
#include "volume/internal.h"

#include <blkid/blkid.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

int volume_probe_signatures(int fd, char *names, size_t n)
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

/* The request alone: label, sector size, data offset. */
static int check_request(const struct volume_format_req *rq, uint64_t sector, uint64_t offset,
			 struct werr *err)
{
	const char *dev = rq->device;
	if (sector < 512 || sector > 4096 || (sector & (sector - 1)))
		return werr_set(err, -EINVAL, "%s: sector size %llu is invalid; use 512, 1024, 2048 or 4096",
				dev, (unsigned long long)sector);
	if (rq->label && strlen(rq->label) >= LUKS2_LABEL_LEN)
		return werr_set(err, -EINVAL, "%s: --label is %zu bytes; at most 47 fit the LUKS2 header",
				dev, strlen(rq->label));
	if (offset % sector || offset % 4096)
		return werr_set(err, -EINVAL,
				"%s: --data-offset %llu must be a multiple of 4096 and of the sector size %llu",
				dev, (unsigned long long)offset, (unsigned long long)sector);
	if (offset < 2 * WRAPD_DEFAULT_HDR_SIZE + 4096)
		return werr_set(err, -EINVAL,
				"%s: --data-offset %llu is too small; the header needs at least %u bytes",
				dev, (unsigned long long)offset, 2 * WRAPD_DEFAULT_HDR_SIZE + 4096);
	return 0;
}

/* The device: size, logical sector size, existing signatures. */
static int check_device(int fd, uint64_t size, const struct volume_format_req *rq,
			uint64_t sector, uint64_t offset, struct werr *err)
{
	const char *dev = rq->device;
	if (size < offset + sector)
		return werr_set(err, -ENOSPC,
				"%s: too small (%llu bytes) for a data offset of %llu bytes; use a larger device or a smaller --data-offset",
				dev, (unsigned long long)size, (unsigned long long)offset);
	if ((size - offset) % sector)
		return werr_set(err, -EINVAL,
				"%s: the data area (%llu bytes) is not a multiple of the sector size %llu; use --sector-size 512",
				dev, (unsigned long long)(size - offset), (unsigned long long)sector);
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
		int lbs = 0;
		if (ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs > 0 && (uint64_t)lbs > sector)
			return werr_set(err, -EINVAL,
					"%s: its logical sector size is %d; use --sector-size %d or more",
					dev, lbs, lbs);
	}
	char found[256];
	int rc = volume_probe_signatures(fd, found, sizeof(found));
	if (rc < 0)
		return werr_set(err, rc, "%s: libblkid could not probe it for signatures: %s", dev,
				strerror(-rc));
	if (found[0] && !rq->force)
		return werr_set(err, -EEXIST,
				"%s: contains existing signatures (%s); formatting destroys them: check the device, then add --force",
				dev, found);
	return 0;
}

/* Destroys old signatures (anywhere, as wipefs -a), zeroes the metadata and
 * keyslots area, writes both copies, reads them back and checks the VK. */
static int write_header(int fd, const char *dev, struct luks2_hdr *hdr, const struct secbuf *vk,
			struct werr *err)
{
	int rc;
	if ((rc = wipe_signatures(fd)) < 0)
		return werr_set(err, rc, "%s: wiping old signatures failed: %s", dev, strerror(-rc));
	if ((rc = zero_range(fd, luks2_hdr_areas_size(hdr))) < 0)
		return werr_set(err, rc, "%s: clearing the header area failed: %s", dev, strerror(-rc));
	if ((rc = luks2_hdr_write(fd, hdr, dev, err)) < 0)
		return rc;
	_cleanup_luks2_hdr_ struct luks2_hdr *back = NULL;
	if ((rc = luks2_hdr_read(fd, dev, &back, NULL, err)) < 0 ||
	    (rc = luks2_vk_verify(back, vk, err)) < 0)
		return werr_prefix(err, rc, "%s: the header did not read back correctly", dev);
	return 0;
}

int volume_format(const struct volume_ctx *ctx, const struct volume_format_req *rq,
		  struct volume_format_result *res, struct werr *err)
{
	const char *dev = rq->device;
	uint64_t sector = rq->sector_size ? rq->sector_size : WRAPD_DEFAULT_SECTOR_SIZE;
	uint64_t offset = rq->data_offset ? rq->data_offset : WRAPD_DEFAULT_DATA_OFFSET;
	memset(res, 0, sizeof(*res));
	if (!ctx->vcfg)
		return werr_set(err, -EINVAL, "%s: no Vault configuration to format with", dev);
	int rc = check_request(rq, sector, offset, err);
	if (rc < 0)
		return rc;

	/* One open for the whole format, O_EXCL on a block device; refused
	 * while anything uses it (mounts, holders, loop devices, another
	 * exclusive opener: blockdev/ names it). */
	_cleanup_luks2_device_ struct luks2_device d = LUKS2_DEVICE_INIT;
	if ((rc = luks2_device_open(&d, dev, NULL, LUKS2_DEV_WRITE | LUKS2_DEV_EXCL | LUKS2_DEV_LOCK_EX |
					       LUKS2_DEV_UNUSED, err)) < 0)
		return rc;
	int fd = d.dev.fd;
	if ((rc = check_device(fd, d.dev.size, rq, sector, offset, err)) < 0)
		return rc;

	/* Vault first: nothing on disk changes until we hold the new key. */
	char uuid[37];
	if (luks2_uuid_generate(uuid) < 0)
		return werr_set(err, -EIO, "%s: cannot generate a UUID (no random bytes)", dev);
	_cleanup_secbuf_ struct secbuf vk = {0};
	struct wrapd_token tok = {0};
	rc = vkey_new(ctx, uuid, &vk, &tok, err);
	if (rc < 0)
		werr_prefix(err, rc, "%s: getting a volume key from Vault failed", dev);
	if (rc == 0 && rq->name && !(tok.volume_name = strdup(rq->name)))
		rc = werr_set(err, -ENOMEM, "out of memory");

	struct luks2_new_params p = {.uuid = uuid, .label = rq->label,
				     .sector_size = (uint32_t)sector, .data_offset = offset};
	_cleanup_luks2_hdr_ struct luks2_hdr *hdr = NULL;
	if (rc == 0)
		rc = luks2_hdr_new(&p, &vk, &hdr, err);
	if (rc == 0)
		rc = wrapd_token_set(hdr, &tok, err);
	if (rc == 0)
		rc = write_header(fd, dev, hdr, &vk, err);
	if (rc == 0) {
		memcpy(res->uuid, uuid, sizeof(res->uuid));
		snprintf(res->vault_mount, sizeof(res->vault_mount), "%s", tok.vault_mount);
		snprintf(res->vault_key, sizeof(res->vault_key), "%s", tok.vault_key);
		res->key_version = tok.key_version;
	} else if (err && !strstr(err->msg, dev)) {
		werr_prefix(err, rc, "%s", dev);
	}
	wrapd_token_free(&tok);
	return rc;
}
