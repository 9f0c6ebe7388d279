/* format module: build, write, read, validate, corrupt, recover. */
#include "tests/lib/unit.h"

#include "format/internal.h"

#include <fcntl.h>
#include <sys/stat.h>

static char tmpdir[] = "/tmp/wrapd-test-format-XXXXXX";

static void random_vk(struct secbuf *vk)
{
	assert_int_equal(secbuf_alloc(vk, WRAPD_VK_BYTES), 0);
	assert_int_equal(luks2_random(vk->data, WRAPD_VK_BYTES), 0);
	vk->len = WRAPD_VK_BYTES;
}

static struct luks2_hdr *new_hdr(struct secbuf *vk)
{
	struct luks2_hdr *h = NULL;
	struct werr e = {0};
	struct luks2_new_params p = {.label = "test-label", .subsystem = "sub"};
	random_vk(vk);
	assert_int_equal(luks2_hdr_new(&p, vk, &h, &e), 0);
	return h;
}

static void set_token(struct luks2_hdr *h)
{
	struct werr e = {0};
	struct wrapd_token t = {.vault_addr = "http://127.0.0.1:8200", .vault_namespace = "",
				.vault_mount = "transit", .vault_key = "wrapd", .key_version = 3,
				.ciphertext = "vault:v3:abcd", .context = "d3JhcGQ="};
	assert_int_equal(wrapd_token_set(h, &t, &e), 0);
}

/* Serialises h into a fresh 2*hdr_size buffer. */
static uint8_t *image_of(struct luks2_hdr *h, size_t *len)
{
	struct werr e = {0};
	*len = 2 * (size_t)h->hdr_size;
	uint8_t *buf = malloc(*len);
	assert_non_null(buf);
	assert_int_equal(luks2_hdr_serialize(h, buf, *len, &e), 0);
	return buf;
}

/* Puts `json` into the JSON area of both copies and fixes the checksums. */
static void forge_json(uint8_t *buf, size_t hs, const char *json)
{
	for (int i = 0; i < 2; i++) {
		uint8_t *p = buf + (size_t)i * hs;
		memset(p + LUKS2_BIN_SIZE, 0, hs - LUKS2_BIN_SIZE);
		memcpy(p + LUKS2_BIN_SIZE, json, strlen(json));
		assert_int_equal(luks2_csum_compute("sha256", p, hs, p + OFF_CSUM), 0);
	}
}

static void fix_csums(uint8_t *buf, size_t hs)
{
	for (int i = 0; i < 2; i++)
		assert_int_equal(luks2_csum_compute("sha256", buf + (size_t)i * hs, hs,
						    buf + (size_t)i * hs + OFF_CSUM),
				 0);
}

/* Parses an image whose JSON tree was modified by `edit`; returns rc and msg. */
static int parse_edited(void (*edit)(json_t *root), char *msg, size_t n)
{
	struct secbuf vk;
	struct luks2_hdr *h = new_hdr(&vk);
	set_token(h);
	json_t *root = json_deep_copy(h->json);
	edit(root);
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	size_t len;
	uint8_t *buf = image_of(h, &len);
	forge_json(buf, h->hdr_size, text);
	free(text);
	struct luks2_hdr *out = NULL;
	struct werr e = {0};
	int rc = luks2_hdr_parse(buf, len, "img", &out, NULL, &e);
	snprintf(msg, n, "%s", e.msg);
	luks2_hdr_free(out);
	luks2_hdr_free(h);
	free(buf);
	secbuf_free(&vk);
	return rc;
}

static void test_new_and_verify(void **state)
{
	(void)state;
	struct secbuf vk, other;
	struct werr e = {0};
	struct luks2_hdr *h = new_hdr(&vk);
	assert_int_equal(h->data_offset, 16u << 20);
	assert_true(h->data_dynamic);
	assert_int_equal(h->sector_size, 4096);
	assert_int_equal(h->hdr_size, 16384);
	assert_int_equal(h->keyslots_size, (16u << 20) - 32768);
	assert_string_equal(h->cipher, "aes-xts-plain64");
	assert_int_equal(h->key_size, 64);
	assert_true(luks2_uuid_valid(h->uuid));
	assert_int_equal(luks2_vk_verify(h, &vk, &e), 0);
	random_vk(&other);
	assert_int_equal(luks2_vk_verify(h, &other, &e), -EPERM);
	assert_non_null(strstr(e.msg, "does not match"));
	/* length check: a prefix of the right key must not pass */
	other.len = 32;
	memcpy(other.data, vk.data, 32);
	assert_int_equal(luks2_vk_verify(h, &other, &e), -EPERM);
	assert_non_null(strstr(e.msg, "32 bytes"));
	secbuf_free(&other);
	/* bad parameters */
	struct luks2_hdr *x = NULL;
	struct luks2_new_params p = {.sector_size = 3000};
	assert_int_equal(luks2_hdr_new(&p, &vk, &x, &e), -EINVAL);
	p = (struct luks2_new_params){.data_offset = 16384};
	assert_int_equal(luks2_hdr_new(&p, &vk, &x, &e), -EINVAL);
	p = (struct luks2_new_params){.label = "0123456789012345678901234567890123456789012345678"};
	assert_int_equal(luks2_hdr_new(&p, &vk, &x, &e), -EINVAL);
	luks2_hdr_free(h);
	secbuf_free(&vk);
}

static void test_token_roundtrip_and_preserve(void **state)
{
	(void)state;
	struct secbuf vk;
	struct werr e = {0};
	struct luks2_hdr *h = new_hdr(&vk);
	/* someone else's token and flags, added before ours */
	json_t *root = json_deep_copy(h->json);
	json_object_set_new(json_object_get(root, "tokens"), "0",
			    json_pack("{s:s, s:[], s:{s:i}}", "type", "other-tool", "keyslots", "blob",
				      "x", 1));
	json_object_set_new(json_object_get(root, "config"), "flags",
			    json_pack("[s, s]", "allow-discards", "future-flag"));
	assert_int_equal(luks2_hdr_replace_json(h, root, &e), 0);
	set_token(h);
	struct wrapd_token t;
	unsigned id;
	assert_int_equal(wrapd_token_get(h, &t, &id, &e), 0);
	assert_int_equal(id, 1);
	assert_string_equal(t.vault_mount, "transit");
	assert_string_equal(t.ciphertext, "vault:v3:abcd");
	assert_int_equal(t.key_version, 3);
	wrapd_token_free(&t);
	/* update keeps extra fields of our token */
	json_object_set_new(luks2_obj_get_id(json_object_get(h->json, "tokens"), 1), "extra",
			    json_string("kept"));
	struct wrapd_token t2 = {.vault_mount = "transit", .vault_key = "wrapd", .key_version = 4,
				 .ciphertext = "vault:v4:zz", .context = "d3JhcGQ="};
	assert_int_equal(wrapd_token_set(h, &t2, &e), 0);

	size_t len;
	uint8_t *buf = image_of(h, &len);
	struct luks2_hdr *b = NULL;
	assert_int_equal(luks2_hdr_parse(buf, len, "img", &b, NULL, &e), 0);
	json_t *tok = luks2_obj_get_id(json_object_get(b->json, "tokens"), 1);
	assert_string_equal(json_string_value(json_object_get(tok, "extra")), "kept");
	assert_int_equal(json_integer_value(json_object_get(tok, "key_version")), 4);
	json_t *other = luks2_obj_get_id(json_object_get(b->json, "tokens"), 0);
	assert_string_equal(json_string_value(json_object_get(other, "type")), "other-tool");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(other, "blob"), "x")), 1);
	assert_int_equal(json_array_size(json_object_get(json_object_get(b->json, "config"), "flags")), 2);
	assert_true(b->has_wrapd_token);
	assert_int_equal(wrapd_token_remove(b, &e), 0);
	assert_int_equal(wrapd_token_get(b, &t, NULL, &e), -ENOENT);
	/* malformed token */
	json_object_set_new(luks2_obj_get_id(json_object_get(h->json, "tokens"), 1), "key_version",
			    json_string("4"));
	assert_int_equal(wrapd_token_get(h, &t, NULL, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "key_version"));
	free(buf);
	luks2_hdr_free(b);
	luks2_hdr_free(h);
	secbuf_free(&vk);
}

static void test_requirements_and_conversion(void **state)
{
	(void)state;
	struct secbuf vk;
	struct werr e = {0};
	struct luks2_hdr *h = new_hdr(&vk);
	set_token(h);
	assert_int_equal(luks2_check_activatable(h, "dev", &e), 0);
	assert_int_equal(luks2_requirement_set(h, "req0", true, &e), -EINVAL);
	assert_int_equal(luks2_requirement_set(h, WRAPD_REQ_REENCRYPT, true, &e), 0);
	assert_true(h->req_wrapd_reencrypt);
	assert_int_equal(luks2_check_activatable(h, "dev", &e), -EPERM);
	assert_non_null(strstr(e.msg, "conversion"));
	assert_int_equal(luks2_check_writable(h, "dev", &e), 0);
	json_t *st = json_pack("{s:s, s:s}", "op", "encrypt", "pos", "4096");
	assert_int_equal(luks2_conversion_set(h, st, &e), 0);
	json_decref(st);
	assert_true(h->has_conversion_state);
	json_t *got = NULL;
	assert_int_equal(luks2_conversion_get(h, &got, &e), 0);
	assert_string_equal(json_string_value(json_object_get(got, "pos")), "4096");
	json_decref(got);
	assert_int_equal(luks2_conversion_set(h, NULL, &e), 0);
	assert_int_equal(luks2_conversion_get(h, &got, &e), -ENOENT);
	assert_int_equal(luks2_requirement_set(h, WRAPD_REQ_REENCRYPT, false, &e), 0);
	assert_null(json_object_get(json_object_get(h->json, "config"), "requirements"));
	assert_int_equal(luks2_check_activatable(h, "dev", &e), 0);
	luks2_hdr_free(h);
	secbuf_free(&vk);
}

static void add_req0(json_t *root)
{
	json_object_set_new(json_object_get(root, "config"), "requirements",
			    json_pack("{s:[s]}", "mandatory", "req0"));
}
static void add_cs_reencrypt(json_t *root)
{
	json_object_set_new(json_object_get(root, "config"), "requirements",
			    json_pack("{s:[s]}", "mandatory", "online-reencrypt-v2"));
}

static void check_refused(void (*edit)(json_t *), const char *needle)
{
	struct secbuf vk;
	struct luks2_hdr *h = new_hdr(&vk);
	json_t *root = json_deep_copy(h->json);
	edit(root);
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	size_t len;
	uint8_t *buf = image_of(h, &len);
	forge_json(buf, h->hdr_size, text);
	free(text);
	struct luks2_hdr *r = NULL;
	struct werr e = {0};
	/* readable and showable ... */
	assert_int_equal(luks2_hdr_parse(buf, len, "img", &r, NULL, &e), 0);
	/* ... but never activated nor modified */
	assert_int_equal(luks2_check_activatable(r, "img", &e), -EPERM);
	assert_non_null(strstr(e.msg, needle));
	assert_int_equal(luks2_check_writable(r, "img", &e), -EPERM);
	char p[] = "/tmp/wrapd-test-format-w-XXXXXX";
	int fd = mkstemp(p);
	assert_true(fd >= 0);
	assert_int_equal(luks2_hdr_write(fd, r, "img", &e), -EPERM);
	close(fd);
	unlink(p);
	luks2_hdr_free(r);
	luks2_hdr_free(h);
	free(buf);
	secbuf_free(&vk);
}

static void test_unknown_requirement(void **state)
{
	(void)state;
	check_refused(add_req0, "unknown mandatory LUKS2 requirement \"req0\"");
	check_refused(add_cs_reencrypt, "cryptsetup reencryption");
}

static void test_segments_generic(void **state)
{
	(void)state;
	struct secbuf vk, vk2;
	struct werr e = {0};
	struct luks2_hdr *h = new_hdr(&vk);
	random_vk(&vk2);
	unsigned d2;
	assert_int_equal(luks2_digest_add(h, &vk2, 0, &d2, &e), 0);
	assert_int_equal(d2, 1);
	/* mid-rekey layout: new key up to 1 GiB, old key after */
	struct luks2_segment s[2] = {
		{.type = "crypt", .offset = 16u << 20, .size = 1u << 30, .encryption = "aes-xts-plain64",
		 .sector_size = 4096, .digest = 1},
		{.type = "crypt", .offset = (16u << 20) + (1u << 30), .dynamic = true,
		 .iv_tweak = (1u << 30) / 512, .encryption = "aes-xts-plain64", .sector_size = 4096,
		 .digest = 0},
	};
	assert_int_equal(luks2_segments_set(h, s, 2, &e), 0);
	assert_int_equal(h->n_segments, 2);
	assert_int_equal(luks2_digest_for_segment(h, 0), 1);
	assert_int_equal(luks2_digest_for_segment(h, 1), 0);
	assert_int_equal(luks2_digest_verify(h, 1, &vk2, &e), 0);
	struct luks2_segment *g;
	size_t n;
	assert_int_equal(luks2_segments_get(h, &g, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(g[1].iv_tweak, (1u << 30) / 512);
	assert_true(g[1].dynamic);
	luks2_segments_free(g, n);
	/* plaintext tail during encryption: a linear segment needs no digest */
	s[1] = (struct luks2_segment){.type = "linear", .offset = (16u << 20) + (1u << 30),
				      .dynamic = true, .digest = -1};
	assert_int_equal(luks2_segments_set(h, s, 2, &e), 0);
	assert_int_equal(luks2_digest_remove(h, 0, &e), 0);
	/* overlapping segments are refused and leave the header unchanged */
	s[1].offset = 16u << 20;
	assert_int_equal(luks2_segments_set(h, s, 2, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "overlapping"));
	assert_int_equal(h->n_segments, 2);
	/* a crypt segment without a digest is refused */
	s[1] = (struct luks2_segment){.type = "crypt", .offset = (16u << 20) + (1u << 30),
				      .dynamic = true, .encryption = "aes-xts-plain64",
				      .sector_size = 4096, .digest = -1};
	assert_int_equal(luks2_segments_set(h, s, 2, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not covered by any digest"));
	luks2_hdr_free(h);
	secbuf_free(&vk);
	secbuf_free(&vk2);
}

/* ---- corruption: each with its own message ----------------------------- */

static void e_missing_digests(json_t *r) { json_object_del(r, "digests"); }
static void e_json_size(json_t *r)
{
	json_object_set_new(json_object_get(r, "config"), "json_size", json_string("28672"));
}
static void e_uncovered(json_t *r)
{
	json_object_set_new(luks2_obj_get_id(json_object_get(r, "digests"), 0), "segments",
			    json_array());
}
static void e_offset_range(json_t *r)
{
	json_object_set_new(luks2_obj_get_id(json_object_get(r, "segments"), 0), "offset",
			    json_string("99999999999999999999999"));
}
static void e_sector_range(json_t *r)
{
	json_object_set_new(luks2_obj_get_id(json_object_get(r, "segments"), 0), "sector_size",
			    json_integer(8192));
}
static void e_iter_range(json_t *r)
{
	json_object_set_new(luks2_obj_get_id(json_object_get(r, "digests"), 0), "iterations",
			    json_integer(-1));
}
static void add_keyslot(json_t *r, const char *id, const char *off, const char *size)
{
	json_object_set_new(json_object_get(r, "keyslots"), id,
			    json_pack("{s:s, s:i, s:{s:s, s:s, s:s}}", "type", "luks2", "key_size", 64,
				      "area", "type", "raw", "offset", off, "size", size));
}
static void e_overlap_keyslots(json_t *r)
{
	add_keyslot(r, "0", "32768", "258048");
	add_keyslot(r, "1", "131072", "258048");
}
static void e_overlap_metadata(json_t *r) { add_keyslot(r, "0", "16384", "4096"); }
static void e_overlap_data(json_t *r)
{
	json_object_set_new(luks2_obj_get_id(json_object_get(r, "segments"), 0), "offset",
			    json_string("1048576"));
}
static void e_keyslots_size(json_t *r)
{
	json_object_set_new(json_object_get(r, "config"), "keyslots_size", json_string("1000"));
}
static void e_token_type(json_t *r)
{
	json_object_set_new(json_object_get(r, "tokens"), "5",
			    json_pack("{s:s, s:[]}", "type", "bad type!", "keyslots"));
}
static void e_token_id(json_t *r)
{
	json_object_set_new(json_object_get(r, "tokens"), "32",
			    json_pack("{s:s, s:[]}", "type", "x", "keyslots"));
}
static void e_two_dynamic(json_t *r)
{
	json_t *segs = json_object_get(r, "segments");
	json_t *s1 = json_deep_copy(luks2_obj_get_id(segs, 0));
	json_object_set_new(s1, "offset", json_string("33554432"));
	json_object_set_new(segs, "1", s1);
	json_array_append_new(json_object_get(luks2_obj_get_id(json_object_get(r, "digests"), 0), "segments"),
			      json_string("1"));
}

static void test_corruption_json_rules(void **state)
{
	(void)state;
	struct {
		void (*edit)(json_t *);
		const char *needle;
	} cases[] = {
		{e_missing_digests, "missing top-level object \"digests\""},
		{e_json_size, "config.json_size 28672 does not equal hdr_size - 4096 (12288)"},
		{e_uncovered, "crypt segment 0 is not covered by any digest"},
		{e_offset_range, "\"offset\" value \"99999999999999999999999\" is out of range"},
		{e_sector_range, "\"sector_size\" 8192 is out of range"},
		{e_iter_range, "\"iterations\" -1 is out of range"},
		{e_overlap_keyslots, "overlapping areas: keyslot 1 area"},
		{e_overlap_metadata, "overlaps the metadata"},
		{e_overlap_data, "overlapping areas: data segment 0 at 1048576"},
		{e_keyslots_size, "config.keyslots_size 1000 is out of range"},
		{e_token_type, "token 5: type \"bad type!\""},
		{e_token_id, "token id \"32\" is out of range"},
		{e_two_dynamic, "is dynamic but is not the last segment"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char msg[WERR_MSG_MAX];
		int rc = parse_edited(cases[i].edit, msg, sizeof(msg));
		if (rc != -EINVAL || !strstr(msg, cases[i].needle))
			fail_msg("case %zu: rc %d, message \"%s\", wanted \"%s\"", i, rc, msg,
				 cases[i].needle);
	}
}

/* ---- hostile wrapd headers (issue 10, items 2, 3 and 9) ----------------- */

static json_t *seg0(json_t *r) { return luks2_obj_get_id(json_object_get(r, "segments"), 0); }
static json_t *dig0(json_t *r) { return luks2_obj_get_id(json_object_get(r, "digests"), 0); }
static json_t *wtok(json_t *r)
{
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(r, "tokens"), k, v) if (!strcmp(json_string_value(json_object_get(v, "type")), "wrapd-vault")) return v;
	return NULL;
}
static void h_cipher_null(json_t *r)
{
	json_object_set_new(seg0(r), "encryption", json_string("cipher_null-ecb"));
}
static void h_cipher_cbc(json_t *r)
{
	json_object_set_new(seg0(r), "encryption", json_string("aes-cbc-essiv:sha256"));
}
static void h_short_key(json_t *r)
{
	json_object_set_new(json_object_get(r, "keyslots"), "0",
			    json_pack("{s:s, s:i, s:{s:s, s:s, s:s}}", "type", "luks2", "key_size", 32,
				      "area", "type", "raw", "offset", "32768", "size", "4096"));
	json_array_append_new(json_object_get(dig0(r), "keyslots"), json_string("0"));
}
static void h_integrity(json_t *r)
{
	json_object_set_new(seg0(r), "integrity",
			    json_pack("{s:s, s:s, s:s}", "type", "hmac(sha256)", "journal_encryption",
				      "none", "journal_integrity", "none"));
}
static void h_key_dotdot(json_t *r)
{
	json_object_set_new(wtok(r), "vault_key", json_string("../../sys/seal"));
}
static void h_key_slash(json_t *r) { json_object_set_new(wtok(r), "vault_key", json_string("a/b")); }
static void h_key_escape(json_t *r)
{
	json_object_set_new(wtok(r), "vault_key", json_string("k\x1b[2J"));
}
static void h_mount_dotdot(json_t *r)
{
	json_object_set_new(wtok(r), "vault_mount", json_string("transit/../sys"));
}
static void h_mount_abs(json_t *r)
{
	json_object_set_new(wtok(r), "vault_mount", json_string("/sys"));
}
static void h_new_token_dotdot(json_t *r)
{
	json_t *st = json_pack("{s:s, s:{s:s, s:s}}", "op", "rekey", "new_token", "vault_mount",
			       "transit", "vault_key", "../../sys/seal");
	json_object_set_new(json_object_get(r, "tokens"), "7",
			    json_pack("{s:s, s:[], s:o}", "type", "wrapd-conversion", "keyslots",
				      "state", st));
}
static void h_iter_max(json_t *r)
{
	json_object_set_new(dig0(r), "iterations", json_integer(LUKS2_DIGEST_ITER_MAX + 1));
}
static void h_iter_int32(json_t *r)
{
	json_object_set_new(dig0(r), "iterations", json_integer(INT32_MAX));
}
static void h_many_refs(json_t *r)
{
	json_t *a = json_object_get(dig0(r), "segments");
	for (int i = 0; i < LUKS2_MAX_REFS; i++)
		json_array_append_new(a, json_string("0"));
}
static void h_conversion_only_null(json_t *r)
{
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(r, "tokens"), k, v)
		json_object_set_new(v, "type", json_string("wrapd-conversion"));
	h_cipher_null(r);
}

/* Accepted: a mount with inner '/', the iteration bound itself, and foreign
 * (non-wrapd) headers keep any cipher. */
static void h_mount_nested(json_t *r)
{
	json_object_set_new(wtok(r), "vault_mount", json_string("team-a/transit.v2"));
}
static void h_iter_at_max(json_t *r)
{
	json_object_set_new(dig0(r), "iterations", json_integer(LUKS2_DIGEST_ITER_MAX));
}
static void h_foreign_cbc(json_t *r)
{
	json_object_set_new(r, "tokens", json_object());
	h_cipher_cbc(r);
	h_short_key(r);
}

static void test_hostile_wrapd_header(void **state)
{
	(void)state;
	struct {
		void (*edit)(json_t *);
		const char *needle; /* NULL: must parse */
	} cases[] = {
		{h_cipher_null, "segment 0: cipher \"cipher_null-ecb\" is not allowed in a wrapd volume (only aes-xts-plain64 with a 512-bit key)"},
		{h_cipher_cbc, "cipher \"aes-cbc-essiv:sha256\" is not allowed in a wrapd volume"},
		{h_short_key, "segment 0: a keyslot gives it a key that is not 512 bits"},
		{h_integrity, "segment 0: dm-integrity is not allowed in a wrapd volume"},
		{h_conversion_only_null, "cipher \"cipher_null-ecb\" is not allowed in a wrapd volume"},
		{h_key_dotdot, "vault_key \"../../sys/seal\" is not a Transit key name"},
		{h_key_slash, "vault_key \"a/b\" is not a Transit key name"},
		{h_key_escape, "vault_key \"k?[2J\" is not a Transit key name"},
		{h_mount_dotdot, "vault_mount \"transit/../sys\" is not a Transit mount path"},
		{h_mount_abs, "vault_mount \"/sys\" is not a Transit mount path"},
		{h_new_token_dotdot, "token 7 (wrapd-conversion new_token): vault_key \"../../sys/seal\" is not a Transit key name"},
		{h_iter_max, "\"iterations\" 2000001 is out of range (1..2000000)"},
		{h_iter_int32, "\"iterations\" 2147483647 is out of range (1..2000000)"},
		{h_many_refs, "digest 0 segments has 33 entries; at most 32"},
		{h_mount_nested, NULL},
		{h_iter_at_max, NULL},
		{h_foreign_cbc, NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char msg[WERR_MSG_MAX];
		int rc = parse_edited(cases[i].edit, msg, sizeof(msg));
		if (!cases[i].needle) {
			if (rc != 0)
				fail_msg("case %zu: rc %d, message \"%s\", wanted success", i, rc, msg);
			continue;
		}
		if (rc != -EINVAL || !strstr(msg, cases[i].needle))
			fail_msg("case %zu: rc %d, message \"%s\", wanted \"%s\"", i, rc, msg,
				 cases[i].needle);
		if (strchr(msg, '\x1b'))
			fail_msg("case %zu: the message carries an escape byte", i);
	}
}

/* A token edited in memory after the header was read is refused by
 * wrapd_token_get too, and wrapd_token_set refuses such values. */
static void test_token_paths_get_set(void **state)
{
	(void)state;
	struct secbuf vk;
	struct werr e = {0};
	struct luks2_hdr *h = new_hdr(&vk);
	set_token(h);
	h_key_dotdot(h->json);
	struct wrapd_token t;
	assert_int_equal(wrapd_token_get(h, &t, NULL, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "vault_key \"../../sys/seal\" is not a Transit key name"));
	luks2_hdr_free(h);
	h = new_hdr(&vk);
	struct wrapd_token bad = {.vault_addr = "", .vault_namespace = "", .vault_mount = "transit",
				  .vault_key = "..", .key_version = 1, .ciphertext = "vault:v1:x",
				  .context = "d3JhcGQ="};
	assert_int_equal(wrapd_token_set(h, &bad, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "vault_key \"..\" is not a Transit key name"));
	assert_false(h->has_wrapd_token);
	luks2_hdr_free(h);
	secbuf_free(&vk);
}

static void test_uuid_canon(void **state)
{
	(void)state;
	char c[37];
	assert_int_equal(luks2_uuid_canon("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", c), 0);
	assert_string_equal(c, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
	assert_int_equal(luks2_uuid_canon("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", NULL), 0);
	assert_int_equal(luks2_uuid_canon("0f1e2d3c4b5a69788796a5b4c3d2e1f0", c), -EINVAL);
	assert_int_equal(luks2_uuid_canon("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg", c), -EINVAL);
	assert_int_equal(luks2_uuid_canon(NULL, c), -EINVAL);
	assert_true(luks2_uuid_valid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
	assert_false(luks2_uuid_valid("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"));
}

/* A valid image to damage byte-wise. */
static uint8_t *valid_image(size_t *len, size_t *hs, char uuid[41])
{
	struct secbuf vk;
	struct luks2_hdr *h = new_hdr(&vk);
	set_token(h);
	h->seqid = 5;
	uint8_t *buf = image_of(h, len);
	*hs = h->hdr_size;
	snprintf(uuid, 41, "%s", h->uuid);
	luks2_hdr_free(h);
	secbuf_free(&vk);
	return buf;
}

static int parse_msg(uint8_t *buf, size_t len, struct luks2_hdr **out, char *msg)
{
	struct werr e = {0};
	int rc = luks2_hdr_parse(buf, len, "img", out, NULL, &e);
	snprintf(msg, WERR_MSG_MAX, "%s", e.msg);
	return rc;
}

static void test_corruption_bytes(void **state)
{
	(void)state;
	size_t len, hs;
	char uuid[41], msg[WERR_MSG_MAX];
	struct luks2_hdr *h = NULL;
	uint8_t *buf;

	/* checksum bad in the primary: the secondary is used */
	buf = valid_image(&len, &hs, uuid);
	buf[LUKS2_BIN_SIZE + 5] ^= 1;
	assert_int_equal(parse_msg(buf, len, &h, msg), 0);
	assert_int_equal(h->used_copy, 1);
	assert_int_equal(h->copy[0].status, LUKS2_COPY_BAD_CSUM);
	assert_non_null(strstr(h->copy[0].why, "checksum mismatch"));
	luks2_hdr_free(h);
	/* and in both */
	buf[hs + LUKS2_BIN_SIZE + 5] ^= 1;
	assert_int_equal(parse_msg(buf, len, &h, msg), -EINVAL);
	assert_non_null(strstr(msg, "primary at 0: checksum mismatch"));
	assert_non_null(strstr(msg, "secondary at 16384: checksum mismatch"));
	/* only in the secondary */
	buf[LUKS2_BIN_SIZE + 5] ^= 1;
	assert_int_equal(parse_msg(buf, len, &h, msg), 0);
	assert_int_equal(h->used_copy, 0);
	assert_int_equal(h->copy[1].status, LUKS2_COPY_BAD_CSUM);
	luks2_hdr_free(h);
	free(buf);

	/* non-NUL bytes after the JSON */
	buf = valid_image(&len, &hs, uuid);
	buf[hs - 10] = 'x';
	buf[2 * hs - 10] = 'x';
	fix_csums(buf, hs);
	assert_int_equal(parse_msg(buf, len, &h, msg), -EINVAL);
	assert_non_null(strstr(msg, "non-NUL byte 0x78 after the JSON text"));
	free(buf);

	/* bad JSON */
	buf = valid_image(&len, &hs, uuid);
	forge_json(buf, hs, "{\"keyslots\":{},\"tokens\":{,}");
	assert_int_equal(parse_msg(buf, len, &h, msg), -EINVAL);
	assert_non_null(strstr(msg, "bad JSON"));
	free(buf);

	/* trailing whitespace */
	buf = valid_image(&len, &hs, uuid);
	forge_json(buf, hs, "{\"keyslots\":{}} ");
	assert_int_equal(parse_msg(buf, len, &h, msg), -EINVAL);
	assert_non_null(strstr(msg, "does not end with '}'"));
	free(buf);

	/* duplicate keys */
	buf = valid_image(&len, &hs, uuid);
	forge_json(buf, hs, "{\"keyslots\":{},\"keyslots\":{}}");
	assert_int_equal(parse_msg(buf, len, &h, msg), -EINVAL);
	assert_non_null(strstr(msg, "duplicate"));
	free(buf);

	/* disallowed hdr_size */
	buf = valid_image(&len, &hs, uuid);
	be64_store(buf + OFF_HDR_SIZE, 20480);
	be64_store(buf + hs + OFF_HDR_SIZE, 20480);
	assert_int_equal(parse_msg(buf, len, &h, msg), -EINVAL);
	assert_non_null(strstr(msg, "hdr_size 20480 is not an allowed metadata size"));
	free(buf);

	/* hdr_offset mismatch */
	buf = valid_image(&len, &hs, uuid);
	be64_store(buf + OFF_HDR_OFFSET, 512);
	fix_csums(buf, hs);
	assert_int_equal(parse_msg(buf, len, &h, msg), 0);
	assert_int_equal(h->copy[0].status, LUKS2_COPY_INVALID);
	assert_non_null(strstr(h->copy[0].why, "hdr_offset 512"));
	luks2_hdr_free(h);
	free(buf);

	/* no magic at all */
	buf = calloc(1, 65536);
	assert_int_equal(parse_msg(buf, 65536, &h, msg), -ENODEV);
	assert_non_null(strstr(msg, "not a LUKS2 device"));
	free(buf);

	/* truncated */
	buf = valid_image(&len, &hs, uuid);
	assert_int_equal(parse_msg(buf, hs + 100, &h, msg), 0);
	assert_int_equal(h->copy[1].status, LUKS2_COPY_IO);
	luks2_hdr_free(h);
	assert_int_equal(parse_msg(buf, 100, &h, msg), -ENODEV);
	free(buf);

	/* stale secondary: higher seqid in the secondary wins */
	buf = valid_image(&len, &hs, uuid);
	be64_store(buf + hs + OFF_SEQID, 6);
	fix_csums(buf, hs);
	assert_int_equal(parse_msg(buf, len, &h, msg), 0);
	assert_int_equal(h->used_copy, 1);
	assert_int_equal(h->seqid, 6);
	assert_int_equal(h->copy[0].status, LUKS2_COPY_STALE);
	luks2_hdr_free(h);
	free(buf);
}

static void test_secondary_scan(void **state)
{
	(void)state;
	struct secbuf vk;
	struct werr e = {0};
	struct luks2_hdr *h = NULL;
	struct luks2_new_params p = {.hdr_size = 65536};
	random_vk(&vk);
	assert_int_equal(luks2_hdr_new(&p, &vk, &h, &e), 0);
	size_t len;
	uint8_t *buf = image_of(h, &len);
	memset(buf, 0, 4096); /* primary binary header gone */
	struct luks2_hdr *r = NULL;
	assert_int_equal(luks2_hdr_parse(buf, len, "img", &r, NULL, &e), 0);
	assert_int_equal(r->used_copy, 1);
	assert_int_equal(r->copy[1].offset, 65536);
	assert_int_equal(r->copy[0].status, LUKS2_COPY_MISSING);
	assert_string_equal(r->uuid, h->uuid);
	luks2_hdr_free(r);
	luks2_hdr_free(h);
	free(buf);
	secbuf_free(&vk);
}

static void test_file_write_recovery(void **state)
{
	(void)state;
	struct secbuf vk;
	struct werr e = {0};
	char path[256];
	snprintf(path, sizeof(path), "%s/img", tmpdir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	struct luks2_lock lk = LUKS2_LOCK_INIT;
	assert_int_equal(luks2_lock(fd, path, true, &lk, &e), 0);
	struct luks2_hdr *h = new_hdr(&vk);
	set_token(h);
	assert_int_equal(luks2_hdr_write(fd, h, path, &e), 0);
	assert_int_equal(h->seqid, 1);
	assert_int_equal(luks2_hdr_write(fd, h, path, &e), 0);
	assert_int_equal(h->seqid, 2);

	/* damage the primary's JSON: read uses the secondary */
	uint8_t junk = 0x55;
	assert_int_equal(write_full_at(fd, &junk, 1, 5000), 0);
	struct luks2_hdr *r = NULL;
	assert_int_equal(luks2_hdr_read(fd, path, &r, NULL, &e), 0);
	assert_int_equal(r->used_copy, 1);
	assert_int_equal(r->copy[0].status, LUKS2_COPY_BAD_CSUM);
	assert_int_equal(luks2_vk_verify(r, &vk, &e), 0);
	/* the next write repairs it */
	assert_int_equal(luks2_hdr_write(fd, r, path, &e), 0);
	luks2_hdr_free(r);
	r = NULL;
	assert_int_equal(luks2_hdr_read(fd, path, &r, NULL, &e), 0);
	assert_int_equal(r->used_copy, 0);
	assert_int_equal(r->copy[0].status, LUKS2_COPY_OK);
	assert_int_equal(r->copy[1].status, LUKS2_COPY_OK);
	assert_int_equal(r->seqid, 3);
	assert_true(r->has_wrapd_token);
	luks2_hdr_free(r);
	luks2_unlock(&lk);
	assert_int_equal(lk.fd, -1);
	luks2_hdr_free(h);
	close(fd);
	unlink(path);
	secbuf_free(&vk);
}

/* cryptsetup must tolerate what the engine stores: the wrapd-reencrypt
 * requirement and the wrapd-conversion token. */
static void test_cryptsetup_tolerates_conversion_state(void **state)
{
	(void)state;
	struct secbuf vk;
	struct werr e = {0};
	char path[256], cmd[600], out[256];
	snprintf(path, sizeof(path), "%s/conv", tmpdir);
	snprintf(out, sizeof(out), "%s/conv.dump", tmpdir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 20 << 20), 0);
	struct luks2_hdr *h = new_hdr(&vk);
	set_token(h);
	assert_int_equal(luks2_requirement_set(h, WRAPD_REQ_REENCRYPT, true, &e), 0);
	json_t *st = json_pack("{s:s}", "op", "encrypt");
	assert_int_equal(luks2_conversion_set(h, st, &e), 0);
	json_decref(st);
	assert_int_equal(luks2_hdr_write(fd, h, path, &e), 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "cryptsetup luksDump '%s' > '%s' 2>&1", path, out);
	int rc = system(cmd);
	if (rc != 0) {
		char *txt = NULL;
		if (read_file(out, 1 << 20, &txt, NULL) < 0)
			txt = NULL;
		fail_msg("cryptsetup luksDump failed (exit %d; is cryptsetup-bin installed?): %s", rc,
			 txt ? txt : "");
	}
	char *txt = NULL;
	assert_int_equal(read_file(out, 1 << 20, &txt, NULL), 0);
	assert_non_null(strstr(txt, "wrapd-reencrypt"));
	assert_non_null(strstr(txt, "wrapd-conversion"));
	assert_non_null(strstr(txt, "wrapd-vault"));
	free(txt);
	unlink(path);
	unlink(out);
	luks2_hdr_free(h);
	secbuf_free(&vk);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_verify),
		cmocka_unit_test(test_token_roundtrip_and_preserve),
		cmocka_unit_test(test_requirements_and_conversion),
		cmocka_unit_test(test_unknown_requirement),
		cmocka_unit_test(test_segments_generic),
		cmocka_unit_test(test_corruption_json_rules),
		cmocka_unit_test(test_hostile_wrapd_header),
		cmocka_unit_test(test_token_paths_get_set),
		cmocka_unit_test(test_uuid_canon),
		cmocka_unit_test(test_corruption_bytes),
		cmocka_unit_test(test_secondary_scan),
		cmocka_unit_test(test_file_write_recovery),
		cmocka_unit_test(test_cryptsetup_tolerates_conversion_state),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
