/*
 * The LUKS2 JSON rules (FACTS-luks2.md, cryptsetup's hdr_validate_*), each
 * with its own message, and the derived facts of struct luks2_hdr.
 * Every header is hostile: every member is type-checked before use.
 */
#include "format/internal.h"

#include <ctype.h>

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -EINVAL)

bool luks2_hdr_size_allowed(uint64_t sz)
{
	for (uint64_t s = LUKS2_HDR_MIN; s <= LUKS2_HDR_MAX; s <<= 1)
		if (s == sz)
			return true;
	return false;
}

int luks2_str_u64(const char *s, uint64_t *out)
{
	if (!s || !*s || strlen(s) > 20)
		return -EINVAL;
	return parse_u64(s, out);
}

int luks2_str_id(const char *s, unsigned limit, unsigned *out)
{
	uint64_t v;
	if (!s || !*s || (s[0] == '0' && s[1]) || strlen(s) > 10)
		return -EINVAL;
	if (parse_u64(s, &v) < 0 || v >= limit)
		return -ERANGE;
	*out = (unsigned)v;
	return 0;
}

json_t *luks2_obj_get_id(json_t *obj, unsigned id)
{
	char k[16];
	snprintf(k, sizeof(k), "%u", id);
	return json_object_get(obj, k);
}

int luks2_obj_set_id(json_t *obj, unsigned id, json_t *val)
{
	char k[16];
	snprintf(k, sizeof(k), "%u", id);
	return json_object_set_new(obj, k, val) ? -ENOMEM : 0;
}

int luks2_obj_free_id(json_t *obj, unsigned limit)
{
	for (unsigned i = 0; i < limit; i++)
		if (!luks2_obj_get_id(obj, i))
			return (int)i;
	return -ENOSPC;
}

/* Id limits: cryptsetup allows 32 keyslots and 32 tokens. Segments and
 * digests have no documented limit; 1000 keeps hostile input bounded. */
#define MAX_IDS 1000u

static const char *const req_cryptsetup_reencrypt[] = {
	"offline-reencrypt", "online-reencrypt", "online-reencrypt-v2", "online-reencrypt-v3",
};

static int get_u64_str(json_t *o, const char *key, const char *what, uint64_t *out, char *why,
		       size_t whylen)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return WHY("%s: missing \"%s\"", what, key);
	if (!json_is_string(v))
		return WHY("%s: \"%s\" is not a string", what, key);
	int rc = luks2_str_u64(json_string_value(v), out);
	if (rc < 0)
		return WHY("%s: \"%s\" value \"%.40s\" is out of range (not a decimal uint64)", what,
			   key, json_string_value(v));
	return 0;
}

static int get_u32_int(json_t *o, const char *key, const char *what, uint32_t lo, uint32_t hi,
		       uint32_t *out, char *why, size_t whylen)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return WHY("%s: missing \"%s\"", what, key);
	if (!json_is_integer(v))
		return WHY("%s: \"%s\" is not a JSON integer", what, key);
	json_int_t x = json_integer_value(v);
	if (x < (json_int_t)lo || x > (json_int_t)hi)
		return WHY("%s: \"%s\" %lld is out of range (%u..%u)", what, key, (long long)x, lo,
			   hi);
	*out = (uint32_t)x;
	return 0;
}

static int get_str(json_t *o, const char *key, const char *what, const char **out, char *why,
		   size_t whylen)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return WHY("%s: missing \"%s\"", what, key);
	if (!json_is_string(v))
		return WHY("%s: \"%s\" is not a string", what, key);
	*out = json_string_value(v);
	return 0;
}

static int check_string_array(json_t *a, const char *what, char *why, size_t whylen)
{
	if (!json_is_array(a))
		return WHY("%s is not an array", what);
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return WHY("%s[%zu] is not a string",
								       what, i);
	return 0;
}

/* An array of id strings that must all exist in `target`. */
static int check_ref_array(json_t *a, json_t *target, const char *what, const char *tname,
			   char *why, size_t whylen)
{
	int rc = check_string_array(a, what, why, whylen);
	if (rc)
		return rc;
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		unsigned id;
		if (luks2_str_id(json_string_value(v), MAX_IDS, &id) < 0)
			return WHY("%s[%zu] \"%.20s\" is not a %s id", what, i, json_string_value(v),
				   tname);
		if (!json_object_get(target, json_string_value(v)))
			return WHY("%s references %s %u, which does not exist", what, tname, id);
	}
	return 0;
}

static bool array_has_str(json_t *a, const char *s)
{
	size_t i;
	json_t *v;
	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
	return false;
}

static bool valid_token_type(const char *t)
{
	size_t n = strlen(t);
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && t[i] != '-' && t[i] != '_')
			return false;
	/* The luks2- prefix is reserved for cryptsetup's own token types, and
	 * headers cryptsetup made do carry them (luks2-keyring, and
	 * luks2-reserved in its test suite): accepted on read; wrapd itself
	 * only ever creates wrapd-* tokens. */
	return true;
}

static int b64_len(const char *s, size_t *n)
{
	uint8_t tmp[512];
	if (strlen(s) > 680)
		return -EINVAL;
	return b64_decode(s, strlen(s), tmp, sizeof(tmp), n);
}

struct ival {
	uint64_t off, len; /* len 0 = dynamic (segments) */
	unsigned id;
	bool dynamic;
};

static int cmp_ival(const void *a, const void *b)
{
	const struct ival *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static bool is_backup_segment(json_t *seg)
{
	json_t *flags = json_object_get(seg, "flags");
	size_t i;
	json_t *v;
	if (!json_is_array(flags))
		return false;
	json_array_foreach(flags, i, v) if (json_is_string(v) &&
					    !strncmp(json_string_value(v), "backup-", 7)) return true;
	return false;
}

int luks2_json_validate(json_t *root, uint64_t hdr_size, struct luks2_hdr *f, char *why,
			size_t whylen)
{
	int rc;
	static const char *const top[] = {"keyslots", "tokens", "segments", "digests", "config"};
	if (!json_is_object(root))
		return WHY("JSON area is not an object");
	for (size_t i = 0; i < ARRAY_SIZE(top); i++) {
		json_t *o = json_object_get(root, top[i]);
		if (!o)
			return WHY("missing top-level object \"%s\"", top[i]);
		if (!json_is_object(o))
			return WHY("top-level \"%s\" is not an object", top[i]);
	}
	json_t *keyslots = json_object_get(root, "keyslots");
	json_t *tokens = json_object_get(root, "tokens");
	json_t *segments = json_object_get(root, "segments");
	json_t *digests = json_object_get(root, "digests");
	json_t *config = json_object_get(root, "config");
	const char *key;
	json_t *val;
	char what[96];

	/* config */
	uint64_t json_size, keyslots_size;
	if ((rc = get_u64_str(config, "json_size", "config", &json_size, why, whylen)))
		return rc;
	if (json_size != hdr_size - LUKS2_BIN_SIZE)
		return WHY("config.json_size %llu does not equal hdr_size - 4096 (%llu)",
			   (unsigned long long)json_size,
			   (unsigned long long)(hdr_size - LUKS2_BIN_SIZE));
	if ((rc = get_u64_str(config, "keyslots_size", "config", &keyslots_size, why, whylen)))
		return rc;
	if (keyslots_size % 4096 || keyslots_size > LUKS2_KEYSLOTS_MAX)
		return WHY("config.keyslots_size %llu is out of range (a multiple of 4096, at most 128 MiB)",
			   (unsigned long long)keyslots_size);
	json_t *flags = json_object_get(config, "flags");
	if (flags && (rc = check_string_array(flags, "config.flags", why, whylen)))
		return rc;
	json_t *reqs = json_object_get(config, "requirements");
	json_t *mandatory = NULL;
	if (reqs) {
		if (!json_is_object(reqs))
			return WHY("config.requirements is not an object");
		mandatory = json_object_get(reqs, "mandatory");
		if (mandatory &&
		    (rc = check_string_array(mandatory, "config.requirements.mandatory", why, whylen)))
			return rc;
	}
	const uint64_t areas_end = 2 * hdr_size + keyslots_size;

	/* keyslots */
	struct ival ks[LUKS2_MAX_KEYSLOTS];
	size_t nks = 0;
	bool cs_reencrypt_keyslot = false;
	json_object_foreach(keyslots, key, val)
	{
		unsigned id;
		if (luks2_str_id(key, LUKS2_MAX_KEYSLOTS, &id) < 0)
			return WHY("keyslot id \"%.20s\" is out of range (0..%u)", key,
				   LUKS2_MAX_KEYSLOTS - 1);
		snprintf(what, sizeof(what), "keyslot %u", id);
		if (!json_is_object(val))
			return WHY("%s is not an object", what);
		const char *type;
		uint32_t key_size;
		if ((rc = get_str(val, "type", what, &type, why, whylen)))
			return rc;
		if (!strcmp(type, "reencrypt"))
			cs_reencrypt_keyslot = true;
		/* The reencrypt keyslot carries key_size 1 in cryptsetup. */
		if ((rc = get_u32_int(val, "key_size", what, 1, 4096, &key_size, why, whylen)))
			return rc;
		json_t *area = json_object_get(val, "area");
		if (!json_is_object(area))
			return WHY("%s: missing \"area\" object", what);
		snprintf(what, sizeof(what), "keyslot %u area", id);
		const char *atype;
		if ((rc = get_str(area, "type", what, &atype, why, whylen)))
			return rc;
		uint64_t off, size;
		if ((rc = get_u64_str(area, "offset", what, &off, why, whylen)) ||
		    (rc = get_u64_str(area, "size", what, &size, why, whylen)))
			return rc;
		if (!size)
			return WHY("%s has size 0", what);
		if (off < 2 * hdr_size)
			return WHY("overlapping areas: %s at %llu overlaps the metadata (ends at %llu)",
				   what, (unsigned long long)off,
				   (unsigned long long)(2 * hdr_size));
		if (off > areas_end || size > areas_end - off)
			return WHY("overlapping areas: %s [%llu, +%llu) runs past the keyslots area end %llu",
				   what, (unsigned long long)off, (unsigned long long)size,
				   (unsigned long long)areas_end);
		ks[nks++] = (struct ival){.off = off, .len = size, .id = id};
	}
	qsort(ks, nks, sizeof(ks[0]), cmp_ival);
	for (size_t i = 1; i < nks; i++)
		if (ks[i].off < ks[i - 1].off + ks[i - 1].len)
			return WHY("overlapping areas: keyslot %u area [%llu, %llu) overlaps keyslot %u area [%llu, %llu)",
				   ks[i].id, (unsigned long long)ks[i].off,
				   (unsigned long long)(ks[i].off + ks[i].len), ks[i - 1].id,
				   (unsigned long long)ks[i - 1].off,
				   (unsigned long long)(ks[i - 1].off + ks[i - 1].len));

	/* tokens */
	unsigned ntok = 0;
	bool wrapd_token = false, conv_token = false;
	json_object_foreach(tokens, key, val)
	{
		unsigned id;
		if (luks2_str_id(key, LUKS2_MAX_TOKENS, &id) < 0)
			return WHY("token id \"%.20s\" is out of range (0..%u)", key,
				   LUKS2_MAX_TOKENS - 1);
		snprintf(what, sizeof(what), "token %u", id);
		if (!json_is_object(val))
			return WHY("%s is not an object", what);
		const char *type;
		if ((rc = get_str(val, "type", what, &type, why, whylen)))
			return rc;
		if (!valid_token_type(type))
			return WHY("%s: type \"%.70s\" is not 1-64 characters of [A-Za-z0-9_-]",
				   what, type);
		json_t *tks = json_object_get(val, "keyslots");
		if (!tks)
			return WHY("%s: missing \"keyslots\"", what);
		snprintf(what, sizeof(what), "token %u keyslots", id);
		if ((rc = check_ref_array(tks, keyslots, what, "keyslot", why, whylen)))
			return rc;
		if (!strcmp(type, WRAPD_TOKEN_TYPE))
			wrapd_token = true;
		if (!strcmp(type, WRAPD_CONVERSION_TOKEN_TYPE))
			conv_token = true;
		ntok++;
	}

	/* digests */
	unsigned ndig = 0;
	json_object_foreach(digests, key, val)
	{
		unsigned id;
		if (luks2_str_id(key, MAX_IDS, &id) < 0)
			return WHY("digest id \"%.20s\" is out of range", key);
		snprintf(what, sizeof(what), "digest %u", id);
		if (!json_is_object(val))
			return WHY("%s is not an object", what);
		const char *type, *hash, *salt, *dig;
		uint32_t iter;
		if ((rc = get_str(val, "type", what, &type, why, whylen)))
			return rc;
		if (strcmp(type, "pbkdf2"))
			return WHY("%s: unsupported digest type \"%.32s\"", what, type);
		json_t *a = json_object_get(val, "keyslots");
		if (!a)
			return WHY("%s: missing \"keyslots\"", what);
		snprintf(what, sizeof(what), "digest %u keyslots", id);
		if ((rc = check_ref_array(a, keyslots, what, "keyslot", why, whylen)))
			return rc;
		a = json_object_get(val, "segments");
		snprintf(what, sizeof(what), "digest %u", id);
		if (!a)
			return WHY("%s: missing \"segments\"", what);
		snprintf(what, sizeof(what), "digest %u segments", id);
		if ((rc = check_ref_array(a, segments, what, "segment", why, whylen)))
			return rc;
		snprintf(what, sizeof(what), "digest %u", id);
		if ((rc = get_str(val, "hash", what, &hash, why, whylen)) ||
		    (rc = get_u32_int(val, "iterations", what, 1, UINT32_MAX, &iter, why, whylen)) ||
		    (rc = get_str(val, "salt", what, &salt, why, whylen)) ||
		    (rc = get_str(val, "digest", what, &dig, why, whylen)))
			return rc;
		if (strcmp(hash, "sha1") && strcmp(hash, "sha256") && strcmp(hash, "sha512"))
			return WHY("%s: unsupported hash \"%.32s\"", what, hash);
		size_t n;
		if (b64_len(salt, &n) < 0 || n < 1 || n > 256)
			return WHY("%s: salt is not Base64 of 1..256 bytes", what);
		if (b64_len(dig, &n) < 0 || n < 1 || n > 64)
			return WHY("%s: digest is not Base64 of 1..64 bytes", what);
		ndig++;
	}

	/* segments */
	struct ival sg[64];
	size_t nsg = 0;
	unsigned nseg = 0, first_crypt = UINT32_MAX;
	bool cs_reencrypt_segment = false;
	json_t *first_crypt_seg = NULL;
	json_object_foreach(segments, key, val)
	{
		unsigned id;
		if (luks2_str_id(key, MAX_IDS, &id) < 0)
			return WHY("segment id \"%.20s\" is out of range", key);
		snprintf(what, sizeof(what), "segment %u", id);
		if (!json_is_object(val))
			return WHY("%s is not an object", what);
		const char *type, *size_s;
		uint64_t off, size = 0;
		if ((rc = get_str(val, "type", what, &type, why, whylen)) ||
		    (rc = get_u64_str(val, "offset", what, &off, why, whylen)) ||
		    (rc = get_str(val, "size", what, &size_s, why, whylen)))
			return rc;
		bool dynamic = !strcmp(size_s, "dynamic");
		if (!dynamic) {
			if (luks2_str_u64(size_s, &size) < 0 || !size)
				return WHY("%s: size \"%.40s\" is out of range (not \"dynamic\" or a non-zero decimal uint64)",
					   what, size_s);
		}
		if (off % 512)
			return WHY("%s: offset %llu is not a multiple of 512", what,
				   (unsigned long long)off);
		if (size % 512)
			return WHY("%s: size %llu is not a multiple of 512", what,
				   (unsigned long long)size);
		if (!dynamic && off > UINT64_MAX - size)
			return WHY("%s: offset + size is out of range", what);
		json_t *sflags = json_object_get(val, "flags");
		if (sflags) {
			snprintf(what, sizeof(what), "segment %u flags", id);
			if ((rc = check_string_array(sflags, what, why, whylen)))
				return rc;
			snprintf(what, sizeof(what), "segment %u", id);
			if (array_has_str(sflags, "in-reencryption"))
				cs_reencrypt_segment = true;
		}
		if (!strcmp(type, "crypt")) {
			const char *enc, *ivt;
			uint64_t iv;
			uint32_t ss;
			if ((rc = get_str(val, "iv_tweak", what, &ivt, why, whylen)))
				return rc;
			if (luks2_str_u64(ivt, &iv) < 0)
				return WHY("%s: iv_tweak \"%.40s\" is out of range (not a decimal uint64)",
					   what, ivt);
			if ((rc = get_str(val, "encryption", what, &enc, why, whylen)))
				return rc;
			if (!*enc || strlen(enc) >= sizeof(f->cipher))
				return WHY("%s: encryption \"%.64s\" is empty or too long", what, enc);
			if ((rc = get_u32_int(val, "sector_size", what, 512, 4096, &ss, why, whylen)))
				return rc;
			if (ss & (ss - 1))
				return WHY("%s: sector_size %u is not a power of two", what, ss);
			if (size % ss)
				return WHY("%s: size %llu is not a multiple of sector_size %u", what,
					   (unsigned long long)size, ss);
			if (off % ss)
				return WHY("%s: offset %llu is not a multiple of sector_size %u", what,
					   (unsigned long long)off, ss);
			json_t *integ = json_object_get(val, "integrity");
			if (integ && !json_is_object(integ))
				return WHY("%s: integrity is not an object", what);
			/* covered by a digest? */
			bool covered = false;
			const char *dk;
			json_t *dv;
			json_object_foreach(digests, dk, dv) if (array_has_str(json_object_get(dv, "segments"), key)) covered = true;
			if (!covered)
				return WHY("crypt segment %u is not covered by any digest", id);
			if (id < first_crypt) {
				first_crypt = id;
				first_crypt_seg = val;
			}
		} else if (strcmp(type, "linear")) {
			return WHY("%s: unsupported segment type \"%.32s\"", what, type);
		}
		if (!is_backup_segment(val)) {
			if (nsg >= ARRAY_SIZE(sg))
				return WHY("too many data segments");
			sg[nsg++] = (struct ival){.off = off, .len = size, .id = id, .dynamic = dynamic};
		}
		nseg++;
	}
	if (!nseg)
		return WHY("no segments: a LUKS2 header needs at least one");
	if (!nsg)
		return WHY("only backup segments, no data segment");
	qsort(sg, nsg, sizeof(sg[0]), cmp_ival);
	for (size_t i = 0; i < nsg; i++) {
		if (sg[i].dynamic && i != nsg - 1)
			return WHY("segment %u is dynamic but is not the last segment", sg[i].id);
		if (i && sg[i].off < sg[i - 1].off + sg[i - 1].len)
			return WHY("overlapping areas: segment %u at %llu overlaps segment %u [%llu, %llu)",
				   sg[i].id, (unsigned long long)sg[i].off, sg[i - 1].id,
				   (unsigned long long)sg[i - 1].off,
				   (unsigned long long)(sg[i - 1].off + sg[i - 1].len));
	}
	/* Data must not overlap the metadata and keyslots area (offset 0 means
	 * a detached header: the data lives on another device). */
	if (sg[0].off && sg[0].off < areas_end)
		return WHY("overlapping areas: data segment %u at %llu overlaps the metadata and keyslots area (ends at %llu)",
			   sg[0].id, (unsigned long long)sg[0].off, (unsigned long long)areas_end);

	/* derived facts */
	f->json_size = json_size;
	f->keyslots_size = keyslots_size;
	f->data_offset = sg[0].off;
	f->data_dynamic = sg[nsg - 1].dynamic;
	f->data_size = f->data_dynamic ? 0 : sg[nsg - 1].off + sg[nsg - 1].len - sg[0].off;
	f->sector_size = 0;
	f->cipher[0] = '\0';
	f->key_size = 0;
	if (first_crypt_seg) {
		f->sector_size = (uint32_t)json_integer_value(json_object_get(first_crypt_seg, "sector_size"));
		snprintf(f->cipher, sizeof(f->cipher), "%s",
			 json_string_value(json_object_get(first_crypt_seg, "encryption")));
		/* key size from a keyslot bound to the covering digest */
		char sk[16];
		snprintf(sk, sizeof(sk), "%u", first_crypt);
		const char *dk;
		json_t *dv;
		json_object_foreach(digests, dk, dv)
		{
			if (!array_has_str(json_object_get(dv, "segments"), sk))
				continue;
			json_t *a = json_object_get(dv, "keyslots");
			if (json_array_size(a)) {
				json_t *k = json_object_get(keyslots, json_string_value(json_array_get(a, 0)));
				f->key_size = (unsigned)json_integer_value(json_object_get(k, "key_size"));
			}
			break;
		}
		if (!f->key_size && !strcmp(f->cipher, WRAPD_CIPHER))
			f->key_size = WRAPD_VK_BYTES;
	}
	f->n_keyslots = (unsigned)json_object_size(keyslots);
	f->n_tokens = ntok;
	f->n_segments = nseg;
	f->n_digests = ndig;
	f->has_wrapd_token = wrapd_token;
	f->has_conversion_state = conv_token;
	f->req_wrapd_reencrypt = f->req_cryptsetup_reencrypt = f->req_unknown = false;
	f->req_unknown_name[0] = '\0';
	if (cs_reencrypt_keyslot || cs_reencrypt_segment)
		f->req_cryptsetup_reencrypt = true;
	size_t i;
	json_t *v;
	json_array_foreach(mandatory, i, v)
	{
		const char *r = json_string_value(v);
		bool known = false;
		if (!strcmp(r, WRAPD_REQ_REENCRYPT)) {
			f->req_wrapd_reencrypt = known = true;
		}
		for (size_t j = 0; j < ARRAY_SIZE(req_cryptsetup_reencrypt); j++)
			if (!strcmp(r, req_cryptsetup_reencrypt[j]))
				f->req_cryptsetup_reencrypt = known = true;
		if (!known && !f->req_unknown) {
			f->req_unknown = true;
			snprintf(f->req_unknown_name, sizeof(f->req_unknown_name), "%s", r);
		}
	}
	return 0;
}
