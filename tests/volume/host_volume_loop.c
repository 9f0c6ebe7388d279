/* Unit tests for loop devices (volume/loop.c) on a regular file. Skipped
 * when the host gives us no loop devices (not root, no /dev/loop-control). */
#include "tests/lib/unit.h"

#include "volume/volume.h"

#include <fcntl.h>
#include <sys/stat.h>

static char file[] = "/tmp/wrapd-loop-XXXXXX";

static int setup(void **state)
{
	(void)state;
	int fd = mkstemp(file);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, 8 << 20) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(file);
	return 0;
}

static bool have_loop(void)
{
	return geteuid() == 0 && access("/dev/loop-control", R_OK | W_OK) == 0;
}

static void attach_find_detach(void **state)
{
	(void)state;
	if (!have_loop())
		skip();
	struct werr e;
	werr_clear(&e);
	char *dev = NULL, *found = NULL;
	int lfd = -1;
	assert_int_equal(loop_find(file, &found, &e), -ENOENT);
	int r = loop_attach(file, false, &lfd, &dev, &e);
	if (r == -ENOENT || r == -ENXIO || r == -ENODEV)
		skip();
	assert_int_equal(r, 0);
	assert_true(lfd >= 0);
	assert_non_null(dev);
	assert_int_equal(loop_find(file, &found, &e), 0);
	assert_string_equal(found, dev);
	free(found);
	found = NULL;

	uint64_t size = 0;
	assert_int_equal(fd_size(lfd, &size), 0);
	assert_int_equal(size, 8 << 20);

	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	dev_t bdev;
	ino_t ino;
	assert_int_equal(loop_backing(lfd, &bdev, &ino, NULL), 0);
	assert_true(bdev == st.st_dev && ino == st.st_ino);

	/* The kernel's name for it matches. */
	struct stat lst;
	assert_int_equal(fstat(lfd, &lst), 0);
	char *name = NULL;
	assert_int_equal(volume_devname(lst.st_rdev, &name), 0);
	assert_string_equal(name, dev);
	free(name);

	loop_release(&lfd, true);
	assert_int_equal(lfd, -1);
	/* Detached synchronously: nothing is left behind. */
	assert_int_equal(loop_find(file, &found, &e), -ENOENT);
	free(dev);
}

static void autoclear_on_close(void **state)
{
	(void)state;
	if (!have_loop())
		skip();
	struct werr e;
	char *dev = NULL, *found = NULL;
	int lfd = -1;
	int r = loop_attach(file, true, &lfd, &dev, &e);
	if (r == -ENOENT || r == -ENXIO || r == -ENODEV)
		skip();
	assert_int_equal(r, 0);
	/* Read-only: writes are refused by the kernel. */
	int wfd = open(dev, O_WRONLY | O_CLOEXEC);
	if (wfd >= 0) {
		char b[512] = {0};
		assert_true(pwrite(wfd, b, sizeof(b), 0) < 0);
		close(wfd);
	}
	loop_release(&lfd, false); /* plain close: autoclear does the rest */
	assert_int_equal(loop_find(file, &found, &e), -ENOENT);
	free(dev);
}

/* A loop at an offset is still a user of the file: loop_find_any sees it
 * (erase must refuse), loop_find (offset 0 only, for reuse) does not. */
static void find_any_offset(void **state)
{
	(void)state;
	if (!have_loop())
		skip();
	char cmd[512], dev[64] = "";
	snprintf(cmd, sizeof(cmd), "losetup -f --show -o 4096 '%s'", file);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	bool got = fgets(dev, sizeof(dev), p) != NULL;
	int st = pclose(p);
	if (!got || st != 0)
		skip(); /* no losetup or no free loop device here */
	dev[strcspn(dev, "\n")] = '\0';
	struct werr e;
	char *found = NULL;
	assert_int_equal(loop_find(file, &found, &e), -ENOENT);
	assert_int_equal(loop_find_any(file, &found, &e), 0);
	assert_string_equal(found, dev);
	free(found);
	snprintf(cmd, sizeof(cmd), "losetup -d '%s'", dev);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(loop_find_any(file, &found, &e), -ENOENT);
}

static void bad_file(void **state)
{
	(void)state;
	struct werr e;
	werr_clear(&e);
	char *dev = NULL;
	int lfd = -1;
	assert_true(loop_attach("/nonexistent/wrapd", false, &lfd, &dev, &e) == -ENOENT);
	assert_non_null(strstr(e.msg, "/nonexistent/wrapd"));
	assert_int_equal(lfd, -1);
	assert_null(dev);
	assert_int_equal(loop_find("/nonexistent/wrapd", &dev, &e), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(attach_find_detach),
		cmocka_unit_test(autoclear_on_close),
		cmocka_unit_test(find_any_offset),
		cmocka_unit_test(bad_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
