/*
 * close and status: both start from dm's view of the mapping; neither needs
 * Vault. A wrapd mapping has a dm UUID "CRYPT-LUKS2-..." AND a crypt table
 * whose key is a ":<n>:logon:wrapd:" keyring reference; cryptsetup's own
 * LUKS2 mappings share the UUID prefix but not the key reference.
 */
#include "volume/internal.h"
#include "dm/dm.h"

#include <fcntl.h>
#include <libdevmapper.h>
#include <sys/sysmacros.h>

static void dctx_for(const struct volume_ctx *ctx, struct dmcrypt_ctx *d)
{
	dmcrypt_ctx_init(d, ctx->log);
	if (ctx->udev >= 0)
		d->udev = ctx->udev;
}

static int deferred_remove(const struct dmcrypt_ctx *d, const char *name, struct werr *err)
{
	dm_udev_set_sync_support(d->udev ? 1 : 0);
	struct dm_task *t = dm_task_create(DM_DEVICE_REMOVE);
	if (!t)
		return -ENOMEM;
	int r = 0;
	uint32_t cookie = 0;
	if (!dm_task_set_name(t, name) || !dm_task_deferred_remove(t)) {
		r = -ENOMEM;
		goto out;
	}
	if (d->udev && !dm_task_set_cookie(t, &cookie, 0)) {
		r = -EIO;
		goto out;
	}
	if (!dm_task_run(t)) {
		int e = dm_task_get_errno(t);
		r = werr_set(err, e ? -e : -EIO, "%s: deferred remove failed: %s", name,
			     strerror(e ? e : EIO));
	}
	if (d->udev && cookie)
		(void)dm_udev_wait(cookie);
out:
	dm_task_destroy(t);
	return r;
}

int volume_close(const struct volume_ctx *ctx, const char *name, bool deferred, bool force,
		 struct werr *err)
{
	struct sysdm m;
	if (sysdm_by_name(name, &m) < 0)
		return werr_set(err, -ENXIO, "no mapping named '%s'; see 'wrapctl status'", name);
	struct dmcrypt_ctx d;
	dctx_for(ctx, &d);
	int r;
	if (!force) {
		_cleanup_dmcrypt_info_ struct dmcrypt_info info = {0};
		r = dmcrypt_query(&d, name, &info, err);
		if (r < 0)
			return r;
		struct crypt_line c;
		if (strncmp(info.uuid, VOLUME_DM_UUID_PREFIX, strlen(VOLUME_DM_UUID_PREFIX)) ||
		    dm_crypt_line_first(info.table, &c) < 0 || !dm_key_is_wrapd(c.key))
			return werr_set(err, -EPERM,
					"'%s' is not a wrapd mapping (dm UUID '%s'); use 'cryptsetup close %s', or --force",
					name, info.uuid, name);
	}
	if (deferred)
		return deferred_remove(&d, name, err);
	/* The zone device of an online rekey interrupted while this mapping
	 * was open goes with it (nothing else uses it). */
	char luks_uuid[37] = "";
	_cleanup_dmcrypt_info_ struct dmcrypt_info info = {0};
	struct werr e2 = {0};
	struct crypt_line c;
	if (dmcrypt_query(&d, name, &info, &e2) == 0 && dm_crypt_line_first(info.table, &c) == 0) {
		const char *u = strstr(c.key, ":logon:wrapd:");
		if (u)
			snprintf(luks_uuid, sizeof(luks_uuid), "%.36s", u + 13);
	}
	r = dmcrypt_remove(&d, name, err);
	if (r == 0 && luks_uuid[0])
		(void)online_zone_cleanup(&d, luks_uuid);
	return r;
}

/* The backing file of a loop device, from sysfs. */
static void loop_file_of(const char *kname, char *out, size_t n)
{
	char p[300];
	out[0] = '\0';
	snprintf(p, sizeof(p), "/sys/class/block/%s/loop/backing_file", kname);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t r = read(fd, out, n - 1);
	if (r < 0)
		r = 0;
	out[r] = '\0';
	char *nl = strchr(out, '\n');
	if (nl)
		*nl = '\0';
}

/* The key version and a conversion in progress, from the header. */
static void header_info(struct volume_status *s, const struct luks2_hdr *h)
{
	struct werr e;
	werr_clear(&e);
	struct wrapd_token t;
	int r = wrapd_token_get(h, &t, NULL, &e);
	if (r == 0) {
		s->key_version = (int)t.key_version;
		wrapd_token_free(&t);
	} else {
		snprintf(s->header_note, sizeof(s->header_note), "%s",
			 r == -ENOENT ? "no wrapd-vault token (erased?)" : werr_str(&e, r));
	}
	json_t *st = NULL;
	if (luks2_conversion_get(h, &st, &e) == 0) {
		const char *op = json_string_value(json_object_get(st, "op"));
		const char *done = json_string_value(json_object_get(st, "done"));
		const char *size = json_string_value(json_object_get(st, "size"));
		uint64_t dn = 0, sz = 0;
		str_printable(s->conversion, sizeof(s->conversion), op ? op : "unknown");
		if (done && size && parse_u64(done, &dn) == 0 && parse_u64(size, &sz) == 0 && dn <= sz) {
			s->conv_done = dn;
			s->conv_total = sz;
		}
		json_decref(st);
	}
	if (strcmp(h->uuid, s->luks_uuid))
		snprintf(s->header_note, sizeof(s->header_note),
			 "header UUID %s differs from the mapping's %s", h->uuid, s->luks_uuid);
}

int volume_status_from_header(struct volume_status *s, const char *path)
{
	s->key_version = -1;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(s->header_note, sizeof(s->header_note), "cannot open %s: %s", path,
			 strerror(e));
		return -e;
	}
	struct werr e;
	werr_clear(&e);
	struct luks2_hdr *h = NULL;
	int r = luks2_hdr_read(fd, path, &h, NULL, &e);
	if (r < 0) {
		snprintf(s->header_note, sizeof(s->header_note), "%s",
			 r == -ENODEV ? "no header on the device (detached header?)" : werr_str(&e, r));
		return r;
	}
	header_info(s, h);
	luks2_hdr_free(h);
	return 0;
}

int volume_status_from_table(struct volume_status *s, const char *table)
{
	struct table_desc d;
	if (!table || dm_table_describe(table, &d) < 0 || !dm_key_is_wrapd(d.key_ref))
		return -EINVAL;
	(void)dm_key_uuid(d.key_ref, s->luks_uuid);
	snprintf(s->key_ref, sizeof(s->key_ref), "%s", d.key_ref);
	snprintf(s->key_ref_new, sizeof(s->key_ref_new), "%s", d.key_ref_new);
	snprintf(s->cipher, sizeof(s->cipher), "%s", d.first.cipher);
	snprintf(s->flags, sizeof(s->flags), "%s", d.first.flags);
	s->offset_sectors = d.data_offset;
	s->sector_size = d.first.sector_size;
	s->size_bytes = d.size;
	s->targets = d.targets;
	s->split = d.split;
	s->table_new_bytes = d.new_end;
	s->zone_start = d.zone_start;
	s->zone_bytes = d.zone_len;
	return 0;
}

int volume_status_list(const struct volume_ctx *ctx, const char *name,
		       struct volume_status **out, size_t *n, struct werr *err)
{
	*out = NULL;
	*n = 0;
	struct sysdm *all = NULL;
	size_t na = 0;
	int r = sysdm_list(VOLUME_DM_UUID_PREFIX, &all, &na);
	if (r < 0)
		return r;
	struct dmcrypt_ctx d;
	dctx_for(ctx, &d);
	struct volume_status *v = calloc(na ? na : 1, sizeof(*v));
	if (!v) {
		free(all);
		return -ENOMEM;
	}
	size_t k = 0;
	bool found = false;
	for (size_t i = 0; i < na; i++) {
		if (name && strcmp(all[i].name, name))
			continue;
		struct werr e;
		werr_clear(&e);
		_cleanup_dmcrypt_info_ struct dmcrypt_info info = {0};
		if (dmcrypt_query(&d, all[i].name, &info, &e) < 0)
			continue;
		struct volume_status *s = &v[k];
		memset(s, 0, sizeof(*s));
		struct crypt_line c;
		if (volume_status_from_table(s, info.table) < 0 ||
		    dm_crypt_line_first(info.table, &c) < 0)
			continue;
		found = true;
		k++;
		snprintf(s->name, sizeof(s->name), "%s", all[i].name);
		snprintf(s->dm_uuid, sizeof(s->dm_uuid), "%s", info.uuid);
		s->read_only = info.read_only;
		s->suspended = info.suspended;
		s->open_count = info.open_count;
		sysfs_holders(all[i].kname, s->holders, sizeof(s->holders));
		_cleanup_free_ char *bdev = NULL;
		if (volume_devname(makedev(c.maj, c.min), &bdev) == 0) {
			snprintf(s->backing, sizeof(s->backing), "%s", bdev);
			loop_file_of(bdev + 5, s->backing_file, sizeof(s->backing_file));
			(void)volume_status_from_header(s, s->backing);
		} else {
			snprintf(s->backing, sizeof(s->backing), "%u:%u", c.maj, c.min);
			s->key_version = -1;
			snprintf(s->header_note, sizeof(s->header_note), "backing device not found");
		}
	}
	free(all);
	if (name && !found) {
		free(v);
		return werr_set(err, -ENOENT, "no wrapd mapping named '%s'; see 'wrapctl status'", name);
	}
	*out = v;
	*n = k;
	return 0;
}
