/*
 * engine: is the device (or the header file) held by someone else? A block
 * device with holders, a mounted one, or a file or device that some loop
 * device is backed by (at any offset) is refused before anything is written.
 *
 * Kept apart on purpose: the blockdev module is building the one "is this
 * device in use?" helper for format, engine and erase; it replaces this file.
 */
#include "engine/internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* The first loop device (any offset) whose backing inode is st: a regular
 * file is compared by device and inode, a block device by its number. Asks
 * each bound loop by LOOP_GET_STATUS64; when /dev/loopN cannot be opened,
 * stats /sys/block/loopN/loop/backing_file instead. */
static bool loop_backed_by(const struct stat *st, char *name, size_t namelen)
{
	DIR *d = opendir("/sys/block");
	if (!d)
		return false;
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (strncmp(de->d_name, "loop", 4))
			continue;
		char p[300];
		snprintf(p, sizeof(p), "/sys/block/%s/loop", de->d_name);
		if (access(p, F_OK) < 0)
			continue; /* not bound to anything */
		dev_t bdev = 0, rdev = 0;
		ino_t ino = 0;
		bool known = false;
		snprintf(p, sizeof(p), "/dev/%s", de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			struct loop_info64 li;
			memset(&li, 0, sizeof(li));
			if (ioctl(fd, LOOP_GET_STATUS64, &li) == 0) {
				bdev = (dev_t)li.lo_device;
				ino = (ino_t)li.lo_inode;
				rdev = (dev_t)li.lo_rdevice;
				known = true;
			}
			close(fd);
		}
		if (!known) {
			snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
			char bf[PATH_MAX + 16];
			FILE *f = fopen(p, "re");
			if (!f)
				continue;
			bool got = fgets(bf, sizeof(bf), f) != NULL;
			fclose(f);
			if (!got)
				continue;
			bf[strcspn(bf, "\n")] = 0;
			struct stat bst;
			if (stat(bf, &bst) < 0)
				continue; /* e.g. "(deleted)": not our inode */
			bdev = bst.st_dev;
			ino = bst.st_ino;
			rdev = bst.st_rdev;
		}
		if (S_ISREG(st->st_mode))
			found = bdev == st->st_dev && ino == st->st_ino;
		else
			found = rdev != 0 && rdev == st->st_rdev;
		if (found)
			snprintf(name, namelen, "/dev/%s", de->d_name);
	}
	closedir(d);
	return found;
}

int engine_check_not_held(const char *path, struct werr *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return werr_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return 0;
	/* A loop device on top (losetup, or a mapping opened from a file) reads
	 * and writes through its own cache: converting under it corrupts both. */
	char loopname[300];
	if (loop_backed_by(&st, loopname, sizeof(loopname)))
		return werr_set(err, -EBUSY,
				"%s: device is held by loop device %s; detach it first (losetup -d %s)",
				path, loopname, loopname);
	if (!S_ISBLK(st.st_mode))
		return 0;
	char p[128];
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/holders", major(st.st_rdev), minor(st.st_rdev));
	DIR *d = opendir(p);
	if (d) {
		struct dirent *de;
		bool held = false;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				held = true;
		closedir(d);
		if (held)
			return werr_set(err, -EBUSY,
					"%s: device is held by another device (see %s); close it first",
					path, p);
	}
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	char mm[32];
	snprintf(mm, sizeof(mm), " %u:%u ", major(st.st_rdev), minor(st.st_rdev));
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, mm))
			return werr_set(err, -EBUSY, "%s: device is mounted; unmount it first", path);
	return 0;
}
