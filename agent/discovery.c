/*
 * Kubernetes mode: the discovery folder (discovery_dir). Each entry is a
 * block device or a symlink to one (operators link /dev/disk/by-id/...
 * names, as for local-static-provisioner); its name is the volume's name and
 * must be a DNS-1123 label that is also a valid mapping name. The folder is
 * watched with inotify (no timer); any event rereads it whole, which is
 * cheap and never misses a rename.
 *
 * On the loop thread: entries appear (a volume joins the agent, opened by the
 * next open job with everyone else due) and vanish (the volume leaves: its
 * mapping is closed unless in use, its PV handled by kube_mode.c).
 * On the worker (discovery_prepare, called by the open job for each
 * discovered volume not mapped yet): what the device holds — a wrapd
 * header → opened as usual; nothing libblkid knows → formatted with a fresh
 * key, then opened; anything else → never touched, reported with the
 * command that would convert it.
 */
#include "agent/kmode.h"
#include "dm/dm.h"
#include "format/format.h"

#include <dirent.h>
#include <stdarg.h>
#include <sys/random.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

int discovery_init(struct agent *a, struct werr *err)
{
	struct kmode *km = a->km;
	const char *dir = a->cfg.discovery_dir;
	km->disc_wd = inotify_add_watch(km->ino, dir,
					IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
					IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
	if (km->disc_wd < 0)
		return werr_set(err, -errno,
				"discovery_dir %s: cannot watch it: %s; create it (mkdir -p %s) or set discovery_dir",
				dir, strerror(errno), dir);
	discovery_scan(a);
	return 0;
}

bool discovery_wd(const struct agent *a, int wd)
{
	return a->km && wd == a->km->disc_wd;
}

static bool name_ok(const char *name)
{
	return kube_dns1123_label(name) && dmcrypt_name_valid(name);
}

/* Says once per name that an entry is refused. */
static void bad_name(struct agent *a, const char *name)
{
	struct kmode *km = a->km;
	for (size_t i = 0; i < km->nbad; i++)
		if (!strcmp(km->bad_names[i], name))
			return;
	if (km->nbad < ARRAY_SIZE(km->bad_names))
		snprintf(km->bad_names[km->nbad++], sizeof(km->bad_names[0]), "%s", name);
	char shown[80];
	size_t k = 0;
	for (const char *c = name; *c && k + 1 < sizeof(shown); c++)
		shown[k++] = (unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c;
	shown[k] = '\0';
	alog(a->log, WLOG_WARN, NULL, a->cfg.discovery_dir, "discovery",
	     "entry '%s' is not a valid volume name (a DNS-1123 label: lowercase letters, digits and '-', at most 63); rename the link",
	     shown);
}

struct entry {
	char name[64];
};

static int read_entries(struct agent *a, struct entry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(a->cfg.discovery_dir);
	if (!d)
		return -errno;
	struct dirent *de;
	size_t cap = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (!name_ok(de->d_name)) {
			bad_name(a, de->d_name);
			continue;
		}
		/* A dangling link or an entry removed meanwhile: not there. */
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", a->cfg.discovery_dir, de->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			struct entry *ne = realloc(*out, cap * sizeof(*ne));
			if (!ne)
				break;
			*out = ne;
		}
		/* name_ok: at most 63 characters */
		memcpy((*out)[*n].name, de->d_name, strlen(de->d_name) + 1);
		(*n)++;
	}
	closedir(d);
	return 0;
}

static void entry_added(struct agent *a, const char *name)
{
	struct vol *v = agent_find(a, name);
	if (v && !v->k) {
		alog(a->log, WLOG_WARN, name, NULL, "discovery",
		     "the volume table has a line with this name; the discovery entry is ignored");
		return;
	}
	if (v) {
		if (v->k->gone) { /* back before its mapping was closed */
			v->k->gone = false;
			v->in_table = true;
			alog(a->log, WLOG_INFO, name, v->device, "discovered", "the entry is back");
		}
		return;
	}
	v = agent_vol_add(a, name);
	struct kvol *k = v ? calloc(1, sizeof(*k)) : NULL;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", a->cfg.discovery_dir, name);
	if (!k || !(v->device = strdup(path))) {
		free(k);
		if (v)
			agent_vol_remove(a, v);
		alog(a->log, WLOG_ERROR, name, NULL, "error", "out of memory");
		return;
	}
	v->k = k;
	v->in_table = true;
	k->convert = a->cfg.convert_existing;
	snprintf(k->path, sizeof(k->path), "%s", path);
	kube_pv_name(a->km->node, name, k->pv_name);
	alog(a->log, WLOG_INFO, name, path, "discovered", "PV name %s", k->pv_name);
}

static void entry_gone(struct agent *a, struct vol *v)
{
	if (v->k->gone)
		return;
	v->k->gone = true;
	v->in_table = false;
	kubelet_metric_remove(a, v->name);
	bool mapped = v->st == VS_OPEN || v->st == VS_CLOSING;
	alog(a->log, WLOG_INFO, v->name, v->device, "vanished",
	     "the discovery entry is gone%s", mapped ? "; closing the mapping unless it is in use" : "");
	if (!mapped && !v->busy)
		agent_vol_remove(a, v);
}

void discovery_scan(struct agent *a)
{
	struct entry *e = NULL;
	size_t n = 0;
	int r = read_entries(a, &e, &n);
	if (r < 0) {
		/* Never act on a folder we cannot read: keep everything. */
		alog(a->log, WLOG_ERROR, NULL, a->cfg.discovery_dir, "discovery",
		     "cannot read the discovery folder: %s; keeping the volumes as they are",
		     strerror(-r));
		return;
	}
	for (size_t i = 0; i < n; i++)
		entry_added(a, e[i].name);
	for (size_t i = 0; i < a->n;) {
		struct vol *v = &a->v[i];
		bool there = false;
		for (size_t k = 0; k < n && !there; k++)
			there = !strcmp(e[k].name, v->name);
		size_t before = a->n;
		if (v->k && !there)
			entry_gone(a, v);
		if (a->n == before)
			i++;
	}
	free(e);
}

/* ------------------------------------------------------------ on the worker */

/* File systems the engine can take (one signature, a file system, not a
 * partition table, swap, RAID member or someone's encryption). */
static bool plaintext_fs(const char *t)
{
	static const char *const ok[] = {"ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", NULL};
	for (const char *const *p = ok; *p; p++)
		if (!strcmp(t, *p))
			return true;
	return false;
}

static void foreign(struct job_item *it, int cls, int rc, const char *fmt, ...) _printf_(4, 5);
static void foreign(struct job_item *it, int cls, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(it->kdetail, sizeof(it->kdetail), fmt, ap);
	va_end(ap);
	it->kclass = cls;
	it->rc = rc;
	snprintf(it->msg, sizeof(it->msg), "%s: %s", it->device, it->kdetail);
}

/* ConvertStarted, posted from here (the worker) before the engine starts:
 * the conversion keeps the worker busy, so a job queued behind it would
 * come only after. An API server that does not answer delays the
 * conversion by at most the request's timeouts, and only the Event is lost. */
static void convert_started(struct worker *w, const struct job_item *it, bool resume,
			    const char *what)
{
	struct kmode *km = worker_kmode(w);
	if (!km || !km->kc)
		return;
	char pv[254], msg[1024];
	kube_pv_name(km->node, it->name, pv);
	snprintf(msg, sizeof(msg),
		 resume ? "%s: %s was interrupted (agent stopped or node rebooted): finishing the in-place encryption (convert_existing = yes); PV %s is published when it is done"
			: "%s holds %s: encrypting it in place (convert_existing = yes); PV %s is published when it is done",
		 it->device, what, pv);
	uint64_t unique = 0;
	if (getrandom(&unique, sizeof(unique), 0) != sizeof(unique))
		unique = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
	struct werr e;
	werr_clear(&e);
	alog(worker_log(w), WLOG_INFO, it->name, it->device, "ConvertStarted", "%s", msg);
	int r = kmode_post_event(km, pv, "", false, "ConvertStarted", msg, unique, &e);
	if (r < 0)
		alog(worker_log(w), WLOG_WARN, it->name, it->device, "kubernetes",
		     "the ConvertStarted Event was not posted: %s", werr_str(&e, r));
}

/* convert_existing: the engine encrypts the plaintext file system in place
 * (or finishes a conversion that was interrupted), then the open job opens
 * it. The engine refuses, device unchanged, anything in use or without the
 * 17 MiB it needs at the end. It runs on the worker: other jobs wait. */
static void convert(struct worker *w, struct job_item *it, bool resume, const char *what)
{
	struct werr e;
	werr_clear(&e);
	convert_started(w, it, resume, what);
	struct volume_ctx vctx;
	struct volume_convert_req rq = {.device = it->device};
	struct conv_result res = {0};
	int r = worker_vctx(w, &vctx, &e);
	if (r == 0)
		r = resume ? volume_resume(&vctx, &rq, &res, &e) : volume_encrypt(&vctx, &rq, &res, &e);
	if (r < 0) {
		it->converted = -1;
		foreign(it, KC_FOREIGN, r, "holds %s; convert_existing: encrypting it in place failed: %s",
			what, werr_str(&e, r));
		return;
	}
	it->converted = 1;
	it->kclass = KC_WRAPD;
	snprintf(it->kdetail, sizeof(it->kdetail),
		 "held %s: %s in place (%llu bytes in %.1f s), LUKS UUID %s", what,
		 res.resumed ? "its interrupted encryption finished" : "encrypted",
		 (unsigned long long)res.bytes, res.seconds, res.uuid);
}

void discovery_prepare(struct worker *w, struct job_item *it)
{
	struct stat st;
	if (stat(it->device, &st) < 0) {
		it->rc = -errno;
		snprintf(it->msg, sizeof(it->msg), "%s: %s", it->device, strerror(errno));
		return;
	}
	if (!S_ISBLK(st.st_mode)) {
		foreign(it, KC_NOT_BLOCK, -ENOTBLK,
			"not a block device; link a block device here (ln -s /dev/disk/by-id/... %s)",
			it->device);
		return;
	}
	_cleanup_close_ int fd = open(it->device, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		it->rc = -errno;
		snprintf(it->msg, sizeof(it->msg), "%s: %s", it->device, strerror(errno));
		return;
	}
	struct werr e;
	werr_clear(&e);
	struct luks2_hdr *hdr = NULL;
	int r = luks2_hdr_read(fd, it->device, &hdr, NULL, &e);
	if (r == 0) {
		bool ours = hdr->has_wrapd_token || hdr->has_conversion_state;
		bool converting = hdr->has_conversion_state;
		char uuid[LUKS2_UUID_LEN + 1];
		snprintf(uuid, sizeof(uuid), "%s", hdr->uuid);
		luks2_hdr_free(hdr);
		if (converting && it->convert) {
			close(fd); /* the engine opens the device itself */
			fd = -1;
			convert(w, it, true, "a conversion in progress");
			return;
		}
		if (ours) {
			it->kclass = KC_WRAPD;
			return; /* the open job opens it */
		}
		foreign(it, KC_FOREIGN, -EMEDIUMTYPE,
			"holds LUKS2 of another tool (UUID %s); wrapd never touches it", uuid);
		return;
	}
	if (r != -ENODEV) {
		foreign(it, KC_FOREIGN, -EMEDIUMTYPE,
			"holds a LUKS header wrapd cannot read (%s); run 'wrapctl inspect %s'",
			werr_str(&e, r), it->device);
		return;
	}
	char sigs[256];
	r = volume_probe_signatures(fd, sigs, sizeof(sigs));
	if (r < 0) {
		it->rc = r;
		snprintf(it->msg, sizeof(it->msg), "%s: libblkid could not probe it", it->device);
		return;
	}
	if (sigs[0] && it->convert && !strchr(sigs, ',') && strcmp(sigs, "unknown") &&
	    plaintext_fs(sigs)) {
		close(fd);
		fd = -1;
		convert(w, it, false, sigs);
		return;
	}
	if (sigs[0]) {
		foreign(it, KC_FOREIGN, -EMEDIUMTYPE,
			"holds %s; wrapd does not touch it. To encrypt it in place: 'wrapctl encrypt %s' (or convert_existing = yes); to use it blank: 'wipefs -a %s'",
			sigs, it->device, it->device);
		return;
	}
	/* Blank: a fresh key from Vault, a new header, then the open job. */
	it->kclass = KC_BLANK;
	struct volume_ctx vctx;
	r = worker_vctx(w, &vctx, &e);
	struct volume_format_req fr = {.device = it->device, .name = it->name};
	struct volume_format_result res;
	if (r == 0)
		r = volume_format(&vctx, &fr, &res, &e);
	if (r < 0) {
		it->rc = r;
		snprintf(it->msg, sizeof(it->msg), "%s", werr_str(&e, r));
		/* Vault's answers name it: retried with the others on the back-off. */
		it->vault_error = strstr(it->msg, "vault") != NULL;
		return;
	}
	snprintf(it->kdetail, sizeof(it->kdetail), "was blank: formatted with a fresh key (UUID %s)",
		 res.uuid);
}
