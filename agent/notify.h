/*
 * notify: systemd's service notification protocol (sd_notify(3)), without
 * libsystemd: one AF_UNIX datagram per message to $NOTIFY_SOCKET (a path, or
 * an abstract name written with a leading '@'), and the watchdog interval
 * from $WATCHDOG_USEC / $WATCHDOG_PID.
 *
 * It owns only the socket and what the environment said; when the agent
 * sends what (READY=1, STATUS=, STOPPING=1, WATCHDOG=1) is agent/hooks.c's.
 * Without NOTIFY_SOCKET every call is a no-op that succeeds, so the agent
 * runs the same under systemd, in a container or by hand.
 */
#ifndef WRAPD_AGENT_NOTIFY_H
#define WRAPD_AGENT_NOTIFY_H

#include "common/common.h"

#include <sys/socket.h>
#include <sys/un.h>

struct notifier {
	int fd;                    /* -1: no NOTIFY_SOCKET (everything is a no-op) */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_usec;    /* 0: no watchdog asked for (or not for this pid) */
};

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment.
 * 0 also when they are unset (fd stays -1); a set but unusable value is an
 * error naming it. */
int notifier_open(struct notifier *n, struct werr *err);
/* The same from given values (tests; NULL = unset). pid is the process the
 * watchdog settings must name. */
int notifier_open_from(struct notifier *n, const char *notify_socket, const char *watchdog_usec,
		       const char *watchdog_pid, pid_t pid, struct werr *err);
/* One datagram, "KEY=VALUE\n..." formatted as printf. 0, or a negative errno
 * (the caller logs it; the agent goes on either way). 0 without a socket. */
int notifier_send(struct notifier *n, const char *fmt, ...) _printf_(2, 3);
bool notifier_active(const struct notifier *n);
void notifier_close(struct notifier *n);

#endif
