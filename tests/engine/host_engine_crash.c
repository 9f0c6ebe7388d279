/*
 * engine: crash safety. Over encrypt, rekey and decrypt, shifted and
 * detached, 512- and 4096-byte sectors:
 *  - SIGKILL: a forked child runs the conversion and kills itself at a
 *    random I/O operation (chosen by op count, never by time);
 *  - power loss: the simulator backend drops or tears, per 512-byte sector,
 *    every write not covered by a completed flush, at a random op.
 * Each is followed by resume (or the original command) and a full check of
 * every sector. WRAPD_CRASH_RUNS (default 20 of each) and WRAPD_CRASH_SEED
 * (default: from the clock, printed) control the sample; WRAPD_CRASH_ONLY=N
 * runs only run N of that sample (to reproduce one failure).
 */
#include "tests/lib/unit.h"
#include "tests/engine/engine_testlib.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static char dir[256];
static uint64_t base_seed;
static unsigned runs;
static long only = -1;

struct cfg {
	enum conv_op op;
	bool detached;
	uint32_t ss;
	uint64_t nops;      /* ops of an uninterrupted run */
	char plain[300], enc[300], enc_hdr[300];
	uint8_t *orig;
	uint64_t size;
};

static struct cfg cfgs[12];

static struct conv_params params(struct conv_keyprov *kp, const char *dev, const char *hdr,
				 enum conv_op op, uint32_t ss)
{
	struct conv_params p = {.device = dev, .header = hdr, .op = op, .sector_size = ss,
				.tail_is_free = true, .keys = kp, .chunk = 64 * 1024,
				.hotzone = 256 * 1024, .pool = 512 * 1024, .workers = 2};
	return p;
}

struct counter {
	uint64_t n, kill_at;
};
static void count_hook(void *arg, uint64_t op)
{
	struct counter *c = arg;
	c->n = op;
	if (c->kill_at && op >= c->kill_at)
		raise(SIGKILL);
}

static void lay_out(struct cfg *c, const char *dev, const char *hdr)
{
	unlink(hdr);
	if (c->op == CONV_ENCRYPT) {
		assert_int_equal(t_copy_file(c->plain, dev), 0);
	} else {
		assert_int_equal(t_copy_file(c->enc, dev), 0);
		if (c->detached)
			assert_int_equal(t_copy_file(c->enc_hdr, hdr), 0);
	}
}

static int setup(void **state)
{
	if (t_crash_setup("crash tests", "wrapd-crash", &runs, &only, &base_seed, dir,
			  sizeof(dir)) < 0)
		return -1;
	unsigned k = 0;
	for (int op = CONV_ENCRYPT; op <= CONV_DECRYPT; op++)
		for (int det = 0; det < 2; det++)
			for (uint32_t ss = 512; ss <= 4096; ss *= 8) {
				struct cfg *c = &cfgs[k++];
				c->op = (enum conv_op)op;
				c->detached = det;
				c->ss = ss;
				c->size = det ? 2 * MiB + 12 * 1024 : 34 * MiB + 12 * 1024;
				snprintf(c->plain, sizeof(c->plain), "%s/plain-%d-%u.img", dir, det, ss);
				snprintf(c->enc, sizeof(c->enc), "%s/enc-%d-%u.img", dir, det, ss);
				snprintf(c->enc_hdr, sizeof(c->enc_hdr), "%s/enc-%d-%u.hdr", dir, det, ss);
				c->orig = t_random_data(c->size, c->size + ss);
				if (t_write_file(c->plain, c->orig, c->size) < 0)
					return -1;
				/* The encrypted starting point for rekey/decrypt: key index 0. */
				if (op == CONV_ENCRYPT) {
					if (t_copy_file(c->plain, c->enc) < 0)
						return -1;
					struct tkeys tk = {.seed = 1};
					struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
					struct conv_params p = params(&kp, c->enc, det ? c->enc_hdr : NULL,
								      CONV_ENCRYPT, ss);
					struct werr err = {0};
					unlink(c->enc_hdr);
					int rc = conv_run(&p, NULL, &err);
					tk_free(&tk);
					if (rc < 0) {
						print_message("setup: %s\n", werr_str(&err, rc));
						return -1;
					}
				} else {
					struct cfg *src = &cfgs[k - 1 - 4 * (op - CONV_ENCRYPT)];
					memcpy(c->enc, src->enc, sizeof(c->enc));
					memcpy(c->enc_hdr, src->enc_hdr, sizeof(c->enc_hdr));
				}
			}
	/* Count the ops of an uninterrupted run of each. */
	for (unsigned i = 0; i < k; i++) {
		struct cfg *c = &cfgs[i];
		char dev[300], hdr[300];
		snprintf(dev, sizeof(dev), "%s/count.img", dir);
		snprintf(hdr, sizeof(hdr), "%s/count.hdr", dir);
		lay_out(c, dev, hdr);
		struct tkeys tk = {.seed = 1, .n = 1};
		struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
		struct counter cnt = {0};
		struct conv_params p = params(&kp, dev, c->detached ? hdr : NULL, c->op, c->ss);
		struct conv_test_hooks th = {.hook = count_hook, .hook_arg = &cnt};
		p.test = &th;
		struct werr err = {0};
		int rc = conv_run(&p, NULL, &err);
		tk_free(&tk);
		if (rc < 0) {
			print_message("count %s: %s\n", conv_op_name(c->op), werr_str(&err, rc));
			return -1;
		}
		c->nops = cnt.n;
	}
	return 0;
}

static int teardown(void **state)
{
	for (unsigned i = 0; i < ARRAY_SIZE(cfgs); i++)
		free(cfgs[i].orig);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Everything must be exactly right after recovery. */
static int verify(struct cfg *c, struct tkeys *tk, const char *dev, const char *hdr)
{
	uint64_t off = c->detached ? 0 : ENGINE_SHIFT;
	uint64_t data = c->detached ? c->size : c->size - ENGINE_TAIL_NEEDED;
	const char *h = c->detached ? hdr : dev;
	if (c->op == CONV_DECRYPT) {
		uint8_t *now = t_read_file(dev, 0, data);
		int bad = !now || memcmp(now, c->orig, data);
		free(now);
		return bad ? -1 : 0;
	}
	if (!t_hdr_clean(h))
		return -2;
	const struct secbuf *k = tk_volume_key(tk, h);
	if (!k)
		return -3;
	if (c->op == CONV_REKEY && k == tk_key(tk, 0))
		return -4; /* still the old key */
	uint64_t bad = t_check_encrypted(dev, off, c->orig, data, k, c->ss);
	if (bad) {
		print_message("  first bad byte at data position %llu\n", (unsigned long long)bad - 1);
		return -5;
	}
	return 0;
}

static int recover(struct cfg *c, struct tkeys *tk, const char *dev, const char *hdr,
		   struct werr *err)
{
	struct conv_keyprov kp = {tk_new_key, tk_unwrap, tk};
	struct conv_params p = params(&kp, dev, c->detached ? hdr : NULL, CONV_RESUME, c->ss);
	int rc = conv_run(&p, NULL, err);
	if (rc == -ENOENT && verify(c, tk, dev, hdr) == 0)
		return 0; /* the crash came after the last durable step */
	if (rc == -ENOENT) {
		/* Nothing durable had started: the original command starts it. */
		p.op = c->op;
		rc = conv_run(&p, NULL, err);
		if (rc == -ENODEV && c->op == CONV_DECRYPT)
			rc = 0; /* it had finished: the device is plain */
	}
	return rc;
}

static void crash_runs(bool powerloss)
{
	unsigned fails = 0, done = 0;
	uint64_t rng = base_seed ^ (powerloss ? 0x5bd1e995 : 0);
	char dev[300], hdr[300];
	snprintf(dev, sizeof(dev), "%s/run.img", dir);
	snprintf(hdr, sizeof(hdr), "%s/run.hdr", dir);
	for (unsigned i = 0; i < runs; i++) {
		struct cfg *c = &cfgs[i % ARRAY_SIZE(cfgs)];
		uint64_t k = 1 + t_rand(&rng) % c->nops;
		uint64_t simseed = t_rand(&rng);
		if (only >= 0 && i != (unsigned long)only)
			continue;
		lay_out(c, dev, hdr);
		struct tkeys tk = {.seed = 1, .n = 1};
		struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
		struct conv_params p = params(&kp, dev, c->detached ? hdr : NULL, c->op, c->ss);
		struct werr err = {0};
		if (powerloss) {
			struct conv_test_hooks th = {.io_kind = CONV_IO_SIM, .sim_loss_at = k,
						     .sim_seed = simseed, .no_direct = true};
			p.test = &th;
			struct conv_result r = {0};
			(void)conv_run(&p, &r, &err);
		} else {
			fflush(NULL);
			pid_t pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				struct counter cnt = {.kill_at = k};
				struct conv_test_hooks th = {.hook = count_hook, .hook_arg = &cnt};
				p.test = &th;
				int rc = conv_run(&p, NULL, &err);
				_exit(rc < 0 ? 3 : 0);
			}
			int status = 0;
			waitpid(pid, &status, 0);
		}
		int rc = recover(c, &tk, dev, hdr, &err);
		int v = rc < 0 ? rc : verify(c, &tk, dev, hdr);
		done++;
		if (rc < 0 || v < 0) {
			fails++;
			print_message("FAIL %s run %u: %s %s ss=%u crash at op %llu/%llu: %s (verify %d)\n",
				      powerloss ? "powerloss" : "sigkill", i, conv_op_name(c->op),
				      c->detached ? "detached" : "shift", c->ss,
				      (unsigned long long)k, (unsigned long long)c->nops,
				      rc < 0 ? werr_str(&err, rc) : "resume ok", v);
		}
		tk_free(&tk);
	}
	print_message("%s: %u runs, %u failed (WRAPD_CRASH_SEED=%llu)\n",
		      powerloss ? "powerloss" : "sigkill", done, fails,
		      (unsigned long long)base_seed);
	assert_int_equal(fails, 0);
}

/*
 * Regression (issue 10 item 10, seed 31337 run 790): a power loss at the
 * very end of a detached decrypt, while the header file is being retired,
 * left both copies with their magic but no valid checksum, and resume
 * refused the file. Every one of the last ops of a detached decrypt, with
 * the simulator seed of that run and a few more, must be recovered.
 */
static void test_powerloss_decrypt_end(void **state)
{
	uint64_t rng = 31337 ^ 0x5bd1e995, seed790 = 0;
	for (unsigned i = 0; i <= 790; i++) {
		(void)t_rand(&rng);
		seed790 = t_rand(&rng);
	}
	char dev[300], hdr[300];
	snprintf(dev, sizeof(dev), "%s/end.img", dir);
	snprintf(hdr, sizeof(hdr), "%s/end.hdr", dir);
	unsigned cases = 0, fails = 0;
	for (unsigned ci = 0; ci < ARRAY_SIZE(cfgs); ci++) {
		struct cfg *c = &cfgs[ci];
		if (c->op != CONV_DECRYPT || !c->detached)
			continue;
		for (uint64_t k = c->nops > 16 ? c->nops - 16 : 1; k <= c->nops; k++)
			for (uint64_t si = 0; si < 6; si++) {
				uint64_t simseed = si ? si * 0x9e3779b97f4a7c15ull : seed790;
				lay_out(c, dev, hdr);
				struct tkeys tk = {.seed = 1, .n = 1};
				struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
				struct conv_params p = params(&kp, dev, hdr, c->op, c->ss);
				struct conv_test_hooks th = {.io_kind = CONV_IO_SIM, .sim_loss_at = k,
							     .sim_seed = simseed, .no_direct = true};
				p.test = &th;
				struct werr err = {0};
				(void)conv_run(&p, NULL, &err);
				int rc = recover(c, &tk, dev, hdr, &err);
				int v = rc < 0 ? rc : verify(c, &tk, dev, hdr);
				cases++;
				if (rc < 0 || v < 0) {
					fails++;
					print_message("FAIL decrypt detached ss=%u power loss at op %llu/%llu sim seed %llu: %s (verify %d)\n",
						      c->ss, (unsigned long long)k,
						      (unsigned long long)c->nops,
						      (unsigned long long)simseed,
						      rc < 0 ? werr_str(&err, rc) : "resume ok", v);
				}
				tk_free(&tk);
			}
	}
	print_message("decrypt end: %u cases, %u failed\n", cases, fails);
	assert_int_equal(fails, 0);
}

/*
 * Issue 10 item 9: a shift decrypt parks the head of the data (the
 * "bubble") in the keyslots area before its first checkpoint. A power loss
 * around that first header write must not leave any plaintext of the
 * volume below the data offset, and the conversion must still resume.
 */
static void test_shift_decrypt_start_no_plaintext(void **state)
{
	char dev[300], hdr[300];
	snprintf(dev, sizeof(dev), "%s/bub.img", dir);
	snprintf(hdr, sizeof(hdr), "%s/bub.hdr", dir);
	unsigned cases = 0, leaks = 0, fails = 0;
	for (unsigned ci = 0; ci < ARRAY_SIZE(cfgs); ci++) {
		struct cfg *c = &cfgs[ci];
		if (c->op != CONV_DECRYPT || c->detached)
			continue;
		/* ops 1-10: the plan's commit; 11-12: the bubble and its fsync;
		 * 13-22: the first checkpoint, torn at each of its ops. */
		for (uint64_t k = 11; k <= 22; k++)
			for (uint64_t simseed = 1; simseed <= 2; simseed++) {
				lay_out(c, dev, hdr);
				struct tkeys tk = {.seed = 1, .n = 1};
				struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
				struct conv_params p = params(&kp, dev, NULL, c->op, c->ss);
				struct conv_test_hooks th = {.io_kind = CONV_IO_SIM, .sim_loss_at = k,
							     .sim_seed = simseed, .no_direct = true};
				p.test = &th;
				struct werr err = {0};
				(void)conv_run(&p, NULL, &err);
				uint8_t *low = t_read_file(dev, 0, ENGINE_SHIFT);
				assert_non_null(low);
				bool leak = false;
				for (uint64_t o = 0; o < ENGINE_SHIFT && !leak; o += 512)
					for (uint64_t q = 0; q < 256 * 1024 && !leak; q += 512)
						leak = !memcmp(low + o, c->orig + q, 512);
				free(low);
				int rc = recover(c, &tk, dev, NULL, &err);
				int v = rc < 0 ? rc : verify(c, &tk, dev, NULL);
				cases++;
				leaks += leak;
				if (leak || rc < 0 || v < 0) {
					fails++;
					print_message("FAIL shift decrypt ss=%u power loss at op %llu seed %llu: %s%s (verify %d)\n",
						      c->ss, (unsigned long long)k,
						      (unsigned long long)simseed,
						      leak ? "plaintext below the data offset; " : "",
						      rc < 0 ? werr_str(&err, rc) : "resume ok", v);
				}
				tk_free(&tk);
			}
	}
	print_message("shift decrypt start: %u cases, %u with plaintext below the data offset, %u failed\n",
		      cases, leaks, fails);
	assert_int_equal(fails, 0);
}

/*
 * Issue 10 item 9: the journal of a detached encrypt holds one hash per
 * 512-byte sector of plaintext until the run ends. They must be keyed by a
 * secret (the VK), not only by the seed the header shows: with the header
 * and a guess of a sector, nobody may confirm the guess. And the crash
 * recovery that reads them still works.
 */
static void test_detached_journal_keyed(void **state)
{
	char dev[300], hdr[300];
	snprintf(dev, sizeof(dev), "%s/jnl.img", dir);
	snprintf(hdr, sizeof(hdr), "%s/jnl.hdr", dir);
	unsigned checked = 0;
	for (unsigned ci = 0; ci < ARRAY_SIZE(cfgs); ci++) {
		struct cfg *c = &cfgs[ci];
		if (c->op != CONV_ENCRYPT || !c->detached)
			continue;
		lay_out(c, dev, hdr);
		struct tkeys tk = {.seed = 1, .n = 1};
		struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
		struct conv_params p = params(&kp, dev, hdr, c->op, c->ss);
		/* The plan's commit is 10 ops, then journal slot + fsync + 10:
		 * op 30 falls inside the first hotzone's writes or later. */
		struct conv_test_hooks th = {.io_kind = CONV_IO_SIM, .sim_loss_at = 30, .sim_seed = 5,
					     .no_direct = true};
		p.test = &th;
		struct werr err = {0};
		(void)conv_run(&p, NULL, &err);
		/* What the header says (public) and what the journal slot holds. */
		int fd = open(hdr, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		struct luks2_hdr *h = NULL;
		assert_int_equal(luks2_hdr_read(fd, hdr, &h, NULL, &err), 0);
		json_t *st = NULL;
		assert_int_equal(luks2_conversion_get(h, &st, &err), 0);
		uint64_t seed = 0, a = 0, e = 0, jhz = 0, slot = 0;
		assert_int_equal(parse_u64(json_string_value(json_object_get(st, "seed")), &seed), 0);
		assert_int_equal(parse_u64(json_string_value(json_object_get(st, "hz_start")), &a), 0);
		assert_int_equal(parse_u64(json_string_value(json_object_get(st, "hz_end")), &e), 0);
		assert_int_equal(parse_u64(json_string_value(json_object_get(st, "jhotzone")), &jhz), 0);
		assert_int_equal(parse_u64(json_string_value(json_object_get(st, "jslot")), &slot), 0);
		const char *sha = json_string_value(json_object_get(st, "jsha"));
		uint64_t n = (e - a) / 512;
		size_t len = jnl_slot_len(n);
		uint8_t *b = malloc(len);
		uint64_t *hashes = calloc(n, 8);
		assert_int_equal(read_full_at(fd, b, len, (off_t)(ENGINE_JOURNAL_OFF + slot * jslot_size(jhz))), 0);
		assert_int_equal(jnl_decode(b, a, e, sha, hashes), 0);
		/* Not one of them is the seeded hash of its plaintext sector. */
		unsigned same = 0;
		for (uint64_t i = 0; i < n; i++)
			same += hashes[i] == engine_hash512(c->orig + a + i * 512, seed);
		print_message("journal of a detached encrypt (ss=%u): %llu hashes, %u computable from the header's seed\n",
			      c->ss, (unsigned long long)n, same);
		assert_int_equal(same, 0);
		checked += n;
		free(b);
		free(hashes);
		json_decref(st);
		luks2_hdr_free(h);
		close(fd);
		/* Recovery from that very journal. */
		int rc = recover(c, &tk, dev, hdr, &err);
		if (rc < 0)
			print_message("resume: %s\n", werr_str(&err, rc));
		assert_int_equal(rc, 0);
		assert_int_equal(verify(c, &tk, dev, hdr), 0);
		tk_free(&tk);
	}
	assert_true(checked > 0);
}

static void test_sigkill(void **state) { crash_runs(false); }
static void test_powerloss(void **state) { crash_runs(true); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigkill),
		cmocka_unit_test(test_powerloss),
		cmocka_unit_test(test_powerloss_decrypt_end),
		cmocka_unit_test(test_shift_decrypt_start_no_plaintext),
		cmocka_unit_test(test_detached_journal_keyed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
