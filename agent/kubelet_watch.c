/*
 * Kubernetes mode: which of our PVs a pod uses, from the kubelet's folders
 * (kubelet_dir, read only) and the mount table:
 *   pods/<uid>/volumes/kubernetes.io~local-volume/<pv>        Filesystem mode, a bind mount
 *   pods/<uid>/volumeDevices/kubernetes.io~local-volume/<pv>  Block mode (a link kubelet keeps open)
 *   plugins/kubernetes.io/local-volume/mounts/<pv>            the global mount
 * Folders are watched with inotify (every level that can change gets a watch,
 * added as the folders appear; a vanished folder drops its own watch). Bind
 * mounts make no inotify event: /proc/self/mountinfo is polled for EPOLLPRI
 * and the mount points under kubelet_dir are read from it. A Filesystem-mode
 * folder counts as in use only while something is mounted there (a folder
 * left behind by a pod being torn down is not), a Block-mode entry while it
 * exists. Folders that exist at start and folders that vanish while being
 * read are both normal: every error of the scan is "not there".
 *
 * In use: shown in the status (kubernetes.in_use / in_use_by), and it stops
 * the release flow (EraseRefused); close and erase also ask the kernel
 * (open count and holders) on the worker.
 */
#include "agent/kmode.h"
#include "agent/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)
#define LV "kubernetes.io~local-volume"
#define GLOBAL_MOUNTS "plugins/kubernetes.io/local-volume/mounts"

int kubelet_watch_init(struct agent *a, struct werr *err)
{
	(void)err;
	struct kmode *km = a->km;
	km->mountfd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (km->mountfd < 0)
		alog(a->log, WLOG_WARN, NULL, "/proc/self/mountinfo", "kubelet",
		     "cannot watch the mount table: %s; pods' mounts are seen at folder changes only",
		     strerror(errno));
	struct stat st;
	if (stat(a->cfg.kubelet_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		alog(a->log, WLOG_WARN, NULL, a->cfg.kubelet_dir, "kubelet",
		     "kubelet_dir is not a folder here; no pod's use of a volume can be seen (mount it into the container)");
	kubelet_watch_scan(a);
	return 0;
}

static void add_wd(struct agent *a, const char *path)
{
	struct kmode *km = a->km;
	int wd = inotify_add_watch(km->ino, path, WATCH_MASK);
	if (wd < 0)
		return; /* not there (yet): its parent's watch tells when it comes */
	for (size_t i = 0; i < km->nkl_wd; i++)
		if (km->kl_wd[i] == wd)
			return;
	int *n = realloc(km->kl_wd, (km->nkl_wd + 1) * sizeof(*n));
	if (n) {
		km->kl_wd = n;
		km->kl_wd[km->nkl_wd++] = wd;
	}
}

/* Mount points under prefix, from mountinfo (field 5, octal escapes). */
struct mounts {
	char **p;
	size_t n;
};

static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

static void mounts_read(struct mounts *m, const char *prefix)
{
	m->p = NULL;
	m->n = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	size_t pl = strlen(prefix);
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mountpoint ... */
		char *save = NULL, *mp = NULL, *t = strtok_r(line, " ", &save);
		for (int i = 0; t && i < 4; i++)
			t = strtok_r(NULL, " ", &save);
		mp = t;
		if (!mp)
			continue;
		unescape(mp);
		if (strncmp(mp, prefix, pl) || (mp[pl] != '/' && mp[pl] != '\0'))
			continue;
		char **np = realloc(m->p, (m->n + 1) * sizeof(*np));
		if (!np)
			break;
		m->p = np;
		if ((m->p[m->n] = strdup(mp)))
			m->n++;
	}
	free(line);
	fclose(f);
}

static bool mounted(const struct mounts *m, const char *path)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->p[i], path))
			return true;
	return false;
}

static void mounts_free(struct mounts *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->p[i]);
	free(m->p);
}

static struct vol *vol_of_pv(struct agent *a, const char *pv)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].k && !strcmp(a->v[i].k->pv_name, pv))
			return &a->v[i];
	return NULL;
}

static void mark(struct vol *v, const char *pre, const char *arg, const char *post)
{
	if (!v || v->k->in_use)
		return;
	v->k->in_use = true;
	snprintf(v->k->in_use_by, sizeof(v->k->in_use_by), "%s%.200s%s", pre, arg, post);
}

static bool uid_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

/* One pod's folders: watches, and the PVs it uses. */
static void scan_pod(struct agent *a, const char *pods, const char *uid, const struct mounts *m)
{
	char p[4096];
	static const char *const sub[] = {"", "/volumes", "/volumes/" LV, "/volumeDevices",
					  "/volumeDevices/" LV};
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		if (snprintf(p, sizeof(p), "%s/%s%s", pods, uid, sub[i]) < (int)sizeof(p))
			add_wd(a, p);
	}
	for (int block = 0; block < 2; block++) {
		if (snprintf(p, sizeof(p), "%s/%s/%s/" LV, pods, uid,
			     block ? "volumeDevices" : "volumes") >= (int)sizeof(p))
			continue;
		DIR *d = opendir(p);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			struct vol *v = vol_of_pv(a, de->d_name);
			if (!v)
				continue;
			char full[4096 + 256];
			if (snprintf(full, sizeof(full), "%s/%s", p, de->d_name) >= (int)sizeof(full))
				continue;
			if (block)
				mark(v, "pod ", uid, " (block device)");
			else if (mounted(m, full))
				mark(v, "pod ", uid, "");
		}
		closedir(d);
	}
}

/* The metric wrapd_volume_in_use{volume} (1 or 0), in agentops' registry
 * (agent/metrics.h); NULL before hooks_init (the first scan at start):
 * kube_mode_loop_init scans again once it exists. */
static void metric_set(struct agent *a, const struct vol *v)
{
	struct metrics *m = hooks_metrics(a);
	if (!m)
		return;
	metrics_gauge(m, "wrapd_volume_in_use",
		      "1 while a pod uses the volume (kubelet folders and mounts), else 0",
		      METRIC_LABELS("volume"));
	metrics_set(m, "wrapd_volume_in_use", v->k->in_use ? 1 : 0, METRIC_LABELS(v->name));
}

void kubelet_metric_remove(struct agent *a, const char *volume)
{
	struct metrics *m = hooks_metrics(a);
	if (m)
		metrics_remove(m, "wrapd_volume_in_use", METRIC_LABELS(volume));
}

static void in_use_changed(struct agent *a, struct vol *v)
{
	if (v->k->in_use)
		alog(a->log, WLOG_INFO, v->name, v->device, "in-use", "used by %s", v->k->in_use_by);
	else
		alog(a->log, WLOG_INFO, v->name, v->device, "in-use", "no pod uses it any more");
}

void kubelet_watch_scan(struct agent *a)
{
	struct kmode *km = a->km;
	const char *root = a->cfg.kubelet_dir;
	char p[4096];
	bool *was = calloc(a->n ? a->n : 1, sizeof(*was));
	for (size_t i = 0; i < a->n; i++) {
		struct kvol *k = a->v[i].k;
		if (!k)
			continue;
		if (was)
			was[i] = k->in_use;
		k->in_use = false;
		k->in_use_by[0] = '\0';
	}
	struct mounts m;
	mounts_read(&m, root);
	add_wd(a, root);
	static const char *const levels[] = {"pods", "plugins", "plugins/kubernetes.io",
					     "plugins/kubernetes.io/local-volume", GLOBAL_MOUNTS};
	for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
		if (snprintf(p, sizeof(p), "%s/%s", root, levels[i]) < (int)sizeof(p))
			add_wd(a, p);
	}
	/* The global mounts (Filesystem mode). */
	for (size_t i = 0; i < a->n; i++) {
		struct vol *v = &a->v[i];
		if (!v->k)
			continue;
		if (snprintf(p, sizeof(p), "%s/" GLOBAL_MOUNTS "/%s", root, v->k->pv_name) <
			    (int)sizeof(p) && mounted(&m, p))
			mark(v, "mounted at ", p, "");
	}
	/* Every pod's folders. */
	char pods[4096];
	DIR *d = snprintf(pods, sizeof(pods), "%s/pods", root) < (int)sizeof(pods) ? opendir(pods)
										   : NULL;
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && uid_ok(de->d_name))
				scan_pod(a, pods, de->d_name, &m);
		closedir(d);
	}
	mounts_free(&m);
	for (size_t i = 0; i < a->n; i++) {
		if (!a->v[i].k)
			continue;
		if (was && a->v[i].k->in_use != was[i])
			in_use_changed(a, &a->v[i]);
		metric_set(a, &a->v[i]);
	}
	free(was);
	(void)km;
}

void kubelet_mounts_event(struct agent *a)
{
	/* The kernel clears the event when it reports it (mounts_poll); the
	 * scan reads a fresh copy of the table. */
	kubelet_watch_scan(a);
}
