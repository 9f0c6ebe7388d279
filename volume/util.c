/* volume helpers: device+header opening, sysfs view of dm devices, Vault
 * clients per Transit key, kernel version. */
#include "volume/internal.h"

#include <blkid.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>

int volume_kernel_version(unsigned *ver)
{
	struct utsname u;
	if (uname(&u) < 0)
		return -errno;
	unsigned a = 0, b = 0, c = 0;
	if (sscanf(u.release, "%u.%u.%u", &a, &b, &c) < 2)
		return -EINVAL;
	if (c > 255)
		c = 255;
	*ver = a * 65536 + b * 256 + c;
	return 0;
}

int volume_resolve_device(const char *spec, char **path, struct werr *err)
{
	if (strncmp(spec, "UUID=", 5)) {
		*path = strdup(spec);
		return *path ? 0 : -ENOMEM;
	}
	if (luks2_uuid_canon(spec + 5, NULL) < 0)
		return werr_set(err, -EINVAL, "%s: not UUID= followed by a 36-character UUID", spec);
	char *dev = blkid_evaluate_tag("UUID", spec + 5, NULL);
	if (!dev)
		return werr_set(err, -ENOENT,
				"%s: no block device carries this UUID; check 'blkid' (a volume in a file needs its path)",
				spec);
	*path = strdup(dev);
	free(dev);
	return *path ? 0 : -ENOMEM;
}

bool volume_dm_present(void)
{
	if (access("/sys/module/dm_mod", F_OK) == 0)
		return true;
	_cleanup_free_ char *misc = NULL;
	if (read_file("/proc/misc", 1 << 16, &misc, NULL) < 0)
		return false;
	return strstr(misc, " device-mapper\n") != NULL;
}

void volume_dm_uuid_prefix(const char *luks_uuid, char *out, size_t n)
{
	size_t o = 0;
	o += (size_t)snprintf(out, n, "%s", VOLUME_DM_UUID_PREFIX);
	for (const char *p = luks_uuid; *p && o + 2 < n; p++)
		if (*p != '-')
			out[o++] = *p;
	if (o + 1 < n)
		out[o++] = '-';
	out[o < n ? o : n - 1] = '\0';
}

void vdev_close(struct vdev *vd)
{
	luks2_device_close(&vd->d);
	if (vd->have_tok)
		wrapd_token_free(&vd->tok);
	vd->have_tok = false;
	free(vd->spec);
	free(vd->path);
	vd->spec = vd->path = NULL;
}

int vdev_open(struct vdev *vd, const char *spec, const char *header, unsigned how,
	      struct werr *err)
{
	vd->spec = strdup(spec);
	if (!vd->spec)
		return -ENOMEM;
	int r = volume_resolve_device(spec, &vd->path, err);
	if (r < 0)
		return r;
	if (header && !strncmp(spec, "UUID=", 5))
		return werr_set(err, -EINVAL,
				"%s: UUID= cannot name the data device of a detached header; give its path", spec);
	unsigned dh = LUKS2_DEV_READ | ((how & VDEV_WRITE) ? LUKS2_DEV_WRITE : 0) |
		      ((how & VDEV_LOCK_EX) ? LUKS2_DEV_LOCK_EX : 0) |
		      ((how & VDEV_EXCL) ? LUKS2_DEV_EXCL : 0) | ((how & VDEV_UNUSED) ? LUKS2_DEV_UNUSED : 0);
	r = luks2_device_open(&vd->d, vd->path, header, dh, err);
	if (r < 0)
		return r;
	if (!strncmp(spec, "UUID=", 5) && strcasecmp(spec + 5, vd->d.hdr->uuid))
		return werr_set(err, -ESTALE, "%s: %s now carries UUID %s; the blkid cache is stale",
				spec, vd->path, vd->d.hdr->uuid);

	r = wrapd_token_get(vd->d.hdr, &vd->tok, NULL, err);
	if (r == 0) {
		vd->have_tok = true;
	} else if (r == -ENOENT) {
		if (how & VDEV_NEED_TOKEN)
			return werr_set(err, -ENOKEY,
					"%s: no wrapd-vault token: not a wrapd volume, or it was crypto-erased; see 'wrapctl inspect %s'",
					vd->d.hdr_path, vd->d.hdr_path);
	} else {
		return werr_prefix(err, r, "%s", vd->d.hdr_path);
	}
	return 0;
}

/* ---- sysfs view of dm devices --------------------------------------------- */

static void list_dir(const char *path, char *buf, size_t n)
{
	buf[0] = '\0';
	_cleanup_(closedirp) DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	size_t o = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int w = snprintf(buf + o, n - o, "%s%s", o ? " " : "", de->d_name);
		if (w < 0 || (size_t)w >= n - o)
			break;
		o += (size_t)w;
	}
}

void sysfs_holders(const char *kname, char *buf, size_t n)
{
	char p[300];
	snprintf(p, sizeof(p), "/sys/class/block/%s/holders", kname);
	list_dir(p, buf, n);
}

static int sysdm_fill(const char *kname, struct sysdm *m)
{
	char p[300], v[256];
	memset(m, 0, sizeof(*m));
	size_t kl = strlen(kname);
	if (kl >= sizeof(m->kname))
		return -ENAMETOOLONG;
	memcpy(m->kname, kname, kl + 1);
	snprintf(p, sizeof(p), "/sys/block/%s/dm/name", kname);
	if (read_first_line(p, m->name, sizeof(m->name)) < 0)
		return -ENOENT;
	snprintf(p, sizeof(p), "/sys/block/%s/dm/uuid", kname);
	(void)read_first_line(p, m->uuid, sizeof(m->uuid));
	snprintf(p, sizeof(p), "/sys/block/%s/dm/suspended", kname);
	if (read_first_line(p, v, sizeof(v)) == 0)
		m->suspended = v[0] == '1';
	snprintf(p, sizeof(p), "/sys/block/%s/ro", kname);
	if (read_first_line(p, v, sizeof(v)) == 0)
		m->read_only = v[0] == '1';
	snprintf(p, sizeof(p), "/sys/block/%s/size", kname);
	uint64_t sz = 0;
	if (read_first_line(p, v, sizeof(v)) == 0 && parse_u64(v, &sz) == 0)
		m->size_bytes = sz * 512;
	snprintf(p, sizeof(p), "/sys/block/%s/dev", kname);
	unsigned ma, mi;
	if (read_first_line(p, v, sizeof(v)) == 0 && sscanf(v, "%u:%u", &ma, &mi) == 2)
		m->dev = makedev(ma, mi);
	sysfs_holders(kname, m->holders, sizeof(m->holders));
	snprintf(p, sizeof(p), "/sys/block/%s/slaves", kname);
	list_dir(p, m->slaves, sizeof(m->slaves));
	char *sp = strchr(m->slaves, ' ');
	if (sp)
		*sp = '\0';
	return 0;
}

int sysdm_list(const char *uuid_prefix, struct sysdm **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	_cleanup_(closedirp) DIR *d = opendir("/sys/block");
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "dm-", 3))
			continue;
		struct sysdm m;
		if (sysdm_fill(de->d_name, &m) < 0)
			continue;
		if (uuid_prefix && strncmp(m.uuid, uuid_prefix, strlen(uuid_prefix)))
			continue;
		struct sysdm *nv = realloc(*out, (*n + 1) * sizeof(**out));
		if (!nv) {
			free(*out);
			*out = NULL;
			*n = 0;
			return -ENOMEM;
		}
		*out = nv;
		(*out)[(*n)++] = m;
	}
	return 0;
}

int sysdm_by_name(const char *name, struct sysdm *out)
{
	struct sysdm *all = NULL;
	size_t n = 0;
	int r = sysdm_list(NULL, &all, &n);
	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(all[i].name, name)) {
			*out = all[i];
			r = 0;
			break;
		}
	}
	free(all);
	return r;
}

/* ---- Vault clients per Transit mount/key ---------------------------------- */

void vgroups_free(struct vgroups *gs)
{
	for (size_t i = 0; i < gs->n; i++) {
		if (gs->g[i].owned)
			vault_client_free(gs->g[i].vc);
		free(gs->g[i].mount);
		free(gs->g[i].key);
	}
	gs->n = 0;
}

int vgroups_get(const struct volume_ctx *ctx, struct vgroups *gs, const struct wrapd_token *tok,
		size_t *idx, struct werr *err)
{
	if (!ctx->vc && !ctx->vcfg)
		return werr_set(err, -EINVAL, "no Vault configured; set VAULT_ADDR and VAULT_TOKEN or --config");
	const char *cmount = ctx->vcfg && ctx->vcfg->mount ? ctx->vcfg->mount : VAULT_DEFAULT_MOUNT;
	const char *ckey = ctx->vcfg && ctx->vcfg->key ? ctx->vcfg->key : VAULT_DEFAULT_KEY;
	/* --vault-mount/--vault-key (or no config to derive clients from):
	 * everything goes to the configured key. */
	const char *mount = ctx->vault_key_explicit || !ctx->vcfg ? cmount : tok->vault_mount;
	const char *key = ctx->vault_key_explicit || !ctx->vcfg ? ckey : tok->vault_key;

	for (size_t i = 0; i < gs->n; i++) {
		if (!strcmp(gs->g[i].mount, mount) && !strcmp(gs->g[i].key, key)) {
			*idx = i;
			return 0;
		}
	}
	if (gs->n == ARRAY_SIZE(gs->g))
		return werr_set(err, -E2BIG, "volumes use more than %zu Transit keys in one call",
				ARRAY_SIZE(gs->g));
	struct vgroup *g = &gs->g[gs->n];
	memset(g, 0, sizeof(*g));
	g->mount = strdup(mount);
	g->key = strdup(key);
	if (!g->mount || !g->key) {
		free(g->mount);
		free(g->key);
		return -ENOMEM;
	}
	int r = 0;
	if (ctx->vc && !strcmp(mount, cmount) && !strcmp(key, ckey)) {
		g->vc = ctx->vc;
	} else {
		/* The client copies its config: a shallow copy with another
		 * mount/key is enough. */
		struct vault_config c = *ctx->vcfg;
		c.mount = g->mount;
		c.key = g->key;
		r = vault_client_new(&c, ctx->log, &g->vc, err);
		g->owned = true;
		if (r == 0)
			vault_client_observer_copy(g->vc, ctx->vc); /* the agent's metrics */
	}
	if (r < 0) {
		free(g->mount);
		free(g->key);
		return r;
	}
	*idx = gs->n++;
	return 0;
}
