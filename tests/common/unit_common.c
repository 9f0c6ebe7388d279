/* Unit tests for common/: Base64, secure buffers, parsing, file helpers. */
#include "tests/lib/unit.h"

#include "common/common.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static void b64_roundtrip(void **state)
{
	(void)state;
	static const struct { const char *plain, *enc; } v[] = {
		{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
		{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		_cleanup_free_ char *e = NULL;
		assert_int_equal(b64_encode(v[i].plain, strlen(v[i].plain), &e), 0);
		assert_string_equal(e, v[i].enc);
		uint8_t out[16];
		size_t n = 0;
		assert_int_equal(b64_decode(v[i].enc, strlen(v[i].enc), out, sizeof(out), &n), 0);
		assert_int_equal(n, strlen(v[i].plain));
		assert_memory_equal(out, v[i].plain, n);
	}
}

static void b64_rejects_bad_input(void **state)
{
	(void)state;
	uint8_t out[16];
	size_t n;
	assert_int_equal(b64_decode("Zm9", 3, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(b64_decode("Zm9v!A==", 8, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(b64_decode("Zg=a", 4, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(b64_decode("Zg==Zg==", 8, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(b64_decode("Zm9vYmFy", 8, out, 5, &n), -ENOBUFS);
}

static void secbuf_is_locked_and_grows(void **state)
{
	(void)state;
	_cleanup_secbuf_ struct secbuf b = {0};
	assert_int_equal(secbuf_alloc(&b, 64), 0);
	assert_non_null(b.data);
	assert_true(b.cap >= 64);
	for (int i = 0; i < 3000; i++) {
		uint8_t x = (uint8_t)i;
		assert_int_equal(secbuf_append(&b, &x, 1), 0);
	}
	assert_int_equal(b.len, 3000);
	assert_true(b.cap >= 3000);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(b.data[i], (uint8_t)i);
	/* The pages must be locked: VmLck in /proc/self/status is non-zero
	 * while we hold the buffer. */
	_cleanup_fclose_ FILE *f = fopen("/proc/self/status", "r");
	assert_non_null(f);
	char line[256];
	long locked_kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &locked_kb) == 1)
			break;
	assert_true(locked_kb >= (long)(b.cap / 1024));
}

static void parse_u64_strict(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(parse_u64("", &v), -EINVAL);
	assert_int_equal(parse_u64("-1", &v), -EINVAL);
	assert_int_equal(parse_u64("12a", &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", &v), -EINVAL);
}

static void file_atomic_roundtrip(void **state)
{
	(void)state;
	char dir[] = "/tmp/wrapd-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(write_file_atomic(path, "hello", 5, 0600), 0);
	_cleanup_free_ char *got = NULL;
	size_t n = 0;
	assert_int_equal(read_file(path, 100, &got, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(got, "hello");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	_cleanup_free_ char *toobig = NULL;
	assert_int_equal(read_file(path, 5, &toobig, NULL), -EFBIG);
	unlink(path);
	rmdir(dir);
}

/* StrictModes walks the directories (issue 10, weak point of session 2): a
 * trusted file in a directory others can write is refused, naming the
 * directory; a root-owned sticky directory (as /tmp) is accepted; a symlink
 * is checked along both the path given and where it leads. */
static int trusted(const char *path, struct werr *e)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	werr_clear(e);
	return file_check_trusted(&st, path, e);
}

static void trusted_walks_directories(void **state)
{
	(void)state;
	char top[] = "/tmp/wrapd-trust-XXXXXX";
	assert_non_null(mkdtemp(top));
	char sub[96], f[128], link[128], bad[96], badf[128], badlink[128];
	snprintf(sub, sizeof(sub), "%s/etc", top);
	snprintf(f, sizeof(f), "%s/wrapd.conf", sub);
	snprintf(bad, sizeof(bad), "%s/open", top);
	snprintf(badf, sizeof(badf), "%s/wrapd.conf", bad);
	snprintf(link, sizeof(link), "%s/link.conf", sub);
	snprintf(badlink, sizeof(badlink), "%s/link.conf", bad);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(mkdir(bad, 0755), 0);
	assert_int_equal(write_file_atomic(f, "x", 1, 0600), 0);
	assert_int_equal(write_file_atomic(badf, "x", 1, 0600), 0);
	assert_int_equal(symlink(badf, link), 0);
	assert_int_equal(symlink(f, badlink), 0);
	struct werr e;
	uid_t me = geteuid();

	/* /tmp is sticky and root's; top is 0700: all good. */
	assert_int_equal(trusted(f, &e), 0);
	assert_int_equal(trusted(badf, &e), 0);
	/* A group-writable directory above the file. */
	assert_int_equal(chmod(bad, 0775), 0);
	assert_int_equal(trusted(badf, &e), -EPERM);
	assert_non_null(strstr(e.msg, "its directory"));
	assert_non_null(strstr(e.msg, bad));
	assert_non_null(strstr(e.msg, "is group-writable"));
	assert_null(strchr(e.msg, '\n'));
	/* World-writable without the sticky bit: refused; with it, root's: fine
	 * (only when we are root: otherwise the directory is not root's). */
	assert_int_equal(chmod(bad, 0777), 0);
	assert_int_equal(trusted(badf, &e), -EPERM);
	assert_non_null(strstr(e.msg, "is world-writable"));
	assert_int_equal(chmod(bad, 01777), 0);
	assert_int_equal(trusted(badf, &e), me == 0 ? 0 : -EPERM);
	assert_int_equal(chmod(bad, 0777), 0);
	/* A symlink in a trusted directory to a file in the open one: refused
	 * along the resolved path; and the other way round, along the given one. */
	assert_int_equal(trusted(link, &e), -EPERM);
	assert_non_null(strstr(e.msg, bad));
	assert_int_equal(trusted(badlink, &e), -EPERM);
	assert_non_null(strstr(e.msg, bad));
	/* Higher up: the file's own directory fine, its parent open. */
	assert_int_equal(chmod(bad, 0755), 0);
	assert_int_equal(chmod(top, 0770), 0);
	assert_int_equal(trusted(f, &e), -EPERM);
	assert_non_null(strstr(e.msg, top));
	assert_int_equal(chmod(top, 0700), 0);
	/* A relative path is checked from the working directory. */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(sub), 0);
	assert_int_equal(trusted("wrapd.conf", &e), 0);
	assert_int_equal(chmod(sub, 0757), 0);
	assert_int_equal(trusted("wrapd.conf", &e), -EPERM);
	assert_int_equal(chmod(sub, 0755), 0);
	assert_int_equal(chdir(cwd), 0);

	unlink(link);
	unlink(badlink);
	unlink(f);
	unlink(badf);
	rmdir(sub);
	rmdir(bad);
	rmdir(top);
}

static void werr_formats(void **state)
{
	(void)state;
	struct werr e = {0};
	assert_int_equal(werr_set(&e, -EINVAL, "device %s: bad", "/dev/x"), -EINVAL);
	assert_string_equal(e.msg, "device /dev/x: bad");
	assert_int_equal(werr_prefix(&e, -EINVAL, "format"), -EINVAL);
	assert_string_equal(e.msg, "format: device /dev/x: bad");
	assert_int_equal(werr_set(NULL, -EIO, "x"), -EIO);
	assert_string_equal(werr_str(NULL, -ENOENT), strerror(ENOENT));
	assert_int_equal(ct_memcmp("abc", "abc", 3), 0);
	assert_int_not_equal(ct_memcmp("abc", "abd", 3), 0);
}

/*
 * Issue 10 item 9: Base64 decoding must not leave the last key bytes on the
 * stack (the 6-bit values of the last quantum, or the 24-bit group). The
 * probe: decode in one frame, then look through the stack memory that frame
 * used, from a second frame at the same depth that reads its own
 * uninitialised array. Whether the old code left them depends on the
 * compiler keeping v[] in memory: at -O2 with and without the sanitizers (this
 * tree's builds) it did, and this test failed.
 */
#define PROBE_BYTES 16384
static __attribute__((noinline)) int decode_here(const char *b64, struct secbuf *out)
{
	return b64_decode_secure(b64, strlen(b64), out);
}

static __attribute__((noinline, no_sanitize_address)) size_t stack_find(const uint8_t *pat,
									   size_t n)
{
	uint8_t probe[PROBE_BYTES];
	/* Hide from the compiler that the array was never written: it holds
	 * whatever the frames before this one left there. */
	volatile uint8_t *p = probe;
	__asm__ volatile("" : "+r"(p) : : "memory");
	size_t hits = 0;
	for (size_t i = 0; i + n <= PROBE_BYTES; i++) {
		size_t k = 0;
		while (k < n && p[i + k] == pat[k])
			k++;
		hits += k == n;
	}
	return hits;
}

static void b64_leaves_no_key_on_stack(void **state)
{
	(void)state;
	/* The last quantum "qx/B" is 6-bit values 42, 49, 63, 1: the last key
	 * bytes 0xab 0x1f 0xc1. */
	const char *b64 = "AAAAqx/B";
	const int32_t v[4] = {42, 49, 63, 1};
	const uint8_t x[4] = {0xc1, 0x1f, 0xab, 0x00}; /* the 24-bit group, little-endian */
	struct secbuf out = {0};
	assert_int_equal(decode_here(b64, &out), 0);
	assert_int_equal(out.len, 6);
	assert_int_equal(out.data[3], 0xab);
	assert_int_equal(out.data[5], 0xc1);
	size_t hv = stack_find((const uint8_t *)v, sizeof(v));
	size_t hx = stack_find(x, sizeof(x));
	secbuf_free(&out);
	if (hv || hx)
		fail_msg("after decoding, the stack holds the last quantum %zu time(s) and the last group %zu time(s)",
			 hv, hx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(b64_roundtrip),
		cmocka_unit_test(b64_rejects_bad_input),
		cmocka_unit_test(b64_leaves_no_key_on_stack),
		cmocka_unit_test(secbuf_is_locked_and_grows),
		cmocka_unit_test(parse_u64_strict),
		cmocka_unit_test(file_atomic_roundtrip),
		cmocka_unit_test(trusted_walks_directories),
		cmocka_unit_test(werr_formats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
