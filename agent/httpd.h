/*
 * httpd: the agent's HTTP endpoint on metrics_listen (ADDRESS:PORT, IPv4 or
 * [IPv6]:PORT): GET /metrics (Prometheus text 0.0.4), /healthz, /readyz.
 *
 * It owns the listening socket and the HTTP server (libmicrohttpd, in its
 * external-epoll mode: no thread of its own). The agent's loop watches
 * httpd_fd() and calls httpd_run() when it is readable, and again within
 * httpd_timeout_ms() while connections are open; with no connection there
 * is no timeout, so an idle agent stays asleep. What the pages say comes
 * from the callbacks (agent/hooks.c).
 */
#ifndef WRAPD_AGENT_HTTPD_H
#define WRAPD_AGENT_HTTPD_H

#include "common/common.h"

#include <sys/socket.h>

struct httpd_handlers {
	/* /metrics: malloc'ed text (freed by httpd) */
	int (*metrics)(void *arg, char **text, size_t *len);
	/* /readyz: true when ready, else why (one line) */
	bool (*ready)(void *arg, char *why, size_t n);
	void *arg;
};

/* "127.0.0.1:9842", "[::1]:9842", "0.0.0.0:0" -> a socket address; errors
 * name the value and say what is expected. */
int httpd_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
		       struct werr *err);

struct httpd;
/* Binds and listens now (a port in use is an error here, naming it). */
int httpd_start(struct httpd **out, const char *listen, const struct httpd_handlers *h,
		struct werr *err);
/* The fd to watch for reading (libmicrohttpd's epoll fd). */
int httpd_fd(const struct httpd *h);
/* Serves what is ready; never blocks. */
void httpd_run(struct httpd *h);
/* Milliseconds until httpd_run must run again, -1 = no deadline (no
 * connection open). */
int httpd_timeout_ms(struct httpd *h);
/* The bound address as ADDRESS:PORT (the real port when 0 was asked). */
const char *httpd_address(const struct httpd *h);
void httpd_stop(struct httpd *h);

#endif
