/*
 * Real-kernel test of the keyring + dm modules (needs dm-crypt and root; run
 * it through tests/vm/run-kernel-tests, which boots a VM when this kernel
 * has no device-mapper).
 *
 * A file in /tmp on a loop device carries a mapping made exactly as `wrapctl
 * open` will make it: logon key in the thread keyring, table through the dm
 * module, key removed right after. Then we check what only a real kernel can
 * tell us: the data round-trips through /dev/mapper/NAME with O_DIRECT, the
 * table names the key but never contains it, and the ciphertext on the loop
 * device is exactly OpenSSL's AES-256-XTS with IV = 512-byte sector number
 * relative to the data offset (also for 4096-byte sectors).
 */
#include "tests/lib/unit.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <openssl/evp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "dm/dm.h"
#include "keyring/keyring.h"

#define DATA_OFFSET_SECTORS 2048u              /* 1 MiB, like a small LUKS2 header */
#define DATA_SECTORS 16384u                    /* 8 MiB of data */
#define IO_CHUNK (1024u * 1024u)
#define MAX_NAMES 8

struct fixture {
	char file[64];
	int loop_fd;
	char loop_path[32];
	dev_t loop_dev;
	struct dmcrypt_ctx dm;
	struct wlog log;
	struct secbuf vk;
	char uuid[37];
	char names[MAX_NAMES][64];
	size_t n_names;
};

/* ---- setup: file, loop device, volume key ---------------------------------- */

static void random_bytes(void *p, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t r = getrandom((uint8_t *)p + off, n - off, 0);
		assert_true(r > 0);
		off += (size_t)r;
	}
}

static int loop_attach(const char *file, int *loop_fd, char *path, size_t cap)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int backing = open(file, O_RDWR | O_CLOEXEC);
	if (ctl < 0 || backing < 0)
		return -errno;
	for (int tries = 0; tries < 16; tries++) {
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0)
			return -errno;
		snprintf(path, cap, "/dev/loop%d", nr);
		_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		struct loop_config cfg = { .fd = (uint32_t)backing, .block_size = 512 };
		if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
			*loop_fd = TAKE_FD(fd);
			return 0;
		}
		if (errno == EBUSY)
			continue; /* another process took it between GET_FREE and us */
		if (errno != EINVAL && errno != ENOTTY)
			return -errno;
		/* Kernels before 5.8 have no LOOP_CONFIGURE. */
		if (ioctl(fd, LOOP_SET_FD, backing) == 0) {
			*loop_fd = TAKE_FD(fd);
			return 0;
		}
		if (errno != EBUSY)
			return -errno;
	}
	return -EBUSY;
}

static int setup(void **state)
{
	static struct fixture fx;
	memset(&fx, 0, sizeof(fx));
	fx.loop_fd = -1;

	if (geteuid() != 0) {
		fprintf(stderr, "test_dm_crypt: needs root\n");
		exit(77);
	}
	if (access("/dev/mapper/control", F_OK) != 0 && access("/proc/misc", F_OK) == 0) {
		FILE *f = fopen("/proc/devices", "re");
		char line[128];
		bool dm = false;
		while (f && fgets(line, sizeof(line), f))
			dm |= strstr(line, "device-mapper") != NULL;
		if (f)
			fclose(f);
		if (!dm) {
			fprintf(stderr, "test_dm_crypt: this kernel has no device-mapper; "
					"use tests/vm/run-kernel-tests\n");
			exit(77);
		}
	}

	snprintf(fx.file, sizeof(fx.file), "/tmp/wrapd-ktest-XXXXXX");
	int fd = mkstemp(fx.file);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(DATA_OFFSET_SECTORS + DATA_SECTORS) * 512), 0);
	close(fd);

	int rc = loop_attach(fx.file, &fx.loop_fd, fx.loop_path, sizeof(fx.loop_path));
	if (rc < 0)
		fprintf(stderr, "loop attach: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
	struct stat st;
	assert_int_equal(fstat(fx.loop_fd, &st), 0);
	fx.loop_dev = st.st_rdev;

	assert_int_equal(secbuf_alloc(&fx.vk, 64), 0);
	fx.vk.len = 64;
	do
		random_bytes(fx.vk.data, 64);
	while (!memcmp(fx.vk.data, fx.vk.data + 32, 32)); /* XTS needs key1 != key2 */

	uint8_t u[16];
	random_bytes(u, sizeof(u));
	snprintf(fx.uuid, sizeof(fx.uuid),
		 "%02x%02x%02x%02x-%02x%02x-4%x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		 u[2], u[3], u[4], u[5], u[6] & 15, u[7], (u[8] & 0x3f) | 0x80, u[9], u[10], u[11],
		 u[12], u[13], u[14], u[15]);

	fx.log = (struct wlog){ .out = stderr, .level = WLOG_DEBUG, .prog = "test_dm_crypt" };
	dmcrypt_ctx_init(&fx.dm, &fx.log);
	printf("# loop %s (%u:%u) on %s, udev %s, uuid %s\n", fx.loop_path, major(fx.loop_dev),
	       minor(fx.loop_dev), fx.file, fx.dm.udev ? "yes" : "no", fx.uuid);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	struct werr err;
	for (size_t i = 0; i < fx->n_names; i++) {
		struct dmcrypt_info info;
		if (dmcrypt_query(&fx->dm, fx->names[i], &info, &err) == 0) {
			dmcrypt_info_free(&info);
			if (dmcrypt_remove(&fx->dm, fx->names[i], &err) < 0)
				fprintf(stderr, "teardown: %s\n", err.msg);
		}
	}
	if (fx->loop_fd >= 0) {
		if (ioctl(fx->loop_fd, LOOP_CLR_FD) < 0)
			fprintf(stderr, "teardown: LOOP_CLR_FD: %s\n", strerror(errno));
		close(fx->loop_fd);
	}
	unlink(fx->file);
	secbuf_free(&fx->vk);
	return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static const char *new_name(struct fixture *fx, const char *what)
{
	assert_true(fx->n_names < MAX_NAMES);
	char *n = fx->names[fx->n_names++];
	snprintf(n, sizeof(fx->names[0]), "wrapd-kt-%d-%s", (int)getpid(), what);
	return n;
}

static struct dmcrypt_table table_for(const struct fixture *fx, const char *key_desc,
				      unsigned sector_size)
{
	unsigned kmaj = 0, kmin = 0;
	assert_int_equal(dmcrypt_kernel_version(&kmaj, &kmin), 0);
	return (struct dmcrypt_table){
		.cipher = "aes-xts-plain64",
		.key_desc = key_desc,
		.key_size = 64,
		.iv_offset = 0,
		.backing = fx->loop_dev,
		.offset = DATA_OFFSET_SECTORS,
		.length = DATA_SECTORS,
		.sector_size = sector_size,
		.flags = dmcrypt_perf_flags_for(kmaj, kmin),
	};
}

/* Open the mapping exactly as `wrapctl open` will: key in, create, key out. */
static void open_mapping(struct fixture *fx, const char *name, const struct dmcrypt_table *t0,
			 bool read_only, struct dmcrypt_table *t_out, char *desc_out)
{
	struct werr err = { 0 };
	_cleanup_keyring_key_ struct keyring_key key = KEYRING_KEY_NONE;
	int rc = keyring_add_volume_key(fx->uuid, &fx->vk, &key, &err);
	if (rc < 0)
		fprintf(stderr, "%s\n", err.msg);
	assert_int_equal(rc, 0);
	strcpy(desc_out, key.desc);
	*t_out = *t0;
	t_out->key_desc = desc_out;

	rc = dmcrypt_create(&fx->dm, name, fx->uuid, t_out, read_only, &err);
	if (rc < 0)
		fprintf(stderr, "create: %s\n", err.msg);
	assert_int_equal(rc, 0);

	assert_int_equal(keyring_remove(&key), 0);
	/* dm-crypt keeps its own copy; our keyrings hold nothing any more. */
	assert_int_equal(keyring_find_logon(desc_out, NULL), -ENOKEY);
}

static char *run_capture(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char *buf = calloc(1, 65536);
	assert_non_null(buf);
	size_t n = fread(buf, 1, 65535, p);
	buf[n] = '\0';
	assert_int_equal(pclose(p), 0);
	return buf;
}

static void *aligned_buf(size_t n)
{
	void *p = NULL;
	assert_int_equal(posix_memalign(&p, 4096, n), 0);
	return p;
}

static void pattern(uint8_t *buf, size_t n, uint64_t byte_off, uint32_t seed)
{
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = (uint32_t)((byte_off + i) / 4) * 2654435761u ^ seed;
		memcpy(buf + i, &v, 4);
	}
}

static void pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	assert_int_equal(write_full_at(fd, buf, n, off), 0);
}

static void pread_all(int fd, void *buf, size_t n, off_t off)
{
	assert_int_equal(read_full_at(fd, buf, n, off), 0);
}

/* AES-256-XTS of one encryption sector, IV = 512-byte sector number (LE). */
static void xts_encrypt_sector(const uint8_t key[64], uint64_t iv_sector, const uint8_t *in,
			       uint8_t *out, size_t len)
{
	uint8_t iv[16] = { 0 };
	for (int i = 0; i < 8; i++)
		iv[i] = (uint8_t)(iv_sector >> (8 * i));
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int outl = 0, fin = 0;
	assert_non_null(c);
	assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_xts(), NULL, key, iv), 1);
	assert_int_equal(EVP_EncryptUpdate(c, out, &outl, in, (int)len), 1);
	assert_int_equal(EVP_EncryptFinal_ex(c, out + outl, &fin), 1);
	assert_int_equal((size_t)(outl + fin), len);
	EVP_CIPHER_CTX_free(c);
}

static bool contains_key_hex(const char *text, const struct secbuf *vk)
{
	char hex[129], half[65];
	for (size_t i = 0; i < 64; i++)
		snprintf(hex + 2 * i, 3, "%02x", vk->data[i]);
	memcpy(half, hex + 64, 64); /* key2 alone must not show up either */
	half[64] = '\0';
	bool found = strcasestr(text, hex) || strcasestr(text, half);
	hex[64] = '\0';
	found = found || strcasestr(text, hex);
	explicit_bzero(hex, sizeof(hex));
	explicit_bzero(half, sizeof(half));
	return found;
}

/* ---- the round trip, for one sector size --------------------------------------- */

static void round_trip(struct fixture *fx, unsigned sector_size)
{
	char what[16], desc[KEYRING_DESC_MAX], path[128], cmd[256];
	struct werr err = { 0 };
	snprintf(what, sizeof(what), "rt%u", sector_size);
	const char *name = new_name(fx, what);
	struct dmcrypt_table t0 = table_for(fx, "unset:", sector_size), t;
	open_mapping(fx, name, &t0, false, &t, desc);

	/* libdevmapper made the node (itself when there is no udev). */
	snprintf(path, sizeof(path), "/dev/mapper/%s", name);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISBLK(st.st_mode));

	/* What the kernel holds is exactly the table we built. */
	_cleanup_dmcrypt_info_ struct dmcrypt_info info = { 0 };
	assert_int_equal(dmcrypt_query(&fx->dm, name, &info, &err), 0);
	_cleanup_free_ char *want_line = NULL;
	assert_int_equal(dmcrypt_table_line(&t, &want_line, &err), 0);
	printf("# table: %s\n", info.table);
	assert_string_equal(info.table, want_line);
	char want_uuid[DMCRYPT_UUID_MAX + 1];
	assert_int_equal(dmcrypt_dm_uuid(fx->uuid, name, want_uuid, sizeof(want_uuid)), 0);
	assert_string_equal(info.uuid, want_uuid);
	assert_int_equal(info.dev, st.st_rdev);
	assert_false(info.read_only);
	assert_false(info.suspended);
	assert_int_equal(info.target_count, 1);
	assert_int_equal(info.n_deps, 1);
	assert_int_equal(info.deps[0], fx->loop_dev);
	assert_non_null(strstr(info.status, " crypt"));

	/* dmsetup --showkeys, the strongest way to ask for the key: only a name. */
	snprintf(cmd, sizeof(cmd), "dmsetup table --showkeys %s", name);
	_cleanup_free_ char *shown = run_capture(cmd);
	printf("# dmsetup table --showkeys: %s", shown);
	assert_non_null(strstr(shown, ":64:logon:wrapd:"));
	assert_non_null(strstr(shown, fx->uuid));
	assert_false(contains_key_hex(shown, &fx->vk));

	/* Listed under wrapd's (cryptsetup-compatible) UUID prefix. */
	char **names = NULL;
	assert_int_equal(dmcrypt_list(&fx->dm, DMCRYPT_UUID_PREFIX, &names, &err), 0);
	bool listed = false;
	for (char **n = names; *n; n++)
		listed |= !strcmp(*n, name);
	dmcrypt_names_free(names);
	assert_true(listed);

	/* Plaintext through the mapping with O_DIRECT, and back. */
	size_t total = (size_t)DATA_SECTORS * 512;
	uint8_t *plain = aligned_buf(IO_CHUNK), *got = aligned_buf(IO_CHUNK);
	uint8_t *cipher = aligned_buf(IO_CHUNK), *expect = aligned_buf(IO_CHUNK);
	_cleanup_close_ int dfd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	assert_true(dfd >= 0);
	for (size_t off = 0; off < total; off += IO_CHUNK) {
		pattern(plain, IO_CHUNK, off, sector_size);
		pwrite_all(dfd, plain, IO_CHUNK, (off_t)off);
	}
	assert_int_equal(fsync(dfd), 0);
	for (size_t off = 0; off < total; off += IO_CHUNK) {
		pattern(plain, IO_CHUNK, off, sector_size);
		pread_all(dfd, got, IO_CHUNK, (off_t)off);
		assert_memory_equal(got, plain, IO_CHUNK);
	}

	/* The open fd makes remove fail with EBUSY, and the error says why. */
	struct dmcrypt_ctx no_retry = fx->dm;
	no_retry.remove_retries = 0;
	assert_int_equal(dmcrypt_remove(&no_retry, name, &err), -EBUSY);
	printf("# busy: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "open count 1"));
	close(TAKE_FD(dfd));

	/* Ciphertext on the loop device: not the plaintext, and exactly XTS with
	 * the IV counting 512-byte sectors from the start of the data segment. */
	_cleanup_close_ int lfd = open(fx->loop_path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	assert_true(lfd >= 0);
	for (size_t off = 0; off < total; off += IO_CHUNK) {
		pattern(plain, IO_CHUNK, off, sector_size);
		pread_all(lfd, cipher, IO_CHUNK, (off_t)(DATA_OFFSET_SECTORS * 512ull + off));
		assert_memory_not_equal(cipher, plain, IO_CHUNK);
		for (size_t s = 0; s < IO_CHUNK; s += sector_size)
			xts_encrypt_sector(fx->vk.data, (off + s) / 512, plain + s, expect + s,
					   sector_size);
		assert_memory_equal(cipher, expect, IO_CHUNK);
	}
	free(plain);
	free(got);
	free(cipher);
	free(expect);

	/* Close: the mapping and its node go away. */
	assert_int_equal(dmcrypt_remove(&fx->dm, name, &err), 0);
	assert_int_equal(access(path, F_OK), -1);
	struct dmcrypt_info gone;
	assert_int_equal(dmcrypt_query(&fx->dm, name, &gone, &err), -ENXIO);
}

static void test_round_trip_512(void **state) { round_trip(*state, 512); }
static void test_round_trip_4096(void **state) { round_trip(*state, 4096); }

/* Without the key in the keyring, dm-crypt refuses the table and nothing is
 * left behind. */
static void test_create_without_key_fails_cleanly(void **state)
{
	struct fixture *fx = *state;
	struct werr err = { 0 };
	char desc[KEYRING_DESC_MAX];
	const char *name = new_name(fx, "nokey");
	assert_int_equal(keyring_desc_for(fx->uuid, desc), 0);
	struct dmcrypt_table t = table_for(fx, desc, 4096);
	int rc = dmcrypt_create(&fx->dm, name, fx->uuid, &t, false, &err);
	printf("# create without key: %d %s\n", rc, err.msg);
	assert_int_equal(rc, -ENOKEY);
	assert_non_null(strstr(err.msg, desc));
	struct dmcrypt_info info;
	assert_int_equal(dmcrypt_query(&fx->dm, name, &info, &err), -ENXIO);
}

/* Online table swap (what rekey does): reload needs the key again; the data
 * written before is still readable after resume. Also read-only mappings. */
static void test_reload_suspend_resume_and_read_only(void **state)
{
	struct fixture *fx = *state;
	struct werr err = { 0 };
	char desc[KEYRING_DESC_MAX];
	const char *name = new_name(fx, "reload");
	struct dmcrypt_table t0 = table_for(fx, "unset:", 4096), t;
	open_mapping(fx, name, &t0, true, &t, desc);

	char path[128];
	snprintf(path, sizeof(path), "/dev/mapper/%s", name);
	_cleanup_dmcrypt_info_ struct dmcrypt_info info = { 0 };
	assert_int_equal(dmcrypt_query(&fx->dm, name, &info, &err), 0);
	assert_true(info.read_only);
	{
		/* Linux 6.1 lets a read-only block device be opened for writing
		 * (writes then fail), so ask the block layer for the flag. */
		_cleanup_close_ int rfd = open(path, O_RDONLY | O_CLOEXEC);
		int ro = 0;
		assert_true(rfd >= 0);
		assert_int_equal(ioctl(rfd, BLKROGET, &ro), 0);
		assert_int_equal(ro, 1);
	}

	/* Reload without the key: refused, the live table untouched. */
	struct dmcrypt_table t2 = t;
	t2.flags = 0;
	assert_int_equal(dmcrypt_reload(&fx->dm, name, &t2, &err), -ENOKEY);
	printf("# reload without key: %s\n", err.msg);

	{
		_cleanup_keyring_key_ struct keyring_key key = KEYRING_KEY_NONE;
		assert_int_equal(keyring_add_volume_key(fx->uuid, &fx->vk, &key, &err), 0);
		assert_int_equal(dmcrypt_reload(&fx->dm, name, &t2, &err), 0);
	}
	dmcrypt_info_free(&info);
	assert_int_equal(dmcrypt_query(&fx->dm, name, &info, &err), 0);
	assert_true(info.inactive_table);
	assert_int_equal(dmcrypt_suspend(&fx->dm, name, true, &err), 0);
	dmcrypt_info_free(&info);
	assert_int_equal(dmcrypt_query(&fx->dm, name, &info, &err), 0);
	assert_true(info.suspended);
	assert_int_equal(dmcrypt_resume(&fx->dm, name, &err), 0);

	dmcrypt_info_free(&info);
	assert_int_equal(dmcrypt_query(&fx->dm, name, &info, &err), 0);
	_cleanup_free_ char *want = NULL;
	assert_int_equal(dmcrypt_table_line(&t2, &want, &err), 0);
	assert_string_equal(info.table, want);
	assert_false(info.suspended);
	assert_true(info.read_only); /* kept across the reload */

	/* The data the 4096 round trip left on the device is still readable
	 * through the swapped table (same key, same layout). */
	uint8_t *buf = aligned_buf(IO_CHUNK), *plain = aligned_buf(IO_CHUNK);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	assert_true(fd >= 0);
	pread_all(fd, buf, IO_CHUNK, 0);
	pattern(plain, IO_CHUNK, 0, 4096);
	assert_memory_equal(buf, plain, IO_CHUNK);
	free(buf);
	free(plain);
	close(TAKE_FD(fd));

	assert_int_equal(dmcrypt_remove(&fx->dm, name, &err), 0);
	assert_int_equal(access(path, F_OK), -1);
}

/* A busy mapping: remove retries, then names who holds it (a mapping
 * stacked on it, a mount) so the operator knows what to close first. */
static void test_remove_busy_names_holders(void **state)
{
	struct fixture *fx = *state;
	struct werr err = { 0 };
	char desc[KEYRING_DESC_MAX], desc2[KEYRING_DESC_MAX], path[128], cmd[512];
	const char *lower = new_name(fx, "lower");
	const char *upper = new_name(fx, "upper");
	struct dmcrypt_table t0 = table_for(fx, "unset:", 4096), t, tu;
	open_mapping(fx, lower, &t0, false, &t, desc);

	_cleanup_dmcrypt_info_ struct dmcrypt_info li = { 0 };
	assert_int_equal(dmcrypt_query(&fx->dm, lower, &li, &err), 0);
	struct dmcrypt_table t1 = t0;
	t1.backing = li.dev;
	t1.offset = 0;
	t1.length = DATA_SECTORS;
	open_mapping(fx, upper, &t1, false, &tu, desc2);

	struct dmcrypt_ctx no_retry = fx->dm;
	no_retry.remove_retries = 0;
	char want[64];
	_cleanup_dmcrypt_info_ struct dmcrypt_info ui = { 0 };
	assert_int_equal(dmcrypt_query(&fx->dm, upper, &ui, &err), 0);
	assert_int_equal(ui.n_deps, 1);
	assert_int_equal(ui.deps[0], li.dev);
	snprintf(want, sizeof(want), "held by dm-%u", minor(ui.dev));
	assert_int_equal(dmcrypt_remove(&no_retry, lower, &err), -EBUSY);
	printf("# busy lower: %s\n", err.msg);
	assert_non_null(strstr(err.msg, want));

	/* Mounted: the error names the mount point (when mkfs.ext4 is here). */
	snprintf(path, sizeof(path), "/dev/mapper/%s", upper);
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F %s >/dev/null 2>&1", path);
	if (system(cmd) == 0) {
		char mnt[] = "/tmp/wrapd-kt-mnt-XXXXXX";
		assert_non_null(mkdtemp(mnt));
		assert_int_equal(mount(path, mnt, "ext4", 0, NULL), 0);
		int rc = dmcrypt_remove(&no_retry, upper, &err);
		printf("# busy mounted: %s\n", err.msg);
		assert_int_equal(umount(mnt), 0);
		rmdir(mnt);
		assert_int_equal(rc, -EBUSY);
		assert_non_null(strstr(err.msg, "mounted at /tmp/wrapd-kt-mnt-"));
	} else {
		printf("# mkfs.ext4 unavailable: mount case not checked\n");
	}

	/* With the default retries, a remove that stays busy still ends. */
	assert_int_equal(dmcrypt_remove(&fx->dm, lower, &err), -EBUSY);
	assert_int_equal(dmcrypt_remove(&fx->dm, upper, &err), 0);
	assert_int_equal(dmcrypt_remove(&fx->dm, lower, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_512),
		cmocka_unit_test(test_round_trip_4096),
		cmocka_unit_test(test_create_without_key_fails_cleanly),
		cmocka_unit_test(test_reload_suspend_resume_and_read_only),
		cmocka_unit_test(test_remove_busy_names_holders),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
