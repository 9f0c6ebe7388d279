/*
 * The VK digest (pbkdf2, as LUKS2 keeps it): making, adding, removing and
 * verifying digests, and which digest covers which segment. Every change is
 * made on a copy of the JSON tree, validated, and only then swapped in.
 */
#include "format/internal.h"

#include <openssl/evp.h>

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

json_t *luks2_digest_make(const struct secbuf *vk, uint32_t iterations, struct werr *err)
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
	json_t *d = id < 0 ? NULL : luks2_digest_make(vk, iterations, err);
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

int luks2_first_crypt_segment(const struct luks2_hdr *hdr)
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
	int seg = luks2_first_crypt_segment(hdr);
	if (seg < 0)
		return werr_set(err, -ENOENT, "the header has no crypt segment");
	int d = luks2_digest_for_segment(hdr, (unsigned)seg);
	if (d < 0)
		return werr_set(err, -ENOENT, "crypt segment %d is not covered by any digest", seg);
	return luks2_digest_verify(hdr, (unsigned)d, vk, err);
}
