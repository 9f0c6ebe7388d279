/* Unit tests for volume/erase_plan.c: the regions erase overwrites on a
 * half-converted volume, from honest and from hostile conversion states. */
#include "tests/lib/unit.h"

#include "volume/internal.h"

#define MiB (1024ull * 1024)
#define D (128 * MiB)
#define O (16 * MiB)
#define HS2 (32 * 1024ull)

static struct erase_plan attached(void)
{
	struct erase_plan p;
	memset(&p, 0, sizeof(p));
	p.g = (struct erase_geom){.dev_size = D, .hdr_size = HS2 / 2, .data_offset = O,
				  .seg_end = D};
	return p;
}

static struct erase_plan detached(void)
{
	struct erase_plan p;
	memset(&p, 0, sizeof(p));
	p.g = (struct erase_geom){.dev_size = D, .hdr_size = HS2 / 2, .data_offset = 0,
				  .seg_end = D, .detached = true, .hdr_file_size = 16 * MiB};
	return p;
}

static void plan(struct erase_plan *p, const char *json)
{
	json_error_t je;
	json_t *st = json_loads(json, 0, &je);
	assert_non_null(st);
	assert_int_equal(erase_plan_from_state(st, p), 0);
	json_decref(st);
}

static void region(const struct erase_plan *p, size_t i, unsigned on, uint64_t off, uint64_t end,
		   bool keys)
{
	assert_true(i < p->n);
	assert_int_equal(p->r[i].on, on);
	assert_int_equal(p->r[i].off, off);
	assert_int_equal(p->r[i].off + p->r[i].len, end);
	assert_int_equal(p->r[i].keys, keys);
}

/* Shift encrypt: [2hs, O+done) (journal area, not yet moved) and the park. */
static void shift_encrypt(void **state)
{
	(void)state;
	struct erase_plan p = attached();
	plan(&p, "{\"op\":\"encrypt\",\"layout\":\"shift\",\"phase\":\"move\",\"done\":\"50331648\"}");
	assert_int_equal(p.n, 2);
	region(&p, 0, ERASE_ON_DATA, HS2, O + 48 * MiB, false);
	region(&p, 1, ERASE_ON_DATA, D - MiB, D, true);
	assert_string_equal(p.conversion, "encrypt (shift)");
}

/* A done past the device, or none: everything but the header copies. */
static void shift_encrypt_hostile_done(void **state)
{
	(void)state;
	struct erase_plan p = attached();
	plan(&p, "{\"op\":\"encrypt\",\"layout\":\"shift\",\"done\":\"999999999999999\"}");
	region(&p, 0, ERASE_ON_DATA, HS2, D, false);
	region(&p, 1, ERASE_ON_DATA, D - MiB, D, true);
	p = attached();
	plan(&p, "{\"op\":\"encrypt\",\"layout\":\"shift\",\"done\":7}");
	region(&p, 0, ERASE_ON_DATA, HS2, D, false);
}

static void shift_decrypt_legacy_bubble(void **state)
{
	(void)state;
	struct erase_plan p = attached();
	/* Bubble without bubble_form: plaintext, wherever it is. */
	plan(&p, "{\"op\":\"decrypt\",\"layout\":\"shift\",\"done\":\"1048576\",\"bubble\":\"100663296\"}");
	assert_int_equal(p.n, 3);
	region(&p, 0, ERASE_ON_DATA, HS2, O + MiB, false);
	region(&p, 1, ERASE_ON_DATA, 96 * MiB, 96 * MiB + 256 * 1024, false);
	region(&p, 2, ERASE_ON_DATA, D - MiB, D, true);
	p = attached();
	plan(&p, "{\"op\":\"decrypt\",\"layout\":\"shift\",\"done\":\"1048576\",\"bubble\":\"100663296\",\"bubble_form\":\"cipher\"}");
	assert_int_equal(p.n, 2);
}

static void rekey_journal_only(void **state)
{
	(void)state;
	struct erase_plan p = attached();
	plan(&p, "{\"op\":\"rekey\",\"layout\":\"inplace\",\"done\":\"0\",\"new_token\":{}}");
	assert_int_equal(p.n, 1);
	region(&p, 0, ERASE_ON_DATA, HS2, O, false);
	p = detached();
	plan(&p, "{\"op\":\"rekey\",\"layout\":\"inplace\",\"done\":\"0\"}");
	assert_int_equal(p.n, 1);
	region(&p, 0, ERASE_ON_HEADER, HS2, 16 * MiB, false);
}

static void detached_encrypt_decrypt(void **state)
{
	(void)state;
	struct erase_plan p = detached();
	plan(&p, "{\"op\":\"encrypt\",\"layout\":\"inplace\",\"done\":\"16777216\"}");
	assert_int_equal(p.n, 2);
	region(&p, 0, ERASE_ON_DATA, 16 * MiB, D, false);
	region(&p, 1, ERASE_ON_HEADER, HS2, 16 * MiB, false);
	p = detached();
	/* The hotzone in flight counts as decrypted. */
	plan(&p, "{\"op\":\"decrypt\",\"layout\":\"inplace\",\"done\":\"16777216\",\"hz_start\":\"16777216\",\"hz_end\":\"33554432\"}");
	region(&p, 0, ERASE_ON_DATA, 0, 32 * MiB, false);
	p = detached();
	plan(&p, "{\"op\":\"decrypt\",\"layout\":\"inplace\"}");
	region(&p, 0, ERASE_ON_DATA, 0, D, false);
}

static void unknown_state_is_everything(void **state)
{
	(void)state;
	struct erase_plan p = attached();
	plan(&p, "{\"op\":\"frobnicate\",\"layout\":\"shift\"}");
	region(&p, 0, ERASE_ON_DATA, HS2, D, false);
	region(&p, 1, ERASE_ON_DATA, D - MiB, D, true);
	p = attached();
	plan(&p, "{}");
	region(&p, 0, ERASE_ON_DATA, HS2, D, false);
}

/* An erase state round-trips; a damaged or hostile one widens to everything,
 * and its text is made printable. */
static void erase_state(void **state)
{
	(void)state;
	struct erase_plan p = attached(), q = attached();
	plan(&p, "{\"op\":\"encrypt\",\"layout\":\"shift\",\"done\":\"50331648\"}");
	json_t *st = erase_plan_state(&p);
	assert_non_null(st);
	assert_int_equal(erase_plan_from_state(st, &q), 0);
	json_decref(st);
	assert_int_equal(q.n, p.n);
	for (size_t i = 0; i < p.n; i++)
		region(&q, i, p.r[i].on, p.r[i].off, p.r[i].off + p.r[i].len, p.r[i].keys);

	q = attached();
	plan(&q, "{\"op\":\"erase\",\"regions\":[{\"on\":\"data\",\"offset\":\"0\",\"length\":\"18446744073709551615\",\"what\":\"a\\u001b[2Jb\"}]}");
	region(&q, 0, ERASE_ON_DATA, HS2, D, false); /* never the header copies */
	assert_null(strchr(q.r[0].what, 0x1b));
	q = attached();
	plan(&q, "{\"op\":\"erase\",\"regions\":[{\"on\":\"elsewhere\",\"offset\":\"0\",\"length\":\"1\"}]}");
	region(&q, 0, ERASE_ON_DATA, HS2, D, false);
	region(&q, 1, ERASE_ON_DATA, D - MiB, D, true);
	q = attached(); /* a header region on an attached header is damage */
	plan(&q, "{\"op\":\"erase\",\"regions\":[{\"on\":\"header\",\"offset\":\"0\",\"length\":\"1\"}]}");
	region(&q, 0, ERASE_ON_DATA, HS2, D, false);
	q = attached();
	plan(&q, "{\"op\":\"erase\",\"regions\":7}");
	region(&q, 0, ERASE_ON_DATA, HS2, D, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shift_encrypt),
		cmocka_unit_test(shift_encrypt_hostile_done),
		cmocka_unit_test(shift_decrypt_legacy_bubble),
		cmocka_unit_test(rekey_journal_only),
		cmocka_unit_test(detached_encrypt_decrypt),
		cmocka_unit_test(unknown_state_is_everything),
		cmocka_unit_test(erase_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
