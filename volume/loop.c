/*
 * Loop devices for volumes that live in regular files, as cryptsetup does:
 * a fresh loop device per open, with autoclear, so the loop disappears when
 * the dm mapping on top of it is removed (or when we close our fd on a
 * failure path, before any mapping took a reference).
 */
#include "volume/volume.h"
#include "blockdev/blockdev.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

int loop_backing(int loopfd, dev_t *dev, ino_t *ino, uint64_t *offset)
{
	struct loop_info64 li;
	memset(&li, 0, sizeof(li));
	if (ioctl(loopfd, LOOP_GET_STATUS64, &li) < 0)
		return -errno;
	*dev = (dev_t)li.lo_device;
	*ino = (ino_t)li.lo_inode;
	if (offset)
		*offset = li.lo_offset;
	return 0;
}

/* The one loop scan lives in blockdev/. */
static int find_loop(const char *path, bool any_offset, char **loopdev, struct werr *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return werr_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	struct bdev_loop l[32];
	size_t n = 0;
	int r = bdev_loops_backed_by(&st, l, ARRAY_SIZE(l), &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && i < ARRAY_SIZE(l); i++) {
		if (any_offset || l[i].offset == 0) {
			*loopdev = strdup(l[i].dev);
			return *loopdev ? 0 : -ENOMEM;
		}
	}
	return -ENOENT;
}

int loop_find(const char *path, char **loopdev, struct werr *err)
{
	return find_loop(path, false, loopdev, err);
}

int loop_find_any(const char *path, char **loopdev, struct werr *err)
{
	return find_loop(path, true, loopdev, err);
}

int loop_attach(const char *path, bool read_only, int *loop_fd, char **loopdev,
		struct werr *err)
{
	_cleanup_close_ int ffd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (ffd < 0)
		return werr_set(err, -errno, "%s: cannot open for the loop device: %s", path,
				strerror(errno));
	return loop_attach_fd(ffd, path, read_only, loop_fd, loopdev, err);
}

int loop_attach_fd(int ffd, const char *path, bool read_only, int *loop_fd, char **loopdev,
		   struct werr *err)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return werr_set(err, -errno,
				"%s: cannot open /dev/loop-control: %s; load the loop module ('modprobe loop')",
				path, strerror(errno));

	/* Another process may grab the free device between GET_FREE and
	 * CONFIGURE; retry a bounded number of times. */
	for (int attempt = 0; attempt < 64; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			return werr_set(err, -errno, "%s: no free loop device: %s", path, strerror(errno));
		char dev[32];
		snprintf(dev, sizeof(dev), "/dev/loop%d", n);
		_cleanup_close_ int lfd = open(dev, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (lfd < 0) {
			if (errno == ENOENT)
				continue; /* node not created yet (no udev); try again */
			return werr_set(err, -errno, "%s: cannot open %s: %s", path, dev, strerror(errno));
		}
		struct loop_config cfg;
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (uint32_t)ffd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (read_only ? LO_FLAGS_READ_ONLY : 0);
		snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", path);
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
			int e = errno;
			if (e == EBUSY)
				continue;
			if (e != EINVAL && e != ENOTTY)
				return werr_set(err, -e, "%s: cannot attach %s: %s", path, dev, strerror(e));
			/* Kernel < 5.8: SET_FD then SET_STATUS64. */
			if (ioctl(lfd, LOOP_SET_FD, ffd) < 0) {
				e = errno;
				if (e == EBUSY)
					continue;
				return werr_set(err, -e, "%s: cannot attach %s: %s", path, dev, strerror(e));
			}
			if (ioctl(lfd, LOOP_SET_STATUS64, &cfg.info) < 0) {
				e = errno;
				(void)ioctl(lfd, LOOP_CLR_FD, 0);
				return werr_set(err, -e, "%s: cannot configure %s: %s", path, dev, strerror(e));
			}
		}
		if (loopdev) {
			*loopdev = strdup(dev);
			if (!*loopdev) {
				(void)ioctl(lfd, LOOP_CLR_FD, 0);
				return -ENOMEM;
			}
		}
		*loop_fd = TAKE_FD(lfd);
		return 0;
	}
	return werr_set(err, -EBUSY, "%s: every free loop device was taken by someone else; retry", path);
}

void loop_release(int *loop_fd, bool detach)
{
	if (*loop_fd < 0)
		return;
	/* With only our fd open, CLR_FD detaches now; if a mapping holds the
	 * device it just (re)arms autoclear. */
	if (detach)
		(void)ioctl(*loop_fd, LOOP_CLR_FD, 0);
	close(*loop_fd);
	*loop_fd = -1;
}

int volume_devname(dev_t dev, char **out)
{
	return bdev_devname(dev, out);
}
