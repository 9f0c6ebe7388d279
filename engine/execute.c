/*
 * engine: execution. Runs the planned conversion through the pipeline with
 * a checkpoint (a header commit, after the journal for in-place hotzones)
 * before every hotzone, moves the decrypt bubble, and finishes: the header
 * without the conversion state, the park region and journal wiped, or the
 * header retired after a decrypt.
 */
#include "engine/internal.h"

/* ---- header commit through format/ and the I/O backend --------------------------------- */

static int hdr_pwrite(void *arg, const void *buf, size_t len, uint64_t off)
{
	struct conv *c = arg;
	return c->io->ops->pwrite(c->io, 1, buf, len, off);
}

static int hdr_sync(void *arg)
{
	struct conv *c = arg;
	return c->io->ops->fsync(c->io, 1);
}

/* Both copies in the FACTS order, seqid + 1, through format/'s one commit
 * function; the writes go through the backend so the power-loss simulator
 * can tear them. */
int hdr_commit(struct conv *c)
{
	if (c->state) {
		int rc = luks2_conversion_set(c->hdr, c->state, c->err);
		if (rc < 0)
			return rc;
	}
	struct luks2_writer w = {.pwrite = hdr_pwrite, .sync = hdr_sync, .arg = c};
	return luks2_hdr_commit(&w, c->hdr, c->what, c->err);
}

/* ---- engine runs with checkpoints --------------------------------------------------------- */

struct run_ctx {
	struct conv *c;
	uint64_t hotzone;
	bool bubble;      /* shift decrypt: keep the bubble out of the next hotzone */
	bool online;      /* one held zone: no commit at its end (the next one records it) */
	bool journaled;   /* online: the zone's journal and commit are durable */
};

static int bubble_write(struct conv *c, uint64_t where);

/*
 * The loop race: O_EXCL keeps mounts, mappings and other exclusive openers
 * off a block device for the whole conversion, but not a loop device (the
 * loop driver does not claim its backing device), and nothing keeps anything
 * off a regular file. A loop attached after the start would cache and write
 * around the conversion, so at each checkpoint (just committed, durable) the
 * one loop scan is asked again, and the conversion stops there when a loop
 * appeared.
 */
static int check_no_loop_since(struct conv *c)
{
	if (c->p->online)
		return 0; /* a file's mapping sits on a loop of it: that is the point */
	const struct bdev *b[2] = {&c->dv.dev, c->hf.fd >= 0 ? &c->hf : NULL};
	for (unsigned i = 0; i < 2; i++) {
		struct bdev_loop l;
		size_t n = 0;
		if (!b[i] || bdev_loops_backed_by(&b[i]->st, &l, 1, &n) < 0 || !n)
			continue;
		return werr_set(c->err, -EBUSY,
				"%s: loop device %s was attached to %s during the %s; stopped at a checkpoint: "
				"detach it (losetup -d %s), then run 'wrapctl resume %s%s%s'",
				c->what, l.dev, b[i]->path, conv_op_name(c->op), l.dev, c->what,
				c->detached ? " --header " : "", c->detached ? c->p->header : "");
	}
	return 0;
}

static int checkpoint_cb(void *arg, uint64_t done, const struct engine_hotzone *next)
{
	struct run_ctx *rx = arg;
	struct conv *c = rx->c;
	int rc;
	if (rx->online && !next)
		return 0; /* data fsynced; the next zone's commit (or the finish) records it */
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
	rc = hdr_commit(c);
	if (rc == 0 && next)
		rx->journaled = true;
	if (rc == 0 && next)
		rc = check_no_loop_since(c);
	return rc;
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

static int run_engine_rx(struct conv *c, uint64_t start, uint64_t end, bool desc,
			 uint64_t src_base, uint64_t dst_base, unsigned src_file, unsigned dst_file,
			 bool hash, uint64_t hotzone_max, struct run_ctx *rxp)
{
	/* Online: one hotzone is the whole held zone (the state names it as
	 * the guardian and resume expect), whatever the offline hotzone is. */
	uint64_t hz = rxp->online ? hotzone_max : c->p->hotzone ? c->p->hotzone : HOTZONE_DEFAULT;
	if (hz > hotzone_max)
		hz = hotzone_max;
	size_t chunk = c->p->chunk ? c->p->chunk : 1024 * 1024;
	if (hz < chunk)
		chunk = (size_t)hz;
	hz -= hz % chunk;
	struct run_ctx rx = *rxp;
	rx.c = c;
	rx.hotzone = hz;
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
		.hash_key = c->jkey.len ? c->jkey.data : NULL,
		.workers = c->p->workers,
		.checkpoint = checkpoint_cb,
		.progress = progress_cb,
		.cb_arg = &rx,
		.stop = c->p->stop,
	};
	int rc = engine_run(&r, c->err);
	*rxp = rx;
	return rc;
}

static int run_engine_x(struct conv *c, uint64_t start, uint64_t end, bool desc,
			uint64_t src_base, uint64_t dst_base, unsigned src_file, unsigned dst_file,
			bool hash, uint64_t hotzone_max, bool bubble)
{
	struct run_ctx rx = {.bubble = bubble};
	return run_engine_rx(c, start, end, desc, src_base, dst_base, src_file, dst_file, hash,
			     hotzone_max, &rx);
}

/* Online: one held zone [a,b) (one hotzone: journal + commit, then the
 * writes, then an fsync; no commit at its end). *journaled tells whether
 * the zone may have been written. */
int run_zone(struct conv *c, uint64_t a, uint64_t b, uint64_t jhz, bool *journaled)
{
	struct run_ctx rx = {.online = true};
	int rc = run_engine_rx(c, a, b, false, c->seg_off, c->seg_off, 0, 0, true, jhz, &rx);
	*journaled = rx.journaled;
	return rc;
}

static int run_engine(struct conv *c, uint64_t start, uint64_t end, bool desc, uint64_t src_base,
		      uint64_t dst_base, unsigned src_file, unsigned dst_file, bool hash,
		      uint64_t hotzone_max)
{
	return run_engine_x(c, start, end, desc, src_base, dst_base, src_file, dst_file, hash,
			    hotzone_max, false);
}

/* ---- in-place conversions (detached encrypt/decrypt, rekey) ---------------------- */

int inplace_zone(struct conv *c, uint64_t hz, uint64_t *out)
{
	size_t chunk = c->p->chunk ? c->p->chunk : 1024 * 1024;
	if (hz < chunk)
		chunk = (size_t)hz;
	hz -= hz % chunk;
	uint64_t jend = ENGINE_JOURNAL_OFF + 2 * jslot_size(hz);
	uint64_t areas = luks2_hdr_areas_size(c->hdr);
	if (!hz || jend > areas)
		return werr_set(c->err, -ENOSPC,
				"%s: the header's keyslots area (%llu bytes) is too small for the conversion journal",
				c->what, (unsigned long long)areas);
	*out = hz;
	return 0;
}

/* The journal's hotzone size (recorded in the state the first time) and
 * whether the header's keyslots area holds its two slots. */
int inplace_jhz(struct conv *c, uint64_t *jhzp)
{
	uint64_t hz;
	int rc = inplace_zone(c, c->p->hotzone ? c->p->hotzone : HOTZONE_DEFAULT, &hz);
	if (rc < 0)
		return rc;
	/* The journal slot size must stay what it was when the hotzone was journaled. */
	uint64_t jhz = st_u64(c->state, "jhotzone");
	if (jhz == UINT64_MAX) {
		st_set_u64(c->state, "jhotzone", hz);
		jhz = hz;
	}
	*jhzp = jhz;
	return 0;
}

static int do_inplace(struct conv *c)
{
	uint64_t jhz;
	int rc0 = inplace_jhz(c, &jhz);
	if (rc0 < 0)
		return rc0;
	uint64_t done = st_u64(c->state, "done");
	uint64_t a = st_u64(c->state, "hz_start"), e = st_u64(c->state, "hz_end");
	if (done == UINT64_MAX || done > c->size)
		return werr_set(c->err, -EUCLEAN, "%s: conversion state is damaged", c->what);
	if (a != UINT64_MAX && e != UINT64_MAX) {
		int rc = zone_from_journal(c, a, e);
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
		if (conv_stop_requested(c))
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

/* The plaintext the head gets at the end: the bubble, deciphered (issue 10
 * item 9: the bubble stays ciphertext while it waits below the data offset
 * and travels; a bubble_form-less state from an earlier version holds
 * plaintext already). */
static int bubble_plain(struct conv *c, uint8_t *out)
{
	memcpy(out, c->bubble, PARK_LEN);
	const char *form = st_str(c->state, "bubble_form");
	if (!form || strcmp(form, "cipher") || conv_xform(c) == ENGINE_XF_COPY)
		return 0;
	struct keys2 k;
	int rc = keys2_init(c, &k, ENGINE_XF_DECRYPT);
	if (rc == 0)
		rc = xts_crypt(&k.oldk, false, out, PARK_LEN, c->sector_size, 0);
	keys2_free(&k);
	return rc < 0 ? werr_set(c->err, rc, "%s: cannot decipher the start of the data", c->what)
		      : 0;
}

/* Fresh: the first L bytes of the data (ciphertext, as they are) become the
 * bubble, at the top of the keyslots area; the state names it after that. */
static int bubble_start(struct conv *c)
{
	int rc = c->io->ops->pread(c->io, 0, c->bubble, PARK_LEN, c->seg_off);
	if (rc < 0)
		return werr_set(c->err, rc, "%s: reading the start of the data failed", c->what);
	json_object_set_new(c->state, "bubble_form", json_string("cipher"));
	if ((rc = bubble_write(c, ENGINE_SHIFT - PARK_LEN)) < 0)
		return rc;
	st_set_u64(c->state, "done", PARK_LEN);
	return hdr_commit(c);
}

static int bubble_load(struct conv *c, uint64_t b)
{
	int rc = c->io->ops->pread(c->io, 0, c->bubble, PARK_LEN, b);
	uint8_t h[32];
	char hx[65];
	sha256(c->bubble, PARK_LEN, h);
	hex(h, 32, hx);
	const char *want = st_str(c->state, "bubble_sha");
	if (rc < 0 || !want || strcmp(hx, want))
		return werr_set(c->err, -EUCLEAN,
				"%s: the saved copy of the start of the volume is damaged; refusing to go on",
				c->what);
	return 0;
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
		if ((rc = bubble_start(c)) < 0)
			return rc;
		done = PARK_LEN;
	} else if ((rc = bubble_load(c, b)) < 0) {
		return rc;
	}
	c->done_bytes = done;
	/* One run; hotzones of at most OFF - 2L keep the bubble placeable. */
	rc = run_engine_x(c, done, c->size, false, c->seg_off, 0, 0, 0, false,
			  ENGINE_SHIFT - 2 * PARK_LEN, true);
	if (rc < 0)
		return rc;
	/* Unpark: prior = the header area as it is, target = the bubble's plaintext. */
	uint8_t *prior = abuf(PARK_LEN), *target = abuf(PARK_LEN);
	rc = prior && target ? 0 : -ENOMEM;
	if (rc == 0)
		rc = bubble_plain(c, target);
	if (rc == 0)
		rc = c->io->ops->pread(c->io, 0, prior, PARK_LEN, 0);
	if (rc == 0)
		rc = park_write(c, PARK_KIND_DECRYPT, prior, target);
	if (rc == 0)
		rc = unpark_head(c, prior, target);
	abuf_free(prior, PARK_LEN);
	abuf_free(target, PARK_LEN);
	if (rc == 0)
		rc = park_clear(c);
	return rc;
}

/* ---- finishing --------------------------------------------------------------------- */

int conv_finish_header(struct conv *c)
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
	/* The largest journal layout this conversion may have used. */
	uint64_t big = st_u64(c->state, "jhotzone");
	if (big == UINT64_MAX || big < c->p->hotzone)
		big = c->p->hotzone;
	if (c->p->online && big < CONV_ZONE_MAX)
		big = CONV_ZONE_MAX; /* a resume may have changed the zone size */
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
		if (big > (16ull << 20) && jlen < 2 * jslot_size(big) &&
		    areas >= ENGINE_JOURNAL_OFF + 2 * jslot_size(big))
			jlen = 2 * jslot_size(big);
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

/*
 * Detached decrypt done: the header file must not open the plain device.
 * The order matters (issue 10: a power loss here was not recovered). Wiping
 * both copies with one write and one fsync could leave, torn, a copy whose
 * magic survived but whose checksum no longer matches, and no valid copy:
 * resume refused the file. So first the one 512-byte sector of each copy
 * that holds its magic and checksum (sector writes are atomic: each copy is
 * then either whole, still naming the finished state, so resume retires it
 * again, or has no magic), fsync; then the rest of both copies, fsync.
 */
static int retire_header_file(struct conv *c)
{
	size_t hs = (size_t)c->hdr->hdr_size, n = 2 * hs;
	uint8_t *z = abuf(n);
	if (!z)
		return -ENOMEM;
	int rc = c->io->ops->pwrite(c->io, 1, z, 512, 0);
	if (rc == 0)
		rc = c->io->ops->pwrite(c->io, 1, z, 512, hs);
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 1);
	if (rc == 0)
		rc = c->io->ops->pwrite(c->io, 1, z, n, 0);
	if (rc == 0)
		rc = c->io->ops->fsync(c->io, 1);
	free(z);
	if (rc < 0)
		return werr_set(c->err, rc, "%s: wiping the header file failed: %s; run 'wrapctl resume %s --header %s'",
				c->p->header, strerror(-rc), c->what, c->p->header);
	return 0;
}

/* ---- the whole run ------------------------------------------------------------------- */

int conv_execute(struct conv *c)
{
	/* Progress accounting. */
	c->total = c->shift && c->op == CONV_ENCRYPT ? c->U : c->size;
	uint64_t d0 = st_u64(c->state, "done");
	if (d0 != UINT64_MAX && d0 <= c->total)
		c->done_bytes = c->shift && c->op == CONV_ENCRYPT ? c->U - d0 : d0;

	int rc;
	if (c->p->online)
		return online_execute(c);
	if (c->shift && c->op == CONV_ENCRYPT)
		rc = do_shift_encrypt(c);
	else if (c->shift)
		rc = do_shift_decrypt(c);
	else
		rc = do_inplace(c);
	if (rc < 0)
		return rc;
	if (c->shift && c->op == CONV_DECRYPT)
		return 0; /* The header is gone: the device is plain. */
	if (c->detached && c->op == CONV_DECRYPT)
		return retire_header_file(c);
	return conv_finish_header(c);
}
