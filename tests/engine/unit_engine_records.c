/*
 * engine: the durable records outside the LUKS2 header (engine/records.c):
 * the park descriptor and the journal slot. Encode/decode round trips, the
 * byte layout (the one earlier versions wrote, built here by hand so that a
 * half-converted volume from them stays readable), refusal of every
 * corrupted field, and torn writes through the power-loss simulator: a
 * record reads back exactly as written, or not at all.
 */
#include "tests/lib/unit.h"
#include "tests/engine/engine_testlib.h"

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static struct park_desc sample_park(void)
{
	struct park_desc pd = {.kind = PARK_KIND_DECRYPT, .dev_size = 0x123456789abcull,
			       .len = PARK_LEN};
	for (int i = 0; i < 32; i++) {
		pd.prior_sha[i] = (uint8_t)(i + 1);
		pd.target_sha[i] = (uint8_t)(0xf0 - i);
	}
	strcpy(pd.uuid, "0f1e2d3c-4b5a-4987-8695-a4b3c2d1e0f9");
	return pd;
}

static void test_park_roundtrip(void **s)
{
	struct park_desc pd = sample_park(), out;
	uint8_t blk[4096];
	park_desc_encode(&pd, blk);
	assert_int_equal(park_desc_decode(blk, &out), 0);
	assert_int_equal(out.kind, pd.kind);
	assert_true(out.dev_size == pd.dev_size);
	assert_true(out.len == pd.len);
	assert_memory_equal(out.prior_sha, pd.prior_sha, 32);
	assert_memory_equal(out.target_sha, pd.target_sha, 32);
	assert_string_equal(out.uuid, pd.uuid);
	for (size_t i = sizeof(struct park_desc_disk); i < 4096; i++)
		assert_int_equal(blk[i], 0);
}

/* The layout earlier versions wrote with put64(d + 8, ...) and friends. */
static void test_park_layout(void **s)
{
	struct park_desc pd = sample_park();
	uint8_t want[4096] = {0}, got[4096];
	memcpy(want, "WRAPDPRK", 8);
	put64(want + 8, 1);
	put64(want + 16, pd.kind);
	put64(want + 24, pd.dev_size);
	put64(want + 32, pd.len);
	memcpy(want + 40, pd.prior_sha, 32);
	memcpy(want + 72, pd.target_sha, 32);
	memcpy(want + 104, pd.uuid, strlen(pd.uuid));
	unsigned len = 32;
	EVP_Digest(want, 144, want + 144, &len, EVP_sha256(), NULL);
	park_desc_encode(&pd, got);
	assert_memory_equal(got, want, sizeof(want));
}

static void test_park_corrupt(void **s)
{
	struct park_desc pd = sample_park(), out;
	uint8_t blk[4096];
	park_desc_encode(&pd, blk);
	/* Every byte the self checksum covers, and the checksum itself. */
	for (size_t i = 0; i < sizeof(struct park_desc_disk); i++) {
		uint8_t b[4096];
		memcpy(b, blk, sizeof(b));
		b[i] ^= 0x10;
		assert_int_equal(park_desc_decode(b, &out), -ENOENT);
	}
	/* A well-formed descriptor of another version is not ours either. */
	uint8_t b[4096];
	memcpy(b, blk, sizeof(b));
	put64(b + 8, 2);
	unsigned len = 32;
	EVP_Digest(b, 144, b + 144, &len, EVP_sha256(), NULL);
	assert_int_equal(park_desc_decode(b, &out), -ENOENT);
	memset(b, 0, sizeof(b));
	assert_int_equal(park_desc_decode(b, &out), -ENOENT);
}

static void test_journal_roundtrip(void **s)
{
	uint64_t start = 3ull << 20, end = start + 256 * 1024, n = (end - start) / 512;
	uint64_t hashes[512], out[512];
	uint64_t r = 42;
	for (uint64_t i = 0; i < n; i++)
		hashes[i] = t_rand(&r);
	size_t len = jnl_slot_len(n);
	assert_int_equal(len, 4096 + 4096);
	uint8_t *b = calloc(1, len);
	char sha[65];
	jnl_encode(start, end, hashes, b, sha);
	assert_int_equal(strlen(sha), 64);
	assert_int_equal(jnl_decode(b, start, end, sha, out), 0);
	assert_memory_equal(out, hashes, n * 8);
	/* The layout: magic, le64 version/start/end, SHA-256, le64 hashes at 4096. */
	uint8_t want[64] = {0};
	memcpy(want, "WRAPDJNL", 8);
	put64(want + 8, 1);
	put64(want + 16, start);
	put64(want + 24, end);
	unsigned sl = 32;
	uint8_t *arr = calloc(1, n * 8);
	for (uint64_t i = 0; i < n; i++)
		put64(arr + i * 8, hashes[i]);
	EVP_Digest(arr, n * 8, want + 32, &sl, EVP_sha256(), NULL);
	assert_memory_equal(b, want, 64);
	assert_memory_equal(b + 4096, arr, n * 8);
	free(arr);
	free(b);
}

static void test_journal_refusals(void **s)
{
	uint64_t start = 0, end = 64 * 1024, n = end / 512;
	uint64_t hashes[128], out[128];
	for (uint64_t i = 0; i < n; i++)
		hashes[i] = i * 0x9e3779b97f4a7c15ull;
	size_t len = jnl_slot_len(n);
	uint8_t *b = calloc(1, len), *x = calloc(1, len);
	char sha[65];
	jnl_encode(start, end, hashes, b, sha);
	/* Another hotzone than the header names. */
	assert_int_equal(jnl_decode(b, start + 512, end, sha, out), -EUCLEAN);
	assert_int_equal(jnl_decode(b, start, end - 512, sha, out), -EUCLEAN);
	/* No checksum from the header, or another one. */
	assert_int_equal(jnl_decode(b, start, end, NULL, out), -EUCLEAN);
	char other[65];
	memcpy(other, sha, sizeof(other));
	other[10] = other[10] == 'a' ? 'b' : 'a';
	assert_int_equal(jnl_decode(b, start, end, other, out), -EUCLEAN);
	/* Any flipped byte of the head or of the hash array. */
	size_t probes[] = {0, 7, 8, 16, 23, 24, 31, 32, 63, 4096, 4096 + 511, 4096 + n * 8 - 1};
	for (size_t i = 0; i < ARRAY_SIZE(probes); i++) {
		memcpy(x, b, len);
		x[probes[i]] ^= 1;
		assert_int_equal(jnl_decode(x, start, end, sha, out), -EUCLEAN);
	}
	/* Torn: one 512-byte sector of the array still from an older slot. */
	uint64_t old[128];
	for (uint64_t i = 0; i < n; i++)
		old[i] = ~hashes[i];
	uint8_t *ob = calloc(1, len);
	char osha[65];
	jnl_encode(start, end, old, ob, osha);
	memcpy(x, b, len);
	memcpy(x + 4096 + 512, ob + 4096 + 512, 512);
	assert_int_equal(jnl_decode(x, start, end, sha, out), -EUCLEAN);
	memcpy(x, ob, 512); /* an old head sector over a new array */
	assert_int_equal(jnl_decode(x, start, end, sha, out), -EUCLEAN);
	free(ob);
	free(b);
	free(x);
}

/* SipHash-2-4 reference vector (the paper's appendix A): key 00..0f,
 * message 00..0e. And the journal key depends on VK and seed. */
static void test_siphash(void **s)
{
	uint8_t key[16], msg[15];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	assert_true(engine_siphash(key, msg, 15) == 0xa129ca6149be45e5ull);
	struct secbuf vk = {0}, k1 = {0}, k2 = {0}, k3 = {0};
	assert_int_equal(secbuf_alloc(&vk, 64), 0);
	memset(vk.data, 0x5a, 64);
	vk.len = 64;
	assert_int_equal(engine_journal_key(&vk, 1, &k1), 0);
	assert_int_equal(engine_journal_key(&vk, 2, &k2), 0);
	vk.data[63] ^= 1;
	assert_int_equal(engine_journal_key(&vk, 1, &k3), 0);
	assert_int_equal(k1.len, 16);
	assert_memory_not_equal(k1.data, k2.data, 16);
	assert_memory_not_equal(k1.data, k3.data, 16);
	vk.len = 32;
	assert_int_equal(engine_journal_key(&vk, 1, &k2), -EINVAL);
	secbuf_free(&vk);
	secbuf_free(&k1);
	secbuf_free(&k2);
	secbuf_free(&k3);
}

/* ---- torn writes through the power-loss simulator ---------------------------------- */

static char tdir[256];

static int mkfile(const char *name, uint64_t size, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", tdir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Writes a park record over an older one and loses power at every op of
 * it with many coin tosses: park_read gives back the new record, the old
 * one, or nothing, never a mixture. */
static void test_park_torn(void **s)
{
	char path[300];
	uint64_t size = ENGINE_SHIFT + 2 * ENGINE_PARK_SIZE;
	int fd = mkfile("park.img", size, path, sizeof(path));
	assert_true(fd >= 0);
	uint8_t *p1 = t_random_data(PARK_LEN, 1), *t1 = t_random_data(PARK_LEN, 2);
	uint8_t *p2 = t_random_data(PARK_LEN, 3), *t2 = t_random_data(PARK_LEN, 4);
	uint8_t *rp = abuf(PARK_LEN), *rt = abuf(PARK_LEN);
	unsigned got_new = 0, got_old = 0, got_none = 0;
	/* park_write is 4 ops (prior, target, descriptor, fsync); op 5 never comes. */
	for (uint64_t op = 1; op <= 5; op++)
		for (uint64_t seed = 1; seed <= 40; seed++) {
			struct werr err = {0};
			int fds[2] = {fd, fd};
			struct conv c = {.err = &err, .what = path, .dev_size = size};
			/* the old record, durable */
			assert_int_equal(engine_io_sync_new(fds, &c.io, &err), 0);
			assert_int_equal(park_write(&c, PARK_KIND_ENCRYPT, p1, t1), 0);
			c.io->ops->free(c.io);
			/* the new one, torn at op */
			assert_int_equal(engine_io_sim_new(fds, op, seed, &c.io, &err), 0);
			(void)park_write(&c, PARK_KIND_DECRYPT, p2, t2);
			assert_int_equal(engine_io_sim_lost(c.io), op <= 4);
			c.io->ops->free(c.io);
			assert_int_equal(engine_io_sync_new(fds, &c.io, &err), 0);
			struct park_desc pd;
			int rc = park_read(&c, &pd, rp, rt);
			c.io->ops->free(c.io);
			if (rc == -ENOENT) {
				got_none++;
				continue;
			}
			assert_int_equal(rc, 0);
			if (pd.kind == PARK_KIND_DECRYPT) {
				assert_memory_equal(rp, p2, PARK_LEN);
				assert_memory_equal(rt, t2, PARK_LEN);
				got_new++;
			} else {
				assert_int_equal(pd.kind, PARK_KIND_ENCRYPT);
				assert_memory_equal(rp, p1, PARK_LEN);
				assert_memory_equal(rt, t1, PARK_LEN);
				got_old++;
			}
		}
	print_message("park torn: %u new, %u old, %u none\n", got_new, got_old, got_none);
	assert_true(got_none > 0 && got_new == 40);
	abuf_free(rp, PARK_LEN);
	abuf_free(rt, PARK_LEN);
	free(p1);
	free(t1);
	free(p2);
	free(t2);
	close(fd);
	unlink(path);
}

/* A journal slot written over an older record of the same slot, torn: it
 * reads back exactly (when the header that names it could be durable) or is
 * refused, never with other hashes. */
static void test_journal_torn(void **s)
{
	char path[300];
	uint64_t hotzone = 256 * 1024, n = hotzone / 512;
	int fd = mkfile("jnl.hdr", ENGINE_DETACHED_HDR_SIZE, path, sizeof(path));
	assert_true(fd >= 0);
	uint64_t *h1 = calloc(n, 8), *h2 = calloc(n, 8), *out = calloc(n, 8);
	uint64_t r = 7;
	for (uint64_t i = 0; i < n; i++)
		h1[i] = t_rand(&r), h2[i] = t_rand(&r);
	unsigned ok = 0, refused = 0;
	/* journal_write is 2 ops (write, fsync); op 3 never comes. */
	for (uint64_t op = 1; op <= 3; op++)
		for (uint64_t seed = 1; seed <= 40; seed++) {
			struct werr err = {0};
			int fds[2] = {fd, fd};
			struct conv c = {.err = &err, .what = path, .dev_size = ENGINE_DETACHED_HDR_SIZE};
			char sha1[65], sha2[65];
			struct engine_hotzone z1 = {.start = 0, .end = hotzone, .hashes = h1};
			struct engine_hotzone z2 = {.start = 0, .end = hotzone, .hashes = h2};
			assert_int_equal(engine_io_sync_new(fds, &c.io, &err), 0);
			assert_int_equal(journal_write(&c, 0, hotzone, &z1, sha1), 0);
			c.io->ops->free(c.io);
			assert_int_equal(engine_io_sim_new(fds, op, seed, &c.io, &err), 0);
			(void)journal_write(&c, 0, hotzone, &z2, sha2);
			c.io->ops->free(c.io);
			assert_int_equal(engine_io_sync_new(fds, &c.io, &err), 0);
			int rc = journal_read(&c, 0, hotzone, 0, hotzone, sha2, out);
			c.io->ops->free(c.io);
			if (rc == 0) {
				assert_memory_equal(out, h2, n * 8);
				ok++;
			} else {
				assert_int_equal(rc, -EUCLEAN);
				refused++;
			}
		}
	print_message("journal torn: %u whole, %u refused\n", ok, refused);
	assert_true(refused > 0 && ok >= 40);
	free(h1);
	free(h2);
	free(out);
	close(fd);
	unlink(path);
}

static int setup(void **state)
{
	snprintf(tdir, sizeof(tdir), "%s/wrapd-records-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	return mkdtemp(tdir) ? 0 : -1;
}

static int teardown(void **state)
{
	return rmdir(tdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_park_roundtrip),  cmocka_unit_test(test_park_layout),
		cmocka_unit_test(test_park_corrupt),    cmocka_unit_test(test_journal_roundtrip),
		cmocka_unit_test(test_journal_refusals), cmocka_unit_test(test_park_torn),
		cmocka_unit_test(test_journal_torn),     cmocka_unit_test(test_siphash),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
