/* engine + blockdev/ on this host's kernel (root, loop devices): a device in
 * use is refused by name before anything is written, and a loop device
 * attached during a conversion (the loop race) stops it at a checkpoint,
 * from which resume finishes the job. */
#include "tests/lib/unit.h"
#include "tests/lib/loop.h"
#include "tests/engine/engine_testlib.h"

#include "blockdev/blockdev.h"

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/wrapd-engbd-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[600];
	/* A failed case may leave its loop devices behind. */
	snprintf(cmd, sizeof(cmd), "for f in %s/*.img; do losetup -n -O NAME -j \"$f\" | xargs -r -n1 losetup -d; done 2>/dev/null", dir);
	(void)!system(cmd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int conv(struct tkeys *tk, const char *dev, enum conv_op op,
		void (*progress)(void *, const struct conv_progress *), void *arg, struct werr *err)
{
	struct conv_keyprov kp = {.new_key = tk_new_key, .unwrap = tk_unwrap, .arg = tk};
	struct conv_params p = {.device = dev, .op = op, .tail_is_free = true, .keys = &kp,
				.chunk = 128 * 1024, .hotzone = 1 * MiB, .pool = 2 * MiB,
				.progress = progress, .progress_arg = arg};
	struct conv_result r;
	werr_clear(err);
	return conv_run(&p, &r, err);
}

/* A file under a loop device at an offset, and a block device under another
 * loop: refused with the user named, nothing written. */
static void refused_by_name(void **state)
{
	(void)state;
	if (!test_have_loop())
		skip();
	char f[300], l1[64], l2[64], args[400];
	snprintf(f, sizeof(f), "%s/held.img", dir);
	uint64_t size = 20 * MiB;
	uint8_t *orig = t_random_data(size, 5);
	assert_int_equal(t_write_file(f, orig, size), 0);
	snprintf(args, sizeof(args), "-o 4096 '%s'", f);
	test_losetup(args, l1, sizeof(l1));
	if (!l1[0])
		skip();
	struct tkeys tk = {0};
	struct werr err;
	int rc = conv(&tk, f, CONV_ENCRYPT, NULL, NULL, &err);
	test_losetup_d(l1);
	assert_int_equal(rc, -EBUSY);
	char want[1024];
	snprintf(want, sizeof(want), "%s: in use: held by loop device %s (backed at offset 4096); "
		 "detach it first (losetup -d %s)", f, l1, l1);
	assert_string_equal(err.msg, want);

	snprintf(args, sizeof(args), "'%s'", f);
	test_losetup(args, l1, sizeof(l1));
	assert_true(l1[0]);
	test_losetup(l1, l2, sizeof(l2));
	assert_true(l2[0]);
	rc = conv(&tk, l1, CONV_ENCRYPT, NULL, NULL, &err);
	test_losetup_d(l2);
	test_losetup_d(l1);
	assert_int_equal(rc, -EBUSY);
	snprintf(want, sizeof(want), "%s: in use: held by loop device %s (backed at offset 0)", l1, l2);
	assert_non_null(strstr(err.msg, want));
	uint8_t *now = t_read_file(f, 0, size);
	assert_memory_equal(now, orig, size);
	free(now);
	free(orig);
	tk_free(&tk);
}

struct attacher {
	const char *file;
	uint64_t after;
	char loop[64];
};

static void attach_progress(void *arg, const struct conv_progress *p)
{
	struct attacher *a = arg;
	if (a->loop[0] || p->done < a->after)
		return;
	char args[400];
	snprintf(args, sizeof(args), "-r '%s'", a->file);
	test_losetup(args, a->loop, sizeof(a->loop));
	assert_true(a->loop[0]);
}

/* The loop race, made deterministic: a loop device is attached (read-only,
 * as a backup tool might) after 3 MiB. The conversion stops at the next
 * checkpoint with a line naming the loop; resume after detaching finishes,
 * and every sector is right. */
static void loop_attached_during(void **state)
{
	(void)state;
	if (!test_have_loop())
		skip();
	char f[300];
	snprintf(f, sizeof(f), "%s/race.img", dir);
	uint64_t size = 24 * MiB;
	uint8_t *orig = t_random_data(size, 77);
	assert_int_equal(t_write_file(f, orig, size), 0);
	struct tkeys tk = {0};
	struct werr err;
	struct attacher a = {.file = f, .after = 3 * MiB};
	int rc = conv(&tk, f, CONV_ENCRYPT, attach_progress, &a, &err);
	if (!a.loop[0]) {
		free(orig);
		skip();
	}
	assert_int_equal(rc, -EBUSY);
	char want[2048];
	snprintf(want, sizeof(want), "%s: loop device %s was attached to %s during the encrypt; "
		 "stopped at a checkpoint: detach it (losetup -d %s), then run 'wrapctl resume %s'",
		 f, a.loop, f, a.loop, f);
	assert_string_equal(err.msg, want);
	enum conv_op op;
	assert_int_equal(conv_status(f, NULL, &op, &err), 0);
	assert_int_equal(op, CONV_ENCRYPT);
	/* Still attached: resume refuses it up front. */
	assert_int_equal(conv(&tk, f, CONV_RESUME, NULL, NULL, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "held by loop device"));
	test_losetup_d(a.loop);
	assert_int_equal(conv(&tk, f, CONV_RESUME, NULL, NULL, &err), 0);
	const struct secbuf *k = tk_volume_key(&tk, f);
	assert_non_null(k);
	assert_int_equal(t_check_encrypted(f, ENGINE_SHIFT, orig, size - ENGINE_TAIL_NEEDED, k, 4096),
			 0);
	free(orig);
	tk_free(&tk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refused_by_name),
		cmocka_unit_test(loop_attached_during),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
