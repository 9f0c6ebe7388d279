/* engine: correctness of encrypt/rekey/decrypt, checked sector by sector
 * against an independent OpenSSL decryption. */
#include "tests/lib/unit.h"
#include "tests/engine/engine_testlib.h"

#include <sys/mman.h>

#include <sys/wait.h>

static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/wrapd-engine-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int run(struct tkeys *tk, const char *dev, const char *hdr, enum conv_op op, uint32_t ss,
	       bool tail_free, enum conv_io_kind io, struct werr *err)
{
	struct conv_keyprov kp = {.new_key = tk_new_key, .unwrap = tk_unwrap, .arg = tk};
	struct conv_params p = {.device = dev, .header = hdr, .op = op, .sector_size = ss,
				.tail_is_free = tail_free, .keys = &kp, .chunk = 128 * 1024,
				.hotzone = 512 * 1024, .pool = 1024 * 1024};
	struct conv_test_hooks th = {.io_kind = io};
	p.test = &th;
	struct conv_result r;
	int rc = conv_run(&p, &r, err);
	if (rc < 0)
		print_message("conv_run(%s): %s\n", conv_op_name(op), werr_str(err, rc));
	return rc;
}

/* encrypt -> check; rekey -> check; decrypt -> original bytes. */
static void roundtrip(uint64_t size, uint32_t ss, bool detached, enum conv_io_kind io,
		      const char *name)
{
	char dev[300], hdr[300];
	snprintf(dev, sizeof(dev), "%s/%s.img", dir, name);
	snprintf(hdr, sizeof(hdr), "%s/%s.hdr", dir, name);
	uint8_t *orig = t_random_data(size, size ^ ss);
	assert_non_null(orig);
	assert_int_equal(t_write_file(dev, orig, size), 0);
	struct tkeys tk = {0};
	struct werr err = {0};
	const char *h = detached ? hdr : NULL;
	uint64_t off = detached ? 0 : ENGINE_SHIFT;
	uint64_t data = detached ? size : size - ENGINE_TAIL_NEEDED;

	assert_int_equal(run(&tk, dev, h, CONV_ENCRYPT, ss, true, io, &err), 0);
	assert_true(t_hdr_clean(h ? h : dev));
	const struct secbuf *k1 = tk_volume_key(&tk, h ? h : dev);
	assert_non_null(k1);
	assert_int_equal(t_check_encrypted(dev, off, orig, data, k1, ss), 0);
	if (!detached) {
		/* the former park region holds encrypted zeros */
		uint8_t *z = calloc(1, ENGINE_PARK_SIZE);
		assert_int_equal(t_check_encrypted_at(dev, off + data, data, z, ENGINE_PARK_SIZE, k1, ss),
				 0);
		free(z);
	}

	assert_int_equal(run(&tk, dev, h, CONV_REKEY, 0, false, io, &err), 0);
	assert_true(t_hdr_clean(h ? h : dev));
	const struct secbuf *k2 = tk_volume_key(&tk, h ? h : dev);
	assert_non_null(k2);
	assert_ptr_not_equal(k1, k2);
	assert_int_equal(t_check_encrypted(dev, off, orig, data, k2, ss), 0);

	assert_int_equal(run(&tk, dev, h, CONV_DECRYPT, 0, false, io, &err), 0);
	uint8_t *now = t_read_file(dev, 0, data);
	assert_non_null(now);
	assert_memory_equal(now, orig, data);
	free(now);
	free(orig);
	tk_free(&tk);
}

static void test_xts_matches_openssl(void **state)
{
	struct secbuf vk = {0};
	assert_int_equal(secbuf_alloc(&vk, 64), 0);
	assert_int_equal(RAND_bytes(vk.data, 64), 1);
	vk.len = 64;
	for (uint32_t ss = 512; ss <= 4096; ss *= 8) {
		uint8_t *a = t_random_data(64 * 1024, ss), *b = malloc(64 * 1024);
		memcpy(b, a, 64 * 1024);
		struct xts_key k;
		assert_int_equal(xts_key_init(&k, &vk, true), 0);
		assert_int_equal(xts_crypt(&k, true, a, 64 * 1024, ss, 4096 / 512), 0);
		assert_int_equal(t_xts(&vk, 1, b, 64 * 1024, ss, 4096), 0);
		assert_memory_equal(a, b, 64 * 1024);
		xts_key_free(&k);
		free(a);
		free(b);
	}
	/* equal halves: refused for encryption */
	memcpy(vk.data + 32, vk.data, 32);
	struct xts_key k;
	assert_int_equal(xts_key_init(&k, &vk, true), -EINVAL);
	secbuf_free(&vk);
}

static void test_shift_4096(void **s) { roundtrip(20 * MiB + 12 * 1024, 4096, false, CONV_IO_URING, "s4k"); }
static void test_shift_512(void **s) { roundtrip(20 * MiB + 1536, 512, false, CONV_IO_URING, "s512"); }
/* larger than two shifts: the decrypt bubble travels */
static void test_shift_large(void **s) { roundtrip(52 * MiB + 4096, 4096, false, CONV_IO_URING, "sbig"); }
static void test_detached_4096(void **s) { roundtrip(3 * MiB + 12 * 1024, 4096, true, CONV_IO_URING, "d4k"); }
static void test_detached_512(void **s) { roundtrip(3 * MiB + 1536, 512, true, CONV_IO_URING, "d512"); }
static void test_sync_backend(void **s) { roundtrip(19 * MiB + 8192, 4096, false, CONV_IO_SYNC, "sync"); }

/* An ext4 filesystem with known files, made without mounting. */
static void test_ext4(void **state)
{
	char src[300], dev[300], cmd[4096];
	snprintf(src, sizeof(src), "%s/ext4src", dir);
	snprintf(dev, sizeof(dev), "%s/ext4.img", dir);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/sub && head -c 300000 /dev/urandom > %s/a.bin && echo hello > %s/sub/hello.txt && "
		 "truncate -s 30M %s && mkfs.ext4 -q -F -b 4096 -d %s %s 12M",
		 src, src, src, dev, src, dev);
	if (system(cmd) != 0) {
		print_message("mkfs.ext4 -d unavailable: skipped\n");
		skip();
	}
	uint64_t size = 30 * MiB, data = size - ENGINE_TAIL_NEEDED;
	uint8_t *orig = t_read_file(dev, 0, size);
	assert_non_null(orig);
	struct tkeys tk = {0};
	struct werr err = {0};
	/* no --tail-is-free: the filesystem's size is read from its superblock */
	assert_int_equal(run(&tk, dev, NULL, CONV_ENCRYPT, 0, false, CONV_IO_URING, &err), 0);
	const struct secbuf *k = tk_volume_key(&tk, dev);
	assert_non_null(k);
	assert_int_equal(t_check_encrypted(dev, ENGINE_SHIFT, orig, data, k, 4096), 0);
	/* decrypt independently into a plain image and read the files back */
	uint8_t *enc = t_read_file(dev, ENGINE_SHIFT, data);
	assert_int_equal(t_xts(k, 0, enc, data, 4096, 0), 0);
	char plain[300];
	snprintf(plain, sizeof(plain), "%s/ext4-plain.img", dir);
	assert_int_equal(t_write_file(plain, enc, data), 0);
	free(enc);
	snprintf(cmd, sizeof(cmd),
		 "debugfs -R 'cat /sub/hello.txt' %s 2>/dev/null | grep -qx hello && "
		 "debugfs -R 'cat /a.bin' %s 2>/dev/null | cmp -s - %s/a.bin",
		 plain, plain, src);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(run(&tk, dev, NULL, CONV_DECRYPT, 0, false, CONV_IO_URING, &err), 0);
	uint8_t *now = t_read_file(dev, 0, data);
	assert_memory_equal(now, orig, data);
	snprintf(cmd, sizeof(cmd), "e2fsck -fn %s >/dev/null 2>&1", dev);
	assert_int_equal(system(cmd), 0);
	free(now);
	free(orig);
	tk_free(&tk);
}

/* Issue 10 item 4: while a conversion runs (its workers hold the AES-XTS
 * key schedules in OpenSSL's heap), every private writable mapping of the
 * process is locked; afterwards new mappings are not. VmFlags "lo" is
 * VM_LOCKED (proc(5)). */
static unsigned unlocked_rw_mappings(void)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	assert_non_null(f);
	char line[512];
	bool rw = false;
	unsigned n = 0;
	while (fgets(line, sizeof(line), f)) {
		char perms[8];
		if (sscanf(line, "%*x-%*x %7s", perms) == 1 && strchr(line, '-') < strchr(line, ' '))
			rw = !strcmp(perms, "rw-p");
		else if (rw && !strncmp(line, "VmFlags:", 8) && !strstr(line, " lo"))
			n++;
	}
	fclose(f);
	return n;
}

struct lockcheck {
	uint64_t ops;
	unsigned unlocked;
};
static void lock_hook(void *arg, uint64_t op)
{
	struct lockcheck *l = arg;
	if (++l->ops == 40) /* well into the data writes; workers are running */
		l->unlocked = unlocked_rw_mappings();
}

static void test_key_schedules_locked(void **state)
{
	char dev[300];
	snprintf(dev, sizeof(dev), "%s/lock.img", dir);
	uint64_t size = 20 * MiB;
	uint8_t *orig = t_random_data(size, 78);
	assert_int_equal(t_write_file(dev, orig, size), 0);
	struct tkeys tk = {0};
	struct werr err = {0};
	struct conv_keyprov kp = {.new_key = tk_new_key, .unwrap = tk_unwrap, .arg = &tk};
	struct lockcheck lc = {.unlocked = 99999};
	struct conv_test_hooks th = {.hook = lock_hook, .hook_arg = &lc};
	struct conv_params p = {.device = dev, .op = CONV_ENCRYPT, .tail_is_free = true, .keys = &kp,
				.chunk = 128 * 1024, .hotzone = 512 * 1024, .pool = 1 * MiB,
				.test = &th};
	assert_int_equal(conv_run(&p, NULL, &err), 0);
	print_message("during the conversion (op 40 of %llu): %u private writable mappings unlocked\n",
		      (unsigned long long)lc.ops, lc.unlocked);
	assert_true(lc.ops >= 40);
	assert_int_equal(lc.unlocked, 0);
	/* After it: mappings made now are not locked. */
	void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_true(unlocked_rw_mappings() > 0);
	munmap(m, 1 << 20);
	free(orig);
	tk_free(&tk);
}

/* SIGINT-style stop: checkpoint, -EINTR, then resume finishes the job. */
struct stopper {
	volatile sig_atomic_t flag;
	uint64_t after;
};
static void stop_progress(void *arg, const struct conv_progress *p)
{
	struct stopper *s = arg;
	if (p->done >= s->after)
		s->flag = 1;
}

static void test_stop_and_resume(void **state)
{
	char dev[300];
	snprintf(dev, sizeof(dev), "%s/stop.img", dir);
	uint64_t size = 24 * MiB;
	uint8_t *orig = t_random_data(size, 77);
	assert_int_equal(t_write_file(dev, orig, size), 0);
	struct tkeys tk = {0};
	struct werr err = {0};
	struct conv_keyprov kp = {.new_key = tk_new_key, .unwrap = tk_unwrap, .arg = &tk};
	struct stopper st = {.after = 3 * MiB};
	struct conv_params p = {.device = dev, .op = CONV_ENCRYPT, .tail_is_free = true, .keys = &kp,
				.chunk = 128 * 1024, .hotzone = 1 * MiB, .pool = 2 * MiB,
				.progress = stop_progress, .progress_arg = &st, .stop = &st.flag};
	struct conv_result r;
	assert_int_equal(conv_run(&p, &r, &err), -EINTR);
	assert_true(r.interrupted);
	assert_non_null(strstr(err.msg, "wrapctl resume"));
	enum conv_op op;
	assert_int_equal(conv_status(dev, NULL, &op, &err), 0);
	assert_int_equal(op, CONV_ENCRYPT);
	p.op = CONV_RESUME;
	p.stop = NULL;
	p.progress = NULL;
	assert_int_equal(conv_run(&p, &r, &err), 0);
	assert_true(r.resumed);
	const struct secbuf *k = tk_volume_key(&tk, dev);
	assert_non_null(k);
	assert_int_equal(t_check_encrypted(dev, ENGINE_SHIFT, orig, size - ENGINE_TAIL_NEEDED, k, 4096),
			 0);
	free(orig);
	tk_free(&tk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xts_matches_openssl),
		cmocka_unit_test(test_shift_4096),
		cmocka_unit_test(test_shift_512),
		cmocka_unit_test(test_shift_large),
		cmocka_unit_test(test_detached_4096),
		cmocka_unit_test(test_detached_512),
		cmocka_unit_test(test_sync_backend),
		cmocka_unit_test(test_ext4),
		cmocka_unit_test(test_stop_and_resume),
		cmocka_unit_test(test_key_schedules_locked),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
