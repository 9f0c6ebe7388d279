/*
 * The agent's calls into its service parts — sd_notify (agent/notify.h),
 * metrics (agent/metrics.h) and the HTTP endpoint (agent/httpd.h) — wired in
 * this one place, so the loop and the reconcile code stay free of them.
 *
 *   READY=1       the first reconcile pass is done (hooks_ready)
 *   STATUS=...    the one-line summary, whenever it changes (hooks_status)
 *   STOPPING=1    SIGTERM/SIGINT (hooks_stopping)
 *   RELOADING=1   SIGHUP, then READY=1 when the config and table are reread
 *   WATCHDOG=1    every WATCHDOG_USEC/2, only when systemd asks for it (a
 *                 timerfd exists only then: no wake-ups otherwise)
 *
 * Metrics: wrapd_volumes{state} on every state change, Vault requests from
 * the workers' client observer (worker threads; the registry locks), open
 * durations from finished jobs, wrapd_build_info once,
 * wrapd_rekey_progress_ratio{volume} while a volume's rekey is in progress
 * (from the loop: the scan's checkpoint, then the rekey worker's progress).
 */
#include "agent/agent.h"
#include "agent/httpd.h"
#include "agent/metrics.h"
#include "agent/notify.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

enum { TAG_HTTPD = 100, TAG_WATCHDOG };

struct agent_svc {
	struct notifier nt;
	int wdfd;                  /* watchdog timerfd, or -1 */
	struct metrics *m;
	struct httpd *h;
	char *listen;              /* metrics_listen as started (SIGHUP does not move it) */
	bool http_timed;           /* the last epoll_wait had the httpd's timeout */
	char status[256];          /* the last STATUS= sent */
	unsigned long wakeups;     /* a->wakeups already counted */
};

static const double vault_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double open_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

struct metrics *hooks_metrics(struct agent *a)
{
	return a->svc ? a->svc->m : NULL;
}

/* The worker's Vault client, after each HTTP exchange (worker thread). */
static void on_vault_request(void *arg, const char *op, long status, uint64_t duration_us)
{
	struct agent_svc *s = arg;
	char code[16];
	snprintf(code, sizeof(code), "%ld", status);
	metrics_add(s->m, "wrapd_vault_requests_total", 1, METRIC_LABELS(op, code));
	metrics_observe(s->m, "wrapd_vault_request_duration_seconds", (double)duration_us / 1e6,
			METRIC_LABELS(op));
}

static int render_metrics(void *arg, char **text, size_t *len)
{
	struct agent *a = arg;
	metrics_add(a->svc->m, "wrapd_agent_wakeups_total", (double)(a->wakeups - a->svc->wakeups),
		    METRIC_NO_LABELS);
	a->svc->wakeups = a->wakeups;
	return metrics_render(a->svc->m, text, len);
}

static bool ready_cb(void *arg, char *why, size_t n)
{
	return agent_ready(arg, why, n);
}

static int register_metrics(struct metrics *m)
{
	int r;
	if ((r = metrics_gauge(m, "wrapd_volumes", "Volumes of the agent by state",
			       METRIC_LABELS("state"))) < 0 ||
	    (r = metrics_counter(m, "wrapd_vault_requests_total",
				 "HTTP requests to Vault by operation and status code (0: no answer)",
				 METRIC_LABELS("op", "code"))) < 0 ||
	    (r = metrics_histogram(m, "wrapd_vault_request_duration_seconds",
				   "Duration of one HTTP request to Vault", METRIC_LABELS("op"),
				   vault_buckets, ARRAY_SIZE(vault_buckets))) < 0 ||
	    (r = metrics_histogram(m, "wrapd_volume_open_duration_seconds",
				   "Time to open a volume (its whole job: one batched Vault decrypt for the batch)",
				   METRIC_NO_LABELS, open_buckets, ARRAY_SIZE(open_buckets))) < 0 ||
	    (r = metrics_gauge(m, "wrapd_build_info", "The agent's version (always 1)",
			       METRIC_LABELS("version"))) < 0 ||
	    (r = metrics_gauge(m, "wrapd_ready", "1 when the first pass is done and no volume waits or failed",
			       METRIC_NO_LABELS)) < 0 ||
	    (r = metrics_gauge(m, "wrapd_vault_up", "1 when Vault answered the agent's last request",
			       METRIC_NO_LABELS)) < 0 ||
	    (r = metrics_counter(m, "wrapd_agent_wakeups_total",
			       "Times the event loop woke up (0 per second when idle)", METRIC_NO_LABELS)) < 0 ||
	    (r = metrics_gauge(m, "wrapd_rekey_progress_ratio",
			       "Online rekey of a volume: the part done, 0..1 (the header's checkpoint, then the running resume); present only while a rekey is in progress or being resumed",
			       METRIC_LABELS("volume"))) < 0)
		return r;
	metrics_set(m, "wrapd_build_info", 1, METRIC_LABELS(PACKAGE_VERSION));
	static const enum vol_state all[] = {VS_OPEN, VS_OPENING, VS_WAITING_VAULT, VS_FAILED,
					     VS_CLOSING, VS_CLOSED};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		metrics_set(m, "wrapd_volumes", 0, METRIC_LABELS(vol_state_name(all[i])));
	metrics_set(m, "wrapd_ready", 0, METRIC_NO_LABELS);
	metrics_set(m, "wrapd_vault_up", 0, METRIC_NO_LABELS);
	metrics_add(m, "wrapd_agent_wakeups_total", 0, METRIC_NO_LABELS);
	return 0;
}

static int watchdog_init(struct agent *a, struct agent_svc *s, struct werr *err)
{
	s->wdfd = -1;
	if (!s->nt.watchdog_usec || !notifier_active(&s->nt))
		return 0;
	uint64_t half = s->nt.watchdog_usec / 2;
	s->wdfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->wdfd < 0)
		return werr_set(err, -errno, "watchdog: cannot make a timer: %s", strerror(errno));
	struct itimerspec its = {
		.it_interval = {.tv_sec = (time_t)(half / 1000000), .tv_nsec = (long)(half % 1000000) * 1000},
	};
	its.it_value = its.it_interval;
	if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
		its.it_value.tv_nsec = its.it_interval.tv_nsec = 1000;
	timerfd_settime(s->wdfd, 0, &its, NULL);
	alog(a->log, WLOG_INFO, NULL, NULL, "watchdog", "systemd watchdog: a keep-alive every %llu ms",
	     (unsigned long long)(half / 1000));
	return 0;
}

int hooks_init(struct agent *a, struct werr *err)
{
	struct agent_svc *s = calloc(1, sizeof(*s));
	if (!s)
		return werr_set(err, -ENOMEM, "out of memory");
	s->wdfd = -1;
	struct werr e;
	werr_clear(&e);
	int r = notifier_open(&s->nt, &e);
	if (r < 0) /* systemd sets these; a broken value is reported, not fatal */
		alog(a->log, WLOG_WARN, NULL, NULL, "notify", "%s; not notifying systemd", werr_str(&e, r));
	if ((r = metrics_new(&s->m)) < 0 || (r = register_metrics(s->m)) < 0) {
		r = werr_set(err, r, "cannot set up the metrics: %s", strerror(-r));
		goto fail;
	}
	if ((r = watchdog_init(a, s, err)) < 0)
		goto fail;
	const char *listen = a->cfg.metrics_listen ? a->cfg.metrics_listen : "";
	if (!(s->listen = strdup(listen))) {
		r = werr_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (*listen) {
		struct httpd_handlers h = {.metrics = render_metrics, .ready = ready_cb, .arg = a};
		if ((r = httpd_start(&s->h, listen, &h, err)) < 0)
			goto fail;
		alog(a->log, WLOG_INFO, NULL, NULL, "metrics",
		     "metrics and health on http://%s/metrics, /healthz, /readyz", httpd_address(s->h));
	}
	a->svc = s;
	worker_set_observer(a->w, on_vault_request, s);
	if (a->rw)
		worker_set_observer(a->rw, on_vault_request, s);
	return 0;
fail:
	a->svc = s;
	hooks_fini(a);
	return r;
}

void hooks_fini(struct agent *a)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	httpd_stop(s->h);
	if (s->wdfd >= 0)
		close(s->wdfd);
	notifier_close(&s->nt);
	metrics_free(s->m);
	free(s->listen);
	free(s);
	a->svc = NULL;
}

static void ep_add(struct agent *a, int fd, uint32_t tag, const char *what)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
	if (fd >= 0 && epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		alog(a->log, WLOG_ERROR, NULL, NULL, "loop", "cannot watch the %s: %s", what,
		     strerror(errno));
}

void hooks_loop_init(struct agent *a)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	if (s->h)
		ep_add(a, httpd_fd(s->h), TAG_HTTPD, "metrics endpoint");
	ep_add(a, s->wdfd, TAG_WATCHDOG, "watchdog timer");
}

int hooks_timeout_ms(struct agent *a)
{
	struct agent_svc *s = a->svc;
	int t = s && s->h ? httpd_timeout_ms(s->h) : -1;
	if (s)
		s->http_timed = t >= 0;
	return t;
}

void hooks_event(struct agent *a, uint32_t tag)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	if (tag == TAG_HTTPD && s->h) {
		httpd_run(s->h);
		s->http_timed = false;
	} else if (tag == TAG_WATCHDOG) {
		uint64_t x;
		if (read(s->wdfd, &x, sizeof(x)) == sizeof(x))
			notifier_send(&s->nt, "WATCHDOG=1");
	}
}

void hooks_tick(struct agent *a)
{
	struct agent_svc *s = a->svc;
	/* libmicrohttpd's rule: after a wait with its timeout, run it whether
	 * or not its fd was readable (connection timeouts). */
	if (s && s->h && s->http_timed) {
		httpd_run(s->h);
		s->http_timed = false;
	}
	/* Table reloads change states without a job: keep the gauges and
	 * STATUS= current (only runs when the loop woke up anyway). */
	hooks_status(a);
}

static void send_status(struct agent *a, bool force)
{
	struct agent_svc *s = a->svc;
	char sum[sizeof(s->status)];
	agent_summary(a, sum, sizeof(sum));
	if (!force && !strcmp(sum, s->status))
		return;
	snprintf(s->status, sizeof(s->status), "%s", sum);
	int r = notifier_send(&s->nt, "STATUS=%s", sum);
	if (r < 0)
		alog(a->log, WLOG_DEBUG, NULL, NULL, "notify", "STATUS: %s", strerror(-r));
}

void hooks_ready(struct agent *a)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	char sum[256];
	agent_summary(a, sum, sizeof(sum));
	snprintf(s->status, sizeof(s->status), "%s", sum);
	int r = notifier_send(&s->nt, "READY=1\nSTATUS=%s\nMAINPID=%d", sum, (int)getpid());
	alog(a->log, r < 0 ? WLOG_WARN : WLOG_DEBUG, NULL, NULL, "notify", "READY=1%s%s%s",
	     notifier_active(&s->nt) ? " sent" : " (no NOTIFY_SOCKET)", r < 0 ? ": " : "",
	     r < 0 ? strerror(-r) : "");
}

void hooks_status(struct agent *a)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	static const enum vol_state all[] = {VS_OPEN, VS_OPENING, VS_WAITING_VAULT, VS_FAILED,
					     VS_CLOSING, VS_CLOSED};
	size_t c[ARRAY_SIZE(all)] = {0};
	for (size_t i = 0; i < a->n; i++)
		for (size_t k = 0; k < ARRAY_SIZE(all); k++)
			if (a->v[i].st == all[k])
				c[k]++;
	for (size_t k = 0; k < ARRAY_SIZE(all); k++)
		metrics_set(s->m, "wrapd_volumes", (double)c[k], METRIC_LABELS(vol_state_name(all[k])));
	for (size_t i = 0; i < a->n; i++)
		hooks_rekey(a, &a->v[i]);
	char why[512];
	metrics_set(s->m, "wrapd_ready", agent_ready(a, why, sizeof(why)) ? 1 : 0, METRIC_NO_LABELS);
	metrics_set(s->m, "wrapd_vault_up", a->vault_known && a->vault_ok ? 1 : 0, METRIC_NO_LABELS);
	if (a->first_pass_done)
		send_status(a, false);
}

void hooks_job_done(struct agent *a, const struct job *j)
{
	struct agent_svc *s = a->svc;
	if (!s || j->kind != JOB_OPEN)
		return;
	/* Each volume this job opened took the job's time (they share one
	 * batched decrypt); adopted and already-open ones cost nothing. */
	for (size_t i = 0; i < j->n; i++) {
		const struct job_item *it = &j->items[i];
		if (it->rc == 0 && !it->already_open && !it->adopt_only)
			metrics_observe(s->m, "wrapd_volume_open_duration_seconds",
					(double)j->duration_ms / 1e3, METRIC_NO_LABELS);
	}
}

void hooks_rekey(struct agent *a, const struct vol *v)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	if (v->rekey && v->rekey_total && (v->st == VS_OPEN || v->rekeying)) {
		double r = (double)v->rekey_done / (double)v->rekey_total;
		metrics_set(s->m, "wrapd_rekey_progress_ratio", r > 1 ? 1 : r, METRIC_LABELS(v->name));
	} else {
		metrics_remove(s->m, "wrapd_rekey_progress_ratio", METRIC_LABELS(v->name));
	}
}

void hooks_volume_gone(struct agent *a, const char *name)
{
	struct agent_svc *s = a->svc;
	if (s)
		metrics_remove(s->m, "wrapd_rekey_progress_ratio", METRIC_LABELS(name));
}

void hooks_reloading(struct agent *a)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	notifier_send(&s->nt, "RELOADING=1\nMONOTONIC_USEC=%llu",
		      (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

void hooks_reloaded(struct agent *a)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	const char *now = a->cfg.metrics_listen ? a->cfg.metrics_listen : "";
	if (strcmp(now, s->listen))
		alog(a->log, WLOG_WARN, NULL, NULL, "reload",
		     "metrics_listen changed; it takes effect when the agent restarts");
	if (a->first_pass_done) {
		char sum[256];
		agent_summary(a, sum, sizeof(sum));
		snprintf(s->status, sizeof(s->status), "%s", sum);
		notifier_send(&s->nt, "READY=1\nSTATUS=%s", sum);
	}
}

void hooks_stopping(struct agent *a)
{
	struct agent_svc *s = a->svc;
	if (!s)
		return;
	notifier_send(&s->nt, "STOPPING=1\nSTATUS=stopping; every mapping stays open");
	/* No more requests: the loop is gone. The registry stays until
	 * hooks_fini (the worker may still count a Vault request). */
	httpd_stop(s->h);
	s->h = NULL;
}
