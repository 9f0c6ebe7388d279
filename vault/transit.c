/*
 * Transit calls: key info, the derived-key check, datakey/plaintext, decrypt
 * and rewrap (single and batch), sys/health, and the volume context.
 *
 * Plaintext keys: the "plaintext" field of an answer is moved into locked
 * memory by vault_json_extract_secrets before jansson parses the (redacted)
 * text, so no copy of it ever sits in unlocked heap; here it is Base64-decoded
 * into another secbuf and the Base64 copy is wiped with the response.
 */
#include "vault/vault_int.h"

#include "format/format.h"

static const char *const plaintext_keys[] = {"plaintext", NULL};

int vault_context_for_uuid(const char *uuid, char **context_b64)
{
	static const char prefix[] = "wrapd-vk-v1:";
	*context_b64 = NULL;
	char canon[37];
	if (luks2_uuid_canon(uuid, canon) < 0)
		return -EINVAL;
	char ctx[sizeof(prefix) - 1 + 36 + 1];
	memcpy(ctx, prefix, sizeof(prefix) - 1);
	memcpy(ctx + sizeof(prefix) - 1, canon, 37);
	return b64_encode(ctx, sizeof(ctx) - 1, context_b64);
}

static void transit_path(struct vault_client *vc, char *buf, size_t n, const char *op)
{
	snprintf(buf, n, "%s/%s/%s", vc->cfg.mount, op, vc->cfg.key);
}

static unsigned json_uint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= UINT32_MAX)
		return (unsigned)json_integer_value(v);
	return 0;
}

int vault_key_info(struct vault_client *vc, struct vault_key_info *info, struct werr *err)
{
	memset(info, 0, sizeof(*info));
	char path[300];
	transit_path(vc, path, sizeof(path), "keys");
	struct vault_request req = {.method = "GET", .path = path, .auth = true};
	struct vault_response r;
	int rc = vault_call(vc, &req, &r, err);
	if (rc == -ENOENT && r.status == 404) {
		/* A missing key is 404 with an empty errors list; a missing
		 * mount is 404 with "no handler for route". */
		json_t *errs = json_object_get(r.json, "errors");
		if (!json_is_array(errs) || json_array_size(errs) == 0) {
			werr_clear(err);
			rc = 0;
		}
	} else if (rc >= 0) {
		json_t *d = json_object_get(r.json, "data");
		if (!json_is_object(d)) {
			rc = werr_set(err, -EBADMSG, "vault: GET %s: answer without data", path);
		} else {
			info->exists = true;
			info->derived = json_is_true(json_object_get(d, "derived"));
			info->latest_version = json_uint(d, "latest_version");
			info->min_decryption_version = json_uint(d, "min_decryption_version");
			const char *t = json_string_value(json_object_get(d, "type"));
			snprintf(info->type, sizeof(info->type), "%s", t ? t : "");
		}
	}
	vault_response_clear(&r);
	return rc;
}

int vault_require_derived_key(struct vault_client *vc, struct werr *err)
{
	if (vc->key_checked)
		return 0;
	struct vault_key_info ki;
	int rc = vault_key_info(vc, &ki, err);
	if (rc < 0)
		return rc;
	if (!ki.exists)
		return werr_set(err, -ENOKEY,
				"vault: Transit key %s/keys/%s does not exist; create it with derived=true (vault write -f %s/keys/%s derived=true)",
				vc->cfg.mount, vc->cfg.key, vc->cfg.mount, vc->cfg.key);
	if (!ki.derived)
		return werr_set(err, -EKEYREJECTED,
				"vault: Transit key %s/keys/%s is not derived: a context on it binds nothing, so wrapd refuses it; use a key created with derived=true",
				vc->cfg.mount, vc->cfg.key);
	vc->key_checked = true;
	return 0;
}

/* Moves the Base64 secret a placeholder names into *out, decoded. */
static int take_plaintext(struct vault_response *r, json_t *v, struct secbuf *out)
{
	struct secbuf *b64 = vault_secret_ref(v, r->secrets, r->nsecrets);
	if (!b64)
		return -EBADMSG;
	int rc = b64_decode_secure((const char *)b64->data, b64->len, out);
	secbuf_free(b64);
	return rc;
}

static int dup_string(json_t *o, const char *k, char **out)
{
	const char *s = json_string_value(json_object_get(o, k));
	if (!s || !*s)
		return -EBADMSG;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static json_t *item_json(const char *ciphertext, const char *context_b64)
{
	json_t *o = json_object();
	if (o && ciphertext && json_object_set_new(o, "ciphertext", json_string(ciphertext)) < 0) {
		json_decref(o);
		return NULL;
	}
	if (o && context_b64 && json_object_set_new(o, "context", json_string(context_b64)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int vault_datakey_answer(struct vault_response *r, const char *path, unsigned bits,
			 struct secbuf *plaintext, char **ciphertext, unsigned *key_version,
			 struct werr *err)
{
	json_t *d = json_object_get(r->json, "data");
	_cleanup_free_ char *ct = NULL;
	if (dup_string(d, "ciphertext", &ct) < 0 || strncmp(ct, "vault:v", 7))
		return werr_set(err, -EBADMSG, "vault: POST %s: answer without a ciphertext", path);
	int rc = take_plaintext(r, json_object_get(d, "plaintext"), plaintext);
	if (rc < 0)
		return werr_set(err, rc, "vault: POST %s: answer without a usable plaintext", path);
	if (plaintext->len != bits / 8) {
		secbuf_free(plaintext);
		return werr_set(err, -EBADMSG, "vault: POST %s: asked for %u bits, got a different length",
				path, bits);
	}
	if (key_version)
		*key_version = json_uint(d, "key_version");
	*ciphertext = TAKE_PTR(ct);
	return 0;
}

int vault_datakey(struct vault_client *vc, const char *context_b64, unsigned bits,
		  struct secbuf *plaintext, char **ciphertext, unsigned *key_version,
		  struct werr *err)
{
	memset(plaintext, 0, sizeof(*plaintext));
	*ciphertext = NULL;
	int rc = vault_require_derived_key(vc, err);
	if (rc < 0)
		return rc;
	if (!context_b64 || !*context_b64)
		return werr_set(err, -EINVAL, "vault: datakey needs a context");
	char path[300];
	transit_path(vc, path, sizeof(path), "datakey/plaintext");
	json_t *body = item_json(NULL, context_b64);
	if (!body || json_object_set_new(body, "bits", json_integer(bits)) < 0) {
		json_decref(body);
		return werr_set(err, -ENOMEM, "out of memory");
	}
	struct vault_request req = {
		.method = "POST", .path = path, .body = body, .auth = true,
		.secret_keys = plaintext_keys,
	};
	struct vault_response r;
	rc = vault_call(vc, &req, &r, err);
	json_decref(body);
	if (rc < 0)
		goto out;
	rc = vault_datakey_answer(&r, path, bits, plaintext, ciphertext, key_version, err);
out:
	vault_response_clear(&r);
	return rc;
}

int vault_decrypt_answer(struct vault_response *r, const char *path, struct secbuf *plaintext,
			 struct werr *err)
{
	int rc = take_plaintext(r, json_object_get(json_object_get(r->json, "data"), "plaintext"),
				plaintext);
	if (rc < 0)
		return werr_set(err, rc, "vault: POST %s: answer without a usable plaintext", path);
	return 0;
}

int vault_decrypt(struct vault_client *vc, const char *ciphertext, const char *context_b64,
		  struct secbuf *plaintext, struct werr *err)
{
	memset(plaintext, 0, sizeof(*plaintext));
	int rc = vault_require_derived_key(vc, err);
	if (rc < 0)
		return rc;
	char path[300];
	transit_path(vc, path, sizeof(path), "decrypt");
	json_t *body = item_json(ciphertext, context_b64);
	if (!body)
		return werr_set(err, -ENOMEM, "out of memory");
	struct vault_request req = {
		.method = "POST", .path = path, .body = body, .auth = true,
		.secret_keys = plaintext_keys,
	};
	struct vault_response r;
	rc = vault_call(vc, &req, &r, err);
	json_decref(body);
	if (rc >= 0)
		rc = vault_decrypt_answer(&r, path, plaintext, err);
	vault_response_clear(&r);
	return rc;
}

int vault_rewrap(struct vault_client *vc, const char *ciphertext, const char *context_b64,
		 char **new_ciphertext, unsigned *key_version, struct werr *err)
{
	*new_ciphertext = NULL;
	int rc = vault_require_derived_key(vc, err);
	if (rc < 0)
		return rc;
	char path[300];
	transit_path(vc, path, sizeof(path), "rewrap");
	json_t *body = item_json(ciphertext, context_b64);
	if (!body)
		return werr_set(err, -ENOMEM, "out of memory");
	struct vault_request req = {.method = "POST", .path = path, .body = body, .auth = true};
	struct vault_response r;
	rc = vault_call(vc, &req, &r, err);
	json_decref(body);
	if (rc >= 0) {
		json_t *d = json_object_get(r.json, "data");
		if (dup_string(d, "ciphertext", new_ciphertext) < 0)
			rc = werr_set(err, -EBADMSG, "vault: POST %s: answer without a ciphertext", path);
		else if (key_version)
			*key_version = json_uint(d, "key_version");
	}
	vault_response_clear(&r);
	return rc;
}

int vault_batch_answer(struct vault_response *r, const char *path, bool decrypt,
		       struct vault_batch_item *items, size_t n, const struct wlog *log,
		       struct werr *err)
{
	json_t *res = json_object_get(json_object_get(r->json, "data"), "batch_results");
	if (!json_is_array(res) || json_array_size(res) != n) {
		return werr_set(err, -EBADMSG, "vault: POST %s: %zu batch results for %zu items", path,
				json_is_array(res) ? json_array_size(res) : 0, n);
	}
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		struct vault_batch_item *it = &items[i];
		json_t *o = json_array_get(res, i);
		const char *e = json_string_value(json_object_get(o, "error"));
		if (e && *e) {
			it->rc = -EBADMSG;
			snprintf(it->msg, sizeof(it->msg), "vault: POST %.150s: item %zu: ", path, i);
			size_t pos = strlen(it->msg);
			for (; *e && pos + 1 < sizeof(it->msg); e++)
				it->msg[pos++] = (unsigned char)*e < 0x20 ? '?' : *e;
			it->msg[pos] = '\0';
		} else if (decrypt) {
			it->rc = take_plaintext(r, json_object_get(o, "plaintext"), &it->plaintext);
			if (it->rc < 0)
				snprintf(it->msg, sizeof(it->msg),
					 "vault: POST %.150s: item %zu: answer without a usable plaintext", path, i);
		} else {
			it->rc = dup_string(o, "ciphertext", &it->new_ciphertext);
			if (it->rc < 0)
				snprintf(it->msg, sizeof(it->msg),
					 "vault: POST %.150s: item %zu: answer without a ciphertext", path, i);
			else
				it->key_version = json_uint(o, "key_version");
		}
		if (it->rc < 0) {
			failed++;
			wlog_info(log, "%s", it->msg);
		}
	}
	if (failed)
		wlog_warn(log, "vault: POST %s: %zu of %zu items failed", path, failed, n);
	return 0;
}

static int batch(struct vault_client *vc, const char *op, struct vault_batch_item *items,
		 size_t n, struct werr *err)
{
	bool decrypt = !strcmp(op, "decrypt");
	for (size_t i = 0; i < n; i++) {
		memset(&items[i].plaintext, 0, sizeof(items[i].plaintext));
		items[i].new_ciphertext = NULL;
		items[i].key_version = 0;
		items[i].rc = 0;
		items[i].msg[0] = '\0';
	}
	if (!n)
		return 0;
	int rc = vault_require_derived_key(vc, err);
	if (rc < 0)
		return rc;
	char path[300];
	transit_path(vc, path, sizeof(path), op);
	json_t *arr = json_array(), *body = json_object();
	if (!arr || !body || json_object_set(body, "batch_input", arr) < 0)
		goto oom;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(arr, item_json(items[i].ciphertext, items[i].context_b64)) < 0)
			goto oom;
	struct vault_request req = {
		.method = "POST", .path = path, .body = body, .auth = true, .batch_400_ok = true,
		.secret_keys = decrypt ? plaintext_keys : NULL,
	};
	struct vault_response r;
	rc = vault_call(vc, &req, &r, err);
	json_decref(arr);
	json_decref(body);
	if (rc < 0) {
		vault_response_clear(&r);
		return rc;
	}
	rc = vault_batch_answer(&r, path, decrypt, items, n, vc->log, err);
	vault_response_clear(&r);
	return rc;
oom:
	json_decref(arr);
	json_decref(body);
	return werr_set(err, -ENOMEM, "out of memory");
}

int vault_decrypt_batch(struct vault_client *vc, struct vault_batch_item *items, size_t n,
			struct werr *err)
{
	return batch(vc, "decrypt", items, n, err);
}

int vault_rewrap_batch(struct vault_client *vc, struct vault_batch_item *items, size_t n,
		       struct werr *err)
{
	return batch(vc, "rewrap", items, n, err);
}

void vault_batch_items_clear(struct vault_batch_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		secbuf_free(&items[i].plaintext);
		free(items[i].new_ciphertext);
		items[i].new_ciphertext = NULL;
	}
}

int vault_health(struct vault_client *vc, struct vault_health *h, struct werr *err)
{
	memset(h, 0, sizeof(*h));
	struct vault_request req = {
		.method = "GET", .path = "sys/health", .no_retry = true, .accept_any_status = true,
	};
	struct vault_response r;
	int rc = vault_call(vc, &req, &r, err);
	if (rc >= 0) {
		h->status = r.status;
		if (!json_is_object(r.json)) {
			rc = werr_set(err, -EBADMSG, "vault: GET sys/health: %ld without a health body",
				      r.status);
		} else {
			h->initialized = json_is_true(json_object_get(r.json, "initialized"));
			h->sealed = json_is_true(json_object_get(r.json, "sealed"));
			h->standby = json_is_true(json_object_get(r.json, "standby"));
			h->performance_standby =
				json_is_true(json_object_get(r.json, "performance_standby"));
			const char *v = json_string_value(json_object_get(r.json, "version"));
			snprintf(h->version, sizeof(h->version), "%s", v ? v : "");
			const char *cn = json_string_value(json_object_get(r.json, "cluster_name"));
			snprintf(h->cluster_name, sizeof(h->cluster_name), "%s", cn ? cn : "");
		}
	}
	vault_response_clear(&r);
	return rc;
}
