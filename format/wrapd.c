/*
 * Building wrapd headers and the parts of the header wrapd owns: the VK
 * digest, generic segments, the wrapd-vault token, requirements and the
 * conversion state. Every change is made on a copy of the JSON tree,
 * validated, and only then swapped in.
 */
#include "format/internal.h"

#include <ctype.h>
#include <openssl/evp.h>

/* ---- uuid -------------------------------------------------------------- */

int luks2_uuid_generate(char out[37])
{
	uint8_t r[16];
	if (luks2_random(r, sizeof(r)) < 0)
		return -EIO;
	r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
	r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
		 r[15]);
	return 0;
}

int luks2_uuid_canon(const char *s, char out[37])
{
	char c[37];
	if (!s || strlen(s) != 36)
		return -EINVAL;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
		} else if (!isxdigit((unsigned char)s[i])) {
			return -EINVAL;
		}
		c[i] = (char)tolower((unsigned char)s[i]);
	}
	c[36] = '\0';
	if (out)
		memcpy(out, c, sizeof(c));
	return 0;
}

bool luks2_uuid_valid(const char *s)
{
	char c[37];
	return luks2_uuid_canon(s, c) == 0 && !strcmp(c, s);
}

/* ---- digest ------------------------------------------------------------ */

static const EVP_MD *digest_md(const char *hash)
{
	if (!strcmp(hash, "sha256"))
		return EVP_sha256();
	if (!strcmp(hash, "sha512"))
		return EVP_sha512();
	if (!strcmp(hash, "sha1"))
		return EVP_sha1();
	return NULL;
}

static int pbkdf2(const char *hash, const struct secbuf *vk, const uint8_t *salt, size_t saltlen,
		  uint32_t iter, uint8_t *out, size_t outlen)
{
	const EVP_MD *md = digest_md(hash);
	if (!md || iter > INT32_MAX)
		return -EINVAL;
	return PKCS5_PBKDF2_HMAC((const char *)vk->data, (int)vk->len, salt, (int)saltlen,
				 (int)iter, md, (int)outlen, out) == 1
		       ? 0
		       : -EIO;
}

static json_t *make_digest(const struct secbuf *vk, uint32_t iterations, struct werr *err)
{
	uint8_t salt[32], dig[32];
	if (luks2_random(salt, sizeof(salt)) < 0) {
		werr_set(err, -EIO, "cannot get random bytes for the digest salt");
		return NULL;
	}
	if (pbkdf2("sha256", vk, salt, sizeof(salt), iterations, dig, sizeof(dig)) < 0) {
		werr_set(err, -EIO, "pbkdf2-sha256 failed");
		return NULL;
	}
	_cleanup_free_ char *s64 = NULL, *d64 = NULL;
	if (b64_encode(salt, sizeof(salt), &s64) < 0 || b64_encode(dig, sizeof(dig), &d64) < 0) {
		werr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	json_t *d = json_pack("{s:s, s:[], s:[], s:s, s:I, s:s, s:s}", "type", "pbkdf2", "keyslots",
			      "segments", "hash", "sha256", "iterations", (json_int_t)iterations,
			      "salt", s64, "digest", d64);
	if (!d)
		werr_set(err, -ENOMEM, "out of memory");
	return d;
}

int luks2_digest_add(struct luks2_hdr *hdr, const struct secbuf *vk, uint32_t iterations,
		     unsigned *digest_id, struct werr *err)
{
	if (!vk || !vk->data || !vk->len)
		return werr_set(err, -EINVAL, "no volume key given");
	if (!iterations)
		iterations = WRAPD_DIGEST_ITERATIONS;
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *digests = json_object_get(root, "digests");
	int id = luks2_obj_free_id(digests, 1000);
	json_t *d = id < 0 ? NULL : make_digest(vk, iterations, err);
	if (!d) {
		json_decref(root);
		return id < 0 ? werr_set(err, -ENOSPC, "no free digest id") : -EIO;
	}
	luks2_obj_set_id(digests, (unsigned)id, d);
	int rc = luks2_hdr_replace_json(hdr, root, err);
	if (rc == 0 && digest_id)
		*digest_id = (unsigned)id;
	return rc;
}

int luks2_digest_remove(struct luks2_hdr *hdr, unsigned digest_id, struct werr *err)
{
	json_t *d = luks2_obj_get_id(json_object_get(hdr->json, "digests"), digest_id);
	if (!d)
		return werr_set(err, -ENOENT, "digest %u does not exist", digest_id);
	if (json_array_size(json_object_get(d, "segments")))
		return werr_set(err, -EBUSY, "digest %u still covers a segment", digest_id);
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	char k[16];
	snprintf(k, sizeof(k), "%u", digest_id);
	json_object_del(json_object_get(root, "digests"), k);
	return luks2_hdr_replace_json(hdr, root, err);
}

int luks2_digest_verify(const struct luks2_hdr *hdr, unsigned digest_id, const struct secbuf *vk,
			struct werr *err)
{
	json_t *d = luks2_obj_get_id(json_object_get(hdr->json, "digests"), digest_id);
	if (!d)
		return werr_set(err, -ENOENT, "digest %u does not exist", digest_id);
	unsigned want = hdr->key_size ? hdr->key_size : WRAPD_VK_BYTES;
	if (!vk || !vk->data || vk->len != want)
		return werr_set(err, -EPERM,
				"the volume key has %zu bytes but the header expects %u; it does not belong to this volume",
				vk && vk->data ? vk->len : (size_t)0, want);
	/* The tree was validated: types are known good. */
	const char *hash = json_string_value(json_object_get(d, "hash"));
	const char *s64 = json_string_value(json_object_get(d, "salt"));
	const char *d64 = json_string_value(json_object_get(d, "digest"));
	uint32_t iter = (uint32_t)json_integer_value(json_object_get(d, "iterations"));
	if (!hash || !s64 || !d64)
		return werr_set(err, -EINVAL, "digest %u is malformed", digest_id);
	uint8_t salt[256], stored[64], calc[64];
	size_t sl, dl;
	if (b64_decode(s64, strlen(s64), salt, sizeof(salt), &sl) < 0 ||
	    b64_decode(d64, strlen(d64), stored, sizeof(stored), &dl) < 0 || !dl)
		return werr_set(err, -EINVAL, "digest %u is malformed", digest_id);
	int rc = pbkdf2(hash, vk, salt, sl, iter, calc, dl);
	if (rc < 0)
		return werr_set(err, rc, "digest %u: pbkdf2-%s failed", digest_id, hash);
	int diff = ct_memcmp(calc, stored, dl);
	explicit_bzero(calc, sizeof(calc));
	if (diff)
		return werr_set(err, -EPERM,
				"the volume key does not match the header's digest %u: wrong key for this volume",
				digest_id);
	return 0;
}

int luks2_digest_for_segment(const struct luks2_hdr *hdr, unsigned segment_id)
{
	char k[16];
	snprintf(k, sizeof(k), "%u", segment_id);
	const char *dk;
	json_t *dv;
	json_object_foreach(json_object_get(hdr->json, "digests"), dk, dv)
	{
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(dv, "segments"), i, v) if (json_is_string(v) && !strcmp(json_string_value(v), k))
		{
			unsigned id;
			if (luks2_str_id(dk, 1000, &id) == 0)
				return (int)id;
		}
	}
	return -ENOENT;
}

static int first_crypt_segment(const struct luks2_hdr *hdr)
{
	int best = -ENOENT;
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(hdr->json, "segments"), k, v)
	{
		unsigned id;
		const char *t = json_string_value(json_object_get(v, "type"));
		if (t && !strcmp(t, "crypt") && luks2_str_id(k, 1000, &id) == 0 &&
		    (best < 0 || id < (unsigned)best))
			best = (int)id;
	}
	return best;
}

int luks2_vk_verify(const struct luks2_hdr *hdr, const struct secbuf *vk, struct werr *err)
{
	int seg = first_crypt_segment(hdr);
	if (seg < 0)
		return werr_set(err, -ENOENT, "the header has no crypt segment");
	int d = luks2_digest_for_segment(hdr, (unsigned)seg);
	if (d < 0)
		return werr_set(err, -ENOENT, "crypt segment %d is not covered by any digest", seg);
	return luks2_digest_verify(hdr, (unsigned)d, vk, err);
}

/* ---- new header -------------------------------------------------------- */

int luks2_hdr_new(const struct luks2_new_params *p, const struct secbuf *vk,
		  struct luks2_hdr **out, struct werr *err)
{
	uint32_t ss = p->sector_size ? p->sector_size : WRAPD_DEFAULT_SECTOR_SIZE;
	uint64_t off = p->data_offset ? p->data_offset : WRAPD_DEFAULT_DATA_OFFSET;
	uint64_t hs = p->hdr_size ? p->hdr_size : WRAPD_DEFAULT_HDR_SIZE;
	const char *cipher = p->cipher ? p->cipher : WRAPD_CIPHER;
	if (ss < 512 || ss > 4096 || (ss & (ss - 1)))
		return werr_set(err, -EINVAL,
				"sector size %u is not supported: use 512, 1024, 2048 or 4096", ss);
	if (!luks2_hdr_size_allowed(hs))
		return werr_set(err, -EINVAL,
				"metadata size %llu is not allowed: use 16 KiB ... 4 MiB, a power of two",
				(unsigned long long)hs);
	if (off % ss || off % 4096)
		return werr_set(err, -EINVAL,
				"data offset %llu is not a multiple of the sector size %u and of 4096",
				(unsigned long long)off, ss);
	uint64_t ks = p->keyslots_size;
	if (!ks) {
		if (off < 2 * hs)
			return werr_set(err, -EINVAL,
					"data offset %llu is smaller than the two metadata copies (%llu bytes)",
					(unsigned long long)off, (unsigned long long)(2 * hs));
		ks = off - 2 * hs;
		if (ks > LUKS2_KEYSLOTS_MAX)
			ks = LUKS2_KEYSLOTS_MAX;
		ks -= ks % 4096;
	}
	if (2 * hs + ks > off)
		return werr_set(err, -EINVAL,
				"data offset %llu leaves no room for the metadata and keyslots area (%llu bytes)",
				(unsigned long long)off, (unsigned long long)(2 * hs + ks));
	if (p->label && strlen(p->label) >= LUKS2_LABEL_LEN)
		return werr_set(err, -EINVAL, "label \"%s\" is longer than 47 bytes", p->label);
	if (p->subsystem && strlen(p->subsystem) >= LUKS2_SUBSYSTEM_LEN)
		return werr_set(err, -EINVAL, "subsystem \"%s\" is longer than 47 bytes", p->subsystem);
	if (p->uuid && !luks2_uuid_valid(p->uuid))
		return werr_set(err, -EINVAL, "uuid \"%s\" is not a canonical lowercase UUID", p->uuid);
	if (!strcmp(cipher, WRAPD_CIPHER) && (!vk || vk->len != WRAPD_VK_BYTES))
		return werr_set(err, -EINVAL, "%s needs a %d-byte volume key", cipher, WRAPD_VK_BYTES);

	char offs[24], kss[24], jss[24];
	snprintf(offs, sizeof(offs), "%llu", (unsigned long long)off);
	snprintf(kss, sizeof(kss), "%llu", (unsigned long long)ks);
	snprintf(jss, sizeof(jss), "%llu", (unsigned long long)(hs - LUKS2_BIN_SIZE));
	json_t *dig = make_digest(vk, p->iterations ? p->iterations : WRAPD_DIGEST_ITERATIONS, err);
	if (!dig)
		return -EIO;
	json_array_append_new(json_object_get(dig, "segments"), json_string("0"));
	json_t *root = json_pack(
		"{s:{}, s:{}, s:{s:{s:s, s:s, s:s, s:s, s:s, s:I}}, s:{s:o}, s:{s:s, s:s}}",
		"keyslots", "tokens", "segments", "0", "type", "crypt", "offset", offs, "size",
		"dynamic", "iv_tweak", "0", "encryption", cipher, "sector_size", (json_int_t)ss,
		"digests", "0", dig, "config", "json_size", jss, "keyslots_size", kss);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	struct luks2_hdr *h = calloc(1, sizeof(*h));
	if (!h) {
		json_decref(root);
		return werr_set(err, -ENOMEM, "out of memory");
	}
	h->hdr_size = hs;
	h->seqid = 0;
	snprintf(h->label, sizeof(h->label), "%s", p->label ? p->label : "");
	snprintf(h->subsystem, sizeof(h->subsystem), "%s", p->subsystem ? p->subsystem : "");
	snprintf(h->checksum_alg, sizeof(h->checksum_alg), "sha256");
	if (p->uuid)
		snprintf(h->uuid, sizeof(h->uuid), "%s", p->uuid);
	else if (luks2_uuid_generate(h->uuid) < 0) {
		json_decref(root);
		free(h);
		return werr_set(err, -EIO, "cannot generate a UUID");
	}
	h->json = json_object();
	int rc = luks2_hdr_replace_json(h, root, err);
	if (rc < 0) {
		luks2_hdr_free(h);
		return rc;
	}
	h->used_copy = 0;
	h->copy[0].status = h->copy[1].status = LUKS2_COPY_MISSING;
	snprintf(h->copy[0].why, sizeof(h->copy[0].why), "not written yet");
	snprintf(h->copy[1].why, sizeof(h->copy[1].why), "not written yet");
	*out = h;
	return 0;
}

/* ---- segments ---------------------------------------------------------- */

void luks2_segments_free(struct luks2_segment *segs, size_t n)
{
	if (!segs)
		return;
	for (size_t i = 0; i < n; i++)
		json_decref(segs[i].extra);
	free(segs);
}

static const char *const seg_known[] = {"type", "offset", "size", "iv_tweak", "encryption",
					"sector_size"};

int luks2_segments_get(const struct luks2_hdr *hdr, struct luks2_segment **out, size_t *n,
		       struct werr *err)
{
	json_t *segs = json_object_get(hdr->json, "segments");
	size_t cnt = json_object_size(segs);
	struct luks2_segment *a = calloc(cnt ? cnt : 1, sizeof(*a));
	if (!a)
		return werr_set(err, -ENOMEM, "out of memory");
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(segs, k, v)
	{
		struct luks2_segment *s = &a[i++];
		unsigned id = 0;
		(void)luks2_str_id(k, 1000, &id);
		s->id = id;
		snprintf(s->type, sizeof(s->type), "%s", json_string_value(json_object_get(v, "type")));
		(void)luks2_str_u64(json_string_value(json_object_get(v, "offset")), &s->offset);
		const char *sz = json_string_value(json_object_get(v, "size"));
		s->dynamic = sz && !strcmp(sz, "dynamic");
		if (!s->dynamic)
			(void)luks2_str_u64(sz, &s->size);
		json_t *iv = json_object_get(v, "iv_tweak");
		if (json_is_string(iv))
			(void)luks2_str_u64(json_string_value(iv), &s->iv_tweak);
		json_t *enc = json_object_get(v, "encryption");
		if (json_is_string(enc))
			snprintf(s->encryption, sizeof(s->encryption), "%s", json_string_value(enc));
		s->sector_size = (uint32_t)json_integer_value(json_object_get(v, "sector_size"));
		s->digest = luks2_digest_for_segment(hdr, id);
		if (s->digest < 0)
			s->digest = -1;
		json_t *extra = json_deep_copy(v);
		for (size_t j = 0; extra && j < ARRAY_SIZE(seg_known); j++)
			json_object_del(extra, seg_known[j]);
		if (extra && !json_object_size(extra)) {
			json_decref(extra);
			extra = NULL;
		}
		s->extra = extra;
	}
	/* order by id */
	for (size_t x = 1; x < cnt; x++)
		for (size_t y = x; y > 0 && a[y - 1].id > a[y].id; y--) {
			struct luks2_segment t = a[y];
			a[y] = a[y - 1];
			a[y - 1] = t;
		}
	*out = a;
	*n = cnt;
	return 0;
}

int luks2_segments_set(struct luks2_hdr *hdr, const struct luks2_segment *segs, size_t n,
		       struct werr *err)
{
	if (!n)
		return werr_set(err, -EINVAL, "a header needs at least one segment");
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *digests = json_object_get(root, "digests");
	const char *dk;
	json_t *dv;
	json_object_foreach(digests, dk, dv) json_object_set_new(dv, "segments", json_array());
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++) {
		const struct luks2_segment *s = &segs[i];
		char offs[24], sizes[24], ivs[24];
		snprintf(offs, sizeof(offs), "%llu", (unsigned long long)s->offset);
		snprintf(sizes, sizeof(sizes), "%llu", (unsigned long long)s->size);
		snprintf(ivs, sizeof(ivs), "%llu", (unsigned long long)s->iv_tweak);
		json_t *j = json_pack("{s:s, s:s, s:s}", "type", s->type, "offset", offs, "size",
				      s->dynamic ? "dynamic" : sizes);
		if (j && !strcmp(s->type, "crypt")) {
			json_object_set_new(j, "iv_tweak", json_string(ivs));
			json_object_set_new(j, "encryption", json_string(s->encryption));
			json_object_set_new(j, "sector_size", json_integer(s->sector_size));
		}
		if (j && s->extra && json_is_object(s->extra))
			json_object_update_missing(j, s->extra);
		if (!j) {
			json_decref(o);
			json_decref(root);
			return werr_set(err, -ENOMEM, "out of memory");
		}
		luks2_obj_set_id(o, (unsigned)i, j);
		if (s->digest >= 0) {
			json_t *d = luks2_obj_get_id(digests, (unsigned)s->digest);
			if (!d) {
				json_decref(o);
				json_decref(root);
				return werr_set(err, -ENOENT, "segment %zu: digest %d does not exist", i,
						s->digest);
			}
			char k[24];
			snprintf(k, sizeof(k), "%zu", i);
			json_array_append_new(json_object_get(d, "segments"), json_string(k));
		}
	}
	json_object_set_new(root, "segments", o);
	return luks2_hdr_replace_json(hdr, root, err);
}

int luks2_keyslots_size_set(struct luks2_hdr *hdr, uint64_t keyslots_size, struct werr *err)
{
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	char s[24];
	snprintf(s, sizeof(s), "%llu", (unsigned long long)keyslots_size);
	json_object_set_new(json_object_get(root, "config"), "keyslots_size", json_string(s));
	return luks2_hdr_replace_json(hdr, root, err);
}

/* ---- tokens ------------------------------------------------------------ */

void wrapd_token_free(struct wrapd_token *t)
{
	if (!t)
		return;
	free(t->vault_addr);
	free(t->vault_namespace);
	free(t->vault_mount);
	free(t->vault_key);
	free(t->ciphertext);
	free(t->context);
	memset(t, 0, sizeof(*t));
}

static int find_token(json_t *tokens, const char *type, unsigned *id, int *count)
{
	const char *k;
	json_t *v;
	*count = 0;
	json_object_foreach(tokens, k, v)
	{
		const char *t = json_string_value(json_object_get(v, "type"));
		if (t && !strcmp(t, type)) {
			if (!*count)
				(void)luks2_str_id(k, LUKS2_MAX_TOKENS, id);
			(*count)++;
		}
	}
	return *count ? 0 : -ENOENT;
}

static int tok_str(json_t *t, const char *name, unsigned id, char **out, bool may_be_empty,
		   struct werr *err)
{
	json_t *v = json_object_get(t, name);
	if (!json_is_string(v))
		return werr_set(err, -EINVAL, "token %u (wrapd-vault): \"%s\" is missing or not a string",
				id, name);
	const char *s = json_string_value(v);
	if (!may_be_empty && !*s)
		return werr_set(err, -EINVAL, "token %u (wrapd-vault): \"%s\" is empty", id, name);
	if (strlen(s) > 8192)
		return werr_set(err, -EINVAL, "token %u (wrapd-vault): \"%s\" is too long", id, name);
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

int wrapd_token_get(const struct luks2_hdr *hdr, struct wrapd_token *out, unsigned *token_id,
		    struct werr *err)
{
	memset(out, 0, sizeof(*out));
	json_t *tokens = json_object_get(hdr->json, "tokens");
	unsigned id = 0;
	int count;
	if (find_token(tokens, WRAPD_TOKEN_TYPE, &id, &count) < 0)
		return werr_set(err, -ENOENT, "no wrapd-vault token: this is not a wrapd volume");
	if (count > 1)
		return werr_set(err, -EINVAL, "%d wrapd-vault tokens: ambiguous, refusing", count);
	json_t *t = luks2_obj_get_id(tokens, id);
	int rc;
	if ((rc = tok_str(t, "vault_addr", id, &out->vault_addr, true, err)) ||
	    (rc = tok_str(t, "vault_namespace", id, &out->vault_namespace, true, err)) ||
	    (rc = tok_str(t, "vault_mount", id, &out->vault_mount, false, err)) ||
	    (rc = tok_str(t, "vault_key", id, &out->vault_key, false, err)) ||
	    (rc = tok_str(t, "ciphertext", id, &out->ciphertext, false, err)) ||
	    (rc = tok_str(t, "context", id, &out->context, false, err))) {
		wrapd_token_free(out);
		return rc;
	}
	json_t *kv = json_object_get(t, "key_version");
	if (!json_is_integer(kv) || json_integer_value(kv) < 1 || json_integer_value(kv) > UINT32_MAX) {
		wrapd_token_free(out);
		return werr_set(err, -EINVAL,
				"token %u (wrapd-vault): \"key_version\" is missing or not an integer >= 1",
				id);
	}
	out->key_version = (unsigned)json_integer_value(kv);
	if (strncmp(out->ciphertext, "vault:v", 7)) {
		wrapd_token_free(out);
		return werr_set(err, -EINVAL,
				"token %u (wrapd-vault): \"ciphertext\" is not a Vault ciphertext (vault:vN:...)",
				id);
	}
	if (token_id)
		*token_id = id;
	return 0;
}

int wrapd_token_set(struct luks2_hdr *hdr, const struct wrapd_token *t, struct werr *err)
{
	if (!t->vault_mount || !*t->vault_mount || !t->vault_key || !*t->vault_key ||
	    !t->ciphertext || strncmp(t->ciphertext, "vault:v", 7) || !t->context || !*t->context ||
	    t->key_version < 1)
		return werr_set(err, -EINVAL,
				"wrapd-vault token: mount, key, a vault:vN: ciphertext, context and key_version >= 1 are required");
	uint8_t ctx[256];
	size_t cl;
	if (b64_decode(t->context, strlen(t->context), ctx, sizeof(ctx), &cl) < 0)
		return werr_set(err, -EINVAL, "wrapd-vault token: context is not Base64");
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *tokens = json_object_get(root, "tokens");
	unsigned id = 0;
	int count;
	json_t *tok;
	if (find_token(tokens, WRAPD_TOKEN_TYPE, &id, &count) == 0) {
		if (count > 1) {
			json_decref(root);
			return werr_set(err, -EINVAL, "%d wrapd-vault tokens: ambiguous, refusing", count);
		}
		tok = luks2_obj_get_id(tokens, id);
	} else {
		int fid = luks2_obj_free_id(tokens, LUKS2_MAX_TOKENS);
		if (fid < 0) {
			json_decref(root);
			return werr_set(err, -ENOSPC, "all 32 token ids are in use");
		}
		tok = json_pack("{s:s, s:[]}", "type", WRAPD_TOKEN_TYPE, "keyslots");
		luks2_obj_set_id(tokens, (unsigned)fid, tok);
	}
	json_object_set_new(tok, "vault_addr", json_string(t->vault_addr ? t->vault_addr : ""));
	json_object_set_new(tok, "vault_namespace",
			    json_string(t->vault_namespace ? t->vault_namespace : ""));
	json_object_set_new(tok, "vault_mount", json_string(t->vault_mount));
	json_object_set_new(tok, "vault_key", json_string(t->vault_key));
	json_object_set_new(tok, "key_version", json_integer(t->key_version));
	json_object_set_new(tok, "ciphertext", json_string(t->ciphertext));
	json_object_set_new(tok, "context", json_string(t->context));
	return luks2_hdr_replace_json(hdr, root, err);
}

static int remove_tokens_of_type(struct luks2_hdr *hdr, const char *type, struct werr *err)
{
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *tokens = json_object_get(root, "tokens");
	const char *k;
	json_t *v;
	void *tmp;
	bool any = false;
	json_object_foreach_safe(tokens, tmp, k, v)
	{
		const char *t = json_string_value(json_object_get(v, "type"));
		if (t && !strcmp(t, type)) {
			json_object_del(tokens, k);
			any = true;
		}
	}
	if (!any) {
		json_decref(root);
		return -ENOENT;
	}
	return luks2_hdr_replace_json(hdr, root, err);
}

int wrapd_token_remove(struct luks2_hdr *hdr, struct werr *err)
{
	int rc = remove_tokens_of_type(hdr, WRAPD_TOKEN_TYPE, err);
	if (rc == -ENOENT)
		return werr_set(err, rc, "no wrapd-vault token to remove");
	return rc;
}

/* ---- requirements ------------------------------------------------------ */

bool luks2_requirement_has(const struct luks2_hdr *hdr, const char *name)
{
	json_t *m = json_object_get(
		json_object_get(json_object_get(hdr->json, "config"), "requirements"), "mandatory");
	size_t i;
	json_t *v;
	json_array_foreach(m, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), name)) return true;
	return false;
}

int luks2_requirement_set(struct luks2_hdr *hdr, const char *name, bool on, struct werr *err)
{
	if (strcmp(name, WRAPD_REQ_REENCRYPT))
		return werr_set(err, -EINVAL, "wrapd only sets its own requirement %s, not \"%s\"",
				WRAPD_REQ_REENCRYPT, name);
	if (luks2_requirement_has(hdr, name) == on)
		return 0;
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *config = json_object_get(root, "config");
	json_t *reqs = json_object_get(config, "requirements");
	if (!reqs) {
		reqs = json_object();
		json_object_set_new(config, "requirements", reqs);
	}
	json_t *m = json_object_get(reqs, "mandatory");
	if (!m) {
		m = json_array();
		json_object_set_new(reqs, "mandatory", m);
	}
	if (on) {
		json_array_append_new(m, json_string(name));
	} else {
		for (size_t i = json_array_size(m); i-- > 0;)
			if (!strcmp(json_string_value(json_array_get(m, i)), name))
				json_array_remove(m, i);
		if (!json_array_size(m))
			json_object_del(reqs, "mandatory");
		if (!json_object_size(reqs))
			json_object_del(config, "requirements");
	}
	return luks2_hdr_replace_json(hdr, root, err);
}

static int check_common(const struct luks2_hdr *hdr, const char *what, const char *verb,
			struct werr *err)
{
	if (hdr->req_cryptsetup_reencrypt)
		return werr_set(err, -EPERM,
				"%s: cryptsetup reencryption is in progress on this header; wrapd will not %s it: finish it with 'cryptsetup reencrypt --resume-only %s'",
				what, verb, what);
	if (hdr->req_unknown)
		return werr_set(err, -EPERM,
				"%s: unknown mandatory LUKS2 requirement \"%s\"; wrapd will not %s it: finish the operation with the tool that set it, or upgrade wrapd",
				what, hdr->req_unknown_name, verb);
	return 0;
}

int luks2_check_writable(const struct luks2_hdr *hdr, const char *what, struct werr *err)
{
	return check_common(hdr, what, "modify", err);
}

int luks2_check_activatable(const struct luks2_hdr *hdr, const char *what, struct werr *err)
{
	int rc = check_common(hdr, what, "activate", err);
	if (rc < 0)
		return rc;
	if (hdr->req_wrapd_reencrypt)
		return werr_set(err, -EPERM,
				"%s: a wrapd conversion (encrypt, rekey or decrypt) is in progress (requirement wrapd-reencrypt); resume or finish it with wrapctl before opening; 'wrapctl inspect %s' shows its state",
				what, what);
	int seg = first_crypt_segment(hdr);
	if (seg < 0 || luks2_digest_for_segment(hdr, (unsigned)seg) < 0)
		return werr_set(err, -EPERM, "%s: the header has no crypt segment with a digest", what);
	return 0;
}

/* ---- conversion state -------------------------------------------------- */

int luks2_conversion_get(const struct luks2_hdr *hdr, json_t **state, struct werr *err)
{
	json_t *tokens = json_object_get(hdr->json, "tokens");
	unsigned id = 0;
	int count;
	*state = NULL;
	if (find_token(tokens, WRAPD_CONVERSION_TOKEN_TYPE, &id, &count) < 0)
		return -ENOENT;
	if (count > 1)
		return werr_set(err, -EINVAL, "%d wrapd-conversion tokens: ambiguous", count);
	json_t *s = json_object_get(luks2_obj_get_id(tokens, id), "state");
	if (!json_is_object(s))
		return werr_set(err, -EINVAL, "token %u (wrapd-conversion): \"state\" is not an object",
				id);
	*state = json_deep_copy(s);
	return *state ? 0 : -ENOMEM;
}

int luks2_conversion_set(struct luks2_hdr *hdr, const json_t *state, struct werr *err)
{
	if (!state) {
		int rc = remove_tokens_of_type(hdr, WRAPD_CONVERSION_TOKEN_TYPE, err);
		return rc == -ENOENT ? 0 : rc;
	}
	if (!json_is_object(state))
		return werr_set(err, -EINVAL, "conversion state must be a JSON object");
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *tokens = json_object_get(root, "tokens");
	unsigned id = 0;
	int count;
	json_t *copy = json_deep_copy(state);
	if (find_token(tokens, WRAPD_CONVERSION_TOKEN_TYPE, &id, &count) == 0) {
		json_object_set_new(luks2_obj_get_id(tokens, id), "state", copy);
	} else {
		int fid = luks2_obj_free_id(tokens, LUKS2_MAX_TOKENS);
		if (fid < 0) {
			json_decref(copy);
			json_decref(root);
			return werr_set(err, -ENOSPC, "all 32 token ids are in use");
		}
		luks2_obj_set_id(tokens, (unsigned)fid,
				 json_pack("{s:s, s:[], s:o}", "type", WRAPD_CONVERSION_TOKEN_TYPE,
					   "keyslots", "state", copy));
	}
	return luks2_hdr_replace_json(hdr, root, err);
}
