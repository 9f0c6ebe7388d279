/*
 * engine: the plan. Everything a conversion decides before data moves:
 * the refusals (already LUKS, too small, a filesystem in the tail, a
 * foreign header file, a conversion of another kind in progress), the
 * geometry, the keys (from the provider, checked against the header's
 * digests) and the conversion state it records in the header. A refusal
 * leaves the device unchanged.
 *
 * Layouts (D = device size, OFF = 16 MiB data offset, L = park length):
 *
 *   attached encrypt ("shift"): plaintext [0,U) moves to [OFF,OFF+U) encrypted,
 *     U = D - OFF - 1 MiB. Descending hotzones of at most OFF. The first L
 *     bytes are parked in the tail before the header is written at the head.
 *   attached decrypt ("shift"): the reverse, ascending; the plaintext of the
 *     first L bytes travels as a "bubble" through the free window that opens
 *     behind the frontier, and is unparked onto the head last.
 *   detached encrypt/decrypt and rekey ("inplace"): in place, hash-journaled.
 */
#include "engine/internal.h"

#include <openssl/rand.h>
#include <time.h>

const char *conv_op_name(enum conv_op op)
{
	switch (op) {
	case CONV_ENCRYPT: return "encrypt";
	case CONV_REKEY: return "rekey";
	case CONV_DECRYPT: return "decrypt";
	case CONV_RESUME: return "resume";
	}
	return "?";
}

int conv_op_from_name(const char *s, enum conv_op *op)
{
	for (int i = CONV_ENCRYPT; i <= CONV_DECRYPT; i++)
		if (s && !strcmp(s, conv_op_name((enum conv_op)i))) {
			*op = (enum conv_op)i;
			return 0;
		}
	return -EINVAL;
}

uint64_t st_u64(json_t *st, const char *k)
{
	json_t *v = json_object_get(st, k);
	if (json_is_string(v)) {
		uint64_t x = 0;
		if (parse_u64(json_string_value(v), &x) == 0)
			return x;
	}
	return UINT64_MAX;
}

int st_set_u64(json_t *st, const char *k, uint64_t v)
{
	char b[32];
	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	return json_object_set_new(st, k, json_string(b)) ? -ENOMEM : 0;
}

const char *st_str(json_t *st, const char *k)
{
	return json_string_value(json_object_get(st, k));
}

static int get_key(struct conv *c, const struct wrapd_token *tok, struct secbuf *vk, int digest,
		   const char *which)
{
	if (!c->p->keys || !c->p->keys->unwrap)
		return werr_set(c->err, -EINVAL, "no key provider");
	int rc = c->p->keys->unwrap(c->p->keys->arg, tok, vk, c->err);
	if (rc < 0)
		return rc;
	if (vk->len != WRAPD_VK_BYTES)
		return werr_set(c->err, -EINVAL, "%s: the %s volume key has the wrong length", c->what,
				which);
	rc = luks2_digest_verify(c->hdr, (unsigned)digest, vk, c->err);
	if (rc < 0)
		return werr_set(c->err, rc, "%s: the %s volume key does not match the header digest",
				c->what, which);
	return 0;
}

int token_from_json(json_t *j, struct wrapd_token *t)
{
	memset(t, 0, sizeof(*t));
	const char *f[] = {"vault_addr", "vault_namespace", "vault_mount", "vault_key",
			   "ciphertext", "context"};
	char **dst[] = {&t->vault_addr, &t->vault_namespace, &t->vault_mount, &t->vault_key,
			&t->ciphertext, &t->context};
	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		const char *v = json_string_value(json_object_get(j, f[i]));
		if (!(*dst[i] = strdup(v ? v : "")))
			return -ENOMEM;
	}
	t->key_version = (unsigned)json_integer_value(json_object_get(j, "key_version"));
	return 0;
}

static json_t *token_to_json(const struct wrapd_token *t)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "vault_addr",
			 t->vault_addr ? t->vault_addr : "", "vault_namespace",
			 t->vault_namespace ? t->vault_namespace : "", "vault_mount",
			 t->vault_mount ? t->vault_mount : "", "vault_key",
			 t->vault_key ? t->vault_key : "", "key_version", (int)t->key_version,
			 "ciphertext", t->ciphertext ? t->ciphertext : "", "context",
			 t->context ? t->context : "");
}

/* Loads the keys a running conversion needs, from the header and state. */
int load_keys(struct conv *c, bool with_new)
{
	struct wrapd_token tok = {0};
	int rc = wrapd_token_get(c->hdr, &tok, NULL, c->err);
	if (rc < 0)
		return rc == -ENOENT ? werr_set(c->err, rc, "%s: no wrapd-vault token in the header",
						c->what)
				     : rc;
	int seg_digest = luks2_digest_for_segment(c->hdr, 0);
	if (seg_digest < 0) {
		wrapd_token_free(&tok);
		return werr_set(c->err, -EUCLEAN, "%s: no digest covers the data segment", c->what);
	}
	if (c->op == CONV_ENCRYPT)
		rc = get_key(c, &tok, &c->new_vk, seg_digest, "new");
	else
		rc = get_key(c, &tok, &c->old_vk, seg_digest, "current");
	wrapd_token_free(&tok);
	if (rc < 0 || c->op != CONV_REKEY || !with_new)
		return rc;
	json_t *nt = json_object_get(c->state, "new_token");
	uint64_t nd = st_u64(c->state, "new_digest");
	if (!nt || nd == UINT64_MAX)
		return werr_set(c->err, -EUCLEAN, "%s: rekey state lacks the new key", c->what);
	rc = token_from_json(nt, &tok);
	if (rc == 0)
		rc = get_key(c, &tok, &c->new_vk, (int)nd, "new");
	wrapd_token_free(&tok);
	return rc;
}

static json_t *state_new(struct conv *c, const char *layout)
{
	uint64_t seed;
	if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
		seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
	c->hash_seed = seed;
	json_t *st = json_object();
	json_object_set_new(st, "version", json_integer(1));
	json_object_set_new(st, "op", json_string(conv_op_name(c->op)));
	json_object_set_new(st, "layout", json_string(layout));
	st_set_u64(st, "size", c->size);
	st_set_u64(st, "seed", seed);
	st_set_u64(st, "done", 0);
	return st;
}

/* Geometry of an existing header's data segment. */
static int seg_geometry(struct conv *c)
{
	c->sector_size = c->hdr->sector_size;
	if (!c->sector_size || strcmp(c->hdr->cipher, WRAPD_CIPHER))
		return werr_set(c->err, -EOPNOTSUPP, "%s: only %s volumes can be converted", c->what,
				WRAPD_CIPHER);
	c->seg_off = c->hdr->data_offset;
	uint64_t end = c->dev_size;
	if (!c->hdr->data_dynamic)
		end = c->seg_off + c->hdr->data_size;
	if (end > c->dev_size || end <= c->seg_off)
		return werr_set(c->err, -EINVAL, "%s: the data segment does not fit the device", c->what);
	c->size = (end - c->seg_off) / c->sector_size * c->sector_size;
	return 0;
}

/* ---- fresh starts ------------------------------------------------------------------ */

static int new_header(struct conv *c, uint64_t data_offset)
{
	if (!c->p->keys || !c->p->keys->new_key)
		return werr_set(c->err, -EINVAL, "no key provider");
	char uuid[37];
	int rc = luks2_uuid_generate(uuid);
	if (rc < 0)
		return werr_set(c->err, rc, "cannot generate a UUID");
	struct wrapd_token tok = {0};
	rc = c->p->keys->new_key(c->p->keys->arg, uuid, &c->new_vk, &tok, c->err);
	if (rc < 0)
		return rc;
	if (c->new_vk.len != WRAPD_VK_BYTES || xts_key_halves_equal(&c->new_vk)) {
		wrapd_token_free(&tok);
		return werr_set(c->err, -EINVAL,
				"the new volume key is unusable for AES-XTS (wrong length or equal halves)");
	}
	struct luks2_new_params np = {.uuid = uuid, .sector_size = c->sector_size,
				      .data_offset = ENGINE_SHIFT};
	rc = luks2_hdr_new(&np, &c->new_vk, &c->hdr, c->err);
	if (rc == 0 && data_offset == 0) {
		struct luks2_segment *segs = NULL;
		size_t n = 0;
		rc = luks2_segments_get(c->hdr, &segs, &n, c->err);
		if (rc == 0 && n >= 1) {
			segs[0].offset = 0;
			rc = luks2_segments_set(c->hdr, segs, n, c->err);
		}
		luks2_segments_free(segs, n);
	}
	if (rc == 0)
		rc = wrapd_token_set(c->hdr, &tok, c->err);
	wrapd_token_free(&tok);
	if (rc == 0)
		rc = luks2_requirement_set(c->hdr, WRAPD_REQ_REENCRYPT, true, c->err);
	return rc;
}

static int choose_sector_size(struct conv *c, const struct engine_fsinfo *fi)
{
	uint32_t ss = c->p->sector_size;
	if (ss && (ss < 512 || ss > 4096 || (ss & (ss - 1))))
		return werr_set(c->err, -EINVAL, "--sector-size must be 512, 1024, 2048 or 4096");
	if (!ss) {
		ss = WRAPD_DEFAULT_SECTOR_SIZE;
		if (fi->block_size && fi->block_size < ss)
			ss = 512; /* the filesystem needs small logical sectors */
	} else if (fi->block_size && fi->block_size < ss) {
		return werr_set(c->err, -EINVAL,
				"%s: the %s filesystem uses %u-byte blocks; a %u-byte sector size would make it unmountable",
				c->what, fi->type, fi->block_size, ss);
	}
	c->sector_size = ss;
	return 0;
}

static int encrypt_checks(struct conv *c, struct engine_fsinfo *fi)
{
	int rc = engine_fs_probe(c->bfd, c->what, fi, c->err);
	if (rc < 0)
		return rc;
	if (fi->is_luks)
		return werr_set(c->err, -EEXIST,
				"%s: already a LUKS volume; 'wrapctl inspect %s' shows it (rekey or decrypt instead)",
				c->what, c->what);
	if ((rc = choose_sector_size(c, fi)) < 0)
		return rc;
	if (c->dev_size % c->sector_size)
		return werr_set(c->err, -EINVAL,
				"%s: the size (%llu bytes) is not a multiple of the %u-byte sector size",
				c->what, (unsigned long long)c->dev_size, c->sector_size);
	if (fi->other_signature)
		return werr_set(c->err, -EINVAL,
				"%s: holds a %s, which wrapd cannot size; refusing to encrypt it in place",
				c->what, fi->type);
	if (c->detached) {
		if (c->dev_size < 1024 * 1024)
			return werr_set(c->err, -ENOSPC, "%s: too small (at least 1 MiB)", c->what);
		return 0;
	}
	uint64_t need = ENGINE_TAIL_NEEDED + 1024 * 1024;
	if (c->dev_size < need)
		return werr_set(c->err, -ENOSPC,
				"%s: too small: encrypting in place needs at least %llu bytes (17 MiB free tail + 1 MiB data); use --header FILE for a detached header",
				c->what, (unsigned long long)need);
	uint64_t U = c->dev_size - ENGINE_TAIL_NEEDED;
	if (fi->type[0]) {
		if (!fi->size)
			return werr_set(c->err, -EINVAL, "%s: cannot read the size of its %s filesystem",
					c->what, fi->type);
		if (fi->size > U)
			return werr_set(c->err, -ENOSPC,
					"%s: the %s filesystem (%llu bytes) reaches into the last %llu bytes; encrypting in place needs the last 17 MiB (the 16 MiB data offset plus 1 MiB) free: grow the device by %llu bytes, shrink the filesystem, or use --header FILE",
					c->what, fi->type, (unsigned long long)fi->size,
					(unsigned long long)ENGINE_TAIL_NEEDED,
					(unsigned long long)(fi->size - U));
	} else if (!c->p->tail_is_free) {
		return werr_set(c->err, -EINVAL,
				"%s: no filesystem recognised, so wrapd cannot tell whether the last 17 MiB (the 16 MiB data offset plus 1 MiB) are free; if they are, say so with --tail-is-free",
				c->what);
	}
	return 0;
}

static int start_encrypt_shift(struct conv *c)
{
	c->seg_off = ENGINE_SHIFT;
	c->size = c->dev_size - ENGINE_SHIFT;
	c->U = c->dev_size - ENGINE_TAIL_NEEDED;
	int rc = new_header(c, ENGINE_SHIFT);
	if (rc < 0)
		return rc;
	c->state = state_new(c, "shift");
	json_object_set_new(c->state, "phase", json_string("move"));
	st_set_u64(c->state, "done", c->U);
	st_set_u64(c->state, "moved", c->U);
	if ((rc = luks2_conversion_set(c->hdr, c->state, c->err)) < 0)
		return rc;
	/* prior = the head as it is; target = the header image (format/ builds
	 * and checks it; the park protocol only moves it), then zeros. */
	uint8_t *prior = abuf(PARK_LEN), *target = abuf(PARK_LEN);
	if (!prior || !target) {
		abuf_free(prior, PARK_LEN);
		abuf_free(target, PARK_LEN);
		return -ENOMEM;
	}
	c->hdr->seqid = 1;
	rc = c->io->ops->pread(c->io, 0, prior, PARK_LEN, 0);
	if (rc == 0)
		rc = luks2_hdr_image(c->hdr, target, PARK_LEN, c->what, c->err);
	if (rc == 0)
		rc = park_write(c, PARK_KIND_ENCRYPT, prior, target);
	if (rc == 0)
		rc = unpark_head(c, prior, target);
	abuf_free(prior, PARK_LEN);
	abuf_free(target, PARK_LEN);
	return rc;
}

static int start_rekey(struct conv *c)
{
	c->state = state_new(c, "inplace");
	struct wrapd_token tok = {0};
	int rc = load_keys(c, false); /* the current key */
	if (rc < 0)
		return rc;
	rc = c->p->keys->new_key(c->p->keys->arg, c->hdr->uuid, &c->new_vk, &tok, c->err);
	if (rc < 0)
		return rc;
	if (c->new_vk.len != WRAPD_VK_BYTES || xts_key_halves_equal(&c->new_vk) ||
	    !ct_memcmp(c->new_vk.data, c->old_vk.data, WRAPD_VK_BYTES)) {
		wrapd_token_free(&tok);
		return werr_set(c->err, -EINVAL, "the new volume key is unusable for AES-XTS");
	}
	unsigned did = 0;
	rc = luks2_digest_add(c->hdr, &c->new_vk, 0, &did, c->err);
	if (rc == 0) {
		json_object_set_new(c->state, "new_token", token_to_json(&tok));
		st_set_u64(c->state, "new_digest", did);
		rc = luks2_requirement_set(c->hdr, WRAPD_REQ_REENCRYPT, true, c->err);
	}
	wrapd_token_free(&tok);
	return rc;
}

/* A header file we created (16 MiB) whose first write never happened. */
static bool blank_header_file(struct conv *c)
{
	uint64_t sz = 0;
	if (fd_size(c->hfd_own, &sz) < 0 || sz != ENGINE_DETACHED_HDR_SIZE)
		return false;
	uint8_t b[65536];
	if (read_full_at(c->hfd_own, b, sizeof(b), 0) < 0)
		return false;
	for (size_t i = 0; i < sizeof(b); i++)
		if (b[i])
			return false;
	return true;
}

/* ---- the plans ---------------------------------------------------------------------- */

/* In-place conversions key their journal hashes with a key derived from the
 * VK of the encrypted side (issue 10 item 9): the journal holds hashes of
 * plaintext until the run ends, and unkeyed they would confirm guesses. A
 * state without "jhash" was started by an earlier version: seeded hash. */
int journal_key_setup(struct conv *c, bool fresh)
{
	if (c->shift)
		return 0;
	if (fresh)
		json_object_set_new(c->state, "jhash", json_string("siphash-vk"));
	const char *jh = st_str(c->state, "jhash");
	if (!jh)
		return 0;
	if (strcmp(jh, "siphash-vk"))
		return werr_set(c->err, -EUCLEAN, "%s: unknown journal hash \"%s\" in the conversion state",
				c->what, jh);
	const struct secbuf *vk = c->op == CONV_ENCRYPT ? &c->new_vk : &c->old_vk;
	int rc = engine_journal_key(vk, c->hash_seed, &c->jkey);
	return rc < 0 ? werr_set(c->err, rc, "%s: cannot derive the journal key", c->what) : 0;
}

int plan_fresh(struct conv *c)
{
	const struct conv_params *p = c->p;
	if (c->detached && !c->created_hdr_file && p->op == CONV_ENCRYPT && !c->torn_new_file &&
	    !blank_header_file(c))
		/* Never overwrite a file we did not create. */
		return werr_set(c->err, -EEXIST,
				"%s: the header file exists and is not an interrupted wrapd encrypt; give a new path",
				p->header);
	/* Nothing converted yet: only encrypt may start here. */
	if (p->op != CONV_ENCRYPT)
		return werr_set(c->err, p->op == CONV_RESUME ? -ENOENT : -ENODEV,
				p->op == CONV_RESUME ? "%s: no interrupted conversion to resume"
						     : "%s: not a wrapd volume (no LUKS2 header)",
				c->what);
	struct engine_fsinfo fi;
	int rc = encrypt_checks(c, &fi);
	if (rc < 0)
		return rc;
	c->op = CONV_ENCRYPT;
	c->shift = !c->detached;
	if (c->shift)
		return start_encrypt_shift(c);
	c->seg_off = 0;
	c->size = c->dev_size;
	if ((rc = new_header(c, 0)) < 0)
		return rc;
	c->state = state_new(c, "inplace");
	if ((rc = journal_key_setup(c, true)) < 0 || (rc = hdr_commit(c)) < 0)
		return rc;
	c->hdr_committed = true;
	return 0;
}

/* The header records a conversion (st, owned): continue it. */
static int plan_resume(struct conv *c, json_t *st)
{
	const struct conv_params *p = c->p;
	enum conv_op sop;
	if (conv_op_from_name(st_str(st, "op"), &sop) < 0) {
		bool erase = st_str(st, "op") && !strcmp(st_str(st, "op"), "erase");
		json_decref(st);
		if (erase) /* volume/erase.c: keys gone, plaintext regions being overwritten */
			return werr_set(c->err, -EBUSY,
					"%s: an interrupted erase is in progress (its keys are destroyed); finish it with 'wrapctl erase --yes%s%s %s'",
					c->what, p->header ? " --header " : "", p->header ? p->header : "",
					c->what);
		return werr_set(c->err, -EUCLEAN, "%s: unknown conversion state", c->what);
	}
	if (p->op != CONV_RESUME && p->op != sop) {
		json_decref(st);
		return werr_set(c->err, -EBUSY,
				"%s: an interrupted %s is in progress; finish it first with 'wrapctl resume %s'",
				c->what, conv_op_name(sop), c->what);
	}
	c->state = st;
	c->op = sop;
	c->resumed = true;
	const char *layout = st_str(st, "layout");
	c->shift = layout && !strcmp(layout, "shift");
	c->hash_seed = st_u64(st, "seed");
	int rc = seg_geometry(c);
	if (rc < 0)
		return rc;
	if (c->shift && c->op == CONV_ENCRYPT)
		c->U = st_u64(st, "moved");
	if (st_u64(st, "size") != c->size ||
	    (c->shift && c->op == CONV_ENCRYPT && c->U != c->size - (ENGINE_PARK_SIZE)))
		return werr_set(c->err, -EUCLEAN,
				"%s: the device size changed during the conversion; restore its size first",
				c->what);
	if ((rc = load_keys(c, true)) < 0)
		return rc;
	return journal_key_setup(c, false);
}

/* A finished wrapd header: start a rekey or a decrypt on it. */
static int plan_start(struct conv *c)
{
	const struct conv_params *p = c->p;
	struct werr *err = c->err;
	if (c->hdr->req_wrapd_reencrypt)
		return werr_set(err, -EUCLEAN, "%s: marked wrapd-reencrypt but holds no conversion state",
				c->what);
	if (p->op == CONV_ENCRYPT)
		return werr_set(err, -EEXIST, "%s: already a LUKS volume; 'wrapctl inspect %s' shows it",
				c->detached ? p->header : c->what, c->what);
	if (p->op == CONV_RESUME)
		return werr_set(err, -ENOENT, "%s: no interrupted conversion to resume", c->what);
	if (!c->hdr->has_wrapd_token)
		return werr_set(err, -EINVAL, "%s: not a wrapd volume (no wrapd-vault token)", c->what);
	c->op = p->op;
	int rc = seg_geometry(c);
	if (rc < 0)
		return rc;
	if (c->op == CONV_DECRYPT && !c->detached && c->seg_off != ENGINE_SHIFT)
		return werr_set(err, -EOPNOTSUPP, "%s: decrypt in place needs the data at offset %llu",
				c->what, (unsigned long long)ENGINE_SHIFT);
	if (c->op == CONV_DECRYPT && c->detached && c->seg_off != 0)
		return werr_set(err, -EOPNOTSUPP,
				"%s: the detached header's data segment does not start at 0", p->header);
	c->shift = c->op == CONV_DECRYPT && !c->detached;
	if (c->shift && c->size < 2 * ENGINE_PARK_SIZE)
		return werr_set(err, -ENOSPC, "%s: too small to decrypt in place", c->what);
	if (c->op == CONV_REKEY) {
		if ((rc = start_rekey(c)) < 0)
			return rc;
	} else {
		c->state = state_new(c, c->shift ? "shift" : "inplace");
		if (c->shift) {
			json_object_del(c->state, "done");
			json_object_set_new(c->state, "phase", json_string("move"));
		}
		if ((rc = load_keys(c, false)) < 0 ||
		    (rc = luks2_requirement_set(c->hdr, WRAPD_REQ_REENCRYPT, true, err)) < 0)
			return rc;
	}
	if ((rc = journal_key_setup(c, true)) < 0)
		return rc;
	/* The requirement and state are durable before any data moves. */
	if ((rc = hdr_commit(c)) < 0)
		return rc;
	c->hdr_committed = true;
	return 0;
}

int plan_from_header(struct conv *c)
{
	json_t *st = NULL;
	int rc = luks2_check_writable(c->hdr, c->what, c->err);
	if (rc < 0)
		return rc;
	int g = luks2_conversion_get(c->hdr, &st, c->err);
	if (g < 0 && g != -ENOENT)
		return g;
	if (st && c->hdr->req_wrapd_reencrypt)
		return plan_resume(c, st);
	json_decref(st);
	return plan_start(c);
}
