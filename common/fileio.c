/* Full-length positional I/O, small-file reads and atomic writes. */
#include "common/common.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

/* pread/pwrite until n bytes moved: a short transfer is retried, EOF is -EIO. */
static int io_full_at(int fd, void *buf, size_t n, off_t off, bool write)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = write ? pwrite(fd, p, n, off) : pread(fd, p, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int read_full_at(int fd, void *buf, size_t n, off_t off)
{
	return io_full_at(fd, buf, n, off, false);
}

int write_full_at(int fd, const void *buf, size_t n, off_t off)
{
	/* pwrite does not write through the pointer; the cast only shares the loop. */
	return io_full_at(fd, (void *)buf, n, off, true);
}

/* The first line of a small file (sysfs), without the newline. */
int read_first_line(const char *path, char *buf, size_t n)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r = read(fd, buf, n - 1);
	if (r < 0)
		return -errno;
	buf[r] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return read_file_fd(fd, max, out, outlen);
}

/* One directory above a trusted file: owned by root (or the effective uid)
 * and writable by its owner only, or root's with the sticky bit (/tmp,
 * /dev/shm, a Kubernetes projected volume: nobody else can rename or remove
 * a file there that they do not own). */
static int dir_check_trusted(const char *dir, const char *path, struct werr *err)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return werr_set(err, -errno, "%s: cannot check its directory %s: %s", path, dir,
				strerror(errno));
	const char *why = NULL;
	char owner[64];
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(owner, sizeof(owner), "is owned by uid %u, not root", (unsigned)st.st_uid);
		why = owner;
	} else if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !((st.st_mode & S_ISVTX) && st.st_uid == 0)) {
		why = (st.st_mode & S_IWOTH) ? "is world-writable" : "is group-writable";
	}
	if (!why)
		return 0;
	return werr_set(err, -EPERM,
			"%s: its directory %s %s, so others could replace the file; wrapd trusts only files in directories that root owns and only root can write: run 'chown root:root %s && chmod go-w %s'",
			path, dir, why, dir, dir);
}

/* Every directory above the absolute path p, up to "/". */
static int dirs_check_trusted(const char *p, const char *path, struct werr *err)
{
	_cleanup_free_ char *d = strdup(p);
	if (!d)
		return werr_set(err, -ENOMEM, "out of memory");
	for (;;) {
		char *s = strrchr(d, '/');
		if (!s)
			return 0;
		if (s == d) {
			d[1] = '\0';
			return dir_check_trusted(d, path, err);
		}
		*s = '\0';
		int rc = dir_check_trusted(d, path, err);
		if (rc < 0)
			return rc;
	}
}

int file_check_trusted(const struct stat *st, const char *path, struct werr *err)
{
	const char *why = NULL;
	char owner[64];
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(owner, sizeof(owner), "is owned by uid %u, not root", (unsigned)st->st_uid);
		why = owner;
	} else if (st->st_mode & S_IWOTH) {
		why = "is world-writable";
	} else if (st->st_mode & S_IWGRP) {
		why = "is group-writable";
	}
	if (why)
		return werr_set(err, -EPERM,
				"%s: %s; wrapd trusts only files that root owns and only root can write: run 'chown root:root %s && chmod go-w %s'",
				path, why, path, path);
	/* The directories, as sshd's StrictModes: both the path as given (a
	 * symlink in a writable directory could be swapped) and where it leads. */
	_cleanup_free_ char *abs = NULL;
	if (path[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&abs, "%s/%s", cwd, path) < 0)
			return werr_set(err, -ENOMEM, "%s: cannot make the path absolute", path);
	}
	int rc = dirs_check_trusted(abs ? abs : path, path, err);
	if (rc < 0)
		return rc;
	_cleanup_free_ char *real = realpath(path, NULL);
	if (!real)
		return werr_set(err, -errno, "%s: cannot resolve: %s", path, strerror(errno));
	return dirs_check_trusted(real, path, err);
}

int read_file_fd(int fd, size_t max, char **out, size_t *outlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size >= max)
		return -EFBIG;
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	for (;;) {
		if (got == (size_t)st.st_size + 1)
			return -EFBIG; /* grew while reading */
		ssize_t r = read(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	if (outlen)
		*outlen = got;
	*out = TAKE_PTR(buf);
	return 0;
}

int write_file_atomic(const char *path, const void *data, size_t n, mode_t mode)
{
	size_t plen = strlen(path);
	_cleanup_free_ char *tmp = malloc(plen + 16);
	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (fchmod(fd, mode) < 0)
		rc = -errno;
	if (!rc)
		rc = write_full_at(fd, data, n, 0);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

int parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s || *s < '0' || *s > '9')
		return -EINVAL;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int fd_size(int fd, uint64_t *out)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*out = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t sz;
		if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
			return -errno;
		*out = sz;
		return 0;
	}
	return -ENOTBLK;
}
