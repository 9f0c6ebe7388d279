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

static int get_u64_str(json_t *o, const char *key, const char *what, uint64_t *out, char *why,
		       size_t whylen)
{
	const char *s;
	int rc = get_str(o, key, what, &s, why, whylen);
	if (rc < 0)
		return rc;
	if (luks2_str_u64(s, out) < 0)
		return WHY("%s: \"%s\" value \"%.40s\" is out of range (not a decimal uint64)", what,
			   key, s);
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
	if (json_array_size(a) > LUKS2_MAX_REFS)
		return WHY("%s has %zu entries; at most %u (as cryptsetup)", what, json_array_size(a),
			   LUKS2_MAX_REFS);
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

/* What one validation pass learns, section by section (cryptsetup's
 * hdr_validate_* split): each validator reads the sections before it. */
struct vstate {
	json_t *keyslots, *tokens, *segments, *digests, *config, *mandatory;
	uint64_t hdr_size, json_size, keyslots_size, areas_end;
	bool cs_reencrypt;            /* a reencrypt keyslot or an in-reencryption segment */
	bool wrapd_token, conv_token;
	unsigned ntok, ndig, nseg;
	struct ival sg[64];           /* non-backup segments */
	size_t nsg;
	unsigned first_crypt;
	json_t *first_crypt_seg;
	/* By segment id, filled by validate_digests in one pass (no digest x
	 * segment loop): covered by a digest; bound to a keyslot whose key is
	 * not WRAPD_VK_BYTES long. */
	bool covered[MAX_IDS], odd_key[MAX_IDS];
	char *why;
	size_t whylen;
};

/* Shorthands for the section validators, which all take `struct vstate *v`. */
#define VWHY(...) (snprintf(v->why, v->whylen, __VA_ARGS__), -EINVAL)
#define VW v->why, v->whylen

static int validate_top(json_t *root, struct vstate *v)
{
	static const char *const top[] = {"keyslots", "tokens", "segments", "digests", "config"};
	if (!json_is_object(root))
		return VWHY("JSON area is not an object");
	for (size_t i = 0; i < ARRAY_SIZE(top); i++) {
		json_t *o = json_object_get(root, top[i]);
		if (!o)
			return VWHY("missing top-level object \"%s\"", top[i]);
		if (!json_is_object(o))
			return VWHY("top-level \"%s\" is not an object", top[i]);
	}
	v->keyslots = json_object_get(root, "keyslots");
	v->tokens = json_object_get(root, "tokens");
	v->segments = json_object_get(root, "segments");
	v->digests = json_object_get(root, "digests");
	v->config = json_object_get(root, "config");
	return 0;
}

static int validate_config(struct vstate *v)
{
	int rc;
	if ((rc = get_u64_str(v->config, "json_size", "config", &v->json_size, VW)))
		return rc;
	if (v->json_size != v->hdr_size - LUKS2_BIN_SIZE)
		return VWHY("config.json_size %llu does not equal hdr_size - 4096 (%llu)",
			    (unsigned long long)v->json_size,
			    (unsigned long long)(v->hdr_size - LUKS2_BIN_SIZE));
	if ((rc = get_u64_str(v->config, "keyslots_size", "config", &v->keyslots_size, VW)))
		return rc;
	if (v->keyslots_size % 4096 || v->keyslots_size > LUKS2_KEYSLOTS_MAX)
		return VWHY("config.keyslots_size %llu is out of range (a multiple of 4096, at most 128 MiB)",
			    (unsigned long long)v->keyslots_size);
	json_t *flags = json_object_get(v->config, "flags");
	if (flags && (rc = check_string_array(flags, "config.flags", VW)))
		return rc;
	json_t *reqs = json_object_get(v->config, "requirements");
	if (reqs) {
		if (!json_is_object(reqs))
			return VWHY("config.requirements is not an object");
		v->mandatory = json_object_get(reqs, "mandatory");
		if (v->mandatory &&
		    (rc = check_string_array(v->mandatory, "config.requirements.mandatory", VW)))
			return rc;
	}
	v->areas_end = 2 * v->hdr_size + v->keyslots_size;
	return 0;
}

/* An entry of a section: its canonical id below limit and an object. what
 * gets "<kind> <id>" for the messages. Ids of keyslots and tokens (small,
 * fixed limits) show their range when out of it. */
static int section_entry(struct vstate *v, const char *kind, const char *key, json_t *val,
			 unsigned limit, unsigned *id, char *what, size_t wlen)
{
	if (luks2_str_id(key, limit, id) < 0) {
		if (limit == MAX_IDS)
			return VWHY("%s id \"%.20s\" is out of range", kind, key);
		return VWHY("%s id \"%.20s\" is out of range (0..%u)", kind, key, limit - 1);
	}
	snprintf(what, wlen, "%s %u", kind, *id);
	if (!json_is_object(val))
		return VWHY("%s is not an object", what);
	return 0;
}

static int validate_keyslot(struct vstate *v, const char *key, json_t *val, struct ival *out)
{
	int rc;
	unsigned id;
	char what[96];
	if ((rc = section_entry(v, "keyslot", key, val, LUKS2_MAX_KEYSLOTS, &id, what, sizeof(what))))
		return rc;
	const char *type;
	uint32_t key_size;
	if ((rc = get_str(val, "type", what, &type, VW)))
		return rc;
	if (!strcmp(type, "reencrypt"))
		v->cs_reencrypt = true;
	/* The reencrypt keyslot carries key_size 1 in cryptsetup. */
	if ((rc = get_u32_int(val, "key_size", what, 1, 4096, &key_size, VW)))
		return rc;
	json_t *area = json_object_get(val, "area");
	if (!json_is_object(area))
		return VWHY("%s: missing \"area\" object", what);
	snprintf(what, sizeof(what), "keyslot %u area", id);
	const char *atype;
	if ((rc = get_str(area, "type", what, &atype, VW)))
		return rc;
	uint64_t off, size;
	if ((rc = get_u64_str(area, "offset", what, &off, VW)) ||
	    (rc = get_u64_str(area, "size", what, &size, VW)))
		return rc;
	if (!size)
		return VWHY("%s has size 0", what);
	if (off < 2 * v->hdr_size)
		return VWHY("overlapping areas: %s at %llu overlaps the metadata (ends at %llu)", what,
			    (unsigned long long)off, (unsigned long long)(2 * v->hdr_size));
	if (off > v->areas_end || size > v->areas_end - off)
		return VWHY("overlapping areas: %s [%llu, +%llu) runs past the keyslots area end %llu",
			    what, (unsigned long long)off, (unsigned long long)size,
			    (unsigned long long)v->areas_end);
	*out = (struct ival){.off = off, .len = size, .id = id};
	return 0;
}

static int validate_keyslots(struct vstate *v)
{
	struct ival ks[LUKS2_MAX_KEYSLOTS];
	size_t nks = 0;
	const char *key;
	json_t *val;
	int rc;
	json_object_foreach(v->keyslots, key, val)
	{
		/* ids are unique and < LUKS2_MAX_KEYSLOTS, so ks cannot overflow */
		if ((rc = validate_keyslot(v, key, val, &ks[nks])))
			return rc;
		nks++;
	}
	qsort(ks, nks, sizeof(ks[0]), cmp_ival);
	for (size_t i = 1; i < nks; i++)
		if (ks[i].off < ks[i - 1].off + ks[i - 1].len)
			return VWHY("overlapping areas: keyslot %u area [%llu, %llu) overlaps keyslot %u area [%llu, %llu)",
				    ks[i].id, (unsigned long long)ks[i].off,
				    (unsigned long long)(ks[i].off + ks[i].len), ks[i - 1].id,
				    (unsigned long long)ks[i - 1].off,
				    (unsigned long long)(ks[i - 1].off + ks[i - 1].len));
	return 0;
}

static int validate_tokens(struct vstate *v)
{
	const char *key;
	json_t *val;
	char what[96];
	int rc;
	json_object_foreach(v->tokens, key, val)
	{
		unsigned id;
		if ((rc = section_entry(v, "token", key, val, LUKS2_MAX_TOKENS, &id, what,
					sizeof(what))))
			return rc;
		const char *type;
		if ((rc = get_str(val, "type", what, &type, VW)))
			return rc;
		if (!valid_token_type(type))
			return VWHY("%s: type \"%.70s\" is not 1-64 characters of [A-Za-z0-9_-]", what,
				    type);
		json_t *tks = json_object_get(val, "keyslots");
		if (!tks)
			return VWHY("%s: missing \"keyslots\"", what);
		snprintf(what, sizeof(what), "token %u keyslots", id);
		if ((rc = check_ref_array(tks, v->keyslots, what, "keyslot", VW)))
			return rc;
		if (!strcmp(type, WRAPD_TOKEN_TYPE)) {
			if ((rc = wrapd_token_check_paths(val, id, WRAPD_TOKEN_TYPE, VW)))
				return rc;
			v->wrapd_token = true;
		}
		if (!strcmp(type, WRAPD_CONVERSION_TOKEN_TYPE)) {
			/* A rekey keeps the new key's token in its state; its Vault
			 * path fields steer the unwrap on resume just the same. */
			json_t *nt = json_object_get(json_object_get(val, "state"), "new_token");
			if (json_is_object(nt) &&
			    (rc = wrapd_token_check_paths(nt, id, "wrapd-conversion new_token", VW)))
				return rc;
			v->conv_token = true;
		}
		v->ntok++;
	}
	return 0;
}

/* Records which segments a digest covers, and whether a keyslot bound to it
 * has a key of another size than wrapd's. Both lists are checked already. */
static void mark_segments(struct vstate *v, json_t *keyslot_refs, json_t *segment_refs)
{
	bool odd = false;
	size_t i;
	json_t *r;
	json_array_foreach(keyslot_refs, i, r)
	{
		json_t *k = json_object_get(v->keyslots, json_string_value(r));
		if (json_integer_value(json_object_get(k, "key_size")) != WRAPD_VK_BYTES)
			odd = true;
	}
	json_array_foreach(segment_refs, i, r)
	{
		unsigned sid;
		if (luks2_str_id(json_string_value(r), MAX_IDS, &sid) == 0) {
			v->covered[sid] = true;
			v->odd_key[sid] = v->odd_key[sid] || odd;
		}
	}
}

static int validate_digest(struct vstate *v, const char *key, json_t *val)
{
	unsigned id;
	char what[96];
	int rc;
	if ((rc = section_entry(v, "digest", key, val, MAX_IDS, &id, what, sizeof(what))))
		return rc;
	const char *type, *hash, *salt, *dig;
	uint32_t iter;
	if ((rc = get_str(val, "type", what, &type, VW)))
		return rc;
	if (strcmp(type, "pbkdf2"))
		return VWHY("%s: unsupported digest type \"%.32s\"", what, type);
	json_t *a = json_object_get(val, "keyslots");
	if (!a)
		return VWHY("%s: missing \"keyslots\"", what);
	snprintf(what, sizeof(what), "digest %u keyslots", id);
	if ((rc = check_ref_array(a, v->keyslots, what, "keyslot", VW)))
		return rc;
	a = json_object_get(val, "segments");
	snprintf(what, sizeof(what), "digest %u", id);
	if (!a)
		return VWHY("%s: missing \"segments\"", what);
	snprintf(what, sizeof(what), "digest %u segments", id);
	if ((rc = check_ref_array(a, v->segments, what, "segment", VW)))
		return rc;
	mark_segments(v, json_object_get(val, "keyslots"), a);
	snprintf(what, sizeof(what), "digest %u", id);
	if ((rc = get_str(val, "hash", what, &hash, VW)) ||
	    (rc = get_u32_int(val, "iterations", what, 1, LUKS2_DIGEST_ITER_MAX, &iter, VW)) ||
	    (rc = get_str(val, "salt", what, &salt, VW)) ||
	    (rc = get_str(val, "digest", what, &dig, VW)))
		return rc;
	if (strcmp(hash, "sha1") && strcmp(hash, "sha256") && strcmp(hash, "sha512"))
		return VWHY("%s: unsupported hash \"%.32s\"", what, hash);
	size_t n;
	if (b64_len(salt, &n) < 0 || n < 1 || n > 256)
		return VWHY("%s: salt is not Base64 of 1..256 bytes", what);
	if (b64_len(dig, &n) < 0 || n < 1 || n > 64)
		return VWHY("%s: digest is not Base64 of 1..64 bytes", what);
	return 0;
}

static int validate_digests(struct vstate *v)
{
	const char *key;
	json_t *val;
	int rc;
	json_object_foreach(v->digests, key, val)
	{
		if ((rc = validate_digest(v, key, val)))
			return rc;
		v->ndig++;
	}
	return 0;
}

/* The members only a crypt segment has. */
static int validate_crypt_segment(struct vstate *v, unsigned id, json_t *val, const char *what,
				  uint64_t off, uint64_t size)
{
	const char *enc, *ivt;
	uint64_t iv;
	uint32_t ss;
	int rc;
	if ((rc = get_str(val, "iv_tweak", what, &ivt, VW)))
		return rc;
	if (luks2_str_u64(ivt, &iv) < 0)
		return VWHY("%s: iv_tweak \"%.40s\" is out of range (not a decimal uint64)", what, ivt);
	if ((rc = get_str(val, "encryption", what, &enc, VW)))
		return rc;
	if (!*enc || strlen(enc) >= sizeof(((struct luks2_hdr *)0)->cipher))
		return VWHY("%s: encryption \"%.64s\" is empty or too long", what, enc);
	if ((rc = get_u32_int(val, "sector_size", what, 512, 4096, &ss, VW)))
		return rc;
	if (ss & (ss - 1))
		return VWHY("%s: sector_size %u is not a power of two", what, ss);
	if (size % ss)
		return VWHY("%s: size %llu is not a multiple of sector_size %u", what,
			    (unsigned long long)size, ss);
	if (off % ss)
		return VWHY("%s: offset %llu is not a multiple of sector_size %u", what,
			    (unsigned long long)off, ss);
	json_t *integ = json_object_get(val, "integrity");
	if (integ && !json_is_object(integ))
		return VWHY("%s: integrity is not an object", what);
	if (!v->covered[id])
		return VWHY("crypt segment %u is not covered by any digest", id);
	if (id < v->first_crypt) {
		v->first_crypt = id;
		v->first_crypt_seg = val;
	}
	return 0;
}

static int validate_segment(struct vstate *v, const char *key, json_t *val)
{
	unsigned id;
	char what[96];
	int rc;
	if ((rc = section_entry(v, "segment", key, val, MAX_IDS, &id, what, sizeof(what))))
		return rc;
	const char *type, *size_s;
	uint64_t off, size = 0;
	if ((rc = get_str(val, "type", what, &type, VW)) ||
	    (rc = get_u64_str(val, "offset", what, &off, VW)) ||
	    (rc = get_str(val, "size", what, &size_s, VW)))
		return rc;
	bool dynamic = !strcmp(size_s, "dynamic");
	if (!dynamic) {
		if (luks2_str_u64(size_s, &size) < 0 || !size)
			return VWHY("%s: size \"%.40s\" is out of range (not \"dynamic\" or a non-zero decimal uint64)",
				    what, size_s);
	}
	if (off % 512)
		return VWHY("%s: offset %llu is not a multiple of 512", what, (unsigned long long)off);
	if (size % 512)
		return VWHY("%s: size %llu is not a multiple of 512", what, (unsigned long long)size);
	if (!dynamic && off > UINT64_MAX - size)
		return VWHY("%s: offset + size is out of range", what);
	json_t *sflags = json_object_get(val, "flags");
	if (sflags) {
		char fwhat[96];
		snprintf(fwhat, sizeof(fwhat), "segment %u flags", id);
		if ((rc = check_string_array(sflags, fwhat, VW)))
			return rc;
		if (array_has_str(sflags, "in-reencryption"))
			v->cs_reencrypt = true;
	}
	if (!strcmp(type, "crypt")) {
		if ((rc = validate_crypt_segment(v, id, val, what, off, size)))
			return rc;
	} else if (strcmp(type, "linear")) {
		return VWHY("%s: unsupported segment type \"%.32s\"", what, type);
	}
	if (!is_backup_segment(val)) {
		if (v->nsg >= ARRAY_SIZE(v->sg))
			return VWHY("too many data segments");
		v->sg[v->nsg++] = (struct ival){.off = off, .len = size, .id = id, .dynamic = dynamic};
	}
	v->nseg++;
	return 0;
}

static int validate_segments(struct vstate *v)
{
	const char *key;
	json_t *val;
	int rc;
	json_object_foreach(v->segments, key, val) if ((rc = validate_segment(v, key, val))) return rc;
	if (!v->nseg)
		return VWHY("no segments: a LUKS2 header needs at least one");
	if (!v->nsg)
		return VWHY("only backup segments, no data segment");
	struct ival *sg = v->sg;
	size_t nsg = v->nsg;
	qsort(sg, nsg, sizeof(sg[0]), cmp_ival);
	for (size_t i = 0; i < nsg; i++) {
		if (sg[i].dynamic && i != nsg - 1)
			return VWHY("segment %u is dynamic but is not the last segment", sg[i].id);
		if (i && sg[i].off < sg[i - 1].off + sg[i - 1].len)
			return VWHY("overlapping areas: segment %u at %llu overlaps segment %u [%llu, %llu)",
				    sg[i].id, (unsigned long long)sg[i].off, sg[i - 1].id,
				    (unsigned long long)sg[i - 1].off,
				    (unsigned long long)(sg[i - 1].off + sg[i - 1].len));
	}
	/* Data must not overlap the metadata and keyslots area (offset 0 means
	 * a detached header: the data lives on another device). */
	if (sg[0].off && sg[0].off < v->areas_end)
		return VWHY("overlapping areas: data segment %u at %llu overlaps the metadata and keyslots area (ends at %llu)",
			    sg[0].id, (unsigned long long)sg[0].off,
			    (unsigned long long)v->areas_end);
	return 0;
}

/*
 * A wrapd volume (a wrapd-vault or wrapd-conversion token) names only the
 * cipher wrapd writes: the header is not authenticated, and whoever can write
 * the raw disk could otherwise make the host encrypt with cipher_null.
 */
static int validate_wrapd_cipher(struct vstate *v)
{
	const char *key;
	json_t *val;
	json_object_foreach(v->segments, key, val)
	{
		unsigned id;
		if (strcmp(json_string_value(json_object_get(val, "type")), "crypt") ||
		    luks2_str_id(key, MAX_IDS, &id) < 0)
			continue;
		const char *enc = json_string_value(json_object_get(val, "encryption"));
		char shown[48];
		str_printable(shown, sizeof(shown), enc);
		if (strcmp(enc, WRAPD_CIPHER))
			return VWHY("segment %u: cipher \"%s\" is not allowed in a wrapd volume (only %s with a %d-bit key)",
				    id, shown, WRAPD_CIPHER, WRAPD_VK_BYTES * 8);
		if (v->odd_key[id])
			return VWHY("segment %u: a keyslot gives it a key that is not %d bits; a wrapd volume uses only %s with a %d-bit key",
				    id, WRAPD_VK_BYTES * 8, WRAPD_CIPHER, WRAPD_VK_BYTES * 8);
		if (json_object_get(val, "integrity"))
			return VWHY("segment %u: dm-integrity is not allowed in a wrapd volume (only %s with a %d-bit key)",
				    id, WRAPD_CIPHER, WRAPD_VK_BYTES * 8);
	}
	return 0;
}

/* The key size of the first crypt segment: from a keyslot bound to its
 * digest, else 64 for wrapd's cipher, else 0 (unknown). */
static unsigned first_crypt_key_size(const struct vstate *v, const char *cipher)
{
	char sk[16];
	snprintf(sk, sizeof(sk), "%u", v->first_crypt);
	const char *dk;
	json_t *dv;
	unsigned key_size = 0;
	json_object_foreach(v->digests, dk, dv)
	{
		if (!array_has_str(json_object_get(dv, "segments"), sk))
			continue;
		json_t *a = json_object_get(dv, "keyslots");
		if (json_array_size(a)) {
			json_t *k = json_object_get(v->keyslots, json_string_value(json_array_get(a, 0)));
			key_size = (unsigned)json_integer_value(json_object_get(k, "key_size"));
		}
		break;
	}
	if (!key_size && !strcmp(cipher, WRAPD_CIPHER))
		key_size = WRAPD_VK_BYTES;
	return key_size;
}

static void derive_facts(const struct vstate *v, struct luks2_hdr *f)
{
	const struct ival *sg = v->sg;
	size_t nsg = v->nsg;
	f->json_size = v->json_size;
	f->keyslots_size = v->keyslots_size;
	f->data_offset = sg[0].off;
	f->data_dynamic = sg[nsg - 1].dynamic;
	f->data_size = f->data_dynamic ? 0 : sg[nsg - 1].off + sg[nsg - 1].len - sg[0].off;
	f->sector_size = 0;
	f->cipher[0] = '\0';
	f->key_size = 0;
	if (v->first_crypt_seg) {
		f->sector_size = (uint32_t)json_integer_value(json_object_get(v->first_crypt_seg, "sector_size"));
		snprintf(f->cipher, sizeof(f->cipher), "%s",
			 json_string_value(json_object_get(v->first_crypt_seg, "encryption")));
		f->key_size = first_crypt_key_size(v, f->cipher);
	}
	f->n_keyslots = (unsigned)json_object_size(v->keyslots);
	f->n_tokens = v->ntok;
	f->n_segments = v->nseg;
	f->n_digests = v->ndig;
	f->has_wrapd_token = v->wrapd_token;
	f->has_conversion_state = v->conv_token;
	f->req_wrapd_reencrypt = f->req_cryptsetup_reencrypt = f->req_unknown = false;
	f->req_unknown_name[0] = '\0';
	if (v->cs_reencrypt)
		f->req_cryptsetup_reencrypt = true;
	size_t i;
	json_t *val;
	json_array_foreach(v->mandatory, i, val)
	{
		const char *r = json_string_value(val);
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
}

int luks2_json_validate(json_t *root, uint64_t hdr_size, struct luks2_hdr *f, char *why,
			size_t whylen)
{
	struct vstate st = {.hdr_size = hdr_size, .first_crypt = UINT32_MAX, .why = why,
			    .whylen = whylen};
	int rc;
	if ((rc = validate_top(root, &st)) || (rc = validate_config(&st)) ||
	    (rc = validate_keyslots(&st)) || (rc = validate_tokens(&st)) ||
	    (rc = validate_digests(&st)) || (rc = validate_segments(&st)))
		return rc;
	if ((st.wrapd_token || st.conv_token) && (rc = validate_wrapd_cipher(&st)))
		return rc;
	derive_facts(&st, f);
	return 0;
}
