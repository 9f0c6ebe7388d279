/*
 * keyring module on the host kernel (the keyring works without dm):
 * add -> visible in /proc/keys and findable as dm-crypt would find it,
 * unreadable (logon), remove -> gone; the cleanup helper removes too.
 */
#include "tests/lib/unit.h"

#include <linux/keyctl.h>
#include <sys/random.h>
#include <sys/syscall.h>

#include "keyring/keyring.h"

/* The line for serial in /proc/keys, or "" when it is not listed. */
static void proc_keys_line(int32_t serial, char *out, size_t cap)
{
	char want[16], line[512];
	FILE *f = fopen("/proc/keys", "re");
	out[0] = '\0';
	assert_non_null(f);
	snprintf(want, sizeof(want), "%08x ", (unsigned)serial);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want)))
			snprintf(out, cap, "%s", line);
	fclose(f);
}

/* Gone means: not listed, or listed only as invalidated/dead, awaiting the
 * kernel's garbage collector (which runs asynchronously). */
static bool proc_keys_gone(int32_t serial)
{
	char line[512];
	proc_keys_line(serial, line, sizeof(line));
	if (!line[0])
		return true;
	char flags[16] = "";
	sscanf(line, "%*s %15s", flags);
	return strchr(flags, 'i') || strchr(flags, 'D') || strchr(flags, 'R');
}

static void fill_random_vk(struct secbuf *vk)
{
	assert_int_equal(secbuf_alloc(vk, 64), 0);
	vk->len = 64;
	for (size_t off = 0; off < vk->len;) {
		ssize_t n = getrandom(vk->data + off, vk->len - off, 0);
		assert_true(n > 0);
		off += (size_t)n;
	}
}

static void test_desc_for(void **state)
{
	char desc[KEYRING_DESC_MAX];
	assert_int_equal(keyring_desc_for("cd55ece9-aaeb-48ce-be66-1c647c7e648b", desc), 0);
	assert_string_equal(desc, "wrapd:cd55ece9-aaeb-48ce-be66-1c647c7e648b");
	assert_int_equal(keyring_desc_for("", desc), -EINVAL);
	assert_int_equal(keyring_desc_for(NULL, desc), -EINVAL);
	assert_int_equal(keyring_desc_for("a b", desc), -EINVAL);     /* would split a dm table */
	assert_int_equal(keyring_desc_for("a:b", desc), -EINVAL);
	assert_int_equal(keyring_desc_for("x\n", desc), -EINVAL);
	char longid[KEYRING_ID_MAX + 2];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(keyring_desc_for(longid, desc), -EINVAL);
	longid[KEYRING_ID_MAX] = '\0';
	assert_int_equal(keyring_desc_for(longid, desc), 0);
}

static void test_add_find_unreadable_remove(void **state)
{
	_cleanup_secbuf_ struct secbuf vk = { 0 };
	struct keyring_key key;
	struct werr err = { 0 };
	char line[512];
	int32_t found = 0;

	fill_random_vk(&vk);
	assert_int_equal(keyring_add_volume_key("unit-test-1", &vk, &key, &err), 0);
	assert_true(key.serial > 0);
	assert_string_equal(key.desc, "wrapd:unit-test-1");
	assert_int_equal(key.size, 64);

	/* Visible in /proc/keys as a logon key with our description. */
	proc_keys_line(key.serial, line, sizeof(line));
	assert_non_null(strstr(line, " logon "));
	assert_non_null(strstr(line, "wrapd:unit-test-1: 64"));

	/* Found the way dm-crypt finds it at table load. */
	assert_int_equal(keyring_find_logon("wrapd:unit-test-1", &found), 0);
	assert_int_equal(found, key.serial);

	/* A logon key cannot be read back, not even by its possessor. */
	uint8_t back[64];
	long r = syscall(SYS_keyctl, KEYCTL_READ, key.serial, back, sizeof(back));
	assert_true(r < 0);
	assert_int_equal(errno, EOPNOTSUPP);

	int32_t serial = key.serial;
	assert_int_equal(keyring_remove(&key), 0);
	assert_int_equal(key.serial, 0);
	assert_int_equal(keyring_find_logon("wrapd:unit-test-1", NULL), -ENOKEY);
	assert_true(proc_keys_gone(serial));
	/* Idempotent. */
	assert_int_equal(keyring_remove(&key), 0);
}

static void test_cleanup_helper_removes(void **state)
{
	_cleanup_secbuf_ struct secbuf vk = { 0 };
	struct werr err = { 0 };
	int32_t serial;

	fill_random_vk(&vk);
	{
		_cleanup_keyring_key_ struct keyring_key key = KEYRING_KEY_NONE;
		assert_int_equal(keyring_add_volume_key("unit-test-2", &vk, &key, &err), 0);
		serial = key.serial;
		assert_int_equal(keyring_find_logon("wrapd:unit-test-2", NULL), 0);
	}
	assert_int_equal(keyring_find_logon("wrapd:unit-test-2", NULL), -ENOKEY);
	assert_true(proc_keys_gone(serial));
}

static void test_replace_same_desc(void **state)
{
	_cleanup_secbuf_ struct secbuf vk = { 0 };
	struct werr err = { 0 };
	fill_random_vk(&vk);
	_cleanup_keyring_key_ struct keyring_key a = KEYRING_KEY_NONE;
	_cleanup_keyring_key_ struct keyring_key b = KEYRING_KEY_NONE;
	assert_int_equal(keyring_add_volume_key("unit-test-3", &vk, &a, &err), 0);
	assert_int_equal(keyring_add_volume_key("unit-test-3", &vk, &b, &err), 0);
	int32_t found;
	assert_int_equal(keyring_find_logon("wrapd:unit-test-3", &found), 0);
	assert_int_equal(found, b.serial);
}

static void test_bad_input(void **state)
{
	struct keyring_key key;
	struct werr err = { 0 };
	uint8_t k[64] = { 1 };
	struct secbuf empty = { 0 };

	assert_int_equal(keyring_add_logon("nocolon", k, sizeof(k), KEY_SPEC_THREAD_KEYRING,
					   &key, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "nocolon"));
	assert_int_equal(keyring_add_logon("wrapd:x y", k, sizeof(k), KEY_SPEC_THREAD_KEYRING,
					   &key, &err), -EINVAL);
	assert_int_equal(keyring_add_logon("wrapd:x", k, 0, KEY_SPEC_THREAD_KEYRING, &key, &err),
			 -EINVAL);
	assert_int_equal(keyring_add_volume_key("bad id", &empty, &key, &err), -EINVAL);
	assert_int_equal(keyring_add_volume_key("ok", &empty, &key, &err), -EINVAL);
	assert_int_equal(key.serial, 0);
	assert_int_equal(keyring_find_logon("wrapd:never-added", NULL), -ENOKEY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_desc_for),
		cmocka_unit_test(test_add_find_unreadable_remove),
		cmocka_unit_test(test_cleanup_helper_removes),
		cmocka_unit_test(test_replace_same_desc),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
