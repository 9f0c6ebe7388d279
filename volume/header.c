/*
 * Header backup and restore. The backup is the same image cryptsetup's
 * luksHeaderBackup makes: the device from byte 0 to the end of the keyslots
 * area (2 * metadata size + keyslots size). It holds the wrapped VK, never
 * the VK. Restore validates the image and refuses what would misplace data
 * (another volume's UUID, another data offset, an operation of another tool
 * in progress, a backup from before a wrapd conversion that is in progress,
 * a sequence id going backwards, which would hand resume a stale checkpoint)
 * unless forced.
 */
#include "volume/internal.h"

#include <fcntl.h>

#define BACKUP_MAX (2ull * LUKS2_HDR_MAX + LUKS2_KEYSLOTS_MAX)

int volume_header_backup(const struct volume_ctx *ctx, const char *dev, const char *file,
			 struct volume_header_info *info, struct werr *err)
{
	memset(info, 0, sizeof(*info));
	/* One open, a shared lock. */
	_cleanup_luks2_device_ struct luks2_device d = LUKS2_DEVICE_INIT;
	int rc = luks2_device_open(&d, dev, NULL, 0, err);
	if (rc < 0)
		return rc;
	int fd = d.dev.fd;
	_cleanup_luks2_hdr_ struct luks2_hdr *hdr = NULL;
	if ((rc = luks2_hdr_read(fd, dev, &hdr, NULL, err)) < 0)
		return rc;
	if (hdr->copy[0].status != LUKS2_COPY_OK || hdr->copy[1].status != LUKS2_COPY_OK)
		wlog_warn(ctx->log,
			  "%s: one header copy is damaged (%s); the backup keeps the image as it is on disk",
			  dev, hdr->copy[hdr->copy[0].status == LUKS2_COPY_OK].why);
	uint64_t n = luks2_hdr_areas_size(hdr);
	_cleanup_free_ uint8_t *buf = malloc((size_t)n);
	if (!buf)
		return werr_set(err, -ENOMEM, "%s: out of memory for a %llu-byte backup", dev,
				(unsigned long long)n);
	if ((rc = read_full_at(fd, buf, (size_t)n, 0)) < 0)
		return werr_set(err, rc, "%s: reading the header area failed: %s", dev, strerror(-rc));
	/* The image must itself read as the same header. */
	_cleanup_luks2_hdr_ struct luks2_hdr *chk = NULL;
	if ((rc = luks2_hdr_parse(buf, (size_t)n, file, &chk, NULL, err)) < 0 ||
	    strcmp(chk->uuid, hdr->uuid) || chk->seqid != hdr->seqid)
		return werr_set(err, -EAGAIN, "%s: the header changed while being backed up; try again", dev);
	_cleanup_close_ int out = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = errno;
		if (e == EEXIST)
			return werr_set(err, -e, "%s: already exists; choose a new backup file name", file);
		return werr_set(err, -e, "%s: cannot create the backup file: %s", file, strerror(e));
	}
	if ((rc = write_full_at(out, buf, (size_t)n, 0)) < 0 || (fsync(out) < 0 && (rc = -errno))) {
		unlink(file);
		return werr_set(err, rc, "%s: writing the backup failed: %s", file, strerror(-rc));
	}
	snprintf(info->uuid, sizeof(info->uuid), "%s", hdr->uuid);
	info->bytes = n;
	return 0;
}

/* Reads and checks a backup image; *buf holds its first *n bytes (the header area). */
static int load_backup(const char *file, uint8_t **buf, uint64_t *n, struct luks2_hdr **fh,
		       struct werr *err)
{
	_cleanup_close_ int bfd = open(file, O_RDONLY | O_CLOEXEC);
	if (bfd < 0)
		return werr_set(err, -errno, "%s: cannot open the backup file: %s", file, strerror(errno));
	uint64_t bsize;
	int rc = fd_size(bfd, &bsize);
	if (rc < 0)
		return werr_set(err, rc, "%s: not a regular file", file);
	if (bsize > BACKUP_MAX)
		return werr_set(err, -EFBIG,
				"%s: %llu bytes is larger than any LUKS2 header backup; is it the right file?",
				file, (unsigned long long)bsize);
	*buf = malloc(bsize ? (size_t)bsize : 1);
	if (!*buf)
		return werr_set(err, -ENOMEM, "%s: out of memory", file);
	if (bsize && (rc = read_full_at(bfd, *buf, (size_t)bsize, 0)) < 0)
		return werr_set(err, rc, "%s: cannot read: %s", file, strerror(-rc));
	if ((rc = luks2_hdr_parse(*buf, (size_t)bsize, file, fh, NULL, err)) < 0)
		return werr_prefix(err, rc, "%s: not a valid header backup", file);
	const struct luks2_hdr *h = *fh;
	if (h->copy[0].status != LUKS2_COPY_OK || h->copy[1].status != LUKS2_COPY_OK) {
		int bad = h->copy[0].status != LUKS2_COPY_OK ? 0 : 1;
		return werr_set(err, -EINVAL,
				"%s: the backup's %s copy is %s (%s); refusing to restore a damaged backup",
				file, bad ? "secondary" : "primary",
				luks2_copy_status_str(h->copy[bad].status), h->copy[bad].why);
	}
	if (h->req_cryptsetup_reencrypt || h->req_unknown)
		return werr_set(err, -EPERM, "%s: the backup carries %s; restoring it could corrupt data, refusing",
				file, h->req_unknown ? "an unknown mandatory requirement"
						     : "cryptsetup reencryption state");
	*n = luks2_hdr_areas_size(h);
	if (bsize < *n)
		return werr_set(err, -EINVAL, "%s: truncated: %llu bytes, the header area needs %llu",
				file, (unsigned long long)bsize, (unsigned long long)*n);
	return 0;
}

/* What the header on the device says against the backup; 0 to go on. */
static int check_replace(const char *dev, const char *file, const struct luks2_hdr *cur,
			 const struct luks2_hdr *fh, bool force, struct werr *err)
{
	if (force)
		return 0;
	if (strcmp(cur->uuid, fh->uuid))
		return werr_set(err, -EPERM,
				"%s: its header has UUID %s but %s has UUID %s; check you have the right backup, then add --force",
				dev, cur->uuid, file, fh->uuid);
	if (cur->data_offset != fh->data_offset)
		return werr_set(err, -EPERM,
				"%s: data offset %llu differs from the backup's %llu; restoring would misplace the data; add --force only if you are sure",
				dev, (unsigned long long)cur->data_offset,
				(unsigned long long)fh->data_offset);
	if (cur->req_cryptsetup_reencrypt || cur->req_unknown)
		return werr_set(err, -EPERM,
				"%s: the current header has an operation in progress (%s); add --force to replace it anyway",
				dev, cur->req_unknown ? cur->req_unknown_name : "cryptsetup reencryption");
	/* A wrapd conversion in progress: its checkpoint is in the header. */
	bool conv = cur->req_wrapd_reencrypt || cur->has_conversion_state;
	bool bconv = fh->req_wrapd_reencrypt || fh->has_conversion_state;
	if (conv && !bconv)
		return werr_set(err, -EPERM,
				"%s: a conversion is in progress and %s predates it; restoring it would mark a half-converted device as whole: run 'wrapctl resume %s' first (or add --force)",
				dev, file, dev);
	if (fh->seqid < cur->seqid)
		return werr_set(err, -EPERM,
				"%s: %s is older than the header on the device (sequence id %llu < %llu)%s; add --force to roll back",
				dev, file, (unsigned long long)fh->seqid, (unsigned long long)cur->seqid,
				conv ? " and its conversion checkpoint is stale: resume would redo work on data already moved" : "");
	return 0;
}

int volume_header_restore(const struct volume_ctx *ctx, const char *dev, const char *file,
			  bool force, struct volume_header_info *info, struct werr *err)
{
	(void)ctx;
	memset(info, 0, sizeof(*info));
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_luks2_hdr_ struct luks2_hdr *fh = NULL;
	uint64_t n = 0;
	int rc = load_backup(file, &buf, &n, &fh, err);
	if (rc < 0)
		return rc;

	/* One open for the whole restore: O_EXCL on a block device, the
	 * exclusive lock, refused by name while anything uses it. */
	_cleanup_luks2_device_ struct luks2_device d = LUKS2_DEVICE_INIT;
	if ((rc = luks2_device_open(&d, dev, NULL, LUKS2_DEV_WRITE | LUKS2_DEV_EXCL | LUKS2_DEV_LOCK_EX |
					       LUKS2_DEV_UNUSED, err)) < 0)
		return rc;
	int fd = d.dev.fd;
	uint64_t dsize = d.dev.size;
	if (dsize < n || (fh->data_offset && dsize <= fh->data_offset))
		return werr_set(err, -ENOSPC,
				"%s: too small (%llu bytes) for the backup's header area and data offset",
				dev, (unsigned long long)dsize);
	_cleanup_luks2_hdr_ struct luks2_hdr *cur = NULL;
	struct werr cerr = {0};
	rc = luks2_hdr_read(fd, dev, &cur, NULL, &cerr);
	if (rc == 0)
		rc = check_replace(dev, file, cur, fh, force, err);
	else if (!force)
		return werr_set(err, -EPERM,
				"%s: no valid header to compare the backup's UUID with (%s); add --force to restore anyway",
				dev, cerr.msg);
	else
		rc = 0;
	if (rc < 0)
		return rc;
	if ((rc = write_full_at(fd, buf, (size_t)n, 0)) < 0 || (fsync(fd) < 0 && (rc = -errno)))
		return werr_set(err, rc, "%s: writing the header failed: %s; retry the restore", dev,
				strerror(-rc));
	_cleanup_luks2_hdr_ struct luks2_hdr *back = NULL;
	if ((rc = luks2_hdr_read(fd, dev, &back, NULL, err)) < 0 || strcmp(back->uuid, fh->uuid))
		return werr_prefix(err, rc ? rc : -EIO, "%s: the restored header does not read back", dev);
	snprintf(info->uuid, sizeof(info->uuid), "%s", fh->uuid);
	info->bytes = n;
	return 0;
}
