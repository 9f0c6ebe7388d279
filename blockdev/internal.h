/* blockdev internals: shared by the blockdev sources and their tests only. */
#ifndef WRAPD_BLOCKDEV_INTERNAL_H
#define WRAPD_BLOCKDEV_INTERNAL_H

#include "blockdev/blockdev.h"

/* Test hooks (struct bdev.hooks). They let a test change the world at an
 * exact point instead of racing. */
struct bdev_hooks {
	/* Called by bdev_reopen just before the new fd is opened. */
	void (*before_reopen)(void *arg, const struct bdev *b);
	void *arg;
	/* Reopen by path, as when /proc is not mounted. */
	bool no_proc;
};

/* One line of /proc/self/mountinfo: the device number (field 3), the mount
 * point (field 5, \ooo escapes decoded) and the mount source (after " - "
 * and the fs type). Returns false for a line it cannot parse. */
bool bdev_mountinfo_parse(char *line, dev_t *dev, char **mnt, char **source);

#endif
