/*
 * flock locking compatible with cryptsetup (lib/utils_device_locking.c):
 * block devices lock /run/cryptsetup/L_<major>:<minor>, regular files lock
 * the file itself. A lock file unlinked by a releasing cryptsetup between our
 * open and flock is detected by comparing inodes, and retried.
 */
#include "format/internal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define LOCK_DIR "/run/cryptsetup"

static int open_lock_dir(void)
{
	int fd = open(LOCK_DIR, O_RDONLY | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno != ENOENT)
		return -errno;
	if (mkdir(LOCK_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(LOCK_DIR, O_RDONLY | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int luks2_lock(int devfd, const char *what, bool exclusive, struct luks2_lock *lk,
	       struct werr *err)
{
	struct stat st;
	lk->fd = -1;
	lk->path[0] = '\0';
	if (fstat(devfd, &st) < 0)
		return werr_set(err, -errno, "%s: cannot stat: %s", what, strerror(errno));
	int op = exclusive ? LOCK_EX : LOCK_SH;
	if (S_ISREG(st.st_mode)) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", devfd);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return werr_set(err, -errno, "%s: cannot open for locking: %s", what,
					strerror(errno));
		while (flock(fd, op) < 0) {
			if (errno == EINTR)
				continue;
			int rc = -errno;
			close(fd);
			return werr_set(err, rc, "%s: cannot lock: %s", what, strerror(-rc));
		}
		lk->fd = fd;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return werr_set(err, -ENOTBLK, "%s: not a block device or regular file", what);
	snprintf(lk->path, sizeof(lk->path), LOCK_DIR "/L_%u:%u", major(st.st_rdev),
		 minor(st.st_rdev));
	for (;;) {
		int dfd = open_lock_dir();
		if (dfd < 0)
			return werr_set(err, dfd, "%s: cannot open the lock directory %s: %s", what,
					LOCK_DIR, strerror(-dfd));
		int fd = openat(dfd, lk->path + sizeof(LOCK_DIR), O_CREAT | O_NOFOLLOW | O_RDWR | O_CLOEXEC,
				0644);
		int e = errno;
		close(dfd);
		if (fd < 0)
			return werr_set(err, -e, "%s: cannot open the lock file %s: %s", what,
					lk->path, strerror(e));
		while (flock(fd, op) < 0) {
			if (errno == EINTR)
				continue;
			int rc = -errno;
			close(fd);
			return werr_set(err, rc, "%s: cannot lock %s: %s", what, lk->path,
					strerror(-rc));
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(lk->path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			lk->fd = fd;
			return 0;
		}
		close(fd); /* unlinked under us by a releasing holder: retry */
	}
}

void luks2_unlock(struct luks2_lock *lk)
{
	if (!lk || lk->fd < 0)
		return;
	/* As cryptsetup: drop the lock file when nobody else holds it. */
	if (lk->path[0] && flock(lk->fd, LOCK_EX | LOCK_NB) == 0) {
		struct stat a, b;
		if (fstat(lk->fd, &a) == 0 && stat(lk->path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			(void)unlink(lk->path);
	}
	flock(lk->fd, LOCK_UN);
	close(lk->fd);
	lk->fd = -1;
}
