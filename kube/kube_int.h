/*
 * kube internals: shared by kube/client.c and kube/watch.c (and the kube
 * tests) only.
 */
#ifndef WRAPD_KUBE_INT_H
#define WRAPD_KUBE_INT_H

#include "kube/kube.h"

#include <curl/curl.h>
#include <sys/stat.h>

#define KUBE_TOKEN_MAX (64 * 1024)

struct kube_client {
	char *url;                     /* base, no trailing '/' */
	char *token_file;              /* NULL: no token */
	char *ca_file;                 /* NULL: the system's CAs */
	const struct wlog *log;
	long timeout_ms;
	CURL *curl;                    /* kube_request's handle (kept: keep-alive) */
	char *token;                   /* as read, trimmed; wiped on change/free */
	struct stat token_st;
	bool token_seen;
	bool token_missing_said;
	unsigned long requests;
	long retry_after_s;            /* the last answer's Retry-After (seconds), 0 none */
};

/* Rereads the token file when it changed (stat: identity, size, times):
 * rotation is noticed at the next request, no timer. */
int kube_token_refresh(struct kube_client *kc, struct werr *err);

/* A growable response body, bounded. */
struct kube_body {
	char *buf;
	size_t len, cap, max;
	bool too_big;
};
size_t kube_body_write(char *p, size_t size, size_t nmemb, void *arg);
void kube_body_free(struct kube_body *b);

/* Sets up an easy handle for one request to kc: URL (base + path), CA,
 * timeouts (stream: no overall timeout), headers with the token (refreshed).
 * *hdrs must be freed by the caller after the transfer. */
int kube_easy_setup(struct kube_client *kc, CURL *c, const char *method, const char *path,
		    const char *body, const char *content_type, bool stream,
		    struct curl_slist **hdrs, struct werr *err);

/* "kube: GET /api/...: 403 Forbidden: <Status message>" into err. */
int kube_http_error(struct werr *err, int rc, const char *method, const char *path, long status,
		    json_t *resp);

int kube_pv_list_from_json(json_t *j, struct kube_pv **items, size_t *n, char rv[64],
			   size_t *skipped, struct werr *err);

#endif
