/*
 * sd_notify without libsystemd (agent/notify.h). The protocol: each message
 * is one datagram of newline-separated KEY=VALUE assignments sent to the
 * AF_UNIX socket named by $NOTIFY_SOCKET; a name starting with '@' is in the
 * abstract namespace ('@' stands for the leading NUL byte).
 */
#include "agent/notify.h"

#include <stdarg.h>

static bool env_u64(const char *s, uint64_t *out)
{
	if (!s || !*s || *s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

int notifier_open_from(struct notifier *n, const char *ns, const char *wd_usec,
		       const char *wd_pid, pid_t pid, struct werr *err)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	if (wd_usec && *wd_usec) {
		uint64_t us, p;
		if (!env_u64(wd_usec, &us) || us == 0)
			return werr_set(err, -EINVAL, "WATCHDOG_USEC=%.40s: not a positive number of microseconds",
					wd_usec);
		/* WATCHDOG_PID names the process meant; another's settings are not ours. */
		if (!wd_pid || !*wd_pid || (env_u64(wd_pid, &p) && p == (uint64_t)pid))
			n->watchdog_usec = us;
	}
	if (!ns || !*ns)
		return 0;
	size_t len = strlen(ns);
	if ((ns[0] != '/' && ns[0] != '@') || len < 2 || len >= sizeof(n->addr.sun_path))
		return werr_set(err, -EINVAL,
				"NOTIFY_SOCKET=%.120s: not an absolute path or an @abstract name that fits a socket address",
				ns);
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, ns, len);
	if (ns[0] == '@')
		n->addr.sun_path[0] = '\0';
	/* An abstract name's length is exact (no NUL terminator counts). */
	n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (ns[0] == '/'));
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0)
		return werr_set(err, -errno, "NOTIFY_SOCKET=%s: cannot make a socket: %s", ns,
				strerror(errno));
	return 0;
}

int notifier_open(struct notifier *n, struct werr *err)
{
	return notifier_open_from(n, getenv("NOTIFY_SOCKET"), getenv("WATCHDOG_USEC"),
				  getenv("WATCHDOG_PID"), getpid(), err);
}

bool notifier_active(const struct notifier *n)
{
	return n->fd >= 0;
}

int notifier_send(struct notifier *n, const char *fmt, ...)
{
	if (n->fd < 0)
		return 0;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len < 0)
		return -EINVAL;
	if ((size_t)len >= sizeof(buf))
		len = sizeof(buf) - 1; /* a STATUS= line cut short is still one line */
	/* One datagram; never blocks the loop (a full receive queue is a lost
	 * status line, not a stuck agent). */
	ssize_t w = sendto(n->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT,
			   (const struct sockaddr *)&n->addr, n->addr_len);
	if (w < 0)
		return -errno;
	return w == len ? 0 : -EMSGSIZE;
}

void notifier_close(struct notifier *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}
