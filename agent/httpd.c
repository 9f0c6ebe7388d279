/*
 * The HTTP endpoint (agent/httpd.h) on libmicrohttpd: parsing requests that
 * come from the network is left to a well-kept library; this file only
 * routes three GET paths. External epoll mode: MHD keeps its sockets in an
 * epoll set of its own, which the agent's loop watches as one fd.
 */
#include "agent/httpd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#define HTTPD_CONN_LIMIT 32
#define HTTPD_PER_IP_LIMIT 16
#define HTTPD_CONN_TIMEOUT_S 10

struct httpd {
	struct MHD_Daemon *d;
	int lfd;
	struct httpd_handlers h;
	char addr[INET6_ADDRSTRLEN + 16];
};

int httpd_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
		       struct werr *err)
{
	memset(ss, 0, sizeof(*ss));
	char host[INET6_ADDRSTRLEN + 2];
	const char *port;
	bool v6 = listen[0] == '[';
	if (v6) {
		const char *rb = strchr(listen, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - listen - 1) >= sizeof(host))
			goto bad;
		memcpy(host, listen + 1, (size_t)(rb - listen - 1));
		host[rb - listen - 1] = '\0';
		port = rb + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon || strchr(listen, ':') != colon || (size_t)(colon - listen) >= sizeof(host))
			goto bad;
		memcpy(host, listen, (size_t)(colon - listen));
		host[colon - listen] = '\0';
		port = colon + 1;
	}
	char *end;
	errno = 0;
	unsigned long p = strtoul(port, &end, 10);
	if (!*port || *end || errno || p > 65535 || port[0] < '0' || port[0] > '9')
		goto bad;
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			goto bad;
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)p);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			goto bad;
		*len = sizeof(*a);
	}
	return 0;
bad:
	return werr_set(err, -EINVAL,
			"metrics_listen = %.200s: expected IPV4:PORT or [IPV6]:PORT (a numeric address, e.g. 127.0.0.1:9842 or [::1]:9842), or empty to turn it off",
			listen);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *ctype,
			     char *text, size_t len, bool owned)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, text, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
	if (!r) {
		if (owned)
			free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *line)
{
	char buf[600];
	int n = snprintf(buf, sizeof(buf), "%s\n", line);
	if (n < 0)
		return MHD_NO;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	return reply(c, code, "text/plain; charset=utf-8", buf, (size_t)n, false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **con_cls)
{
	(void)version;
	(void)upload;
	struct httpd *h = cls;
	/* Answer on the first call, before any body is read: nothing here
	 * takes a body, and a body is never parsed. */
	if (*upload_len)
		*upload_len = 0;
	*con_cls = h;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
	if (!strcmp(url, "/metrics")) {
		char *text = NULL;
		size_t len = 0;
		if (h->h.metrics(h->h.arg, &text, &len) < 0)
			return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics");
		return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len, true);
	}
	if (!strcmp(url, "/healthz"))
		return reply_text(c, MHD_HTTP_OK, "ok"); /* answered by the loop: it is alive */
	if (!strcmp(url, "/readyz")) {
		char why[512];
		if (h->h.ready(h->h.arg, why, sizeof(why)))
			return reply_text(c, MHD_HTTP_OK, "ok");
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, why);
	}
	return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz");
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, n, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const void *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, n, "%s:%u", host, ntohs(a->sin_port));
	}
}

static int listen_on(const char *spec, int *fd, char *addr, size_t addrn, struct werr *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int r = httpd_parse_listen(spec, &ss, &len, err);
	if (r < 0)
		return r;
	int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return werr_set(err, -errno, "metrics_listen = %s: cannot make a socket: %s", spec,
				strerror(errno));
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&ss, len) < 0 || listen(s, 16) < 0) {
		r = -errno;
		close(s);
		return werr_set(err, r, "metrics_listen = %s: %s%s", spec, strerror(-r),
				r == -EADDRINUSE ? " (another program listens there: choose another port, or leave metrics_listen empty)" :
				r == -EADDRNOTAVAIL ? " (no interface has this address)" : "");
	}
	len = sizeof(ss);
	getsockname(s, (struct sockaddr *)&ss, &len);
	format_addr(&ss, addr, addrn);
	*fd = s;
	return 0;
}

int httpd_start(struct httpd **out, const char *listen, const struct httpd_handlers *hh,
		struct werr *err)
{
	*out = NULL;
	struct httpd *h = calloc(1, sizeof(*h));
	if (!h)
		return werr_set(err, -ENOMEM, "out of memory");
	h->h = *hh;
	h->lfd = -1;
	int r = listen_on(listen, &h->lfd, h->addr, sizeof(h->addr), err);
	if (r < 0) {
		free(h);
		return r;
	}
	h->d = MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, on_request, h,
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->lfd,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_CONN_LIMIT,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTPD_PER_IP_LIMIT,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_CONN_TIMEOUT_S,
				MHD_OPTION_END);
	if (!h->d) {
		close(h->lfd);
		free(h);
		return werr_set(err, -EIO, "metrics_listen = %s: libmicrohttpd could not start", listen);
	}
	*out = h;
	return 0;
}

int httpd_fd(const struct httpd *h)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	return i ? i->epoll_fd : -1;
}

void httpd_run(struct httpd *h)
{
	MHD_run(h->d);
}

int httpd_timeout_ms(struct httpd *h)
{
	MHD_UNSIGNED_LONG_LONG t;
	if (MHD_get_timeout(h->d, &t) != MHD_YES)
		return -1;
	return t > INT32_MAX ? INT32_MAX : (int)t;
}

const char *httpd_address(const struct httpd *h)
{
	return h->addr;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d); /* closes the listening socket it was given */
	free(h);
}
