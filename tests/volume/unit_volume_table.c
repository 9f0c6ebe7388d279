/* Unit tests for the host volume table parser (volume/table.c): hostile input. */
#include "tests/lib/unit.h"

#include "volume/volume.h"

#include <fcntl.h>
#include <sys/stat.h>

static int parse(const char *text, struct volume_table *t, struct werr *e)
{
	werr_clear(e);
	return volume_table_parse(text, strlen(text), "vt", t, e);
}

static void good_table(void **state)
{
	(void)state;
	struct volume_table t = {0};
	struct werr e;
	const char *txt =
		"# comment\n"
		"\n"
		"data  /dev/vdb   discard,no-workqueue\n"
		"\tscratch UUID=0B5E0A4C-3f1e-4d7b-9c55-2a7d3f1e4c10 read-only # trailing comment\n"
		"img /var/lib/a.img header=/etc/wrapd/a.hdr,noauto\r\n"
		"plain /dev/vdc\n"
		"dflt /dev/vdd defaults";
	assert_int_equal(parse(txt, &t, &e), 0);
	assert_int_equal(t.n, 5);
	assert_string_equal(t.v[0].name, "data");
	assert_string_equal(t.v[0].device, "/dev/vdb");
	assert_int_equal(t.v[0].flags, VOLUME_ALLOW_DISCARDS | VOLUME_NO_WORKQUEUE);
	assert_int_equal(t.v[0].line, 3);
	assert_string_equal(t.v[1].device, "UUID=0b5e0a4c-3f1e-4d7b-9c55-2a7d3f1e4c10");
	assert_int_equal(t.v[1].flags, VOLUME_READ_ONLY);
	assert_string_equal(t.v[2].header, "/etc/wrapd/a.hdr");
	assert_true(t.v[2].noauto);
	assert_int_equal(t.v[3].flags, 0);
	assert_null(t.v[3].header);
	assert_int_equal(t.v[4].flags, 0);
	assert_non_null(volume_table_find(&t, "img"));
	assert_null(volume_table_find(&t, "nope"));
	volume_table_free(&t);

	assert_int_equal(parse("", &t, &e), 0);
	assert_int_equal(t.n, 0);
	volume_table_free(&t);
}

static void bad_tables(void **state)
{
	(void)state;
	static const struct { const char *txt, *want; } v[] = {
		{"a\n", "vt:1: missing device"},
		{"a /dev/x ro extra\n", "vt:1: too many fields"},
		{"\n\nbad/name /dev/x\n", "vt:3: bad volume name"},
		{"-x /dev/x\n", "vt:1: bad volume name"},
		{".. /dev/x\n", "vt:1: bad volume name"},
		{"a relative/path\n", "vt:1: device"},
		{"a UUID=1234\n", "vt:1: 'UUID=1234' is not UUID="},
		{"a UUID=0b5e0a4c-3f1e-4d7b-9c55-2a7d3f1e4c1g\n", "vt:1:"},
		{"a /dev/x bogus\n", "vt:1: unknown option 'bogus'"},
		{"a /dev/x ro,,discard\n", "vt:1: empty option"},
		{"a /dev/x ro,\n", "vt:1: empty option"},
		{"a /dev/x workqueue,no-workqueue\n", "vt:1: 'workqueue' and 'no-workqueue'"},
		{"a /dev/x header=rel\n", "vt:1: header 'rel'"},
		{"a /dev/x header=/a,header=/b\n", "vt:1: 'header=' given twice"},
		{"a /dev/x\nb /dev/y\na /dev/z\n", "vt:3: volume 'a' already defined on line 1"},
		{"a /dev/x\xc3\xa9\n", "vt:1: byte 0xc3"},
		{"a /dev/\x1bx\n", "vt:1: byte 0x1b"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct volume_table t = {0};
		struct werr e;
		int r = parse(v[i].txt, &t, &e);
		if (r != -EINVAL || !strstr(e.msg, v[i].want))
			fail_msg("case %zu: rc %d msg '%s', wanted '%s'", i, r, e.msg, v[i].want);
		assert_null(t.v);
	}
	/* NUL byte inside the data */
	struct volume_table t = {0};
	struct werr e;
	werr_clear(&e);
	assert_int_equal(volume_table_parse("a /dev/x\0b", 10, "vt", &t, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "vt:1: byte 0x00"));
	/* overlong line and name */
	char *big = malloc(5000);
	assert_non_null(big);
	memset(big, 'a', 4999);
	big[4999] = '\0';
	assert_int_equal(parse(big, &t, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "longer than"));
	memset(big, 'a', 128);
	strcpy(big + 128, " /dev/x\n");
	assert_int_equal(parse(big, &t, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "bad volume name"));
	free(big);
}

static void load_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/wrapd-vt-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], link[128];
	snprintf(path, sizeof(path), "%s/volumes", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	const char *txt = "v1 /dev/vdb\n";
	assert_int_equal(write_file_atomic(path, txt, strlen(txt), 0644), 0);
	struct volume_table t = {0};
	struct werr e;
	werr_clear(&e);
	assert_int_equal(volume_table_load(path, &t, &e), 0);
	assert_int_equal(t.n, 1);
	volume_table_free(&t);

	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(volume_table_load(link, &t, &e), -ELOOP);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(volume_table_load(path, &t, &e), -EPERM);
	assert_non_null(strstr(e.msg, "world-writable"));
	/* Group-writable, or owned by someone else: refused as well (issue 10 item 7). */
	assert_int_equal(chmod(path, 0664), 0);
	assert_int_equal(volume_table_load(path, &t, &e), -EPERM);
	assert_non_null(strstr(e.msg, "group-writable"));
	assert_non_null(strstr(e.msg, "chmod go-w"));
	if (geteuid() == 0) {
		assert_int_equal(chmod(path, 0644), 0);
		assert_int_equal(chown(path, 65534, 0), 0);
		assert_int_equal(volume_table_load(path, &t, &e), -EPERM);
		assert_non_null(strstr(e.msg, "owned by uid 65534"));
		assert_non_null(strstr(e.msg, "chown root:root"));
	}
	unlink(link);
	unlink(path);
	assert_true(volume_table_load(path, &t, &e) == -ENOENT);
	assert_non_null(strstr(e.msg, "--table"));
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_table),
		cmocka_unit_test(bad_tables),
		cmocka_unit_test(load_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
