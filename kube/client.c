/*
 * The Kubernetes client's requests (kube/kube.h): connection settings, the
 * service-account token (reread when its file changes: a stat per request,
 * no timer), one request on a kept easy handle, and the PV and Event calls.
 * No retries here: the caller (the agent's worker) decides when to try
 * again; the watch thread (kube/watch.c) has its own back-off.
 * Log lines name the method, path and status: never a token, never a body.
 */
#include "kube/kube_int.h"
#include "vault/vault.h"

#include <ctype.h>
#include <fcntl.h>

/* -------------------------------------------------------------- settings */

static const char *env_get(const struct kube_client_opts *o, const char *name)
{
	return o->getenv ? o->getenv(name) : getenv(name);
}

int kube_resolve_url(const struct kube_client_opts *o, char **url, struct werr *err)
{
	*url = NULL;
	char buf[1200];
	if (o->api_url && *o->api_url) {
		if (strlen(o->api_url) >= sizeof(buf))
			return werr_set(err, -EINVAL, "kube_api_url: too long");
		snprintf(buf, sizeof(buf), "%s", o->api_url);
	} else {
		const char *h = env_get(o, "KUBERNETES_SERVICE_HOST");
		const char *p = env_get(o, "KUBERNETES_SERVICE_PORT");
		if (!h || !*h || !p || !*p)
			return werr_set(err, -EINVAL,
					"kube: KUBERNETES_SERVICE_HOST/PORT are not set (not in a pod?); set kube_api_url in wrapd.conf");
		for (const char *c = p; *c; c++)
			if (!isdigit((unsigned char)*c) || c - p > 5)
				return werr_set(err, -EINVAL, "kube: KUBERNETES_SERVICE_PORT '%.16s' is not a port", p);
		for (const char *c = h; *c; c++)
			if (!isalnum((unsigned char)*c) && !strchr(".-:", *c))
				return werr_set(err, -EINVAL, "kube: KUBERNETES_SERVICE_HOST is not a host name or address");
		int w = snprintf(buf, sizeof(buf), strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s", h, p);
		if (w < 0 || (size_t)w >= sizeof(buf))
			return werr_set(err, -EINVAL, "kube: KUBERNETES_SERVICE_HOST is too long");
	}
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int r = 0;
	if (!u || curl_url_set(u, CURLUPART_URL, buf, 0) ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0)) {
		r = werr_set(err, -EINVAL, "kube_api_url '%s': not a URL (https://HOST:PORT)", buf);
	} else if (strcmp(scheme, "https") && strcmp(scheme, "http")) {
		r = werr_set(err, -EINVAL, "kube_api_url '%s': the scheme must be https", buf);
	} else if (!strcmp(scheme, "http") && !vault_addr_is_loopback(buf)) {
		r = werr_set(err, -EINVAL,
			     "kube_api_url '%s': plain http is allowed only to a loopback address; use https",
			     buf);
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	if (r < 0)
		return r;
	size_t n = strlen(buf);
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	*url = strdup(buf);
	return *url ? 0 : -ENOMEM;
}

int kube_client_new(struct kube_client **out, const struct kube_client_opts *o, struct werr *err)
{
	*out = NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return werr_set(err, -EIO, "kube: libcurl initialisation failed");
	struct kube_client *kc = calloc(1, sizeof(*kc));
	if (!kc) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	int r = kube_resolve_url(o, &kc->url, err);
	if (r < 0) {
		free(kc);
		curl_global_cleanup();
		return r;
	}
	kc->log = o->log;
	kc->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	kc->token_file = strdup(o->token_file && *o->token_file ? o->token_file
							      : KUBE_DEFAULT_TOKEN_FILE);
	const char *ca = o->ca_file && *o->ca_file ? o->ca_file : NULL;
	if (!ca && access(KUBE_DEFAULT_CA_FILE, R_OK) == 0)
		ca = KUBE_DEFAULT_CA_FILE;
	kc->ca_file = ca ? strdup(ca) : NULL;
	kc->curl = curl_easy_init();
	if (!kc->token_file || (ca && !kc->ca_file) || !kc->curl) {
		kube_client_free(kc);
		return -ENOMEM;
	}
	*out = kc;
	return 0;
}

static void token_wipe(struct kube_client *kc)
{
	if (kc->token) {
		explicit_bzero(kc->token, strlen(kc->token));
		free(kc->token);
		kc->token = NULL;
	}
}

void kube_client_free(struct kube_client *kc)
{
	if (!kc)
		return;
	token_wipe(kc);
	if (kc->curl)
		curl_easy_cleanup(kc->curl);
	free(kc->url);
	free(kc->token_file);
	free(kc->ca_file);
	free(kc);
	curl_global_cleanup();
}

const char *kube_client_url(const struct kube_client *kc)
{
	return kc->url;
}

unsigned long kube_client_requests(const struct kube_client *kc)
{
	return kc->requests;
}

long kube_client_retry_after(const struct kube_client *kc)
{
	return kc->retry_after_s;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int kube_token_refresh(struct kube_client *kc, struct werr *err)
{
	struct stat st;
	if (stat(kc->token_file, &st) < 0) {
		if (errno != ENOENT)
			return werr_set(err, -errno, "%s: %s", kc->token_file, strerror(errno));
		/* No token: requests go without one (a loopback test server,
		 * or a cluster that lets anonymous in). Said once. */
		token_wipe(kc);
		kc->token_seen = false;
		if (!kc->token_missing_said)
			wlog(kc->log, WLOG_INFO, "kube: %s does not exist; requests carry no token",
			     kc->token_file);
		kc->token_missing_said = true;
		return 0;
	}
	if (kc->token_seen && same_file(&st, &kc->token_st))
		return 0;
	_cleanup_close_ int fd = open(kc->token_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return werr_set(err, -errno, "%s: %s", kc->token_file, strerror(errno));
	if (fstat(fd, &st) < 0)
		return werr_set(err, -errno, "%s: %s", kc->token_file, strerror(errno));
	int r = file_check_trusted(&st, kc->token_file, err);
	if (r < 0)
		return r;
	char *buf = NULL;
	size_t len = 0;
	r = read_file_fd(fd, KUBE_TOKEN_MAX, &buf, &len);
	if (r < 0)
		return werr_set(err, r, "%s: cannot read the token (%s)", kc->token_file, strerror(-r));
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		buf[--len] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c <= 0x20 || c >= 0x7f) {
			explicit_bzero(buf, len);
			free(buf);
			return werr_set(err, -EINVAL,
					"%s: the token holds a space or control character; it must be one line",
					kc->token_file);
		}
	}
	bool had = kc->token_seen;
	token_wipe(kc);
	kc->token = buf;
	kc->token_st = st;
	kc->token_seen = true;
	kc->token_missing_said = false;
	if (had)
		wlog(kc->log, WLOG_INFO, "kube: %s changed; using the new token", kc->token_file);
	return 0;
}

/* --------------------------------------------------------------- transfer */

size_t kube_body_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct kube_body *b = arg;
	size_t n = size * nmemb;
	if (b->len + n > b->max) {
		b->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *nb = realloc(b->buf, cap);
		if (!nb)
			return 0;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return n;
}

void kube_body_free(struct kube_body *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

int kube_easy_setup(struct kube_client *kc, CURL *c, const char *method, const char *path,
		    const char *body, const char *content_type, bool stream,
		    struct curl_slist **hdrs, struct werr *err)
{
	*hdrs = NULL;
	int r = kube_token_refresh(kc, err);
	if (r < 0)
		return r;
	size_t ulen = strlen(kc->url) + strlen(path) + 1;
	_cleanup_free_ char *url = malloc(ulen);
	if (!url)
		return -ENOMEM;
	snprintf(url, ulen, "%s%s", kc->url, path);
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	if (h && body) {
		char ct[128];
		snprintf(ct, sizeof(ct), "Content-Type: %s", content_type ? content_type : "application/json");
		h = curl_slist_append(h, ct);
	}
	if (h && kc->token) {
		size_t n = strlen(kc->token) + 32;
		char *a = malloc(n);
		if (!a) {
			curl_slist_free_all(h);
			return -ENOMEM;
		}
		snprintf(a, n, "Authorization: Bearer %s", kc->token);
		struct curl_slist *h2 = curl_slist_append(h, a);
		explicit_bzero(a, n);
		free(a);
		if (!h2)
			curl_slist_free_all(h);
		h = h2;
	}
	if (!h)
		return -ENOMEM;
	*hdrs = h;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (!strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* the token never follows a redirect */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	/* A watch has no overall timeout (timeoutSeconds ends it server-side);
	 * TCP keep-alive finds a dead peer without waking us. */
	if (!stream)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, kc->timeout_ms);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 60L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 30L);
	if (kc->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, kc->ca_file);
	kc->requests++;
	return 0;
}

static const char *status_text(long s)
{
	switch (s) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized (check the service-account token)";
	case 403: return "Forbidden (check the ClusterRole)";
	case 404: return "Not Found";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 422: return "Invalid";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "unexpected status";
	}
}

int kube_http_error(struct werr *err, int rc, const char *method, const char *path, long status,
		    json_t *resp)
{
	struct kube_status st;
	if (resp && kube_status_from_json(resp, &st) == 0 && st.message[0])
		return werr_set(err, rc, "kube: %s %s: %ld %s: %s", method, path, status,
				status_text(status), st.message);
	return werr_set(err, rc, "kube: %s %s: %ld %s", method, path, status, status_text(status));
}

int kube_request(struct kube_client *kc, const char *method, const char *path, json_t *body,
		 const char *content_type, long *status, json_t **resp, struct werr *err)
{
	*status = 0;
	*resp = NULL;
	kc->retry_after_s = 0;
	_cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (body && !text)
		return -ENOMEM;
	struct curl_slist *hdrs = NULL;
	int r = kube_easy_setup(kc, kc->curl, method, path, text, content_type, false, &hdrs, err);
	if (r < 0)
		return r;
	struct kube_body b = {.max = KUBE_RESPONSE_MAX};
	char ebuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(kc->curl, CURLOPT_WRITEFUNCTION, kube_body_write);
	curl_easy_setopt(kc->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(kc->curl, CURLOPT_ERRORBUFFER, ebuf);
	CURLcode cc = curl_easy_perform(kc->curl);
	curl_slist_free_all(hdrs);
	curl_easy_setopt(kc->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(kc->curl, CURLOPT_ERRORBUFFER, NULL);
	if (cc != CURLE_OK) {
		r = b.too_big ? werr_set(err, -EFBIG, "kube: %s %s: the answer is larger than %u bytes",
					 method, path, KUBE_RESPONSE_MAX)
			      : werr_set(err, -EHOSTUNREACH, "kube: %s %s%s: %s", method, kc->url, path,
					 ebuf[0] ? ebuf : curl_easy_strerror(cc));
		kube_body_free(&b);
		return r;
	}
	curl_easy_getinfo(kc->curl, CURLINFO_RESPONSE_CODE, status);
	curl_off_t ra = 0;
	if (*status >= 400 && curl_easy_getinfo(kc->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK &&
	    ra > 0)
		kc->retry_after_s = ra > 86400 ? 86400 : (long)ra;
	wlog(kc->log, WLOG_DEBUG, "kube: %s %s: %ld", method, path, *status);
	if (b.len) {
		json_error_t je;
		*resp = json_loadb(b.buf, b.len, JSON_REJECT_DUPLICATES, &je);
	}
	kube_body_free(&b);
	if (!*resp && *status >= 200 && *status < 300 && strcmp(method, "DELETE"))
		return werr_set(err, -EBADMSG, "kube: %s %s: %ld with a body that is not JSON", method,
				path, *status);
	return 0;
}

/* --------------------------------------------------------------- the calls */

int kube_pv_get(struct kube_client *kc, const char *name, struct kube_pv *pv, struct werr *err)
{
	if (!kube_dns1123_subdomain(name))
		return werr_set(err, -EINVAL, "kube: '%s' is not a valid PV name", name);
	char path[320];
	snprintf(path, sizeof(path), "/api/v1/persistentvolumes/%s", name);
	long st;
	json_t *resp;
	int r = kube_request(kc, "GET", path, NULL, NULL, &st, &resp, err);
	if (r < 0)
		return r;
	if (st == 404)
		r = -ENOENT;
	else if (st != 200)
		r = kube_http_error(err, -EPROTO, "GET", path, st, resp);
	else
		r = kube_pv_parse(resp, pv, err);
	json_decref(resp);
	return r;
}

int kube_pv_create(struct kube_client *kc, json_t *doc, struct kube_pv *pv, bool *existed,
		   struct werr *err)
{
	*existed = false;
	const char *path = "/api/v1/persistentvolumes";
	long st;
	json_t *resp;
	int r = kube_request(kc, "POST", path, doc, NULL, &st, &resp, err);
	if (r < 0)
		return r;
	if (st == 200 || st == 201) {
		r = kube_pv_parse(resp, pv, err);
		json_decref(resp);
		return r;
	}
	if (st != 409) {
		r = kube_http_error(err, -EPROTO, "POST", path, st, resp);
		json_decref(resp);
		return r;
	}
	json_decref(resp);
	/* 409 AlreadyExists: fine when the existing PV is ours (an earlier
	 * create whose answer was lost, or a restart). */
	json_t *md = json_object_get(doc, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *node = json_string_value(
		json_object_get(json_object_get(md, "labels"), KUBE_NODE_LABEL));
	if (!name)
		return werr_set(err, -EINVAL, "kube: a PV document without a name");
	r = kube_pv_get(kc, name, pv, err);
	if (r == -ENOENT)
		return werr_set(err, -EAGAIN, "kube: PV %s: 409 on create, then gone; try again", name);
	if (r < 0)
		return r;
	if (!pv->managed || !node || strcmp(pv->node_label, node))
		return werr_set(err, -EEXIST,
				"kube: PV %s exists and is not this node's wrapd PV; delete it or rename the volume",
				name);
	*existed = true;
	return 0;
}

int kube_pv_delete(struct kube_client *kc, const char *name, const char *uid, struct werr *err)
{
	if (!kube_dns1123_subdomain(name))
		return werr_set(err, -EINVAL, "kube: '%s' is not a valid PV name", name);
	char path[320];
	snprintf(path, sizeof(path), "/api/v1/persistentvolumes/%s", name);
	json_t *body = NULL;
	if (uid && *uid) {
		body = json_pack("{s:s,s:s,s:{s:s}}", "kind", "DeleteOptions", "apiVersion", "v1",
				 "preconditions", "uid", uid);
		if (!body)
			return -ENOMEM;
	}
	long st;
	json_t *resp;
	int r = kube_request(kc, "DELETE", path, body, NULL, &st, &resp, err);
	json_decref(body);
	if (r < 0)
		return r;
	if (st == 200 || st == 202 || st == 404)
		r = 0;
	else if (st == 409)
		r = kube_http_error(err, -ESTALE, "DELETE", path, st, resp);
	else
		r = kube_http_error(err, -EPROTO, "DELETE", path, st, resp);
	json_decref(resp);
	return r;
}

int kube_pv_patch(struct kube_client *kc, const char *name, json_t *patch, struct werr *err)
{
	if (!kube_dns1123_subdomain(name))
		return werr_set(err, -EINVAL, "kube: '%s' is not a valid PV name", name);
	char path[320];
	snprintf(path, sizeof(path), "/api/v1/persistentvolumes/%s", name);
	long st;
	json_t *resp;
	int r = kube_request(kc, "PATCH", path, patch, "application/merge-patch+json", &st, &resp, err);
	if (r < 0)
		return r;
	if (st == 404)
		r = -ENOENT;
	else if (st != 200)
		r = kube_http_error(err, -EPROTO, "PATCH", path, st, resp);
	json_decref(resp);
	return r;
}

int kube_pv_list(struct kube_client *kc, const char *selector, struct kube_pv **items, size_t *n,
		 char rv[64], struct werr *err)
{
	*items = NULL;
	*n = 0;
	char *esc = curl_easy_escape(kc->curl, selector ? selector : KUBE_SELECTOR, 0);
	if (!esc)
		return -ENOMEM;
	char path[1024];
	snprintf(path, sizeof(path), "/api/v1/persistentvolumes?labelSelector=%s", esc);
	curl_free(esc);
	long st;
	json_t *resp;
	int r = kube_request(kc, "GET", path, NULL, NULL, &st, &resp, err);
	if (r < 0)
		return r;
	if (st != 200)
		r = kube_http_error(err, -EPROTO, "GET", path, st, resp);
	else
		r = kube_pv_list_from_json(resp, items, n, rv, NULL, err);
	json_decref(resp);
	return r;
}

int kube_event_post(struct kube_client *kc, const struct kube_event_spec *e, struct werr *err)
{
	if (!kube_dns1123_label(e->ns))
		return werr_set(err, -EINVAL, "kube: '%s' is not a valid namespace", e->ns);
	char path[128];
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", e->ns);
	json_t *doc = kube_event_build(e);
	if (!doc)
		return -ENOMEM;
	long st;
	json_t *resp;
	int r = kube_request(kc, "POST", path, doc, NULL, &st, &resp, err);
	json_decref(doc);
	if (r < 0)
		return r;
	if (st != 200 && st != 201)
		r = kube_http_error(err, -EPROTO, "POST", path, st, resp);
	json_decref(resp);
	return r;
}
