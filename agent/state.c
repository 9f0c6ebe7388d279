/*
 * Reconcile: the agent's list of volumes (one per table line, plus any wrapd
 * mapping the table does not list), their states, and the decisions that
 * turn a table change, a finished job or a timer into the next jobs.
 *
 * Rules:
 *  - a mapping that exists is never touched to "adopt" it: the worker only
 *    reads sysfs/dm for it, so an agent restart costs no Vault request;
 *  - every volume due for an open goes into ONE open job (one batched
 *    decrypt per Transit key);
 *  - a failure while asking Vault puts the volume in "waiting for Vault",
 *    retried with capped exponential back-off and jitter on the timerfd;
 *    any other failure is "failed" and is retried only when its line
 *    changes or on SIGHUP;
 *  - a removed line is closed unless the mapping is in use (then kept and
 *    reported); a changed line is applied by close + open when idle;
 *  - a wrapd mapping that the table does not list is shown, never closed.
 */
#include "agent/agent.h"

#include <sys/random.h>

const char *vol_state_name(enum vol_state s)
{
	switch (s) {
	case VS_CLOSED: return "closed";
	case VS_OPENING: return "opening";
	case VS_OPEN: return "open";
	case VS_WAITING_VAULT: return "waiting for Vault";
	case VS_FAILED: return "failed";
	case VS_CLOSING: return "closing";
	}
	return "?";
}

struct vol *agent_find(struct agent *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->v[i].name, name))
			return &a->v[i];
	return NULL;
}

static void vol_free(struct vol *v)
{
	free(v->name);
	free(v->device);
	free(v->header);
	kvol_free(v->k);
}

static void vol_remove(struct agent *a, struct vol *v)
{
	size_t i = (size_t)(v - a->v);
	hooks_volume_gone(a, v->name);
	vol_free(v);
	memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof(*v));
	a->n--;
}

void agent_free_vols(struct agent *a)
{
	for (size_t i = 0; i < a->n; i++)
		vol_free(&a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

static struct vol *vol_add(struct agent *a, const char *name)
{
	struct vol *nv = realloc(a->v, (a->n + 1) * sizeof(*nv));
	if (!nv)
		return NULL;
	a->v = nv;
	struct vol *v = &a->v[a->n];
	memset(v, 0, sizeof(*v));
	v->name = strdup(name);
	if (!v->name)
		return NULL;
	v->key_version = -1;
	a->n++;
	return v;
}

/* For the Kubernetes mode's discovery (agent/discovery.c). */
struct vol *agent_vol_add(struct agent *a, const char *name)
{
	return vol_add(a, name);
}

void agent_vol_remove(struct agent *a, struct vol *v)
{
	vol_remove(a, v);
}

static bool streq0(const char *x, const char *y)
{
	return (!x && !y) || (x && y && !strcmp(x, y));
}

static int vol_set_line(struct vol *v, const struct volume_entry *e)
{
	char *d = strdup(e->device);
	char *h = e->header ? strdup(e->header) : NULL;
	if (!d || (e->header && !h)) {
		free(d);
		free(h);
		return -ENOMEM;
	}
	free(v->device);
	free(v->header);
	v->device = d;
	v->header = h;
	v->flags = e->flags;
	v->noauto = e->noauto;
	return 0;
}

static bool is_mapped(const struct vol *v)
{
	return v->st == VS_OPEN || v->st == VS_CLOSING;
}

/* ---- the table -------------------------------------------------------------- */

static void table_line_seen(struct agent *a, const struct volume_entry *e)
{
	struct vol *v = agent_find(a, e->name);
	if (!v) {
		v = vol_add(a, e->name);
		if (!v || vol_set_line(v, e) < 0) {
			alog(a->log, WLOG_ERROR, e->name, e->device, "error", "out of memory");
			return;
		}
		v->in_table = true;
		if (a->first_pass_done)
			alog(a->log, WLOG_INFO, v->name, v->device, "added",
			     "new line %u in the table%s", e->line, e->noauto ? " (noauto)" : "");
		return;
	}
	if (!v->in_table) {
		/* A mapping we showed as unlisted is now in the table. */
		v->in_table = true;
		v->kept = false;
		if (vol_set_line(v, e) < 0)
			return;
		alog(a->log, WLOG_INFO, v->name, v->device, "listed", "the table now lists this mapping");
		return;
	}
	bool same = streq0(v->device, e->device) && streq0(v->header, e->header) &&
		    v->flags == e->flags && v->noauto == e->noauto;
	if (same)
		return;
	if (vol_set_line(v, e) < 0)
		return;
	if (is_mapped(v) || v->busy) {
		v->changed = true;
		snprintf(v->note, sizeof(v->note),
			 "table line %u changed; applied when the mapping is idle", e->line);
		alog(a->log, WLOG_WARN, v->name, v->device, "changed",
		     "table line %u changed while the volume is open; it is applied (close and open again) once nothing uses it",
		     e->line);
	} else {
		alog(a->log, WLOG_INFO, v->name, v->device, "changed", "table line %u changed", e->line);
		v->st = VS_CLOSED;
		v->last_error[0] = '\0';
	}
}

int agent_table_reload(struct agent *a)
{
	const char *path = a->cfg.volume_table;
	struct volume_table t = {0};
	struct werr e;
	werr_clear(&e);
	int r = volume_table_load(path, &t, &e);
	if (r == -ENOENT && a->km) {
		/* Kubernetes mode: the table is optional. */
		r = 0;
		memset(&t, 0, sizeof(t));
	}
	if (r < 0) {
		/* Never act on a table we cannot read: keep everything as it is. */
		alog(a->log, WLOG_ERROR, NULL, path, "table",
		     "%s; keeping the current volumes as they are", werr_str(&e, r));
		return r;
	}
	for (size_t i = 0; i < t.n; i++)
		table_line_seen(a, &t.v[i]);
	/* Lines that went away. */
	for (size_t i = 0; i < a->n;) {
		struct vol *v = &a->v[i];
		if (!v->in_table && v->kept)
			v->kept = false; /* try the close again: maybe it is idle now */
		if (!v->in_table || v->k || volume_table_find(&t, v->name)) {
			i++;
			continue;
		}
		v->in_table = false;
		v->changed = false;
		v->kept = false;
		if (is_mapped(v) || v->busy) {
			alog(a->log, WLOG_INFO, v->name, v->device, "removed",
			     "its line left the table; closing it unless it is in use");
			i++;
			continue;
		}
		alog(a->log, WLOG_INFO, v->name, v->device, "removed", "its line left the table");
		vol_remove(a, v);
	}
	volume_table_free(&t);
	return 0;
}

/* ---- jobs -------------------------------------------------------------------- */

static int item_set(struct job_item *it, const struct vol *v)
{
	it->name = strdup(v->name);
	it->device = v->device ? strdup(v->device) : NULL;
	it->header = v->header ? strdup(v->header) : NULL;
	it->flags = v->flags;
	it->key_version = -1;
	it->discovered = v->k != NULL;
	it->convert = v->k && kvol_convert(v->k);
	if (it->name && (it->device || !v->device) && (it->header || !v->header))
		return 0;
	free(it->name);
	free(it->device);
	free(it->header);
	memset(it, 0, sizeof(*it));
	return -ENOMEM;
}

/* A noauto line not looked at yet: only asked whether it is mapped. */
static bool adopt_due(const struct vol *v)
{
	return v->noauto && v->in_table && !v->checked && !v->busy;
}

static struct job *job_new(enum job_kind k, size_t n)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->kind = k;
	j->items = calloc(n ? n : 1, sizeof(*j->items));
	if (!j->items) {
		free(j);
		return NULL;
	}
	return j;
}

/* Is v due for an open attempt now? */
static bool open_due(const struct agent *a, const struct vol *v)
{
	if (v->busy || !v->in_table || v->noauto)
		return false;
	if (v->st == VS_CLOSED)
		return true;
	/* waiting volumes go when the back-off timer fires (retry_at == 0) */
	return v->st == VS_WAITING_VAULT && !a->retry_at_ms;
}

/* ---- online rekeys in progress: resumed on the rekey worker --------------------- */

static void rekey_from_item(struct vol *v, const struct job_item *it)
{
	v->rekey = it->rekey;
	v->rekey_done = it->rekey_done;
	v->rekey_total = it->rekey_total;
	snprintf(v->rekey_source, sizeof(v->rekey_source), "%s", it->rekey_source);
}

/* An open volume whose header says a rekey is in progress: resume it. */
static void rekey_kick(struct agent *a)
{
	if (!a->rw || a->stopping)
		return;
	for (size_t i = 0; i < a->n; i++) {
		struct vol *v = &a->v[i];
		if (!v->rekey || v->rekeying || v->rekey_failed || v->busy || v->st != VS_OPEN)
			continue;
		const char *dev = v->device ? v->device : v->backing[0] ? v->backing : NULL;
		if (!dev)
			continue;
		struct job *j = job_new(JOB_REKEY, 1);
		if (!j || item_set(&j->items[0], v) < 0) {
			job_free(j);
			continue;
		}
		if (!j->items[0].device && !(j->items[0].device = strdup(dev))) {
			job_free(j);
			continue;
		}
		j->n = 1;
		j->items[0].rekey_done = v->rekey_done;
		j->items[0].rekey_total = v->rekey_total;
		j->max_rate = a->cfg.rekey_max_rate;
		j->stop = &a->rekey_stop;
		v->rekeying = true;
		char rate[48] = "no rate limit";
		if (a->cfg.rekey_max_rate)
			snprintf(rate, sizeof(rate), "at most %llu MiB/s",
				 (unsigned long long)(a->cfg.rekey_max_rate >> 20));
		alog(a->log, WLOG_INFO, v->name, dev, "rekey",
		     "resuming the online rekey from %.1f of %.1f MiB (%.1f%%, the %s's checkpoint), %s",
		     (double)v->rekey_done / 1048576.0, (double)v->rekey_total / 1048576.0,
		     v->rekey_total ? 100.0 * (double)v->rekey_done / (double)v->rekey_total : 0.0,
		     v->rekey_source[0] ? v->rekey_source : "header", rate);
		hooks_rekey(a, v);
		worker_submit(a->rw, j);
	}
}

static void rekey_done(struct agent *a, struct job *j)
{
	const struct job_item *it = &j->items[0];
	struct vol *v = agent_find(a, it->name);
	if (!v)
		return;
	v->rekeying = false;
	if (it->mapped) {
		rekey_from_item(v, it);
		v->key_version = it->key_version;
	}
	if (it->rc == 0 || it->rc == -ENOENT) {
		v->rekey = false;
		v->rekey_failed = false;
		if (it->rc == -ENOENT)
			alog(a->log, WLOG_INFO, v->name, it->device, "rekey",
			     "no rekey left to resume (finished by another process)");
		else
			alog(a->log, WLOG_INFO, v->name, it->device, "rekeyed",
			     "online rekey finished: %.1f MiB in %.1f s (%.1f MiB/s)%s",
			     (double)j->rk_bytes / 1048576.0, j->rk_seconds,
			     j->rk_seconds > 0 ? (double)j->rk_bytes / 1048576.0 / j->rk_seconds : 0.0,
			     j->rk_online ? "" : " (offline: the mapping was gone)");
	} else if (j->rk_interrupted) {
		alog(a->log, WLOG_INFO, v->name, it->device, "rekey",
		     "online rekey stopped at a checkpoint, %.1f%% done (%.1f MiB this run); the mapping serves, and the agent resumes it when it starts again",
		     v->rekey_total ? 100.0 * (double)v->rekey_done / (double)v->rekey_total : 0.0,
		     (double)j->rk_bytes / 1048576.0);
	} else {
		v->rekey_failed = true;
		snprintf(v->last_error, sizeof(v->last_error), "rekey: %.1000s", it->msg);
		alog(a->log, WLOG_ERROR, v->name, it->device, "rekey-failed",
		     "%s; the mapping stays open. Fix the cause, then SIGHUP the agent (or run 'wrapctl resume %s')",
		     it->msg, it->device ? it->device : v->name);
	}
	hooks_rekey(a, v);
}

/* The rekey worker's progress (its eventfd). */
void agent_rekey_progress(struct agent *a)
{
	char name[128];
	uint64_t done, total;
	if (!a->rw || !worker_take_progress(a->rw, name, &done, &total))
		return;
	struct vol *v = agent_find(a, name);
	if (!v || !v->rekeying)
		return;
	v->rekey_done = done;
	v->rekey_total = total;
	snprintf(v->rekey_source, sizeof(v->rekey_source), "resume");
	hooks_rekey(a, v);
}

void agent_kick(struct agent *a)
{
	if (a->stopping)
		return;
	/* Closes: lines removed (or changed) while mapped. */
	for (size_t i = 0; i < a->n; i++) {
		struct vol *v = &a->v[i];
		bool want_close = v->st == VS_OPEN && !v->busy && !v->rekeying &&
				  ((!v->in_table && !v->kept && !v->adopted_unlisted) || v->changed);
		if (!want_close)
			continue;
		struct job *j = job_new(JOB_CLOSE, 1);
		if (!j || item_set(&j->items[0], v) < 0) {
			job_free(j);
			continue;
		}
		j->n = 1;
		v->busy = true;
		v->st = VS_CLOSING;
		worker_submit(a->w, j);
	}
	/* Opens: all due volumes in one job (one batched decrypt). */
	size_t n = 0;
	for (size_t i = 0; i < a->n; i++)
		if (open_due(a, &a->v[i]) || adopt_due(&a->v[i]))
			n++;
	rekey_kick(a);
	/* The first pass always runs (even with an empty table): it finds the
	 * wrapd mappings that are open already. */
	if (!n && a->first_sent) {
		kube_mode_kick(a);
		return;
	}
	a->first_sent = true;
	struct job *j = job_new(JOB_OPEN, n);
	if (!j)
		return;
	for (size_t i = 0; i < a->n; i++) {
		struct vol *v = &a->v[i];
		bool adopt = adopt_due(v);
		if (!open_due(a, v) && !adopt)
			continue;
		if (item_set(&j->items[j->n], v) < 0)
			break;
		j->items[j->n++].adopt_only = adopt;
		v->busy = true;
		if (!adopt)
			v->st = VS_OPENING;
	}
	worker_submit(a->w, j);
	kube_mode_kick(a);
}

/* ---- back-off and timers --------------------------------------------------------- */

static uint32_t rnd(struct agent *a)
{
	/* xorshift32, seeded from getrandom */
	if (!a->rng && getrandom(&a->rng, sizeof(a->rng), 0) != sizeof(a->rng))
		a->rng = (uint32_t)agent_now_ms() | 1;
	if (!a->rng)
		a->rng = 1;
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 17;
	a->rng ^= a->rng << 5;
	return a->rng;
}

/* Capped exponential back-off with jitter: a delay in [d/2, d], d = min(max, min << n). */
static uint64_t backoff_ms(struct agent *a, unsigned n)
{
	uint64_t d = (uint64_t)a->cfg.retry_min_ms;
	for (unsigned i = 0; i < n && d < (uint64_t)a->cfg.retry_max_ms; i++)
		d *= 2;
	if (d > (uint64_t)a->cfg.retry_max_ms)
		d = (uint64_t)a->cfg.retry_max_ms;
	return d / 2 + rnd(a) % (d / 2 + 1);
}

static size_t count_state(const struct agent *a, enum vol_state s)
{
	size_t c = 0;
	for (size_t i = 0; i < a->n; i++)
		c += a->v[i].st == s;
	return c;
}

static void schedule_retry(struct agent *a)
{
	if (!count_state(a, VS_WAITING_VAULT)) {
		a->retry_n = 0;
		a->retry_at_ms = 0;
		return;
	}
	if (a->retry_at_ms)
		return;
	uint64_t d = backoff_ms(a, a->retry_n);
	if (a->retry_n < 32)
		a->retry_n++;
	a->retry_at_ms = agent_now_ms() + d;
	alog(a->log, WLOG_INFO, NULL, NULL, "retry",
	     "%zu volume(s) wait for Vault; next try in %llu ms", count_state(a, VS_WAITING_VAULT),
	     (unsigned long long)d);
}

/* After an upkeep: when the Vault client says the next is due (renewal at
 * 2/3 of the TTL; never for a token without one), or on the back-off. */
static void schedule_upkeep(struct agent *a, bool failed, long long next_ms)
{
	a->upkeep_failed = failed;
	if (failed)
		a->upkeep_at_ms = agent_now_ms() + backoff_ms(a, a->retry_n);
	else
		a->upkeep_at_ms = next_ms >= 0 ? agent_now_ms() + (uint64_t)next_ms : 0;
}

uint64_t agent_next_deadline(const struct agent *a)
{
	uint64_t d = a->retry_at_ms;
	if (a->upkeep_at_ms && !a->upkeep_busy && (!d || a->upkeep_at_ms < d))
		d = a->upkeep_at_ms;
	uint64_t kd = kube_mode_deadline(a);
	if (kd && (!d || kd < d))
		d = kd;
	return d;
}

static void submit_upkeep(struct agent *a)
{
	struct job *j = job_new(JOB_UPKEEP, 0);
	if (!j)
		return;
	a->upkeep_busy = true;
	a->upkeep_at_ms = 0;
	worker_submit(a->w, j);
}

void agent_timer_due(struct agent *a)
{
	uint64_t now = agent_now_ms();
	if (a->retry_at_ms && now >= a->retry_at_ms)
		a->retry_at_ms = 0;
	if (a->upkeep_at_ms && !a->upkeep_busy && now >= a->upkeep_at_ms)
		submit_upkeep(a);
	agent_kick(a);
}

void agent_vault_changed(struct agent *a)
{
	alog(a->log, WLOG_INFO, NULL, a->token_file, "vault", "the Vault token file changed");
	if (!a->upkeep_busy)
		submit_upkeep(a);
	a->retry_at_ms = 0;
	a->retry_n = 0;
	agent_kick(a);
}

void agent_retry_failed(struct agent *a)
{
	for (size_t i = 0; i < a->n; i++) {
		if (a->v[i].st == VS_FAILED && !a->v[i].busy &&
		    !(a->v[i].k && kvol_erase_pending(a->v[i].k)))
			a->v[i].st = VS_CLOSED;
		a->v[i].rekey_failed = false;
	}
	a->retry_at_ms = 0;
	a->retry_n = 0;
}

/* Vault came back: retry what waits at once. */
static void vault_up(struct agent *a)
{
	bool was_down = a->vault_known && !a->vault_ok;
	a->vault_known = a->vault_ok = true;
	a->vault_error[0] = '\0';
	if (was_down) {
		alog(a->log, WLOG_INFO, NULL, NULL, "vault", "Vault answers again");
		a->retry_n = 0;
		a->retry_at_ms = 0;
	}
	/* A failed upkeep waits on its back-off: redo it now. */
	if (a->upkeep_failed && !a->upkeep_busy)
		submit_upkeep(a);
}

static void vault_down(struct agent *a, const char *msg)
{
	if (!a->vault_known || a->vault_ok || strcmp(a->vault_error, msg))
		alog(a->log, WLOG_WARN, NULL, NULL, "vault", "%s", msg);
	a->vault_known = true;
	a->vault_ok = false;
	snprintf(a->vault_error, sizeof(a->vault_error), "%s", msg);
}

/* ---- results ------------------------------------------------------------------------ */

static void open_item_done(struct agent *a, const struct job_item *it)
{
	struct vol *v = agent_find(a, it->name);
	if (!v)
		return;
	v->busy = false;
	kube_mode_open_item(a, v, it);
	if (it->mapped && !v->rekeying)
		rekey_from_item(v, it);
	if (it->mapped) {
		snprintf(v->backing, sizeof(v->backing), "%s", it->backing);
		snprintf(v->luks_uuid, sizeof(v->luks_uuid), "%s", it->luks_uuid);
		v->key_version = it->key_version;
	}
	if (it->adopt_only) {
		v->checked = true;
		v->st = it->mapped ? VS_OPEN : VS_CLOSED;
		v->adopted = it->mapped;
		if (it->mapped)
			alog(a->log, WLOG_INFO, v->name, v->device, "adopted",
			     "already open as /dev/mapper/%s (noauto)", v->name);
		return;
	}
	if (it->rc == 0) {
		v->st = VS_OPEN;
		v->last_error[0] = '\0';
		if (it->already_open) {
			v->adopted = true;
			alog(a->log, WLOG_INFO, v->name, v->device, "adopted",
			     "already open as /dev/mapper/%s; left as it is", v->name);
		} else if (it->rekey) {
			alog(a->log, WLOG_INFO, v->name, v->device, "opened",
			     "opened as /dev/mapper/%s in the middle of an online rekey (%.1f%% done: a split table with both keys)",
			     v->name, it->rekey_total ? 100.0 * (double)it->rekey_done / (double)it->rekey_total : 0.0);
		} else {
			alog(a->log, WLOG_INFO, v->name, v->device, "opened", "opened as /dev/mapper/%s",
			     v->name);
		}
	} else if (it->vault_error) {
		/* Each retry fails the same way while Vault is down: say it once. */
		bool again = !strcmp(v->last_error, it->msg);
		v->st = VS_WAITING_VAULT;
		snprintf(v->last_error, sizeof(v->last_error), "%s", it->msg);
		alog(a->log, again ? WLOG_DEBUG : WLOG_WARN, v->name, v->device, "waiting", "%s",
		     it->msg);
	} else {
		v->st = VS_FAILED;
		snprintf(v->last_error, sizeof(v->last_error), "%s", it->msg);
		alog(a->log, WLOG_ERROR, v->name, v->device, "failed", "%s", it->msg);
	}
	/* Removed while it was opening: close it now (agent_kick), or forget it. */
	if (!v->in_table && v->st != VS_OPEN)
		vol_remove(a, v);
}

static void open_done(struct agent *a, struct job *j)
{
	bool vault_used = false, vault_failed = false;
	for (size_t i = 0; i < j->n; i++) {
		const struct job_item *it = &j->items[i];
		open_item_done(a, it);
		if (it->vault_error)
			vault_failed = true;
		else if (it->rc == 0 && !it->already_open && !it->adopt_only)
			vault_used = true;
	}
	if (vault_failed)
		vault_down(a, j->vault_msg);
	else if (vault_used)
		vault_up(a);
	/* Wrapd mappings the table does not list: shown, never closed. */
	for (size_t k = 0; k < j->nothers; k++) {
		if (agent_find(a, j->others[k]))
			continue;
		struct vol *v = vol_add(a, j->others[k]);
		if (!v)
			break;
		v->st = VS_OPEN;
		v->adopted = true;
		v->adopted_unlisted = true;
		snprintf(v->note, sizeof(v->note), "a wrapd mapping the table does not list; left alone");
		alog(a->log, WLOG_INFO, v->name, NULL, "unlisted",
		     "a wrapd mapping that the table does not list; left alone");
	}
	if (!a->first_pass_done) {
		a->first_pass_done = true;
		char s[256];
		agent_summary(a, s, sizeof(s));
		alog(a->log, WLOG_INFO, NULL, NULL, "ready", "first pass done: %s", s);
		hooks_ready(a);
		/* Learn the token's TTL (and whether Vault answers) for upkeep. */
		submit_upkeep(a);
	}
	schedule_retry(a);
}

static void close_done(struct agent *a, struct job *j)
{
	const struct job_item *it = &j->items[0];
	struct vol *v = agent_find(a, it->name);
	if (!v)
		return;
	v->busy = false;
	if (it->rc == 0) {
		alog(a->log, WLOG_INFO, v->name, v->device, "closed", "mapping /dev/mapper/%s removed",
		     v->name);
		if (v->in_table && v->changed) {
			/* Apply the changed line: open it again with its new options. */
			v->changed = false;
			v->note[0] = '\0';
			v->st = VS_CLOSED;
			return;
		}
		if (v->in_table) {
			v->st = VS_CLOSED;
			return;
		}
		vol_remove(a, v);
		return;
	}
	v->st = VS_OPEN;
	if (it->in_use) {
		if (!v->in_table) {
			v->kept = true;
			snprintf(v->note, sizeof(v->note),
				 "its line left the table but the mapping is in use: kept open");
		}
		alog(a->log, WLOG_WARN, v->name, v->device, "kept", "%s%s", it->msg,
		     v->in_table ? "; the changed line applies when it is idle" :
				   "; its line left the table");
		/* A changed line waits for the next table event or SIGHUP. */
		v->changed = false;
		return;
	}
	snprintf(v->last_error, sizeof(v->last_error), "%s", it->msg);
	alog(a->log, WLOG_ERROR, v->name, v->device, "close-failed", "%s", it->msg);
	v->changed = false;
	if (!v->in_table)
		v->kept = true;
}

static void upkeep_done(struct agent *a, struct job *j)
{
	a->upkeep_busy = false;
	if (j->vault_rc < 0) {
		vault_down(a, j->vault_msg);
		schedule_upkeep(a, true, -1);
		return;
	}
	a->token_ttl = j->token_ttl;
	schedule_upkeep(a, false, j->next_upkeep_ms);
	vault_up(a);
}

void agent_job_done(struct agent *a, struct job *j)
{
	hooks_job_done(a, j);
	switch (j->kind) {
	case JOB_OPEN: open_done(a, j); break;
	case JOB_CLOSE: close_done(a, j); break;
	case JOB_UPKEEP: upkeep_done(a, j); break;
	case JOB_KUBE: kube_mode_job_done(a, j); break;
	case JOB_REKEY: rekey_done(a, j); break;
	}
	hooks_status(a);
}

void agent_summary(const struct agent *a, char *buf, size_t n)
{
	static const enum vol_state order[] = {VS_OPEN, VS_WAITING_VAULT, VS_FAILED, VS_OPENING,
					       VS_CLOSING, VS_CLOSED};
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		size_t c = count_state(a, order[i]);
		if (!c)
			continue;
		int w = snprintf(buf + o, n - o, "%s%zu %s", o ? ", " : "", c, vol_state_name(order[i]));
		if (w < 0 || (size_t)w >= n - o)
			break;
		o += (size_t)w;
	}
	if (!o)
		snprintf(buf, n, "no volumes");
}

bool agent_ready(const struct agent *a, char *why, size_t n)
{
	if (!a->first_pass_done) {
		snprintf(why, n, "the first pass is not done yet");
		return false;
	}
	size_t w = count_state(a, VS_WAITING_VAULT), f = 0;
	/* A foreign device in the discovery folder is reported, not a failure. */
	for (size_t i = 0; i < a->n; i++)
		f += a->v[i].st == VS_FAILED && !(a->v[i].k && kvol_foreign(a->v[i].k));
	if (w) {
		snprintf(why, n, "%zu volume(s) wait for Vault: %s", w,
			 a->vault_error[0] ? a->vault_error : "(no answer yet)");
		return false;
	}
	if (f) {
		for (size_t i = 0; i < a->n; i++) {
			if (a->v[i].st == VS_FAILED && !(a->v[i].k && kvol_foreign(a->v[i].k))) {
				snprintf(why, n, "%zu volume(s) failed; %s: %s", f, a->v[i].name,
					 a->v[i].last_error);
				break;
			}
		}
		return false;
	}
	/* A retry in flight (back-off after Vault failed) is not open either. */
	size_t o = count_state(a, VS_OPENING);
	if (o) {
		if (a->vault_known && !a->vault_ok)
			snprintf(why, n, "%zu volume(s) wait for Vault (retrying): %s", o,
				 a->vault_error[0] ? a->vault_error : "(no answer yet)");
		else
			snprintf(why, n, "%zu volume(s) opening", o);
		return false;
	}
	why[0] = '\0';
	return true;
}
