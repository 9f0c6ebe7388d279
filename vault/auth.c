/*
 * Authentication and token upkeep, on top of the transport (http.c): the
 * token from VAULT_TOKEN or a file (reread when Vault Agent replaces it),
 * Kubernetes and AppRole logins, lookup-self at start, renew-self at
 * two-thirds of the TTL, and a new login after a 403 when the method can log
 * in. vault_call, the entry point of the layer above (transit.c), is here:
 * upkeep, then the request, then one repeat after a successful re-login.
 * This file calls vault_http; http.c never calls back into it.
 * Tokens, JWTs and secret_ids live in locked memory and never reach a log line.
 */
#include "vault/vault_int.h"

#include <ctype.h>
#include <fcntl.h>

static const char *const token_keys[] = {"client_token", "id", "accessor", NULL};

bool vault_can_login(const struct vault_client *vc)
{
	return vc->cfg.auth == VAULT_AUTH_KUBERNETES || vc->cfg.auth == VAULT_AUTH_APPROLE;
}

/* Credentials go into JSON bodies and HTTP headers verbatim: printable ASCII
 * without quotes or backslashes (tokens, JWTs and secret_ids all are). */
static bool safe_credential(const uint8_t *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

static int set_token(struct vault_client *vc, const uint8_t *s, size_t n)
{
	secbuf_free(&vc->token);
	vc->have_token = false;
	int rc = secbuf_alloc(&vc->token, n + 1);
	if (rc < 0)
		return rc;
	memcpy(vc->token.data, s, n);
	vc->token.data[n] = '\0';
	vc->token.len = n;
	vc->have_token = true;
	return 0;
}

/* Reads a small secret file into locked memory, trimming surrounding space.
 * strict: the file must pass file_check_trusted (the token and secret-id
 * files; not the Kubernetes service-account token, which the kubelet owns). */
static int read_secret_file(const char *path, const char *what, bool strict,
			    struct secbuf *out, struct stat *st_out, struct werr *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return werr_set(err, -errno, "vault: %s %s: %s", what, path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return werr_set(err, -errno, "vault: %s %s: %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return werr_set(err, -EINVAL, "vault: %s %s: not a regular file", what, path);
	int rc = strict ? file_check_trusted(&st, path, err) : 0;
	if (rc < 0)
		return werr_prefix(err, rc, "vault: %s", what);
	if (st.st_size >= VAULT_SECRET_FILE_MAX)
		return werr_set(err, -EFBIG, "vault: %s %s: larger than %d bytes", what, path,
				VAULT_SECRET_FILE_MAX);
	rc = secbuf_alloc(out, (size_t)st.st_size + 1);
	if (rc < 0)
		return werr_set(err, rc, "vault: cannot lock memory for the %s", what);
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, out->data + got, out->cap - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			secbuf_free(out);
			return werr_set(err, rc, "vault: %s %s: %s", what, path, strerror(-rc));
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (got == out->cap - 1)
			break;
	}
	size_t b = 0, e = got;
	while (b < e && isspace(out->data[b]))
		b++;
	while (e > b && isspace(out->data[e - 1]))
		e--;
	memmove(out->data, out->data + b, e - b);
	explicit_bzero(out->data + (e - b), out->cap - (e - b));
	out->len = e - b;
	if (!safe_credential(out->data, out->len)) {
		secbuf_free(out);
		return werr_set(err, -EINVAL, "vault: %s %s: empty or not a single printable word",
				what, path);
	}
	if (st_out)
		*st_out = st;
	return 0;
}

static void schedule(struct vault_client *vc, long long ttl_s, bool renewable)
{
	uint64_t now = vault_now(vc);
	vc->renewable = renewable;
	if (ttl_s <= 0) {
		vc->renew_at_ms = vc->expire_at_ms = 0; /* never expires (root token) */
		return;
	}
	vc->expire_at_ms = now + (uint64_t)ttl_s * 1000;
	vc->renew_at_ms = now + (uint64_t)ttl_s * 1000 * 2 / 3;
}

/* A TTL in seconds from a Vault answer, clamped to +-100 years: converting
 * a real outside long long's range is undefined behaviour (1e300 became
 * LLONG_MIN, "never expires"), and ttl * 1000 must not overflow. */
#define VAULT_TTL_MAX (100LL * 365 * 86400)
static long long json_ll(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);
		return x > VAULT_TTL_MAX ? VAULT_TTL_MAX : x < -VAULT_TTL_MAX ? -VAULT_TTL_MAX : x;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!(d > (double)-VAULT_TTL_MAX))
			return d < 0 ? -VAULT_TTL_MAX : 0; /* also NaN */
		return d >= (double)VAULT_TTL_MAX ? VAULT_TTL_MAX : (long long)d;
	}
	return 0;
}

/* Takes auth.client_token etc. from a login or renew answer. */
int vault_auth_answer(struct vault_client *vc, struct vault_response *r, const char *what,
		     bool need_token, struct werr *err)
{
	json_t *auth = json_object_get(r->json, "auth");
	if (!json_is_object(auth))
		return werr_set(err, -EBADMSG, "vault: %s: answer without 'auth'", what);
	if (need_token) {
		struct secbuf *t = vault_secret_ref(json_object_get(auth, "client_token"), r->secrets,
						    r->nsecrets);
		if (!t || !safe_credential(t->data, t->len))
			return werr_set(err, -EBADMSG, "vault: %s: answer without a client_token", what);
		int rc = set_token(vc, t->data, t->len);
		if (rc < 0)
			return werr_set(err, rc, "vault: cannot lock memory for the token");
	}
	schedule(vc, json_ll(auth, "lease_duration"), json_is_true(json_object_get(auth, "renewable")));
	vc->token_checked = true;
	return 0;
}

static int login(struct vault_client *vc, struct werr *err)
{
	_cleanup_secbuf_ struct secbuf cred = {0}, body = {0};
	const char *name, *path = NULL, *what;
	int rc;
	if (vc->cfg.auth == VAULT_AUTH_KUBERNETES) {
		what = "Kubernetes service-account token";
		path = vc->cfg.jwt_file;
		name = vc->cfg.role;
	} else {
		what = "AppRole secret_id file";
		path = vc->cfg.secret_id_file;
		name = vc->cfg.role_id;
	}
	if (!safe_credential((const uint8_t *)name, strlen(name)))
		return werr_set(err, -EINVAL, "vault: %s must be a single printable word",
				vc->cfg.auth == VAULT_AUTH_KUBERNETES ? "vault_role" : "vault_role_id");
	rc = read_secret_file(path, what, vc->cfg.auth == VAULT_AUTH_APPROLE, &cred, NULL, err);
	if (rc < 0)
		return rc;
	/* Built by hand in locked memory: jansson would copy the credential
	 * into heap buffers it frees without wiping. */
	rc = secbuf_alloc(&body, strlen(name) + cred.len + 64);
	if (rc < 0)
		return werr_set(err, rc, "vault: cannot lock memory for the login");
	if (vc->cfg.auth == VAULT_AUTH_KUBERNETES)
		body.len = (size_t)snprintf((char *)body.data, body.cap, "{\"role\":\"%s\",\"jwt\":\"%s\"}",
					    name, (char *)cred.data);
	else
		body.len = (size_t)snprintf((char *)body.data, body.cap,
					    "{\"role_id\":\"%s\",\"secret_id\":\"%s\"}", name,
					    (char *)cred.data);
	char lpath[300];
	snprintf(lpath, sizeof(lpath), "%s/login", vc->cfg.auth_mount);
	struct vault_request req = {
		.method = "POST", .path = lpath, .raw_body = &body, .secret_keys = token_keys,
	};
	struct vault_response r;
	secbuf_free(&vc->token);
	vc->have_token = false;
	rc = vault_http(vc, &req, &r, err);
	if (rc >= 0)
		rc = vault_auth_answer(vc, &r, lpath, true, err);
	vault_response_clear(&r);
	if (rc >= 0)
		wlog_info(vc->log, "vault: logged in with %s at %s", vault_auth_method_name(vc->cfg.auth),
			  vc->cfg.auth_mount);
	return rc;
}

/* Loads the token for auth = token. Returns 1 when it changed. */
static int load_static_token(struct vault_client *vc, struct werr *err)
{
	if (vc->cfg.token) {
		if (vc->have_token)
			return 0;
		size_t n = strlen(vc->cfg.token);
		if (!safe_credential((const uint8_t *)vc->cfg.token, n))
			return werr_set(err, -EINVAL, "vault: VAULT_TOKEN is not a single printable word");
		int rc = set_token(vc, (const uint8_t *)vc->cfg.token, n);
		return rc < 0 ? werr_set(err, rc, "vault: cannot lock memory for the token") : 1;
	}
	if (!vc->cfg.token_file)
		return werr_set(err, -ENOKEY,
				"vault: no token: set VAULT_TOKEN or vault_token_file, or vault_auth = kubernetes or approle");
	struct stat st;
	if (stat(vc->cfg.token_file, &st) < 0)
		return werr_set(err, -errno, "vault: token file %s: %s", vc->cfg.token_file,
				strerror(errno));
	const struct stat *o = &vc->token_file_st;
	if (vc->have_token && vc->token_file_seen && st.st_dev == o->st_dev &&
	    st.st_ino == o->st_ino && st.st_size == o->st_size &&
	    st.st_mtim.tv_sec == o->st_mtim.tv_sec && st.st_mtim.tv_nsec == o->st_mtim.tv_nsec)
		return 0;
	_cleanup_secbuf_ struct secbuf t = {0};
	int rc = read_secret_file(vc->cfg.token_file, "token file", true, &t, &st, err);
	if (rc < 0)
		return rc;
	rc = set_token(vc, t.data, t.len);
	if (rc < 0)
		return werr_set(err, rc, "vault: cannot lock memory for the token");
	if (vc->token_file_seen)
		wlog_info(vc->log, "vault: token file %s changed; using the new token", vc->cfg.token_file);
	vc->token_file_st = st;
	vc->token_file_seen = true;
	vc->token_checked = false;
	return 1;
}

static int lookup_self(struct vault_client *vc, struct vault_response *r, struct werr *err)
{
	static const char *const keys[] = {"id", "accessor", NULL};
	struct vault_request req = {
		.method = "GET", .path = "auth/token/lookup-self", .auth = true, .secret_keys = keys,
	};
	return vault_http(vc, &req, r, err);
}

static int renew_self(struct vault_client *vc, struct werr *err)
{
	json_t *b = json_object();
	if (!b)
		return werr_set(err, -ENOMEM, "out of memory");
	struct vault_request req = {
		.method = "POST", .path = "auth/token/renew-self", .body = b, .auth = true,
		.secret_keys = token_keys,
	};
	struct vault_response r;
	int rc = vault_http(vc, &req, &r, err);
	json_decref(b);
	if (rc >= 0) {
		json_t *auth = json_object_get(r.json, "auth");
		if (json_ll(auth, "lease_duration") <= 0)
			rc = werr_set(err, -EKEYEXPIRED, "vault: renew-self gave no further lease");
		else
			rc = vault_auth_answer(vc, &r, "auth/token/renew-self", false, err);
	}
	vault_response_clear(&r);
	if (rc >= 0)
		wlog_debug(vc->log, "vault: token renewed");
	return rc;
}

uint64_t vault_token_next_upkeep(struct vault_client *vc)
{
	if (!vc->have_token || !vc->token_checked)
		return 0;
	if (!vc->renew_at_ms)
		return UINT64_MAX;
	uint64_t now = vault_now(vc);
	return vc->renew_at_ms > now ? vc->renew_at_ms - now : 0;
}

int vault_token_upkeep(struct vault_client *vc, struct werr *err)
{
	int rc;
	if (vc->cfg.auth == VAULT_AUTH_TOKEN) {
		rc = load_static_token(vc, err);
		if (rc < 0)
			return rc;
	} else if (!vc->have_token) {
		return login(vc, err);
	}
	if (!vc->token_checked) {
		struct vault_response r;
		rc = lookup_self(vc, &r, err);
		if (rc >= 0) {
			json_t *d = json_object_get(r.json, "data");
			schedule(vc, json_ll(d, "ttl"), json_is_true(json_object_get(d, "renewable")));
			vc->token_checked = true;
		}
		long status = r.status;
		vault_response_clear(&r);
		if (rc < 0) {
			if (status == 403 && vault_can_login(vc))
				return login(vc, err);
			if (status == 403)
				return werr_prefix(err, rc, "vault: the token was refused");
			return rc;
		}
	}
	if (vc->renew_at_ms && vault_now(vc) >= vc->renew_at_ms) {
		struct werr e2 = {0};
		rc = vc->renewable ? renew_self(vc, &e2)
				   : werr_set(&e2, -EKEYEXPIRED, "the token is not renewable");
		if (rc >= 0)
			return 0;
		if (vault_can_login(vc)) {
			wlog_info(vc->log, "vault: token renewal failed (%s); logging in again",
				  werr_str(&e2, rc));
			return login(vc, err);
		}
		/* Nothing else to do: keep using the token until Vault refuses it,
		 * and do not retry renewal on every call. */
		wlog_warn(vc->log, "vault: token renewal failed: %s", werr_str(&e2, rc));
		vc->renew_at_ms = vc->expire_at_ms > vault_now(vc) ? vc->expire_at_ms : 0;
	}
	return 0;
}

/* After a 403: logs in again (or rereads the token file) when that can help.
 * Returns 1 when the call is worth repeating, 0 when not, <0 on failure. */
static int token_recover(struct vault_client *vc, struct werr *err)
{
	if (vault_can_login(vc)) {
		int rc = login(vc, err);
		return rc < 0 ? rc : 1;
	}
	if (vc->cfg.auth == VAULT_AUTH_TOKEN && !vc->cfg.token && vc->cfg.token_file) {
		int rc = load_static_token(vc, err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			vc->token_checked = true; /* the repeated call checks it */
		return rc;
	}
	return 0;
}

int vault_call(struct vault_client *vc, const struct vault_request *req,
	       struct vault_response *resp, struct werr *err)
{
	memset(resp, 0, sizeof(*resp));
	if (req->auth) {
		int rc = vault_token_upkeep(vc, err);
		if (rc < 0)
			return rc;
	}
	int rc = vault_http(vc, req, resp, err);
	if (rc == -EACCES && resp->status == 403 && req->auth) {
		struct werr e2 = {0};
		int r = token_recover(vc, &e2);
		if (r == 1) {
			wlog_info(vc->log, "vault: %s %s: 403 with the current token; authenticated again, repeating the call",
				  req->method, req->path);
			vault_response_clear(resp);
			rc = vault_http(vc, req, resp, err);
		} else if (r < 0) {
			char first[WERR_MSG_MAX];
			snprintf(first, sizeof(first), "%s", werr_str(err, rc));
			rc = werr_set(err, rc, "%.400s; logging in again failed: %.500s", first,
				      werr_str(&e2, r));
		}
	}
	return rc;
}


int vault_token_lookup(struct vault_client *vc, struct vault_token_info *info, struct werr *err)
{
	memset(info, 0, sizeof(*info));
	int rc;
	static const char *const keys[] = {"id", "accessor", NULL};
	struct vault_request req = {
		.method = "GET", .path = "auth/token/lookup-self", .auth = true, .secret_keys = keys,
	};
	struct vault_response r;
	rc = vault_call(vc, &req, &r, err);
	if (rc >= 0) {
		json_t *d = json_object_get(r.json, "data");
		const char *dn = json_string_value(json_object_get(d, "display_name"));
		snprintf(info->display_name, sizeof(info->display_name), "%s", dn ? dn : "");
		json_t *pol = json_object_get(d, "policies"), *p;
		size_t i, pos = 0;
		json_array_foreach(pol, i, p) {
			const char *s = json_string_value(p);
			if (!s)
				continue;
			int w = snprintf(info->policies + pos, sizeof(info->policies) - pos, "%s%s",
					 pos ? "," : "", s);
			if (w < 0 || (size_t)w >= sizeof(info->policies) - pos)
				break;
			pos += (size_t)w;
		}
		info->ttl = json_ll(d, "ttl");
		info->renewable = json_is_true(json_object_get(d, "renewable"));
		snprintf(info->auth_method, sizeof(info->auth_method), "%s",
			 vault_auth_method_name(vc->cfg.auth));
	}
	vault_response_clear(&r);
	return rc;
}
