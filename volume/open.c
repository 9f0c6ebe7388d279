/*
 * open: header -> Vault decrypt (batched per Transit key) -> digest check ->
 * logon key -> dm-crypt mapping naming the key -> key removed -> VK wiped.
 *
 * Cleanup discipline: per volume, everything acquired after the decrypt (the
 * VK in locked memory, a loop device, the keyring key) is held in a variable
 * whose cleanup undoes it, and only a fully created mapping "takes" them.
 * So every failure leaves no mapping, no loop device we attached, no key.
 */
#include "volume/internal.h"
#include "dm/dm.h"
#include "keyring/keyring.h"

#include <fcntl.h>
#include <jansson.h>
#include <sys/sysmacros.h>

struct oreq {
	struct volume_open_req *req;
	struct vdev vd;
	size_t grp;
	bool ready;               /* passed phase 1, waits for its VK */
	struct secbuf vk;
	/* In the middle of a rekey: the split table, with the new key too
	 * (unwrapped in the same batch as the old ones of its Transit key). */
	bool split;
	struct wrapd_token newtok;
	size_t ngrp;
	struct secbuf nvk;
};

static void req_fail(struct volume_open_req *req, int rc, const struct werr *e)
{
	req->rc = rc;
	snprintf(req->msg, sizeof(req->msg), "%s", werr_str(e, rc));
}

/* dev_t of a block device by kernel name ("loop0", "sda1"). */
static int kname_devt(const char *kname, dev_t *out)
{
	char p[300], v[32] = "";
	snprintf(p, sizeof(p), "/sys/class/block/%s/dev", kname);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, v, sizeof(v) - 1);
	if (n <= 0)
		return -EIO;
	v[n] = '\0';
	unsigned ma, mi;
	if (sscanf(v, "%u:%u", &ma, &mi) != 2)
		return -EINVAL;
	*out = makedev(ma, mi);
	return 0;
}

/* Is the block device kname (a sysfs slave) this volume's device? */
static bool slave_is(const char *kname, const struct vdev *vd)
{
	dev_t d = 0;
	if (!kname[0] || kname_devt(kname, &d) < 0)
		return false;
	if (S_ISBLK(vd->d.dev.st.st_mode))
		return d == vd->d.dev.st.st_rdev;
	/* A file: the slave must be a loop device on that file. */
	char p[300];
	snprintf(p, sizeof(p), "/dev/%s", kname);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	dev_t bdev;
	ino_t ino;
	uint64_t off;
	if (loop_backing(fd, &bdev, &ino, &off) < 0)
		return false;
	return bdev == vd->d.dev.st.st_dev && ino == vd->d.dev.st.st_ino && off == 0;
}

/* Does one of the mapping's backing devices (sysfs slaves) hold this
 * volume? (In the middle of an online rekey the zone device is one too.) */
bool vdev_backs_mapping(const struct sysdm *m, const struct vdev *vd)
{
	char p[300];
	snprintf(p, sizeof(p), "/sys/class/block/%s/slaves", m->kname);
	DIR *d = opendir(p);
	if (!d)
		return slave_is(m->slaves, vd);
	bool found = false;
	for (struct dirent *e; !found && (e = readdir(d));)
		if (e->d_name[0] != '.')
			found = slave_is(e->d_name, vd);
	closedir(d);
	return found;
}

/* Phase 1: header checks and idempotency. 1 = already open (done). */
static int prepare(const struct volume_ctx *ctx, struct oreq *o, struct vgroups *gs,
		   struct werr *err)
{
	struct volume_open_req *req = o->req;
	int r;
	if (!dmcrypt_name_valid(req->name))
		return werr_set(err, -EINVAL,
				"'%s' is not a usable mapping name; use 1-%d of [A-Za-z0-9_.+@-]",
				req->name, VOLUME_NAME_MAX);
	r = vdev_open(&o->vd, req->device, req->header, VDEV_NEED_TOKEN, err);
	if (r < 0)
		return r;
	struct vdev *vd = &o->vd;
	r = luks2_check_activatable(vd->d.hdr, vd->d.hdr_path, err);
	if (r < 0) {
		/* A rekey in progress (wrapd's own requirement, nothing else)
		 * opens with both keys. */
		struct werr e2 = {0};
		if (!vd->d.hdr->req_wrapd_reencrypt || vd->d.hdr->req_unknown ||
		    vd->d.hdr->req_cryptsetup_reencrypt ||
		    conv_rekey_new_token(&vd->d, &o->newtok, &e2) < 0)
			return r;
		o->split = true;
	}

	/* Idempotency, from sysfs (works on kernels without dm too). */
	char want_uuid[DMCRYPT_UUID_MAX + 1], prefix[80];
	r = dmcrypt_dm_uuid(vd->d.hdr->uuid, req->name, want_uuid, sizeof(want_uuid));
	if (r < 0)
		return werr_set(err, r, "%s: cannot build a dm UUID for name '%s'", vd->d.hdr_path,
				req->name);
	struct sysdm m;
	if (sysdm_by_name(req->name, &m) == 0) {
		if (!strcmp(m.uuid, want_uuid) && vdev_backs_mapping(&m, vd)) {
			req->already_open = true;
			return 1;
		}
		return werr_set(err, -EEXIST,
				"%s: the name '%s' is already used by another mapping (dm UUID '%s'); pick another name or close it",
				vd->path, req->name, m.uuid);
	}
	volume_dm_uuid_prefix(vd->d.hdr->uuid, prefix, sizeof(prefix));
	struct sysdm *same = NULL;
	size_t nsame = 0;
	if (sysdm_list(prefix, &same, &nsame) == 0 && nsame) {
		r = werr_set(err, -EBUSY, "%s: volume %s is already open as '%s'; close it first",
			     vd->path, vd->d.hdr->uuid, same[0].name);
		free(same);
		return r;
	}
	free(same);

	if (o->split) {
		/* The interrupted zone is finished (written) before the mapping
		 * exists: the device read-write and exclusive, the header locked. */
		if (req->flags & VOLUME_READ_ONLY)
			return werr_set(err, -EROFS,
					"%s: a rekey is in progress; open it read-write, or finish it first with 'wrapctl resume %s'",
					vd->path, vd->path);
		/* A zone device left by an online rekey whose mapping is gone
		 * holds the device: nothing uses it any more. */
		struct dmcrypt_ctx zd;
		dmcrypt_ctx_init(&zd, ctx->log);
		if (ctx->udev >= 0)
			zd.udev = ctx->udev;
		(void)online_zone_cleanup(&zd, vd->d.hdr->uuid);
		vdev_close(vd);
		struct vdev init = VDEV_INIT;
		*vd = init;
		wrapd_token_free(&o->newtok);
		r = vdev_open(vd, req->device, req->header,
			      VDEV_NEED_TOKEN | VDEV_WRITE | VDEV_LOCK_EX | VDEV_UNUSED, err);
		if (r < 0)
			return r;
		if ((r = conv_rekey_new_token(&vd->d, &o->newtok, err)) < 0)
			return r == -EOPNOTSUPP ? werr_set(err, -EAGAIN, "%s: the rekey state changed while opening; try again", vd->path) : r;
	}
	/* The token must be bound to this volume before we ask Vault. */
	_cleanup_free_ char *ctxb64 = NULL;
	r = vault_context_for_uuid(vd->d.hdr->uuid, &ctxb64);
	if (r < 0)
		return werr_set(err, r, "%s: cannot derive the Vault context", vd->d.hdr_path);
	if (strcmp(ctxb64, vd->tok.context) || (o->split && strcmp(ctxb64, o->newtok.context)))
		return werr_set(err, -EPERM,
				"%s: the wrapd-vault token is bound to another volume (its context is not this header's UUID %s); refusing",
				vd->d.hdr_path, vd->d.hdr->uuid);
	r = vgroups_get(ctx, gs, &vd->tok, &o->grp, err);
	if (r == 0 && o->split)
		r = vgroups_get(ctx, gs, &o->newtok, &o->ngrp, err);
	return r;
}

static unsigned header_flags(const struct luks2_hdr *hdr)
{
	unsigned f = 0;
	json_t *fl = json_object_get(json_object_get(hdr->json, "config"), "flags");
	size_t i;
	json_t *v;
	json_array_foreach(fl, i, v) {
		const char *s = json_string_value(v);
		if (!s)
			continue;
		if (!strcmp(s, "allow-discards"))
			f |= DMCRYPT_ALLOW_DISCARDS;
		else if (!strcmp(s, "same-cpu-crypt"))
			f |= DMCRYPT_SAME_CPU_CRYPT;
		else if (!strcmp(s, "submit-from-crypt-cpus"))
			f |= DMCRYPT_SUBMIT_FROM_CRYPT_CPUS;
		else if (!strcmp(s, "no-read-workqueue"))
			f |= DMCRYPT_NO_READ_WORKQUEUE;
		else if (!strcmp(s, "no-write-workqueue"))
			f |= DMCRYPT_NO_WRITE_WORKQUEUE;
	}
	return f;
}

/* Phase 3: with the VK in hand, build the mapping. */
static int activate_split(const struct volume_ctx *ctx, const struct dmcrypt_ctx *dctx,
			  struct oreq *o, struct vgroups *gs, struct online_geom *g,
			  struct werr *err);

static int activate(const struct volume_ctx *ctx, const struct dmcrypt_ctx *dctx, struct oreq *o,
		    struct vgroups *gs, struct werr *err)
{
	struct volume_open_req *req = o->req;
	struct vdev *vd = &o->vd;
	bool ro = req->flags & VOLUME_READ_ONLY;
	int r;

	r = luks2_vk_verify(vd->d.hdr, &o->vk, err);
	if (r < 0) {
		if (r == -EPERM)
			return werr_set(err, -EPERM,
					"%s: the key Vault unwrapped does not match the header's digest (the token belongs to another volume, or the header was altered); refusing",
					vd->d.hdr_path);
		return r;
	}

	struct luks2_segment *segs = NULL;
	size_t ns = 0;
	r = luks2_segments_get(vd->d.hdr, &segs, &ns, err);
	if (r < 0)
		return r;
	uint64_t iv_tweak = ns ? segs[0].iv_tweak : 0;
	luks2_segments_free(segs, ns);

	/* The data device: a loop for a file (ours: removed on failure). */
	_cleanup_(loop_release_detach) int lfd = -1;
	_cleanup_free_ char *loopdev = NULL;
	dev_t backing;
	uint64_t size = 0;
	if (S_ISREG(vd->d.dev.st.st_mode)) {
		/* The file header was read from, not its path again. */
		_cleanup_close_ int bfd = -1;
		r = bdev_reopen(&vd->d.dev, ro ? O_RDONLY : O_RDWR, &bfd, err);
		if (r == 0)
			r = loop_attach_fd(bfd, vd->path, ro, &lfd, &loopdev, err);
		if (r < 0)
			return r;
		struct stat lst;
		if (fstat(lfd, &lst) < 0)
			return -errno;
		backing = lst.st_rdev;
		r = fd_size(lfd, &size);
	} else {
		backing = vd->d.dev.st.st_rdev;
		r = fd_size(vd->d.dev.fd, &size);
	}
	if (r < 0)
		return werr_set(err, r, "%s: cannot get its size", vd->path);
	uint64_t off = vd->d.hdr->data_offset;
	uint64_t len;
	if (vd->d.hdr->data_dynamic) {
		if (size <= off)
			return werr_set(err, -EINVAL, "%s: device (%llu bytes) ends before the data offset (%llu)",
					vd->path, (unsigned long long)size, (unsigned long long)off);
		len = size - off;
	} else {
		len = vd->d.hdr->data_size;
		if (size < off + len)
			return werr_set(err, -EINVAL, "%s: device is shorter than its data segment; was it truncated?",
					vd->path);
	}
	uint32_t ss = vd->d.hdr->sector_size ? vd->d.hdr->sector_size : 512;
	len -= len % ss;
	if (!len)
		return werr_set(err, -EINVAL, "%s: no room for data after the header", vd->path);

	unsigned kmaj = 0, kmin = 0;
	(void)dmcrypt_kernel_version(&kmaj, &kmin);
	unsigned perf = dmcrypt_perf_flags_for(kmaj, kmin);
	unsigned flags = header_flags(vd->d.hdr);
	if (req->flags & VOLUME_ALLOW_DISCARDS)
		flags |= DMCRYPT_ALLOW_DISCARDS;
	if (req->flags & VOLUME_WORKQUEUE) {
		flags &= ~(unsigned)(DMCRYPT_NO_READ_WORKQUEUE | DMCRYPT_NO_WRITE_WORKQUEUE);
	} else {
		if ((req->flags & VOLUME_NO_WORKQUEUE) && !perf)
			wlog_warn(ctx->log, "%s: kernel %u.%u has no no_read/no_write_workqueue (needs 5.9); ignoring --no-workqueue",
				  req->name, kmaj, kmin);
		flags |= perf;
	}
	if (!perf)
		flags &= ~(unsigned)(DMCRYPT_NO_READ_WORKQUEUE | DMCRYPT_NO_WRITE_WORKQUEUE);

	if (o->split) {
		struct online_geom g = {.backing = backing, .data_off = off, .size = len,
					.iv_tweak = iv_tweak, .ss = ss, .flags = flags};
		r = activate_split(ctx, dctx, o, gs, &g, err);
		if (r == 0 && lfd >= 0)
			loop_release(&lfd, false);
		return r;
	}
	char desc[KEYRING_DESC_MAX];
	r = keyring_desc_for(vd->d.hdr->uuid, desc);
	if (r < 0)
		return werr_set(err, r, "%s: UUID unusable as a key description", vd->d.hdr_path);
	struct dmcrypt_table t = {
		.cipher = vd->d.hdr->cipher,
		.key_desc = desc,
		.key_size = (unsigned)o->vk.len,
		.iv_offset = iv_tweak,
		.backing = backing,
		.offset = off / DMCRYPT_SECTOR,
		.length = len / DMCRYPT_SECTOR,
		.sector_size = ss,
		.flags = flags,
	};

	/* Key in (thread keyring), table in, key out: all on this thread. */
	_cleanup_keyring_key_ struct keyring_key key = KEYRING_KEY_NONE;
	r = keyring_add_volume_key(vd->d.hdr->uuid, &o->vk, &key, err);
	secbuf_free(&o->vk); /* the kernel has it now; wipe ours at once */
	if (r < 0)
		return r;
	r = dmcrypt_create(dctx, req->name, vd->d.hdr->uuid, &t, ro, err);
	int kr = keyring_remove(&key);
	if (r < 0) {
		if (!volume_dm_present())
			return werr_set(err, -ENODEV,
					"%s: this kernel has no device-mapper (dm-crypt); load dm-crypt or run 'wrapctl doctor'",
					vd->path);
		return r;
	}
	if (kr < 0)
		wlog_warn(ctx->log, "%s: could not remove key %s from the keyring: %s", req->name, desc,
			  strerror(-kr));
	/* The mapping holds the loop device now; autoclear removes it with
	 * the mapping. Close without detaching. */
	if (lfd >= 0)
		loop_release(&lfd, false);
	wlog_info(ctx->log, "%s: opened %s as /dev/mapper/%s", req->name,
		  loopdev ? loopdev : vd->path, req->name);
	return 0;
}

/* In the middle of a rekey: the new key too, the interrupted zone finished,
 * then [0,done) under the new key and [done,size) under the old one. */
static int activate_split(const struct volume_ctx *ctx, const struct dmcrypt_ctx *dctx,
			  struct oreq *o, struct vgroups *gs, struct online_geom *g,
			  struct werr *err)
{
	struct vdev *vd = &o->vd;
	_cleanup_secbuf_ struct secbuf nvk = o->nvk; /* from the batch */
	memset(&o->nvk, 0, sizeof(o->nvk));
	int r = 0;
	if (!nvk.len && (r = vkey_unwrap(ctx, gs, &o->newtok, &nvk, err)) < 0) {
		o->req->vault_error = true;
		return werr_prefix(err, r, "%s: the new key of the rekey in progress", vd->d.hdr_path);
	}
	uint64_t done = 0;
	unsigned od = 0, nd = 0;
	r = conv_rekey_prepare_open(&vd->d, &o->vk, &nvk, &done, &od, &nd, err);
	if (r < 0)
		return r;
	online_geom_descs(g, vd->d.hdr->uuid, od, nd);
	r = online_create_split(dctx, o->req->name, vd->d.hdr->uuid, g, done, &o->vk, &nvk, err);
	secbuf_free(&o->vk);
	if (r < 0)
		return r;
	wlog_info(ctx->log, "%s: opened %s as /dev/mapper/%s in the middle of a rekey (%llu of %llu MiB under the new key); 'wrapctl resume %s' finishes it",
		  o->req->name, vd->path, o->req->name, (unsigned long long)(done >> 20),
		  (unsigned long long)(g->size >> 20), vd->path);
	return 0;
}

int volume_open_many(const struct volume_ctx *ctx, struct volume_open_req *reqs, size_t n,
		     struct werr *err)
{
	int r = 0;
	struct vgroups gs = {0};
	struct oreq *os = calloc(n ? n : 1, sizeof(*os));
	/* Up to two keys a volume: a rekey in progress has the new one too. */
	struct vault_batch_item *items = calloc(n ? 2 * n : 1, sizeof(*items));
	size_t *item_of = calloc(n ? 2 * n : 1, sizeof(*item_of));
	bool *item_new = calloc(n ? 2 * n : 1, sizeof(*item_new));
	if (!os || !items || !item_of || !item_new) {
		free(os);
		free(items);
		free(item_of);
		free(item_new);
		return -ENOMEM;
	}
	struct dmcrypt_ctx dctx;
	dmcrypt_ctx_init(&dctx, ctx->log);
	if (ctx->udev >= 0)
		dctx.udev = ctx->udev;

	for (size_t i = 0; i < n; i++) {
		struct vdev init = VDEV_INIT;
		os[i].req = &reqs[i];
		os[i].vd = init;
		reqs[i].rc = 0;
		reqs[i].already_open = false;
		reqs[i].vault_error = false;
		reqs[i].msg[0] = '\0';
		/* Two table lines with one name would fight. */
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(reqs[j].name, reqs[i].name)) {
				struct werr e;
				werr_set(&e, -EINVAL, "'%s' requested twice", reqs[i].name);
				req_fail(&reqs[i], -EINVAL, &e);
				break;
			}
		}
		if (reqs[i].rc < 0)
			continue;
		struct werr e;
		werr_clear(&e);
		int pr = prepare(ctx, &os[i], &gs, &e);
		if (pr < 0)
			req_fail(&reqs[i], pr, &e);
		else if (pr == 0)
			os[i].ready = true;
	}

	/* Phase 2: one decrypt per Transit key (a batch when several). */
	for (size_t g = 0; g < gs.n; g++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			if (!os[i].ready)
				continue;
			if (os[i].grp == g) {
				items[m].ciphertext = os[i].vd.tok.ciphertext;
				items[m].context_b64 = os[i].vd.tok.context;
				item_new[m] = false;
				item_of[m++] = i;
			}
			if (os[i].split && os[i].ngrp == g) {
				items[m].ciphertext = os[i].newtok.ciphertext;
				items[m].context_b64 = os[i].newtok.context;
				item_new[m] = true;
				item_of[m++] = i;
			}
		}
		if (!m)
			continue;
		struct werr e;
		werr_clear(&e);
		int br;
		if (m == 1) {
			size_t i = item_of[0];
			br = vault_decrypt(gs.g[g].vc, items[0].ciphertext, items[0].context_b64,
					   item_new[0] ? &os[i].nvk : &os[i].vk, &e);
			items[0].rc = br;
			if (br < 0)
				snprintf(items[0].msg, sizeof(items[0].msg), "%s", werr_str(&e, br));
			br = 0;
		} else {
			br = vault_decrypt_batch(gs.g[g].vc, items, m, &e);
		}
		for (size_t k = 0; k < m; k++) {
			size_t i = item_of[k];
			int ir = br < 0 ? br : items[k].rc;
			if (ir < 0) {
				if (reqs[i].rc < 0)
					continue; /* its other key failed already */
				struct werr e2;
				werr_set(&e2, ir, "%s: Vault could not unwrap the %s: %s",
					 os[i].vd.d.hdr_path,
					 item_new[k] ? "new key of the rekey in progress" : "volume key",
					 br < 0 ? werr_str(&e, br) : items[k].msg);
				req_fail(&reqs[i], ir, &e2);
				reqs[i].vault_error = true;
				os[i].ready = false;
				continue;
			}
			if (m > 1) {
				/* Move the plaintext (locked memory) into the request. */
				struct secbuf *to = item_new[k] ? &os[i].nvk : &os[i].vk;
				secbuf_free(to);
				*to = items[k].plaintext;
				memset(&items[k].plaintext, 0, sizeof(items[k].plaintext));
			}
		}
		vault_batch_items_clear(items, m);
		memset(items, 0, m * sizeof(*items));
	}

	/* Phase 3: activate, one by one, on this thread. */
	for (size_t i = 0; i < n; i++) {
		if (!os[i].ready)
			continue;
		struct werr e;
		werr_clear(&e);
		int ar = activate(ctx, &dctx, &os[i], &gs, &e);
		secbuf_free(&os[i].vk);
		if (ar < 0)
			req_fail(&reqs[i], ar, &e);
	}

	size_t failed = 0;
	int first = 0;
	for (size_t i = 0; i < n; i++) {
		secbuf_free(&os[i].vk);
		secbuf_free(&os[i].nvk);
		wrapd_token_free(&os[i].newtok);
		vdev_close(&os[i].vd);
		if (reqs[i].rc < 0) {
			failed++;
			if (!first) {
				first = reqs[i].rc;
				if (n == 1)
					werr_set(err, first, "%s", reqs[i].msg);
			}
		}
	}
	vgroups_free(&gs);
	free(os);
	free(items);
	free(item_of);
	free(item_new);
	if (failed && n > 1)
		r = werr_set(err, first, "%zu of %zu volume(s) failed to open", failed, n);
	else if (failed)
		r = first;
	return r;
}

int volume_open(const struct volume_ctx *ctx, struct volume_open_req *req, struct werr *err)
{
	return volume_open_many(ctx, req, 1, err);
}
