/*
 * erase: crypto-erase. The wrapped VK (the wrapd-vault token) is removed and
 * the VK digest replaced by the digest of a random key nobody holds, in both
 * header copies; then the data area is discarded where the device allows it.
 * Without the wrapped VK the data is unreadable, whatever the discard did.
 */
#include "volume/internal.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <openssl/rand.h>
#include <sys/ioctl.h>

/* Refuses while anything uses the volume: a mapping of it anywhere (by dm
 * UUID), or any user of its data device or header file (blockdev/: mounts,
 * holders, loop devices at any offset, exclusive openers). */
static int check_not_open(const struct vdev *vd, struct werr *err)
{
	char prefix[80];
	volume_dm_uuid_prefix(vd->d.hdr->uuid, prefix, sizeof(prefix));
	struct sysdm *m = NULL;
	size_t n = 0;
	int r = sysdm_list(prefix, &m, &n);
	if (r < 0)
		return r;
	if (n) {
		r = werr_set(err, -EBUSY, "%s: volume is open as '%s'; run 'wrapctl close %s' first",
			     vd->path, m[0].name, m[0].name);
		free(m);
		return r;
	}
	free(m);
	r = bdev_check_unused(&vd->d.dev, err);
	if (r == 0 && vd->d.hdev.fd >= 0)
		r = bdev_check_unused(&vd->d.hdev, err);
	return r;
}

static void human(uint64_t b, char *buf, size_t n)
{
	if (b >= (1ull << 30))
		snprintf(buf, n, "%.1f GiB", (double)b / (1ull << 30));
	else
		snprintf(buf, n, "%.1f MiB", (double)b / (1ull << 20));
}

int volume_erase(const struct volume_ctx *ctx, const char *device, const char *header,
		 struct volume_erase_report *rep, struct werr *err)
{
	(void)ctx;
	struct vdev vd = VDEV_INIT;
	int r;
	memset(rep, 0, sizeof(*rep));

	/* VDEV_EXCL: a block device stays ours until the end (no mount or
	 * mapping can start on it meanwhile). */
	r = vdev_open(&vd, device, header, VDEV_WRITE | VDEV_LOCK_EX | VDEV_EXCL, err);
	if (r < 0)
		goto out;
	r = check_not_open(&vd, err);
	if (r < 0)
		goto out;
	r = luks2_check_writable(vd.d.hdr, vd.d.hdr_path, err);
	if (r < 0)
		goto out;

	/* 1. The header: token gone, digest replaced. */
	if (vd.have_tok) {
		r = wrapd_token_remove(vd.d.hdr, err);
		if (r < 0)
			goto out;
		rep->token_removed = true;
	}
	int old = luks2_digest_for_segment(vd.d.hdr, 0);
	if (old >= 0) {
		_cleanup_secbuf_ struct secbuf junk = {0};
		unsigned nid;
		struct luks2_segment *segs = NULL;
		size_t ns = 0;
		r = secbuf_alloc(&junk, vd.d.hdr->key_size ? vd.d.hdr->key_size : WRAPD_VK_BYTES);
		if (r < 0)
			goto out;
		junk.len = junk.cap;
		if (RAND_bytes(junk.data, (int)junk.len) != 1) {
			r = werr_set(err, -EIO, "%s: no random bytes from OpenSSL", vd.d.hdr_path);
			goto out;
		}
		r = luks2_digest_add(vd.d.hdr, &junk, 0, &nid, err);
		if (r == 0)
			r = luks2_segments_get(vd.d.hdr, &segs, &ns, err);
		if (r == 0) {
			for (size_t i = 0; i < ns; i++)
				if (segs[i].digest == old)
					segs[i].digest = (int)nid;
			r = luks2_segments_set(vd.d.hdr, segs, ns, err);
			luks2_segments_free(segs, ns);
		}
		if (r == 0)
			r = luks2_digest_remove(vd.d.hdr, (unsigned)old, err);
		if (r < 0)
			goto out;
		rep->digest_destroyed = true;
	}
	r = luks2_hdr_write(luks2_device_hfd(&vd.d), vd.d.hdr, vd.d.hdr_path, err);
	if (r < 0)
		goto out;
	rep->copies_written = 2;

	/* 2. The data area. */
	uint64_t size = 0, off = vd.d.hdr->data_offset;
	if (header)
		off = vd.d.hdr->data_offset; /* detached: offset into the data device */
	if (fd_size(vd.d.dev.fd, &size) < 0 || size <= off) {
		snprintf(rep->data_action, sizeof(rep->data_action), "no data area to discard");
		goto out;
	}
	uint64_t len = size - off;
	char hs[32];
	human(len, hs, sizeof(hs));
	if (S_ISBLK(vd.d.dev.st.st_mode)) {
		uint64_t range[2] = {off, len};
		if (ioctl(vd.d.dev.fd, BLKDISCARD, range) == 0)
			snprintf(rep->data_action, sizeof(rep->data_action),
				 "discarded %s of data (BLKDISCARD)", hs);
		else
			snprintf(rep->data_action, sizeof(rep->data_action),
				 "data area left in place (%s: BLKDISCARD: %s); it is unreadable without the key",
				 hs, strerror(errno));
	} else {
		if (fallocate(vd.d.dev.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len) == 0)
			snprintf(rep->data_action, sizeof(rep->data_action),
				 "punched holes over %s of data (file size kept)", hs);
		else
			snprintf(rep->data_action, sizeof(rep->data_action),
				 "data area left in place (%s: punch hole: %s); it is unreadable without the key",
				 hs, strerror(errno));
	}
	(void)fsync(vd.d.dev.fd);
out:
	vdev_close(&vd);
	return r;
}
