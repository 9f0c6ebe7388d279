/*
 * The HTTP layer of the Vault client, transport only: one logical call = up
 * to 1 + max_retries attempts, each following at most one 307, within an
 * overall deadline. It sends the token it is given (vc->token) and knows
 * nothing of its lifecycle: auth.c is the layer above (token upkeep, a new
 * login after a 403), transit.c the one above that; calls go one way.
 * Response bodies are received into locked memory and any secret field
 * (plaintext keys, tokens) is moved out before jansson sees the text.
 * Log lines name the method, path, status and attempt: never a body, never a
 * token.
 */
#include "vault/vault_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

/* ---------------------------------------------------------------- pure parts */

bool vault_curl_is_tls_error(CURLcode cc)
{
	switch (cc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED:
		return true;
	default:
		return false;
	}
}

bool vault_should_retry(long status, CURLcode cc)
{
	if (cc != CURLE_OK) {
		if (vault_curl_is_tls_error(cc))
			return false;
		switch (cc) {
		/* Our own or configuration mistakes: trying again cannot help. */
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
		case CURLE_NOT_BUILT_IN:
		case CURLE_OUT_OF_MEMORY:
		case CURLE_TOO_MANY_REDIRECTS:
		case CURLE_ABORTED_BY_CALLBACK:
		case CURLE_WRITE_ERROR:           /* response over our size limit */
		case CURLE_BAD_FUNCTION_ARGUMENT:
		case CURLE_UNKNOWN_OPTION:
		case CURLE_FILESIZE_EXCEEDED:
		case CURLE_LOGIN_DENIED:
			return false;
		default:
			return true; /* connection refused, reset, timeout, empty reply, ... */
		}
	}
	if (status == 412 || status == 429)
		return true;
	return status >= 500 && status <= 599 && status != 501;
}

uint64_t vault_backoff_ms(unsigned retry, uint32_t rnd)
{
	if (retry == 0)
		retry = 1;
	if (retry > 30)
		retry = 30;
	uint64_t base = 1000ull * retry;
	uint64_t span = base / 2; /* jitter: [base, base * 1.5] */
	return base + (span ? (uint64_t)rnd % (span + 1) : 0);
}

static const char *reason(long status)
{
	switch (status) {
	case 400: return "bad request";
	case 401: return "unauthorized";
	case 403: return "permission denied";
	case 404: return "not found";
	case 405: return "unsupported operation";
	case 412: return "precondition failed";
	case 429: return "too many requests";
	case 500: return "internal server error";
	case 501: return "Vault is not initialized";
	case 502: return "bad gateway";
	case 503: return "Vault is sealed or unavailable";
	case 504: return "gateway timeout";
	default: return "unexpected status";
	}
}

/* Appends s to buf, replacing control characters (hostile servers must not
 * write escape sequences into our terminals and logs). */
static void append_clean(char *buf, size_t n, size_t *pos, const char *s)
{
	for (; *s && *pos + 1 < n; s++)
		buf[(*pos)++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	buf[*pos < n ? *pos : n - 1] = '\0';
}

void vault_format_http_error(char *buf, size_t n, const char *method, const char *path,
			     long status, json_t *body)
{
	int w = snprintf(buf, n, "vault: %s %s: %ld: ", method, path, status);
	if (w < 0 || (size_t)w >= n)
		return;
	size_t pos = (size_t)w;
	json_t *errors = body ? json_object_get(body, "errors") : NULL;
	size_t shown = 0;
	if (json_is_array(errors)) {
		size_t i;
		json_t *e;
		json_array_foreach(errors, i, e) {
			if (!json_is_string(e) || !*json_string_value(e))
				continue;
			if (shown++)
				append_clean(buf, n, &pos, "; ");
			append_clean(buf, n, &pos, json_string_value(e));
		}
	}
	if (!shown)
		append_clean(buf, n, &pos, reason(status));
}

/* Scheme, host and port of a URL (default port filled in), lowercased. */
static int url_origin(const char *url, char *buf, size_t n)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = -EINVAL;
	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0) &&
	    !curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)) {
		int w = snprintf(buf, n, "%s://%s:%s", scheme, host, port);
		if (w > 0 && (size_t)w < n) {
			for (char *p = buf; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			rc = 0;
		}
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

bool vault_same_origin(const char *a, const char *b)
{
	char oa[1200], ob[1200];
	return !url_origin(a, oa, sizeof(oa)) && !url_origin(b, ob, sizeof(ob)) && !strcmp(oa, ob);
}

bool vault_addr_is_loopback(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL;
	bool loop = false;
	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0)) {
		struct in_addr a4;
		struct in6_addr a6;
		size_t hl = strlen(host);
		if (!strcasecmp(host, "localhost"))
			loop = true;
		else if (inet_pton(AF_INET, host, &a4) == 1)
			loop = (ntohl(a4.s_addr) >> 24) == 127;
		else if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
			host[hl - 1] = '\0';
			loop = inet_pton(AF_INET6, host + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
		}
	}
	curl_free(host);
	curl_url_cleanup(u);
	return loop;
}

/* ------------------------------------------------------------ the transfer */

struct attempt {
	struct secbuf body;      /* raw response, locked */
	bool too_big;
	long status;
	CURLcode cc;
	char errbuf[CURL_ERROR_SIZE];
	curl_off_t retry_after;  /* seconds, from Retry-After; 0 if none */
	char *location;          /* resolved Location of a 3xx */
};

static void attempt_clear(struct attempt *a)
{
	secbuf_free(&a->body);
	free(a->location);
	memset(a, 0, sizeof(*a));
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct attempt *a = userdata;
	size_t n = size * nmemb;
	if (a->body.len + n + 1 > VAULT_RESPONSE_MAX) {
		a->too_big = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (secbuf_reserve(&a->body, a->body.len + n + 1) < 0)
		return 0;
	memcpy(a->body.data + a->body.len, ptr, n);
	a->body.len += n;
	a->body.data[a->body.len] = '\0';
	return n;
}

static void slist_free_wiped(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		if (p->data)
			explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

uint64_t vault_now(struct vault_client *vc)
{
	if (vc->hooks.now_ms)
		return vc->hooks.now_ms(vc->hooks.arg);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void vault_sleep(struct vault_client *vc, uint64_t ms)
{
	if (vc->hooks.sleep_ms) {
		vc->hooks.sleep_ms(vc->hooks.arg, ms);
		return;
	}
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint32_t next_rand(struct vault_client *vc)
{
	uint32_t x = vc->rng ? vc->rng : 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	vc->rng = x;
	return x;
}

/* With tls_server_name set, the URL names that host (so SNI and certificate
 * verification use it) and CURLOPT_CONNECT_TO sends the connection to the
 * configured address, as VAULT_TLS_SERVER_NAME does in Vault's CLI. */
static int tls_name_rewrite(struct vault_client *vc, const char *url, char **new_url,
			    struct curl_slist **connect_to)
{
	*new_url = NULL;
	*connect_to = NULL;
	if (!vc->cfg.tls_server_name || strncmp(url, "https://", 8))
		return 0;
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	int rc = -EINVAL;
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ||
	    curl_url_set(u, CURLUPART_HOST, vc->cfg.tls_server_name, 0) ||
	    curl_url_get(u, CURLUPART_URL, new_url, 0))
		goto out;
	char line[1200];
	snprintf(line, sizeof(line), "%s:%s:%s:%s", vc->cfg.tls_server_name, port, host, port);
	*connect_to = curl_slist_append(NULL, line);
	rc = *connect_to ? 0 : -ENOMEM;
out:
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static void attempt_once(struct vault_client *vc, const char *url, const struct vault_request *req,
			 const char *body, size_t body_len, long timeout_ms, struct attempt *a)
{
	CURL *c = vc->curl;
	struct curl_slist *hdrs = NULL, *connect_to = NULL;
	char *rewritten = NULL;
	char line[1200];

	curl_easy_reset(c);
	a->status = 0;
	a->errbuf[0] = '\0';
	if (tls_name_rewrite(vc, url, &rewritten, &connect_to) < 0) {
		a->cc = CURLE_URL_MALFORMAT;
		snprintf(a->errbuf, sizeof(a->errbuf), "cannot apply tls_server_name to the URL");
		return;
	}
	curl_easy_setopt(c, CURLOPT_URL, rewritten ? rewritten : url);
	if (connect_to)
		curl_easy_setopt(c, CURLOPT_CONNECT_TO, connect_to);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* we follow 307s ourselves */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->errbuf);
	long ct = vc->cfg.connect_timeout_ms;
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ct < timeout_ms ? ct : timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (vc->cfg.cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, vc->cfg.cacert);
	if (vc->cfg.capath)
		curl_easy_setopt(c, CURLOPT_CAPATH, vc->cfg.capath);
	if (vc->cfg.client_cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, vc->cfg.client_cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, vc->cfg.client_key);
	}
	if (vc->cfg.skip_verify) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	hdrs = curl_slist_append(hdrs, "X-Vault-Request: true");
	if (vc->cfg.namespace_) {
		snprintf(line, sizeof(line), "X-Vault-Namespace: %s", vc->cfg.namespace_);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (req->auth && vc->have_token) {
		/* The token line is wiped from our copies; see slist_free_wiped. */
		struct secbuf tl = {0};
		if (secbuf_alloc(&tl, vc->token.len + 32) == 0) {
			snprintf((char *)tl.data, tl.cap, "X-Vault-Token: %s", (char *)vc->token.data);
			hdrs = curl_slist_append(hdrs, (char *)tl.data);
			secbuf_free(&tl);
		}
	}
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else if (!strcmp(req->method, "GET")) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
	}
	/* Suppress "Expect: 100-continue": one response per attempt. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);

	a->cc = curl_easy_perform(c);
	if (a->cc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
		curl_off_t ra = 0;
		if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			a->retry_after = ra;
		char *loc = NULL;
		if (a->status >= 300 && a->status < 400 &&
		    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
			a->location = strdup(loc);
	}
	/* Drop references to our buffers before they go away. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_CONNECT_TO, NULL);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	slist_free_wiped(hdrs);
	curl_slist_free_all(connect_to);
	curl_free(rewritten);
}

static int rc_for(long status, CURLcode cc)
{
	if (cc != CURLE_OK) {
		if (vault_curl_is_tls_error(cc))
			return -EPROTO;
		if (cc == CURLE_OPERATION_TIMEDOUT)
			return -ETIMEDOUT;
		if (cc == CURLE_COULDNT_CONNECT)
			return -ECONNREFUSED;
		if (cc == CURLE_COULDNT_RESOLVE_HOST)
			return -EHOSTUNREACH;
		return -EIO;
	}
	switch (status) {
	case 400: return -EINVAL;
	case 401:
	case 403: return -EACCES;
	case 404: return -ENOENT;
	case 412:
	case 429: return -EBUSY;
	case 501: return -ENOTSUP;
	case 503: return -EAGAIN;
	default: return status >= 300 && status < 400 ? -EREMOTE : -EIO;
	}
}

/* Turns the raw body into resp->json/secrets. Body text never leaves locked
 * memory except with its secret fields replaced by placeholders. */
static int parse_body(struct attempt *a, const struct vault_request *req,
		      struct vault_response *resp)
{
	int rc = vault_response_parse(a->body.data, a->body.len, req->secret_keys, resp);
	secbuf_free(&a->body);
	return rc;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The observer's operation names, from the path: "MOUNT/OP/KEY" for Transit
 * (the configured mount), auth/token/lookup-self and renew-self, AUTHMOUNT/login,
 * sys/health. A name never comes from a server or the path's free parts. */
const char *vault_request_op(const struct vault_client *vc, const char *path)
{
	static const char *const transit[] = {"decrypt", "datakey", "rewrap", "keys", "encrypt"};
	if (!strcmp(path, "auth/token/lookup-self"))
		return "lookup-self";
	if (!strcmp(path, "auth/token/renew-self"))
		return "renew";
	if (!strcmp(path, "sys/health"))
		return "health";
	size_t pl = strlen(path);
	if (pl >= 6 && !strcmp(path + pl - 6, "/login"))
		return "login";
	size_t ml = vc && vc->cfg.mount ? strlen(vc->cfg.mount) : 0;
	if (ml && !strncmp(path, vc->cfg.mount, ml) && path[ml] == '/') {
		const char *op = path + ml + 1;
		for (size_t i = 0; i < ARRAY_SIZE(transit); i++) {
			size_t n = strlen(transit[i]);
			if (!strncmp(op, transit[i], n) && (op[n] == '/' || op[n] == '\0'))
				return transit[i];
		}
	}
	return "other";
}

void vault_client_set_observer(struct vault_client *vc, vault_observer_fn fn, void *arg)
{
	vc->observe = fn;
	vc->observe_arg = fn ? arg : NULL;
}

void vault_client_observer_copy(struct vault_client *dst, const struct vault_client *src)
{
	if (dst && src)
		vault_client_set_observer(dst, src->observe, src->observe_arg);
}

int vault_http(struct vault_client *vc, const struct vault_request *req,
	       struct vault_response *resp, struct werr *err)
{
	memset(resp, 0, sizeof(*resp));
	size_t base_len = strlen(vc->cfg.addr) + strlen(req->path) + 8;
	_cleanup_free_ char *base = malloc(base_len);
	if (!base)
		return werr_set(err, -ENOMEM, "out of memory");
	snprintf(base, base_len, "%s/v1/%s", vc->cfg.addr, req->path);

	char *body = NULL;
	size_t body_len = 0;
	if (req->raw_body) {
		body = (char *)req->raw_body->data;
		body_len = req->raw_body->len;
	} else if (req->body) {
		body = json_dumps(req->body, JSON_COMPACT);
		if (!body)
			return werr_set(err, -ENOMEM, "out of memory");
		body_len = strlen(body);
	}

	const uint64_t start = vault_now(vc);
	const uint64_t deadline = start + (uint64_t)vc->cfg.deadline_ms;
	const int max_retries = req->no_retry ? 0 : vc->cfg.max_retries;
	char msg[WERR_MSG_MAX];
	int rc = 0;
	for (int retries = 0;; retries++) {
		const char *url = base;
		_cleanup_free_ char *redirect = NULL;
		struct attempt a = {0};
		for (int hops = 0;; hops++) {
			uint64_t now = vault_now(vc);
			long left = now < deadline ? (long)(deadline - now) : 1;
			long tmo = vc->cfg.timeout_ms < left ? vc->cfg.timeout_ms : left;
			uint64_t t0 = mono_us();
			attempt_once(vc, url, req, body, body_len, tmo, &a);
			if (vc->observe)
				vc->observe(vc->observe_arg, vault_request_op(vc, req->path),
					    a.cc == CURLE_OK ? a.status : 0, mono_us() - t0);
			wlog_debug(vc->log, "vault: %s %s: %ld%s%s (try %d)", req->method, req->path,
				   a.status, a.cc ? " " : "", a.cc ? curl_easy_strerror(a.cc) : "",
				   retries + 1);
			if (a.cc != CURLE_OK || a.status != 307)
				break;
			if (hops >= 1) {
				snprintf(a.errbuf, sizeof(a.errbuf), "more than one redirect; refusing to follow");
				a.cc = CURLE_TOO_MANY_REDIRECTS;
				break;
			}
			if (!a.location || (strncmp(a.location, "https://", 8) &&
					    strncmp(a.location, "http://", 7))) {
				snprintf(a.errbuf, sizeof(a.errbuf), "307 without a usable Location");
				a.cc = CURLE_UNSUPPORTED_PROTOCOL;
				break;
			}
			if (!strncmp(url, "https://", 8) && strncmp(a.location, "https://", 8)) {
				snprintf(a.errbuf, sizeof(a.errbuf),
					 "refusing a redirect from https to http (%.200s)", a.location);
				a.cc = CURLE_UNSUPPORTED_PROTOCOL;
				break;
			}
			if (!vault_same_origin(url, a.location)) {
				snprintf(a.errbuf, sizeof(a.errbuf),
					 "refusing a redirect to another server (%.120s); the token goes only to vault_addr",
					 a.location);
				a.cc = CURLE_UNSUPPORTED_PROTOCOL;
				break;
			}
			wlog_info(vc->log, "vault: %s %s: 307: following the redirect to %.200s",
				  req->method, req->path, a.location);
			free(redirect);
			redirect = TAKE_PTR(a.location);
			url = redirect;
			attempt_clear(&a);
		}

		if (a.cc == CURLE_OK) {
			resp->status = a.status;
			int prc = parse_body(&a, req, resp);
			bool ok2xx = a.status >= 200 && a.status < 300;
			bool batch = req->batch_400_ok && a.status == 400 && resp->json &&
				     json_is_array(json_object_get(json_object_get(resp->json, "data"),
								   "batch_results"));
			if (ok2xx || batch || req->accept_any_status) {
				rc = 0;
				if (prc < 0) {
					rc = werr_set(err, prc == -ENOMEM ? prc : -EBADMSG,
						      "vault: %s %s: %ld: response is not valid JSON",
						      req->method, req->path, a.status);
					vault_response_clear(resp);
				}
				attempt_clear(&a);
				goto out;
			}
			vault_format_http_error(msg, sizeof(msg), req->method, req->path, a.status,
						resp->json);
		} else if (a.too_big) {
			snprintf(msg, sizeof(msg), "vault: %s %s: response larger than %d bytes",
				 req->method, req->path, VAULT_RESPONSE_MAX);
		} else {
			snprintf(msg, sizeof(msg), "vault: %s %s: %s%s%s", req->method, req->path,
				 curl_easy_strerror(a.cc), a.errbuf[0] ? ": " : "", a.errbuf);
		}
		rc = rc_for(a.status, a.cc);
		bool retry = !req->no_retry && vault_should_retry(a.status, a.cc);
		if (!retry || retries >= max_retries) {
			if (retry)
				rc = werr_set(err, rc, "%s (gave up after %d tries)", msg, retries + 1);
			else
				rc = werr_set(err, rc, "%s", msg);
			attempt_clear(&a);
			goto out; /* resp keeps status and the error body */
		}
		uint64_t delay = vault_backoff_ms((unsigned)retries + 1, next_rand(vc));
		if ((a.status == 429 || a.status == 503) && a.retry_after > 0)
			delay = (uint64_t)a.retry_after * 1000;
		uint64_t now = vault_now(vc);
		if (now + delay > deadline) {
			rc = werr_set(err, rc, "%s (gave up after %d tries: the %ld ms deadline is near)",
				      msg, retries + 1, vc->cfg.deadline_ms);
			attempt_clear(&a);
			goto out;
		}
		wlog_info(vc->log, "%s; retrying in %llu ms (retry %d of %d)", msg,
			  (unsigned long long)delay, retries + 1, max_retries);
		attempt_clear(&a);
		vault_response_clear(resp);
		vault_sleep(vc, delay);
	}
out:
	if (body && !req->raw_body) {
		explicit_bzero(body, body_len);
		free(body);
	}
	return rc;
}

/* ---------------------------------------------------------------- client */

/* The TLS files decide whom the client trusts and whom it claims to be:
 * the same StrictModes as wrapd.conf (a CA that others can write lets them
 * name the Vault the token goes to). Files inside vault_capath are not
 * checked one by one; the directory and those above it are. */
static int tls_files_check(const struct vault_config *cfg, struct werr *err)
{
	const char *f[] = {cfg->cacert, cfg->capath, cfg->client_cert, cfg->client_key};
	const char *key[] = {"vault_cacert", "vault_capath", "vault_client_cert", "vault_client_key"};
	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		struct stat st;
		if (!f[i] || !*f[i])
			continue;
		if (stat(f[i], &st) < 0)
			return werr_set(err, -errno, "vault: %s %s: %s", key[i], f[i], strerror(errno));
		int rc = file_check_trusted(&st, f[i], err);
		if (rc < 0)
			return werr_prefix(err, rc, "vault: %s", key[i]);
	}
	return 0;
}

int vault_client_new_ex(const struct vault_config *cfg, const struct wlog *log,
			const struct vault_client_hooks *hooks, struct vault_client **out,
			struct werr *err)
{
	*out = NULL;
	if (!cfg->addr || !cfg->mount || !cfg->key)
		return werr_set(err, -EINVAL, "vault: incomplete configuration (use vault_config_load)");
	int trc = tls_files_check(cfg, err);
	if (trc < 0)
		return trc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return werr_set(err, -EIO, "vault: libcurl initialisation failed");
	struct vault_client *vc = calloc(1, sizeof(*vc));
	if (!vc) {
		curl_global_cleanup();
		return werr_set(err, -ENOMEM, "out of memory");
	}
	if (vault_config_copy(&vc->cfg, cfg) < 0) {
		free(vc);
		curl_global_cleanup();
		return werr_set(err, -ENOMEM, "out of memory");
	}
	vc->log = log;
	if (hooks)
		vc->hooks = *hooks;
	if (getrandom(&vc->rng, sizeof(vc->rng), 0) != sizeof(vc->rng))
		vc->rng = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	vc->curl = curl_easy_init();
	if (!vc->curl) {
		vault_client_free(vc);
		return werr_set(err, -ENOMEM, "vault: curl_easy_init failed");
	}
	/* Never silenced by -q: these say that keys may be readable on the way. */
	if (vc->cfg.skip_verify && !strncmp(vc->cfg.addr, "https://", 8))
		wlog_always(log, WLOG_WARN, "vault: VAULT_SKIP_VERIFY is set: the TLS certificate of %s is NOT verified; anyone on the path can read the keys",
			    vc->cfg.addr);
	if (!strncmp(vc->cfg.addr, "http://", 7) && !vault_addr_is_loopback(vc->cfg.addr))
		wlog_always(log, WLOG_WARN, "vault: %s is plain http: keys would cross the network unencrypted",
			    vc->cfg.addr);
	*out = vc;
	return 0;
}

int vault_client_new(const struct vault_config *cfg, const struct wlog *log,
		     struct vault_client **out, struct werr *err)
{
	return vault_client_new_ex(cfg, log, NULL, out, err);
}

void vault_client_free(struct vault_client *vc)
{
	if (!vc)
		return;
	if (vc->curl)
		curl_easy_cleanup(vc->curl);
	secbuf_free(&vc->token);
	vault_config_free(&vc->cfg);
	explicit_bzero(vc, sizeof(*vc));
	free(vc);
	curl_global_cleanup();
}
