/*
 * engine: the durable records outside the LUKS2 header: the park descriptor
 * (and the prior/target copies it checks) in the tail of an attached device,
 * and the journal slots of in-place hotzones in the keyslots area. The
 * on-disk structs are in engine/internal.h; encode/decode here are pure
 * functions (unit-tested on their own), the I/O goes through the
 * conversion's backend so the power-loss simulator sees every write.
 */
#include "engine/internal.h"

#include <openssl/evp.h>

/* ---- small helpers ----------------------------------------------------------------- */

void *abuf(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, n ? n : 4096))
		return NULL;
	memset(p, 0, n);
	return p;
}

void abuf_free(void *p, size_t n)
{
	if (p)
		explicit_bzero(p, n);
	free(p);
}

void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 32;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

void hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = 0;
}

/* ---- the park descriptor --------------------------------------------------------------- */

void park_desc_encode(const struct park_desc *pd, uint8_t blk[4096])
{
	struct park_desc_disk d;
	memset(&d, 0, sizeof(d));
	memcpy(d.magic, PARK_MAGIC, sizeof(d.magic));
	d.version = le64_make(PARK_DESC_VERSION);
	d.kind = le64_make(pd->kind);
	d.dev_size = le64_make(pd->dev_size);
	d.len = le64_make(pd->len);
	memcpy(d.prior_sha, pd->prior_sha, 32);
	memcpy(d.target_sha, pd->target_sha, 32);
	memcpy(d.uuid, pd->uuid, strnlen(pd->uuid, sizeof(d.uuid) - 1));
	sha256(&d, offsetof(struct park_desc_disk, self_sha), d.self_sha);
	memset(blk, 0, 4096);
	memcpy(blk, &d, sizeof(d));
}

int park_desc_decode(const uint8_t blk[4096], struct park_desc *pd)
{
	struct park_desc_disk d;
	memcpy(&d, blk, sizeof(d));
	uint8_t h[32];
	sha256(&d, offsetof(struct park_desc_disk, self_sha), h);
	if (memcmp(d.magic, PARK_MAGIC, sizeof(d.magic)) || le64_get(d.version) != PARK_DESC_VERSION ||
	    memcmp(h, d.self_sha, 32))
		return -ENOENT;
	memset(pd, 0, sizeof(*pd));
	pd->kind = (uint32_t)le64_get(d.kind);
	pd->dev_size = le64_get(d.dev_size);
	pd->len = le64_get(d.len);
	memcpy(pd->prior_sha, d.prior_sha, 32);
	memcpy(pd->target_sha, d.target_sha, 32);
	memcpy(pd->uuid, d.uuid, sizeof(pd->uuid) - 1);
	return 0;
}

/* ---- the park region: [D - 1 MiB, D) ------------------------------------------------------ */

/* Writes prior and target copies and the descriptor, then fsyncs. */
int park_write(struct conv *c, uint32_t kind, const uint8_t *prior, const uint8_t *target)
{
	uint8_t *d = abuf(4096);
	if (!d)
		return -ENOMEM;
	struct park_desc pd = {.kind = kind, .dev_size = c->dev_size, .len = PARK_LEN};
	sha256(prior, PARK_LEN, pd.prior_sha);
	sha256(target, PARK_LEN, pd.target_sha);
	if (c->hdr)
		memcpy(pd.uuid, c->hdr->uuid, strnlen(c->hdr->uuid, sizeof(pd.uuid) - 1));
	park_desc_encode(&pd, d);
	uint64_t b = park_base(c);
	int rc;
	if ((rc = c->io->ops->pwrite(c->io, 0, prior, PARK_LEN, b + PARK_PRIOR_OFF)) < 0 ||
	    (rc = c->io->ops->pwrite(c->io, 0, target, PARK_LEN, b + PARK_TARGET_OFF)) < 0 ||
	    (rc = c->io->ops->pwrite(c->io, 0, d, 4096, b + PARK_DESC_OFF)) < 0 ||
	    (rc = c->io->ops->fsync(c->io, 0)) < 0)
		werr_set(c->err, rc, "%s: writing the park area failed: %s", c->what, strerror(-rc));
	free(d);
	return rc;
}

/* Reads and checks the descriptor and both copies: 0 valid, -ENOENT none. */
int park_read(struct conv *c, struct park_desc *pd, uint8_t *prior, uint8_t *target)
{
	if (c->dev_size < ENGINE_PARK_SIZE + ENGINE_SHIFT)
		return -ENOENT;
	uint8_t *d = abuf(4096);
	if (!d)
		return -ENOMEM;
	uint64_t b = park_base(c);
	int rc = c->io->ops->pread(c->io, 0, d, 4096, b + PARK_DESC_OFF);
	if (rc == 0 && (park_desc_decode(d, pd) < 0 || pd->dev_size != c->dev_size ||
			pd->len != PARK_LEN))
		rc = -ENOENT;
	free(d);
	if (rc == 0 &&
	    (rc = c->io->ops->pread(c->io, 0, prior, PARK_LEN, b + PARK_PRIOR_OFF)) == 0 &&
	    (rc = c->io->ops->pread(c->io, 0, target, PARK_LEN, b + PARK_TARGET_OFF)) == 0) {
		uint8_t h[32];
		sha256(prior, PARK_LEN, h);
		if (memcmp(h, pd->prior_sha, 32))
			rc = -ENOENT;
		sha256(target, PARK_LEN, h);
		if (memcmp(h, pd->target_sha, 32))
			rc = -ENOENT;
	}
	return rc;
}

int park_clear(struct conv *c)
{
	uint8_t *z = abuf(ENGINE_PARK_SIZE);
	if (!z)
		return -ENOMEM;
	int rc = c->io->ops->pwrite(c->io, 0, z, ENGINE_PARK_SIZE, park_base(c));
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 0);
	free(z);
	return rc;
}

/* The head must hold, sector by sector, either the prior or the target
 * content: anything else means the device changed after the crash. Then
 * writes the target onto the head and fsyncs. */
int unpark_head(struct conv *c, const uint8_t *prior, const uint8_t *target)
{
	uint8_t *head = abuf(PARK_LEN);
	if (!head)
		return -ENOMEM;
	int rc = c->io->ops->pread(c->io, 0, head, PARK_LEN, 0);
	for (uint64_t o = 0; rc == 0 && o < PARK_LEN; o += 512)
		if (memcmp(head + o, prior + o, 512) && memcmp(head + o, target + o, 512))
			rc = werr_set(c->err, -EUCLEAN,
				      "%s: an interrupted conversion left a park area in the tail, but the start of the device has changed since (byte %llu); refusing to touch it",
				      c->what, (unsigned long long)o);
	if (rc == 0 && (rc = c->io->ops->pwrite(c->io, 0, target, PARK_LEN, 0)) == 0)
		rc = c->io->ops->fsync(c->io, 0);
	abuf_free(head, PARK_LEN);
	return rc;
}

/* Did any target-only sector reach the head? */
bool head_has_target(struct conv *c, const uint8_t *prior, const uint8_t *target)
{
	uint8_t *head = abuf(PARK_LEN);
	bool any = true; /* on doubt, assume it did */
	if (head && c->io->ops->pread(c->io, 0, head, PARK_LEN, 0) == 0) {
		any = false;
		for (uint64_t o = 0; o < PARK_LEN && !any; o += 512)
			any = memcmp(prior + o, target + o, 512) && !memcmp(head + o, target + o, 512);
	}
	abuf_free(head, PARK_LEN);
	return any;
}

/* ---- the journal (in-place hotzones) ---------------------------------------------------- */

size_t jnl_slot_len(uint64_t nsub)
{
	return JNL_HASHES_OFF + (size_t)((nsub * 8 + 4095) / 4096 * 4096);
}

uint64_t jslot_size(uint64_t hotzone)
{
	return jnl_slot_len(hotzone / 512);
}

void jnl_encode(uint64_t start, uint64_t end, const uint64_t *hashes, uint8_t *buf,
		char sha_hex[65])
{
	uint64_t n = (end - start) / 512;
	struct jnl_head_disk h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, JNL_MAGIC, sizeof(h.magic));
	h.version = le64_make(JNL_VERSION);
	h.start = le64_make(start);
	h.end = le64_make(end);
	for (uint64_t i = 0; i < n; i++) {
		struct le64 v = le64_make(hashes[i]);
		memcpy(buf + JNL_HASHES_OFF + i * 8, v.b, 8);
	}
	sha256(buf + JNL_HASHES_OFF, (size_t)(n * 8), h.sha);
	hex(h.sha, 32, sha_hex);
	memcpy(buf, &h, sizeof(h));
}

int jnl_decode(const uint8_t *buf, uint64_t start, uint64_t end, const char *sha_hex,
	       uint64_t *hashes)
{
	uint64_t n = (end - start) / 512;
	struct jnl_head_disk h;
	memcpy(&h, buf, sizeof(h));
	uint8_t s[32];
	char hx[65];
	sha256(buf + JNL_HASHES_OFF, (size_t)(n * 8), s);
	hex(s, 32, hx);
	if (memcmp(h.magic, JNL_MAGIC, sizeof(h.magic)) || le64_get(h.version) != JNL_VERSION ||
	    le64_get(h.start) != start ||
	    le64_get(h.end) != end || memcmp(h.sha, s, 32) || !sha_hex || strcmp(hx, sha_hex))
		return -EUCLEAN;
	for (uint64_t i = 0; i < n; i++) {
		struct le64 v;
		memcpy(v.b, buf + JNL_HASHES_OFF + i * 8, 8);
		hashes[i] = le64_get(v);
	}
	return 0;
}

int journal_write(struct conv *c, unsigned slot, uint64_t hotzone,
		  const struct engine_hotzone *hz, char sha_hex[65])
{
	size_t len = jnl_slot_len((hz->end - hz->start) / 512);
	uint8_t *b = abuf(len);
	if (!b)
		return -ENOMEM;
	jnl_encode(hz->start, hz->end, hz->hashes, b, sha_hex);
	uint64_t off = ENGINE_JOURNAL_OFF + slot * jslot_size(hotzone);
	int rc = c->io->ops->pwrite(c->io, 1, b, len, off);
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 1);
	free(b);
	return rc;
}

int journal_read(struct conv *c, unsigned slot, uint64_t hotzone, uint64_t a, uint64_t e,
		 const char *sha_hex, uint64_t *hashes)
{
	size_t len = jnl_slot_len((e - a) / 512);
	uint8_t *b = abuf(len);
	if (!b)
		return -ENOMEM;
	uint64_t off = ENGINE_JOURNAL_OFF + slot * jslot_size(hotzone);
	int rc = c->io->ops->pread(c->io, 1, b, len, off);
	if (rc == 0 && jnl_decode(b, a, e, sha_hex, hashes) < 0)
		rc = werr_set(c->err, -EUCLEAN,
			      "%s: the conversion journal does not match the header; refusing to guess",
			      c->what);
	free(b);
	return rc;
}
