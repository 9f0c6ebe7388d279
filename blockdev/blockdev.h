/*
 * blockdev: the kernel questions about a device (or an image file) that wrapd
 * is about to read or change.
 *
 * It owns:
 *  - opening a device once per operation (struct bdev): every further fd an
 *    operation needs (O_DIRECT, another access mode, the loop device's
 *    backing fd) is derived from that first fd through /proc/self/fd/N and
 *    checked to be the same object (st_rdev for block devices, st_dev +
 *    st_ino for files), so a /dev/disk/by-id link that changes in between
 *    cannot pair one device's header with another's data;
 *  - the one answer to "is this device in use?": mounts (mountinfo, by device
 *    number), holders (sysfs: dm mappings by their dm name, md, ...), the
 *    same for each partition of a disk, loop devices backed by it at any
 *    offset (and what uses those loops), and another exclusive opener
 *    (O_EXCL on block devices). The answer names each user, and
 *    bdev_check_unused() turns it into one error line that says what to do;
 *  - the one scan of loop devices (/sys/block/loop*, LOOP_GET_STATUS64, and
 *    loop/backing_file when /dev/loopN cannot be opened).
 *
 * It knows nothing of LUKS2 headers or of wrapd volumes.
 */
#ifndef WRAPD_BLOCKDEV_H
#define WRAPD_BLOCKDEV_H

#include <sys/stat.h>

#include "common/common.h"

/* ---- one open per operation --------------------------------------------- */

enum {
	BDEV_WRITE = 1u << 0,   /* O_RDWR, else O_RDONLY */
	BDEV_EXCL = 1u << 1,    /* block devices: O_EXCL, held until bdev_close */
};

struct bdev_hooks;

struct bdev {
	char *path;             /* as given, for messages */
	int fd;
	struct stat st;         /* of fd: the identity every derived fd must match */
	uint64_t size;          /* bytes */
	unsigned flags;         /* BDEV_* it was opened with */
	const struct bdev_hooks *hooks; /* tests only (blockdev/internal.h); NULL */
};
#define BDEV_INIT {.fd = -1}

/* Opens path once: a block device or a regular file (anything else is
 * refused). With BDEV_EXCL a block device that someone holds exclusively
 * (mounted, mapped, another O_EXCL opener) fails with -EBUSY and a line that
 * names the users. Call bdev_close afterwards, also after a failure. b->hooks
 * is kept; everything else is (re)initialised. */
int bdev_open(struct bdev *b, const char *path, unsigned flags, struct werr *err);
/* The same for an fd the caller opened itself (a file it just created with
 * O_CREAT | O_EXCL): b takes ownership of fd, also on failure. */
int bdev_adopt(struct bdev *b, int fd, const char *path, unsigned flags, struct werr *err);
void bdev_close(struct bdev *b);
static inline void bdev_closep(struct bdev *b) { bdev_close(b); }
#define _cleanup_bdev_ _cleanup_(bdev_closep)

/* Another fd on the same object with open flags oflags (O_ACCMODE, O_DIRECT,
 * O_EXCL ...; O_CLOEXEC is added), through /proc/self/fd/N. Without /proc
 * it falls back to the path and refuses (-ESTALE) when the path now names
 * something else. O_DIRECT on a file system that refuses it (tmpfs) fails
 * with -EINVAL and no message, so the caller can fall back. */
int bdev_reopen(const struct bdev *b, int oflags, int *fd, struct werr *err);
/* Whether two stats are the same device (block: st_rdev) or file (st_dev +
 * st_ino). */
bool bdev_same(const struct stat *a, const struct stat *b);
/* -ESTALE with a line naming b->path (and what, e.g. "the data fd") when fd
 * is not the object b opened. */
int bdev_verify_fd(const struct bdev *b, int fd, const char *what, struct werr *err);

/* ---- who uses it --------------------------------------------------------- */

enum bdev_use_kind {
	BDEV_USE_MOUNT = 1,     /* who = mount point */
	BDEV_USE_HOLDER,        /* who = kernel name (dm-3, md0), label = dm name */
	BDEV_USE_LOOP,          /* who = /dev/loopN, offset; label = its own users */
	BDEV_USE_EXCL,          /* opened O_EXCL by someone we cannot name */
};

struct bdev_use {
	enum bdev_use_kind kind;
	char part[40];          /* "/dev/sda1" when a partition is the one used, else "" */
	char who[256];
	char label[256];
	uint64_t offset;        /* BDEV_USE_LOOP: lo_offset */
	char text[640];         /* "mounted at /mnt/x", "held by dm-3 (pgdata)", ... */
};

#define BDEV_USES_MAX 16
struct bdev_usage {
	size_t n;
	bool more;              /* more users than BDEV_USES_MAX */
	struct bdev_use use[BDEV_USES_MAX];
};

/* Everything that uses the object in st (as fstat'ed; a block device or a
 * regular file). fd (or -1) is an fd on it, used for the O_EXCL probe of a
 * block device; pass excl_held when the caller itself holds it O_EXCL (the
 * probe would only find the caller). Files have loop devices as their only
 * kernel users. Returns 0 (u->n == 0: unused) or a negative errno when the
 * kernel could not be asked. */
int bdev_usage_scan(const struct stat *st, int fd, bool excl_held, struct bdev_usage *u);
/* bdev_usage_scan of b; -EBUSY and one line when anything uses it:
 * "PATH: in use: mounted at /mnt/x; held by dm-3 (pgdata); unmount it first
 * (umount /mnt/x)". */
int bdev_check_unused(const struct bdev *b, struct werr *err);
/* The same line for a usage found by the caller. */
int bdev_usage_err(const char *path, const struct bdev_usage *u, struct werr *err);

/* ---- loop devices --------------------------------------------------------- */

struct bdev_loop {
	char dev[32];           /* /dev/loopN */
	char kname[24];         /* loopN */
	dev_t rdev;             /* of /dev/loopN */
	uint64_t offset;
};
/* Every bound loop device backed by the object in st (a regular file by
 * st_dev + st_ino, a block device by st_rdev), at any offset. Fills up to
 * cap, sets *n to the number found (which may exceed cap). */
int bdev_loops_backed_by(const struct stat *st, struct bdev_loop *out, size_t cap, size_t *n);

/* "/dev/<DEVNAME>" of a block device number, from sysfs. */
int bdev_devname(dev_t dev, char **out);

#endif
