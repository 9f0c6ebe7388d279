/*
 * wrapctl header backup DEVICE FILE / header restore DEVICE FILE [--force].
 * The backup is the same image cryptsetup's luksHeaderBackup makes: the
 * device from byte 0 to the end of the keyslots area (2 * metadata size +
 * keyslots size). It holds the wrapped VK, never the VK.
 */
#include "cli/cli.h"
#include "format/format.h"

#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>

#define BACKUP_MAX (2ull * LUKS2_HDR_MAX + LUKS2_KEYSLOTS_MAX)

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
	struct werr err = {0};
	_cleanup_close_ int fd = -1;
	int rc = luks2_dev_open(dev, false, false, &fd, NULL, &err);
	if (rc < 0)
		return cli_fail(ctx, "%s", err.msg);
	_cleanup_luks2_lock_ struct luks2_lock lk = LUKS2_LOCK_INIT;
	if ((rc = luks2_lock(fd, dev, false, &lk, &err)) < 0)
		return cli_fail(ctx, "%s", err.msg);
	_cleanup_luks2_hdr_ struct luks2_hdr *hdr = NULL;
	if ((rc = luks2_hdr_read(fd, dev, &hdr, NULL, &err)) < 0)
		return cli_fail(ctx, "%s", err.msg);
	if (hdr->copy[0].status != LUKS2_COPY_OK || hdr->copy[1].status != LUKS2_COPY_OK)
		wlog_warn(&ctx->log,
			  "%s: one header copy is damaged (%s); the backup keeps the image as it is on disk",
			  dev, hdr->copy[hdr->copy[0].status == LUKS2_COPY_OK].why);
	uint64_t n = luks2_hdr_areas_size(hdr);
	_cleanup_free_ uint8_t *buf = malloc((size_t)n);
	if (!buf)
		return cli_fail(ctx, "%s: out of memory for a %llu-byte backup", dev,
				(unsigned long long)n);
	if ((rc = read_full_at(fd, buf, (size_t)n, 0)) < 0)
		return cli_fail(ctx, "%s: reading the header area failed: %s", dev, strerror(-rc));
	/* The image must itself read as the same header. */
	_cleanup_luks2_hdr_ struct luks2_hdr *chk = NULL;
	if ((rc = luks2_hdr_parse(buf, (size_t)n, file, &chk, NULL, &err)) < 0 ||
	    strcmp(chk->uuid, hdr->uuid) || chk->seqid != hdr->seqid)
		return cli_fail(ctx, "%s: the header changed while being backed up; try again", dev);
	_cleanup_close_ int out = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = errno;
		if (e == EEXIST)
			return cli_fail(ctx, "%s: already exists; choose a new backup file name", file);
		return cli_fail(ctx, "%s: cannot create the backup file: %s", file, strerror(e));
	}
	if ((rc = write_full_at(out, buf, (size_t)n, 0)) < 0 || (fsync(out) < 0 && (rc = -errno))) {
		unlink(file);
		return cli_fail(ctx, "%s: writing the backup failed: %s", file, strerror(-rc));
	}
	if (ctx->log.level >= WLOG_WARN)
		printf("%s: header (UUID %s, %llu bytes) saved to %s\n", dev, hdr->uuid,
		       (unsigned long long)n, file);
	return 0;
}

static int do_restore(struct wrapctl_ctx *ctx, const char *dev, const char *file, bool force)
{
	struct werr err = {0};
	_cleanup_close_ int bfd = open(file, O_RDONLY | O_CLOEXEC);
	if (bfd < 0)
		return cli_fail(ctx, "%s: cannot open the backup file: %s", file, strerror(errno));
	uint64_t bsize;
	int rc = fd_size(bfd, &bsize);
	if (rc < 0)
		return cli_fail(ctx, "%s: not a regular file", file);
	if (bsize > BACKUP_MAX)
		return cli_fail(ctx, "%s: %llu bytes is larger than any LUKS2 header backup; is it the right file?",
				file, (unsigned long long)bsize);
	_cleanup_free_ uint8_t *buf = malloc(bsize ? (size_t)bsize : 1);
	if (!buf)
		return cli_fail(ctx, "%s: out of memory", file);
	if (bsize && (rc = read_full_at(bfd, buf, (size_t)bsize, 0)) < 0)
		return cli_fail(ctx, "%s: cannot read: %s", file, strerror(-rc));
	_cleanup_luks2_hdr_ struct luks2_hdr *fh = NULL;
	if ((rc = luks2_hdr_parse(buf, (size_t)bsize, file, &fh, NULL, &err)) < 0)
		return cli_fail(ctx, "%s: not a valid header backup: %s", file, err.msg);
	if (fh->copy[0].status != LUKS2_COPY_OK || fh->copy[1].status != LUKS2_COPY_OK)
		return cli_fail(ctx, "%s: the backup's %s copy is %s (%s); refusing to restore a damaged backup",
				file, fh->copy[0].status != LUKS2_COPY_OK ? "primary" : "secondary",
				luks2_copy_status_str(fh->copy[fh->copy[0].status == LUKS2_COPY_OK].status),
				fh->copy[fh->copy[0].status == LUKS2_COPY_OK].why);
	if (fh->req_cryptsetup_reencrypt || fh->req_unknown)
		return cli_fail(ctx, "%s: the backup carries %s; restoring it could corrupt data, refusing",
				file, fh->req_unknown ? "an unknown mandatory requirement" : "cryptsetup reencryption state");
	uint64_t n = luks2_hdr_areas_size(fh);
	if (bsize < n)
		return cli_fail(ctx, "%s: truncated: %llu bytes, the header area needs %llu", file,
				(unsigned long long)bsize, (unsigned long long)n);

	_cleanup_close_ int fd = -1;
	uint64_t dsize;
	if ((rc = luks2_dev_open(dev, true, true, &fd, &dsize, &err)) < 0)
		return cli_fail(ctx, "%s", err.msg);
	_cleanup_luks2_lock_ struct luks2_lock lk = LUKS2_LOCK_INIT;
	if ((rc = luks2_lock(fd, dev, true, &lk, &err)) < 0)
		return cli_fail(ctx, "%s", err.msg);
	if (dsize < n || (fh->data_offset && dsize <= fh->data_offset))
		return cli_fail(ctx, "%s: too small (%llu bytes) for the backup's header area and data offset",
				dev, (unsigned long long)dsize);
	_cleanup_luks2_hdr_ struct luks2_hdr *cur = NULL;
	struct werr cerr = {0};
	rc = luks2_hdr_read(fd, dev, &cur, NULL, &cerr);
	if (rc == 0) {
		if (strcmp(cur->uuid, fh->uuid) && !force)
			return cli_fail(ctx, "%s: its header has UUID %s but %s has UUID %s; check you have the right backup, then add --force",
					dev, cur->uuid, file, fh->uuid);
		if (cur->data_offset != fh->data_offset && !force)
			return cli_fail(ctx, "%s: data offset %llu differs from the backup's %llu; restoring would misplace the data; add --force only if you are sure",
					dev, (unsigned long long)cur->data_offset,
					(unsigned long long)fh->data_offset);
		if ((cur->req_cryptsetup_reencrypt || cur->req_unknown) && !force)
			return cli_fail(ctx, "%s: the current header has an operation in progress (%s); add --force to replace it anyway",
					dev, cur->req_unknown ? cur->req_unknown_name : "cryptsetup reencryption");
	} else if (!force) {
		return cli_fail(ctx, "%s: no valid header to compare the backup's UUID with (%s); add --force to restore anyway",
				dev, cerr.msg);
	}
	if ((rc = write_full_at(fd, buf, (size_t)n, 0)) < 0 || (fsync(fd) < 0 && (rc = -errno)))
		return cli_fail(ctx, "%s: writing the header failed: %s; retry the restore", dev,
				strerror(-rc));
	_cleanup_luks2_hdr_ struct luks2_hdr *back = NULL;
	if ((rc = luks2_hdr_read(fd, dev, &back, NULL, &err)) < 0 || strcmp(back->uuid, fh->uuid))
		return cli_fail(ctx, "%s: the restored header does not read back: %s", dev,
				werr_str(&err, rc ? rc : -EIO));
	if (ctx->log.level >= WLOG_WARN)
		printf("%s: header restored from %s (UUID %s)\n", dev, file, fh->uuid);
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
