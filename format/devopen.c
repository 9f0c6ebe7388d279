/*
 * The one "open + lock + read header" (struct luks2_device): the device and a
 * detached header file opened once through blockdev/, the lock, the header.
 * Kept out of device.c so the header fuzzer links without blockdev/.
 */
#include "format/internal.h"

void luks2_device_close(struct luks2_device *d)
{
	luks2_unlock(&d->lock);
	luks2_hdr_free(d->hdr);
	d->hdr = NULL;
	bdev_close(&d->hdev);
	bdev_close(&d->dev);
	d->hdr_path = NULL;
}

int luks2_device_open(struct luks2_device *d, const char *path, const char *header, unsigned how,
		      struct werr *err)
{
	unsigned bf = ((how & LUKS2_DEV_WRITE) ? BDEV_WRITE : 0) | ((how & LUKS2_DEV_EXCL) ? BDEV_EXCL : 0);
	int r = bdev_open(&d->dev, path, bf, err);
	if (r < 0)
		return r;
	d->hdr_path = d->dev.path;
	if ((how & LUKS2_DEV_UNUSED) && (r = bdev_check_unused(&d->dev, err)) < 0)
		return r;
	if (header) {
		r = bdev_open(&d->hdev, header, bf & BDEV_WRITE, err);
		if (r < 0)
			return werr_prefix(err, r, "the detached header");
		if (bdev_same(&d->hdev.st, &d->dev.st))
			return werr_set(err, -EINVAL, "%s: --header names the device itself; drop --header",
					header);
		d->hdr_path = d->hdev.path;
		if ((how & LUKS2_DEV_UNUSED) && (r = bdev_check_unused(&d->hdev, err)) < 0)
			return r;
	}
	struct werr lerr = {0};
	r = (how & LUKS2_DEV_NO_LOCK) ? 0 : luks2_lock(luks2_device_hfd(d), d->hdr_path, (how & LUKS2_DEV_LOCK_EX) != 0, &d->lock,
		       &lerr);
	if (r < 0 && !(how & LUKS2_DEV_LOCK_TRY)) {
		if (err)
			*err = lerr;
		return r;
	}
	if (!(how & LUKS2_DEV_READ))
		return 0;
	r = luks2_hdr_read(luks2_device_hfd(d), d->hdr_path, &d->hdr, NULL, err);
	if (r == -ENODEV)
		return werr_set(err, r,
				"%s: no LUKS2 header here; run 'wrapctl format %s' first (or pass --header FILE)",
				d->hdr_path, d->hdr_path);
	return r;
}
