/*
 * vault internals: shared between the vault/ sources and the vault unit tests only.
 * Nothing outside vault/ and the tests in tests/vault/ includes this.
 */
#ifndef WRAPD_VAULT_INT_H
#define WRAPD_VAULT_INT_H

#include "vault/vault.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sys/stat.h>

#define VAULT_CONFIG_MAX_BYTES CONFIG_MAX_BYTES /* the config file (common/config.h) */
#define VAULT_CONFIG_MAX_LINE CONFIG_MAX_LINE
#define VAULT_SECRET_FILE_MAX (64 * 1024)    /* token, JWT, secret_id files */
#define VAULT_RESPONSE_MAX (8 * 1024 * 1024) /* one HTTP response body */
#define VAULT_MAX_SECRETS 4096               /* plaintext fields in one response */
#define VAULT_DEFAULT_DEADLINE_MS 180000L
#define VAULT_DEFAULT_ADDR "https://127.0.0.1:8200"
#define VAULT_DEFAULT_JWT_FILE "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define VAULT_DEFAULT_CONFIG "/etc/wrapd/wrapd.conf"

/* ---- config.c ---- */
void vault_config_defaults(struct vault_config *cfg);
/* Parses a config file's contents; path only names the file in errors. */
int vault_config_parse(struct vault_config *cfg, const char *path, const char *buf, size_t len,
		       struct werr *err);
/* Applies VAULT_* from the given getenv-like function (tests pass their own). */
int vault_config_apply_env(struct vault_config *cfg, const char *(*get)(const char *name),
			   struct werr *err);
/* Fills method-dependent defaults and checks the whole config for consistency. */
int vault_config_finish(struct vault_config *cfg, struct werr *err);
int vault_config_copy(struct vault_config *dst, const struct vault_config *src);
/* Go's strconv.ParseBool. */
int vault_parse_bool(const char *s, bool *out);
/* "60", "60s", "1500ms", "2m" -> milliseconds. Plain numbers are seconds. */
int vault_parse_duration_ms(const char *s, long *out);

/* ---- http.c: pure helpers ---- */
/* Whether a finished attempt should be retried (status 0 = no HTTP answer). */
bool vault_should_retry(long status, CURLcode cc);
/* Certificate and TLS-setup failures: never retried, reported as such. */
bool vault_curl_is_tls_error(CURLcode cc);
/* Linear back-off with jitter: retry n (1-based) waits n s plus up to n/2 s.
 * rnd is a uniform random 32-bit number. */
uint64_t vault_backoff_ms(unsigned retry, uint32_t rnd);
/* "vault: METHOD path: status: err1; err2" from a Vault error body (may be NULL). */
void vault_format_http_error(char *buf, size_t n, const char *method, const char *path,
			     long status, json_t *body);
/* ---- extract.c: secrets out of a body before jansson reads it ----
 *
 * Copies a JSON document, moving the string values of the given keys (at any
 * depth) out into locked memory: each such value becomes "#<k>" in *out and
 * its unescaped text lands in secrets[k]. *out then holds no secret and can go
 * to jansson, which copies strings into unlocked heap it never wipes.
 */
int vault_json_extract_secrets(const char *in, size_t len, const char *const *keys, char **out,
			       struct secbuf *secrets, size_t max_secrets, size_t *nsecrets);
/* Resolves a "#k" placeholder from vault_json_extract_secrets. */
struct secbuf *vault_secret_ref(json_t *v, struct secbuf *secrets, size_t nsecrets);
/* Same scheme, host and port (default ports filled in), from libcurl's URL
 * parser: the only redirects followed, since each carries the token. */
bool vault_same_origin(const char *a, const char *b);
/* vault_addr_is_loopback: public, in vault/vault.h (kube/ uses it too). */

/* ---- the client ---- */
struct vault_client {
	struct vault_config cfg;
	const struct wlog *log;
	struct vault_client_hooks hooks;
	CURL *curl;
	uint32_t rng;                  /* xorshift state for jitter */

	struct secbuf token;           /* NUL-terminated when set */
	bool have_token;
	bool token_checked;            /* lookup-self (or login) done */
	bool renewable;
	uint64_t renew_at_ms, expire_at_ms; /* 0 = never */
	struct stat token_file_st;     /* identity of the token file last read */
	bool token_file_seen;

	bool key_checked;              /* transit key verified as derived */

	vault_observer_fn observe;     /* per HTTP exchange (metrics), or NULL */
	void *observe_arg;
};

/* One logical Vault call. */
struct vault_request {
	const char *method;            /* "GET" or "POST" */
	const char *path;              /* without /v1/, e.g. "transit/decrypt/wrapd" */
	json_t *body;                  /* NULL for none */
	const struct secbuf *raw_body; /* instead of body: credentials (login) */
	bool auth;                     /* send the token (vault_call: after token upkeep) */
	bool no_retry;                 /* every answer is final (sys/health) */
	bool accept_any_status;        /* return the body whatever the status */
	bool batch_400_ok;             /* transit batch: 400 carries batch_results */
	const char *const *secret_keys;/* JSON keys whose values are secrets */
};

struct vault_response {
	long status;
	json_t *json;                  /* the redacted document, or NULL (204) */
	struct secbuf *secrets;
	size_t nsecrets;
};
void vault_response_clear(struct vault_response *r);
/* A body as received (locked memory) -> resp->json (secret fields replaced
 * by placeholders) and resp->secrets. 0 with no JSON for an empty body. */
int vault_response_parse(const uint8_t *body, size_t len, const char *const *secret_keys,
			 struct vault_response *resp);

/* ---- transit.c and auth.c: reading parsed answers (no I/O; the fuzz
 * target tests/fuzz/fuzz_vault_response.c drives them) ---- */
int vault_datakey_answer(struct vault_response *r, const char *path, unsigned bits,
			 struct secbuf *plaintext, char **ciphertext, unsigned *key_version,
			 struct werr *err);
int vault_decrypt_answer(struct vault_response *r, const char *path, struct secbuf *plaintext,
			 struct werr *err);
int vault_batch_answer(struct vault_response *r, const char *path, bool decrypt,
		       struct vault_batch_item *items, size_t n, const struct wlog *log,
		       struct werr *err);

/* ---- http.c: the transport ----
 * The request/retry/redirect loop. Sends vc->token as it is when req->auth;
 * knows nothing of logins or renewal. */
int vault_http(struct vault_client *vc, const struct vault_request *req,
	       struct vault_response *resp, struct werr *err);
/* The client clock (hooks.now_ms, else CLOCK_MONOTONIC), in ms. */
uint64_t vault_now(struct vault_client *vc);

/* ---- auth.c: the token lifecycle, on top of vault_http ----
 * One logical call for the layers above: token upkeep first (when req->auth),
 * then vault_http, then, after a 403, a new login (or a changed token file)
 * and one repeat. */
int vault_call(struct vault_client *vc, const struct vault_request *req,
	       struct vault_response *resp, struct werr *err);
bool vault_can_login(const struct vault_client *vc);
/* Takes auth.client_token (need_token), lease_duration and renewable from a
 * login or renew answer into the client. */
int vault_auth_answer(struct vault_client *vc, struct vault_response *r, const char *what,
		      bool need_token, struct werr *err);

#endif
