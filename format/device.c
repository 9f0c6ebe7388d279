/* Opening devices and header files with one clear error line per failure. */
#include "format/internal.h"

#include <fcntl.h>
#include <sys/stat.h>

int luks2_dev_open(const char *path, bool write, bool excl, int *fd, uint64_t *size,
		   struct werr *err)
{
	*fd = -1;
	struct stat st;
	if (stat(path, &st) < 0) {
		int e = errno;
		return werr_set(err, -e, "%s: %s; give the path of a block device or an image file",
				path, strerror(e));
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return werr_set(err, -ENOTBLK, "%s: not a block device or a regular file", path);
	int flags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	if (write && excl && S_ISBLK(st.st_mode))
		flags |= O_EXCL;
	int f = open(path, flags);
	if (f < 0) {
		int e = errno;
		if (e == EBUSY)
			return werr_set(err, -e,
					"%s: device is in use (mounted, mapped or held); unmount or close it first",
					path);
		if (e == EACCES || e == EPERM || e == EROFS)
			return werr_set(err, -e, "%s: %s; run as root or check the permissions", path,
					strerror(e));
		return werr_set(err, -e, "%s: cannot open: %s", path, strerror(e));
	}
	uint64_t sz;
	int rc = fd_size(f, &sz);
	if (rc < 0) {
		close(f);
		return werr_set(err, rc, "%s: cannot get its size: %s", path, strerror(-rc));
	}
	*fd = f;
	if (size)
		*size = sz;
	return 0;
}
