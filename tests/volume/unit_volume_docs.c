/*
 * Unit tests for the library's JSON documents (volume/inspect.c,
 * volume/status_json.c): the fields scripts and the agent rely on, hostile
 * header strings reduced to printable ASCII, and the document of a header
 * that cannot be read.
 */
#include "tests/lib/unit.h"

#include "format/format.h"
#include "volume/volume.h"

#include <fcntl.h>
#include <unistd.h>

static char path[] = "/tmp/unit_volume_docs.XXXXXX";

static int make_image(void **state)
{
	(void)state;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	struct secbuf vkb = {0}, *vk = &vkb;
	assert_int_equal(secbuf_alloc(vk, WRAPD_VK_BYTES), 0);
	assert_int_equal(getentropy(vk->data, WRAPD_VK_BYTES), 0);
	vk->len = WRAPD_VK_BYTES;
	struct luks2_hdr *h = NULL;
	struct werr e = {0};
	struct luks2_new_params p = {.label = "db\x1b[31m", .subsystem = "sub"};
	assert_int_equal(luks2_hdr_new(&p, vk, &h, &e), 0);
	struct wrapd_token t = {.vault_addr = "https://vault.example:8200", .vault_namespace = "",
				.vault_mount = "transit", .vault_key = "wrapd", .key_version = 3,
				.ciphertext = "vault:v3:abcd", .context = "d3JhcGQ="};
	assert_int_equal(wrapd_token_set(h, &t, &e), 0);
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	assert_int_equal(luks2_hdr_write(fd, h, path, &e), 0);
	luks2_hdr_free(h);
	secbuf_free(vk);
	close(fd);
	return 0;
}

static int drop_image(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	assert_non_null(s);
	return s;
}

static void inspect_wrapd_volume(void **state)
{
	(void)state;
	struct wlog log = {0};
	struct volume_ctx ctx = {.log = &log, .udev = -1};
	struct werr e = {0};
	json_t *o = NULL;
	assert_int_equal(volume_inspect(&ctx, path, &o, &e), 0);
	assert_non_null(o);
	assert_true(json_is_true(json_object_get(o, "valid")));
	assert_string_equal(str(o, "device"), path);
	assert_string_equal(str(o, "label"), "db?[31m"); /* the escape is not passed through */
	assert_string_equal(str(o, "cipher"), "aes-xts-plain64");
	assert_int_equal(json_integer_value(json_object_get(o, "key_size")), 64);
	assert_int_equal(json_array_size(json_object_get(o, "copies")), 2);
	assert_int_equal(json_array_size(json_object_get(o, "segments")), 1);
	json_t *w = json_object_get(o, "wrapd");
	assert_true(json_is_true(json_object_get(w, "is_wrapd")));
	assert_string_equal(str(w, "vault_mount"), "transit");
	assert_string_equal(str(w, "vault_key"), "wrapd");
	assert_int_equal(json_integer_value(json_object_get(w, "key_version")), 3);
	assert_string_equal(str(w, "ciphertext"), "vault:v3:abcd");
	assert_true(json_is_false(json_object_get(w, "conversion_in_progress")));
	assert_true(json_is_true(json_object_get(o, "activatable")));
	json_t *tok = json_array_get(json_object_get(o, "tokens"), 0);
	assert_string_equal(str(tok, "owner"), "wrapd");
	json_decref(o);
}

static void inspect_unreadable_header(void **state)
{
	(void)state;
	char junk[] = "/tmp/unit_volume_docs_junk.XXXXXX";
	int fd = mkstemp(junk);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	struct wlog log = {0};
	struct volume_ctx ctx = {.log = &log, .udev = -1};
	struct werr e = {0};
	json_t *o = NULL;
	int rc = volume_inspect(&ctx, junk, &o, &e);
	unlink(junk);
	assert_true(rc < 0);
	assert_true(e.msg[0] != '\0');
	assert_non_null(o);
	assert_true(json_is_false(json_object_get(o, "valid")));
	assert_string_equal(str(o, "error"), e.msg);
	json_decref(o);

	o = (json_t *)1;
	assert_true(volume_inspect(&ctx, "/nonexistent/dev", &o, &e) < 0);
	assert_null(o);
	assert_non_null(strstr(e.msg, "/nonexistent/dev"));
}

static void status_document(void **state)
{
	(void)state;
	struct volume_status st[2] = {0};
	snprintf(st[0].name, sizeof(st[0].name), "db");
	snprintf(st[0].luks_uuid, sizeof(st[0].luks_uuid), "0b5e0a4c-3f1e-4d7b-9c55-2a7d3f1e4c10");
	snprintf(st[0].key_ref, sizeof(st[0].key_ref), ":64:logon:wrapd:x");
	st[0].size_bytes = 1 << 20;
	st[0].key_version = 2;
	st[0].open_count = 1;
	snprintf(st[1].name, sizeof(st[1].name), "logs");
	st[1].key_version = -1;
	snprintf(st[1].header_note, sizeof(st[1].header_note), "backing device not found");
	json_t *a = volume_status_json(st, 2);
	assert_int_equal(json_array_size(a), 2);
	json_t *o = json_array_get(a, 0);
	assert_string_equal(str(o, "name"), "db");
	assert_string_equal(str(o, "uuid"), st[0].luks_uuid);
	assert_int_equal(json_integer_value(json_object_get(o, "size")), 1 << 20);
	assert_int_equal(json_integer_value(json_object_get(o, "key_version")), 2);
	assert_null(json_object_get(o, "header_note"));
	assert_null(json_object_get(o, "key_ref"));
	o = json_array_get(a, 1);
	assert_true(json_is_null(json_object_get(o, "key_version")));
	assert_string_equal(str(o, "header_note"), "backing device not found");
	json_decref(a);
	a = volume_status_json(NULL, 0);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(inspect_wrapd_volume, make_image, drop_image),
		cmocka_unit_test(inspect_unreadable_header),
		cmocka_unit_test(status_document),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
