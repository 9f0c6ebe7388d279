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

#endif
