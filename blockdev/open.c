/*
 * One open per operation: the device path is resolved once; every other fd
 * is derived from the first through /proc/self/fd/N (a magic link to the
 * opened inode, not to the path), and its identity is checked anyway.
 */
#include "blockdev/internal.h"

#include <fcntl.h>

bool bdev_same(const struct stat *a, const struct stat *b)
{
	if ((a->st_mode & S_IFMT) != (b->st_mode & S_IFMT))
		return false;
	if (S_ISBLK(a->st_mode))
		return a->st_rdev == b->st_rdev;
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

int bdev_verify_fd(const struct bdev *b, int fd, const char *what, struct werr *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return werr_set(err, -errno, "%s: cannot stat %s: %s", b->path, what, strerror(errno));
	if (!bdev_same(&b->st, &st))
		return werr_set(err, -ESTALE,
				"%s: %s is not the device opened first (the path now names another device or file; "
				"a symlink changed?); nothing was written, check the path and retry",
				b->path, what);
	return 0;
}

static int open_error(const char *path, int e, struct werr *err)
{
	if (e == EACCES || e == EPERM || e == EROFS)
		return werr_set(err, -e, "%s: %s; run as root or check the permissions", path,
				strerror(e));
	if (e == ENOENT || e == ENOTDIR)
		return werr_set(err, -e, "%s: %s; give the path of a block device or an image file",
				path, strerror(e));
	return werr_set(err, -e, "%s: cannot open: %s", path, strerror(e));
}

void bdev_close(struct bdev *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	free(b->path);
	b->path = NULL;
}

int bdev_adopt(struct bdev *b, int fd, const char *path, unsigned flags, struct werr *err)
{
	const struct bdev_hooks *hooks = b->hooks;
	*b = (struct bdev)BDEV_INIT;
	b->hooks = hooks;
	b->flags = flags & ~BDEV_EXCL;
	b->fd = fd;
	b->path = strdup(path);
	if (!b->path)
		return -ENOMEM;
	if (fstat(fd, &b->st) < 0)
		return werr_set(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
	if (!S_ISBLK(b->st.st_mode) && !S_ISREG(b->st.st_mode))
		return werr_set(err, -ENOTBLK, "%s: not a block device or a regular file", path);
	int r = fd_size(fd, &b->size);
	if (r < 0)
		return werr_set(err, r, "%s: cannot get its size: %s", path, strerror(-r));
	return 0;
}

int bdev_open(struct bdev *b, const char *path, unsigned flags, struct werr *err)
{
	const struct bdev_hooks *hooks = b->hooks;
	*b = (struct bdev)BDEV_INIT;
	b->hooks = hooks;
	b->flags = flags;
	b->path = strdup(path);
	if (!b->path)
		return -ENOMEM;
	int oflags = ((flags & BDEV_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY;
	/* O_NONBLOCK: a FIFO or a tty given by mistake must not hang us; it is
	 * cleared again below. */
	int fd = open(path, oflags | O_NONBLOCK);
	if (fd < 0)
		return open_error(path, errno, err);
	b->fd = fd;
	if (fstat(fd, &b->st) < 0)
		return werr_set(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
	if (!S_ISBLK(b->st.st_mode) && !S_ISREG(b->st.st_mode))
		return werr_set(err, -ENOTBLK, "%s: not a block device or a regular file", path);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return werr_set(err, -errno, "%s: fcntl: %s", path, strerror(errno));
	if ((flags & BDEV_EXCL) && S_ISBLK(b->st.st_mode)) {
		/* O_EXCL on the same device: derived from the fd just opened,
		 * then the plain fd is dropped. */
		int xfd = -1;
		int r = bdev_reopen(b, oflags | O_EXCL, &xfd, err);
		if (r == -EBUSY) {
			struct bdev_usage u;
			if (bdev_usage_scan(&b->st, b->fd, true, &u) == 0 && u.n)
				return bdev_usage_err(path, &u, err);
			return werr_set(err, -EBUSY,
					"%s: in use: opened exclusively by another program (mkfs, cryptsetup, "
					"wrapctl, ...); wait for it to finish or stop it",
					path);
		}
		if (r < 0)
			return r;
		close(b->fd);
		b->fd = xfd;
	}
	int r = fd_size(b->fd, &b->size);
	if (r < 0)
		return werr_set(err, r, "%s: cannot get its size: %s", path, strerror(-r));
	return 0;
}

int bdev_reopen(const struct bdev *b, int oflags, int *fd, struct werr *err)
{
	*fd = -1;
	if (b->fd < 0)
		return -EBADF;
	if (b->hooks && b->hooks->before_reopen)
		b->hooks->before_reopen(b->hooks->arg, b);
	oflags |= O_CLOEXEC | O_NOCTTY;
	oflags &= ~(O_CREAT | O_TRUNC);
	int f = -1, e = ENOENT;
	if (!(b->hooks && b->hooks->no_proc)) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", b->fd);
		f = open(p, oflags);
		e = errno;
	}
	if (f < 0 && e == ENOENT) {
		/* No /proc: the path again, checked below. */
		f = open(b->path, oflags);
		e = errno;
	}
	if (f < 0) {
		if (e == EINVAL && (oflags & O_DIRECT))
			return -EINVAL;
		if (e == EBUSY)
			return werr_set(err, -EBUSY, "%s: in use (someone holds it exclusively)", b->path);
		return open_error(b->path, e, err);
	}
	int r = bdev_verify_fd(b, f, "the reopened fd", err);
	if (r < 0) {
		close(f);
		return r;
	}
	*fd = f;
	return 0;
}
