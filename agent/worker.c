/*
 * The worker: ONE thread that does every blocking operation of the agent —
 * Vault requests, dm ioctls, keyring calls, header reads — so the event loop
 * never blocks and the keyring key added for a mapping lives in the same
 * thread keyring as the dm load that names it.
 *
 * Jobs come in through a mutex-protected queue (the thread sleeps on a
 * condition variable when there is none: no wake-ups at idle) and go back
 * through a "done" list plus an eventfd the loop watches.
 *
 * The worker owns the Vault client (not thread-safe: it is only ever used
 * here), made on the first job that needs it and kept, so that token upkeep
 * is amortised and an open in steady state costs one decrypt request.
 */
#include "agent/agent.h"

#include <sys/eventfd.h>
#include <time.h>

struct worker {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* jobs queued, or stop */
	pthread_cond_t idle_cv;   /* a job finished (for worker_stop) */
	struct job *q_head, *q_tail;
	struct job *d_head, *d_tail;
	bool stop, running_job, exited;
	int efd;
	struct alog *log;
	struct vault_config *pending;  /* new settings from worker_set_vault (owned) */
	/* thread-owned */
	struct vault_config *own;      /* the settings in use (owned) */
	struct vault_client *vc;
	vault_observer_fn observe;     /* given to every client made (metrics) */
	struct kmode *km;              /* Kubernetes mode (worker_set_kmode) */
	void *observe_arg;
	/* a rekey's latest progress (JOB_REKEY), under mu */
	bool prog_posted;
	char prog_name[128];
	uint64_t prog_done, prog_total;
	uint64_t prog_last;            /* thread-owned: done when last posted */
};

uint64_t agent_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void job_free(struct job *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		free(j->items[i].name);
		free(j->items[i].device);
		free(j->items[i].header);
	}
	free(j->items);
	free(j->others);
	kjob_free(j->kj);
	free(j);
}

static void vcfg_destroy(struct vault_config *c)
{
	if (c) {
		vault_config_free(c);
		free(c);
	}
}

static int ensure_client(struct worker *w, struct werr *err)
{
	if (w->vc)
		return 0;
	int r = vault_client_new(w->own, &w->log->wlog, &w->vc, err);
	if (r == 0 && w->observe)
		vault_client_set_observer(w->vc, w->observe, w->observe_arg);
	return r;
}

/* ---- jobs ------------------------------------------------------------------- */

int worker_vctx(struct worker *w, struct volume_ctx *vctx, struct werr *err)
{
	*vctx = (struct volume_ctx){.log = &w->log->wlog, .udev = -1};
	int r = ensure_client(w, err);
	if (r < 0)
		return r;
	vctx->vc = w->vc;
	vctx->vcfg = w->own;
	return 0;
}

static void fill_status(struct job_item *it, const struct volume_status *s)
{
	it->mapped = true;
	const char *src = NULL;
	it->rekey = volume_status_rekey(s, &it->rekey_done, &it->rekey_total, &src);
	snprintf(it->rekey_source, sizeof(it->rekey_source), "%s", src ? src : "");
	snprintf(it->backing, sizeof(it->backing), "%s",
		 s->backing_file[0] ? s->backing_file : s->backing);
	snprintf(it->luks_uuid, sizeof(it->luks_uuid), "%s", s->luks_uuid);
	it->key_version = s->key_version;
}

static void scan_mappings(const struct volume_ctx *vctx, struct job *j)
{
	struct volume_status *st = NULL;
	size_t ns = 0;
	struct werr e;
	werr_clear(&e);
	if (volume_status_list(vctx, NULL, &st, &ns, &e) < 0)
		return;
	j->others = calloc(ns ? ns : 1, sizeof(*j->others));
	for (size_t k = 0; k < ns; k++) {
		bool mine = false;
		for (size_t i = 0; i < j->n; i++) {
			if (!strcmp(j->items[i].name, st[k].name)) {
				fill_status(&j->items[i], &st[k]);
				mine = true;
			}
		}
		if (!mine && j->others)
			snprintf(j->others[j->nothers++], sizeof(j->others[0]), "%s", st[k].name);
	}
	free(st);
}

static void run_open(struct worker *w, struct job *j)
{
	struct volume_ctx vctx = {.log = &w->log->wlog, .udev = -1};
	struct werr e;
	werr_clear(&e);
	/* Which are mapped already: those are adopted and never touched. */
	scan_mappings(&vctx, j);
	/* Kubernetes mode: what each discovered device holds (a blank one is
	 * formatted here; a foreign one fails its item and is never touched). */
	for (size_t i = 0; i < j->n; i++)
		if (j->items[i].discovered && !j->items[i].mapped)
			discovery_prepare(w, &j->items[i]);

	struct volume_open_req *reqs = calloc(j->n ? j->n : 1, sizeof(*reqs));
	size_t *of = calloc(j->n ? j->n : 1, sizeof(*of));
	size_t m = 0;
	if (!reqs || !of) {
		for (size_t i = 0; i < j->n; i++)
			j->items[i].rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < j->n; i++) {
		struct job_item *it = &j->items[i];
		if (it->adopt_only || it->mapped) {
			it->already_open = it->mapped;
			continue;
		}
		if (it->rc < 0)
			continue; /* discovery_prepare refused it */
		reqs[m].device = it->device;
		reqs[m].name = it->name;
		reqs[m].header = it->header;
		reqs[m].flags = it->flags;
		of[m++] = i;
	}
	if (m) {
		int cr = ensure_client(w, &e);
		if (cr < 0) {
			for (size_t k = 0; k < m; k++) {
				j->items[of[k]].rc = cr;
				snprintf(j->items[of[k]].msg, sizeof(j->items[0].msg), "%s", werr_str(&e, cr));
			}
			goto out;
		}
		vctx.vc = w->vc;
		vctx.vcfg = w->own;
		(void)volume_open_many(&vctx, reqs, m, &e);
		j->decrypts = 0;
		bool vault_asked = false;
		for (size_t k = 0; k < m; k++) {
			struct job_item *it = &j->items[of[k]];
			it->rc = reqs[k].rc;
			it->already_open = reqs[k].already_open;
			it->vault_error = reqs[k].vault_error;
			snprintf(it->msg, sizeof(it->msg), "%s", reqs[k].msg);
			if (it->vault_error) {
				j->vault_rc = it->rc;
				snprintf(j->vault_msg, sizeof(j->vault_msg), "%s", it->msg);
			}
			if (!it->already_open && (it->rc == 0 || it->vault_error))
				vault_asked = true;
		}
		if (vault_asked && !j->vault_rc)
			j->vault_rc = 0;
		j->decrypts = vault_asked;
		/* What the kernel shows now (key version, backing). */
		for (size_t i = 0; i < j->n; i++)
			j->items[i].mapped = false;
		free(j->others);
		j->others = NULL;
		j->nothers = 0;
		scan_mappings(&vctx, j);
	}
out:
	free(reqs);
	free(of);
}

static void run_close(struct worker *w, struct job *j)
{
	struct volume_ctx vctx = {.log = &w->log->wlog, .udev = -1};
	for (size_t i = 0; i < j->n; i++) {
		struct job_item *it = &j->items[i];
		struct werr e;
		werr_clear(&e);
		struct volume_status *st = NULL;
		size_t ns = 0;
		int r = volume_status_list(&vctx, it->name, &st, &ns, &e);
		if (r == -ENOENT || (r == 0 && ns == 0)) {
			free(st);
			it->rc = 0;
			continue;
		}
		if (r < 0) {
			it->rc = r;
			snprintf(it->msg, sizeof(it->msg), "%s", werr_str(&e, r));
			continue;
		}
		fill_status(it, &st[0]);
		bool used = st[0].open_count > 0 || st[0].holders[0];
		if (used) {
			it->in_use = true;
			it->rc = -EBUSY;
			snprintf(it->msg, sizeof(it->msg),
				 "in use (open count %d%s%s); kept open", st[0].open_count,
				 st[0].holders[0] ? ", holders " : "", st[0].holders);
			free(st);
			continue;
		}
		free(st);
		r = volume_close(&vctx, it->name, false, false, &e);
		if (r < 0) {
			it->rc = r;
			it->in_use = r == -EBUSY;
			snprintf(it->msg, sizeof(it->msg), "%s", werr_str(&e, r));
		} else {
			it->mapped = false;
		}
	}
}

/* ---- the online rekey (on the rekey worker: it takes minutes) ---------------- */

void worker_post_progress(struct worker *w, const char *name, uint64_t done, uint64_t total)
{
	/* At most once per percent (and the end): the loop wakes only for it. */
	uint64_t step = total / 100 ? total / 100 : 1;
	if (done < total && done >= w->prog_last && done - w->prog_last < step)
		return;
	w->prog_last = done;
	pthread_mutex_lock(&w->mu);
	w->prog_posted = true;
	snprintf(w->prog_name, sizeof(w->prog_name), "%s", name);
	w->prog_done = done;
	w->prog_total = total;
	uint64_t one = 1;
	if (write(w->efd, &one, sizeof(one)) < 0) {
		/* cannot overflow at our rates */
	}
	pthread_mutex_unlock(&w->mu);
}

bool worker_take_progress(struct worker *w, char name[128], uint64_t *done, uint64_t *total)
{
	pthread_mutex_lock(&w->mu);
	bool p = w->prog_posted;
	if (p) {
		memcpy(name, w->prog_name, 128);
		*done = w->prog_done;
		*total = w->prog_total;
		w->prog_posted = false;
	}
	pthread_mutex_unlock(&w->mu);
	return p;
}

struct rekey_cb {
	struct worker *w;
	const char *name;
	uint64_t done, total;          /* the last callback's */
};

static void rekey_progress(void *arg, const struct conv_progress *p)
{
	struct rekey_cb *cb = arg;
	cb->done = p->done;
	cb->total = p->total;
	worker_post_progress(cb->w, cb->name, p->done, p->total);
}

static void run_rekey(struct worker *w, struct job *j)
{
	struct job_item *it = &j->items[0];
	struct volume_ctx vctx;
	struct werr e;
	werr_clear(&e);
	int r = worker_vctx(w, &vctx, &e);
	if (r < 0) {
		it->rc = r;
		it->vault_error = true;
		snprintf(it->msg, sizeof(it->msg), "%s", werr_str(&e, r));
		return;
	}
	/* The mapping's block device: the loop a file-backed volume is on is
	 * what the online path is tested with (the engine writes through it). */
	const char *dev = it->device;
	struct rekey_cb cb = {.w = w, .name = it->name, .done = it->rekey_done,
			      .total = it->rekey_total};
	w->prog_last = it->rekey_done;
	struct volume_convert_req rq = {
		.device = dev,
		.header = it->header,
		.op = CONV_RESUME,
		.progress = rekey_progress,
		.progress_arg = &cb,
		.stop = j->stop,
		.max_rate = j->max_rate,
	};
	struct conv_result res;
	r = volume_convert(&vctx, &rq, &res, &e); /* volume_resume, telling whether it ran online */
	it->rc = r;
	if (r < 0)
		snprintf(it->msg, sizeof(it->msg), "%s", werr_str(&e, r));
	uint64_t start = it->rekey_done;
	j->rk_seconds = res.seconds;
	j->rk_interrupted = res.interrupted || r == -EINTR;
	j->rk_online = rq.online;
	/* What the kernel and the header show now (key version, progress). */
	struct volume_status *st = NULL;
	size_t ns = 0;
	werr_clear(&e);
	if (volume_status_list(&vctx, it->name, &st, &ns, &e) == 0 && ns == 1)
		fill_status(it, &st[0]);
	free(st);
	/* This run's bytes: from where it started to where it ended. */
	uint64_t end = r == 0 ? cb.total : it->rekey ? it->rekey_done : cb.done;
	j->rk_bytes = end > start ? end - start : 0;
}

static void run_upkeep(struct worker *w, struct job *j)
{
	struct werr e;
	werr_clear(&e);
	j->next_upkeep_ms = -1;
	int r = ensure_client(w, &e);
	if (r == 0)
		r = vault_token_upkeep(w->vc, &e); /* renew, log in again, reread the file */
	if (r == 0) {
		/* The TTL for the status (one lookup-self per upkeep, not per open). */
		struct vault_token_info ti;
		r = vault_token_lookup(w->vc, &ti, &e);
		if (r == 0)
			j->token_ttl = ti.ttl;
	}
	if (r == 0) {
		uint64_t next = vault_token_next_upkeep(w->vc);
		j->next_upkeep_ms = next == UINT64_MAX ? -1 : (long long)(next > 1000 ? next : 1000);
	}
	j->vault_rc = r;
	if (r < 0)
		snprintf(j->vault_msg, sizeof(j->vault_msg), "%s", werr_str(&e, r));
}

static void run(struct worker *w, struct job *j)
{
	uint64_t t0 = agent_now_ms();
	j->token_ttl = -1;
	switch (j->kind) {
	case JOB_OPEN: run_open(w, j); break;
	case JOB_CLOSE: run_close(w, j); break;
	case JOB_UPKEEP: run_upkeep(w, j); break;
	case JOB_KUBE: kjob_run(w, j->kj); break;
	case JOB_REKEY: run_rekey(w, j); break;
	}
	j->duration_ms = agent_now_ms() - t0;
}

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	/* Named for /proc/PID/task/TID/comm (the idle tests print who woke). */
	pthread_setname_np(pthread_self(), "wrapd-worker");
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && !w->q_head)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		struct job *j = w->q_head;
		w->q_head = j->next;
		if (!w->q_head)
			w->q_tail = NULL;
		j->next = NULL;
		w->running_job = true;
		struct vault_config *nv = w->pending;
		w->pending = NULL;
		pthread_mutex_unlock(&w->mu);

		if (nv) {
			/* New Vault settings (SIGHUP): a new client on next use. */
			vault_client_free(w->vc);
			w->vc = NULL;
			vcfg_destroy(w->own);
			w->own = nv;
		}
		run(w, j);

		pthread_mutex_lock(&w->mu);
		w->running_job = false;
		if (w->d_tail)
			w->d_tail->next = j;
		else
			w->d_head = j;
		w->d_tail = j;
		uint64_t one = 1;
		if (write(w->efd, &one, sizeof(one)) < 0) {
			/* eventfd cannot overflow at our rates */
		}
		pthread_cond_broadcast(&w->idle_cv);
	}
	w->exited = true;
	pthread_cond_broadcast(&w->idle_cv);
	pthread_mutex_unlock(&w->mu);
	vault_client_free(w->vc);
	w->vc = NULL;
	return NULL;
}

int worker_start(struct worker **out, struct vault_config *vcfg, struct alog *log,
		 struct werr *err)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->log = log;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_cond_init(&w->idle_cv, NULL);
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		int r = -errno;
		vcfg_destroy(vcfg);
		free(w);
		return werr_set(err, r, "cannot set up the worker: %s", strerror(-r));
	}
	w->own = vcfg;
	int r = pthread_create(&w->th, NULL, thread_main, w);
	if (r) {
		vcfg_destroy(w->own);
		close(w->efd);
		free(w);
		return werr_set(err, -r, "cannot start the worker thread: %s", strerror(r));
	}
	*out = w;
	return 0;
}

int worker_fd(const struct worker *w) { return w->efd; }

void worker_set_kmode(struct worker *w, struct kmode *km)
{
	pthread_mutex_lock(&w->mu);
	w->km = km;
	pthread_mutex_unlock(&w->mu);
}

struct kmode *worker_kmode(struct worker *w)
{
	return w->km;
}

struct alog *worker_log(struct worker *w)
{
	return w->log;
}

void worker_set_observer(struct worker *w, vault_observer_fn fn, void *arg)
{
	/* Before the first job: the thread reads these only while running one. */
	pthread_mutex_lock(&w->mu);
	w->observe = fn;
	w->observe_arg = arg;
	pthread_mutex_unlock(&w->mu);
}

void worker_submit(struct worker *w, struct job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&w->mu);
	if (w->q_tail)
		w->q_tail->next = j;
	else
		w->q_head = j;
	w->q_tail = j;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

struct job *worker_take_done(struct worker *w)
{
	uint64_t v;
	if (read(w->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing signalled; the list may still hold jobs */
	}
	pthread_mutex_lock(&w->mu);
	struct job *j = w->d_head;
	w->d_head = w->d_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	return j;
}

bool worker_busy(struct worker *w)
{
	pthread_mutex_lock(&w->mu);
	bool b = w->running_job || w->q_head;
	pthread_mutex_unlock(&w->mu);
	return b;
}

void worker_set_vault(struct worker *w, struct vault_config *vcfg)
{
	pthread_mutex_lock(&w->mu);
	vcfg_destroy(w->pending);
	w->pending = vcfg;
	pthread_mutex_unlock(&w->mu);
}

/* The absolute CLOCK_REALTIME time timeout_ms from now (pthread_cond_timedwait's clock). */
static struct timespec deadline_in(long timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	return dl;
}

/* Frees a list of jobs linked through ->next. */
static void jobs_free(struct job *q)
{
	while (q) {
		struct job *n = q->next;
		job_free(q);
		q = n;
	}
}

bool worker_wait_idle(struct worker *w, long timeout_ms)
{
	struct timespec dl = deadline_in(timeout_ms);
	pthread_mutex_lock(&w->mu);
	struct job *q = w->q_head; /* queued jobs are dropped, as at stop */
	w->q_head = w->q_tail = NULL;
	int r = 0;
	while (w->running_job && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&w->idle_cv, &w->mu, &dl);
	bool idle = !w->running_job;
	pthread_mutex_unlock(&w->mu);
	jobs_free(q);
	return idle;
}

bool worker_stop(struct worker *w, long timeout_ms)
{
	struct timespec dl = deadline_in(timeout_ms);
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	/* Queued jobs are dropped: an agent that starts again redoes them. */
	struct job *q = w->q_head;
	w->q_head = w->q_tail = NULL;
	pthread_cond_signal(&w->cv);
	int r = 0;
	while (!w->exited && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&w->idle_cv, &w->mu, &dl);
	bool done = w->exited;
	pthread_mutex_unlock(&w->mu);
	jobs_free(q);
	if (!done)
		return false;
	pthread_join(w->th, NULL);
	jobs_free(w->d_head);
	vcfg_destroy(w->pending);
	vcfg_destroy(w->own);
	close(w->efd);
	pthread_cond_destroy(&w->cv);
	pthread_cond_destroy(&w->idle_cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
	return true;
}
