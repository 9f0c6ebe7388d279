/* engine: what lives on a device (libblkid) and how far a filesystem reaches
 * (its own superblock: blkid 2.38 does not report filesystem sizes). */
#include "engine/internal.h"

#include <blkid.h>

static int read_at(int fd, uint8_t *buf, size_t n, uint64_t off)
{
	/* The device may be open with O_DIRECT: read through an aligned bounce. */
	uint64_t a = off & ~4095ull;
	size_t len = ((off + n + 4095) & ~4095ull) - a;
	void *b = NULL;
	if (posix_memalign(&b, 4096, len))
		return -ENOMEM;
	int r = read_full_at(fd, b, len, (off_t)a);
	if (r == 0)
		memcpy(buf, (uint8_t *)b + (off - a), n);
	free(b);
	return r;
}

static int fs_size(int fd, struct engine_fsinfo *fi)
{
	uint8_t sb[4096];
	if (!strcmp(fi->type, "ext2") || !strcmp(fi->type, "ext3") || !strcmp(fi->type, "ext4")) {
		if (read_at(fd, sb, 1024, 1024) < 0 || sb[0x38] != 0x53 || sb[0x39] != 0xEF)
			return -EINVAL;
		uint32_t log = le32_load(sb + 0x18);
		if (log > 6)
			return -EINVAL;
		uint64_t bs = 1024ull << log, blocks = le32_load(sb + 0x04);
		if (le32_load(sb + 0x60) & 0x80) /* INCOMPAT_64BIT */
			blocks |= (uint64_t)le32_load(sb + 0x150) << 32;
		fi->size = blocks * bs;
		fi->block_size = (uint32_t)bs;
		return 0;
	}
	if (!strcmp(fi->type, "xfs")) {
		if (read_at(fd, sb, 512, 0) < 0 || memcmp(sb, "XFSB", 4))
			return -EINVAL;
		uint64_t bs = be32_load(sb + 4), blocks = be64_load(sb + 8);
		fi->size = bs * blocks;
		fi->block_size = be16_load(sb + 0x66); /* sb_sectsize */
		return 0;
	}
	if (!strcmp(fi->type, "btrfs")) {
		if (read_at(fd, sb, 4096, 65536) < 0 || memcmp(sb + 0x40, "_BHRfS_M", 8))
			return -EINVAL;
		fi->size = le64_load(sb + 0xc9 + 8); /* dev_item.total_bytes: this device */
		fi->block_size = le32_load(sb + 0x90);
		return 0;
	}
	return -EOPNOTSUPP;
}

int engine_fs_probe(int fd, const char *what, struct engine_fsinfo *fi, struct werr *err)
{
	memset(fi, 0, sizeof(*fi));
	blkid_probe pr = blkid_new_probe();
	if (!pr)
		return werr_set(err, -ENOMEM, "%s: cannot probe", what);
	int rc = 0;
	if (blkid_probe_set_device(pr, fd, 0, 0) < 0) {
		rc = werr_set(err, -EIO, "%s: cannot probe the device", what);
		goto out;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
	blkid_probe_enable_partitions(pr, 1);
	int r = blkid_do_safeprobe(pr);
	if (r == -2) {
		fi->other_signature = true;
		snprintf(fi->type, sizeof(fi->type), "ambivalent");
		goto out;
	}
	if (r < 0) {
		rc = werr_set(err, -EIO, "%s: probing failed", what);
		goto out;
	}
	if (r == 1)
		goto out; /* nothing found */
	const char *v = NULL;
	if (blkid_probe_lookup_value(pr, "PTTYPE", &v, NULL) == 0 && v) {
		snprintf(fi->type, sizeof(fi->type), "partition table %s", v);
		fi->other_signature = true;
		goto out;
	}
	if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0 && v) {
		snprintf(fi->type, sizeof(fi->type), "%s", v);
		if (!strcmp(v, "crypto_LUKS")) {
			fi->is_luks = true;
			goto out;
		}
		if (fs_size(fd, fi) < 0)
			fi->other_signature = true;
	}
out:
	blkid_free_probe(pr);
	return rc;
}
