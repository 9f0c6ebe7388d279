/*
 * The wrapd-vault token: get, set and remove, and the token lookups the
 * conversion state shares.
 */
#include "format/internal.h"

void wrapd_token_free(struct wrapd_token *t)
{
	if (!t)
		return;
	free(t->vault_addr);
	free(t->vault_namespace);
	free(t->vault_mount);
	free(t->vault_key);
	free(t->ciphertext);
	free(t->context);
	free(t->volume_name);
	memset(t, 0, sizeof(*t));
}

int luks2_token_find(json_t *tokens, const char *type, unsigned *id, int *count)
{
	const char *k;
	json_t *v;
	*count = 0;
	json_object_foreach(tokens, k, v)
	{
		const char *t = json_string_value(json_object_get(v, "type"));
		if (t && !strcmp(t, type)) {
			if (!*count)
				(void)luks2_str_id(k, LUKS2_MAX_TOKENS, id);
			(*count)++;
		}
	}
	return *count ? 0 : -ENOENT;
}

json_t *luks2_token_find_or_add(json_t *tokens, const char *type, struct werr *err)
{
	unsigned id = 0;
	int count;
	if (luks2_token_find(tokens, type, &id, &count) == 0) {
		if (count > 1) {
			werr_set(err, -EINVAL, "%d %s tokens: ambiguous, refusing", count, type);
			return NULL;
		}
		return luks2_obj_get_id(tokens, id);
	}
	int fid = luks2_obj_free_id(tokens, LUKS2_MAX_TOKENS);
	if (fid < 0) {
		werr_set(err, -ENOSPC, "all 32 token ids are in use");
		return NULL;
	}
	json_t *tok = json_pack("{s:s, s:[]}", "type", type, "keyslots");
	if (!tok || luks2_obj_set_id(tokens, (unsigned)fid, tok) < 0) {
		werr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	return tok;
}

static int tok_str(json_t *t, const char *name, unsigned id, char **out, bool may_be_empty,
		   struct werr *err)
{
	json_t *v = json_object_get(t, name);
	if (!json_is_string(v))
		return werr_set(err, -EINVAL, "token %u (wrapd-vault): \"%s\" is missing or not a string",
				id, name);
	const char *s = json_string_value(v);
	if (!may_be_empty && !*s)
		return werr_set(err, -EINVAL, "token %u (wrapd-vault): \"%s\" is empty", id, name);
	if (strlen(s) > 8192)
		return werr_set(err, -EINVAL, "token %u (wrapd-vault): \"%s\" is too long", id, name);
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

int wrapd_token_check_paths(json_t *tok, unsigned id, const char *label, char *why, size_t whylen)
{
	static const struct {
		const char *field, *what;
		bool slash;
	} f[] = {
		{"vault_mount", "Transit mount path", true},
		{"vault_key", "Transit key name", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		const char *s = json_string_value(json_object_get(tok, f[i].field));
		if (!s || !*s || vault_valid_path_part(s, f[i].slash))
			continue;
		char shown[48];
		str_printable(shown, sizeof(shown), s);
		snprintf(why, whylen,
			 "token %u (%s): %s \"%s\" is not a %s (letters, digits, '-', '_', '.'%s; no '.' or '..')",
			 id, label, f[i].field, shown, f[i].what, f[i].slash ? ", inner '/'" : "");
		return -EINVAL;
	}
	return 0;
}

int wrapd_token_get(const struct luks2_hdr *hdr, struct wrapd_token *out, unsigned *token_id,
		    struct werr *err)
{
	memset(out, 0, sizeof(*out));
	json_t *tokens = json_object_get(hdr->json, "tokens");
	unsigned id = 0;
	int count;
	if (luks2_token_find(tokens, WRAPD_TOKEN_TYPE, &id, &count) < 0)
		return werr_set(err, -ENOENT, "no wrapd-vault token: this is not a wrapd volume");
	if (count > 1)
		return werr_set(err, -EINVAL, "%d wrapd-vault tokens: ambiguous, refusing", count);
	json_t *t = luks2_obj_get_id(tokens, id);
	int rc;
	if ((rc = tok_str(t, "vault_addr", id, &out->vault_addr, true, err)) ||
	    (rc = tok_str(t, "vault_namespace", id, &out->vault_namespace, true, err)) ||
	    (rc = tok_str(t, "vault_mount", id, &out->vault_mount, false, err)) ||
	    (rc = tok_str(t, "vault_key", id, &out->vault_key, false, err)) ||
	    (rc = tok_str(t, "ciphertext", id, &out->ciphertext, false, err)) ||
	    (rc = tok_str(t, "context", id, &out->context, false, err))) {
		wrapd_token_free(out);
		return rc;
	}
	char why[256];
	if (wrapd_token_check_paths(t, id, WRAPD_TOKEN_TYPE, why, sizeof(why)) < 0) {
		wrapd_token_free(out);
		return werr_set(err, -EINVAL, "%s", why);
	}
	json_t *kv = json_object_get(t, "key_version");
	if (!json_is_integer(kv) || json_integer_value(kv) < 1 || json_integer_value(kv) > UINT32_MAX) {
		wrapd_token_free(out);
		return werr_set(err, -EINVAL,
				"token %u (wrapd-vault): \"key_version\" is missing or not an integer >= 1",
				id);
	}
	out->key_version = (unsigned)json_integer_value(kv);
	/* Optional and informational: anything but a string is ignored. */
	json_t *vn = json_object_get(t, "volume_name");
	if (json_is_string(vn) && !(out->volume_name = strdup(json_string_value(vn)))) {
		wrapd_token_free(out);
		return -ENOMEM;
	}
	if (strncmp(out->ciphertext, "vault:v", 7)) {
		wrapd_token_free(out);
		return werr_set(err, -EINVAL,
				"token %u (wrapd-vault): \"ciphertext\" is not a Vault ciphertext (vault:vN:...)",
				id);
	}
	if (token_id)
		*token_id = id;
	return 0;
}

int wrapd_token_set(struct luks2_hdr *hdr, const struct wrapd_token *t, struct werr *err)
{
	if (!t->vault_mount || !*t->vault_mount || !t->vault_key || !*t->vault_key ||
	    !t->ciphertext || strncmp(t->ciphertext, "vault:v", 7) || !t->context || !*t->context ||
	    t->key_version < 1)
		return werr_set(err, -EINVAL,
				"wrapd-vault token: mount, key, a vault:vN: ciphertext, context and key_version >= 1 are required");
	uint8_t ctx[256];
	size_t cl;
	if (b64_decode(t->context, strlen(t->context), ctx, sizeof(ctx), &cl) < 0)
		return werr_set(err, -EINVAL, "wrapd-vault token: context is not Base64");
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *tok = luks2_token_find_or_add(json_object_get(root, "tokens"), WRAPD_TOKEN_TYPE, err);
	if (!tok) {
		json_decref(root);
		return err->rc;
	}
	json_object_set_new(tok, "vault_addr", json_string(t->vault_addr ? t->vault_addr : ""));
	json_object_set_new(tok, "vault_namespace",
			    json_string(t->vault_namespace ? t->vault_namespace : ""));
	json_object_set_new(tok, "vault_mount", json_string(t->vault_mount));
	json_object_set_new(tok, "vault_key", json_string(t->vault_key));
	json_object_set_new(tok, "key_version", json_integer(t->key_version));
	json_object_set_new(tok, "ciphertext", json_string(t->ciphertext));
	json_object_set_new(tok, "context", json_string(t->context));
	/* An extra field: the wrapd-vault contract allows additions. */
	if (t->volume_name)
		json_object_set_new(tok, "volume_name", json_string(t->volume_name));
	return luks2_hdr_replace_json(hdr, root, err);
}

int luks2_tokens_remove_type(struct luks2_hdr *hdr, const char *type, struct werr *err)
{
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *tokens = json_object_get(root, "tokens");
	const char *k;
	json_t *v;
	void *tmp;
	bool any = false;
	json_object_foreach_safe(tokens, tmp, k, v)
	{
		const char *t = json_string_value(json_object_get(v, "type"));
		if (t && !strcmp(t, type)) {
			json_object_del(tokens, k);
			any = true;
		}
	}
	if (!any) {
		json_decref(root);
		return -ENOENT;
	}
	return luks2_hdr_replace_json(hdr, root, err);
}

int wrapd_token_remove(struct luks2_hdr *hdr, struct werr *err)
{
	int rc = luks2_tokens_remove_type(hdr, WRAPD_TOKEN_TYPE, err);
	if (rc == -ENOENT)
		return werr_set(err, rc, "no wrapd-vault token to remove");
	return rc;
}
