/*
 * The event loop: one epoll set over
 *   - a signalfd (SIGTERM/SIGINT: stop; SIGHUP: reread config and table),
 *   - a timerfd (back-off retries and token upkeep; disarmed when neither is
 *     due, so an idle agent sleeps in epoll_wait with no timeout),
 *   - the inotify fd (table and token file),
 *   - the status socket,
 *   - the workers' eventfds (finished jobs; the rekey worker's also signals
 *     a rekey's progress, at most once per percent).
 * Nothing here blocks except epoll_wait: every slow operation is a worker job.
 */
#include "agent/agent.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

enum { EV_SIGNAL = 1, EV_TIMER, EV_INOTIFY, EV_STATUS, EV_WORKER, EV_REKEY };

static int ep_add(int ep, int fd, uint32_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Arms the timerfd for the next deadline (absolute, monotonic), or disarms it. */
static void arm_timer(struct agent *a, uint64_t *armed)
{
	uint64_t d = agent_next_deadline(a);
	if (d == *armed)
		return;
	struct itimerspec its = {0};
	if (d) {
		its.it_value.tv_sec = (time_t)(d / 1000);
		its.it_value.tv_nsec = (long)(d % 1000) * 1000000L;
	}
	timerfd_settime(a->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
	*armed = d;
}

static void on_signal(struct agent *a)
{
	struct signalfd_siginfo si;
	while (read(a->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			alog(a->log, WLOG_INFO, NULL, NULL, "stopping",
			     "%s: leaving every mapping open and stopping",
			     si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			a->stopping = true;
			a->rekey_stop = 1; /* a running rekey stops at its next checkpoint */
			break;
		case SIGHUP:
			alog(a->log, WLOG_INFO, NULL, NULL, "reload",
			     "SIGHUP: reading the configuration and the table again");
			agent_reload(a);
			break;
		}
	}
}

int agent_loop_init(struct agent *a, struct werr *err)
{
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	/* Blocked before the worker starts, so it inherits the mask. */
	if (pthread_sigmask(SIG_BLOCK, &ss, NULL) != 0)
		return werr_set(err, -EINVAL, "cannot block signals");
	signal(SIGPIPE, SIG_IGN);
	a->sigfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	a->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (a->sigfd < 0 || a->timerfd < 0 || a->epfd < 0)
		return werr_set(err, -errno, "cannot set up the event loop: %s", strerror(errno));
	return 0;
}

int agent_run(struct agent *a, struct werr *err)
{
	int r;
	if ((r = ep_add(a->epfd, a->sigfd, EV_SIGNAL)) < 0 ||
	    (r = ep_add(a->epfd, a->timerfd, EV_TIMER)) < 0 ||
	    (r = ep_add(a->epfd, a->inofd, EV_INOTIFY)) < 0 ||
	    (r = ep_add(a->epfd, a->statusfd, EV_STATUS)) < 0 ||
	    (r = ep_add(a->epfd, worker_fd(a->w), EV_WORKER)) < 0 ||
	    (a->rw && (r = ep_add(a->epfd, worker_fd(a->rw), EV_REKEY)) < 0))
		return werr_set(err, r, "epoll: %s", strerror(-r));
	hooks_loop_init(a);
	kube_mode_loop_init(a);

	uint64_t armed = 0;
	while (!a->stopping) {
		arm_timer(a, &armed);
		struct epoll_event evs[8];
		int n = epoll_wait(a->epfd, evs, ARRAY_SIZE(evs), hooks_timeout_ms(a));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return werr_set(err, -errno, "epoll_wait: %s", strerror(errno));
		}
		a->wakeups++;
		for (int i = 0; i < n && !a->stopping; i++) {
			switch (evs[i].data.u32) {
			case EV_SIGNAL:
				on_signal(a);
				break;
			case EV_TIMER: {
				uint64_t x;
				if (read(a->timerfd, &x, sizeof(x)) < 0) {
					/* EAGAIN: re-armed meanwhile */
				}
				armed = 0;
				agent_timer_due(a);
				break;
			}
			case EV_INOTIFY:
				table_watch_event(a);
				break;
			case EV_STATUS:
				status_accept(a);
				break;
			case EV_WORKER:
			case EV_REKEY:
				for (struct job *j = worker_take_done(evs[i].data.u32 == EV_REKEY ? a->rw : a->w); j;) {
					struct job *next = j->next;
					agent_job_done(a, j);
					job_free(j);
					j = next;
				}
				if (evs[i].data.u32 == EV_REKEY)
					agent_rekey_progress(a);
				agent_kick(a);
				break;
			default:
				if (evs[i].data.u32 >= KUBE_TAG_FIRST && evs[i].data.u32 <= KUBE_TAG_LAST)
					kube_mode_event(a, evs[i].data.u32);
				else
					hooks_event(a, evs[i].data.u32);
				break;
			}
		}
		hooks_tick(a);
	}
	return 0;
}
