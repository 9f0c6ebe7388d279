/*
 * format: the one header commit (luks2_hdr_commit) through a caller's
 * writer, as the conversion engine uses it: the FACTS write order, aligned
 * buffers, seqid + 1, the image reads back, a failed write leaves seqid as
 * it was; and luks2_hdr_image gives the bytes a commit writes.
 */
#include "tests/lib/unit.h"

#include "format/internal.h"

/* A writer into memory that logs every call. */
struct memdev {
	uint8_t img[2 * 16384 + 4096];
	char log[64][32];
	unsigned n;
	unsigned fail_at; /* 1-based call number that fails; 0 never */
};

static int mem_pwrite(void *arg, const void *buf, size_t len, uint64_t off)
{
	struct memdev *m = arg;
	assert_int_equal((uintptr_t)buf % 4096, 0);
	assert_int_equal(len % 4096, 0);
	assert_true(off + len <= sizeof(m->img));
	snprintf(m->log[m->n], sizeof(m->log[0]), "w%llu+%zu%s", (unsigned long long)off, len,
		 len == LUKS2_BIN_SIZE && !memcmp((const uint8_t *)buf + OFF_CSUM,
						   (const uint8_t[LUKS2_CSUM_LEN]){0}, LUKS2_CSUM_LEN)
			 ? "z"
			 : "");
	if (++m->n == m->fail_at)
		return -EIO;
	memcpy(m->img + off, buf, len);
	return 0;
}

static int mem_sync(void *arg)
{
	struct memdev *m = arg;
	snprintf(m->log[m->n], sizeof(m->log[0]), "sync");
	return ++m->n == m->fail_at ? -EIO : 0;
}

static struct luks2_hdr *new_hdr(struct secbuf *vk)
{
	struct luks2_hdr *h = NULL;
	struct werr e = {0};
	struct luks2_new_params p = {.label = "commit"};
	assert_int_equal(secbuf_alloc(vk, WRAPD_VK_BYTES), 0);
	assert_int_equal(luks2_random(vk->data, WRAPD_VK_BYTES), 0);
	vk->len = WRAPD_VK_BYTES;
	assert_int_equal(luks2_hdr_new(&p, vk, &h, &e), 0);
	return h;
}

static void test_commit_order(void **s)
{
	struct secbuf vk = {0};
	struct luks2_hdr *h = new_hdr(&vk);
	struct memdev *m = calloc(1, sizeof(*m));
	struct luks2_writer w = {.pwrite = mem_pwrite, .sync = mem_sync, .arg = m};
	struct werr e = {0};
	uint64_t seq = h->seqid;
	assert_int_equal(luks2_hdr_commit(&w, h, "mem", &e), 0);
	assert_true(h->seqid == seq + 1);
	const char *want[] = {"w0+4096z", "w4096+12288", "sync", "w0+4096", "sync",
			      "w16384+4096z", "w20480+12288", "sync", "w16384+4096", "sync"};
	assert_int_equal(m->n, ARRAY_SIZE(want));
	for (unsigned i = 0; i < ARRAY_SIZE(want); i++)
		assert_string_equal(m->log[i], want[i]);
	struct luks2_hdr *r = NULL;
	assert_int_equal(luks2_hdr_parse(m->img, sizeof(m->img), "mem", &r, NULL, &e), 0);
	assert_true(r->seqid == seq + 1);
	assert_int_equal(r->copy[0].status, LUKS2_COPY_OK);
	assert_int_equal(r->copy[1].status, LUKS2_COPY_OK);
	assert_string_equal(r->uuid, h->uuid);
	luks2_hdr_free(r);

	/* A write that fails: an error naming the copy, seqid unchanged. */
	for (unsigned k = 1; k <= 10; k++) {
		memset(m, 0, sizeof(*m));
		m->fail_at = k;
		seq = h->seqid;
		struct werr e2 = {0};
		assert_int_equal(luks2_hdr_commit(&w, h, "mem", &e2), -EIO);
		assert_true(h->seqid == seq);
		assert_non_null(strstr(werr_str(&e2, -EIO), k <= 5 ? "primary" : "secondary"));
	}
	free(m);
	luks2_hdr_free(h);
	secbuf_free(&vk);
}

static void test_image(void **s)
{
	struct secbuf vk = {0};
	struct luks2_hdr *h = new_hdr(&vk);
	struct werr e = {0};
	uint8_t *img = calloc(1, 2 * 16384);
	h->seqid = 7;
	assert_int_equal(luks2_hdr_image(h, img, 2 * 16384, "mem", &e), 0);
	assert_true(h->seqid == 7);
	struct luks2_hdr *r = NULL;
	assert_int_equal(luks2_hdr_parse(img, 2 * 16384, "mem", &r, NULL, &e), 0);
	assert_true(r->seqid == 7);
	luks2_hdr_free(r);
	/* A header wrapd must not write is refused before any byte. */
	struct luks2_hdr bad = *h;
	bad.req_cryptsetup_reencrypt = true;
	assert_int_equal(luks2_hdr_image(&bad, img, 2 * 16384, "mem", &e), -EPERM);
	/* Too small a buffer. */
	assert_true(luks2_hdr_image(h, img, 16384, "mem", &e) < 0);
	free(img);
	luks2_hdr_free(h);
	secbuf_free(&vk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_order),
		cmocka_unit_test(test_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
