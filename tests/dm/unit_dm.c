/*
 * dm module, host-side: the crypt table must be byte-for-byte what
 * cryptsetup writes for a LUKS2 segment; dm UUIDs and flag choice.
 * (Creating mappings needs dm-crypt: see tests/dm/vm_dm_crypt.c.)
 */
#include "tests/lib/unit.h"

#include <sys/sysmacros.h>

#include "dm/dm.h"

static struct dmcrypt_table base_table(void)
{
	return (struct dmcrypt_table){
		.cipher = "aes-xts-plain64",
		.key_desc = "cryptsetup:cd55ece9-aaeb-48ce-be66-1c647c7e648b-d0",
		.key_size = 64,
		.iv_offset = 0,
		.backing = makedev(7, 0),
		.offset = 32768,
		.length = 131072,
		.sector_size = 4096,
		.flags = 0,
	};
}

static void expect_line(const struct dmcrypt_table *t, const char *want)
{
	_cleanup_free_ char *line = NULL;
	struct werr err = { 0 };
	assert_int_equal(dmcrypt_table_line(t, &line, &err), 0);
	assert_string_equal(line, want);
}

static void expect_invalid(const struct dmcrypt_table *t, const char *msg_part)
{
	char *params = (char *)"untouched";
	struct werr err = { 0 };
	assert_int_equal(dmcrypt_table_params(t, &params, &err), -EINVAL);
	assert_null(params);
	assert_non_null(strstr(err.msg, msg_part));
}

/* The table cryptsetup made on a Debian 6.1 kernel (FACTS-luks2.md). */
static void test_matches_cryptsetup(void **state)
{
	struct dmcrypt_table t = base_table();
	expect_line(&t, "0 131072 crypt aes-xts-plain64 "
			":64:logon:cryptsetup:cd55ece9-aaeb-48ce-be66-1c647c7e648b-d0 "
			"0 7:0 32768 1 sector_size:4096");
}

static void test_params_only(void **state)
{
	struct dmcrypt_table t = base_table();
	t.key_desc = "wrapd:cd55ece9-aaeb-48ce-be66-1c647c7e648b";
	_cleanup_free_ char *params = NULL;
	struct werr err = { 0 };
	assert_int_equal(dmcrypt_table_params(&t, &params, &err), 0);
	assert_string_equal(params, "aes-xts-plain64 :64:logon:wrapd:cd55ece9-aaeb-48ce-be66-"
				    "1c647c7e648b 0 7:0 32768 1 sector_size:4096");
}

static void test_512_has_no_options(void **state)
{
	struct dmcrypt_table t = base_table();
	t.key_desc = "wrapd:test";
	t.sector_size = 512;
	t.offset = 0;
	t.backing = makedev(259, 1048575); /* large minors print as decimal */
	expect_line(&t, "0 131072 crypt aes-xts-plain64 :64:logon:wrapd:test 0 259:1048575 0");
}

static void test_all_options_in_cryptsetup_order(void **state)
{
	struct dmcrypt_table t = base_table();
	t.key_desc = "wrapd:u";
	/* Set in scrambled order; output order must be cryptsetup's. */
	t.flags = DMCRYPT_NO_WRITE_WORKQUEUE | DMCRYPT_ALLOW_DISCARDS |
		  DMCRYPT_SUBMIT_FROM_CRYPT_CPUS | DMCRYPT_NO_READ_WORKQUEUE |
		  DMCRYPT_SAME_CPU_CRYPT;
	t.iv_offset = 8;
	t.sector_size = 2048;
	expect_line(&t, "0 131072 crypt aes-xts-plain64 :64:logon:wrapd:u 8 7:0 32768 6 "
			"allow_discards same_cpu_crypt submit_from_crypt_cpus "
			"no_read_workqueue no_write_workqueue sector_size:2048");

	t.flags = DMCRYPT_NO_READ_WORKQUEUE | DMCRYPT_NO_WRITE_WORKQUEUE;
	t.sector_size = 512;
	expect_line(&t, "0 131072 crypt aes-xts-plain64 :64:logon:wrapd:u 8 7:0 32768 2 "
			"no_read_workqueue no_write_workqueue");

	t.flags = DMCRYPT_ALLOW_DISCARDS;
	t.sector_size = 4096;
	expect_line(&t, "0 131072 crypt aes-xts-plain64 :64:logon:wrapd:u 8 7:0 32768 2 "
			"allow_discards sector_size:4096");
}

static void test_rejects_bad_tables(void **state)
{
	struct dmcrypt_table t;

	t = base_table(); t.cipher = NULL;               expect_invalid(&t, "cipher");
	t = base_table(); t.cipher = "aes xts";          expect_invalid(&t, "cipher");
	t = base_table(); t.key_desc = "";               expect_invalid(&t, "key description");
	t = base_table(); t.key_desc = "wrapd:a b";      expect_invalid(&t, "key description");
	t = base_table(); t.key_desc = "nocolon";        expect_invalid(&t, "key description");
	t = base_table(); t.key_size = 0;                expect_invalid(&t, "key size");
	t = base_table(); t.backing = 0;                 expect_invalid(&t, "backing");
	t = base_table(); t.sector_size = 8192;          expect_invalid(&t, "sector size");
	t = base_table(); t.sector_size = 0;             expect_invalid(&t, "sector size");
	t = base_table(); t.length = 0;                  expect_invalid(&t, "empty");
	t = base_table(); t.length = 131073;             expect_invalid(&t, "multiple");
	t = base_table(); t.flags = 1u << 20;            expect_invalid(&t, "flags");
}

static void test_perf_flags(void **state)
{
	unsigned both = DMCRYPT_NO_READ_WORKQUEUE | DMCRYPT_NO_WRITE_WORKQUEUE;
	assert_int_equal(dmcrypt_perf_flags_for(4, 19), 0);
	assert_int_equal(dmcrypt_perf_flags_for(5, 8), 0);
	assert_int_equal(dmcrypt_perf_flags_for(5, 9), both);
	assert_int_equal(dmcrypt_perf_flags_for(5, 10), both);
	assert_int_equal(dmcrypt_perf_flags_for(6, 1), both);
	assert_int_equal(dmcrypt_perf_flags_for(6, 0), both);
	unsigned maj = 0, min = 0;
	assert_int_equal(dmcrypt_kernel_version(&maj, &min), 0);
	assert_true(maj >= 3);
}

static void test_dm_uuid_and_names(void **state)
{
	char out[DMCRYPT_UUID_MAX + 1];
	assert_int_equal(dmcrypt_dm_uuid("cd55ece9-aaeb-48ce-be66-1c647c7e648b", "encvol", out,
					 sizeof(out)), 0);
	assert_string_equal(out, "CRYPT-LUKS2-cd55ece9aaeb48cebe661c647c7e648b-encvol");
	assert_int_equal(dmcrypt_dm_uuid("not-a-uuid!", "encvol", out, sizeof(out)), -EINVAL);
	assert_int_equal(dmcrypt_dm_uuid("", "encvol", out, sizeof(out)), -EINVAL);
	assert_int_equal(dmcrypt_dm_uuid("cd55ece9", "bad/name", out, sizeof(out)), -EINVAL);
	char longname[DMCRYPT_NAME_MAX + 1];
	memset(longname, 'n', DMCRYPT_NAME_MAX);
	longname[DMCRYPT_NAME_MAX] = '\0';
	assert_true(dmcrypt_name_valid(longname));
	assert_int_equal(dmcrypt_dm_uuid("cd55ece9-aaeb-48ce-be66-1c647c7e648b", longname, out,
					 sizeof(out)), -ENAMETOOLONG);

	assert_true(dmcrypt_name_valid("pvc-0b5e0a4c_data.1"));
	assert_false(dmcrypt_name_valid(""));
	assert_false(dmcrypt_name_valid("."));
	assert_false(dmcrypt_name_valid(".."));
	assert_false(dmcrypt_name_valid("-x"));
	assert_false(dmcrypt_name_valid("a b"));
	assert_false(dmcrypt_name_valid("a/b"));
	assert_false(dmcrypt_name_valid(NULL));
}

static void test_ctx_defaults(void **state)
{
	struct dmcrypt_ctx ctx;
	dmcrypt_ctx_init(&ctx, NULL);
	assert_int_equal(ctx.udev, access("/run/udev/control", F_OK) == 0);
	assert_true(ctx.remove_retries > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_cryptsetup),
		cmocka_unit_test(test_params_only),
		cmocka_unit_test(test_512_has_no_options),
		cmocka_unit_test(test_all_options_in_cryptsetup_order),
		cmocka_unit_test(test_rejects_bad_tables),
		cmocka_unit_test(test_perf_flags),
		cmocka_unit_test(test_dm_uuid_and_names),
		cmocka_unit_test(test_ctx_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
