/*
 * The agent's Kubernetes mode: start, the loop's fds, what the PV watch
 * says, and the decisions (agent/kmode.h lists the other files).
 *
 * Order at start (issue 12): the discovery folder is read and its volumes
 * join the first open job (one batched Vault decrypt) before anything is
 * asked of the API server; the watch thread lists the PVs meanwhile. Only
 * when the first open pass is done AND a list has come in does the agent
 * act on PVs:
 *   - an open volume without its PV → create it (409 on our own = fine);
 *   - a PV of this node whose volume is gone → delete it when Available,
 *     keep it with a Warning Event (DeviceGone) when Bound or Released;
 *   - a PV Released with policy Delete → the release flow (kube_jobs.c),
 *     refused with a Warning Event (EraseRefused) while a pod uses it,
 *     deferred (one log line) while the agent resumes an online rekey on it;
 *     policy Retain → left alone;
 *   - a PV that names another LUKS UUID than the device now holds (the
 *     device was formatted while the agent was away) → deleted and published
 *     again when Available, a Warning Event otherwise.
 * Every request other than the watch runs on the worker (JOB_KUBE), so the
 * loop never blocks; at idle nothing is sent but the open watch.
 */
#include "agent/kmode.h"

#include <inttypes.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/inotify.h>

enum { TAG_WATCH = KUBE_TAG_FIRST, TAG_INOTIFY, TAG_MOUNTS };

const char *kclass_name(int c)
{
	switch (c) {
	case KC_WRAPD: return "wrapd";
	case KC_BLANK: return "blank";
	case KC_FOREIGN: return "foreign";
	case KC_NOT_BLOCK: return "not a block device";
	default: return "unknown";
	}
}

void kvol_free(struct kvol *k)
{
	free(k);
}

bool kvol_convert(const struct kvol *k)
{
	return k->convert;
}

bool kvol_foreign(const struct kvol *k)
{
	return k->kclass == KC_FOREIGN || k->kclass == KC_NOT_BLOCK;
}

bool kvol_erase_pending(const struct kvol *k)
{
	return k->erase_pending;
}

void kjob_free(struct kjob *kj)
{
	free(kj);
}

/* ---------------------------------------------------------------- start/stop */

int kube_mode_init(struct agent *a, struct werr *err)
{
	if (!a->cfg.kubernetes)
		return 0;
	struct kmode *km = calloc(1, sizeof(*km));
	if (!km)
		return -ENOMEM;
	km->ino = km->mountfd = km->disc_wd = -1;
	a->km = km;
	int r = agent_node_name(&a->cfg, NULL, km->node, err);
	if (r < 0)
		return r;
	kube_label_value(km->node, km->node_label);
	snprintf(km->ns, sizeof(km->ns), "%s", a->cfg.event_namespace);
	struct kube_client_opts co = {
		.api_url = a->cfg.kube_api_url, .token_file = a->cfg.kube_token_file,
		.ca_file = a->cfg.kube_ca_file, .log = &a->log->wlog,
	};
	if ((r = kube_client_new(&km->kc, &co, err)) < 0)
		return r;
	km->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (km->ino < 0)
		return werr_set(err, -errno, "inotify: %s", strerror(errno));
	if ((r = discovery_init(a, err)) < 0 || (r = kubelet_watch_init(a, err)) < 0)
		return r;
	char sel[256];
	snprintf(sel, sizeof(sel), "%s,%s=%s", KUBE_SELECTOR, KUBE_NODE_LABEL, km->node_label);
	struct kube_watch_opts wo = {.client = co, .selector = sel};
	if ((r = kube_watch_start(&km->kw, &wo, err)) < 0)
		return r;
	alog(a->log, WLOG_INFO, NULL, NULL, "kubernetes",
	     "node %s, API server %s, discovery %s, kubelet %s, storage class %s, %s, reclaim %s",
	     km->node, kube_client_url(km->kc), a->cfg.discovery_dir, a->cfg.kubelet_dir,
	     a->cfg.storage_class, a->cfg.block_mode ? "Block" : "Filesystem",
	     a->cfg.retain ? "Retain" : "Delete");
	worker_set_kmode(a->w, km);
	return 0;
}

static void ep_add(struct agent *a, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev = {.events = events, .data.u32 = tag};
	if (fd >= 0 && epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		alog(a->log, WLOG_ERROR, NULL, NULL, "kubernetes", "epoll: %s", strerror(errno));
}

void kube_mode_loop_init(struct agent *a)
{
	struct kmode *km = a->km;
	if (!km)
		return;
	ep_add(a, kube_watch_fd(km->kw), EPOLLIN, TAG_WATCH);
	ep_add(a, km->ino, EPOLLIN, TAG_INOTIFY);
	ep_add(a, km->mountfd, EPOLLPRI, TAG_MOUNTS);
	kubelet_watch_scan(a); /* the metrics registry exists now */
}

void kube_mode_fini(struct agent *a)
{
	struct kmode *km = a->km;
	if (!km)
		return;
	kube_watch_stop(km->kw);
	kube_client_free(km->kc);
	if (km->ino >= 0)
		close(km->ino);
	if (km->mountfd >= 0)
		close(km->mountfd);
	free(km->pvs);
	free(km->handled);
	free(km->kl_wd);
	free(km);
	a->km = NULL;
}

/* ------------------------------------------------------------------- PVs */

struct kube_pv *kmode_find_pv(struct kmode *km, const char *name)
{
	for (size_t i = 0; i < km->npvs; i++)
		if (!strcmp(km->pvs[i].name, name))
			return &km->pvs[i];
	return NULL;
}

static bool ours(const struct kmode *km, const struct kube_pv *pv)
{
	return pv->managed && !strcmp(pv->node_label, km->node_label);
}

static void pv_upsert(struct kmode *km, const struct kube_pv *pv)
{
	struct kube_pv *p = kmode_find_pv(km, pv->name);
	if (p) {
		*p = *pv;
		return;
	}
	struct kube_pv *n = realloc(km->pvs, (km->npvs + 1) * sizeof(*n));
	if (!n)
		return;
	km->pvs = n;
	km->pvs[km->npvs++] = *pv;
}

static void pv_remove(struct kmode *km, const char *name, const char *uid)
{
	struct kube_pv *p = kmode_find_pv(km, name);
	if (!p || (uid && *uid && *p->uid && strcmp(p->uid, uid)))
		return;
	size_t i = (size_t)(p - km->pvs);
	memmove(&km->pvs[i], &km->pvs[i + 1], (km->npvs - i - 1) * sizeof(*p));
	km->npvs--;
}

static void on_item(struct agent *a, struct kube_watch_item *it)
{
	struct kmode *km = a->km;
	switch (it->kind) {
	case KUBE_W_SYNC: {
		free(km->pvs);
		km->pvs = NULL;
		km->npvs = 0;
		for (size_t i = 0; i < it->n; i++)
			if (ours(km, &it->items[i]))
				pv_upsert(km, &it->items[i]);
		km->nhandled = 0; /* a fresh view: orphans are looked at again */
		alog(a->log, km->synced ? WLOG_DEBUG : WLOG_INFO, NULL, NULL, "kubernetes",
		     "listed %zu PV(s) of this node", km->npvs);
		km->synced = true;
		break;
	}
	case KUBE_W_EVENT:
		if (!ours(km, &it->pv))
			break;
		if (it->ev == KUBE_EV_DELETED)
			pv_remove(km, it->pv.name, it->pv.uid);
		else
			pv_upsert(km, &it->pv);
		alog(a->log, WLOG_DEBUG, it->pv.volume, NULL, "pv", "%s %s %s",
		     it->ev == KUBE_EV_ADDED ? "ADDED" : it->ev == KUBE_EV_DELETED ? "DELETED" : "MODIFIED",
		     it->pv.name, kube_phase_name(it->pv.phase));
		break;
	case KUBE_W_STATE:
		if (it->ok != km->watch_ok || strcmp(it->msg, km->watch_msg))
			alog(a->log, it->ok ? WLOG_INFO : WLOG_WARN, NULL, NULL, "kubernetes", "%s",
			     it->ok ? "the API server answers" : it->msg);
		km->watch_ok = it->ok;
		snprintf(km->watch_msg, sizeof(km->watch_msg), "%s", it->ok ? "" : it->msg);
		break;
	}
}

void kube_mode_event(struct agent *a, uint32_t tag)
{
	struct kmode *km = a->km;
	if (!km)
		return;
	if (tag == TAG_WATCH) {
		struct kube_watch_item *items = kube_watch_take(km->kw);
		for (struct kube_watch_item *it = items; it; it = it->next)
			on_item(a, it);
		kube_watch_item_free(items);
	} else if (tag == TAG_INOTIFY) {
		bool disc = false, kubelet = false;
		char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t n;
		while ((n = read(km->ino, buf, sizeof(buf))) > 0) {
			for (char *p = buf; p < buf + n;) {
				const struct inotify_event *ev = (const struct inotify_event *)p;
				if (ev->mask & IN_Q_OVERFLOW)
					disc = kubelet = true;
				else if (discovery_wd(a, ev->wd))
					disc = true;
				else
					kubelet = true;
				p += sizeof(*ev) + ev->len;
			}
		}
		if (disc)
			discovery_scan(a);
		if (kubelet)
			kubelet_watch_scan(a);
	} else if (tag == TAG_MOUNTS) {
		kubelet_mounts_event(a);
	}
	agent_kick(a);
}

/* ------------------------------------------------------------------ jobs */

struct kjob *kjob_new(struct agent *a, enum kop op)
{
	struct kjob *kj = calloc(1, sizeof(*kj));
	if (!kj)
		return NULL;
	kj->op = op;
	kj->kc = a->km->kc;
	snprintf(kj->node, sizeof(kj->node), "%s", a->km->node);
	snprintf(kj->ns, sizeof(kj->ns), "%s", a->cfg.event_namespace);
	kj->ev_unique = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() << 8 ^ ++a->km->seq;
	return kj;
}

void kmode_submit(struct agent *a, struct vol *v, struct kjob *kj)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		kjob_free(kj);
		return;
	}
	j->kind = JOB_KUBE;
	j->kj = kj;
	if (v) {
		snprintf(kj->vol, sizeof(kj->vol), "%s", v->name);
		v->busy = true;
		v->k->job = true;
	}
	worker_submit(a->w, j);
}

void kmode_event(struct agent *a, struct vol *v, const char *pv_name, bool warning,
		 const char *reason, const char *fmt, ...)
{
	struct kjob *kj = kjob_new(a, KOP_EVENT);
	if (!kj)
		return;
	kj->ev = true;
	kj->ev_warning = warning;
	snprintf(kj->ev_reason, sizeof(kj->ev_reason), "%s", reason);
	snprintf(kj->pv_name, sizeof(kj->pv_name), "%s", pv_name);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(kj->ev_message, sizeof(kj->ev_message), fmt, ap);
	va_end(ap);
	alog(a->log, warning ? WLOG_WARN : WLOG_INFO, v ? v->name : NULL, v ? v->device : NULL,
	     reason, "%s", kj->ev_message);
	kmode_submit(a, NULL, kj);
}

static void fill_spec(struct agent *a, struct vol *v, struct kjob *kj)
{
	snprintf(kj->device, sizeof(kj->device), "%s", v->device);
	snprintf(kj->pv_name, sizeof(kj->pv_name), "%s", v->k->pv_name);
	snprintf(kj->luks_uuid, sizeof(kj->luks_uuid), "%s", v->luks_uuid);
	kj->spec = (struct kube_pv_spec){
		.node = a->km->node, .volume = v->name, .storage_class = a->cfg.storage_class,
		.block = a->cfg.block_mode, .fs_type = a->cfg.fs_type, .retain = a->cfg.retain,
		.luks_uuid = kj->luks_uuid,
	};
}

static void submit_vol(struct agent *a, struct vol *v, enum kop op, const struct kube_pv *pv)
{
	struct kjob *kj = kjob_new(a, op);
	if (!kj)
		return;
	fill_spec(a, v, kj);
	if (pv)
		snprintf(kj->pv_uid, sizeof(kj->pv_uid), "%s", pv->uid);
	kmode_submit(a, v, kj);
}

static bool handled(struct kmode *km, const char *uid, bool mark)
{
	for (size_t i = 0; i < km->nhandled; i++)
		if (!strcmp(km->handled[i], uid))
			return true;
	if (mark) {
		char (*n)[64] = realloc(km->handled, (km->nhandled + 1) * sizeof(*n));
		if (n) {
			km->handled = n;
			snprintf(km->handled[km->nhandled++], 64, "%s", uid);
		}
	}
	return false;
}

/* The decisions for one discovered, open volume and its PV. */
static void kick_vol(struct agent *a, struct vol *v, uint64_t now)
{
	struct kmode *km = a->km;
	struct kvol *k = v->k;
	struct kube_pv *pv = kmode_find_pv(km, k->pv_name);
	snprintf(k->pv_phase, sizeof(k->pv_phase), "%s", pv ? kube_phase_name(pv->phase) : "");
	if (v->busy || k->job || k->gone)
		return;
	if (k->erase_pending && v->st == VS_FAILED) {
		/* A release that failed half-way: the device holds no key any
		 * more (or soon will not); finish it on the back-off. */
		if (k->retry_at_ms && now < k->retry_at_ms)
			return;
		k->retry_at_ms = 0;
		submit_vol(a, v, KOP_ERASE,
			   pv && pv->phase == KUBE_PHASE_RELEASED && !pv->deleting ? pv : NULL);
		return;
	}
	if (v->st != VS_OPEN)
		return;
	if (k->retry_at_ms && now < k->retry_at_ms)
		return;
	k->retry_at_ms = 0;
	if (pv && k->await_gone_uid[0] && !strcmp(pv->uid, k->await_gone_uid))
		return; /* the PV we deleted is still going */
	k->await_gone_uid[0] = '\0';
	if (!pv) {
		submit_vol(a, v, KOP_PUBLISH, NULL);
		return;
	}
	if (pv->deleting)
		return; /* someone deletes it: published again once it is gone */
	if (pv->phase == KUBE_PHASE_RELEASED) {
		if (!k->released_ms)
			k->released_ms = now;
		if (pv->reclaim != KUBE_RECLAIM_DELETE)
			return; /* Retain: the data stays, the PV stays Released */
		if (v->rekeying) {
			/* The release waits for the online rekey: it ends by
			 * itself (or stops at a checkpoint at SIGTERM), and the
			 * PV is erased right after (agent_kick runs again). */
			if (!v->rekey_wait_logged)
				alog(a->log, WLOG_INFO, v->name, v->device, "release",
				     "PV %s is Released: erased once the online rekey running on it ends",
				     pv->name);
			v->rekey_wait_logged = true;
			return;
		}
		v->rekey_wait_logged = false;
		if (k->in_use) {
			if (strcmp(k->refused_uid, pv->uid)) {
				snprintf(k->refused_uid, sizeof(k->refused_uid), "%s", pv->uid);
				kmode_event(a, v, pv->name, true, "EraseRefused",
					    "PV %s is Released but /dev/mapper/%s is still in use (%s): not erased, kept Released; it is erased once nothing uses it",
					    pv->name, v->name, k->in_use_by);
			}
			return;
		}
		submit_vol(a, v, KOP_ERASE, pv);
		return;
	}
	if (pv->luks_uuid[0] && v->luks_uuid[0] && strcmp(pv->luks_uuid, v->luks_uuid)) {
		if (pv->phase == KUBE_PHASE_AVAILABLE || pv->phase == KUBE_PHASE_PENDING) {
			alog(a->log, WLOG_INFO, v->name, v->device, "republish",
			     "PV %s names LUKS UUID %s but the device holds %s: deleting it to publish again",
			     pv->name, pv->luks_uuid, v->luks_uuid);
			snprintf(k->await_gone_uid, sizeof(k->await_gone_uid), "%s", pv->uid);
			submit_vol(a, v, KOP_DELETE, pv);
		} else if (strcmp(k->refused_uid, pv->uid)) {
			snprintf(k->refused_uid, sizeof(k->refused_uid), "%s", pv->uid);
			kmode_event(a, v, pv->name, true, "DeviceGone",
				    "PV %s (%s) names LUKS UUID %s but %s now holds %s: the PV is kept; delete it when its claim is gone",
				    pv->name, kube_phase_name(pv->phase), pv->luks_uuid, v->device,
				    v->luks_uuid);
		}
	}
}

/* This node's PVs whose volume is gone from discovery. */
static void kick_orphans(struct agent *a)
{
	struct kmode *km = a->km;
	for (size_t i = 0; i < km->npvs; i++) {
		struct kube_pv *pv = &km->pvs[i];
		bool have = false;
		for (size_t k = 0; k < a->n && !have; k++)
			have = a->v[k].k && !a->v[k].k->gone && !strcmp(a->v[k].k->pv_name, pv->name);
		if (have || !*pv->uid || pv->deleting || handled(km, pv->uid, true))
			continue;
		if (pv->phase == KUBE_PHASE_AVAILABLE || pv->phase == KUBE_PHASE_PENDING ||
		    pv->phase == KUBE_PHASE_NONE) {
			struct kjob *kj = kjob_new(a, KOP_DELETE);
			if (!kj)
				continue;
			snprintf(kj->pv_name, sizeof(kj->pv_name), "%s", pv->name);
			snprintf(kj->pv_uid, sizeof(kj->pv_uid), "%s", pv->uid);
			kj->ev = true;
			snprintf(kj->ev_reason, sizeof(kj->ev_reason), "DeviceGone");
			snprintf(kj->ev_message, sizeof(kj->ev_message),
				 "the device of PV %s (volume %s) is no longer in the discovery folder: the Available PV is deleted",
				 pv->name, pv->volume);
			alog(a->log, WLOG_INFO, pv->volume, NULL, "DeviceGone", "%s", kj->ev_message);
			kmode_submit(a, NULL, kj);
		} else {
			kmode_event(a, NULL, pv->name, true, "DeviceGone",
				    "the device of PV %s (volume %s, %s) is no longer in the discovery folder: the PV is kept",
				    pv->name, pv->volume, kube_phase_name(pv->phase));
		}
	}
}

void kube_mode_kick(struct agent *a)
{
	struct kmode *km = a->km;
	if (!km || a->stopping || !a->first_pass_done || !km->synced)
		return;
	uint64_t now = agent_now_ms();
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].k)
			kick_vol(a, &a->v[i], now);
	kick_orphans(a);
}

uint64_t kube_mode_deadline(const struct agent *a)
{
	uint64_t d = 0;
	if (!a->km)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct kvol *k = a->v[i].k;
		if (k && k->retry_at_ms && (!d || k->retry_at_ms < d))
			d = k->retry_at_ms;
	}
	return d;
}

/* The next try on the agent's back-off; never before the API server's
 * Retry-After (retry_after_s, bounded by agent_retry_max). Returns the delay. */
static uint64_t failed_later(struct agent *a, struct vol *v, const char *msg, long retry_after_s)
{
	struct kvol *k = v->k;
	uint64_t d = (uint64_t)a->cfg.retry_min_ms << (k->fails < 10 ? k->fails : 10);
	if (d > (uint64_t)a->cfg.retry_max_ms)
		d = (uint64_t)a->cfg.retry_max_ms;
	if (retry_after_s > 0) {
		uint64_t ra = (uint64_t)retry_after_s * 1000u;
		if (ra > (uint64_t)a->cfg.retry_max_ms)
			ra = (uint64_t)a->cfg.retry_max_ms;
		if (ra > d)
			d = ra;
	}
	k->fails++;
	k->retry_at_ms = agent_now_ms() + d;
	bool again = !strcmp(k->last_kube_error, msg);
	snprintf(k->last_kube_error, sizeof(k->last_kube_error), "%s", msg);
	alog(a->log, again ? WLOG_DEBUG : WLOG_WARN, v->name, v->device, "kubernetes",
	     "%s; trying again in %llu ms%s", msg, (unsigned long long)d,
	     retry_after_s > 0 ? " (the API server's Retry-After)" : "");
	return d;
}

/* A release that failed: one Warning Event per failed release (its first
 * error; the same outage fails each retry with messages that differ only in
 * details such as timings), again after the release succeeded. */
static void erase_failed_event(struct agent *a, struct vol *v, const struct kjob *kj, uint64_t d)
{
	struct kvol *k = v->k;
	if (k->erase_said[0])
		return;
	snprintf(k->erase_said, sizeof(k->erase_said), "%s", kj->msg);
	kmode_event(a, v, kj->pv_name, true, "EraseFailed",
		    "the release of PV %.100s (/dev/mapper/%s) failed: %.400s. %s; the agent tries again on its back-off (next in %llu ms, at most agent_retry_max apart) and the PV stays Released until it is done. If Vault is down or sealed, bring it back ('wrapctl vault status' says why); nothing else is needed",
		    kj->pv_name, v->name, kj->msg,
		    kj->mapped && !k->erase_pending ? "The volume is still open and holds its data"
			       : "The volume is closed (its key may already be destroyed)",
		    (unsigned long long)d);
}

static void erase_done(struct agent *a, struct vol *v, struct kjob *kj)
{
	struct kvol *k = v->k;
	if (kj->rc == 0 || kj->new_uuid[0]) {
		if (k->erase_pending)
			alog(a->log, WLOG_INFO, v->name, v->device, "erased",
			     "the release that failed before is done");
		k->erase_pending = false;
		k->erase_said[0] = '\0';
		k->fails = 0;
		snprintf(v->luks_uuid, sizeof(v->luks_uuid), "%.36s", kj->new_uuid);
		v->st = VS_OPEN;
		v->last_error[0] = '\0';
		snprintf(k->await_gone_uid, sizeof(k->await_gone_uid), "%s", kj->pv_uid);
		k->refused_uid[0] = '\0';
		alog(a->log, WLOG_INFO, v->name, v->device, "erased",
		     "crypto-erased and formatted with a fresh key (UUID %s) in %llu ms; PV %s %s",
		     kj->new_uuid, (unsigned long long)kj->erase_ms, kj->pv_name,
		     kj->rc == 0 ? "deleted, published again once it is gone" : "not deleted yet");
		if (kj->rc < 0)
			failed_later(a, v, kj->msg, kj->retry_after_s);
		return;
	}
	if (kj->in_use) {
		v->st = VS_OPEN;
		snprintf(k->refused_uid, sizeof(k->refused_uid), "%s", kj->pv_uid);
		alog(a->log, WLOG_WARN, v->name, v->device, "EraseRefused", "%s", kj->msg);
		return;
	}
	if (kj->mapped && !k->erase_pending) {
		v->st = VS_OPEN;
		erase_failed_event(a, v, kj, failed_later(a, v, kj->msg, kj->retry_after_s));
		return;
	}
	/* Closed, and the erase, the new format or the open failed: the PV
	 * stays Released (nothing republished), the volume is failed, and the
	 * whole release runs again on the back-off (erase is idempotent). */
	bool again = k->erase_pending; /* said when it first failed */
	v->st = VS_FAILED;
	k->erase_pending = true;
	snprintf(v->last_error, sizeof(v->last_error), "%s", kj->msg);
	alog(a->log, again ? WLOG_DEBUG : WLOG_ERROR, v->name, v->device, "erase-failed", "%s",
	     kj->msg);
	erase_failed_event(a, v, kj, failed_later(a, v, kj->msg, kj->retry_after_s));
}

void kube_mode_job_done(struct agent *a, struct job *j)
{
	struct kjob *kj = j->kj;
	if (!a->km || !kj)
		return;
	struct vol *v = kj->vol[0] ? agent_find(a, kj->vol) : NULL;
	if (v) {
		v->busy = false;
		if (v->k)
			v->k->job = false;
	}
	if (kj->op == KOP_EVENT || (!v && kj->op == KOP_DELETE) || !v || !v->k) {
		if (kj->rc < 0)
			alog(a->log, WLOG_WARN, kj->vol[0] ? kj->vol : NULL, NULL, "kubernetes", "%s",
			     kj->msg);
		return;
	}
	struct kvol *k = v->k;
	switch (kj->op) {
	case KOP_PUBLISH:
		if (kj->rc < 0) {
			failed_later(a, v, kj->msg, kj->retry_after_s);
			break;
		}
		k->fails = 0;
		k->last_kube_error[0] = '\0';
		if (kj->again)
			break; /* the old PV is still being deleted: its DELETED event brings us back */
		pv_upsert(a->km, &kj->pv);
		if (k->released_ms) {
			k->last_erase_ms = agent_now_ms() - k->released_ms;
			alog(a->log, WLOG_INFO, v->name, v->device, "available",
			     "PV %s published again: %llu ms from Released to Available", kj->pv.name,
			     (unsigned long long)k->last_erase_ms);
			k->released_ms = 0;
		} else {
			alog(a->log, WLOG_INFO, v->name, v->device, "published",
			     "PV %s %s (%" PRIu64 " bytes, %s)", kj->pv.name,
			     kj->existed ? "exists already" : "created", kj->spec.capacity_bytes,
			     kube_phase_name(kj->pv.phase));
		}
		break;
	case KOP_DELETE:
		if (kj->rc < 0) {
			k->await_gone_uid[0] = '\0';
			failed_later(a, v, kj->msg, kj->retry_after_s);
		}
		break;
	case KOP_ERASE:
		erase_done(a, v, kj);
		break;
	default:
		break;
	}
}

void kube_mode_open_item(struct agent *a, struct vol *v, const struct job_item *it)
{
	struct kvol *k = v->k;
	if (!a->km || !k || !it->discovered)
		return;
	if (it->kclass)
		k->kclass = it->kclass;
	if (it->kdetail[0])
		snprintf(k->kdetail, sizeof(k->kdetail), "%s", it->kdetail);
	if (it->converted)
		kmode_event(a, v, k->pv_name, it->converted < 0,
			    it->converted > 0 ? "ConvertDone" : "ConvertFailed", "%s: %s", k->path,
			    it->converted > 0 ? it->kdetail : it->msg);
	if ((k->kclass == KC_FOREIGN || k->kclass == KC_NOT_BLOCK) && !k->foreign_said) {
		k->foreign_said = true;
		kmode_event(a, v, k->pv_name, true, "ForeignDevice", "%s: %s", k->path, k->kdetail);
	}
}

/* --------------------------------------------------------------------- status */

void kube_mode_vol_json(const struct vol *v, json_t *o)
{
	const struct kvol *k = v->k;
	json_t *j = json_object();
	json_object_set_new(j, "discovery_entry", json_string(k->path));
	json_object_set_new(j, "class", json_string(kclass_name(k->kclass)));
	json_object_set_new(j, "detail", k->kdetail[0] ? json_string(k->kdetail) : json_null());
	json_object_set_new(j, "pv", json_string(k->pv_name));
	json_object_set_new(j, "pv_phase", k->pv_phase[0] ? json_string(k->pv_phase) : json_null());
	json_object_set_new(j, "in_use", json_boolean(k->in_use));
	json_object_set_new(j, "in_use_by", k->in_use_by[0] ? json_string(k->in_use_by) : json_null());
	json_object_set_new(j, "gone", json_boolean(k->gone));
	json_object_set_new(j, "erase_pending", json_boolean(k->erase_pending));
	json_object_set_new(j, "released_to_available_ms",
			    k->last_erase_ms ? json_integer((json_int_t)k->last_erase_ms) : json_null());
	json_object_set_new(j, "error", k->last_kube_error[0] ? json_string(k->last_kube_error)
							     : json_null());
	json_object_set_new(o, "kubernetes", j);
}

json_t *kube_mode_json(const struct agent *a)
{
	const struct kmode *km = a->km;
	json_t *j = json_object();
	json_object_set_new(j, "node", json_string(km->node));
	json_object_set_new(j, "api_server", json_string(kube_client_url(km->kc)));
	json_object_set_new(j, "listed", json_boolean(km->synced));
	json_object_set_new(j, "watch_ok", json_boolean(km->watch_ok));
	json_object_set_new(j, "watch_error", km->watch_msg[0] ? json_string(km->watch_msg) : json_null());
	json_object_set_new(j, "pvs", json_integer((json_int_t)km->npvs));
	json_object_set_new(j, "discovery_dir", json_string(a->cfg.discovery_dir));
	json_object_set_new(j, "kubelet_dir", json_string(a->cfg.kubelet_dir));
	return j;
}
