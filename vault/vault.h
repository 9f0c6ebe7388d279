/*
 * vault: the HashiCorp Vault client (libcurl + jansson) every part of wrapd uses.
 *
 * It owns: reading Vault settings (config file, then VAULT_* environment, as
 * Vault's own CLI does), authentication and token upkeep (token/token file,
 * Kubernetes, AppRole), retries and redirects, and the Transit calls wrapd
 * needs. Plaintext keys from Vault arrive in locked memory (struct secbuf) and
 * never reach a log line.
 *
 * API contract fixed by the lead so other modules can code against it; the
 * implementation may add functions but must not change these.
 */
#ifndef WRAPD_VAULT_H
#define WRAPD_VAULT_H

#include "common/common.h"
#include "common/config.h"
#include <jansson.h>

#define VAULT_DEFAULT_MOUNT "transit"
#define VAULT_DEFAULT_KEY "wrapd"

enum vault_auth_method {
	VAULT_AUTH_TOKEN = 0,      /* VAULT_TOKEN or token_file (reread when it changes) */
	VAULT_AUTH_KUBERNETES,
	VAULT_AUTH_APPROLE,
};

struct vault_config {
	char *addr;                /* VAULT_ADDR, default https://127.0.0.1:8200 */
	char *namespace_;          /* VAULT_NAMESPACE */
	char *cacert, *capath;     /* VAULT_CACERT, VAULT_CAPATH */
	char *client_cert, *client_key;
	char *tls_server_name;
	bool skip_verify;
	long timeout_ms;           /* VAULT_CLIENT_TIMEOUT, default 60 s: total per request */
	long connect_timeout_ms;   /* default 10 s */
	int max_retries;           /* VAULT_MAX_RETRIES, default 2 */
	long deadline_ms;          /* overall deadline for one logical call incl. retries */
	char *mount;               /* transit mount, default "transit" */
	char *key;                 /* transit key name, default "wrapd" */
	enum vault_auth_method auth;
	char *token;               /* VAULT_TOKEN */
	char *token_file;
	char *auth_mount;          /* default auth/kubernetes or auth/approle */
	char *role;                /* kubernetes role */
	char *jwt_file;            /* default /var/run/secrets/kubernetes.io/serviceaccount/token */
	char *role_id;             /* approle */
	char *secret_id_file;
};

/* Defaults, then the config file (NULL = /etc/wrapd/wrapd.conf, missing is
 * fine only for the default path), then the VAULT_* environment. */
int vault_config_load(struct vault_config *cfg, const char *config_path, struct werr *err);
void vault_config_free(struct vault_config *cfg);

struct vault_client;
int vault_client_new(const struct vault_config *cfg, const struct wlog *log,
		     struct vault_client **out, struct werr *err);
void vault_client_free(struct vault_client *vc);

/*
 * The Transit context that binds a wrapped VK to its volume. Exactly the
 * ASCII bytes "wrapd-vk-v1:" followed by the volume's LUKS2 UUID in its
 * canonical 36-character lowercase form. Recorded in the token Base64-encoded.
 */
int vault_context_for_uuid(const char *uuid, char **context_b64);

struct vault_key_info {
	bool exists, derived;
	unsigned latest_version, min_decryption_version;
	char type[32];
};
int vault_key_info(struct vault_client *vc, struct vault_key_info *info, struct werr *err);
/* Fails unless the key exists and is derived. */
int vault_require_derived_key(struct vault_client *vc, struct werr *err);

/* datakey/plaintext with bits and context (Base64). */
int vault_datakey(struct vault_client *vc, const char *context_b64, unsigned bits,
		  struct secbuf *plaintext, char **ciphertext, unsigned *key_version,
		  struct werr *err);
int vault_decrypt(struct vault_client *vc, const char *ciphertext, const char *context_b64,
		  struct secbuf *plaintext, struct werr *err);
int vault_rewrap(struct vault_client *vc, const char *ciphertext, const char *context_b64,
		 char **new_ciphertext, unsigned *key_version, struct werr *err);

/* Batch forms: one HTTP request. Per-item results; the call fails only when
 * the whole request failed. A failed item has rc < 0 and msg set. */
struct vault_batch_item {
	const char *ciphertext;      /* in */
	const char *context_b64;     /* in */
	struct secbuf plaintext;     /* out (decrypt) */
	char *new_ciphertext;        /* out (rewrap), malloc'ed */
	unsigned key_version;        /* out (rewrap) */
	int rc;
	char msg[256];
};
int vault_decrypt_batch(struct vault_client *vc, struct vault_batch_item *items, size_t n,
			struct werr *err);
int vault_rewrap_batch(struct vault_client *vc, struct vault_batch_item *items, size_t n,
		       struct werr *err);
void vault_batch_items_clear(struct vault_batch_item *items, size_t n);

/* ---- Additions by the vault module (the fixed API above is unchanged). ---- */

/* Injectable clock and sleep, so token renewal and back-off are testable
 * without waiting. now_ms is a monotonic clock in milliseconds; sleep_ms
 * waits. NULL members fall back to CLOCK_MONOTONIC and nanosleep. */
struct vault_client_hooks {
	uint64_t (*now_ms)(void *arg);
	void (*sleep_ms)(void *arg, uint64_t ms);
	void *arg;
};
int vault_client_new_ex(const struct vault_config *cfg, const struct wlog *log,
			const struct vault_client_hooks *hooks, struct vault_client **out,
			struct werr *err);

/* Sets one setting by its config-file name ("vault_mount", ...), with the
 * same validation as the file. For command-line overrides. */
int vault_config_set(struct vault_config *cfg, const char *key, const char *value,
		     struct werr *err);

/* The vault keys of wrapd.conf ("vault_addr", ...) as a config section over
 * cfg, for programs that parse the shared file with their own sections. */
struct config_section vault_config_section(struct vault_config *cfg);
/* vault_config_load, with the file's other sections (NULL-terminated; the
 * volume module's, the agent's) parsed in the same pass, so that one
 * wrapd.conf serves every module and an unknown key is still refused. */
int vault_config_load_ex(struct vault_config *cfg, const char *config_path,
			 const struct config_section *const *others, struct werr *err);

/* GET sys/health (no token needed; never retried: every answer is an answer). */
struct vault_health {
	long status;               /* HTTP status: 200, 429, 472, 473, 501, 503 */
	bool initialized, sealed, standby, performance_standby;
	char version[64];
	char cluster_name[128];
};
int vault_health(struct vault_client *vc, struct vault_health *h, struct werr *err);

/* GET auth/token/lookup-self, after the usual login/upkeep. */
struct vault_token_info {
	char display_name[128];
	char policies[512];        /* comma-separated */
	long long ttl;             /* seconds; 0 = never expires */
	bool renewable;
	char auth_method[16];      /* "token", "kubernetes", "approle" */
};
int vault_token_lookup(struct vault_client *vc, struct vault_token_info *info, struct werr *err);

const char *vault_auth_method_name(enum vault_auth_method m);

/*
 * Token upkeep for a timer (the agent renews on a timerfd instead of lazily
 * at the next call). vault_token_next_upkeep: milliseconds of the client clock
 * until upkeep is due: 0 = now (no token yet, token not yet looked up, or past
 * two-thirds of its TTL), UINT64_MAX = never (a token without a TTL). No
 * request. vault_token_upkeep: does what is due (login, lookup-self,
 * renew-self, a new login when renewal fails, rereading a changed token
 * file); no request when nothing is due. Every call with a token runs it too.
 */
uint64_t vault_token_next_upkeep(struct vault_client *vc);
int vault_token_upkeep(struct vault_client *vc, struct werr *err);

/* Whether a URL's parsed host is 127.0.0.0/8, ::1 or localhost (not a
 * prefix: http://localhost.example.com is not loopback). The one rule for
 * plain http, shared with the Kubernetes client (kube/). */
bool vault_addr_is_loopback(const char *url);

/*
 * A per-request observer (metrics): called after every HTTP exchange with
 * Vault (each try and each redirect hop is one), on the thread that uses the
 * client, with the operation's name ("decrypt", "datakey", "rewrap", "keys",
 * "lookup-self", "renew", "login", "health", "other"), the HTTP status (0 when
 * no answer came: a transport or TLS error) and the exchange's duration.
 * fn NULL removes it. vault_client_observer_copy gives dst src's observer (a
 * client made for another Transit key inherits the caller's).
 */
typedef void (*vault_observer_fn)(void *arg, const char *op, long status, uint64_t duration_us);
void vault_client_set_observer(struct vault_client *vc, vault_observer_fn fn, void *arg);
void vault_client_observer_copy(struct vault_client *dst, const struct vault_client *src);
/* The operation name the observer gets for a request path (without /v1/). */
const char *vault_request_op(const struct vault_client *vc, const char *path);

/*
 * What a node sees of Vault, for `wrapctl vault status` and the agent: the
 * server's health, then the token (lookup-self), then the Transit key; each
 * step is tried only when the one before worked, and keeps its own error.
 * Returns 0 when Vault is usable for wrapd (initialized, unsealed, the token
 * works, the key exists and is derived), else a negative errno (the first
 * failing step's, or -EPERM for a missing or non-derived key).
 */
struct vault_status {
	int health_rc, token_rc, key_rc;   /* 0, or why that step failed; -ECANCELED = not tried */
	struct werr health_err, token_err, key_err;
	struct vault_health health;
	struct vault_token_info token;
	struct vault_key_info key;
	bool ok;
};
int vault_status_check(struct vault_client *vc, struct vault_status *st);
/* The document of `wrapctl vault status --json`: {"addr", "server"?,
 * "token"?, "key"?, "ok", "errors": [...]} (a contract for scripts). */
json_t *vault_status_json(const struct vault_status *st, const struct vault_config *cfg);

#endif
