/*
 * erase: crypto-erase. Keys first: the wrapped VK (the wrapd-vault token),
 * a rekey's new wrapped VK (in the conversion state) and every VK digest are
 * destroyed in both header copies (the segments get the digest of a random
 * key nobody holds, so the header stays valid LUKS2). Without a wrapped VK
 * the encrypted data is unreadable, whatever happens next.
 *
 * A volume whose conversion was interrupted also holds plaintext (issue 10
 * item 1): erase_plan.c lists the regions that may, they are recorded in the
 * header as an "erase" state together with the key destruction, overwritten
 * with zeros (not discarded: a discard need not zero), and the state is
 * removed. An interrupted erase is finished by running it again. Last, the
 * data area is discarded where the device allows it.
 */
#include "volume/internal.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <openssl/rand.h>
#include <sys/ioctl.h>
#include <time.h>

/* Refuses while anything uses the volume: a mapping of it anywhere (by dm
 * UUID), or any user of its data device or header file (blockdev/: mounts,
 * holders, loop devices at any offset, exclusive openers). */
static int check_not_open(const struct vdev *vd, struct werr *err)
{
	char prefix[80];
	volume_dm_uuid_prefix(vd->d.hdr->uuid, prefix, sizeof(prefix));
	struct sysdm *m = NULL;
	size_t n = 0;
	int r = sysdm_list(prefix, &m, &n);
	if (r < 0)
		return r;
	if (n) {
		r = werr_set(err, -EBUSY, "%s: volume is open as '%s'; run 'wrapctl close %s' first",
			     vd->path, m[0].name, m[0].name);
		free(m);
		return r;
	}
	free(m);
	r = bdev_check_unused(&vd->d.dev, err);
	if (r == 0 && vd->d.hdev.fd >= 0)
		r = bdev_check_unused(&vd->d.hdev, err);
	return r;
}

static void human(uint64_t b, char *buf, size_t n)
{
	if (b >= (1ull << 30))
		snprintf(buf, n, "%.1f GiB", (double)b / (1ull << 30));
	else if (b >= (1ull << 20) || !b)
		snprintf(buf, n, "%.1f MiB", (double)b / (1ull << 20));
	else
		snprintf(buf, n, "%.1f KiB", (double)b / 1024);
}

/* The data segment and header geometry the plan needs. */
static int plan_init(struct vdev *vd, struct erase_plan *pl, struct werr *err)
{
	const struct luks2_hdr *h = vd->d.hdr;
	memset(pl, 0, sizeof(*pl));
	struct erase_geom *g = &pl->g;
	if (fd_size(vd->d.dev.fd, &g->dev_size) < 0)
		return werr_set(err, -EIO, "%s: cannot read its size", vd->path);
	g->hdr_size = h->hdr_size;
	g->data_offset = h->data_offset;
	g->seg_end = h->data_dynamic ? g->dev_size : h->data_offset + h->data_size;
	if (g->seg_end > g->dev_size)
		g->seg_end = g->dev_size;
	g->detached = vd->d.hdev.fd >= 0;
	if (g->detached && fd_size(vd->d.hdev.fd, &g->hdr_file_size) < 0)
		return werr_set(err, -EIO, "%s: cannot read its size", vd->d.hdr_path);
	json_t *st = NULL;
	if (h->has_conversion_state) {
		/* An unreadable state (two tokens) still gets the widest plan. */
		struct werr e2;
		werr_clear(&e2);
		if (luks2_conversion_get(h, &st, &e2) < 0)
			st = json_pack("{s:s}", "op", "unknown");
		if (!st)
			return -ENOMEM;
		erase_plan_from_state(st, pl);
		json_decref(st);
	}
	/* Keyslots (not wrapd's, but a header may carry them): their area holds
	 * the VK wrapped by a passphrase. */
	if (h->n_keyslots) {
		uint64_t a = 2 * h->hdr_size;
		erase_plan_add(pl, g->detached ? ERASE_ON_HEADER : ERASE_ON_DATA, a,
			       a + h->keyslots_size, true, "keyslots area");
		erase_plan_merge(pl);
		if (!pl->conversion[0])
			snprintf(pl->conversion, sizeof(pl->conversion), "keyslots area");
	}
	return 0;
}

/* Every digest: the segments get the digest of a random key nobody holds,
 * every other digest (a rekey's new one) is removed. */
static int destroy_digests(struct luks2_hdr *h, struct volume_erase_report *rep, struct werr *err)
{
	int old = luks2_digest_for_segment(h, 0);
	unsigned nid = UINT_MAX;
	int r = 0;
	if (old >= 0) {
		_cleanup_secbuf_ struct secbuf junk = {0};
		struct luks2_segment *segs = NULL;
		size_t ns = 0;
		r = secbuf_alloc(&junk, h->key_size ? h->key_size : WRAPD_VK_BYTES);
		if (r < 0)
			return r;
		junk.len = junk.cap;
		if (RAND_bytes(junk.data, (int)junk.len) != 1)
			return werr_set(err, -EIO, "no random bytes from OpenSSL");
		r = luks2_digest_add(h, &junk, 0, &nid, err);
		if (r == 0)
			r = luks2_segments_get(h, &segs, &ns, err);
		if (r == 0) {
			for (size_t i = 0; i < ns; i++)
				if (segs[i].digest >= 0)
					segs[i].digest = (int)nid;
			r = luks2_segments_set(h, segs, ns, err);
			luks2_segments_free(segs, ns);
		}
		if (r < 0)
			return r;
		rep->digest_destroyed = true;
	}
	/* The ids first: each removal swaps the JSON tree. */
	unsigned ids[64];
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(h->json, "digests"), k, v)
	{
		uint64_t id;
		if (parse_u64(k, &id) == 0 && id != nid && n < ARRAY_SIZE(ids))
			ids[n++] = (unsigned)id;
	}
	for (size_t i = 0; i < n && r == 0; i++)
		r = luks2_digest_remove(h, ids[i], err);
	if (r == 0)
		rep->digests = (unsigned)n;
	return r;
}

/* Step 1, milliseconds: no wrapped key and no digest is left in either
 * header copy; the regions still to overwrite are recorded (requirement
 * wrapd-reencrypt set, so nothing activates the volume meanwhile). */
static int destroy_keys(struct vdev *vd, const struct erase_plan *pl,
			struct volume_erase_report *rep, struct werr *err)
{
	struct luks2_hdr *h = vd->d.hdr;
	int r;
	if (vd->have_tok) {
		if ((r = wrapd_token_remove(h, err)) < 0)
			return r;
		rep->token_removed = true;
		rep->wrapped_keys++;
	}
	if (h->has_conversion_state) {
		json_t *st = NULL;
		struct werr e2;
		werr_clear(&e2);
		if (luks2_conversion_get(h, &st, &e2) == 0 &&
		    json_is_object(json_object_get(st, "new_token")))
			rep->wrapped_keys++;
		json_decref(st);
		if ((r = luks2_conversion_set(h, NULL, err)) < 0)
			return r;
	}
	if ((r = destroy_digests(h, rep, err)) < 0)
		return werr_prefix(err, r, "%s", vd->d.hdr_path);
	if (pl->n) {
		json_t *es = erase_plan_state(pl);
		if (!es)
			return -ENOMEM;
		r = luks2_conversion_set(h, es, err);
		json_decref(es);
		if (r < 0)
			return r;
	}
	if ((r = luks2_requirement_set(h, WRAPD_REQ_REENCRYPT, pl->n > 0, err)) < 0)
		return r;
	r = luks2_hdr_write(luks2_device_hfd(&vd->d), h, vd->d.hdr_path, err);
	if (r == 0)
		rep->copies_written = 2;
	return r;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Step 2: zeros over the regions of the plan that may hold a wrapped key
 * (keys) or the others, each file fsynced. again: the command that finishes
 * an interrupted erase. */
static int overwrite(struct vdev *vd, const struct erase_plan *pl, bool keys, const char *again,
		     struct volume_erase_report *rep, struct werr *err)
{
	const size_t chunk = 1024 * 1024;
	uint8_t *z = calloc(1, chunk);
	if (!z)
		return -ENOMEM;
	double t0 = now_s();
	int r = 0;
	bool used[2] = {false, false};
	for (size_t i = 0; i < pl->n && r == 0; i++) {
		const struct erase_region *g = &pl->r[i];
		if (g->keys != keys)
			continue;
		int fd = g->on == ERASE_ON_HEADER ? vd->d.hdev.fd : vd->d.dev.fd;
		const char *path = g->on == ERASE_ON_HEADER ? vd->d.hdr_path : vd->path;
		used[g->on] = true;
		for (uint64_t o = 0; o < g->len && r == 0; o += chunk) {
			size_t n = g->len - o < chunk ? (size_t)(g->len - o) : chunk;
			r = write_full_at(fd, z, n, (off_t)(g->off + o));
			if (r < 0)
				r = werr_set(err, r, "%s: overwriting %s at byte %llu failed: %s; the header holds no key any more; run '%s' to finish",
					     path, g->what, (unsigned long long)(g->off + o),
					     strerror(-r), again);
		}
		rep->overwritten += r == 0 ? g->len : 0;
	}
	free(z);
	for (unsigned f = 0; f < 2 && r == 0; f++) {
		int fd = f == ERASE_ON_HEADER ? vd->d.hdev.fd : vd->d.dev.fd;
		if (used[f] && fsync(fd) < 0)
			r = werr_set(err, -errno, "%s: fsync after the overwrite failed: %s; run '%s' to finish",
				     f == ERASE_ON_HEADER ? vd->d.hdr_path : vd->path, strerror(errno),
				     again);
	}
	rep->overwrite_seconds += now_s() - t0;
	return r;
}

/* "data [16.0 KiB, 40.0 MiB) below the data offset; ..." */
static void describe(const struct vdev *vd, const struct erase_plan *pl, char *out, size_t n)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < pl->n && o < n; i++) {
		const struct erase_region *g = &pl->r[i];
		char a[32], b[32];
		human(g->off, a, sizeof(a));
		human(g->off + g->len, b, sizeof(b));
		int w = snprintf(out + o, n - o, "%s%s [%s, %s): %s", i ? "; " : "",
				 g->on == ERASE_ON_HEADER ? vd->d.hdr_path : vd->path, a, b, g->what);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

/* Step 3: the whole data area, where the device allows it. */
static void discard_data(struct vdev *vd, bool no_discard, struct volume_erase_report *rep)
{
	uint64_t size = 0, off = vd->d.hdr->data_offset;
	if (fd_size(vd->d.dev.fd, &size) < 0 || size <= off) {
		snprintf(rep->data_action, sizeof(rep->data_action), "no data area to discard");
		return;
	}
	uint64_t len = size - off;
	char hs[32];
	human(len, hs, sizeof(hs));
	if (no_discard) {
		snprintf(rep->data_action, sizeof(rep->data_action),
			 "left in place (--no-discard): %s, unreadable without the key", hs);
		return;
	}
	if (S_ISBLK(vd->d.dev.st.st_mode)) {
		uint64_t range[2] = {off, len};
		if (ioctl(vd->d.dev.fd, BLKDISCARD, range) == 0)
			snprintf(rep->data_action, sizeof(rep->data_action),
				 "discarded %s of data (BLKDISCARD)", hs);
		else
			snprintf(rep->data_action, sizeof(rep->data_action),
				 "data area left in place (%s: BLKDISCARD: %s); it is unreadable without the key",
				 hs, strerror(errno));
	} else {
		if (fallocate(vd->d.dev.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len) == 0)
			snprintf(rep->data_action, sizeof(rep->data_action),
				 "punched holes over %s of data (file size kept)", hs);
		else
			snprintf(rep->data_action, sizeof(rep->data_action),
				 "data area left in place (%s: punch hole: %s); it is unreadable without the key",
				 hs, strerror(errno));
	}
	(void)fsync(vd->d.dev.fd);
}

int volume_erase_opts(const struct volume_ctx *ctx, const char *device, const char *header,
		      const struct volume_erase_opts *opts, struct volume_erase_report *rep,
		      struct werr *err)
{
	(void)ctx;
	static const struct volume_erase_opts none = {0};
	struct vdev vd = VDEV_INIT;
	struct erase_plan pl;
	int r;
	memset(rep, 0, sizeof(*rep));
	if (!opts)
		opts = &none;

	/* VDEV_EXCL: a block device stays ours until the end (no mount or
	 * mapping can start on it meanwhile). */
	r = vdev_open(&vd, device, header, VDEV_WRITE | VDEV_LOCK_EX | VDEV_EXCL, err);
	if (r == 0)
		r = check_not_open(&vd, err);
	if (r == 0)
		r = luks2_check_writable(vd.d.hdr, vd.d.hdr_path, err);
	if (r == 0)
		r = plan_init(&vd, &pl, err);
	if (r < 0)
		goto out;
	if (vd.d.hdr->has_conversion_state)
		snprintf(rep->conversion, sizeof(rep->conversion), "%s", pl.conversion);

	/* 1. The keys, in both header copies. */
	if ((r = destroy_keys(&vd, &pl, rep, err)) < 0)
		goto out;

	/* 2. A parked header image (and keyslots) right away: they hold the
	 * wrapped key too. Then whatever may hold plaintext; then the state goes. */
	if (pl.n) {
		char again[2 * PATH_MAX + 64];
		snprintf(again, sizeof(again), "wrapctl erase --yes%s%s %s", header ? " --header " : "",
			 header ? header : "", vd.spec);
		describe(&vd, &pl, rep->overwrite_what, sizeof(rep->overwrite_what));
		if ((r = overwrite(&vd, &pl, true, again, rep, err)) < 0)
			goto out;
		if (opts->notice) {
			char line[3 * PATH_MAX], hb[32];
			human(erase_plan_bytes(&pl) - rep->overwritten, hb, sizeof(hb));
			snprintf(line, sizeof(line),
				 "%s: keys destroyed; now overwriting with zeros %s that may hold plaintext (found: %s): this writes every byte, as long as the device takes to write %s; if it stops, run '%s' to finish",
				 vd.spec, hb, pl.conversion, hb, again);
			opts->notice(opts->notice_arg, line);
		}
		if ((r = overwrite(&vd, &pl, false, again, rep, err)) < 0)
			goto out;
		if ((r = luks2_conversion_set(vd.d.hdr, NULL, err)) < 0 ||
		    (r = luks2_requirement_set(vd.d.hdr, WRAPD_REQ_REENCRYPT, false, err)) < 0 ||
		    (r = luks2_hdr_write(luks2_device_hfd(&vd.d), vd.d.hdr, vd.d.hdr_path, err)) < 0)
			goto out;
	}

	/* 3. The data area. */
	discard_data(&vd, opts->no_discard, rep);
out:
	vdev_close(&vd);
	return r;
}

int volume_erase(const struct volume_ctx *ctx, const char *device, const char *header,
		 struct volume_erase_report *rep, struct werr *err)
{
	return volume_erase_opts(ctx, device, header, NULL, rep, err);
}
