/*
 * Online rekey on the live mapping: the driver the engine moves its held
 * zone with (struct conv_online, engine/engine.h), and the split table a
 * volume opened in the middle of a rekey gets.
 *
 * The user's mapping NAME keeps its name and dm UUID. During the rekey its
 * table is
 *     [0,a)     crypt, new key, on the data device
 *     [a,b)     linear over the zone device at a        (the held zone)
 *     [b,size)  crypt, old key, on the data device
 * and the zone device "wrapd-zone-<uuid>" (dm UUID WRAPD-ZONE-<uuid hex>, so
 * it is never listed as a volume) is one crypt target over the whole data
 * area, with the key that matches the zone's data: the old key while the
 * zone is held, the new one once it is converted.
 *
 * hold(a,b):  load NAME's table for [a,b); suspend NAME (noflush: in-flight
 *             I/O completes, old-key writes to [a,b) included), suspend the
 *             zone device (nothing in flight below a suspended NAME), load
 *             the zone device's old-key table (inactive), resume NAME. The
 *             zone's I/O now queues on the suspended zone device.
 * release:    converted: load the new-key table into the zone device; then
 *             resume it (its inactive table goes live, the queued I/O runs).
 *             Not converted: the old-key table goes live.
 * Keys: both as logon keys "wrapd:<uuid>-d<digest>" in this thread's
 * keyring for the length of each table load, then removed.
 */
#include "volume/internal.h"
#include "dm/dm.h"
#include "keyring/keyring.h"

#include <linux/keyctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* ---- the split table ---------------------------------------------------------------- */

void online_geom_descs(struct online_geom *g, const char *uuid, unsigned od, unsigned nd)
{
	char id[KEYRING_ID_MAX + 1];
	snprintf(id, sizeof(id), "%s-d%u", uuid, od);
	(void)keyring_desc_for(id, g->desc_old);
	snprintf(id, sizeof(id), "%s-d%u", uuid, nd);
	(void)keyring_desc_for(id, g->desc_new);
}

static int crypt_line(const struct online_geom *g, bool newk, uint64_t pos, uint64_t len,
		      struct dm_line *l, struct werr *err)
{
	struct dmcrypt_table t = {
		.cipher = WRAPD_CIPHER,
		.key_desc = newk ? g->desc_new : g->desc_old,
		.key_size = WRAPD_VK_BYTES,
		.iv_offset = g->iv_tweak + pos / 512,
		.backing = g->backing,
		.offset = (g->data_off + pos) / 512,
		.length = len / 512,
		.sector_size = g->ss,
		.flags = g->flags,
	};
	l->start = pos / 512;
	l->length = len / 512;
	l->type = "crypt";
	return dmcrypt_table_params(&t, &l->params, err);
}

static void lines_free(struct dm_line *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i].params);
}

/* NAME's table: [0,a) new, [a,b) through the zone device (none when a==b),
 * [b,size) old. */
static int name_lines(const struct online_geom *g, uint64_t a, uint64_t b, struct dm_line *l,
		      size_t *n, struct werr *err)
{
	int rc = 0;
	*n = 0;
	memset(l, 0, 3 * sizeof(*l));
	if (a > 0)
		rc = crypt_line(g, true, 0, a, &l[(*n)++], err);
	if (rc == 0 && b > a) {
		struct dm_line *z = &l[(*n)++];
		z->start = a / 512;
		z->length = (b - a) / 512;
		z->type = "linear";
		if (asprintf(&z->params, "%u:%u %llu", major(g->zone), minor(g->zone),
			     (unsigned long long)(a / 512)) < 0) {
			z->params = NULL;
			rc = -ENOMEM;
		}
	}
	if (rc == 0 && b < g->size)
		rc = crypt_line(g, false, b, g->size - b, &l[(*n)++], err);
	if (rc < 0)
		lines_free(l, *n);
	return rc;
}

/* Both keys in this thread's keyring for one table load or create. */
struct keypair {
	struct keyring_key o, n;
};
static int keys_in(const struct online_geom *g, const struct secbuf *old_vk,
		   const struct secbuf *new_vk, struct keypair *k, struct werr *err)
{
	k->o = k->n = KEYRING_KEY_NONE;
	int rc = 0;
	if (old_vk)
		rc = keyring_add_logon(g->desc_old, old_vk->data, old_vk->len,
				       KEY_SPEC_THREAD_KEYRING, &k->o, err);
	if (rc == 0 && new_vk)
		rc = keyring_add_logon(g->desc_new, new_vk->data, new_vk->len,
				       KEY_SPEC_THREAD_KEYRING, &k->n, err);
	return rc;
}
static void keys_out(struct keypair *k)
{
	(void)keyring_remove(&k->o);
	(void)keyring_remove(&k->n);
}

int online_create_split(const struct dmcrypt_ctx *d, const char *name, const char *luks_uuid,
			const struct online_geom *g, uint64_t done, const struct secbuf *old_vk,
			const struct secbuf *new_vk, struct werr *err)
{
	char uuid[DMCRYPT_UUID_MAX + 1];
	int rc = dmcrypt_dm_uuid(luks_uuid, name, uuid, sizeof(uuid));
	if (rc < 0)
		return werr_set(err, rc, "%s: cannot form a dm UUID", name);
	struct dm_line l[3];
	size_t n;
	if ((rc = name_lines(g, done, done, l, &n, err)) < 0)
		return rc;
	struct keypair k;
	rc = keys_in(g, done < g->size ? old_vk : NULL, done > 0 ? new_vk : NULL, &k, err);
	if (rc == 0)
		rc = dm_create_lines(d, name, uuid, l, n, err);
	keys_out(&k);
	lines_free(l, n);
	return rc;
}

/* ---- the driver ---------------------------------------------------------------------- */

static int load_name(struct online_map *m, uint64_t a, uint64_t b)
{
	struct dm_line l[3];
	size_t n;
	int rc = name_lines(&m->g, a, b, l, &n, m->err);
	if (rc < 0)
		return rc;
	struct keypair k;
	rc = keys_in(&m->g, b < m->g.size ? m->old_vk : NULL, a > 0 ? m->new_vk : NULL, &k, m->err);
	if (rc == 0)
		rc = dm_load_lines(&m->d, m->name, l, n, m->err);
	keys_out(&k);
	lines_free(l, n);
	return rc;
}

/* The zone device's table: one crypt target over the data area. */
static int zone_table(struct online_map *m, bool newk, bool create)
{
	struct dm_line l;
	int rc = crypt_line(&m->g, newk, 0, m->g.size, &l, m->err);
	if (rc < 0)
		return rc;
	struct keypair k;
	rc = keys_in(&m->g, newk ? NULL : m->old_vk, newk ? m->new_vk : NULL, &k, m->err);
	if (rc == 0)
		rc = create ? dm_create_lines(&m->d, m->zone, m->zone_uuid, &l, 1, m->err)
			    : dm_load_lines(&m->d, m->zone, &l, 1, m->err);
	keys_out(&k);
	free(l.params);
	return rc;
}

static int om_begin(void *arg, const struct secbuf *old_vk, const struct secbuf *new_vk,
		    unsigned od, unsigned nd, struct werr *err)
{
	struct online_map *m = arg;
	m->err = err;
	m->old_vk = old_vk;
	m->new_vk = new_vk;
	online_geom_descs(&m->g, m->uuid, od, nd);
	_cleanup_dmcrypt_info_ struct dmcrypt_info zi = {0};
	struct werr e2 = {0};
	int rc = dmcrypt_query(&m->d, m->zone, &zi, &e2);
	if (rc == -ENXIO) {
		if ((rc = zone_table(m, true, true)) < 0)
			return rc;
		rc = dmcrypt_query(&m->d, m->zone, &zi, err);
	} else if (rc < 0) {
		return werr_set(err, rc, "%s", werr_str(&e2, rc));
	}
	if (rc == 0)
		m->g.zone = zi.dev;
	return rc;
}

/* The zone [a,b) NAME's live table routes through the zone device. */
static bool zone_in_table(const struct online_map *m, const char *table, uint64_t *a, uint64_t *b)
{
	char want[32];
	snprintf(want, sizeof(want), "%u:%u", major(m->g.zone), minor(m->g.zone));
	for (const char *p = table; p && *p;) {
		unsigned long long st, len, off;
		char type[16], dev[32];
		if (sscanf(p, "%llu %llu %15s %31s %llu", &st, &len, type, dev, &off) == 5 &&
		    !strcmp(type, "linear") && !strcmp(dev, want)) {
			*a = st * 512;
			*b = (st + len) * 512;
			return true;
		}
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return false;
}

static int om_inspect(void *arg, uint64_t *za, uint64_t *zb, bool *held, struct werr *err)
{
	struct online_map *m = arg;
	m->err = err;
	*held = false;
	_cleanup_dmcrypt_info_ struct dmcrypt_info ni = {0};
	_cleanup_dmcrypt_info_ struct dmcrypt_info zi = {0};
	int rc = dmcrypt_query(&m->d, m->name, &ni, err);
	if (rc < 0)
		return rc;
	struct werr e2 = {0};
	if ((rc = dmcrypt_query(&m->d, m->zone, &zi, &e2)) == -ENXIO) {
		/* No zone device (finished, or never made): nothing is held there. */
		if (ni.inactive_table && (rc = dm_clear_inactive(&m->d, m->name, err)) < 0)
			return rc;
		return ni.suspended ? dmcrypt_resume(&m->d, m->name, err) : 0;
	}
	if (rc < 0)
		return werr_set(err, rc, "%s", werr_str(&e2, rc));
	if (ni.suspended) {
		/* Died between the steps of a table switch: back to the live
		 * table, whose zone (if any) was released converted. */
		if (zi.inactive_table && (rc = dm_clear_inactive(&m->d, m->zone, err)) < 0)
			return rc;
		if (zi.suspended && (rc = dmcrypt_resume(&m->d, m->zone, err)) < 0)
			return rc;
		if (ni.inactive_table && (rc = dm_clear_inactive(&m->d, m->name, err)) < 0)
			return rc;
		return dmcrypt_resume(&m->d, m->name, err);
	}
	if (ni.inactive_table && (rc = dm_clear_inactive(&m->d, m->name, err)) < 0)
		return rc;
	if (!zi.suspended)
		return 0;
	_cleanup_free_ char *inact = NULL;
	if ((rc = dm_inactive_table(&m->d, m->zone, &inact, err)) < 0)
		return rc;
	bool to_new = inact && strstr(inact, m->g.desc_new);
	if (!zone_in_table(m, ni.table, za, zb) || to_new)
		return dmcrypt_resume(&m->d, m->zone, err); /* consistent as it will be */
	*held = true;
	return 0;
}

static int om_hold(void *arg, uint64_t a, uint64_t b, struct werr *err)
{
	struct online_map *m = arg;
	m->err = err;
	int rc = load_name(m, a, b);
	if (rc == 0)
		rc = dm_suspend_noflush(&m->d, m->name, err);
	if (rc < 0)
		return rc;
	rc = dm_suspend_noflush(&m->d, m->zone, err);
	if (rc == 0)
		rc = zone_table(m, false, false);
	if (rc < 0) {
		/* Back to the table that was live, the zone device running. */
		struct werr e2 = {0};
		int r2 = dm_clear_inactive(&m->d, m->zone, &e2);
		r2 = dmcrypt_resume(&m->d, m->zone, &e2);
		r2 = dm_clear_inactive(&m->d, m->name, &e2);
		r2 = dmcrypt_resume(&m->d, m->name, &e2);
		(void)r2;
		return rc;
	}
	return dmcrypt_resume(&m->d, m->name, err);
}

static int om_release(void *arg, bool converted, struct werr *err)
{
	struct online_map *m = arg;
	m->err = err;
	int rc = converted ? zone_table(m, true, false) : 0;
	if (rc < 0)
		return rc;
	return dmcrypt_resume(&m->d, m->zone, err);
}

static int om_finish(void *arg, struct werr *err)
{
	struct online_map *m = arg;
	m->err = err;
	int rc = load_name(m, m->g.size, m->g.size);
	if (rc == 0)
		rc = dm_suspend_noflush(&m->d, m->name, err);
	if (rc == 0)
		rc = dmcrypt_resume(&m->d, m->name, err);
	if (rc == 0)
		rc = dmcrypt_remove(&m->d, m->zone, err);
	return rc;
}

void online_zone_name(const char *uuid, char name[128])
{
	snprintf(name, 128, "wrapd-zone-%s", uuid);
}

int online_zone_cleanup(const struct dmcrypt_ctx *d, const char *uuid)
{
	char z[128];
	online_zone_name(uuid, z);
	_cleanup_dmcrypt_info_ struct dmcrypt_info zi = {0};
	struct werr e = {0};
	if (dmcrypt_query(d, z, &zi, &e) < 0 || zi.open_count > 0)
		return 0;
	/* A held zone with no mapping above it has nothing queued. */
	int rc = zi.suspended ? dmcrypt_resume(d, z, &e) : 0;
	return rc < 0 ? rc : dmcrypt_remove(d, z, &e);
}

void online_map_ops(struct online_map *m, struct conv_online *on)
{
	*on = (struct conv_online){.begin = om_begin, .inspect = om_inspect, .hold = om_hold,
				   .release = om_release, .finish = om_finish, .arg = m};
}

/* ---- finding the mapping ------------------------------------------------------------- */

/* Option words of a crypt line back to flags. */
static unsigned flags_of(const char *table)
{
	static const struct {
		const char *w;
		unsigned f;
	} words[] = {
		{" allow_discards", DMCRYPT_ALLOW_DISCARDS},
		{" same_cpu_crypt", DMCRYPT_SAME_CPU_CRYPT},
		{" submit_from_crypt_cpus", DMCRYPT_SUBMIT_FROM_CRYPT_CPUS},
		{" no_read_workqueue", DMCRYPT_NO_READ_WORKQUEUE},
		{" no_write_workqueue", DMCRYPT_NO_WRITE_WORKQUEUE},
	};
	const char *eol = strchr(table, '\n');
	size_t len = eol ? (size_t)(eol - table) : strlen(table);
	unsigned f = 0;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		const char *p = strstr(table, words[i].w);
		if (p && (size_t)(p - table) < len)
			f |= words[i].f;
	}
	return f;
}

int online_find(const struct volume_ctx *ctx, const char *device, const char *header,
		struct online_map *m, struct werr *err)
{
	struct vdev vd = VDEV_INIT;
	int rc = vdev_open(&vd, device, header, 0, err);
	if (rc < 0) {
		/* No readable header (none yet, or one a crash left torn while
		 * the head was parked): not mapped by wrapd; the engine decides. */
		vdev_close(&vd);
		werr_clear(err);
		return 0;
	}
	char prefix[80];
	volume_dm_uuid_prefix(vd.d.hdr->uuid, prefix, sizeof(prefix));
	struct sysdm *same = NULL;
	size_t n = 0;
	if (sysdm_list(prefix, &same, &n) < 0 || n == 0) {
		free(same);
		vdev_close(&vd);
		return 0;
	}
	memset(m, 0, sizeof(*m));
	dmcrypt_ctx_init(&m->d, ctx->log);
	if (ctx->udev >= 0)
		m->d.udev = ctx->udev;
	snprintf(m->name, sizeof(m->name), "%s", same[0].name);
	memcpy(m->uuid, vd.d.hdr->uuid, sizeof(m->uuid) - 1);
	bool ours = vdev_backs_mapping(&same[0], &vd);
	free(same);
	_cleanup_dmcrypt_info_ struct dmcrypt_info ni = {0};
	if (!ours || (rc = dmcrypt_query(&m->d, m->name, &ni, err)) < 0 || !ni.table ||
	    !strstr(ni.table, ":logon:wrapd:")) {
		rc = werr_set(err, -EPERM,
			      "%s: mapped as '%s', which is not a wrapd mapping of this device; close it (cryptsetup close %s), then run the command again",
			      vd.path, m->name, m->name);
		vdev_close(&vd);
		return rc;
	}
	online_zone_name(m->uuid, m->zone);
	size_t o = (size_t)snprintf(m->zone_uuid, sizeof(m->zone_uuid), "WRAPD-ZONE-");
	for (const char *p = m->uuid; *p && o + 1 < sizeof(m->zone_uuid); p++)
		if (*p != '-')
			m->zone_uuid[o++] = *p;
	m->zone_uuid[o] = '\0';
	m->g.ss = vd.d.hdr->sector_size;
	m->g.data_off = vd.d.hdr->data_offset;
	m->g.flags = flags_of(ni.table);
	uint64_t total = 0;
	for (const char *p = ni.table; p && *p;) {
		unsigned long long st, len, iv, off;
		unsigned ma, mi;
		char cipher[64], key[200];
		if (sscanf(p, "%llu %llu crypt %63s %199s %llu %u:%u %llu", &st, &len, cipher, key,
			   &iv, &ma, &mi, &off) == 8 && !m->g.backing && iv >= st) {
			m->g.backing = makedev(ma, mi);
			m->g.iv_tweak = iv - st;
		}
		if (sscanf(p, "%llu %llu", &st, &len) == 2 && (st + len) * 512 > total)
			total = (st + len) * 512;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	m->g.size = total;
	vdev_close(&vd);
	if (!m->g.backing || !m->g.size)
		return werr_set(err, -EINVAL, "%s: cannot read the table of mapping '%s'", device,
				m->name);
	return 1;
}
