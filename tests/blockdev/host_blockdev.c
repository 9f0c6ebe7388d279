/* blockdev/ on this host's kernel: real loop devices (at offsets, stacked,
 * partitioned), a real ext4 mount, a real O_EXCL holder. Skipped without
 * root or /dev/loop-control; every loop and mount is undone in teardown. */
#include "tests/lib/unit.h"

#include "blockdev/blockdev.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>

static char dir[] = "/tmp/wrapd-bdh-XXXXXX";
static char img[300], mnt[300];
static int loops[8];
static size_t nloops;
static bool mounted;

static bool have_loop(void)
{
	return geteuid() == 0 && access("/dev/loop-control", R_OK | W_OK) == 0;
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt dir", dir); /* a space: escaped in mountinfo */
	int fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int r = ftruncate(fd, 64 << 20);
	close(fd);
	return r == 0 && mkdir(mnt, 0700) == 0 ? 0 : -1;
}

/* Each test leaves nothing behind, even when it fails half-way. */
static int cleanup(void **state)
{
	(void)state;
	if (mounted)
		(void)umount2(mnt, MNT_DETACH);
	mounted = false;
	while (nloops) {
		int fd = loops[--nloops];
		(void)ioctl(fd, LOOP_CLR_FD, 0);
		close(fd);
	}
	return 0;
}

static int teardown(void **state)
{
	cleanup(state);
	unlink(img);
	rmdir(mnt);
	rmdir(dir);
	return 0;
}

/* A loop device on path at offset (no autoclear: the test detaches it). */
static void attach(const char *path, uint64_t offset, bool partscan, char *dev, size_t n,
		   dev_t *rdev)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	assert_true(ctl >= 0);
	int bfd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(bfd >= 0);
	for (int i = 0; i < 32; i++) {
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		assert_true(nr >= 0);
		snprintf(dev, n, "/dev/loop%d", nr);
		int lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0)
			continue;
		struct loop_config c;
		memset(&c, 0, sizeof(c));
		c.fd = (uint32_t)bfd;
		c.info.lo_offset = offset;
		c.info.lo_flags = partscan ? LO_FLAGS_PARTSCAN : 0;
		if (ioctl(lfd, LOOP_CONFIGURE, &c) == 0) {
			struct stat st;
			assert_int_equal(fstat(lfd, &st), 0);
			if (rdev)
				*rdev = st.st_rdev;
			loops[nloops++] = lfd;
			close(bfd);
			close(ctl);
			return;
		}
		close(lfd);
	}
	fail_msg("no loop device for %s", path);
}

static const struct bdev_use *find_use(const struct bdev_usage *u, enum bdev_use_kind k,
				       const char *who)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->use[i].kind == k && (!who || !strcmp(u->use[i].who, who)))
			return &u->use[i];
	return NULL;
}

static void scan_path(const char *path, bool excl_held, struct bdev_usage *u)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(bdev_usage_scan(&st, fd, excl_held, u), 0);
	close(fd);
}

/* Loops on a file at offsets 0 and 16 MiB: one scan names both. */
static void file_loops_any_offset(void **state)
{
	(void)state;
	if (!have_loop())
		skip();
	struct bdev_usage u;
	scan_path(img, false, &u);
	assert_int_equal(u.n, 0);

	char l0[32], l16[32];
	attach(img, 0, false, l0, sizeof(l0), NULL);
	attach(img, 16 << 20, false, l16, sizeof(l16), NULL);
	scan_path(img, false, &u);
	assert_int_equal(u.n, 2);
	const struct bdev_use *a = find_use(&u, BDEV_USE_LOOP, l0);
	const struct bdev_use *b = find_use(&u, BDEV_USE_LOOP, l16);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->offset, 0);
	assert_int_equal(b->offset, 16 << 20);
	char want[1024];
	snprintf(want, sizeof(want), "held by loop device %s (backed at offset 16777216)", l16);
	assert_string_equal(b->text, want);

	struct bdev_loop bl[1];
	size_t n = 0;
	struct stat st;
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal(bdev_loops_backed_by(&st, bl, 1, &n), 0);
	assert_int_equal(n, 2); /* counted past cap */

	/* bdev_open + bdev_check_unused: the error line names a loop and says
	 * what to do. */
	struct bdev bd = BDEV_INIT;
	struct werr e = {0};
	assert_int_equal(bdev_open(&bd, img, BDEV_WRITE | BDEV_EXCL, &e), 0);
	assert_int_equal(bdev_check_unused(&bd, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "in use: held by loop device /dev/loop"));
	assert_non_null(strstr(e.msg, "detach it first (losetup -d /dev/loop"));
	bdev_close(&bd);

	cleanup(state);
	scan_path(img, false, &u);
	assert_int_equal(u.n, 0);
}

/* ext4 on a loop device, mounted: the loop device is "mounted at", O_EXCL
 * refuses it with the same line, and the file under it names the loop and
 * its mount. */
static void mounted_ext4(void **state)
{
	(void)state;
	if (!have_loop())
		skip();
	char l[32];
	attach(img, 0, false, l, sizeof(l), NULL);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F '%s' >/dev/null 2>&1", l);
	if (system(cmd) != 0)
		skip();
	assert_int_equal(mount(l, mnt, "ext4", 0, NULL), 0);
	mounted = true;

	struct bdev_usage u;
	scan_path(l, false, &u);
	assert_int_equal(u.n, 1);
	assert_int_equal(u.use[0].kind, BDEV_USE_MOUNT);
	assert_string_equal(u.use[0].who, mnt);

	struct bdev bd = BDEV_INIT;
	struct werr e = {0};
	assert_int_equal(bdev_open(&bd, l, BDEV_WRITE | BDEV_EXCL, &e), -EBUSY);
	char want[1400];
	snprintf(want, sizeof(want), "%s: in use: mounted at %s; unmount it first (umount %s)", l, mnt,
		 mnt);
	assert_string_equal(e.msg, want);
	bdev_close(&bd);
	assert_null(bd.path);

	/* Without O_EXCL the open works and the check finds the same. */
	assert_int_equal(bdev_open(&bd, l, 0, &e), 0);
	assert_int_equal(bdev_check_unused(&bd, &e), -EBUSY);
	assert_string_equal(e.msg, want);
	bdev_close(&bd);

	scan_path(img, false, &u);
	assert_int_equal(u.n, 1);
	snprintf(want, sizeof(want), "held by loop device %s (backed at offset 0; it is mounted at %s)",
		 l, mnt);
	assert_string_equal(u.use[0].text, want);
	assert_int_equal(bdev_usage_err(img, &u, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "close what uses /dev/loop"));

	assert_int_equal(umount2(mnt, 0), 0);
	mounted = false;
	scan_path(l, false, &u);
	assert_int_equal(u.n, 0);
	cleanup(state);
}

/* A loop device backed by a block device (another loop): found by st_rdev. */
static void block_backs_loop(void **state)
{
	(void)state;
	if (!have_loop())
		skip();
	char l1[32], l2[32];
	dev_t r1;
	attach(img, 0, false, l1, sizeof(l1), &r1);
	attach(l1, 4096, false, l2, sizeof(l2), NULL);
	struct bdev_usage u;
	scan_path(l1, false, &u);
	const struct bdev_use *x = find_use(&u, BDEV_USE_LOOP, l2);
	assert_non_null(x);
	assert_int_equal(x->offset, 4096);
	assert_int_equal(u.n, 1);
	cleanup(state);
}

/* Someone else holds the device O_EXCL: named as such; while we hold it
 * O_EXCL ourselves (BDEV_EXCL), a mount of it is refused by the kernel. */
static void exclusive(void **state)
{
	(void)state;
	if (!have_loop())
		skip();
	char l[32];
	attach(img, 0, false, l, sizeof(l), NULL);
	int other = open(l, O_RDONLY | O_EXCL | O_CLOEXEC);
	assert_true(other >= 0);
	struct bdev_usage u;
	scan_path(l, false, &u);
	assert_int_equal(u.n, 1);
	assert_int_equal(u.use[0].kind, BDEV_USE_EXCL);
	struct bdev bd = BDEV_INIT;
	struct werr e = {0};
	assert_int_equal(bdev_open(&bd, l, BDEV_WRITE | BDEV_EXCL, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "in use: opened exclusively by another program"));
	bdev_close(&bd);
	close(other);

	char cmd[400];
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F '%s' >/dev/null 2>&1", l);
	if (system(cmd) != 0)
		skip();
	assert_int_equal(bdev_open(&bd, l, BDEV_WRITE | BDEV_EXCL, &e), 0);
	assert_int_equal(bdev_check_unused(&bd, &e), 0); /* our own O_EXCL is no user */
	/* The reopened fd (O_DIRECT, as the engine uses) is the same device. */
	int dfd = -1;
	assert_int_equal(bdev_reopen(&bd, O_RDWR | O_DIRECT, &dfd, &e), 0);
	close(dfd);
	assert_int_equal(mount(l, mnt, "ext4", 0, NULL), -1);
	assert_int_equal(errno, EBUSY);
	bdev_close(&bd);
	assert_int_equal(mount(l, mnt, "ext4", 0, NULL), 0);
	mounted = true;
	cleanup(state);
}

/* A disk with a partition: the partition's users are the disk's users. */
static void partition_users(void **state)
{
	(void)state;
	if (!have_loop())
		skip();
	/* An MBR with one Linux partition from 1 MiB to the end. */
	uint8_t mbr[512] = {0};
	uint8_t *p = mbr + 446;
	p[4] = 0x83;
	uint32_t start = 2048, len = (64 << 20) / 512 - 2048;
	memcpy(p + 8, &start, 4);
	memcpy(p + 12, &len, 4);
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	int fd = open(img, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, mbr, sizeof(mbr), 0), 512);
	close(fd);
	char l[32], lp[40], l2[32];
	attach(img, 0, true, l, sizeof(l), NULL);
	snprintf(lp, sizeof(lp), "%sp1", l);
	if (access(lp, F_OK) < 0)
		skip(); /* no partition node (no devtmpfs) */
	attach(lp, 0, false, l2, sizeof(l2), NULL);
	struct bdev_usage u;
	scan_path(l, false, &u);
	const struct bdev_use *x = find_use(&u, BDEV_USE_LOOP, l2);
	assert_non_null(x);
	assert_string_equal(x->part, lp);
	char want[1024];
	snprintf(want, sizeof(want), "%s held by loop device %s (backed at offset 0)", lp, l2);
	assert_string_equal(x->text, want);
	cleanup(state);
	fd = open(img, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	memset(mbr, 0, sizeof(mbr));
	assert_int_equal(pwrite(fd, mbr, sizeof(mbr), 0), 512);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(file_loops_any_offset, cleanup),
		cmocka_unit_test_teardown(mounted_ext4, cleanup),
		cmocka_unit_test_teardown(block_backs_loop, cleanup),
		cmocka_unit_test_teardown(exclusive, cleanup),
		cmocka_unit_test_teardown(partition_users, cleanup),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
