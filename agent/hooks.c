/*
 * The agent's calls into its service parts — sd_notify (agent/notify.h),
 * metrics and the HTTP endpoint (agent/metrics.h, agent/httpd.h) — wired in
 * this one place, so the loop and the reconcile code stay free of them.
 * Until those parts land, these are no-ops (and say so at debug level).
 */
#include "agent/agent.h"

void hooks_loop_init(struct agent *a)
{
	(void)a;
}

int hooks_timeout_ms(struct agent *a)
{
	(void)a;
	return -1; /* no timeout: the loop sleeps until an fd is ready */
}

void hooks_event(struct agent *a, uint32_t tag)
{
	(void)a;
	(void)tag;
}

void hooks_tick(struct agent *a)
{
	(void)a;
}

void hooks_ready(struct agent *a)
{
	alog(a->log, WLOG_DEBUG, NULL, NULL, "notify", "READY=1 (no notifier yet)");
}

void hooks_status(struct agent *a)
{
	(void)a;
}

void hooks_job_done(struct agent *a, const struct job *j)
{
	(void)a;
	(void)j;
}

void hooks_stopping(struct agent *a)
{
	(void)a;
}
