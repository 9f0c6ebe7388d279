/*
 * engine: recovery. What an interrupted conversion left behind, and how it
 * is taken up again: the header (or, while the head of an attached device
 * was being rewritten, the park descriptor in the tail), and an in-place
 * hotzone rebuilt from its journal.
 */
#include "engine/internal.h"

/* ---- cipher helpers for recovery and finishing ---------------------------------------- */

void keys2_free(struct keys2 *k)
{
	xts_key_free(&k->oldk);
	xts_key_free(&k->newk);
}

int keys2_init(struct conv *c, struct keys2 *k, enum engine_xform xf)
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

/*
 * Recovers an in-place hotzone after a crash: each 512-byte sub-sector that
 * still hashes to its journaled old value is old, any other was written and
 * is new. XTS blocks are independent, so a sector mixing both is rebuilt by
 * taking the old form of its new sub-sectors (the inverse transform) and
 * converting the whole sector.
 */
int recover_hotzone(struct conv *c, uint64_t a, uint64_t e, const uint64_t *hashes)
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
			old[j] = engine_jhash512(c->jkey.len ? c->jkey.data : NULL, c->hash_seed,
						 s + j * 512) == hashes[(o / 512) + j];
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
	abuf_free(buf, n);
	abuf_free(tmp, ss);
	keys2_free(&k);
	return rc;
}

/* The state names the journaled hotzone [a,e): checked against the state
 * (it starts at done, within the device, within the journal's hotzone size
 * "jhotzone", which places the slots), its hashes read from the slot the
 * state names (and checked against the state's SHA-256), then
 * recover_hotzone. Offline resume, online repair (the guardian's too, from
 * the header it reread) and opening in the middle all finish a zone here. */
int zone_from_journal(struct conv *c, uint64_t a, uint64_t e)
{
	uint64_t done = st_u64(c->state, "done"), jhz = st_u64(c->state, "jhotzone");
	if (jhz == UINT64_MAX || a != done || e <= a || e > c->size || (e - a) > jhz)
		return werr_set(c->err, -EUCLEAN, "%s: conversion state is damaged", c->what);
	size_t hlen = (size_t)((e - a) / 512) * 8;
	uint64_t *hashes = abuf(hlen);
	if (!hashes)
		return -ENOMEM;
	uint64_t slot = st_u64(c->state, "jslot");
	int rc = journal_read(c, slot == 1 ? 1 : 0, jhz, a, e, st_str(c->state, "jsha"), hashes);
	if (rc == 0)
		rc = recover_hotzone(c, a, e, hashes);
	abuf_free(hashes, hlen);
	return rc;
}

/* Reads the header (device or file) and, when there is none at the head of
 * an attached device, looks for a park descriptor in the tail. */
static int find_state(struct conv *c, struct park_desc *pd, uint8_t *prior, uint8_t *target,
		      bool *have_park)
{
	struct werr e2 = {0};
	int fd = c->detached ? c->hfd_own : c->bfd;
	c->have_hdr = c->torn_new_file = *have_park = false;
	int rc = -ENODEV;
	struct luks2_hdr *diag = NULL;
	if (fd >= 0)
		rc = luks2_hdr_read(fd, c->detached ? c->p->header : c->what, &c->hdr, &diag, &e2);
	/* Our first write of a new header file tears only the primary copy. */
	if (rc == -EINVAL && diag && c->detached &&
	    diag->copy[1].status == LUKS2_COPY_MISSING)
		c->torn_new_file = true;
	luks2_hdr_free(diag);
	if (rc == 0) {
		c->have_hdr = true;
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

/* A park descriptor was found (and the header at the head is not valid):
 * the crash came while the head was being (un)parked. */
static int recover_park(struct conv *c, const struct park_desc *pd, const uint8_t *prior,
			const uint8_t *target)
{
	int rc;
	if (pd->kind == PARK_KIND_ENCRYPT) {
		/* The header never reached the head: the park is stale. */
		if (!head_has_target(c, prior, target))
			return -ENODEV;
		rc = unpark_head(c, prior, target);
		if (rc == 0)
			rc = luks2_hdr_read(c->bfd, c->what, &c->hdr, NULL, c->err);
		/* The buffered fd may cache the old head. */
		if (rc < 0) {
			uint8_t *hb = abuf(PARK_LEN);
			if (hb && c->io->ops->pread(c->io, 0, hb, PARK_LEN, 0) == 0)
				rc = luks2_hdr_parse(hb, PARK_LEN, c->what, &c->hdr, NULL, c->err);
			abuf_free(hb, PARK_LEN);
		}
		c->have_hdr = rc == 0;
		c->resumed = true;
		return rc;
	}
	if (pd->kind == PARK_KIND_DECRYPT) {
		rc = unpark_head(c, prior, target);
		if (rc == 0)
			rc = park_clear(c);
		c->resumed = true;
		c->finished = true;
		c->op = CONV_DECRYPT;
		if (rc == 0 && c->p->op != CONV_DECRYPT && c->p->op != CONV_RESUME)
			rc = werr_set(c->err, -EALREADY,
				      "%s: finished an interrupted decrypt; the device is plain now",
				      c->what);
		return rc;
	}
	return werr_set(c->err, -EUCLEAN, "%s: unknown park descriptor", c->what);
}

int recover_head(struct conv *c)
{
	const struct conv_params *p = c->p;
	struct park_desc pd = {0};
	bool have_park = false;
	uint8_t *prior = abuf(PARK_LEN), *target = abuf(PARK_LEN);
	int rc = -ENOMEM;
	if (prior && target)
		rc = find_state(c, &pd, prior, target, &have_park);
	if (rc == -EINVAL && c->torn_new_file && p->op == CONV_RESUME) {
		rc = werr_set(c->err, -ENOENT,
			      "%s: the header file was never completed, so nothing was converted; run 'wrapctl encrypt %s --header %s' again",
			      p->header, c->what, p->header);
	} else if (rc == -EINVAL && c->torn_new_file && p->op == CONV_ENCRYPT) {
		/* A header file we created but never completed: the device was
		 * not touched before the header was durable. Start again. */
		uint64_t hsz = 0;
		if (fd_size(c->hfd_own, &hsz) == 0 && hsz == ENGINE_DETACHED_HDR_SIZE)
			rc = -ENODEV;
	} else if (rc == 0 && have_park) {
		rc = recover_park(c, &pd, prior, target);
	}
	abuf_free(prior, PARK_LEN);
	abuf_free(target, PARK_LEN);
	return rc;
}
