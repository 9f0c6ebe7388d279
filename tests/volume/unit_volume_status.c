/*
 * Unit tests for the status of a mapping in the middle of an online rekey
 * (volume/dmtable.c, volume/close.c's volume_status_from_table/_header,
 * volume/status_json.c's "rekey" object): the tables are the shapes
 * `dmsetup table` printed in the VM (tests/engine/vm_online_rekey.sh's log):
 * one crypt target, and the split tables [new | zone | old], [zone | old],
 * [new | old] (opened in the middle), [new | zone] (the last zone).
 */
#include "tests/lib/unit.h"

#include "volume/internal.h"

#include <fcntl.h>
#include <unistd.h>

#define U "ff7b27f6-e8f6-4aa4-a55e-aa30ef5d0937"
#define OPTS " 3 no_read_workqueue no_write_workqueue sector_size:4096"
/* Seen in the VM: 16 MiB zones, a 112 MiB data area on loop 7:2. */
#define L_PLAIN "0 229376 crypt aes-xts-plain64 :64:logon:wrapd:" U " 0 7:2 32768" OPTS "\n"
#define L_NEW_0_32768 "0 32768 crypt aes-xts-plain64 :64:logon:wrapd:" U "-d1 0 7:2 32768" OPTS "\n"
#define L_ZONE_32768 "32768 32768 linear 253:1 32768\n"
#define L_OLD_65536 "65536 163840 crypt aes-xts-plain64 :64:logon:wrapd:" U "-d0 65536 7:2 98304" OPTS "\n"

static void plain_table(void **state)
{
	(void)state;
	struct table_desc d;
	assert_int_equal(dm_table_describe(L_PLAIN, &d), 0);
	assert_int_equal(d.targets, 1);
	assert_false(d.split);
	assert_int_equal(d.size, 229376ULL * 512);
	assert_int_equal(d.data_offset, 32768);
	assert_string_equal(d.key_ref, ":64:logon:wrapd:" U);
	assert_string_equal(d.key_ref_new, "");
	assert_int_equal(d.first.sector_size, 4096);
	assert_string_equal(d.first.flags, "no_read_workqueue no_write_workqueue sector_size:4096");

	struct volume_status s = {0};
	assert_int_equal(volume_status_from_table(&s, L_PLAIN), 0);
	assert_string_equal(s.luks_uuid, U);
	assert_int_equal(s.size_bytes, 229376ULL * 512);
	assert_int_equal(s.targets, 1);
	assert_false(s.split);
	uint64_t done, total;
	const char *src;
	assert_false(volume_status_rekey(&s, &done, &total, &src));
	json_t *o = volume_status_entry_json(&s);
	assert_non_null(o);
	assert_true(json_is_null(json_object_get(o, "rekey")));
	assert_int_equal(json_integer_value(json_object_get(o, "size")), 229376LL * 512);
	json_decref(o);
}

/* [0,16M) new | [16M,32M) zone | [32M,112M) old: the whole size, both keys. */
static void split_three(void **state)
{
	(void)state;
	const char *t = L_NEW_0_32768 L_ZONE_32768 L_OLD_65536;
	struct table_desc d;
	assert_int_equal(dm_table_describe(t, &d), 0);
	assert_int_equal(d.targets, 3);
	assert_true(d.split);
	assert_true(d.old_in_table);
	assert_int_equal(d.size, 229376ULL * 512); /* not the first line's 32768 sectors */
	assert_int_equal(d.data_offset, 32768);
	assert_string_equal(d.key_ref, ":64:logon:wrapd:" U "-d0");
	assert_string_equal(d.key_ref_new, ":64:logon:wrapd:" U "-d1");
	assert_int_equal(d.new_end, 16ULL << 20);
	assert_int_equal(d.zone_start, 16ULL << 20);
	assert_int_equal(d.zone_len, 16ULL << 20);

	struct volume_status s = {0};
	assert_int_equal(volume_status_from_table(&s, t), 0);
	assert_string_equal(s.luks_uuid, U);
	assert_int_equal(s.size_bytes, 229376ULL * 512);
	/* No header read: the table says how far ("source": "table"). */
	uint64_t done, total;
	const char *src;
	assert_true(volume_status_rekey(&s, &done, &total, &src));
	assert_int_equal(done, 16ULL << 20);
	assert_int_equal(total, 229376ULL * 512);
	assert_string_equal(src, "table");
	json_t *r = volume_status_rekey_json(&s);
	assert_true(json_is_true(json_object_get(r, "online")));
	assert_string_equal(json_string_value(json_object_get(r, "key_ref_old")),
			    ":64:logon:wrapd:" U "-d0");
	assert_string_equal(json_string_value(json_object_get(r, "key_ref_new")),
			    ":64:logon:wrapd:" U "-d1");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "zone"), "start")),
			 16LL << 20);
	json_decref(r);
}

/* The first zone held: [0,16M) zone | [16M,32M) old (the test VM's 32 MiB shape). */
static void split_zone_first(void **state)
{
	(void)state;
	const char *t = "0 32768 linear 253:4 0\n"
			"32768 32768 crypt aes-xts-plain64 :64:logon:wrapd:" U "-d0 32768 7:0 65536" OPTS "\n";
	struct table_desc d;
	assert_int_equal(dm_table_describe(t, &d), 0);
	assert_int_equal(d.targets, 2);
	assert_int_equal(d.size, 65536ULL * 512);
	assert_int_equal(d.data_offset, 32768); /* 65536 - 32768: of the mapping's sector 0 */
	assert_string_equal(d.key_ref, ":64:logon:wrapd:" U "-d0");
	assert_string_equal(d.key_ref_new, "");
	assert_int_equal(d.new_end, 0);
	assert_int_equal(d.zone_start, 0);
	assert_int_equal(d.zone_len, 16ULL << 20);
}

/* Opened in the middle of a rekey: [0,a) new | [a,size) old, no zone. */
static void split_opened_in_middle(void **state)
{
	(void)state;
	const char *t = "0 65536 crypt aes-xts-plain64 :64:logon:wrapd:" U "-d1 0 7:0 32768" OPTS "\n"
			"65536 163840 crypt aes-xts-plain64 :64:logon:wrapd:" U "-d0 65536 7:0 98304" OPTS "\n";
	struct table_desc d;
	assert_int_equal(dm_table_describe(t, &d), 0);
	assert_int_equal(d.targets, 2);
	assert_int_equal(d.size, 229376ULL * 512);
	assert_int_equal(d.new_end, 32ULL << 20);
	assert_int_equal(d.zone_len, 0);
	assert_string_equal(d.key_ref, ":64:logon:wrapd:" U "-d0");
	assert_string_equal(d.key_ref_new, ":64:logon:wrapd:" U "-d1");
}

/* The last zone held: [0,a) new | [a,size) zone; the old key is only in the zone device. */
static void split_last_zone(void **state)
{
	(void)state;
	const char *t = "0 196608 crypt aes-xts-plain64 :64:logon:wrapd:" U "-d1 0 7:2 32768" OPTS "\n"
			"196608 32768 linear 253:1 196608\n";
	struct table_desc d;
	assert_int_equal(dm_table_describe(t, &d), 0);
	assert_false(d.old_in_table);
	assert_int_equal(d.size, 229376ULL * 512);
	assert_string_equal(d.key_ref, ":64:logon:wrapd:" U "-d1");
	assert_int_equal(d.new_end, 196608ULL * 512);
	struct volume_status s = {0};
	assert_int_equal(volume_status_from_table(&s, t), 0);
	json_t *r = volume_status_rekey_json(&s);
	assert_true(json_is_null(json_object_get(r, "key_ref_old")));
	json_decref(r);
}

static void refused_tables(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		/* a gap */
		L_NEW_0_32768 L_OLD_65536,
		/* an overlap */
		L_NEW_0_32768 "16384 32768 linear 253:1 16384\n",
		/* not starting at 0 */
		L_OLD_65536,
		/* another target type */
		L_NEW_0_32768 "32768 32768 striped 2 128 7:3 0 7:4 0\n",
		/* the keys of two volumes */
		L_NEW_0_32768 "32768 196608 crypt aes-xts-plain64 :64:logon:wrapd:00000000-e8f6-4aa4-a55e-aa30ef5d0937-d0 32768 7:2 65536" OPTS "\n",
		/* four targets */
		L_NEW_0_32768 L_ZONE_32768 "65536 32768 linear 253:1 65536\n" "98304 131072 crypt aes-xts-plain64 :64:logon:wrapd:" U "-d0 98304 7:2 131072\n",
		/* a zero-length target */
		"0 0 crypt aes-xts-plain64 :64:logon:wrapd:" U " 0 7:2 32768\n",
		/* garbage */
		"0 32768 crypt\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct table_desc d;
		if (dm_table_describe(bad[i], &d) != -EINVAL)
			fail_msg("table %zu accepted: %s", i, bad[i]);
	}
	/* cryptsetup's own LUKS2 mapping: a table, but not wrapd's. */
	struct volume_status s = {0};
	assert_int_equal(volume_status_from_table(&s, "0 229376 crypt aes-xts-plain64 :64:logon:cryptsetup:" U "-d0 0 7:2 32768\n"), -EINVAL);
	assert_int_equal(volume_status_from_table(&s, NULL), -EINVAL);
}

/* The header's checkpoint is what the status reports, when it can be read. */
static char path[64];

static void write_image(const char *op, const char *done, const char *size)
{
	snprintf(path, sizeof(path), "/tmp/unit_volume_status.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	struct secbuf vkb = {0}, *vk = &vkb;
	assert_int_equal(secbuf_alloc(vk, WRAPD_VK_BYTES), 0);
	assert_int_equal(getentropy(vk->data, WRAPD_VK_BYTES), 0);
	vk->len = WRAPD_VK_BYTES;
	struct luks2_hdr *h = NULL;
	struct werr e = {0};
	struct luks2_new_params p = {.label = "db"};
	assert_int_equal(luks2_hdr_new(&p, vk, &h, &e), 0);
	struct wrapd_token t = {.vault_addr = "https://vault.example:8200", .vault_namespace = "",
				.vault_mount = "transit", .vault_key = "wrapd", .key_version = 4,
				.ciphertext = "vault:v4:abcd", .context = "d3JhcGQ="};
	assert_int_equal(wrapd_token_set(h, &t, &e), 0);
	if (op) {
		json_t *st = json_pack("{s:i, s:s, s:s, s:s, s:s}", "version", 1, "op", op, "layout",
				       "inplace", "done", done, "size", size);
		assert_int_equal(luks2_conversion_set(h, st, &e), 0);
		json_decref(st);
	}
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	assert_int_equal(luks2_hdr_write(fd, h, path, &e), 0);
	luks2_hdr_free(h);
	secbuf_free(vk);
	close(fd);
}

static void header_checkpoint(void **state)
{
	(void)state;
	write_image("rekey", "16777216", "117440512");
	struct volume_status s = {0};
	assert_int_equal(volume_status_from_table(&s, L_NEW_0_32768 L_ZONE_32768 L_OLD_65536), 0);
	assert_int_equal(volume_status_from_header(&s, path), 0);
	unlink(path);
	assert_int_equal(s.key_version, 4);
	assert_string_equal(s.conversion, "rekey");
	assert_int_equal(s.conv_done, 16ULL << 20);
	assert_int_equal(s.conv_total, 112ULL << 20);
	uint64_t done, total;
	const char *src;
	assert_true(volume_status_rekey(&s, &done, &total, &src));
	assert_string_equal(src, "header");
	assert_int_equal(done, 16ULL << 20);
	assert_int_equal(total, 112ULL << 20);
	json_t *o = volume_status_entry_json(&s);
	json_t *r = json_object_get(o, "rekey");
	assert_true(json_is_true(json_object_get(r, "in_progress")));
	assert_string_equal(json_string_value(json_object_get(r, "source")), "header");
	assert_true(json_real_value(json_object_get(r, "ratio")) > 0.14 &&
		    json_real_value(json_object_get(r, "ratio")) < 0.15);
	assert_int_equal(json_integer_value(json_object_get(r, "table_done")), 16LL << 20);
	assert_int_equal(json_integer_value(json_object_get(o, "targets")), 3);
	json_decref(o);
}

/* A rekey recorded, the table not split (yet: opened whole is refused, so
 * this is the moment between the plan commit and the first zone). */
static void header_rekey_whole_table(void **state)
{
	(void)state;
	write_image("rekey", "0", "117440512");
	struct volume_status s = {0};
	assert_int_equal(volume_status_from_table(&s, L_PLAIN), 0);
	assert_int_equal(volume_status_from_header(&s, path), 0);
	unlink(path);
	uint64_t done, total;
	const char *src;
	assert_true(volume_status_rekey(&s, &done, &total, &src));
	assert_int_equal(done, 0);
	json_t *r = volume_status_rekey_json(&s);
	assert_true(json_is_false(json_object_get(r, "online")));
	json_decref(r);
}

/* Hostile state: an op that is not printable, a done past the size. */
static void header_hostile_state(void **state)
{
	(void)state;
	write_image("re\x1b[2Jkey", "999999999999", "1024");
	struct volume_status s = {0};
	assert_int_equal(volume_status_from_table(&s, L_PLAIN), 0);
	assert_int_equal(volume_status_from_header(&s, path), 0);
	unlink(path);
	for (const char *c = s.conversion; *c; c++)
		assert_true(*c >= 0x20 && *c < 0x7f);
	assert_int_equal(s.conv_total, 0); /* done > size: not believed */
	uint64_t done, total;
	const char *src;
	assert_false(volume_status_rekey(&s, &done, &total, &src));
}

static void header_unreadable(void **state)
{
	(void)state;
	struct volume_status s = {0};
	assert_true(volume_status_from_header(&s, "/nonexistent/wrapd-status") < 0);
	assert_int_equal(s.key_version, -1);
	assert_non_null(strstr(s.header_note, "cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_table),
		cmocka_unit_test(split_three),
		cmocka_unit_test(split_zone_first),
		cmocka_unit_test(split_opened_in_middle),
		cmocka_unit_test(split_last_zone),
		cmocka_unit_test(refused_tables),
		cmocka_unit_test(header_checkpoint),
		cmocka_unit_test(header_rekey_whole_table),
		cmocka_unit_test(header_hostile_state),
		cmocka_unit_test(header_unreadable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
