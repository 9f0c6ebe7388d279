/* luks2_device_open: the one "open + lock + read header" (format/device.c on
 * blockdev/). Files only, no root; the in-use refusal with a real loop
 * device when root. */
#include "tests/lib/unit.h"

#include "blockdev/internal.h"
#include "format/format.h"

#include <fcntl.h>
#include <sys/file.h>

static char dir[] = "/tmp/wrapd-fdev-XXXXXX";
static char img[300], other[300], ln[300], hdrf[300];
static char uuid[37];

static void write_header(const char *path, uint64_t size, char out_uuid[37])
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	struct secbuf vk = {0};
	assert_int_equal(secbuf_alloc(&vk, 64), 0);
	vk.len = 64;
	for (size_t i = 0; i < 64; i++)
		vk.data[i] = (uint8_t)(i * 7 + 1);
	struct luks2_new_params p = {0};
	struct luks2_hdr *h = NULL;
	struct werr e = {0};
	assert_int_equal(luks2_hdr_new(&p, &vk, &h, &e), 0);
	assert_int_equal(luks2_hdr_write(fd, h, path, &e), 0);
	memcpy(out_uuid, h->uuid, 37);
	luks2_hdr_free(h);
	secbuf_free(&vk);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/v.img", dir);
	snprintf(other, sizeof(other), "%s/o.img", dir);
	snprintf(ln, sizeof(ln), "%s/link", dir);
	snprintf(hdrf, sizeof(hdrf), "%s/v.hdr", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(img);
	unlink(other);
	unlink(ln);
	unlink(hdrf);
	rmdir(dir);
	return 0;
}

static void open_lock_read(void **state)
{
	(void)state;
	write_header(img, 32 << 20, uuid);
	struct luks2_device d = LUKS2_DEVICE_INIT;
	struct werr e = {0};
	assert_int_equal(luks2_device_open(&d, img, NULL, LUKS2_DEV_WRITE | LUKS2_DEV_EXCL |
						       LUKS2_DEV_LOCK_EX | LUKS2_DEV_UNUSED |
						       LUKS2_DEV_READ, &e), 0);
	assert_non_null(d.hdr);
	assert_string_equal(d.hdr->uuid, uuid);
	assert_string_equal(d.hdr_path, img);
	assert_int_equal(d.dev.size, 32 << 20);
	assert_int_equal(luks2_device_hfd(&d), d.dev.fd);
	assert_true(d.lock.fd >= 0);
	/* The lock is really held: another open file description cannot take it. */
	int x = open(img, O_RDONLY | O_CLOEXEC);
	assert_true(x >= 0);
	assert_int_equal(flock(x, LOCK_SH | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	luks2_device_close(&d);
	assert_int_equal(flock(x, LOCK_EX | LOCK_NB), 0);
	close(x);
	assert_int_equal(d.dev.fd, -1);
	assert_null(d.hdr);
}

static void no_header(void **state)
{
	(void)state;
	int fd = open(other, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	struct luks2_device d = LUKS2_DEVICE_INIT;
	struct werr e = {0};
	assert_int_equal(luks2_device_open(&d, other, NULL, LUKS2_DEV_READ, &e), -ENODEV);
	char want[700];
	snprintf(want, sizeof(want), "%s: no LUKS2 header here; run 'wrapctl format %s' first", other, other);
	assert_non_null(strstr(e.msg, want));
	luks2_device_close(&d);
	/* NO_LOCK: a peek while someone holds the lock exclusively. */
	struct luks2_device holder = LUKS2_DEVICE_INIT;
	assert_int_equal(luks2_device_open(&holder, img, NULL, LUKS2_DEV_LOCK_EX, &e), 0);
	assert_int_equal(luks2_device_open(&d, img, NULL, LUKS2_DEV_NO_LOCK | LUKS2_DEV_READ, &e), 0);
	assert_string_equal(d.hdr->uuid, uuid);
	assert_int_equal(d.lock.fd, -1);
	luks2_device_close(&d);
	luks2_device_close(&holder);
	/* Without LUKS2_DEV_READ: opened and locked, nothing read. */
	assert_int_equal(luks2_device_open(&d, other, NULL, 0, &e), 0);
	assert_null(d.hdr);
	assert_true(d.lock.fd >= 0);
	luks2_device_close(&d);
}

static void detached(void **state)
{
	(void)state;
	char u2[37];
	write_header(hdrf, 16 << 20, u2);
	struct luks2_device d = LUKS2_DEVICE_INIT;
	struct werr e = {0};
	assert_int_equal(luks2_device_open(&d, other, hdrf, LUKS2_DEV_READ, &e), 0);
	assert_string_equal(d.hdr->uuid, u2);
	assert_string_equal(d.hdr_path, hdrf);
	assert_int_equal(luks2_device_hfd(&d), d.hdev.fd);
	assert_int_equal(d.dev.size, 1 << 20);
	luks2_device_close(&d);
	/* The header "file" is the device itself, through another name. */
	assert_int_equal(symlink(img, ln), 0);
	assert_int_equal(luks2_device_open(&d, img, ln, LUKS2_DEV_READ, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "--header names the device itself"));
	luks2_device_close(&d);
	unlink(ln);
}

static void swap(void *arg, const struct bdev *b)
{
	(void)arg;
	(void)b;
	assert_int_equal(unlink(ln), 0);
	assert_int_equal(symlink(other, ln), 0);
}

/* A by-id style link that changes after the header was read: the derived
 * fd (what the engine uses for O_DIRECT data I/O) is still the device whose
 * header was read; by path, the change is refused. */
static void link_swapped_after_header(void **state)
{
	(void)state;
	assert_int_equal(symlink(img, ln), 0);
	struct bdev_hooks h = {.before_reopen = swap};
	struct luks2_device d = LUKS2_DEVICE_INIT;
	d.dev.hooks = &h;
	struct werr e = {0};
	assert_int_equal(luks2_device_open(&d, ln, NULL, LUKS2_DEV_READ, &e), 0);
	assert_string_equal(d.hdr->uuid, uuid);
	int fd = -1;
	assert_int_equal(bdev_reopen(&d.dev, O_RDONLY, &fd, &e), 0);
	struct luks2_hdr *again = NULL;
	assert_int_equal(luks2_hdr_read(fd, "again", &again, NULL, &e), 0);
	assert_string_equal(again->uuid, uuid);
	luks2_hdr_free(again);
	close(fd);
	luks2_device_close(&d);
	unlink(ln);

	assert_int_equal(symlink(img, ln), 0);
	h.no_proc = true;
	d = (struct luks2_device)LUKS2_DEVICE_INIT;
	d.dev.hooks = &h;
	assert_int_equal(luks2_device_open(&d, ln, NULL, LUKS2_DEV_READ, &e), 0);
	assert_int_equal(bdev_reopen(&d.dev, O_RDONLY, &fd, &e), -ESTALE);
	assert_non_null(strstr(e.msg, "is not the device opened first"));
	luks2_device_close(&d);
	unlink(ln);
}

/* LUKS2_DEV_UNUSED refuses a file a loop device is backed by. */
static void unused_refuses_loop(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/dev/loop-control", R_OK | W_OK) < 0)
		skip();
	char cmd[512], dev[64] = "";
	snprintf(cmd, sizeof(cmd), "losetup -f --show -o 1048576 '%s' 2>/dev/null", img);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	bool got = fgets(dev, sizeof(dev), p) != NULL;
	if (pclose(p) != 0 || !got)
		skip();
	dev[strcspn(dev, "\n")] = '\0';
	struct luks2_device d = LUKS2_DEVICE_INIT;
	struct werr e = {0};
	int r = luks2_device_open(&d, img, NULL, LUKS2_DEV_WRITE | LUKS2_DEV_UNUSED | LUKS2_DEV_READ, &e);
	luks2_device_close(&d);
	snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(r, -EBUSY);
	char want[300];
	snprintf(want, sizeof(want), "in use: held by loop device %s (backed at offset 1048576)", dev);
	assert_non_null(strstr(e.msg, want));
	/* Without it the same open works (inspect, open). */
	assert_int_equal(luks2_device_open(&d, img, NULL, LUKS2_DEV_READ, &e), 0);
	luks2_device_close(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(open_lock_read),
		cmocka_unit_test(no_header),
		cmocka_unit_test(detached),
		cmocka_unit_test(link_swapped_after_header),
		cmocka_unit_test(unused_refuses_loop),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
