/*
 * Loop devices for volumes that live in regular files, as cryptsetup does:
 * a fresh loop device per open, with autoclear, so the loop disappears when
 * the dm mapping on top of it is removed (or when we close our fd on a
 * failure path, before any mapping took a reference).
 */
#include "volume/volume.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

int volume_devname(dev_t dev, char **out)
{
	char p[64];
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/uevent", major(dev), minor(dev));
	_cleanup_free_ char *buf = NULL;
	int r = read_file(p, 65536, &buf, NULL);
	if (r < 0)
		return r;
	for (char *l = buf; l && *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(l, "DEVNAME=", 8)) {
			if (strchr(l + 8, '/') && strstr(l + 8, ".."))
				return -EINVAL;
			if (asprintf(out, "/dev/%s", l + 8) < 0)
				return -ENOMEM;
			return 0;
		}
		l = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

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

static int find_loop(const char *path, bool any_offset, char **loopdev, struct werr *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return werr_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	_cleanup_(closedirp) DIR *d = opendir("/sys/block");
	if (!d)
		return -ENOENT;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "loop", 4))
			continue;
		char p[300];
		snprintf(p, sizeof(p), "/sys/block/%s/loop", de->d_name);
		if (access(p, F_OK) < 0)
			continue; /* not bound */
		snprintf(p, sizeof(p), "/dev/%s", de->d_name);
		_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		dev_t bdev;
		ino_t ino;
		uint64_t off;
		if (loop_backing(fd, &bdev, &ino, &off) < 0)
			continue;
		if (bdev == st.st_dev && ino == st.st_ino && (any_offset || off == 0)) {
			*loopdev = strdup(p);
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
