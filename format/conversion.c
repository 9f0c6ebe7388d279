/*
 * The opaque conversion state the engine keeps in a wrapd-conversion token.
 */
#include "format/internal.h"

int luks2_conversion_get(const struct luks2_hdr *hdr, json_t **state, struct werr *err)
{
	json_t *tokens = json_object_get(hdr->json, "tokens");
	unsigned id = 0;
	int count;
	*state = NULL;
	if (luks2_token_find(tokens, WRAPD_CONVERSION_TOKEN_TYPE, &id, &count) < 0)
		return -ENOENT;
	if (count > 1)
		return werr_set(err, -EINVAL, "%d wrapd-conversion tokens: ambiguous", count);
	json_t *s = json_object_get(luks2_obj_get_id(tokens, id), "state");
	if (!json_is_object(s))
		return werr_set(err, -EINVAL, "token %u (wrapd-conversion): \"state\" is not an object",
				id);
	*state = json_deep_copy(s);
	return *state ? 0 : -ENOMEM;
}

int luks2_conversion_set(struct luks2_hdr *hdr, const json_t *state, struct werr *err)
{
	if (!state) {
		int rc = luks2_tokens_remove_type(hdr, WRAPD_CONVERSION_TOKEN_TYPE, err);
		return rc == -ENOENT ? 0 : rc;
	}
	if (!json_is_object(state))
		return werr_set(err, -EINVAL, "conversion state must be a JSON object");
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *tok = luks2_token_find_or_add(json_object_get(root, "tokens"),
					       WRAPD_CONVERSION_TOKEN_TYPE, err);
	if (!tok || json_object_set_new(tok, "state", json_deep_copy(state)) < 0) {
		json_decref(root);
		return tok ? werr_set(err, -ENOMEM, "out of memory") : err->rc;
	}
	return luks2_hdr_replace_json(hdr, root, err);
}
