/*
 * Reading and writing the two LUKS2 header copies: binary header, checksum,
 * JSON area, seqid selection, secondary scan, the FACTS write order.
 */
#include "format/internal.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

/* Where readers look for the secondary copy when the primary is unusable. */
static const uint64_t secondary_offsets[] = {
	0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
};

const char *luks2_copy_status_str(enum luks2_copy_status s)
{
	switch (s) {
	case LUKS2_COPY_OK: return "ok";
	case LUKS2_COPY_STALE: return "stale";
	case LUKS2_COPY_MISSING: return "missing";
	case LUKS2_COPY_BAD_CSUM: return "bad-checksum";
	case LUKS2_COPY_INVALID: return "invalid";
	case LUKS2_COPY_IO: return "unreadable";
	}
	return "?";
}

int luks2_random(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -EIO;
}

static const EVP_MD *csum_md(const char *alg)
{
	if (!strcmp(alg, "sha256"))
		return EVP_sha256();
	if (!strcmp(alg, "sha512"))
		return EVP_sha512();
	if (!strcmp(alg, "sha1"))
		return EVP_sha1();
	return NULL;
}

int luks2_csum_compute(const char *alg, const uint8_t *area, size_t hdr_size,
		       uint8_t out[LUKS2_CSUM_LEN])
{
	const EVP_MD *md = csum_md(alg);
	if (!md)
		return -EINVAL;
	static const uint8_t zero[LUKS2_CSUM_LEN];
	memset(out, 0, LUKS2_CSUM_LEN);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return -ENOMEM;
	unsigned n = 0;
	int ok = EVP_DigestInit_ex(c, md, NULL) && EVP_DigestUpdate(c, area, OFF_CSUM) &&
		 EVP_DigestUpdate(c, zero, LUKS2_CSUM_LEN) &&
		 EVP_DigestUpdate(c, area + OFF_CSUM + LUKS2_CSUM_LEN,
				  hdr_size - OFF_CSUM - LUKS2_CSUM_LEN) &&
		 EVP_DigestFinal_ex(c, out, &n);
	EVP_MD_CTX_free(c);
	return ok ? 0 : -EIO;
}

void luks2_hdr_free(struct luks2_hdr *hdr)
{
	if (!hdr)
		return;
	json_decref(hdr->json);
	free(hdr);
}

uint64_t luks2_hdr_areas_size(const struct luks2_hdr *hdr)
{
	return 2 * hdr->hdr_size + hdr->keyslots_size;
}

/* ---- a byte source: an fd or a memory image ---------------------------- */

struct src {
	int fd;
	const uint8_t *buf;
	uint64_t len; /* memory image length, or the device size */
};

static int src_read(const struct src *s, void *dst, size_t n, uint64_t off)
{
	if (off > s->len || n > s->len - off)
		return -ENOSPC; /* shorter than the copy claims */
	if (s->buf) {
		memcpy(dst, s->buf + off, n);
		return 0;
	}
	return read_full_at(s->fd, dst, n, (off_t)off);
}

/* ---- one copy ---------------------------------------------------------- */

#define BAD(st, ...)                                                                        \
	do {                                                                                \
		ci->status = (st);                                                          \
		ci->rc = (st) == LUKS2_COPY_IO ? -EIO : -EINVAL;                            \
		snprintf(ci->why, sizeof(ci->why), __VA_ARGS__);                            \
		return ci->rc;                                                              \
	} while (0)

static bool nul_terminated(const uint8_t *p, size_t n)
{
	return memchr(p, 0, n) != NULL;
}

/* Reads and checks the binary header at off. */
static int read_bin(const struct src *s, uint64_t off, bool secondary, uint8_t bin[LUKS2_BIN_SIZE],
		    struct luks2_copy_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	ci->offset = off;
	int rc = src_read(s, bin, LUKS2_BIN_SIZE, off);
	if (rc == -ENOSPC)
		BAD(LUKS2_COPY_IO, "device too short for a header at offset %llu",
		    (unsigned long long)off);
	if (rc < 0)
		BAD(LUKS2_COPY_IO, "cannot read offset %llu: %s", (unsigned long long)off,
		    strerror(-rc));
	if (memcmp(bin, secondary ? LUKS2_MAGIC_2ND : LUKS2_MAGIC_1ST, LUKS2_MAGIC_LEN)) {
		ci->status = LUKS2_COPY_MISSING;
		ci->rc = -ENODEV;
		snprintf(ci->why, sizeof(ci->why), "no %s LUKS2 magic at offset %llu",
			 secondary ? "secondary" : "primary", (unsigned long long)off);
		return ci->rc;
	}
	ci->hdr_size = be64_load(bin + OFF_HDR_SIZE);
	ci->seqid = be64_load(bin + OFF_SEQID);
	uint16_t ver = be16_load(bin + OFF_VERSION);
	if (ver != 2)
		BAD(LUKS2_COPY_INVALID, "version %u, not LUKS2", ver);
	if (!luks2_hdr_size_allowed(ci->hdr_size))
		BAD(LUKS2_COPY_INVALID,
		    "hdr_size %llu is not an allowed metadata size (16 KiB ... 4 MiB, a power of two)",
		    (unsigned long long)ci->hdr_size);
	uint64_t hoff = be64_load(bin + OFF_HDR_OFFSET);
	if (hoff != off)
		BAD(LUKS2_COPY_INVALID, "hdr_offset %llu does not match the copy's position %llu",
		    (unsigned long long)hoff, (unsigned long long)off);
	if (!nul_terminated(bin + OFF_LABEL, LUKS2_LABEL_LEN))
		BAD(LUKS2_COPY_INVALID, "label is not NUL-terminated");
	if (!nul_terminated(bin + OFF_SUBSYSTEM, LUKS2_SUBSYSTEM_LEN))
		BAD(LUKS2_COPY_INVALID, "subsystem is not NUL-terminated");
	if (!nul_terminated(bin + OFF_UUID, LUKS2_UUID_LEN))
		BAD(LUKS2_COPY_INVALID, "uuid is not NUL-terminated");
	if (!nul_terminated(bin + OFF_CSUM_ALG, LUKS2_CSUM_ALG_LEN) ||
	    !csum_md((const char *)bin + OFF_CSUM_ALG))
		BAD(LUKS2_COPY_INVALID, "unsupported checksum algorithm \"%.32s\"",
		    (const char *)bin + OFF_CSUM_ALG);
	return 0;
}

/* Reads, checksums, parses and validates a whole copy. On success *out is a
 * filled header (copy[] untouched). */
static int read_copy(const struct src *s, uint64_t off, bool secondary, struct luks2_hdr **out,
		     struct luks2_copy_info *ci)
{
	uint8_t bin[LUKS2_BIN_SIZE];
	int rc = read_bin(s, off, secondary, bin, ci);
	if (rc < 0)
		return rc;
	size_t hs = (size_t)ci->hdr_size;
	_cleanup_free_ uint8_t *area = malloc(hs);
	if (!area)
		return -ENOMEM;
	rc = src_read(s, area, hs, off);
	if (rc == -ENOSPC)
		BAD(LUKS2_COPY_IO, "device too short for hdr_size %llu at offset %llu",
		    (unsigned long long)hs, (unsigned long long)off);
	if (rc < 0)
		BAD(LUKS2_COPY_IO, "cannot read offset %llu: %s", (unsigned long long)off,
		    strerror(-rc));
	/* The binary header may have changed between the two reads (a writer
	 * without the lock): use only the second read. */
	if (memcmp(area, bin, LUKS2_BIN_SIZE)) {
		rc = read_bin(s, off, secondary, area, ci);
		if (rc < 0)
			return rc;
		if (ci->hdr_size != hs)
			BAD(LUKS2_COPY_INVALID, "header changed while being read");
	}
	uint8_t csum[LUKS2_CSUM_LEN];
	const char *alg = (const char *)area + OFF_CSUM_ALG;
	rc = luks2_csum_compute(alg, area, hs, csum);
	if (rc < 0)
		BAD(LUKS2_COPY_INVALID, "cannot compute the %s checksum", alg);
	if (memcmp(csum, area + OFF_CSUM, LUKS2_CSUM_LEN))
		BAD(LUKS2_COPY_BAD_CSUM, "checksum mismatch (%s)", alg);

	/* JSON area: '{', JSON text, then only NUL bytes. */
	const char *js = (const char *)area + LUKS2_BIN_SIZE;
	size_t jarea = hs - LUKS2_BIN_SIZE;
	if (js[0] != '{')
		BAD(LUKS2_COPY_INVALID, "JSON area does not start with '{'");
	const char *nul = memchr(js, 0, jarea);
	if (!nul)
		BAD(LUKS2_COPY_INVALID, "JSON area is not NUL-terminated");
	size_t jlen = (size_t)(nul - js);
	for (size_t i = jlen; i < jarea; i++)
		if (js[i])
			BAD(LUKS2_COPY_INVALID,
			    "non-NUL byte 0x%02x after the JSON text at JSON area offset %zu",
			    (unsigned char)js[i], i);
	if (js[jlen - 1] != '}')
		BAD(LUKS2_COPY_INVALID, "JSON text does not end with '}' (trailing whitespace or junk)");
	json_error_t je;
	json_t *root = json_loadb(js, jlen, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		BAD(LUKS2_COPY_INVALID, "bad JSON: %s (line %d, column %d)", je.text, je.line,
		    je.column);
	struct luks2_hdr *h = calloc(1, sizeof(*h));
	if (!h) {
		json_decref(root);
		return -ENOMEM;
	}
	h->json = root;
	h->hdr_size = hs;
	h->seqid = ci->seqid;
	memcpy(h->label, area + OFF_LABEL, LUKS2_LABEL_LEN);
	memcpy(h->subsystem, area + OFF_SUBSYSTEM, LUKS2_SUBSYSTEM_LEN);
	memcpy(h->uuid, area + OFF_UUID, LUKS2_UUID_LEN);
	memcpy(h->checksum_alg, area + OFF_CSUM_ALG, LUKS2_CSUM_ALG_LEN);
	rc = luks2_json_validate(root, hs, h, ci->why, sizeof(ci->why));
	if (rc < 0) {
		luks2_hdr_free(h);
		ci->status = LUKS2_COPY_INVALID;
		ci->rc = rc;
		return rc;
	}
	ci->status = LUKS2_COPY_OK;
	*out = h;
	return 0;
}

static bool same_content(const struct luks2_hdr *a, const struct luks2_hdr *b)
{
	return a->hdr_size == b->hdr_size && !strcmp(a->uuid, b->uuid) &&
	       !strcmp(a->label, b->label) && !strcmp(a->subsystem, b->subsystem) &&
	       json_equal(a->json, b->json);
}

static int read_both(const struct src *s, const char *what, struct luks2_hdr **out,
		     struct luks2_hdr **diag, struct werr *err)
{
	struct luks2_hdr *c[2] = {NULL, NULL};
	struct luks2_copy_info ci[2];
	int rc;

	*out = NULL;
	if (diag)
		*diag = NULL;
	rc = read_copy(s, 0, false, &c[0], &ci[0]);
	if (rc == -ENOMEM)
		return werr_set(err, rc, "%s: out of memory reading the header", what);

	/* Secondary: at the primary's hdr_size when it claims an allowed one,
	 * else scan the known offsets for SKUL magic with a matching hdr_offset. */
	bool found = false;
	if (ci[0].status != LUKS2_COPY_MISSING && ci[0].status != LUKS2_COPY_IO &&
	    luks2_hdr_size_allowed(ci[0].hdr_size)) {
		rc = read_copy(s, ci[0].hdr_size, true, &c[1], &ci[1]);
		found = ci[1].status != LUKS2_COPY_MISSING && ci[1].status != LUKS2_COPY_IO;
		if (!found && c[0] == NULL) {
			/* keep ci[1] for the message unless the scan finds one */
		}
	}
	if (!found && !c[0]) {
		struct luks2_copy_info first = {.status = LUKS2_COPY_MISSING};
		bool have_first = false;
		for (size_t i = 0; i < ARRAY_SIZE(secondary_offsets); i++) {
			struct luks2_copy_info t;
			uint8_t bin[LUKS2_BIN_SIZE];
			rc = read_bin(s, secondary_offsets[i], true, bin, &t);
			if (t.status == LUKS2_COPY_MISSING || t.status == LUKS2_COPY_IO) {
				if (!have_first) {
					first = t;
					have_first = true;
				}
				continue;
			}
			rc = read_copy(s, secondary_offsets[i], true, &c[1], &ci[1]);
			if (rc == -ENOMEM) {
				luks2_hdr_free(c[0]);
				return werr_set(err, rc, "%s: out of memory", what);
			}
			found = true;
			break;
		}
		if (!found) {
			ci[1] = first;
			ci[1].status = LUKS2_COPY_MISSING;
			snprintf(ci[1].why, sizeof(ci[1].why),
				 "no secondary LUKS2 magic at any offset 16 KiB ... 4 MiB");
		}
	}
	if (!found && ci[1].status == LUKS2_COPY_OK) /* defensive */
		ci[1].status = LUKS2_COPY_MISSING;

	int use = -1;
	if (c[0] && c[1]) {
		if (c[1]->seqid > c[0]->seqid) {
			use = 1;
			ci[0].status = LUKS2_COPY_STALE;
			snprintf(ci[0].why, sizeof(ci[0].why),
				 "stale: seqid %llu is older than the secondary's %llu",
				 (unsigned long long)c[0]->seqid, (unsigned long long)c[1]->seqid);
		} else {
			use = 0;
			if (c[0]->seqid > c[1]->seqid) {
				ci[1].status = LUKS2_COPY_STALE;
				snprintf(ci[1].why, sizeof(ci[1].why),
					 "stale: seqid %llu is older than the primary's %llu",
					 (unsigned long long)c[1]->seqid,
					 (unsigned long long)c[0]->seqid);
			} else if (!same_content(c[0], c[1])) {
				ci[1].status = LUKS2_COPY_STALE;
				snprintf(ci[1].why, sizeof(ci[1].why),
					 "differs from the primary at the same seqid %llu",
					 (unsigned long long)c[0]->seqid);
			}
		}
	} else if (c[0]) {
		use = 0;
	} else if (c[1]) {
		use = 1;
	}

	if (use < 0) {
		bool any_magic = ci[0].status != LUKS2_COPY_MISSING && ci[0].status != LUKS2_COPY_IO;
		any_magic = any_magic || (ci[1].status != LUKS2_COPY_MISSING &&
					  ci[1].status != LUKS2_COPY_IO);
		if (diag) {
			struct luks2_hdr *d = calloc(1, sizeof(*d));
			if (d) {
				d->copy[0] = ci[0];
				d->copy[1] = ci[1];
				d->used_copy = -1;
				*diag = d;
			}
		}
		if (!any_magic)
			return werr_set(err, -ENODEV,
					"%s: not a LUKS2 device (no LUKS2 header magic found); format it with 'wrapctl format %s'",
					what, what);
		return werr_set(err, -EINVAL,
				"%s: no valid LUKS2 header copy: primary at %llu: %s; secondary at %llu: %s; restore one with 'wrapctl header restore %s FILE'",
				what, (unsigned long long)ci[0].offset, ci[0].why,
				(unsigned long long)ci[1].offset, ci[1].why, what);
	}
	struct luks2_hdr *h = c[use];
	luks2_hdr_free(c[!use]);
	h->used_copy = use;
	h->copy[0] = ci[0];
	h->copy[1] = ci[1];
	*out = h;
	return 0;
}

int luks2_hdr_read(int fd, const char *what, struct luks2_hdr **out, struct luks2_hdr **diag,
		   struct werr *err)
{
	struct src s = {.fd = fd};
	int rc = fd_size(fd, &s.len);
	if (rc < 0)
		return werr_set(err, rc, "%s: cannot get its size: %s; is it a block device or a file?",
				what, strerror(-rc));
	return read_both(&s, what, out, diag, err);
}

int luks2_hdr_parse(const void *buf, size_t len, const char *what, struct luks2_hdr **out,
		    struct luks2_hdr **diag, struct werr *err)
{
	struct src s = {.fd = -1, .buf = buf, .len = len};
	return read_both(&s, what, out, diag, err);
}

int luks2_hdr_validate(struct luks2_hdr *hdr, struct werr *err)
{
	char why[256];
	if (!luks2_hdr_size_allowed(hdr->hdr_size))
		return werr_set(err, -EINVAL, "hdr_size %llu is not an allowed metadata size",
				(unsigned long long)hdr->hdr_size);
	int rc = luks2_json_validate(hdr->json, hdr->hdr_size, hdr, why, sizeof(why));
	if (rc < 0)
		return werr_set(err, rc, "invalid LUKS2 metadata: %s", why);
	return 0;
}

int luks2_hdr_replace_json(struct luks2_hdr *hdr, json_t *root, struct werr *err)
{
	struct luks2_hdr tmp = *hdr;
	char why[256];
	int rc = luks2_json_validate(root, hdr->hdr_size, &tmp, why, sizeof(why));
	if (rc < 0) {
		json_decref(root);
		return werr_set(err, rc, "invalid LUKS2 metadata after the change: %s", why);
	}
	json_decref(hdr->json);
	tmp.json = root;
	*hdr = tmp;
	return 0;
}

/* ---- writing ----------------------------------------------------------- */

int luks2_hdr_serialize(const struct luks2_hdr *hdr, uint8_t *buf, size_t len, struct werr *err)
{
	if (!luks2_hdr_size_allowed(hdr->hdr_size))
		return werr_set(err, -EINVAL, "hdr_size %llu is not an allowed metadata size",
				(unsigned long long)hdr->hdr_size);
	size_t hs = (size_t)hdr->hdr_size;
	if (len < 2 * hs)
		return werr_set(err, -ENOBUFS, "serialize: buffer too small");
	const char *alg = hdr->checksum_alg[0] ? hdr->checksum_alg : "sha256";
	if (!csum_md(alg))
		return werr_set(err, -EINVAL, "unsupported checksum algorithm \"%s\"", alg);
	if (strlen(hdr->label) >= LUKS2_LABEL_LEN || strlen(hdr->subsystem) >= LUKS2_SUBSYSTEM_LEN ||
	    strlen(hdr->uuid) >= LUKS2_UUID_LEN)
		return werr_set(err, -EINVAL, "label, subsystem or uuid too long");
	_cleanup_free_ char *text = json_dumps(hdr->json, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text)
		return werr_set(err, -ENOMEM, "cannot serialise the JSON metadata");
	size_t tlen = strlen(text);
	if (tlen >= hs - LUKS2_BIN_SIZE)
		return werr_set(err, -ENOSPC,
				"the JSON metadata (%zu bytes) does not fit the %zu-byte JSON area; remove tokens or use a larger metadata size",
				tlen, hs - LUKS2_BIN_SIZE);
	for (int i = 0; i < 2; i++) {
		uint8_t *p = buf + (size_t)i * hs;
		memset(p, 0, hs);
		memcpy(p, i ? LUKS2_MAGIC_2ND : LUKS2_MAGIC_1ST, LUKS2_MAGIC_LEN);
		p[OFF_VERSION] = 0;
		p[OFF_VERSION + 1] = 2;
		be64_store(p + OFF_HDR_SIZE, hs);
		be64_store(p + OFF_SEQID, hdr->seqid);
		memcpy(p + OFF_LABEL, hdr->label, strlen(hdr->label));
		memcpy(p + OFF_CSUM_ALG, alg, strlen(alg));
		if (luks2_random(p + OFF_SALT, LUKS2_SALT_LEN) < 0)
			return werr_set(err, -EIO, "cannot get random bytes for the header salt");
		memcpy(p + OFF_UUID, hdr->uuid, strlen(hdr->uuid));
		memcpy(p + OFF_SUBSYSTEM, hdr->subsystem, strlen(hdr->subsystem));
		be64_store(p + OFF_HDR_OFFSET, (uint64_t)i * hs);
		memcpy(p + LUKS2_BIN_SIZE, text, tlen);
		if (luks2_csum_compute(alg, p, hs, p + OFF_CSUM) < 0)
			return werr_set(err, -EIO, "cannot compute the header checksum");
	}
	return 0;
}

/* Serialises with the current seqid and checks that the image reads back
 * as a valid header with both copies good. */
static int hdr_image_checked(const struct luks2_hdr *hdr, uint8_t *buf, size_t len,
			     const char *what, struct werr *err)
{
	int rc = luks2_hdr_serialize(hdr, buf, len, err);
	if (rc < 0)
		return werr_prefix(err, rc, "%s", what);
	/* Paranoia: what we are about to write must read back as valid. */
	struct luks2_hdr *chk = NULL;
	struct werr e2 = {0};
	rc = luks2_hdr_parse(buf, 2 * (size_t)hdr->hdr_size, what, &chk, NULL, &e2);
	bool ok = rc == 0 && chk->used_copy == 0 && chk->copy[1].status == LUKS2_COPY_OK;
	luks2_hdr_free(chk);
	if (!ok)
		return werr_set(err, -EINVAL, "%s: internal error: the new header does not validate (%s)",
				what, werr_str(&e2, rc ? rc : -EINVAL));
	return 0;
}

static int hdr_check_before_write(struct luks2_hdr *hdr, const char *what, struct werr *err)
{
	int rc = luks2_check_writable(hdr, what, err);
	if (rc < 0)
		return rc;
	rc = luks2_hdr_validate(hdr, err);
	if (rc < 0)
		return werr_prefix(err, rc, "%s: refusing to write", what);
	return 0;
}

int luks2_hdr_image(struct luks2_hdr *hdr, uint8_t *buf, size_t len, const char *what,
		    struct werr *err)
{
	int rc = hdr_check_before_write(hdr, what, err);
	return rc < 0 ? rc : hdr_image_checked(hdr, buf, len, what, err);
}

static void *aligned_zalloc(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, n))
		return NULL;
	memset(p, 0, n);
	return p;
}

int luks2_hdr_commit(const struct luks2_writer *w, struct luks2_hdr *hdr, const char *what,
		     struct werr *err)
{
	int rc = hdr_check_before_write(hdr, what, err);
	if (rc < 0)
		return rc;
	size_t hs = (size_t)hdr->hdr_size;
	uint8_t *buf = aligned_zalloc(2 * hs), *bin = aligned_zalloc(LUKS2_BIN_SIZE);
	if (!buf || !bin) {
		free(buf);
		free(bin);
		return werr_set(err, -ENOMEM, "%s: out of memory", what);
	}
	uint64_t old = hdr->seqid;
	hdr->seqid = old + 1;
	rc = hdr_image_checked(hdr, buf, 2 * hs, what, err);
	for (int i = 0; rc == 0 && i < 2; i++) {
		uint8_t *p = buf + (size_t)i * hs;
		uint64_t off = (uint64_t)i * hs;
		memcpy(bin, p, LUKS2_BIN_SIZE);
		memset(bin + OFF_CSUM, 0, LUKS2_CSUM_LEN);
		/* 1. binary header, zero csum, new seqid; 2. JSON area; 3. csum */
		if ((rc = w->pwrite(w->arg, bin, LUKS2_BIN_SIZE, off)) < 0 ||
		    (rc = w->pwrite(w->arg, p + LUKS2_BIN_SIZE, hs - LUKS2_BIN_SIZE,
				    off + LUKS2_BIN_SIZE)) < 0 ||
		    (rc = w->sync(w->arg)) < 0 || (rc = w->pwrite(w->arg, p, LUKS2_BIN_SIZE, off)) < 0 ||
		    (rc = w->sync(w->arg)) < 0)
			werr_set(err, rc, "%s: writing the %s header copy failed: %s", what,
				 i ? "secondary" : "primary", strerror(-rc));
	}
	free(buf);
	free(bin);
	if (rc < 0) {
		hdr->seqid = old;
		return rc;
	}
	hdr->used_copy = 0;
	for (int i = 0; i < 2; i++) {
		memset(&hdr->copy[i], 0, sizeof(hdr->copy[i]));
		hdr->copy[i].status = LUKS2_COPY_OK;
		hdr->copy[i].offset = (uint64_t)i * hs;
		hdr->copy[i].hdr_size = hs;
		hdr->copy[i].seqid = hdr->seqid;
	}
	return 0;
}

static int fd_pwrite(void *arg, const void *buf, size_t len, uint64_t off)
{
	return write_full_at(*(int *)arg, buf, len, (off_t)off);
}

static int fd_sync(void *arg)
{
	return fsync(*(int *)arg) < 0 ? -errno : 0;
}

int luks2_hdr_write(int fd, struct luks2_hdr *hdr, const char *what, struct werr *err)
{
	struct luks2_writer w = {.pwrite = fd_pwrite, .sync = fd_sync, .arg = &fd};
	return luks2_hdr_commit(&w, hdr, what, err);
}
