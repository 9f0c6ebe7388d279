/* Unit tests for common/config.c: the wrapd.conf parser with per-module sections. */
#include "tests/lib/unit.h"

#include "common/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Two modules' settings, as vault/ and volume/ (and the agent) declare them. */
struct alpha {
	char *name;
	char *file;
	bool on;
	int count;
	long wait_ms;
	int mode;
	char *secret;
};
struct beta {
	char *sock;
	int level;
};

static bool no_spaces(const char *key, const char *value, char *why, size_t whylen)
{
	if (!strchr(value, ' '))
		return true;
	snprintf(why, whylen, "%s: no spaces please", key);
	return false;
}

static const char *const modes[] = {"text", "json", NULL};
static const struct config_key alpha_keys[] = {
	{.name = "a_name", .type = CONFIG_STRING, .off = offsetof(struct alpha, name),
	 .env = "TEST_A_NAME", .check = no_spaces},
	{.name = "a_file", .type = CONFIG_PATH, .off = offsetof(struct alpha, file)},
	{.name = "a_on", .type = CONFIG_BOOL, .off = offsetof(struct alpha, on), .env = "TEST_A_ON"},
	{.name = "a_count", .type = CONFIG_INT, .off = offsetof(struct alpha, count), .min = 1,
	 .max = 64},
	{.name = "a_wait", .type = CONFIG_DURATION, .off = offsetof(struct alpha, wait_ms),
	 .min = 100, .max = 3600000},
	{.name = "a_mode", .type = CONFIG_ENUM, .off = offsetof(struct alpha, mode), .names = modes},
	{.name = "a_secret", .type = CONFIG_STRING, .off = offsetof(struct alpha, secret),
	 .flags = CONFIG_ENV_ONLY, .hint = "use TEST_A_SECRET"},
};
static const struct config_key beta_keys[] = {
	{.name = "b_sock", .type = CONFIG_PATH, .off = offsetof(struct beta, sock)},
	{.name = "b_level", .type = CONFIG_INT, .off = offsetof(struct beta, level)},
};

struct two {
	struct alpha a;
	struct beta b;
	struct config_section sa, sb;
	const struct config_section *secs[3];
};

static void two_init(struct two *t)
{
	memset(t, 0, sizeof(*t));
	t->sa = (struct config_section){alpha_keys, ARRAY_SIZE(alpha_keys), &t->a};
	t->sb = (struct config_section){beta_keys, ARRAY_SIZE(beta_keys), &t->b};
	t->secs[0] = &t->sa;
	t->secs[1] = &t->sb;
}

static void two_free(struct two *t)
{
	config_section_free(&t->sa);
	config_section_free(&t->sb);
	assert_null(t->a.name);
	assert_null(t->b.sock);
}

static int parse(struct two *t, const char *text, struct werr *err)
{
	two_init(t);
	werr_clear(err);
	return config_parse("/etc/wrapd/wrapd.conf", text, strlen(text), t->secs, err);
}

static void every_type_and_two_sections(void **state)
{
	(void)state;
	struct two t;
	struct werr err;
	const char *text =
		"# a comment\n"
		"\n"
		"   \t\n"
		"   # an indented comment\n"
		"a_name = hello\n"
		"b_sock=/run/x.sock\r\n"
		"a_file = \"/etc/with space\"\n"
		"a_on = True\n"
		"a_count = 64\n"
		"a_wait = 2m\n"
		"a_mode = json\n"
		"b_level = 0";
	assert_int_equal(parse(&t, text, &err), 0);
	assert_string_equal(t.a.name, "hello");
	assert_string_equal(t.a.file, "/etc/with space");
	assert_true(t.a.on);
	assert_int_equal(t.a.count, 64);
	assert_int_equal(t.a.wait_ms, 120000);
	assert_int_equal(t.a.mode, 1);
	assert_string_equal(t.b.sock, "/run/x.sock");
	assert_int_equal(t.b.level, 0);
	two_free(&t);

	/* Durations: plain seconds and each unit. */
	static const struct { const char *v; long ms; } d[] = {
		{"1", 1000}, {"100ms", 100}, {"5s", 5000}, {"1h", 3600000},
	};
	for (size_t i = 0; i < ARRAY_SIZE(d); i++) {
		char line[64];
		snprintf(line, sizeof(line), "a_wait = %s\n", d[i].v);
		assert_int_equal(parse(&t, line, &err), 0);
		assert_int_equal(t.a.wait_ms, d[i].ms);
		two_free(&t);
	}
}

static void bad_values_and_lines(void **state)
{
	(void)state;
	static const struct { const char *text, *msg; } bad[] = {
		{"a_name = two words\n", "/etc/wrapd/wrapd.conf:1: unquoted value"},
		{"a_name = \"two words\"\n", "/etc/wrapd/wrapd.conf:1: a_name: no spaces please"},
		{"a_file = relative/x\n", "/etc/wrapd/wrapd.conf:1: a_file: 'relative/x' is not an absolute path"},
		{"a_on = yes\n", "/etc/wrapd/wrapd.conf:1: a_on: 'yes' is not a boolean (true or false)"},
		{"a_count = 0\n", "/etc/wrapd/wrapd.conf:1: a_count: '0' is not a number from 1 to 64"},
		{"a_count = 65\n", "/etc/wrapd/wrapd.conf:1: a_count: '65' is not a number from 1 to 64"},
		{"a_count = -3\n", "/etc/wrapd/wrapd.conf:1: a_count: '-3' is not a number from 1 to 64"},
		{"a_count = 99999999999999999999999\n", "/etc/wrapd/wrapd.conf:1: a_count: '99999999999999999999999' is not a number"},
		{"b_level = 2147483648\n", "/etc/wrapd/wrapd.conf:1: b_level: '2147483648' is not a number from 0 to 2147483647"},
		{"a_wait = 10y\n", "/etc/wrapd/wrapd.conf:1: a_wait: '10y' is not a duration (seconds"},
		{"a_wait = 0\n", "/etc/wrapd/wrapd.conf:1: a_wait: '0' is not a duration (seconds"},
		{"a_wait = 50ms\n", "/etc/wrapd/wrapd.conf:1: a_wait: '50ms' is not a duration from 100 ms to 3600000 ms"},
		{"a_wait = 2h\n", "/etc/wrapd/wrapd.conf:1: a_wait: '2h' is not a duration from 100 ms"},
		{"a_mode = xml\n", "/etc/wrapd/wrapd.conf:1: a_mode: 'xml' is not one of text, json"},
		{"\n# c\na_mode =\n", "/etc/wrapd/wrapd.conf:3: empty value for 'a_mode'"},
		{"a_name\n", "/etc/wrapd/wrapd.conf:1: expected 'key = value'"},
		{" = x\n", "/etc/wrapd/wrapd.conf:1: expected 'key = value'"},
		{"A_Name = x\n", "/etc/wrapd/wrapd.conf:1: bad key 'A_Name'"},
		{"a_name = \"x\n", "/etc/wrapd/wrapd.conf:1: unterminated quote"},
		{"a_name = \"x\" y\n", "/etc/wrapd/wrapd.conf:1: unterminated quote or text after"},
		{"a_name = x # c\n", "/etc/wrapd/wrapd.conf:1: unquoted value with a space, '#'"},
		{"a_name = a\x1b[2Jb\n", "/etc/wrapd/wrapd.conf:1: control character in line"},
		{"a_secret = s3cr3t\n", "/etc/wrapd/wrapd.conf:1: a_secret does not belong in a config file; use TEST_A_SECRET"},
		/* Unknown keys, wherever they are, name the file and line. */
		{"a_name = x\n\n# c\nc_other = 1\n", "/etc/wrapd/wrapd.conf:4: unknown key 'c_other'"},
		{"a_nam = x\n", "/etc/wrapd/wrapd.conf:1: unknown key 'a_nam'"},
		/* Repeats, also across the two sections' keys. */
		{"a_name = x\nb_sock = /s\na_name = y\n", "/etc/wrapd/wrapd.conf:3: 'a_name' set twice"},
		{"b_level = 1\nb_level = 1\n", "/etc/wrapd/wrapd.conf:2: 'b_level' set twice"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct two t;
		struct werr err;
		int rc = parse(&t, bad[i].text, &err);
		if (rc != -EINVAL || strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)))
			fail_msg("case %zu: rc %d, message '%s', wanted '%s...'", i, rc, err.msg,
				 bad[i].msg);
		assert_null(strchr(err.msg, '\n'));
		two_free(&t);
	}
}

static void line_and_file_limits(void **state)
{
	(void)state;
	struct two t;
	struct werr err = {0};
	two_init(&t);
	size_t n = CONFIG_MAX_BYTES + 1;
	char *big = malloc(n + 1);
	assert_non_null(big);
	/* A line of exactly CONFIG_MAX_LINE - 1 bytes is fine (a comment)... */
	memset(big, ' ', n);
	big[0] = '#';
	big[CONFIG_MAX_LINE - 1] = '\n';
	assert_int_equal(config_parse("f", big, CONFIG_MAX_LINE, t.secs, &err), 0);
	/* ...one byte more is not, and the error names the line. */
	memcpy(big, "\n\n#", 3);
	big[CONFIG_MAX_LINE + 2] = '\n';
	memset(big + 3, ' ', CONFIG_MAX_LINE);
	assert_int_equal(config_parse("f", big, CONFIG_MAX_LINE + 3, t.secs, &err), -EINVAL);
	assert_string_equal(err.msg, "f:3: line longer than 4096 bytes");
	assert_int_equal(config_parse("f", big, n, t.secs, &err), -EFBIG);
	assert_string_equal(err.msg, "f: larger than 65536 bytes");
	assert_int_equal(config_parse("f", "a_name = x\0y\n", 13, t.secs, &err), -EINVAL);
	assert_string_equal(err.msg, "f: contains a NUL byte; not a text file");
	free(big);
	two_free(&t);
}

static void check_only_section(void **state)
{
	(void)state;
	/* A program that does not use beta's keys still accepts and checks them. */
	struct alpha a = {0};
	struct config_section sa = {alpha_keys, ARRAY_SIZE(alpha_keys), &a};
	struct config_section sb = {beta_keys, ARRAY_SIZE(beta_keys), NULL};
	const struct config_section *const secs[] = {&sa, &sb, NULL};
	struct werr err = {0};
	const char *ok = "a_name = x\nb_sock = /run/s\nb_level = 3\n";
	assert_int_equal(config_parse("f", ok, strlen(ok), secs, &err), 0);
	assert_string_equal(a.name, "x");
	const char *bad = "b_sock = rel\n";
	assert_int_equal(config_parse("f", bad, strlen(bad), secs, &err), -EINVAL);
	assert_string_equal(err.msg, "f:1: b_sock: 'rel' is not an absolute path");
	config_section_free(&sa);
	config_section_free(&sb); /* no base: nothing to free */
}

static const char *fake_env(const char *name)
{
	if (!strcmp(name, "TEST_A_NAME"))
		return "from-env";
	if (!strcmp(name, "TEST_A_ON"))
		return ""; /* empty = unset */
	return NULL;
}

static const char *bad_env(const char *name)
{
	return !strcmp(name, "TEST_A_ON") ? "maybe" : NULL;
}

static void env_set_copy(void **state)
{
	(void)state;
	struct two t;
	struct werr err;
	assert_int_equal(parse(&t, "a_name = file\na_on = true\n", &err), 0);
	assert_int_equal(config_apply_env(&t.sa, fake_env, &err), 0);
	assert_string_equal(t.a.name, "from-env");
	assert_true(t.a.on);
	assert_int_equal(config_apply_env(&t.sa, bad_env, &err), -EINVAL);
	assert_string_equal(err.msg, "environment TEST_A_ON: a_on: 'maybe' is not a boolean (true or false)");
	/* config_set: the same checks; env-only keys allowed; relative paths allowed. */
	assert_int_equal(config_set(&t.sa, "a_secret", "s", &err), 0);
	assert_int_equal(config_set(&t.sa, "a_file", "rel/p", &err), 0);
	assert_int_equal(config_set(&t.sa, "a_count", "100", &err), -EINVAL);
	assert_string_equal(err.msg, "a_count: '100' is not a number from 1 to 64");
	assert_int_equal(config_set(&t.sa, "nope", "1", &err), -ENOENT);
	/* A deep copy owns its strings. */
	struct alpha c = t.a;
	struct config_section sc = {alpha_keys, ARRAY_SIZE(alpha_keys), &c};
	assert_int_equal(config_section_copy_strings(&sc, &t.sa), 0);
	assert_ptr_not_equal(c.name, t.a.name);
	assert_string_equal(c.name, "from-env");
	assert_string_equal(c.secret, "s");
	config_section_free(&sc);
	two_free(&t);
}

static void load_missing_vs_unreadable(void **state)
{
	(void)state;
	char dir[] = "/tmp/wrapd-config-unit-XXXXXX";
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0); /* the file's own mode decides */
	char path[128];
	snprintf(path, sizeof(path), "%s/wrapd.conf", dir);
	struct two t;
	struct werr err = {0};
	two_init(&t);
	/* Missing: fine when optional, an error naming the file when not. */
	assert_int_equal(config_load(path, true, t.secs, &err), 0);
	assert_int_equal(config_load(path, false, t.secs, &err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	/* A directory is never a config file. */
	assert_int_equal(config_load(dir, true, t.secs, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	const char *text = "a_name = loaded\n";
	assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
	assert_int_equal(config_load(path, false, t.secs, &err), 0);
	assert_string_equal(t.a.name, "loaded");
	two_free(&t);

	/* Unreadable: an error even when a missing file would be fine. As root
	 * nothing is unreadable, so read it as nobody in a child. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() != 0 && chmod(path, 0) < 0)
			_exit(3);
		if (geteuid() == 0 && setresuid(65534, 65534, 65534) < 0)
			_exit(4);
		struct two c;
		struct werr e = {0};
		two_init(&c);
		int rc = config_load(path, true, c.secs, &e);
		_exit(rc == -EACCES && strstr(e.msg, path) && strstr(e.msg, "Permission denied") ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(path);
	rmdir(dir);
}

/* Item 7 of issue 10: a config another user can write is refused (StrictModes). */
static void untrusted_files_refused(void **state)
{
	(void)state;
	char dir[] = "/tmp/wrapd-config-unit-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], want[512];
	snprintf(path, sizeof(path), "%s/wrapd.conf", dir);
	snprintf(want, sizeof(want), "run 'chown root:root %s && chmod go-w %s'", path, path);
	const char *text = "a_name = x\n";
	assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
	struct two t;
	struct werr err = {0};
	two_init(&t);
	assert_int_equal(config_load(path, false, t.secs, &err), 0);
	two_free(&t);
	static const struct { mode_t mode; const char *why; } bad[] = {
		{0664, "is group-writable"}, {0620, "is group-writable"},
		{0646, "is world-writable"}, {0666, "is world-writable"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(chmod(path, bad[i].mode), 0);
		two_init(&t);
		/* Refused even where a missing file would be fine. */
		assert_int_equal(config_load(path, true, t.secs, &err), -EPERM);
		assert_null(t.a.name);
		if (strncmp(err.msg, path, strlen(path)) || !strstr(err.msg, bad[i].why) ||
		    !strstr(err.msg, want))
			fail_msg("mode %o: '%s'", (unsigned)bad[i].mode, err.msg);
		assert_null(strchr(err.msg, '\n'));
	}
	assert_int_equal(chmod(path, 0600), 0);
	if (geteuid() == 0) {
		/* Owned by another user, even read-only: refused. */
		assert_int_equal(chown(path, 65534, 65534), 0);
		two_init(&t);
		assert_int_equal(config_load(path, false, t.secs, &err), -EPERM);
		assert_non_null(strstr(err.msg, "is owned by uid 65534, not root"));
		assert_non_null(strstr(err.msg, want));
	}
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_type_and_two_sections),
		cmocka_unit_test(bad_values_and_lines),
		cmocka_unit_test(line_and_file_limits),
		cmocka_unit_test(check_only_section),
		cmocka_unit_test(env_set_copy),
		cmocka_unit_test(load_missing_vs_unreadable),
		cmocka_unit_test(untrusted_files_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
