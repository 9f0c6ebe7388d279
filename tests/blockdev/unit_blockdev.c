/* Unit tests of blockdev/ that need no root: mountinfo parsing, identity,
 * a symlink swapped between two opens (by a hook, not a race), the in-use
 * error line. */
#include "tests/lib/unit.h"

#include "blockdev/internal.h"

#include <fcntl.h>
#include <sys/sysmacros.h>

static char dir[] = "/tmp/wrapd-bdev-XXXXXX";
static char fa[300], fb[300], ln[300];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(fa, sizeof(fa), "%s/a.img", dir);
	snprintf(fb, sizeof(fb), "%s/b.img", dir);
	snprintf(ln, sizeof(ln), "%s/by-id", dir);
	for (int i = 0; i < 2; i++) {
		int fd = open(i ? fb : fa, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		int ok = ftruncate(fd, (i + 1) << 20) == 0 && write(fd, i ? "B" : "A", 1) == 1;
		close(fd);
		if (!ok)
			return -1;
	}
	return symlink(fa, ln);
}

static int teardown(void **state)
{
	(void)state;
	unlink(ln);
	unlink(fa);
	unlink(fb);
	rmdir(dir);
	return 0;
}

static void mountinfo_lines(void **state)
{
	(void)state;
	dev_t d;
	char *m, *s;
	char l1[] = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n";
	assert_true(bdev_mountinfo_parse(l1, &d, &m, &s));
	assert_int_equal(major(d), 98);
	assert_int_equal(minor(d), 0);
	assert_string_equal(m, "/mnt/parent");
	assert_string_equal(s, "/dev/root");

	/* Escapes in the mount point and the source; no optional fields. */
	char l2[] = "40 1 7:3 / /mnt/my\\040disk\\011x rw - ext4 /dev/loop\\1343 rw\n";
	assert_true(bdev_mountinfo_parse(l2, &d, &m, &s));
	assert_int_equal(d, makedev(7, 3));
	assert_string_equal(m, "/mnt/my disk\tx");
	assert_string_equal(s, "/dev/loop\\3");

	/* Several optional fields. */
	char l3[] = "50 1 0:45 / /srv rw shared:5 master:2 propagate_from:1 - btrfs /dev/sdb2 rw\n";
	assert_true(bdev_mountinfo_parse(l3, &d, &m, &s));
	assert_int_equal(d, makedev(0, 45));
	assert_string_equal(s, "/dev/sdb2");

	char l4[] = "garbage\n", l5[] = "1 2 x:y / /m rw - ext4 /dev/a rw\n";
	assert_false(bdev_mountinfo_parse(l4, &d, &m, &s));
	assert_false(bdev_mountinfo_parse(l5, &d, &m, &s));
	/* Truncated after the mount point: parsed, no source. */
	char l6[] = "1 2 8:1 / /m rw\n";
	assert_true(bdev_mountinfo_parse(l6, &d, &m, &s));
	assert_null(s);
}

static void identity(void **state)
{
	(void)state;
	struct stat a, b, a2;
	assert_int_equal(stat(fa, &a), 0);
	assert_int_equal(stat(fb, &b), 0);
	assert_int_equal(stat(ln, &a2), 0);
	assert_true(bdev_same(&a, &a2));
	assert_false(bdev_same(&a, &b));
	struct stat x = {.st_mode = S_IFBLK, .st_rdev = makedev(7, 1), .st_ino = 1};
	struct stat y = {.st_mode = S_IFBLK, .st_rdev = makedev(7, 1), .st_ino = 2};
	struct stat z = {.st_mode = S_IFBLK, .st_rdev = makedev(7, 2), .st_ino = 1};
	assert_true(bdev_same(&x, &y)); /* another node of the same device */
	assert_false(bdev_same(&x, &z));
	struct stat f = {.st_mode = S_IFREG, .st_rdev = makedev(7, 1), .st_ino = 1};
	assert_false(bdev_same(&x, &f));
}

static void refuses_other_types(void **state)
{
	(void)state;
	struct werr e = {0};
	struct bdev b = BDEV_INIT;
	assert_int_equal(bdev_open(&b, "/dev/null", 0, &e), -ENOTBLK);
	assert_non_null(strstr(e.msg, "/dev/null: not a block device or a regular file"));
	bdev_close(&b);
	assert_int_equal(bdev_open(&b, dir, 0, &e), -ENOTBLK);
	bdev_close(&b);
	char missing[400];
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	assert_int_equal(bdev_open(&b, missing, 0, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "missing: No such file or directory"));
	bdev_close(&b);
	assert_int_equal(b.fd, -1);
}

static void swap_link(void *arg, const struct bdev *b)
{
	(void)b;
	int *calls = arg;
	(*calls)++;
	/* What udev does to a /dev/disk/by-id link when a disk is swapped. */
	assert_int_equal(unlink(ln), 0);
	assert_int_equal(symlink(fb, ln), 0);
}

static void restore_link(void)
{
	unlink(ln);
	assert_int_equal(symlink(fa, ln), 0);
}

static char first_byte(int fd)
{
	char c = 0;
	assert_int_equal(pread(fd, &c, 1, 0), 1);
	return c;
}

/* The symlink changes between the first open and a derived one: through
 * /proc/self/fd the derived fd is still the first object. */
static void swapped_link_reopen_follows_fd(void **state)
{
	(void)state;
	int calls = 0;
	struct bdev_hooks h = {.before_reopen = swap_link, .arg = &calls};
	struct bdev b = BDEV_INIT;
	b.hooks = &h;
	struct werr e = {0};
	assert_int_equal(bdev_open(&b, ln, BDEV_WRITE, &e), 0);
	assert_int_equal(b.size, 1 << 20);
	int fd = -1;
	assert_int_equal(bdev_reopen(&b, O_RDWR, &fd, &e), 0);
	assert_int_equal(calls, 1);
	assert_int_equal(first_byte(fd), 'A');
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(bdev_same(&st, &b.st));
	close(fd);
	bdev_close(&b);
	restore_link();
}

/* Without /proc the path is opened again: the swapped link is refused. */
static void swapped_link_by_path_refused(void **state)
{
	(void)state;
	int calls = 0;
	struct bdev_hooks h = {.before_reopen = swap_link, .arg = &calls, .no_proc = true};
	struct bdev b = BDEV_INIT;
	b.hooks = &h;
	struct werr e = {0};
	assert_int_equal(bdev_open(&b, ln, 0, &e), 0);
	int fd = 123;
	assert_int_equal(bdev_reopen(&b, O_RDONLY, &fd, &e), -ESTALE);
	assert_int_equal(fd, -1);
	assert_int_equal(calls, 1);
	assert_non_null(strstr(e.msg, ln));
	assert_non_null(strstr(e.msg, "is not the device opened first"));
	bdev_close(&b);
	restore_link();

	/* Unchanged link, no /proc: accepted. */
	h.before_reopen = NULL;
	b.hooks = &h;
	assert_int_equal(bdev_open(&b, ln, 0, &e), 0);
	assert_int_equal(bdev_reopen(&b, O_RDONLY, &fd, &e), 0);
	assert_int_equal(first_byte(fd), 'A');
	close(fd);
	bdev_close(&b);
}

static void verify_fd(void **state)
{
	(void)state;
	struct bdev b = BDEV_INIT;
	struct werr e = {0};
	assert_int_equal(bdev_open(&b, fa, 0, &e), 0);
	int other = open(fb, O_RDONLY | O_CLOEXEC);
	assert_true(other >= 0);
	assert_int_equal(bdev_verify_fd(&b, other, "the header fd", &e), -ESTALE);
	assert_non_null(strstr(e.msg, "the header fd is not the device opened first"));
	assert_int_equal(bdev_verify_fd(&b, b.fd, "the fd", &e), 0);
	close(other);
	bdev_close(&b);
}

/* A file nothing uses; the O_DIRECT reopen either works or says -EINVAL. */
static void unused_file(void **state)
{
	(void)state;
	struct bdev b = BDEV_INIT;
	struct werr e = {0};
	assert_int_equal(bdev_open(&b, fa, BDEV_WRITE | BDEV_EXCL, &e), 0);
	assert_int_equal(bdev_check_unused(&b, &e), 0);
	struct bdev_usage u;
	assert_int_equal(bdev_usage_scan(&b.st, b.fd, false, &u), 0);
	assert_int_equal(u.n, 0);
	int fd = -1;
	int r = bdev_reopen(&b, O_RDWR | O_DIRECT, &fd, &e);
	assert_true(r == 0 || r == -EINVAL);
	if (r == 0)
		close(fd);
	bdev_close(&b);
}

static void error_line(void **state)
{
	(void)state;
	struct bdev_usage u = {0};
	struct werr e = {0};
	assert_int_equal(bdev_usage_err("/dev/x", &u, &e), 0);

	u.n = 2;
	u.use[0] = (struct bdev_use){.kind = BDEV_USE_HOLDER, .who = "dm-3", .label = "pgdata",
				     .text = "held by dm-3 (pgdata)"};
	u.use[1] = (struct bdev_use){.kind = BDEV_USE_MOUNT, .who = "/mnt/x",
				     .text = "mounted at /mnt/x"};
	assert_int_equal(bdev_usage_err("/dev/x", &u, &e), -EBUSY);
	assert_string_equal(e.msg, "/dev/x: in use: held by dm-3 (pgdata); mounted at /mnt/x; "
				   "close the mapping first (wrapctl close pgdata, or dmsetup remove pgdata)");

	u.n = 1;
	u.more = true;
	u.use[0] = u.use[1];
	assert_int_equal(bdev_usage_err("/dev/x", &u, &e), -EBUSY);
	assert_string_equal(e.msg, "/dev/x: in use: mounted at /mnt/x; and more; unmount it first (umount /mnt/x)");

	u.more = false;
	u.use[0] = (struct bdev_use){.kind = BDEV_USE_LOOP, .who = "/dev/loop2", .offset = 16777216,
				     .text = "held by loop device /dev/loop2 (backed at offset 16777216)"};
	assert_int_equal(bdev_usage_err("a.img", &u, &e), -EBUSY);
	assert_string_equal(e.msg, "a.img: in use: held by loop device /dev/loop2 (backed at offset 16777216); "
				   "detach it first (losetup -d /dev/loop2)");
	snprintf(u.use[0].label, sizeof(u.use[0].label), "held by dm-0 (v)");
	assert_int_equal(bdev_usage_err("a.img", &u, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "close what uses /dev/loop2 first (it is held by dm-0 (v)), then detach it"));

	u.use[0] = (struct bdev_use){.kind = BDEV_USE_EXCL, .text = "opened exclusively by another program"};
	assert_int_equal(bdev_usage_err("/dev/y", &u, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "wait for that program to finish"));
}

static void adopt(void **state)
{
	(void)state;
	struct bdev b = BDEV_INIT;
	struct werr e = {0};
	int fd = open(fb, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(bdev_adopt(&b, fd, fb, BDEV_WRITE, &e), 0);
	assert_int_equal(b.fd, fd);
	assert_int_equal(b.size, 2 << 20);
	assert_string_equal(b.path, fb);
	assert_int_equal(bdev_check_unused(&b, &e), 0);
	bdev_close(&b);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed with b */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(bdev_adopt(&b, fd, "/dev/null", 0, &e), -ENOTBLK);
	bdev_close(&b);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

static void devname(void **state)
{
	(void)state;
	char *n = NULL;
	assert_int_equal(bdev_devname(makedev(0, 0), &n), -ENOENT);
	assert_null(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mountinfo_lines),
		cmocka_unit_test(identity),
		cmocka_unit_test(refuses_other_types),
		cmocka_unit_test(swapped_link_reopen_follows_fd),
		cmocka_unit_test(swapped_link_by_path_refused),
		cmocka_unit_test(verify_fd),
		cmocka_unit_test(unused_file),
		cmocka_unit_test(error_line),
		cmocka_unit_test(adopt),
		cmocka_unit_test(devname),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
