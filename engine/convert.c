/*
 * engine: the conversion protocol (encrypt, rekey, decrypt, resume).
 *
 * See the invariant in engine/engine.h and the long form in engine/README.md.
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
#include "engine/engine.h"
#include "format/format.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#define PARK_LEN (256ull * 1024)                 /* L: head bytes parked/unparked */
#define PARK_PRIOR_OFF 0ull                      /* inside the park region */
#define PARK_TARGET_OFF PARK_LEN
#define PARK_DESC_OFF (ENGINE_PARK_SIZE - 4096)
#define PARK_MAGIC "WRAPDPRK"
#define JNL_MAGIC "WRAPDJNL"
#define PARK_KIND_ENCRYPT 1u
#define PARK_KIND_DECRYPT 2u

struct conv {
	const struct conv_params *p;
	struct werr *err;
	const char *what;           /* device path for messages */
	int bfd, dfd, hfd_own;      /* buffered device fd, direct device fd, header file fd */
	int fds[2];
	bool detached;
	struct engine_io *io;
	struct luks2_lock lock;
	struct luks2_hdr *hdr;
	json_t *state;              /* owned */
	uint64_t dev_size;
	struct secbuf old_vk, new_vk;
	enum conv_op op;
	bool shift;
	uint32_t sector_size;
	uint64_t seg_off;           /* device offset of data position 0 (final layout) */
	uint64_t size;              /* data positions [0,size) */
	uint64_t U;                 /* shift encrypt: positions moved */
	uint64_t hash_seed;
	uint64_t total, done_bytes;
	/* decrypt bubble */
	uint8_t *bubble;
	bool created_hdr_file, hdr_committed;
};

/* ---- small helpers ---------------------------------------------------------- */

static void *abuf(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, n ? n : 4096))
		return NULL;
	memset(p, 0, n);
	return p;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 32;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = 0;
}

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

static int op_from_name(const char *s, enum conv_op *op)
{
	for (int i = CONV_ENCRYPT; i <= CONV_DECRYPT; i++)
		if (s && !strcmp(s, conv_op_name((enum conv_op)i))) {
			*op = (enum conv_op)i;
			return 0;
		}
	return -EINVAL;
}

static uint64_t st_u64(json_t *st, const char *k)
{
	json_t *v = json_object_get(st, k);
	if (json_is_string(v)) {
		uint64_t x = 0;
		if (parse_u64(json_string_value(v), &x) == 0)
			return x;
	}
	return UINT64_MAX;
}

static int st_set_u64(json_t *st, const char *k, uint64_t v)
{
	char b[32];
	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	return json_object_set_new(st, k, json_string(b)) ? -ENOMEM : 0;
}

static const char *st_str(json_t *st, const char *k)
{
	return json_string_value(json_object_get(st, k));
}

/* ---- header commit through the I/O backend ------------------------------------ */

/* Writes both copies in the FACTS order (binary header with zero checksum,
 * JSON area, fsync, binary header with checksum, fsync), seqid + 1. Going
 * through the backend lets the power-loss simulator tear it. */
static int hdr_commit(struct conv *c)
{
	struct werr *err = c->err;
	int rc = luks2_check_writable(c->hdr, c->what, err);
	if (rc < 0)
		return rc;
	if (c->state) {
		rc = luks2_conversion_set(c->hdr, c->state, err);
		if (rc < 0)
			return rc;
	}
	rc = luks2_hdr_validate(c->hdr, err);
	if (rc < 0)
		return werr_prefix(err, rc, "%s: refusing to write the header", c->what);
	size_t hs = (size_t)c->hdr->hdr_size;
	uint8_t *buf = abuf(2 * hs), *bin = abuf(LUKS2_BIN_SIZE);
	if (!buf || !bin) {
		free(buf);
		free(bin);
		return -ENOMEM;
	}
	uint64_t old = c->hdr->seqid;
	c->hdr->seqid = old + 1;
	rc = luks2_hdr_serialize(c->hdr, buf, 2 * hs, err);
	for (int i = 0; rc == 0 && i < 2; i++) {
		uint8_t *p = buf + (size_t)i * hs;
		uint64_t off = (uint64_t)i * hs;
		memcpy(bin, p, LUKS2_BIN_SIZE);
		memset(bin + 0x1C0, 0, LUKS2_CSUM_LEN);
		if ((rc = c->io->ops->pwrite(c->io, 1, bin, LUKS2_BIN_SIZE, off)) < 0 ||
		    (rc = c->io->ops->pwrite(c->io, 1, p + LUKS2_BIN_SIZE, hs - LUKS2_BIN_SIZE,
					     off + LUKS2_BIN_SIZE)) < 0 ||
		    (rc = c->io->ops->fsync(c->io, 1)) < 0 ||
		    (rc = c->io->ops->pwrite(c->io, 1, p, LUKS2_BIN_SIZE, off)) < 0 ||
		    (rc = c->io->ops->fsync(c->io, 1)) < 0)
			werr_set(err, rc, "%s: writing the header failed: %s", c->what, strerror(-rc));
	}
	if (rc < 0)
		c->hdr->seqid = old;
	free(buf);
	free(bin);
	return rc;
}

/* ---- the park region: [D - 1 MiB, D) ------------------------------------------- */

struct park_desc {
	uint32_t kind;
	uint64_t dev_size, len;
	uint8_t prior_sha[32], target_sha[32];
	char uuid[40];
};

static uint64_t park_base(const struct conv *c)
{
	return c->dev_size - ENGINE_PARK_SIZE;
}

/* Writes prior and target copies and the descriptor, then fsyncs. */
static int park_write(struct conv *c, uint32_t kind, const uint8_t *prior, const uint8_t *target)
{
	uint8_t *d = abuf(4096);
	if (!d)
		return -ENOMEM;
	memcpy(d, PARK_MAGIC, 8);
	le64_store(d + 8, 1);
	le64_store(d + 16, kind);
	le64_store(d + 24, c->dev_size);
	le64_store(d + 32, PARK_LEN);
	sha256(prior, PARK_LEN, d + 40);
	sha256(target, PARK_LEN, d + 72);
	if (c->hdr)
		memcpy(d + 104, c->hdr->uuid, strnlen(c->hdr->uuid, 39));
	sha256(d, 144, d + 144);
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
static int park_read(struct conv *c, struct park_desc *pd, uint8_t *prior, uint8_t *target)
{
	if (c->dev_size < ENGINE_PARK_SIZE + ENGINE_SHIFT)
		return -ENOENT;
	uint8_t *d = abuf(4096);
	if (!d)
		return -ENOMEM;
	uint64_t b = park_base(c);
	int rc = c->io->ops->pread(c->io, 0, d, 4096, b + PARK_DESC_OFF);
	uint8_t h[32];
	if (rc == 0) {
		sha256(d, 144, h);
		if (memcmp(d, PARK_MAGIC, 8) || le64_load(d + 8) != 1 || memcmp(h, d + 144, 32) ||
		    le64_load(d + 24) != c->dev_size || le64_load(d + 32) != PARK_LEN)
			rc = -ENOENT;
	}
	if (rc == 0) {
		pd->kind = (uint32_t)le64_load(d + 16);
		pd->dev_size = le64_load(d + 24);
		pd->len = le64_load(d + 32);
		memcpy(pd->prior_sha, d + 40, 32);
		memcpy(pd->target_sha, d + 72, 32);
		memcpy(pd->uuid, d + 104, 40);
		pd->uuid[39] = 0;
		if ((rc = c->io->ops->pread(c->io, 0, prior, PARK_LEN, b + PARK_PRIOR_OFF)) == 0 &&
		    (rc = c->io->ops->pread(c->io, 0, target, PARK_LEN, b + PARK_TARGET_OFF)) == 0) {
			sha256(prior, PARK_LEN, h);
			if (memcmp(h, pd->prior_sha, 32))
				rc = -ENOENT;
			sha256(target, PARK_LEN, h);
			if (memcmp(h, pd->target_sha, 32))
				rc = -ENOENT;
		}
	}
	free(d);
	return rc;
}

static int park_clear(struct conv *c)
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
static int unpark_head(struct conv *c, const uint8_t *prior, const uint8_t *target)
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
	free(head);
	return rc;
}

/* Did any target-only sector reach the head? */
static bool head_has_target(struct conv *c, const uint8_t *prior, const uint8_t *target)
{
	uint8_t *head = abuf(PARK_LEN);
	bool any = true; /* on doubt, assume it did */
	if (head && c->io->ops->pread(c->io, 0, head, PARK_LEN, 0) == 0) {
		any = false;
		for (uint64_t o = 0; o < PARK_LEN && !any; o += 512)
			any = memcmp(prior + o, target + o, 512) && !memcmp(head + o, target + o, 512);
	}
	free(head);
	return any;
}

/* ---- the journal (in-place hotzones) ------------------------------------------- */

static uint64_t jslot_size(uint64_t hotzone)
{
	return 4096 + ((hotzone / 512) * 8 + 4095) / 4096 * 4096;
}

static int journal_write(struct conv *c, unsigned slot, uint64_t hotzone,
			 const struct engine_hotzone *hz, char sha_hex[65])
{
	uint64_t n = (hz->end - hz->start) / 512;
	size_t len = 4096 + (size_t)((n * 8 + 4095) / 4096 * 4096);
	uint8_t *b = abuf(len);
	if (!b)
		return -ENOMEM;
	memcpy(b, JNL_MAGIC, 8);
	le64_store(b + 8, 1);
	le64_store(b + 16, hz->start);
	le64_store(b + 24, hz->end);
	for (uint64_t i = 0; i < n; i++)
		le64_store(b + 4096 + i * 8, hz->hashes[i]);
	uint8_t h[32];
	sha256(b + 4096, (size_t)(n * 8), h);
	memcpy(b + 32, h, 32);
	hex(h, 32, sha_hex);
	uint64_t off = ENGINE_JOURNAL_OFF + slot * jslot_size(hotzone);
	int rc = c->io->ops->pwrite(c->io, 1, b, len, off);
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 1);
	free(b);
	return rc;
}

static int journal_read(struct conv *c, unsigned slot, uint64_t hotzone, uint64_t a, uint64_t e,
			const char *sha_hex, uint64_t *hashes)
{
	uint64_t n = (e - a) / 512;
	size_t len = 4096 + (size_t)((n * 8 + 4095) / 4096 * 4096);
	uint8_t *b = abuf(len);
	if (!b)
		return -ENOMEM;
	uint64_t off = ENGINE_JOURNAL_OFF + slot * jslot_size(hotzone);
	int rc = c->io->ops->pread(c->io, 1, b, len, off);
	if (rc == 0) {
		uint8_t h[32];
		char hx[65];
		sha256(b + 4096, (size_t)(n * 8), h);
		hex(h, 32, hx);
		if (memcmp(b, JNL_MAGIC, 8) || le64_load(b + 16) != a || le64_load(b + 24) != e || !sha_hex ||
		    strcmp(hx, sha_hex))
			rc = werr_set(c->err, -EUCLEAN,
				      "%s: the conversion journal does not match the header; refusing to guess",
				      c->what);
		for (uint64_t i = 0; rc == 0 && i < n; i++)
			hashes[i] = le64_load(b + 4096 + i * 8);
	}
	free(b);
	return rc;
}

/* ---- cipher helpers for recovery and finishing ----------------------------------- */

struct keys2 {
	struct xts_key oldk, newk, oldk_enc;
};

static void keys2_free(struct keys2 *k)
{
	xts_key_free(&k->oldk);
	xts_key_free(&k->newk);
}

static int keys2_init(struct conv *c, struct keys2 *k, enum engine_xform xf)
{
	memset(k, 0, sizeof(*k));
	int rc = 0;
	if (xf == ENGINE_XF_REKEY || xf == ENGINE_XF_DECRYPT)
		rc = xts_key_init(&k->oldk, &c->old_vk, xf == ENGINE_XF_DECRYPT);
	if (!rc && (xf == ENGINE_XF_REKEY || xf == ENGINE_XF_ENCRYPT))
		rc = xts_key_init(&k->newk, &c->new_vk, true);
	if (rc < 0)
		keys2_free(k);
	return rc;
}

static int xf_apply(struct keys2 *k, enum engine_xform xf, bool forward, uint8_t *b, size_t n,
		    uint32_t ss, uint64_t iv)
{
	int rc = 0;
	switch (xf) {
	case ENGINE_XF_ENCRYPT:
		return xts_crypt(&k->newk, forward, b, n, ss, iv);
	case ENGINE_XF_DECRYPT:
		return xts_crypt(&k->oldk, !forward, b, n, ss, iv);
	case ENGINE_XF_REKEY:
		if (forward) {
			rc = xts_crypt(&k->oldk, false, b, n, ss, iv);
			return rc ? rc : xts_crypt(&k->newk, true, b, n, ss, iv);
		}
		rc = xts_crypt(&k->newk, false, b, n, ss, iv);
		return rc ? rc : xts_crypt(&k->oldk, true, b, n, ss, iv);
	case ENGINE_XF_COPY:
		return 0;
	}
	return -EINVAL;
}

static enum engine_xform conv_xform(const struct conv *c)
{
	if (c->p->cipher_off)
		return ENGINE_XF_COPY;
	switch (c->op) {
	case CONV_ENCRYPT: return ENGINE_XF_ENCRYPT;
	case CONV_REKEY: return ENGINE_XF_REKEY;
	default: return ENGINE_XF_DECRYPT;
	}
}

/*
 * Recovers an in-place hotzone after a crash: each 512-byte sub-sector that
 * still hashes to its journaled old value is old, any other was written and
 * is new. XTS blocks are independent, so a sector mixing both is rebuilt by
 * taking the old form of its new sub-sectors (the inverse transform) and
 * converting the whole sector.
 */
static int recover_hotzone(struct conv *c, uint64_t a, uint64_t e, const uint64_t *hashes)
{
	enum engine_xform xf = conv_xform(c);
	struct keys2 k;
	int rc = keys2_init(c, &k, xf);
	if (rc < 0)
		return werr_set(c->err, rc, "%s: cannot set up the cipher", c->what);
	uint32_t ss = c->sector_size;
	size_t n = (size_t)(e - a);
	uint8_t *buf = abuf(n), *tmp = abuf(ss);
	if (!buf || !tmp) {
		rc = -ENOMEM;
		goto out;
	}
	rc = c->io->ops->pread(c->io, 0, buf, n, c->seg_off + a);
	for (size_t o = 0; rc == 0 && o < n; o += ss) {
		uint8_t *s = buf + o;
		unsigned nold = 0, subs = ss / 512;
		bool old[8] = {0};
		for (unsigned j = 0; j < subs; j++) {
			old[j] = engine_hash512(s + j * 512, c->hash_seed) == hashes[(o / 512) + j];
			nold += old[j];
		}
		if (nold == 0)
			continue;
		uint64_t iv = (a + o) / 512;
		if (nold < subs) {
			memcpy(tmp, s, ss);
			if ((rc = xf_apply(&k, xf, false, tmp, ss, ss, iv)) < 0)
				break;
			for (unsigned j = 0; j < subs; j++)
				if (!old[j])
					memcpy(s + j * 512, tmp + j * 512, 512);
		}
		rc = xf_apply(&k, xf, true, s, ss, ss, iv);
	}
	if (rc == 0)
		rc = c->io->ops->pwrite(c->io, 0, buf, n, c->seg_off + a);
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 0);
	if (rc < 0)
		werr_set(c->err, rc, "%s: recovering the interrupted hotzone failed: %s", c->what,
			 strerror(-rc));
out:
	if (buf)
		explicit_bzero(buf, n);
	free(buf);
	free(tmp);
	keys2_free(&k);
	return rc;
}

/* ---- engine runs with checkpoints ------------------------------------------------ */

struct run_ctx {
	struct conv *c;
	uint64_t hotzone;
	bool bubble;      /* shift decrypt: keep the bubble out of the next hotzone */
};

static int bubble_write(struct conv *c, uint64_t where);

static int checkpoint_cb(void *arg, uint64_t done, const struct engine_hotzone *next)
{
	struct run_ctx *rx = arg;
	struct conv *c = rx->c;
	int rc;
	if (rx->bubble && next) {
		/* The bubble [b, b+L) must stay out of the hotzone's destination
		 * [start,end) and below its sources (OFF+start): move it up into
		 * the free window [start, OFF+start) when the frontier nears it.
		 * The new place never overlaps the old one, which the durable
		 * state names until this commit. */
		uint64_t b = st_u64(c->state, "bubble"), a = next->start;
		if (b < next->end) {
			uint64_t nb = ENGINE_SHIFT + a - PARK_LEN < c->size
					      ? ENGINE_SHIFT + a - PARK_LEN
					      : (c->size > b + PARK_LEN ? c->size : b + PARK_LEN);
			if ((rc = bubble_write(c, nb)) < 0)
				return rc;
		}
	}
	rc = st_set_u64(c->state, "done", done);
	if (rc < 0)
		return rc;
	if (next && next->hashes) {
		uint64_t cur = st_u64(c->state, "jslot");
		unsigned slot = cur == 0 ? 1 : 0;
		char sha[65];
		rc = journal_write(c, slot, rx->hotzone, next, sha);
		if (rc < 0)
			return rc;
		json_object_set_new(c->state, "jslot", json_string(slot ? "1" : "0"));
		json_object_set_new(c->state, "jsha", json_string(sha));
		st_set_u64(c->state, "hz_start", next->start);
		st_set_u64(c->state, "hz_end", next->end);
	} else {
		json_object_del(c->state, "hz_start");
		json_object_del(c->state, "hz_end");
		json_object_del(c->state, "jsha");
	}
	return hdr_commit(c);
}

static void progress_cb(void *arg, uint64_t n)
{
	struct run_ctx *rx = arg;
	struct conv *c = rx->c;
	c->done_bytes += n;
	if (c->p->progress) {
		struct conv_progress pr = {.op = c->op, .done = c->done_bytes, .total = c->total};
		c->p->progress(c->p->progress_arg, &pr);
	}
}

static int run_engine_x(struct conv *c, uint64_t start, uint64_t end, bool desc,
			uint64_t src_base, uint64_t dst_base, unsigned src_file, unsigned dst_file,
			bool hash, uint64_t hotzone_max, bool bubble)
{
	uint64_t hz = c->p->hotzone ? c->p->hotzone : 16ull * 1024 * 1024;
	if (hz > hotzone_max)
		hz = hotzone_max;
	size_t chunk = c->p->chunk ? c->p->chunk : 1024 * 1024;
	if (hz < chunk)
		chunk = (size_t)hz;
	hz -= hz % chunk;
	struct run_ctx rx = {.c = c, .hotzone = hz, .bubble = bubble};
	struct engine_run r = {
		.io = c->io,
		.src_file = src_file,
		.dst_file = dst_file,
		.src_base = src_base,
		.dst_base = dst_base,
		.start = start,
		.end = end,
		.descending = desc,
		.xform = conv_xform(c),
		.sector_size = c->sector_size,
		.old_vk = &c->old_vk,
		.new_vk = &c->new_vk,
		.chunk = chunk,
		.pool = c->p->pool,
		.hotzone = hz,
		.hash_old = hash,
		.hash_seed = c->hash_seed,
		.workers = c->p->workers,
		.checkpoint = checkpoint_cb,
		.progress = progress_cb,
		.cb_arg = &rx,
		.stop = c->p->stop,
	};
	return engine_run(&r, c->err);
}

static int run_engine(struct conv *c, uint64_t start, uint64_t end, bool desc, uint64_t src_base,
		      uint64_t dst_base, unsigned src_file, unsigned dst_file, bool hash,
		      uint64_t hotzone_max)
{
	return run_engine_x(c, start, end, desc, src_base, dst_base, src_file, dst_file, hash,
			    hotzone_max, false);
}

static bool stop_requested(const struct conv *c)
{
	return c->p->stop && *c->p->stop;
}

/* ---- in-place conversions (detached encrypt/decrypt, rekey) ---------------------- */

static int do_inplace(struct conv *c)
{
	uint64_t hz = c->p->hotzone ? c->p->hotzone : 16ull * 1024 * 1024;
	size_t chunk = c->p->chunk ? c->p->chunk : 1024 * 1024;
	if (hz < chunk)
		chunk = (size_t)hz;
	hz -= hz % chunk;
	uint64_t jend = ENGINE_JOURNAL_OFF + 2 * jslot_size(hz);
	uint64_t areas = luks2_hdr_areas_size(c->hdr);
	if (jend > areas)
		return werr_set(c->err, -ENOSPC,
				"%s: the header's keyslots area (%llu bytes) is too small for the conversion journal",
				c->what, (unsigned long long)areas);
	/* The journal slot size must stay what it was when the hotzone was journaled. */
	uint64_t jhz = st_u64(c->state, "jhotzone");
	if (jhz == UINT64_MAX) {
		st_set_u64(c->state, "jhotzone", hz);
		jhz = hz;
	}
	uint64_t done = st_u64(c->state, "done");
	uint64_t a = st_u64(c->state, "hz_start"), e = st_u64(c->state, "hz_end");
	if (done == UINT64_MAX || done > c->size)
		return werr_set(c->err, -EUCLEAN, "%s: conversion state is damaged", c->what);
	if (a != UINT64_MAX && e != UINT64_MAX) {
		if (a != done || e <= a || e > c->size || (e - a) > jhz)
			return werr_set(c->err, -EUCLEAN, "%s: conversion state is damaged", c->what);
		uint64_t *hashes = calloc((size_t)((e - a) / 512), 8);
		if (!hashes)
			return -ENOMEM;
		uint64_t slot = st_u64(c->state, "jslot");
		int rc = journal_read(c, slot == 1 ? 1 : 0, jhz, a, e, st_str(c->state, "jsha"), hashes);
		if (rc == 0)
			rc = recover_hotzone(c, a, e, hashes);
		free(hashes);
		if (rc < 0)
			return rc;
		c->done_bytes += e - a;
		struct run_ctx rx = {.c = c, .hotzone = jhz};
		rc = checkpoint_cb(&rx, e, NULL);
		if (rc < 0)
			return rc;
		done = e;
	}
	return run_engine(c, done, c->size, false, c->seg_off, c->seg_off, 0, 0, true, jhz);
}

/* ---- attached encrypt: park, move up, finish -------------------------------------- */

static int shift_encrypt_finish(struct conv *c)
{
	/* Positions [U,size) are the park region: encrypted zeros replace it
	 * (destroying the park copy), and the keyslots area is wiped of the
	 * plaintext that lay there. */
	uint64_t n = c->size - c->U;
	uint8_t *z = abuf((size_t)n);
	if (!z)
		return -ENOMEM;
	int rc = 0;
	if (conv_xform(c) != ENGINE_XF_COPY) {
		struct keys2 k;
		rc = keys2_init(c, &k, ENGINE_XF_ENCRYPT);
		if (rc == 0)
			rc = xts_crypt(&k.newk, true, z, (size_t)n, c->sector_size, c->U / 512);
		keys2_free(&k);
	}
	if (rc == 0)
		rc = c->io->ops->pwrite(c->io, 0, z, (size_t)n, c->seg_off + c->U);
	free(z);
	uint64_t kst = 2 * c->hdr->hdr_size;
	uint64_t kn = c->seg_off - kst;
	uint8_t *zz = abuf((size_t)kn);
	if (!zz)
		return -ENOMEM;
	if (rc == 0)
		rc = c->io->ops->pwrite(c->io, 0, zz, (size_t)kn, kst);
	free(zz);
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 0);
	if (rc < 0)
		return werr_set(c->err, rc, "%s: finishing failed: %s", c->what, strerror(-rc));
	return 0;
}

static int do_shift_encrypt(struct conv *c)
{
	uint64_t done = st_u64(c->state, "done");
	const char *phase = st_str(c->state, "phase");
	if (done == UINT64_MAX || done > c->U || !phase)
		return werr_set(c->err, -EUCLEAN, "%s: conversion state is damaged", c->what);
	int rc = 0;
	if (!strcmp(phase, "move")) {
		uint64_t hzmax = ENGINE_SHIFT;
		if (done > PARK_LEN) {
			rc = run_engine(c, PARK_LEN, done, true, 0, c->seg_off, 0, 0, false, hzmax);
			if (rc < 0)
				return rc;
			done = PARK_LEN;
		}
		if (stop_requested(c))
			return -EINTR;
		rc = run_engine(c, 0, done, true, park_base(c) + PARK_PRIOR_OFF, c->seg_off, 0, 0, false,
				hzmax);
		if (rc < 0)
			return rc;
		json_object_set_new(c->state, "phase", json_string("finish"));
		if ((rc = hdr_commit(c)) < 0)
			return rc;
	} else if (strcmp(phase, "finish")) {
		return werr_set(c->err, -EUCLEAN, "%s: unknown conversion phase \"%s\"", c->what, phase);
	}
	return shift_encrypt_finish(c);
}

/* ---- attached decrypt: move down with a travelling bubble, then unpark ------------ */

static int bubble_write(struct conv *c, uint64_t where)
{
	int rc = c->io->ops->pwrite(c->io, 0, c->bubble, PARK_LEN, where);
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 0);
	if (rc < 0)
		return werr_set(c->err, rc, "%s: writing the moving head copy failed: %s", c->what,
				strerror(-rc));
	uint8_t h[32];
	char hx[65];
	sha256(c->bubble, PARK_LEN, h);
	hex(h, 32, hx);
	json_object_set_new(c->state, "bubble_sha", json_string(hx));
	return st_set_u64(c->state, "bubble", where);
}

static int do_shift_decrypt(struct conv *c)
{
	int rc = 0;
	c->bubble = abuf(PARK_LEN);
	if (!c->bubble)
		return -ENOMEM;
	uint64_t done = st_u64(c->state, "done");
	uint64_t b = st_u64(c->state, "bubble");
	if (done == UINT64_MAX || b == UINT64_MAX) {
		/* Fresh: decrypt the first L bytes into the bubble, park it in
		 * the keyslots area. The state is only written after that. */
		rc = c->io->ops->pread(c->io, 0, c->bubble, PARK_LEN, c->seg_off);
		if (rc == 0 && conv_xform(c) != ENGINE_XF_COPY) {
			struct keys2 k;
			rc = keys2_init(c, &k, ENGINE_XF_DECRYPT);
			if (rc == 0)
				rc = xts_crypt(&k.oldk, false, c->bubble, PARK_LEN, c->sector_size, 0);
			keys2_free(&k);
		}
		if (rc < 0)
			return werr_set(c->err, rc, "%s: reading the start of the data failed", c->what);
		done = PARK_LEN;
		b = ENGINE_SHIFT - PARK_LEN; /* top of the keyslots area */
		if ((rc = bubble_write(c, b)) < 0)
			return rc;
		st_set_u64(c->state, "done", done);
		if ((rc = hdr_commit(c)) < 0)
			return rc;
	} else {
		rc = c->io->ops->pread(c->io, 0, c->bubble, PARK_LEN, b);
		uint8_t h[32];
		char hx[65];
		sha256(c->bubble, PARK_LEN, h);
		hex(h, 32, hx);
		const char *want = st_str(c->state, "bubble_sha");
		if (rc < 0 || !want || strcmp(hx, want))
			return werr_set(c->err, -EUCLEAN,
					"%s: the saved copy of the start of the volume is damaged; refusing to go on",
					c->what);
	}
	c->done_bytes = done;
	/* One run; hotzones of at most OFF - 2L keep the bubble placeable. */
	rc = run_engine_x(c, done, c->size, false, c->seg_off, 0, 0, 0, false,
			  ENGINE_SHIFT - 2 * PARK_LEN, true);
	if (rc < 0)
		return rc;
	/* Unpark: prior = the header area as it is, target = the bubble. */
	uint8_t *prior = abuf(PARK_LEN);
	if (!prior)
		return -ENOMEM;
	rc = c->io->ops->pread(c->io, 0, prior, PARK_LEN, 0);
	if (rc == 0)
		rc = park_write(c, PARK_KIND_DECRYPT, prior, c->bubble);
	if (rc == 0)
		rc = unpark_head(c, prior, c->bubble);
	free(prior);
	if (rc == 0)
		rc = park_clear(c);
	return rc;
}

/* ---- opening, refusals, key handling ---------------------------------------------- */

/* The first loop device (any offset) whose backing inode is st: a regular
 * file is compared by device and inode, a block device by its number. Asks
 * each bound loop by LOOP_GET_STATUS64; when /dev/loopN cannot be opened,
 * stats /sys/block/loopN/loop/backing_file instead. */
static bool loop_backed_by(const struct stat *st, char *name, size_t namelen)
{
	DIR *d = opendir("/sys/block");
	if (!d)
		return false;
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (strncmp(de->d_name, "loop", 4))
			continue;
		char p[300];
		snprintf(p, sizeof(p), "/sys/block/%s/loop", de->d_name);
		if (access(p, F_OK) < 0)
			continue; /* not bound to anything */
		dev_t bdev = 0, rdev = 0;
		ino_t ino = 0;
		bool known = false;
		snprintf(p, sizeof(p), "/dev/%s", de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			struct loop_info64 li;
			memset(&li, 0, sizeof(li));
			if (ioctl(fd, LOOP_GET_STATUS64, &li) == 0) {
				bdev = (dev_t)li.lo_device;
				ino = (ino_t)li.lo_inode;
				rdev = (dev_t)li.lo_rdevice;
				known = true;
			}
			close(fd);
		}
		if (!known) {
			snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
			char bf[PATH_MAX + 16];
			FILE *f = fopen(p, "re");
			if (!f)
				continue;
			bool got = fgets(bf, sizeof(bf), f) != NULL;
			fclose(f);
			if (!got)
				continue;
			bf[strcspn(bf, "\n")] = 0;
			struct stat bst;
			if (stat(bf, &bst) < 0)
				continue; /* e.g. "(deleted)": not our inode */
			bdev = bst.st_dev;
			ino = bst.st_ino;
			rdev = bst.st_rdev;
		}
		if (S_ISREG(st->st_mode))
			found = bdev == st->st_dev && ino == st->st_ino;
		else
			found = rdev != 0 && rdev == st->st_rdev;
		if (found)
			snprintf(name, namelen, "/dev/%s", de->d_name);
	}
	closedir(d);
	return found;
}

static int check_not_held(struct conv *c, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return werr_set(c->err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return 0;
	/* A loop device on top (losetup, or a mapping opened from a file) reads
	 * and writes through its own cache: converting under it corrupts both. */
	char loopname[300];
	if (loop_backed_by(&st, loopname, sizeof(loopname)))
		return werr_set(c->err, -EBUSY,
				"%s: device is held by loop device %s; detach it first (losetup -d %s)",
				path, loopname, loopname);
	if (!S_ISBLK(st.st_mode))
		return 0;
	char p[128];
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/holders", major(st.st_rdev), minor(st.st_rdev));
	DIR *d = opendir(p);
	if (d) {
		struct dirent *de;
		bool held = false;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				held = true;
		closedir(d);
		if (held)
			return werr_set(c->err, -EBUSY,
					"%s: device is held by another device (see %s); close it first",
					path, p);
	}
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	char mm[32];
	snprintf(mm, sizeof(mm), " %u:%u ", major(st.st_rdev), minor(st.st_rdev));
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, mm))
			return werr_set(c->err, -EBUSY, "%s: device is mounted; unmount it first", path);
	return 0;
}

static int open_files(struct conv *c)
{
	const struct conv_params *p = c->p;
	int rc = check_not_held(c, p->device);
	if (rc == 0 && p->header && access(p->header, F_OK) == 0)
		rc = check_not_held(c, p->header);
	if (rc < 0)
		return rc;
	rc = luks2_dev_open(p->device, true, true, &c->bfd, &c->dev_size, c->err);
	if (rc < 0)
		return rc;
	int fl = O_RDWR | O_CLOEXEC | (p->no_direct ? 0 : O_DIRECT);
	c->dfd = open(p->device, fl);
	if (c->dfd < 0 && errno == EINVAL && !p->no_direct)
		c->dfd = open(p->device, O_RDWR | O_CLOEXEC); /* no O_DIRECT here (tmpfs) */
	if (c->dfd < 0)
		return werr_set(c->err, -errno, "%s: cannot open: %s", p->device, strerror(errno));
	rc = luks2_lock(c->bfd, p->device, true, &c->lock, c->err);
	if (rc < 0)
		return rc;
	return 0;
}

static int open_header_file(struct conv *c, bool create)
{
	const char *h = c->p->header;
	int fl = O_RDWR | O_CLOEXEC;
	if (create)
		fl |= O_CREAT | O_EXCL;
	c->hfd_own = open(h, fl, 0600);
	if (c->hfd_own < 0)
		return werr_set(c->err, -errno, "%s: cannot %s the header file: %s", h,
				create ? "create" : "open", strerror(errno));
	c->created_hdr_file = create;
	if (create && ftruncate(c->hfd_own, (off_t)ENGINE_DETACHED_HDR_SIZE) < 0)
		return werr_set(c->err, -errno, "%s: %s", h, strerror(errno));
	return 0;
}

static int make_io(struct conv *c)
{
	c->fds[0] = c->dfd;
	c->fds[1] = c->detached ? c->hfd_own : c->dfd;
	int rc;
	switch (c->p->io_kind) {
	case CONV_IO_SYNC:
		rc = engine_io_sync_new(c->fds, &c->io, c->err);
		break;
	case CONV_IO_SIM:
		rc = engine_io_sim_new(c->fds, c->p->sim_loss_at, c->p->sim_seed, &c->io, c->err);
		break;
	default:
		rc = engine_io_uring_new(c->fds, 0, &c->io, c->err);
		break;
	}
	if (rc == 0) {
		c->io->hook = c->p->hook;
		c->io->hook_arg = c->p->hook_arg;
	}
	return rc;
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

static int token_from_json(json_t *j, struct wrapd_token *t)
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
static int load_keys(struct conv *c, bool with_new)
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
	if ((rc = luks2_conversion_set(c->hdr, c->state, c->err)) < 0 ||
	    (rc = luks2_hdr_validate(c->hdr, c->err)) < 0)
		return rc;
	/* prior = the head as it is; target = the header image, then zeros. */
	size_t hs2 = (size_t)(2 * c->hdr->hdr_size);
	uint8_t *prior = abuf(PARK_LEN), *target = abuf(PARK_LEN);
	if (!prior || !target) {
		free(prior);
		free(target);
		return -ENOMEM;
	}
	c->hdr->seqid = 1;
	rc = c->io->ops->pread(c->io, 0, prior, PARK_LEN, 0);
	if (rc == 0)
		rc = luks2_hdr_serialize(c->hdr, target, hs2, c->err);
	if (rc == 0)
		rc = park_write(c, PARK_KIND_ENCRYPT, prior, target);
	if (rc == 0)
		rc = unpark_head(c, prior, target);
	explicit_bzero(prior, PARK_LEN);
	free(prior);
	free(target);
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

/* ---- finishing --------------------------------------------------------------------- */

static int finish_header(struct conv *c)
{
	int rc = 0;
	if (c->op == CONV_REKEY) {
		struct wrapd_token tok = {0};
		rc = token_from_json(json_object_get(c->state, "new_token"), &tok);
		if (rc == 0)
			rc = wrapd_token_set(c->hdr, &tok, c->err);
		wrapd_token_free(&tok);
		int old = luks2_digest_for_segment(c->hdr, 0);
		unsigned nd = (unsigned)st_u64(c->state, "new_digest");
		struct luks2_segment *segs = NULL;
		size_t n = 0;
		if (rc == 0)
			rc = luks2_segments_get(c->hdr, &segs, &n, c->err);
		if (rc == 0) {
			for (size_t i = 0; i < n; i++)
				if (segs[i].digest == old)
					segs[i].digest = (int)nd;
			rc = luks2_segments_set(c->hdr, segs, n, c->err);
		}
		luks2_segments_free(segs, n);
		if (rc == 0 && old >= 0)
			rc = luks2_digest_remove(c->hdr, (unsigned)old, c->err);
	}
	if (rc < 0)
		return rc;
	json_decref(c->state);
	c->state = NULL;
	if ((rc = luks2_conversion_set(c->hdr, NULL, c->err)) < 0 ||
	    (rc = luks2_requirement_set(c->hdr, WRAPD_REQ_REENCRYPT, false, c->err)) < 0)
		return rc;
	/* Wipe the journal area: it held hashes of the old content. */
	if (c->op != CONV_ENCRYPT || !c->shift) {
		uint64_t areas = luks2_hdr_areas_size(c->hdr);
		uint64_t jlen = areas > ENGINE_JOURNAL_OFF ? areas - ENGINE_JOURNAL_OFF : 0;
		if (jlen > 2 * jslot_size(16ull << 20))
			jlen = 2 * jslot_size(16ull << 20);
		if (c->p->hotzone > (16ull << 20) && jlen < 2 * jslot_size(c->p->hotzone) &&
		    areas >= ENGINE_JOURNAL_OFF + 2 * jslot_size(c->p->hotzone))
			jlen = 2 * jslot_size(c->p->hotzone);
		if (jlen) {
			uint8_t *z = abuf((size_t)jlen);
			if (!z)
				return -ENOMEM;
			rc = c->io->ops->pwrite(c->io, 1, z, (size_t)jlen, ENGINE_JOURNAL_OFF);
			free(z);
			if (rc < 0)
				return rc;
		}
	}
	return hdr_commit(c);
}

/* Detached decrypt done: the header file must not open the plain device. */
static int retire_header_file(struct conv *c)
{
	size_t n = (size_t)(2 * c->hdr->hdr_size);
	uint8_t *z = abuf(n);
	if (!z)
		return -ENOMEM;
	int rc = c->io->ops->pwrite(c->io, 1, z, n, 0);
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 1);
	free(z);
	return rc;
}

/* ---- the entry point ---------------------------------------------------------------- */

static void conv_cleanup(struct conv *c)
{
	if (c->io)
		c->io->ops->free(c->io);
	luks2_unlock(&c->lock);
	if (c->dfd >= 0)
		close(c->dfd);
	if (c->bfd >= 0)
		close(c->bfd);
	if (c->hfd_own >= 0)
		close(c->hfd_own);
	luks2_hdr_free(c->hdr);
	json_decref(c->state);
	secbuf_free(&c->old_vk);
	secbuf_free(&c->new_vk);
	if (c->bubble)
		explicit_bzero(c->bubble, PARK_LEN);
	free(c->bubble);
}

/* Reads the header (device or file) and, when there is none at the head of
 * an attached device, looks for a park descriptor in the tail. */
static int find_state(struct conv *c, bool *have_hdr, struct park_desc *pd, uint8_t *prior,
		      uint8_t *target, bool *have_park, bool *torn_new_file)
{
	struct werr e2 = {0};
	int fd = c->detached ? c->hfd_own : c->bfd;
	*have_hdr = *have_park = *torn_new_file = false;
	int rc = -ENODEV;
	struct luks2_hdr *diag = NULL;
	if (fd >= 0)
		rc = luks2_hdr_read(fd, c->detached ? c->p->header : c->what, &c->hdr, &diag, &e2);
	/* Our first write of a new header file tears only the primary copy. */
	if (rc == -EINVAL && diag && c->detached &&
	    diag->copy[1].status == LUKS2_COPY_MISSING)
		*torn_new_file = true;
	luks2_hdr_free(diag);
	if (rc == 0) {
		*have_hdr = true;
		return 0;
	}
	if (rc != -ENODEV && rc != -EINVAL)
		return werr_set(c->err, rc, "%s", werr_str(&e2, rc));
	if (!c->detached) {
		int r = park_read(c, pd, prior, target);
		if (r == 0) {
			*have_park = true;
			return 0;
		}
		if (r != -ENOENT)
			return r;
	}
	if (rc == -EINVAL) {
		/* LUKS magic but no valid copy, and no park: not ours to guess. */
		if (c->detached)
			return rc; /* caller decides for a half-created header file */
		return werr_set(c->err, rc, "%s", werr_str(&e2, rc));
	}
	return -ENODEV;
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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int conv_run(const struct conv_params *p, struct conv_result *res, struct werr *err)
{
	struct conv C = {.p = p, .err = err, .what = p->device, .bfd = -1, .dfd = -1, .hfd_own = -1,
			 .lock = LUKS2_LOCK_INIT, .detached = p->header != NULL};
	struct conv *c = &C;
	struct conv_result R = {0};
	double t0 = now_s();
	int rc = open_files(c);
	if (rc < 0)
		goto out;
	if (c->detached) {
		struct stat st;
		bool exists = stat(p->header, &st) == 0;
		if (!exists && p->op != CONV_ENCRYPT) {
			rc = werr_set(err, -ENOENT, "%s: header file not found", p->header);
			goto out;
		}
		if ((rc = open_header_file(c, !exists)) < 0)
			goto out;
	}
	if ((rc = make_io(c)) < 0)
		goto out;

	bool have_hdr = false, have_park = false;
	struct park_desc pd = {0};
	uint8_t *prior = abuf(PARK_LEN), *target = abuf(PARK_LEN);
	if (!prior || !target) {
		free(prior);
		free(target);
		rc = -ENOMEM;
		goto out;
	}
	bool torn_new_file = false;
	rc = find_state(c, &have_hdr, &pd, prior, target, &have_park, &torn_new_file);
	if (rc == -EINVAL && torn_new_file && p->op == CONV_RESUME) {
		rc = werr_set(err, -ENOENT,
			      "%s: the header file was never completed, so nothing was converted; run 'wrapctl encrypt %s --header %s' again",
			      p->header, c->what, p->header);
		free(prior);
		free(target);
		goto out;
	}
	if (rc == -EINVAL && torn_new_file && p->op == CONV_ENCRYPT) {
		/* A header file we created but never completed: the device was
		 * not touched before the header was durable. Start again. */
		uint64_t hsz = 0;
		if (fd_size(c->hfd_own, &hsz) == 0 && hsz == ENGINE_DETACHED_HDR_SIZE)
			rc = -ENODEV;
	}
	if (rc == 0 && have_park) {
		/* Crash while the head was being (un)parked. */
		if (pd.kind == PARK_KIND_ENCRYPT && !head_has_target(c, prior, target)) {
			/* The header never reached the head: the park is stale. */
			have_park = false;
			rc = -ENODEV;
		} else if (pd.kind == PARK_KIND_ENCRYPT) {
			rc = unpark_head(c, prior, target);
			if (rc == 0)
				rc = luks2_hdr_read(c->bfd, c->what, &c->hdr, NULL, err);
			/* The buffered fd may cache the old head. */
			if (rc < 0) {
				uint8_t *hb = abuf(PARK_LEN);
				if (hb && c->io->ops->pread(c->io, 0, hb, PARK_LEN, 0) == 0)
					rc = luks2_hdr_parse(hb, PARK_LEN, c->what, &c->hdr, NULL, err);
				free(hb);
			}
			have_hdr = rc == 0;
			R.resumed = true;
		} else if (pd.kind == PARK_KIND_DECRYPT) {
			rc = unpark_head(c, prior, target);
			if (rc == 0)
				rc = park_clear(c);
			R.resumed = true;
			R.op = CONV_DECRYPT;
			free(prior);
			free(target);
			if (rc == 0 && p->op != CONV_DECRYPT && p->op != CONV_RESUME)
				rc = werr_set(err, -EALREADY,
					      "%s: finished an interrupted decrypt; the device is plain now",
					      c->what);
			goto out;
		} else {
			rc = werr_set(err, -EUCLEAN, "%s: unknown park descriptor", c->what);
		}
	}
	free(prior);
	free(target);
	prior = target = NULL;
	if (rc < 0 && rc != -ENODEV)
		goto out;

	if (!have_hdr && c->detached && !c->created_hdr_file && p->op == CONV_ENCRYPT &&
	    !torn_new_file && !blank_header_file(c)) {
		/* Never overwrite a file we did not create. */
		rc = werr_set(err, -EEXIST,
			      "%s: the header file exists and is not an interrupted wrapd encrypt; give a new path",
			      p->header);
		goto out;
	}
	if (!have_hdr) {
		/* Nothing converted yet: only encrypt may start here. */
		if (p->op != CONV_ENCRYPT) {
			rc = werr_set(err, p->op == CONV_RESUME ? -ENOENT : -ENODEV,
				      p->op == CONV_RESUME
					      ? "%s: no interrupted conversion to resume"
					      : "%s: not a wrapd volume (no LUKS2 header)",
				      c->what);
			goto out;
		}
		struct engine_fsinfo fi;
		if ((rc = encrypt_checks(c, &fi)) < 0)
			goto out;
		c->op = CONV_ENCRYPT;
		c->shift = !c->detached;
		if (c->shift) {
			if ((rc = start_encrypt_shift(c)) < 0)
				goto out;
		} else {
			c->seg_off = 0;
			c->size = c->dev_size;
			if ((rc = new_header(c, 0)) < 0)
				goto out;
			c->state = state_new(c, "inplace");
			if ((rc = hdr_commit(c)) < 0)
				goto out;
			c->hdr_committed = true;
		}
	} else {
		/* A header: resume its conversion, or start rekey/decrypt. */
		json_t *st = NULL;
		if ((rc = luks2_check_writable(c->hdr, c->what, err)) < 0)
			goto out;
		int g = luks2_conversion_get(c->hdr, &st, err);
		if (g < 0 && g != -ENOENT) {
			rc = g;
			goto out;
		}
		if (st && c->hdr->req_wrapd_reencrypt) {
			enum conv_op sop;
			if (op_from_name(st_str(st, "op"), &sop) < 0) {
				json_decref(st);
				rc = werr_set(err, -EUCLEAN, "%s: unknown conversion state", c->what);
				goto out;
			}
			if (p->op != CONV_RESUME && p->op != sop) {
				json_decref(st);
				rc = werr_set(err, -EBUSY,
					      "%s: an interrupted %s is in progress; finish it first with 'wrapctl resume %s'",
					      c->what, conv_op_name(sop), c->what);
				goto out;
			}
			c->state = st;
			c->op = sop;
			R.resumed = true;
			const char *layout = st_str(st, "layout");
			c->shift = layout && !strcmp(layout, "shift");
			c->hash_seed = st_u64(st, "seed");
			if ((rc = seg_geometry(c)) < 0)
				goto out;
			if (c->shift && c->op == CONV_ENCRYPT)
				c->U = st_u64(st, "moved");
			if (st_u64(st, "size") != c->size ||
			    (c->shift && c->op == CONV_ENCRYPT && c->U != c->size - (ENGINE_PARK_SIZE))) {
				rc = werr_set(err, -EUCLEAN,
					      "%s: the device size changed during the conversion; restore its size first",
					      c->what);
				goto out;
			}
			if ((rc = load_keys(c, true)) < 0)
				goto out;
		} else {
			json_decref(st);
			if (c->hdr->req_wrapd_reencrypt) {
				rc = werr_set(err, -EUCLEAN,
					      "%s: marked wrapd-reencrypt but holds no conversion state",
					      c->what);
				goto out;
			}
			if (p->op == CONV_ENCRYPT) {
				rc = werr_set(err, -EEXIST,
					      "%s: already a LUKS volume; 'wrapctl inspect %s' shows it",
					      c->detached ? p->header : c->what, c->what);
				goto out;
			}
			if (p->op == CONV_RESUME) {
				rc = werr_set(err, -ENOENT, "%s: no interrupted conversion to resume",
					      c->what);
				goto out;
			}
			if (!c->hdr->has_wrapd_token) {
				rc = werr_set(err, -EINVAL, "%s: not a wrapd volume (no wrapd-vault token)",
					      c->what);
				goto out;
			}
			c->op = p->op;
			if ((rc = seg_geometry(c)) < 0)
				goto out;
			if (c->op == CONV_DECRYPT && !c->detached && c->seg_off != ENGINE_SHIFT) {
				rc = werr_set(err, -EOPNOTSUPP,
					      "%s: decrypt in place needs the data at offset %llu",
					      c->what, (unsigned long long)ENGINE_SHIFT);
				goto out;
			}
			if (c->op == CONV_DECRYPT && c->detached && c->seg_off != 0) {
				rc = werr_set(err, -EOPNOTSUPP,
					      "%s: the detached header's data segment does not start at 0",
					      p->header);
				goto out;
			}
			c->shift = c->op == CONV_DECRYPT && !c->detached;
			if (c->shift && c->size < 2 * ENGINE_PARK_SIZE) {
				rc = werr_set(err, -ENOSPC, "%s: too small to decrypt in place", c->what);
				goto out;
			}
			if (c->op == CONV_REKEY) {
				if ((rc = start_rekey(c)) < 0)
					goto out;
			} else {
				c->state = state_new(c, c->shift ? "shift" : "inplace");
				if (c->shift) {
					json_object_del(c->state, "done");
					json_object_set_new(c->state, "phase", json_string("move"));
				}
				if ((rc = load_keys(c, false)) < 0 ||
				    (rc = luks2_requirement_set(c->hdr, WRAPD_REQ_REENCRYPT, true, err)) < 0)
					goto out;
			}
			/* The requirement and state are durable before any data moves. */
			if ((rc = hdr_commit(c)) < 0)
				goto out;
			c->hdr_committed = true;
		}
	}
	memcpy(R.uuid, c->hdr->uuid, sizeof(R.uuid) - 1);
	R.op = c->op;

	/* Progress accounting. */
	c->total = c->shift && c->op == CONV_ENCRYPT ? c->U : c->size;
	uint64_t d0 = st_u64(c->state, "done");
	if (d0 != UINT64_MAX && d0 <= c->total)
		c->done_bytes = c->shift && c->op == CONV_ENCRYPT ? c->U - d0 : d0;

	if (c->shift && c->op == CONV_ENCRYPT)
		rc = do_shift_encrypt(c);
	else if (c->shift)
		rc = do_shift_decrypt(c);
	else
		rc = do_inplace(c);
	if (rc < 0)
		goto out;
	if (c->shift && c->op == CONV_DECRYPT) {
		/* The header is gone: the device is plain. */
	} else if (c->detached && c->op == CONV_DECRYPT) {
		rc = retire_header_file(c);
	} else {
		rc = finish_header(c);
	}
out:
	if (rc == -EINTR) {
		R.interrupted = true;
		werr_set(err, -EINTR,
			 "%s: %s interrupted at a checkpoint; run 'wrapctl resume %s%s%s' to continue",
			 c->what, conv_op_name(c->op), c->what, c->detached ? " --header " : "",
			 c->detached ? p->header : "");
	}
	R.power_lost = c->io && engine_io_sim_lost(c->io);
	if (rc < 0 && c->created_hdr_file && !c->hdr_committed)
		(void)unlink(p->header); /* refused before anything was written */
	R.bytes = c->done_bytes;
	R.seconds = now_s() - t0;
	if (res)
		*res = R;
	conv_cleanup(c);
	return rc;
}

int conv_status(const char *device, const char *header, enum conv_op *op, struct werr *err)
{
	*op = CONV_RESUME;
	int fd = open(header ? header : device, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return werr_set(err, -errno, "%s: %s", header ? header : device, strerror(errno));
	struct luks2_hdr *h = NULL;
	struct werr e2 = {0};
	int rc = luks2_hdr_read(fd, device, &h, NULL, &e2);
	close(fd);
	if (rc == 0) {
		json_t *st = NULL;
		if (luks2_conversion_get(h, &st, NULL) == 0 && h->req_wrapd_reencrypt)
			(void)op_from_name(st_str(st, "op"), op);
		json_decref(st);
		luks2_hdr_free(h);
	}
	return 0;
}
